# skaha-emulator: `make up` sets up and starts the platform; `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
EMULATE := $(VENV)/bin/emulate
PYTHON ?= python3
BUNDLE ?= $(EMULATE_BUNDLE)
BUNDLE_WHEELS := $(VENV)/bundle-wheels

.PHONY: help venv images offline up down check test test-fast test-engines test-portal2 bench clean

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

# With no network at all: the venv from the bundle's wheels (pip's no-index mode; the standard library
# takes them out), then its images and profiles. An existing venv is kept.
offline: ## set up from BUNDLE=FILE with no network: venv from its wheels, its images and profiles (BUNDLE_KEY=KEYFILE: verify its signature first)
	@test -n "$(BUNDLE)" || { echo "make offline needs BUNDLE=FILE (made with: emulate bundle create FILE)"; exit 2; }
	@if [ ! -x $(EMULATE) ]; then \
	  $(PYTHON) -m emulator.bundle wheels "$(BUNDLE)" $(BUNDLE_WHEELS) $(if $(BUNDLE_KEY),--verify "$(BUNDLE_KEY)") && \
	  $(PYTHON) -m venv $(VENV) && \
	  $(VENV)/bin/pip install -q --no-index --find-links $(BUNDLE_WHEELS) --upgrade pip && \
	  $(VENV)/bin/pip install -q --no-index --find-links $(BUNDLE_WHEELS) -e . && \
	  rm -rf $(BUNDLE_WHEELS); \
	fi
	$(EMULATE) bundle load "$(BUNDLE)" $(if $(BUNDLE_KEY),--verify "$(BUNDLE_KEY)")

up: $(if $(strip $(BUNDLE)),offline,images) ## set up everything and start the platform (BUNDLE=FILE: from a bundle, offline)
	$(EMULATE) up

down: $(if $(wildcard $(EMULATE)),,venv) ## stop the platform (sessions and /arc survive)
	$(EMULATE) down

check: venv ## lint, format check, strict typing (code, tests, benchmarks) and the import-layer contracts
	$(VENV)/bin/ruff check emulator tests benchmarks
	$(VENV)/bin/ruff format --check emulator tests benchmarks
	$(VENV)/bin/mypy emulator tests benchmarks
	$(VENV)/bin/lint-imports

# Two workers (pytest-xdist, a file each at a time): most of a test's time is spent waiting on containers.
# The tests marked `alone` (one restarts the engine, one takes the shared images away for a while) run after
# the rest, by themselves.
TEST_WORKERS ?= 2
# EMULATE_TEST_ENGINE=podman (or podman-rootless, docker-rootless, docker): the core path on that engine
# instead of the whole suite, which runs on rootful Docker.
test: check images ## run the whole test suite (checks, then real Docker, Caddy, JupyterLab); EMULATE_TEST_ENGINE=E: the core path on engine E
ifdef EMULATE_TEST_ENGINE
	tests/engines/all.sh $(EMULATE_TEST_ENGINE)
else
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile -m "not alone and not portal2"
	$(VENV)/bin/pytest -m alone
endif

ENGINES ?= podman podman-rootless docker-rootless
test-engines: venv ## as root: the core path on each engine here (starts it, loads images, tests/engines, stops it)
	tests/engines/all.sh $(ENGINES)

test-fast: venv ## only the tests that need no Docker
	$(VENV)/bin/pytest tests/unit

# CANFAR's own Science Portal 2.0 (opencadc/science-portal, a checkout or `git archive` in SCIENCE_PORTAL_SRC),
# built once with npm into ~/.cache/skaha-emulator/portal2 and driven in Chromium against an instance of its own.
test-portal2: images ## run CANFAR's own Science Portal 2.0 against the emulator in Chromium (SCIENCE_PORTAL_SRC=DIR: its source; needs Node 20+ and npm)
	SCIENCE_PORTAL_SRC="$(SCIENCE_PORTAL_SRC)" $(VENV)/bin/pytest -m portal2 tests/portal2

bench: images ## benchmarks: launch, sign-in, pulls and bundles, idle cost, reading the access log, gateway, scale, the test kit (and its second run against its first), the CLI, the admin page and the edit-run loop, each against raw Docker
	@command -v wrk >/dev/null || { echo 'make bench drives HTTP with wrk: install it first (apt-get install wrk)'; exit 1; }
	$(PY) benchmarks/launch.py
	$(PY) benchmarks/portal.py
	$(PY) benchmarks/images.py
	$(PY) benchmarks/resources.py
	$(PY) benchmarks/activity.py
	$(PY) benchmarks/gateway.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/testkit.py
	$(PY) benchmarks/testkit_reruns.py
	$(PY) benchmarks/swarm.py
	$(PY) benchmarks/cli.py
	$(PY) benchmarks/admin_page.py
	$(PY) benchmarks/dev.py

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis
