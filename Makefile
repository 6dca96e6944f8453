# skaha-emulator: `make up` sets up and starts the platform; `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
EMULATE := $(VENV)/bin/emulate
PYTHON ?= python3

.PHONY: help venv images up down check test test-fast bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed ## create .venv and install the package with its test tools

images: venv ## build every image recipe (base made offline when no registry answers)
	$(EMULATE) images build

up: images ## set up everything and start the platform; prints the URL and how to get the token
	$(EMULATE) up

down: venv ## stop the platform (sessions and /arc survive)
	$(EMULATE) down

check: venv ## lint, format check, strict typing and the import-layer contracts
	$(VENV)/bin/ruff check emulator tests benchmarks
	$(VENV)/bin/ruff format --check emulator tests benchmarks
	$(VENV)/bin/mypy emulator
	$(VENV)/bin/lint-imports

test: check images ## run the whole test suite (checks, then real Docker, Caddy, JupyterLab)
	$(VENV)/bin/pytest

test-fast: venv ## only the tests that need no Docker
	$(VENV)/bin/pytest tests/unit

bench: images ## benchmarks: launch-to-ready vs raw docker run; sign-in's costs at the gateway and portal
	$(PY) benchmarks/launch.py
	$(PY) benchmarks/portal.py

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis
