# mmrag — two commands: `make serve` (local service) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_MODELS := $(abspath ../shared/models)
export MMRAG_API_KEYS ?= dev-key=default

.PHONY: install serve test lint bench-ingest bench-cold invoke acceptance eval clean

$(BIN)/mmrag: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,aws,dev]'
	touch $(BIN)/mmrag

install: $(BIN)/mmrag

serve: install
	@echo "mmrag on http://127.0.0.1:8000 — API key(s): $$MMRAG_API_KEYS"
	$(BIN)/mmrag serve

test: install
	$(BIN)/ruff check shared tests bench scripts functions
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m pytest -q

.PHONY: test-core
test-core: install  # the core (search, answers, ingestion) on the in-memory fakes of tests/fakes: seconds, no model
	$(BIN)/python -m pytest -q tests/core

acceptance: install
	$(BIN)/python -m pytest ../shared/acceptance -q

eval: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python ../shared/eval/run_eval.py --serve "mmrag serve"

bench-ingest: install
	MMRAG_MODEL_DIR=$${MMRAG_MODEL_DIR:-$(SHARED_MODELS)} $(BIN)/python bench/ingest_bench.py

invoke: install  # make invoke FN=SearchFunction EVENT=events/search_text.json [ARGS=--seed]
	$(BIN)/python -m mmrag_dev.invoke $(FN) $(EVENT) $(ARGS)

bench-cold: install
	$(BIN)/python bench/cold_import_bench.py

clean:
	rm -rf $(VENV) .mmrag .pytest_cache .ruff_cache
