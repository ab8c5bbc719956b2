# Docstore: `make run` serves the API, `make test` runs every check. Both install
# what is missing first (a virtualenv in .venv, pinned by requirements.lock).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run test lint format admin seed openapi bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is needed as $(PYTHON); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint requirements.lock --editable ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies

run: $(STAMP) ## Serve the API on HOST:PORT (embedded database unless MONGODB_URL is set)
	$(PY) -m app

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check app tests scripts bench
	$(VENV)/bin/ruff format --check app tests scripts bench
	$(VENV)/bin/mypy app scripts

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix app tests scripts bench
	$(VENV)/bin/ruff format app tests scripts bench

test: lint ## Lint, then run the whole test suite
	$(PY) -m pytest

admin: $(STAMP) ## Create or promote an admin: make admin EMAIL=a@b.c PASSWORD=...
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com PASSWORD=..."; exit 2; }
	$(PY) -m scripts.create_admin --email "$(EMAIL)" $(if $(PASSWORD),--password "$(PASSWORD)",)

lock: ## Re-pin requirements.lock from pyproject.toml in a scratch venv
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet ".[dev]"
	.lock-venv/bin/pip freeze --exclude-editable | grep -iv '^docstore' > requirements.lock
	rm -rf .lock-venv

clean: ## Remove the virtualenv and caches (keeps .data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

seed: $(STAMP) ## Load the demo data (fixtures/demo) idempotently; FILES=... for your own
	$(PY) -m scripts.seed $(FILES)

openapi: $(STAMP) ## Regenerate the committed API contract, openapi.json
	$(PY) -m scripts.openapi

bench: $(STAMP) ## Benchmarks: API vs raw driver on the same database (~2 min); see bench/
	$(PY) -m bench.run
