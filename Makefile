# The README's two commands: `make demo` and `make test`. Everything else here serves them.
# Nothing needs to be installed by hand: the virtual environment and the local servers come from
# pyproject.toml (extras `stack` and `dev`).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
CLIENTS_STAMP := tests/node_modules/.installed

.PHONY: demo test test-unit test-clients lint readme bench stack-up stack-down stack-status clean \
	promtool browser postgres

## make demo: local stack + worker + sample events, and where they landed
demo: $(STAMP) postgres
	$(BIN)/sluice demo

## make test: the import contracts, then every test suite (unit, integration, e2e) against the
## local stack it starts itself
test: $(STAMP) promtool browser postgres $(CLIENTS_STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) promtool
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## Tools from Debian's packages that tests need, installed only when missing (as root, as CI runs).
## promtool (package prometheus): tests/unit/test_prometheus_rules.py checks and unit-tests the
## rules of deploy/prometheus/ (about 11 s to install from a warm package cache, 19 MB download).
promtool:
	command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends prometheus; }

## chromium: the tests that open pages in headless Chromium (driven by playwright, dev extra).
browser:
	test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium; }

## postgres (Debian's postgresql): the local stack's Iceberg SQL catalog (worker/local/postgres.py);
## `sluice stack up` runs a private cluster of its own on loopback, never the system's.
postgres:
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }

lint: $(STAMP)
	$(BIN)/ruff check worker tests bench
	$(BIN)/lint-imports

## make test-clients: Segment's JavaScript libraries, real clients of the tracking API's e2e tests
## (pinned in tests/package-lock.json, installed with npm ci); the browser they and analytics.js
## need is `browser`'s chromium
test-clients: $(CLIENTS_STAMP)

$(CLIENTS_STAMP): tests/package.json tests/package-lock.json
	cd tests && npm ci --no-audit --no-fund --silent
	touch $(CLIENTS_STAMP)

## make bench: Sluice vs Quix Streams vs a raw baseline on the local stack, then one worker's
## GIL time per event by stage under py-spy (bench/gil_profile.py); about 20 minutes
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.gil_profile

## make readme: regenerate the README's settings table from the settings model
readme: $(STAMP)
	$(BIN)/sluice settings --update-readme README.md

stack-up: $(STAMP) postgres
	$(BIN)/sluice stack up
stack-down: $(STAMP)
	$(BIN)/sluice stack down
stack-status: $(STAMP)
	$(BIN)/sluice stack status

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

clean:
	-test -x $(BIN)/sluice && $(BIN)/sluice stack down
	rm -rf $(VENV) .sluice
