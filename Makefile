# Docstore: `make run` serves the API, `make test` runs every check. Both install
# what is missing first (a virtualenv in .venv, pinned, with hashes, by requirements-dev.lock).

VENV ?= .venv
# The interpreter of .venv (3.11+): PYTHON=... when given (command line or environment),
# else the one that built .venv (named in .venv/.built-with), else the system's
# /usr/bin/python3 when it is 3.11 or newer, else python3 from PATH. Debian's and Ubuntu's
# are built with profile-guided and link-time optimisation into a static binary; pyenv's
# default build has neither and loads libpython as a shared library: the same tests took
# 14 % less CPU on Debian's 3.11.2 than on pyenv's 3.11.7 (49 and 58 s for four files,
# alternating runs).
SYSTEM_PYTHON := /usr/bin/python3
# Arguments that make an interpreter exit 0 when it is 3.11 or newer.
IS_RECENT := -c 'import sys; sys.exit(sys.version_info < (3, 11))'
BUILT_WITH := $(shell cat $(VENV)/.built-with 2>/dev/null)
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(BUILT_WITH),$(shell $(SYSTEM_PYTHON) $(IS_RECENT) 2>/dev/null \
	&& echo $(SYSTEM_PYTHON) || echo python3))
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: rebuild-venv help install run test lint ruff format admin apikey seed export import migrate reindex audit-verify openapi clients console node-tools bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# Every package comes from requirements-dev.lock, verified against its sha256 hashes; the
# project itself is then installed editable on top, without dependencies and without a
# build sandbox (setuptools is pinned in the lock), so nothing unhashed is ever fetched.
# The installer is uv (pinned, hash-checked by pip from requirements-uv.lock): it fetches
# in parallel, about 12 s from a fresh clone where pip took 38 s. The virtualenv gets no
# pip of its own (install_uv below): ensurepip took 7 s of a fresh clone's set-up, and
# Debian's interpreter has none without python3-venv.
# Bytecode is not compiled at install (uv's --compile-bytecode took 14 s for 5,900
# modules, most never imported): `make test` writes it as the tests import (even where
# PYTHONDONTWRITEBYTECODE is set, as on CI), and the app's own imports are compiled here,
# once, for `make run`.
# $(call install_uv,VIRTUALENV,PIP ARGS): uv into a virtualenv made --without-pip, by a pip
# already here (PYTHON's, else python3's; pip >= 22.3 installs into another environment
# with --python), else by the virtualenv's own from ensurepip.
define install_uv
	@for pip in $(PYTHON) python3 ""; do \
		if [ -z "$$pip" ]; then \
			$(1)/bin/python -m ensurepip --default-pip >/dev/null || { echo "No pip to install uv" \
				"with: install python3-pip (or python3-venv), or set PYTHON to a Python with pip"; \
				exit 1; }; \
			pip=$(1)/bin/python; break; \
		fi; \
		$$pip -m pip --python $(1)/bin/python --version >/dev/null 2>&1 && break; \
	done; \
	echo "$$pip -m pip --python $(1)/bin/python install $(2)"; \
	$$pip -m pip --python $(1)/bin/python install --quiet $(2)
