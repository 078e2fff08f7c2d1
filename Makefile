# Set-up and the two everyday commands. `make sweep` installs everything (Debian packages, a
# virtual environment with the project) and runs the main study; `make test` runs the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STUDY ?= studies/reward_ablation.yaml
# local worker processes for `make sweep` (one torch thread each): one per core of this 2-core machine
WORKERS ?= 2
# rounds of seeds `make sweep` runs (the study's first look: every configuration at 5 seeds); running
# `harness sweep $(STUDY)` again continues the same study's rounds until its hypotheses are decided
ROUNDS ?= 1
APT_PACKAGES := espeak-ng sox wordnet-base wordnet-sense-index
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# A throw-away PostgreSQL on loopback for the multi-worker integration test (tests/test_postgres.py).
# `make test` stops it afterwards if it started it (PG_MARK exists meanwhile); `make postgres` leaves it running.
PG_PORT ?= 54329
PG_DIR ?= /tmp/harness-postgres
PG_MARK ?= $(PG_DIR).started-by-make-test
HARNESS_TEST_POSTGRES_URL ?= postgresql://harness:harness-pw@127.0.0.1:$(PG_PORT)/postgres
# Install steps are quiet: `$(QUIETLY) LOG COMMAND...` keeps the command's output in LOG and shows it
# only when the command fails (apt's and dpkg's progress, pip's editable-install warnings).
LOG_DIR ?= /tmp/harness-make
QUIETLY := sh -c 'log="$$1"; shift; mkdir -p "$${log%/*}"; "$$@" >"$$log" 2>&1 && exit 0; \
  status=$$?; cat "$$log" >&2; echo "failed (exit $$status): $$* (its output above, kept in $$log)" >&2; \
  exit $$status' quietly
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: setup system-packages postgres-package postgres postgres-stop sweep lint test bench bench-trl gpu-wheels \
  gpu-check-cpu

setup: system-packages $(VENV)/.installed

system-packages:
	@if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null || [ ! -f /usr/share/wordnet/data.noun ]; then \
	  $(QUIETLY) $(LOG_DIR)/apt-update.log $(APT_GET) update -qq && \
	  $(QUIETLY) $(LOG_DIR)/apt-install.log $(APT_GET) install -y -qq $(APT_PACKAGES); \
	fi

$(VENV)/.installed: pyproject.toml
	@$(QUIETLY) $(LOG_DIR)/venv.log python3 -m venv $(VENV)
	@$(QUIETLY) $(LOG_DIR)/pip.log $(PY) -m pip install -q --upgrade pip
	@$(QUIETLY) $(LOG_DIR)/pip.log $(PY) -m pip install -q -e '.[test]'
	@touch $@

# ruff (pinned in the [test] extra, configured in pyproject.toml): lint and formatting, checked only
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

sweep: setup
	$(VENV)/bin/harness sweep $(STUDY) --workers $(WORKERS) --rounds $(ROUNDS)

postgres-package:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  $(QUIETLY) $(LOG_DIR)/apt-update.log $(APT_GET) update -qq && \
	  $(QUIETLY) $(LOG_DIR)/apt-install.log $(APT_GET) install -y -qq postgresql; \
	fi

postgres: postgres-package
	@sh scripts/start_postgres.sh $(PG_PORT) $(PG_DIR)

postgres-stop:
	@sh scripts/stop_postgres.sh $(PG_DIR)

# The suite with the PostgreSQL it needs: a server this recipe started is stopped when pytest ends
# (passed, failed or interrupted), and make exits with pytest's status; one running before stays running.
test: setup postgres-package lint
	@sh scripts/start_postgres.sh $(PG_PORT) $(PG_DIR) $(PG_MARK)
	@trap 'sh scripts/stop_postgres.sh $(PG_DIR) $(PG_MARK)' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	echo "$(PY) -m pytest"; HARNESS_TEST_POSTGRES_URL=$(HARNESS_TEST_POSTGRES_URL) $(PY) -m pytest

bench: setup
	$(PY) bench/tracking_overhead.py

# Our GRPO step vs TRL's GRPOTrainer (+ audio once vs per sample, phases, memory). TRL is a
# bench-only extra, installed into its own venv so the project's .venv never gets it.
BENCH_VENV ?= .venv-bench

$(BENCH_VENV)/.installed: pyproject.toml
	@$(QUIETLY) $(LOG_DIR)/bench-venv.log python3 -m venv $(BENCH_VENV)
	@$(QUIETLY) $(LOG_DIR)/bench-pip.log $(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	@$(QUIETLY) $(LOG_DIR)/bench-pip.log $(BENCH_VENV)/bin/python -m pip install -q torch==2.13.0 -e '.[bench]'
	@touch $@

bench-trl: system-packages $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/grpo_step.py $(BENCH_ARGS)

# The prepared one-call GPU check (bench/gpu_check.py): `make gpu-wheels` here (bench/.wheels, git-ignored,
# for a GPU machine without a package index), then `bash bench/gpu_check.sh` on the GPU machine with
# bench/.wheels carried along. `make gpu-check-cpu` runs it at tiny shapes on CPU (as tests/test_gpu_check.py).
gpu-wheels: setup
	PIP="$(PY) -m pip" bash bench/gpu_wheels.sh

gpu-check-cpu: setup
	$(PY) bench/gpu_check.py --tiny --out $(or $(OUT),/tmp/gpu-check-cpu)
