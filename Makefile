# Two commands on a fresh machine (Python 3.11+ and make):
#   make run    set up, serve a synthetic week on loopback, materialize it into ./data/lake
#   make test   set up and run the test suite
# Every target goes through ./mta, the wrapper the README uses for every other command,
# so all of them share the venv, the checkout's code and the instance (./.dagster_home).
PYTHON ?= python3
# MTA_VENV=/path/to/.venv reuses a venv built by another checkout (the fresh-clone test
# does): it is used as is and never installed into.
REUSED_VENV := $(filter environment,$(origin MTA_VENV))
ifneq ($(REUSED_VENV),)
VENV := $(MTA_VENV)
else
VENV ?= .venv
endif
BIN := $(VENV)/bin
export MTA_VENV := $(abspath $(VENV))
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
WEEK ?= 2023-12-30
READINGS ?= 250000
PYTEST_ARGS ?= -n 2

.PHONY: setup run dev test bench clean

ifneq ($(REUSED_VENV),)
$(BIN)/dagster:
	@test -x $@ || { echo "MTA_VENV=$(MTA_VENV) has no bin/dagster: unset MTA_VENV or run make setup in its checkout" >&2; exit 1; }
else
# The uninstall: dbt moved to an environment of its own (.venv/dbt); a venv built before keeps none of it.
$(BIN)/dagster: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip uninstall --quiet --yes -r dbt/requirements.txt 2>/dev/null || true
	touch $@
endif

# dbt in an environment of its own inside the venv's folder (dbt/requirements.txt says why);
# the warehouse finds it there (mta_assets/defs/warehouse/resources.py).
ifneq ($(REUSED_VENV),)
$(VENV)/dbt/bin/dbt:
	@test -x $@ || { echo "MTA_VENV=$(MTA_VENV) has no dbt/bin/dbt: run make setup in its checkout" >&2; exit 1; }
else
$(VENV)/dbt/bin/dbt: dbt/requirements.txt $(BIN)/dagster
	$(BIN)/python -m venv $(VENV)/dbt
	$(VENV)/dbt/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/dbt/bin/python -m pip install --quiet -r dbt/requirements.txt
	touch $@

# dbt as Dagster runs it, beside dbt (the script says why).
DBT_FOR_DAGSTER = $(VENV)/dbt/bin/dbt-for-dagster
$(DBT_FOR_DAGSTER): dbt/dbt-for-dagster $(VENV)/dbt/bin/dbt
	install -m 0755 $< $@
endif

setup: $(BIN)/dagster $(VENV)/dbt/bin/dbt $(DBT_FOR_DAGSTER)
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Offline by default: a synthetic week served by the loopback mirror. Point
# MTA_SOURCE_URL at MTA to fetch the real file instead; WEEK=YYYY-MM-DD picks the week,
# READINGS=N the size of the synthetic week.
run: setup
	MTA_SYNTHETIC_READINGS=$(READINGS) ./mta run $(WEEK)

# The UI and daemon, offline the same way unless MTA_SOURCE_URL is set.
dev: setup
	./mta dev

test: setup
	./mta python -m pytest $(PYTEST_ARGS)

bench: setup
	./mta python -m mta_assets_bench

clean:
	rm -rf $(if $(REUSED_VENV),,$(VENV)) $(DAGSTER_HOME) data test-artifacts
