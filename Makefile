# minidiff: two commands do all the set-up on a fresh machine.
#   make test   create .venv if needed, install .[dev], run lint, unit tests, the chapters (nbval) and browser tests
#   make book   create .venv if needed, install .[book], execute every chapter in full mode, build the HTML book
#   make lab    JupyterLab on tutorials/
# On a machine without CUDA the CPU build torch==2.13.0 is installed (an unpinned torch would pull several GB of
# CUDA libraries). A torch already present in the venv is kept; VENV_FLAGS=--system-site-packages reuses the
# system's torch (a GPU user's) instead of installing one.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
BIN := $(VENV)/bin
CPU_TORCH := torch==2.13.0
PYTEST_ARGS ?=
JOBS ?= 2

.PHONY: test book lab lint format unit chapters browser-deps venv clean help

help:
	@sed -n '2,7p' Makefile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.stamp-torch: | $(BIN)/python
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
	  echo "keeping the installed torch $$($(BIN)/python -c 'import torch; print(torch.__version__)')"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/python -m pip install -q torch; \
	else \
	  $(BIN)/python -m pip install -q $(CPU_TORCH); \
	fi
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml $(VENV)/.stamp-torch
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

$(VENV)/.stamp-book: pyproject.toml $(VENV)/.stamp-torch
	$(BIN)/python -m pip install -q -e '.[book]'
	@touch $@

venv: $(VENV)/.stamp-dev

# Chromium for the browser tests (and npm, with which the book vendors its JavaScript), installed with apt where
# missing and we are root (CI and our machines).
browser-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "could not install$$missing with apt; the browser tests will report it"; \
	fi

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.stamp-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Unit tests, the chapters under nbval (fast mode, lax, with the cells marked NBVAL_CHECK_OUTPUT compared) and
# the browser tests, in one pytest run spread over $(JOBS) workers; --dist loadfile keeps a notebook on one worker.
# Widgets show their static face (MINIDIFF_WIDGETS=static): a FigureWidget's state is useless under nbval.
# One thread per worker (OMP_NUM_THREADS=1): two workers on two cores, and toy models gain nothing from more.
# Under CI=true a missing chromium fails the browser tests instead of skipping them. The book's browser test
# builds a small book, hence the book extra.
test: $(VENV)/.stamp-dev $(VENV)/.stamp-book browser-deps lint
	MINIDIFF_FAST=1 MINIDIFF_WIDGETS=static OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) --dist loadfile \
	  --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  tests tutorials $(PYTEST_ARGS)

unit: $(VENV)/.stamp-dev
	MINIDIFF_FAST=1 $(BIN)/python -m pytest -n $(JOBS) tests $(PYTEST_ARGS)

chapters: $(VENV)/.stamp-dev
	MINIDIFF_FAST=1 MINIDIFF_WIDGETS=static $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax \
	  --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg tutorials $(PYTEST_ARGS)

# Executes the chapters in full mode (unchanged ones come from a cache), builds book/_build/html with Jupyter Book 1
# and prints the site's size. Needs npm once, to vendor MathJax, require.js and the ipywidgets renderer.
# BOOK_ARGS=--execute-in-place also writes the full-mode outputs back into tutorials/ for committing.
BOOK_ARGS ?=
book: $(VENV)/.stamp-book
	$(BIN)/python book/build.py --jobs $(JOBS) $(BOOK_ARGS)

lab: $(VENV)/.stamp-dev
	$(BIN)/jupyter lab tutorials/

clean:
	rm -rf book/_build .pytest_cache .ruff_cache
