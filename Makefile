# The compendium's two commands (README): `make reports` runs the whole analysis,
# `make test` runs every test. Both create the virtual environment when it is missing,
# install the exact pinned versions of requirements.lock and register the Jupyter kernel.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.esi-installed
PIP_VERSION := 26.3
export MPLCONFIGDIR ?= $(CURDIR)/.venv/mplconfig
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: setup reports reference test lint data-dictionary environment bench clean

setup: $(STAMP)

# pip's own lines are shown as progress, less the noise of this machine's pip configuration
PIP_NOISE := is ignored: it is neither a file nor a directory|^Requirement already satisfied|^Looking in
$(STAMP): requirements.lock pyproject.toml
	@echo "esi set-up 1/4: virtual environment $(VENV) (Python: $(PYTHON))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	@echo "esi set-up 2/4: the $$(grep -c '==' requirements.lock) exact versions of requirements.lock (about 2 minutes on a fresh machine)"
	@set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off \
		-r requirements.lock 2>&1 | { grep -v -E "$(PIP_NOISE)" || true; }
	@echo "esi set-up 3/4: the esi package (editable)"
	@PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet \
		--disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 \
		| { grep -v -E "$(PIP_NOISE)" || true; }
	@echo "esi set-up 4/4: the Jupyter kernel \"Python (esi)\""
	@$(BIN)/python -m esi.kernel
	@mkdir -p $(MPLCONFIGDIR)
	@touch $(STAMP)

## Run the whole analysis on the shipped synthetic registry: reports/default/ and reports/index.html
reports: $(STAMP)
	$(BIN)/esi run --params params/default.yaml --out reports/default

## Regenerate the reference run that nbval replays (commit the result)
reference: $(STAMP)
	$(BIN)/esi run --params params/default.yaml --out reports/reference

## Every test: lint, unit tests, and the nbval replay of the reference notebooks
test: $(STAMP)
	$(BIN)/ruff check esi tests benchmarks
	$(BIN)/pytest tests reports/reference --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval/sanitize.cfg

lint: $(STAMP)
	$(BIN)/ruff check esi tests benchmarks

## Rewrite data/README.md and environment.yml from their sources (esi/schema.py, requirements.lock)
data-dictionary: $(STAMP)
	$(BIN)/esi schema --write

environment: $(STAMP)
	$(BIN)/python -m esi.environment --write

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
