# The two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3.12
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export GX_ANALYTICS_ENABLED := false
# Every run, from the command line or the UI, is recorded in this one instance (`make dev` shows it).
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# One planned event per asset for a run over many partitions (docs/architecture.md, "Events").
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS := true
# Events stored in batches, one transaction each (mmm_platform/event_log.py).
export DAGSTER_EVENT_BATCH_SIZE := 1000

.PHONY: setup demo run ingest test lint dev bench clean peers

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 12), "Python 3.12 is required (see .python-version)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m mmm_platform.defs.features.project  # dbt manifest
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/local/dagster.yaml $@

demo: setup                                ## simulate the demo world and run everything on it
	$(BIN)/mmm-platform demo

run: setup                                 ## run everything on what is new in the landing zone
	$(BIN)/mmm-platform run

ingest: setup                              ## load what is new in the landing zone, with the data-quality checks
	$(BIN)/mmm-platform ingest

# two workers (pytest-xdist), each test file whole on one of them: a file's module fixtures (a
# fitted world, a running webserver) are built once, and each worker has its own dbt target folder
test: setup                                ## the test suite
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

dev: setup $(DAGSTER_HOME)/dagster.yaml    ## the Dagster UI on http://localhost:3000, with the daemon (sensor, schedule, queue)
	$(BIN)/dagster-daemon run -w workspace.yaml & daemon=$$!; \
	trap 'kill $$daemon 2>/dev/null' EXIT INT TERM; \
	$(BIN)/dagster-webserver -w workspace.yaml -h 127.0.0.1 -p 3000

bench: setup                               ## platform figures through the CLI (bench/platform.py)
	$(BIN)/python bench/platform.py

# The backtest's peers (docs/validation.md): LightweightMMM and Robyn, each in its own environment
# under .venv-peers/ (a subprocess runs them), every package pinned in peers/<name>/requirements.txt.
PEER_PYTHON ?= python3.11
PEERS_DIR := .venv-peers
peers: $(PEERS_DIR)/lightweight_mmm/.installed $(PEERS_DIR)/robyn/.installed  ## build the peers' environments

$(PEERS_DIR)/%/.installed: peers/%/requirements.txt
	@if [ "$*" = robyn ] && ! Rscript -e 'library(glmnet)' >/dev/null 2>&1; then \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends r-base-core r-cran-glmnet'; fi
	rm -rf $(PEERS_DIR)/$*
	$(PEER_PYTHON) -m venv $(PEERS_DIR)/$*
	$(PEERS_DIR)/$*/bin/python -m pip install -q --upgrade pip
	RPY2_CFFI_MODE=ABI $(PEERS_DIR)/$*/bin/python -m pip install -q --no-deps -r peers/$*/requirements.txt
	@touch $@

clean:
	rm -rf $(VENV) $(PEERS_DIR) data .dagster_home dbt_project/target
