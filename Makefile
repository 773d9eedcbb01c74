# The book's two commands. Each sets itself up from nothing: a .venv with the exact pins of
# requirements.lock and lgutils in editable mode; nothing is registered outside .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0
# No MPLBACKEND here: the notebooks' kernels inherit it, and on Agg they show no figure.

.PHONY: test book setup lab clean student assignments

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

## make test: unit tests of lgutils and every notebook with smoke parameters
test: $(STAMP)
	$(BIN)/python -m pytest

## make book: every notebook at full fidelity, then the HTML book in _build/html
book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@# the paper's claims, asserted on the full-fidelity metrics the build just wrote
	$(if $(wildcard tests/test_claims_*.py),$(BIN)/python -m pytest -q -p no:cacheprovider $(wildcard tests/test_claims_*.py))

## make student: the book without solutions (sphinx-exercise's hide_solutions), in _build/student/html
student: $(STAMP)
	$(BIN)/python scripts/student_edition.py --source . --out _build/student

## make assignments: each chapter's exercises as an nbgrader assignment, in _build/assignments
assignments: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/assignments.py --out _build/assignments

## make lab: JupyterLab from the book's environment
lab: $(STAMP)
	$(BIN)/jupyter lab chapters

clean:
	rm -rf _build
