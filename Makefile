# One virtualenv for the program, the CLI and the tests; checkov gets its own (it pins old packages).
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
CHECKOV   := .venv-checkov/bin/checkov
STACK     ?= dev
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv lambda-deps exporter-deps plan test lint bench docs clean

$(BIN)/llmops: requirements.txt requirements-test.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-test.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(CHECKOV): requirements-checkov.txt
	$(PY) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q -r requirements-checkov.txt
	touch $@

# Third-party packages a Lambda needs (lambdas/<name>/requirements.txt, hash-pinned), built for
# the Lambda's platform (components/cost_alarms.py RUNTIME) into build/lambda-deps/<name>, which
# the program zips with the handler. The copied requirements file marks the build as current.
LAMBDA_PLATFORM := --platform manylinux2014_aarch64 --implementation cp --python-version 3.13 --only-binary=:all:
LAMBDA_DEPS     := $(patsubst lambdas/%/requirements.txt,build/lambda-deps/%/requirements.txt,$(wildcard lambdas/*/requirements.txt))

build/lambda-deps/%/requirements.txt: lambdas/%/requirements.txt $(BIN)/llmops
	rm -rf $(@D)
	$(BIN)/pip install -q --require-hashes --no-compile $(LAMBDA_PLATFORM) --target $(@D) -r $<
	cp $< $@

lambda-deps: $(LAMBDA_DEPS)

# The retrieval freshness exporter's packages (requirements-exporter.txt, hash-pinned) for the
# pod's python:3.13 image on each CPU architecture a system node may have, one zip each under
# build/exporter-deps/<arch>/ (uname -m names), which the program uploads and the pod fetches
# (components/retrieval_freshness.py). The copied requirements file marks the build as current.
EXPORTER_ARCHES := x86_64 aarch64
EXPORTER_DEPS   := $(EXPORTER_ARCHES:%=build/exporter-deps/%/requirements-exporter.txt)

build/exporter-deps/%/requirements-exporter.txt: requirements-exporter.txt $(BIN)/llmops
	rm -rf $(@D)
	$(BIN)/pip install -q --require-hashes --no-compile --only-binary=:all: --implementation cp \
		--python-version 3.13 --platform manylinux_2_28_$* --platform manylinux2014_$* --target $(@D)/site -r $<
	$(BIN)/python -m components.retrieval_freshness $(@D)/site $(@D)/deps.zip
	rm -rf $(@D)/site
	cp $< $@

exporter-deps: $(EXPORTER_DEPS)

venv: $(BIN)/llmops $(CHECKOV) lambda-deps exporter-deps

plan: $(BIN)/llmops lambda-deps exporter-deps  ## offline plan of a stack (STACK=dev by default)
	$(BIN)/llmops plan $(STACK)

test: venv  ## the whole test suite, with lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(BIN)/llmops
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/llmops exporter-deps  ## benchmarks: offline plan time, spend aggregator vs DuckDB, system pods' memory
	$(BIN)/pip install -q -r requirements-bench.txt
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/aggregator.py --records 0.2
	$(BIN)/llmops plan dev > /dev/null
	$(BIN)/python bench/system_memory.py --stack dev

docs: $(BIN)/llmops  ## regenerate the settings tables (README, docs/teams.md) from the models
	$(BIN)/python -m llmops.settings.reference --write README.md docs/teams.md

clean:
	rm -rf build .pytest_cache
