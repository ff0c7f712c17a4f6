# Quick start: `make demo` runs the hub on the bundled demo data; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000

.PHONY: demo test lint bench clean

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	@echo "make: creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.python-ok
	@echo "make: installing the hub into $(VENV) (a minute or so the first time)"
	@$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.python-ok
	@echo "make: installing the hub and its test tools into $(VENV) (a minute or so the first time)"
	@$(BIN)/pip install --quiet -e '.[test,lint,serve]'
	@touch $@ $(VENV)/.installed

# The softphone's Voice SDK: fetched from the npm registry, its integrity checked (no Node
# needed). Without it the console still pops, and says that the softphone is unavailable.
demo: $(VENV)/.installed
	-@$(BIN)/cahub voice-sdk
	@$(BIN)/cahub demo --port $(PORT)

test: $(VENV)/.installed-dev
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.webhook

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
