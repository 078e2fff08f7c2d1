# Set-up and the two everyday commands. `make sweep` installs everything (Debian packages, a
# virtual environment with the project) and runs the main study; `make test` runs the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STUDY ?= studies/reward_ablation.yaml
APT_PACKAGES := espeak-ng sox wordnet-base wordnet-sense-index
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages sweep test bench

setup: system-packages $(VENV)/.installed

system-packages:
	@if command -v espeak-ng >/dev/null && command -v sox >/dev/null && [ -f /usr/share/wordnet/data.noun ]; then \
	  echo "system packages present: $(APT_PACKAGES)"; \
	else \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

sweep: setup
	$(VENV)/bin/harness sweep $(STUDY)

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/tracking_overhead.py
