# Google one-time-code sign-in on Cloud Functions: local stack, tests, benchmarks, deployment.
SHELL := /usr/bin/env bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM := /usr/lib/chromium/chromium
# pytest-xdist workers; each starts its own Firestore emulator, local Google and Secret Manager.
TEST_WORKERS ?= 2
LINT_PATHS := functions client localdev tests bench terraform/scripts tools

.DEFAULT_GOAL := help

# The Terraform targets: deploy, destroy, set-client-secret, the key operations (rotate-sealing-key,
# sealing-key-status, retire-sealing-key, rotate-log-key, rotate-session-key; DEV=1 runs the
# sealing ones against `make dev`), lint-tf, test-tf and tf-offline-cache.
include terraform/terraform.mk

# The locked, hashed runtime dependencies (what the deployed functions install), and how `make requirements` regenerates lock files.
RUNTIME_LOCK := functions/requirements.txt
PIP_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make requirements"

# List the targets and what each one does.
#
# A target's help is the first paragraph of the comment above it: keep it whole sentences.
.PHONY: help
help:
	@awk '/^$$/{c=""; d=0} /^#$$/{if(c!="") d=1} /^# /{if(!d) c=(c=="" ? "" : c " ") substr($$0,3)} /^[a-z][a-z0-9-]*:/{t=$$0; sub(/:.*/,"",t); if(c!="") printf "  %-20s %s\n",t,c; c=""; d=0}' $(MAKEFILE_LIST)

# Create the virtualenv and install pinned dependencies, the offline-access CLI and the Python client (re-run when they change).
#
# Two pip calls: pip's hash-checking mode refuses unhashed requirements in the same install.
$(STAMP): requirements.txt requirements-dev.txt $(RUNTIME_LOCK) pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --editable .
	$(PY) -m pip install --quiet --no-deps --editable client/
	touch $@

# Install the Python dependencies, the offline-access CLI and the Python client (client/) into .venv.
.PHONY: install
install: $(STAMP)

# Regenerate the hashed lock files from their .in files (for Python 3.11 and up: 3.12 deploys).
.PHONY: requirements
requirements: $(STAMP)
	$(PIP_COMPILE) functions/requirements.in -o $(RUNTIME_LOCK)
	$(PIP_COMPILE) tools/tf_offline_plan/requirements.in -o tools/tf_offline_plan/requirements.txt

# Install Debian's npm if terraform is installed but npm is not (the offline Terraform check fetches schemas with it).
.PHONY: npm
npm:
	@if command -v $(TF_BIN) >/dev/null 2>&1 && ! command -v npm >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; \
	fi

# Install Debian's Chromium for the browser tests when it is missing (needs root or sudo).
.PHONY: chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@test -x $(CHROMIUM) || { echo "Chromium is missing: apt-get install chromium"; exit 1; }

# Run the whole system locally on http://localhost:8080: page, functions, local Google, Secret
# Manager, Firestore and Pub/Sub emulators; its data is kept in .dev-data/ from one run to the next.
.PHONY: dev
dev: $(STAMP)
	PYTHONPATH=functions $(PY) -m localdev.dev

# Delete the data make dev keeps in .dev-data/ (Firestore, local keys), so that it starts clean.
.PHONY: dev-reset
dev-reset:
	rm -rf .dev-data
	@echo "make dev will start with no users and new local keys."

# Run the offline job of a running make dev now and say what it did (ALL=1: every user, due or not).
.PHONY: job
job: $(STAMP)
	@$(PY) -m localdev.job_now $(if $(ALL),--all)

# Run every check: lint and types, then unit, integration, browser and Terraform tests.
.PHONY: test
test: lint chromium $(CHECKOV) npm tf-offline-cache
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -q

# Run the fast unit tests only.
.PHONY: test-unit
test-unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

# Run the benchmarks; figures go to bench/results/ and the terminal (about 8 minutes).
# Smaller runs: make bench-quick, or pass BENCH_JOB_ARGS / BENCH_FANOUT_ARGS (see each module's --help).
BENCH_JOB_ARGS ?=
BENCH_FANOUT_ARGS ?=
.PHONY: bench
bench: $(STAMP)
	PYTHONPATH=functions $(PY) -m bench.bench_sealing
	PYTHONPATH=functions $(PY) -m bench.bench_exchange
	PYTHONPATH=functions $(PY) -m bench.bench_offline_job $(BENCH_JOB_ARGS)
	PYTHONPATH=functions $(PY) -m bench.bench_fanout $(BENCH_FANOUT_ARGS)

# Run the job and fan-out benchmarks on fewer users (about 3 minutes; the figures are rougher).
.PHONY: bench-quick
bench-quick: $(STAMP)
	PYTHONPATH=functions $(PY) -m bench.bench_offline_job --users 500,2000 --baseline-users 50
	PYTHONPATH=functions $(PY) -m bench.bench_fanout --users 300 --scale-users 1200

# Lint the Python code and check the types of functions/.
.PHONY: lint
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy


# A Python 3.12 interpreter (the Cloud Functions runtime): pyenv's, or python3.12 on PATH.
PY312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python) python3.12)

# Run the unit, integration and local-Google tests under Python 3.12 too.
.PHONY: test-py312
test-py312:
	test -x .venv312/bin/python || $(PY312) -m venv .venv312
	.venv312/bin/python -m pip install --quiet --require-hashes -r requirements.txt
	.venv312/bin/python -m pip install --quiet -r requirements-dev.txt
	.venv312/bin/python -m pip install --quiet --no-deps --editable client/
	.venv312/bin/python -m pytest -n $(TEST_WORKERS) -q tests/unit tests/integration tests/localdev/test_local_google.py
