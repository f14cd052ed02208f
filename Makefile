# Two commands for a new machine: `make run` and `make test`. Both create and reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8050

.PHONY: run test test-fast lint imports typecheck check bench clean help

help:
	@echo "make run    set up .venv and start the dashboard on the simulated operator (http://127.0.0.1:$(PORT))"
	@echo "make test   set up .venv with test extras, lint, check the import contracts, type-check and run every test"
	@echo "make test-fast   the quick loop: lint, import contracts and every test not marked slow"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/vantage run --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

imports: $(STAMP)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Tests not marked slow on two workers, then the slow ones (whole-product runs, process kills,
# timing) on two workers a file each, so a module's servers and stores are built once, then the
# tests marked serial in one process (schemathesis gives each generated operation the same node id,
# which pytest-xdist would run only once).
test: $(STAMP) lint imports typecheck
	$(BIN)/python -m pytest -m "not slow and not serial" -n 2
	$(BIN)/python -m pytest -m "slow and not serial" -n 2 --dist loadfile
	$(BIN)/python -m pytest -m serial

test-fast: $(STAMP) lint imports
	$(BIN)/python -m pytest -m "not slow and not serial" -q -n 2

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/queue.py --subscribers 100000

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
