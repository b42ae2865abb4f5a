# The README's two commands: `make demo` and `make test`. Everything else here serves them.
# Nothing needs to be installed by hand: the virtual environment and the local servers come from
# pyproject.toml (extras `stack` and `dev`).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
CLIENTS_STAMP := tests/node_modules/.installed

.PHONY: demo test test-unit test-clients lint readme bench stack-up stack-down stack-status clean

## make demo: local stack + worker + sample events, and where they landed
demo: $(STAMP)
	$(BIN)/sluice demo

## make test: the import contracts, then every test suite (unit, integration, e2e) against the
## local stack it starts itself
test: $(STAMP) $(CLIENTS_STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check worker tests bench
	$(BIN)/lint-imports

## make test-clients: the real clients of the tracking API's e2e tests that are not Python
## packages: Segment's JavaScript libraries (pinned in tests/package-lock.json) and Debian's
## chromium for analytics.js (apt-get needs root: CI runs as root; elsewhere install it once by
## hand, or the browser test says what is missing; under CI=true it fails instead of skipping)
test-clients: $(CLIENTS_STAMP)

$(CLIENTS_STAMP): tests/package.json tests/package-lock.json
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "chromium is missing: apt-get install chromium (as root) for the browser test"; fi; }
	cd tests && npm ci --no-audit --no-fund --silent
	touch $(CLIENTS_STAMP)

## make bench: Sluice vs Quix Streams vs a raw baseline on the local stack (a few minutes)
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## make readme: regenerate the README's settings table from the settings model
readme: $(STAMP)
	$(BIN)/sluice settings --update-readme README.md

stack-up: $(STAMP)
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
