# Two commands do all the setup: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0

.PHONY: lab test setup system browser lint unit integration notebooks bench down clean hub hub-setup test-hub-venv

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

# The sandbox, then JupyterLab on 127.0.0.1 (root too) on the learner's copies of the notebooks (made in the
# labkit home where missing, never overwritten); prints the link with its token.
lab: setup
	$(BIN)/python -m labkit.workbook.lab

# A class on this machine (as root): JupyterHub on http://127.0.0.1:8000/, each learner's server as their own
# system account (`labkit class hub-learners create`); HUB_FLAGS="--ip 0.0.0.0" listens on every address.
# hub-setup makes the hub's venv (deploy/jupyterhub/venv), Node >= 20 and the proxy from npm.
hub-setup: setup
	$(BIN)/python -m labkit.hub.setup

hub: hub-setup
	deploy/jupyterhub/venv/bin/python -m labkit.hub.launch $(HUB_FLAGS)

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
# about half of the time), their output printed after the rest. The hub's venv is made first, as setup (the hub
# test makes it otherwise, and says why when it cannot).
NOTEBOOKS_LOG := $(VENV)/notebooks.log
test: lint browser test-hub-venv
	$(NBVAL) >$(NOTEBOOKS_LOG) 2>&1 & notebooks=$$!; \
	$(PYTEST) $(CORES) --durations=15 tests; tests=$$?; \
	wait $$notebooks; notebooks=$$?; \
	echo "--- make notebooks (ran alongside) ---"; cat $(NOTEBOOKS_LOG); \
	exit $$(( tests || notebooks ))

test-hub-venv: setup
	@$(BIN)/python -m labkit.hub.setup >$(VENV)/hub-setup.log 2>&1 || \
		echo "make hub-setup failed (see $(VENV)/hub-setup.log); the hub test will say why"

bench: setup
	$(BIN)/python benchmarks/sandbox_startup.py
	$(BIN)/python benchmarks/lab_apply.py
	$(BIN)/python benchmarks/tunnel_latency.py
	$(BIN)/python benchmarks/tunnel_latency.py --engine aurora-postgresql
	$(BIN)/python benchmarks/bench_reference.py
	$(BIN)/python benchmarks/bench_reference.py --engine aurora-postgresql
	$(BIN)/python benchmarks/tunnel_cost.py
	$(BIN)/python benchmarks/sandbox_durability.py
	$(BIN)/python benchmarks/failover_lab.py

down:
	-$(BIN)/labkit sandbox down

clean: down
	rm -rf $(VENV) .labkit
