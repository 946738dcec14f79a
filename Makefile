# mmrag — two commands: `make serve` (local service) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_MODELS := $(abspath ../shared/models)
export MMRAG_API_KEYS ?= dev-key=default

.PHONY: install serve test lint bench-ingest bench-cold bench-cold-built invoke acceptance eval clean sam-build python313

# The AWS build: python3.13 (the functions' runtime; sam build needs it on PATH) from PATH or pyenv's versions, and a
# tools venv made with it (.venv-sam: the SAM CLI and moto, infra/requirements-sam.txt), whose bin/ goes on PATH.
SAM_VENV ?= .venv-sam
SAM_ENV := PATH=$(abspath $(SAM_VENV))/bin:$$PATH SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
PYTHON313 ?= $(shell for p in python3.13 $$(ls -1d $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do \
  "$$p" -c 'import sys, sysconfig; assert sys.version_info[:2] == (3, 13) and not sysconfig.get_config_var("Py_GIL_DISABLED"); print(sys.executable)' 2>/dev/null && break; done)

$(BIN)/mmrag: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,aws,dev]'
	touch $(BIN)/mmrag

install: $(BIN)/mmrag

# make serve HOST=0.0.0.0 PORT=9000; otherwise MMRAG_HOST / MMRAG_PORT, else 127.0.0.1:8000. Only a HOST given on the
# command line counts: some shells export HOST as the machine's name. mmrag serve prints the address it listens on.
serve: install
	@echo "API key(s) from MMRAG_API_KEYS: $$MMRAG_API_KEYS"
	$(BIN)/mmrag serve $(if $(filter command line,$(origin HOST)),--host $(HOST)) $(if $(filter command line,$(origin PORT)),--port $(PORT))

test: install
	$(BIN)/ruff check shared tests bench scripts functions layers
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m pytest -q

.PHONY: test-core
test-core: install  # the core (search, answers, ingestion) on the in-memory fakes of tests/fakes: seconds, no model
	$(BIN)/python -m pytest -q tests/core

.PHONY: openapi fuzz
openapi: install  # shared/mmrag/api/openapi.json from the app's routes (tests/api/test_openapi.py fails while it is stale)
	$(BIN)/python -m mmrag.api.openapi_file --write shared/mmrag/api/openapi.json

fuzz: install  # Schemathesis against mmrag serve on loopback, from its /openapi.json (FUZZ_ARGS="--max-examples 200")
	MMRAG_MODEL_DIR=$${MMRAG_MODEL_DIR:-$(SHARED_MODELS)} $(BIN)/python scripts/fuzz_api.py $(FUZZ_ARGS)

acceptance: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest ../shared/acceptance -q

eval: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python ../shared/eval/run_eval.py --serve "mmrag serve"

bench-ingest: install
	MMRAG_MODEL_DIR=$${MMRAG_MODEL_DIR:-$(SHARED_MODELS)} $(BIN)/python bench/ingest_bench.py

invoke: install  # make invoke FN=SearchFunction EVENT=events/search_text.json [ARGS=--seed]
	$(BIN)/python -m mmrag_dev.invoke $(FN) $(EVENT) $(ARGS)

bench-cold: install
	$(BIN)/python bench/cold_import_bench.py

python313:  # prints the python3.13 the AWS build uses; fails if there is none
	@test -n "$(PYTHON313)" || { echo "python3.13 not found (on PATH or in ~/.pyenv/versions/3.13*): the AWS build needs it" >&2; exit 1; }
	@echo "$(PYTHON313)"

$(SAM_VENV)/bin/sam: infra/requirements-sam.txt
	@$(MAKE) -s python313 >/dev/null
	$(PYTHON313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r infra/requirements-sam.txt
	touch $@

sam-build: $(SAM_VENV)/bin/sam  # sam validate --lint, sam build (no Docker), then every function's size and imports
	$(SAM_ENV) sam validate --lint
	$(SAM_ENV) sam build --parallel
	$(SAM_ENV) python scripts/check_build.py

bench-cold-built: $(SAM_VENV)/bin/sam  # after make sam-build: cold imports of the built functions, python3.13
	$(SAM_ENV) python bench/cold_import_bench.py --built

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .mmrag .pytest_cache .ruff_cache
