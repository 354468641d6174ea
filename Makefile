# One virtualenv for the program, the CLI and the tests; checkov gets its own (it pins old packages).
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
CHECKOV   := .venv-checkov/bin/checkov
STACK     ?= dev
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv plan test lint bench docs clean

$(BIN)/llmops: requirements.txt requirements-test.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-test.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(CHECKOV): requirements-checkov.txt
	$(PY) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q -r requirements-checkov.txt
	touch $@

venv: $(BIN)/llmops $(CHECKOV)

plan: $(BIN)/llmops  ## offline plan of a stack (STACK=dev by default)
	$(BIN)/llmops plan $(STACK)

test: venv  ## the whole test suite, with lint
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(BIN)/llmops
	$(BIN)/ruff check .

bench: $(BIN)/llmops  ## benchmarks: offline plan time, spend aggregator vs DuckDB
	$(BIN)/pip install -q -r requirements-bench.txt
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/aggregator.py --records 0.2

docs: $(BIN)/llmops  ## regenerate the README's settings table from the models
	$(BIN)/python -m llmops.settings.reference --write README.md

clean:
	rm -rf build .pytest_cache
