# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/keel: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(BIN)/keel
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(BIN)/keel
	$(BIN)/keel demo --path demo-workspace

test: $(VENV)/.dev
	$(BIN)/python -m compileall -q src  # bytecode once: the tests start hundreds of keel processes
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

bench: $(BIN)/keel
	$(BIN)/python benchmarks/tables.py

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache
