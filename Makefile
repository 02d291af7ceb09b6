# restartguard — developer entry points. `make test` works on a fresh machine:
# it creates .venv, installs the project with its test extras, fetches the Debian
# prometheus/alertmanager binaries into .tools/, then runs ruff, mypy and pytest.
# Every target says what it is doing (==> lines); pip shows what it installs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/.tools/usr/bin:$(CURDIR)/$(BIN):$(PATH)
say = @printf '==> %s\n' $(1)

.PHONY: test lint typecheck pytest tools venv demo bench clean

test: venv tools lint typecheck pytest
	$(call say,"make test: all checks passed")

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(call say,"creating the virtual environment $(VENV) with $(PYTHON)")
	$(PYTHON) -m venv $(VENV)
	$(call say,"upgrading pip in $(VENV)")
	$(BIN)/pip install --progress-bar off --upgrade pip
	$(call say,"installing restartguard (editable) with its test extras into $(VENV): this takes a minute or two")
	$(BIN)/pip install --progress-bar off -e '.[test]'
	touch $@
	$(call say,"$(VENV) is ready: export PATH=$(CURDIR)/$(BIN):\$$PATH")

tools: .tools/usr/bin/promtool

.tools/usr/bin/promtool: scripts/fetch-tools.sh
	$(call say,"fetching the Debian prometheus and alertmanager binaries into .tools/")
	scripts/fetch-tools.sh
	touch $@

lint: venv
	$(call say,"lint: ruff check and ruff format --check")
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(call say,"typecheck: mypy")
	$(BIN)/mypy

pytest: venv tools
	$(call say,"tests: pytest (the end-to-end test runs real Prometheus and Alertmanager, about 3 minutes)")
	$(BIN)/pytest -q

demo: venv tools
	$(call say,"demo: the whole loop on this machine; it runs until Ctrl-C (see: $(BIN)/python -m lab.demo --help)")
	$(BIN)/python -m lab.demo $(DEMO_ARGS)

bench: venv tools
	$(call say,"bench: benchmarks (numbers are printed; see docs/performance.md)")
	$(BIN)/python -m bench.run_all

clean:
	$(call say,"removing $(VENV) .tools and the tool caches")
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