endef
# .venv is built again, from empty, when the lock files change or PYTHON names another
# interpreter than the one that built it.
$(STAMP): pyproject.toml requirements-dev.lock requirements-uv.lock \
		$(if $(filter $(PYTHON),$(BUILT_WITH)),,rebuild-venv)
	@$(PYTHON) $(IS_RECENT) || \
		{ echo "Python 3.11+ is needed as $(PYTHON); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv --clear --without-pip $(VENV)
	@echo "$(PYTHON)" > $(VENV)/.built-with
	$(call install_uv,$(VENV),--require-hashes --requirement requirements-uv.lock)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --require-hashes \
		--requirement requirements-dev.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --no-build-isolation --editable .
	env -u PYTHONDONTWRITEBYTECODE $(PY) -c 'import app.main, app.__main__, uvicorn, secantus.cli'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies

rebuild-venv:

run: $(STAMP) ## Serve the API on HOST:PORT (embedded database unless MONGODB_URL is set)
	$(PY) -m app

lint: ruff ## ruff (lint + format check) and mypy
	$(VENV)/bin/mypy app scripts tests bench

ruff: $(STAMP)
	$(VENV)/bin/ruff check app tests scripts bench
	$(VENV)/bin/ruff format --check app tests scripts bench

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix app tests scripts bench
	$(VENV)/bin/ruff format app tests scripts bench

# One pytest process keeps about one core busy (its app, its embedded database), so the
# suite runs in workers, a file each at a time (module fixtures build once), each worker
# with its own database server: one more worker than cores, at most five, since a worker
# often waits on a server process (on 2 cores: 174 s with 3 workers, 225 s with 2, 194 s
# with 4). TEST_WORKERS=0 runs it in one process.
CORES := $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
TEST_WORKERS ?= $(shell n=$$(( $(CORES) + 1 )); [ $$n -gt 5 ] && n=5; echo $$n)
# mypy (half a minute of one core from a cold cache) runs beside the suite, whose start
# and end leave a core idle; its report follows the suite's, and either failing fails.
# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set (as on CI): pytest then
# caches its assertion rewriting of the plugins (hypothesis, schemathesis, ...) once in
# the main process, which each worker redid (about 4 s of a core each).
MYPY_LOG := $(VENV)/mypy.log
test: ruff node-tools ## Lint, type-check and run the whole test suite
	@# The project's own bytecode too (servers and scripts the tests start import it).
	@$(PY) -m compileall -q app scripts
	@echo "mypy app scripts tests bench (beside the tests; report at the end)"
	@$(VENV)/bin/mypy app scripts tests bench > $(MYPY_LOG) 2>&1 & typing=$$!; \
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest \
		$(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder); \
	tests=$$?; wait $$typing; typed=$$?; cat $(MYPY_LOG); \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

# The pinned TypeScript tools of `make clients` and the typed-client tests, from the
# committed clients/package-lock.json (integrity-checked). Without Node those tests skip.
NODE_STAMP := clients/node_modules/.installed-stamp
$(NODE_STAMP): clients/package.json clients/package-lock.json
	npm ci --prefix clients --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

node-tools: ## Install the pinned TypeScript tools in clients/ (when Node is here)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_STAMP); \
	else echo "npm not found: the typed-client tests will skip (apt-get install nodejs npm)"; fi

clients: $(STAMP) node-tools ## Typed clients from a running server: make clients OUT=dir (DOCSTORE_URL, DOCSTORE_TOKEN)
	@test -n "$(OUT)" || { echo "usage: make clients OUT=../my-app/api  (env: DOCSTORE_URL, DOCSTORE_TOKEN)"; exit 2; }
	$(PY) -m scripts.clients --out "$(OUT)"

# The admin console (console/src) is bundled with the SDK into app/http/console_assets/console.js,
# which is committed: `make run` serves it without Node. Its types come from openapi.json,
# so run `make openapi` first when routes changed; a test fails when the bundle is stale.
console: node-tools ## Type-check and rebuild the admin console's bundle (needs Node)
	node clients/generate.mjs openapi.json console/src/contract.d.ts
	clients/node_modules/typescript-native/bin/tsc -p console/tsconfig.json
	node clients/build-console.mjs

admin: $(STAMP) ## Create or promote an admin: make admin EMAIL=a@b.c PASSWORD=...
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com PASSWORD=..."; exit 2; }
	$(PY) -m scripts.create_admin --email "$(EMAIL)" $(if $(PASSWORD),--password "$(PASSWORD)",)

apikey: $(STAMP) ## Mint an API key for an account: make apikey EMAIL=a@b.c NAME='what for' [DAYS=90]
	@test -n "$(EMAIL)" -a -n "$(NAME)" || { echo "usage: make apikey EMAIL=you@example.com NAME='nightly import' [DAYS=90]"; exit 2; }
	$(PY) -m scripts.create_api_key --email "$(EMAIL)" --name "$(NAME)" $(if $(DAYS),--days "$(DAYS)",)

# `make lock` re-pins both lock files from pyproject.toml with uv (installed, at UV_VERSION,
# into a scratch venv that is removed afterwards). Each pin carries the sha256 of every
# wheel and sdist PyPI has for that version, so the same files install on any platform
# (CI, the linux/amd64 and arm64 images, macOS); the resolution is universal (markers for
# platform-only packages) and for Python 3.11+.
#   requirements-dev.lock  what `make install` puts in .venv: the runtime dependencies, the
#                          dev and embedded extras, and setuptools (to install the project)
#   requirements.lock      runtime only, for the Docker image: resolved with
#                          requirements-dev.lock as constraints, so its pins are the same
# Existing pins are kept (uv prefers what the output file already pins); to move them:
#   make lock LOCK_FLAGS=--upgrade                       every package
#   make lock LOCK_FLAGS="--upgrade-package fastapi"     one package (and what it needs)
UV_VERSION := 0.13.9
LOCK_FLAGS ?=
# setuptools>=68 as in pyproject's [build-system] requires, read from stdin ("-").
UV_COMPILE = printf 'setuptools>=68\n' | .lock-venv/bin/uv pip compile --quiet --universal \
	--python-version 3.11 --generate-hashes --custom-compile-command 'make lock' \
	$(LOCK_FLAGS) pyproject.toml -

lock: ## Re-pin requirements-dev.lock and requirements.lock (with hashes) from pyproject.toml
	rm -rf .lock-venv && $(PYTHON) -m venv --without-pip .lock-venv
	$(call install_uv,.lock-venv,uv==$(UV_VERSION))
	$(UV_COMPILE) --extra dev --output-file requirements-dev.lock
	$(UV_COMPILE) --constraint requirements-dev.lock --output-file requirements.lock
	printf 'uv==$(UV_VERSION)\n' | .lock-venv/bin/uv pip compile --quiet --universal \
		--python-version 3.11 --generate-hashes --custom-compile-command 'make lock' \
		- --output-file requirements-uv.lock
	rm -rf .lock-venv

clean: ## Remove the virtualenv and caches (keeps .data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

seed: $(STAMP) ## Load the demo data (fixtures/demo) idempotently; FILES=... for your own
	$(PY) -m scripts.seed $(FILES)
	@$(if $(FILES),,echo "demo accounts: admin@demo.docstore / 'demo admin passphrase'; ada@demo.docstore and grace@demo.docstore / 'demo user passphrase'")

export: $(STAMP) ## Back up users, declarations and documents: make export DIR=backup/
	@test -n "$(DIR)" || { echo "usage: make export DIR=backup/   (MONGODB_DB=... picks the source)"; exit 2; }
	$(PY) -m scripts.export --all -o "$(DIR)"

migrate: $(STAMP) ## Change every document: make migrate COLLECTION=x PATCH=f.json|UPDATE=f.json [FILTER=json] [DRY_RUN=1]
	@test -n "$(COLLECTION)" -a -n "$(PATCH)$(UPDATE)" || { echo "usage: make migrate COLLECTION=notes PATCH=fix.json (or UPDATE=ops.json) [FILTER='{...}'] [DRY_RUN=1]"; exit 2; }
	$(PY) -m scripts.migrate "$(COLLECTION)" $(if $(PATCH),--patch "$(PATCH)",--update "$(UPDATE)") $(if $(FILTER),--filter '$(FILTER)',) $(if $(DRY_RUN),--dry-run,)

audit-verify: $(STAMP) ## Check the audit log against its hash chain (exit 1 when tampered with)
	$(PY) -m scripts.audit_verify

reindex: $(STAMP) ## Index a collection's stored documents for full-text search: make reindex COLLECTION=x
	@test -n "$(COLLECTION)" || { echo "usage: make reindex COLLECTION=notes"; exit 2; }
	$(PY) -m scripts.reindex "$(COLLECTION)"

import: $(STAMP) ## Restore a backup: make import DIR=backup/ (MONGODB_DB=... picks the target)
	@test -n "$(DIR)" || { echo "usage: make import DIR=backup/   (MONGODB_DB=... picks the target)"; exit 2; }
	$(PY) -m scripts.restore --all "$(DIR)"

openapi: $(STAMP) ## Regenerate the committed API contract, openapi.json
	$(PY) -m scripts.openapi

bench: $(STAMP) ## Benchmarks: API vs raw driver on the same database (~9 min on 2 cores); see bench/
	$(PY) -m bench.run
