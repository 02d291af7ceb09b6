# restartguard — developer entry points. `make test` works on a fresh machine:
# it creates .venv, installs the project with its test extras, fetches the Debian
# prometheus/alertmanager binaries into .tools/, then runs ruff, mypy and pytest.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/.tools/usr/bin:$(CURDIR)/$(BIN):$(PATH)

.PHONY: test lint typecheck pytest tools venv demo bench clean

test: venv tools lint typecheck pytest

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

tools: .tools/usr/bin/promtool

.tools/usr/bin/promtool: scripts/fetch-tools.sh
	scripts/fetch-tools.sh
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv tools
	$(BIN)/pytest -q

demo: venv tools
	$(BIN)/python -m lab.demo

bench: venv tools
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
