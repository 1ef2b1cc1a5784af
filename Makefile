# cachewarm: the two commands are `make demo` and `make test`. Each runs `setup` itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup demo up test test-fast bench synth lint clean redis-server chromium

# $(call apt_ensure,command,package): install Debian's package when the command is missing.
define apt_ensure
	@command -v $(1) >/dev/null || { \
	  echo "$(1) is missing; installing Debian's $(2)"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; }
	@command -v $(1) >/dev/null || { echo "could not install $(2)" >&2; exit 1; }
endef

setup: $(PY_STAMP) $(NODE_STAMP) redis-server ## idempotent: .venv, Node deps, redis-server

# constraints.txt pins every package at the version the tests ran on (the Dockerfile installs with it too).
$(PY_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,infra]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

redis-server:
	$(call apt_ensure,redis-server,redis-server)

chromium: ## Debian's chromium, driven headless by the Flower browser test (Playwright, no browser download)
	$(call apt_ensure,chromium,chromium)

demo: setup ## the whole system on the embedded local stack, then stop it
	$(BIN)/cachewarm demo

up: setup ## local stack + Procfile processes in the foreground (Ctrl-C stops all)
	$(BIN)/cachewarm stack up

test: setup chromium ## lint, layer contract, unit and integration tests (real redis-server, dynalite, celery)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: setup ## unit tests only, without the ones marked slow (under 30 s)
	$(BIN)/pytest tests/unit -m "not slow"

bench: setup ## engineering benchmarks -> reports/benchmarks.json
	$(BIN)/python -m benchmarks

synth: setup ## offline CDK synth -> infra/cdk.out
	cd infra && npx cdk synth

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf .run infra/cdk.out .pytest_cache .ruff_cache
