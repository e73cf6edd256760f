# The two commands of the README:  make demo  and  make test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'

# A real workflow on the embedded default: local pools, spool ./map_sum.farm
demo: $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	cd examples && ../$(BIN)/python map_sum.py
	$(BIN)/farm status examples/map_sum.farm

lint: install
	$(BIN)/ruff check farm tests examples benchmarks

test: install lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) *.egg-info examples/*.farm
