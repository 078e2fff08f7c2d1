# Set-up and the two everyday commands. `make sweep` installs everything (Debian packages, a
# virtual environment with the project) and runs the main study; `make test` runs the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STUDY ?= studies/reward_ablation.yaml
# local worker processes for `make sweep` (one torch thread each): one per core of this 2-core machine
WORKERS ?= 2
APT_PACKAGES := espeak-ng sox wordnet-base wordnet-sense-index
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# A throw-away PostgreSQL on loopback for the multi-worker integration test (tests/test_postgres.py).
PG_PORT ?= 54329
PG_DIR ?= /tmp/harness-postgres
HARNESS_TEST_POSTGRES_URL ?= postgresql://harness:harness-pw@127.0.0.1:$(PG_PORT)/postgres

.PHONY: setup system-packages postgres sweep lint test bench bench-trl gpu-wheels gpu-check-cpu

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

# ruff (pinned in the [test] extra, configured in pyproject.toml): lint and formatting, checked only
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

sweep: setup
	$(VENV)/bin/harness sweep $(STUDY) --workers $(WORKERS)

postgres:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; \
	fi
	sh scripts/start_postgres.sh $(PG_PORT) $(PG_DIR)

test: setup postgres lint
	HARNESS_TEST_POSTGRES_URL=$(HARNESS_TEST_POSTGRES_URL) $(PY) -m pytest

bench: setup
	$(PY) bench/tracking_overhead.py

# Our GRPO step vs TRL's GRPOTrainer (+ audio once vs per sample, phases, memory). TRL is a
# bench-only extra, installed into its own venv so the project's .venv never gets it.
BENCH_VENV ?= .venv-bench

$(BENCH_VENV)/.installed: pyproject.toml
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q torch==2.13.0 -e '.[bench]'
	touch $@

bench-trl: system-packages $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/grpo_step.py $(BENCH_ARGS)

# The prepared one-call GPU check (bench/gpu_check.py): `make gpu-wheels` here (bench/.wheels, git-ignored,
# for a GPU machine without a package index), then `bash bench/gpu_check.sh` on the GPU machine with
# bench/.wheels carried along. `make gpu-check-cpu` runs it at tiny shapes on CPU (as tests/test_gpu_check.py).
gpu-wheels: setup
	PIP="$(PY) -m pip" bash bench/gpu_wheels.sh

gpu-check-cpu: setup
	$(PY) bench/gpu_check.py --tiny --out $(or $(OUT),/tmp/gpu-check-cpu)
