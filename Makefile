# Every target installs what it needs into .venv first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## the product on a throwaway local PostgreSQL (Ctrl-C stops it)
	$(BIN)/streamer demo

test: $(STAMP)  ## lint, types, then the whole suite (unit + integration on PG 18 and 15)
	./scripts/system-deps.sh
	$(BIN)/ruff check streamer tests bench
	$(BIN)/ruff format --check streamer tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## unit tests only: no database, seconds
	$(BIN)/python -m pytest -m "not integration and not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

bench: $(STAMP)  ## benchmark suite on throwaway clusters (minutes); BENCH_ARGS=--quick to smoke-test
	$(BIN)/python -m bench $(BENCH_ARGS)
