# Two commands do all the setup: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0

.PHONY: lab test setup system browser lint unit integration notebooks bench down clean

setup: system $(STAMP)

system:
	@$(PYTHON) labkit/workbook/bootstrap.py

browser:
	@$(PYTHON) labkit/workbook/bootstrap.py --browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The sandbox, then JupyterLab on 127.0.0.1 (root too); prints the link with its token.
lab: setup
	$(BIN)/python -m labkit.workbook.lab --notebook-dir=notebooks

lint: setup
	$(BIN)/ruff check labkit tests benchmarks
	$(BIN)/ruff format --check labkit tests benchmarks

PYTEST := $(BIN)/pytest -q -p no:cacheprovider
# Every core, at most four workers (an integration worker runs a sandbox of its own). tests/support/scheduling.py
# keeps each integration module on one worker (its tests share the module's lab) and spreads the other tests.
CORES := -n auto --maxprocesses 4

# The fast half: in-process moto (each worker has its own).
unit: setup
	$(PYTEST) -m "not integration" $(CORES) tests

# A real sandbox per worker, each in its own temporary LABKIT home.
integration: setup browser
	$(PYTEST) -m integration $(CORES) tests

# The nbval setup and sanitizer live in tests/notebooks/, out of the learner's file browser.
NBVAL := PYTHONPATH=tests/notebooks $(PYTEST) -p nbval_setup --nbval --nbval-current-env \
	--nbval-sanitize-with=tests/notebooks/sanitize.cfg notebooks
notebooks: setup
	$(NBVAL)

# What CI runs (.ci/run). The unit and integration tests in one run, so no core waits for the slowest test of one
# half before the other half starts; the notebooks beside them, on their own sandbox (they wait on the sandbox
# about half of the time), their output printed after the rest.
NOTEBOOKS_LOG := $(VENV)/notebooks.log
test: lint browser
	$(NBVAL) >$(NOTEBOOKS_LOG) 2>&1 & notebooks=$$!; \
	$(PYTEST) $(CORES) --durations=15 tests; tests=$$?; \
	wait $$notebooks; notebooks=$$?; \
	echo "--- make notebooks (ran alongside) ---"; cat $(NOTEBOOKS_LOG); \
	exit $$(( tests || notebooks ))

bench: setup
	$(BIN)/python benchmarks/sandbox_startup.py
	$(BIN)/python benchmarks/tunnel_latency.py
	$(BIN)/python benchmarks/bench_reference.py
	$(BIN)/python benchmarks/tunnel_cost.py
	$(BIN)/python benchmarks/sandbox_durability.py

down:
	-$(BIN)/labkit sandbox down

clean: down
	rm -rf $(VENV) .labkit
