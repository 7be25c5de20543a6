# Two commands on a fresh machine (Python 3.11+ and make):
#   make run    set up, serve a synthetic week on loopback, materialize it into ./data/lake
#   make test   set up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
WEEK ?= 2023-12-30
PYTEST_ARGS ?= -n 2

.PHONY: setup run dev test bench clean

$(BIN)/dagster: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/dagster
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Offline by default: a synthetic week served by the loopback mirror. Point
# MTA_SOURCE_URL at MTA to fetch the real file instead; WEEK=YYYY-MM-DD picks the week.
run: setup
	bash scripts/run-week.sh $(WEEK)

dev: setup
	$(BIN)/dagster dev -w workspace.yaml

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m mta_assets_bench

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) data test-artifacts
