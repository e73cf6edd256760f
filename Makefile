# The two commands of the README:  make demo  and  make test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-min install lint bench bench-slowfs clean

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
	$(BIN)/ruff check farm tests examples benchmarks scripts
	$(BIN)/mypy

test: install lint test-min
	$(BIN)/python -m pytest -q --durations=25

# The tests that touch pickling and tracebacks, again on the oldest versions pyproject.toml
# allows (tests/constraints-min.txt), so that a lower bound is one that was tested.
MIN := .venv-min/bin
MIN_TESTS := tests/test_tracebacks.py tests/test_apps.py tests/test_futures.py tests/test_keys.py
$(MIN)/python:
	$(PYTHON) -m venv .venv-min
	$(MIN)/python -m pip install -q --upgrade pip

test-min: $(MIN)/python
	$(MIN)/python -m pip install -q -c tests/constraints-min.txt -e '.[test]'
	$(MIN)/python -m pip freeze --exclude-editable | sed 's/^/  min venv: /'
	$(MIN)/python -m pytest -q -p no:cacheprovider $(MIN_TESTS)

bench: install
	$(BIN)/python benchmarks/run.py

# The chain, no-op, bash and idle-pool rows with the spool on slow-metadata FUSE mounts
# (scripts/slow-fs: root, /dev/fuse), counting the requests the filesystem gets (~6 min).
bench-slowfs: install
	$(BIN)/python benchmarks/run.py --slow-fs 500,2000 --no-parsl --json bench-results-slowfs.json

clean:
	rm -rf $(VENV) .venv-min *.egg-info examples/*.farm
