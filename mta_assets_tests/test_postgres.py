"""The pipeline on the production instance's storage: a real PostgreSQL server.

Each test gets a database of its own on the server `.ci/postgres.sh` starts (see
``mta_assets_tests/postgres.py``) and loads ``deploy/dagster.yaml`` itself, so what is
stored and read back here is what the webserver and daemon of the compose deployment
would see. Skipped, with the reason, only when no server can be reached.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mta_assets.defs.resources import Lake, LakeIOManager, MTASource
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_assets.defs.turnstile.jobs import mta_turnstile_job
from mta_assets.defs.turnstile.sensors import evaluate_file_arrival
from mta_assets_tests.postgres import PostgresDatabase
from mta_assets_tests.samples import offline_station_key

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
WEEK = "2023-12-30"
READINGS = 600
ASSETS = [turnstile_weeks]
ASSET_KEYS = [dg.AssetKey(name) for name in ("turnstile_csv", "turnstile_csv_gz", "turnstile_readings")]
# The Saturday turnstile_240106.txt (week 2023-12-30) is published, in the afternoon.
PUBLICATION_DAY = dt.datetime(2024, 1, 6, 20, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def instance(tmp_path, monkeypatch, postgres_database: PostgresDatabase) -> Iterator[dg.DagsterInstance]:
    """The production instance (deploy/dagster.yaml) on this test's own database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in postgres_database.dagster_env().items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        yield instance


def resources(mirror, lake: Lake) -> dict[str, object]:
    return {"mta_source": MTASource(base_url=mirror.url), "lake": lake, "lake_io_manager": LakeIOManager(lake=lake),
            "station_key": offline_station_key()}


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    evaluations = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        evaluations[evaluation.check_name] = evaluation.passed
    return evaluations


def test_a_weekly_materialization_is_stored_in_postgres_and_read_back(instance, mirror, synthetic_week, local_lake):
    synthetic_week(WEEK, readings=READINGS)

    result = dg.materialize(ASSETS, partition_key=WEEK, instance=instance, resources=resources(mirror, local_lake))
    assert result.success

    [run] = instance.get_runs()
    assert run.run_id == result.run_id
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == WEEK
    for key in ASSET_KEYS:
        [record] = instance.fetch_materializations(key, limit=10).records
        assert record.partition_key == WEEK and record.run_id == run.run_id
        assert instance.get_materialized_partitions(key) == {WEEK}

    [readings] = instance.fetch_materializations(dg.AssetKey("turnstile_readings"), limit=1).records
    row_count = readings.asset_materialization.metadata["dagster/row_count"].value
    [from_run] = [
        m for m in result.asset_materializations_for_node("turnstile_weeks") if m.asset_key.path == ["turnstile_readings"]
    ]
    assert row_count == from_run.metadata["dagster/row_count"].value
    assert 0 < row_count <= READINGS

    evaluations = check_evaluations(instance, run.run_id)
    assert evaluations, "no check evaluation was stored"
    assert evaluations == {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert all(evaluations.values()), evaluations


def test_a_file_arrival_tick_requests_the_week_and_its_run_is_stored(instance, mirror, synthetic_week, local_lake):
    synthetic_week(WEEK, readings=READINGS)
    source = MTASource(base_url=mirror.url)

    first = evaluate_file_arrival(dg.build_sensor_context(instance=instance), source, now=PUBLICATION_DAY)
    [request] = first.run_requests
    assert request.partition_key == WEEK
    assert request.run_key.startswith(f"{WEEK}:")

    # What the daemon does with the request: a run of the job, tagged with the sensor's key.
    job = dg.Definitions(
        assets=ASSETS, jobs=[mta_turnstile_job], resources=resources(mirror, local_lake), executor=dg.in_process_executor
    ).resolve_job_def("mta_turnstile_job")
    tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": "mta_file_arrival_sensor"}
    executed = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=tags)
    assert executed.success

    [run] = instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": request.run_key}))
    assert run.job_name == "mta_turnstile_job"
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == WEEK
    assert [r.partition_key for r in instance.fetch_materializations(dg.AssetKey("turnstile_readings"), limit=5).records] == [WEEK]
    assert all(check_evaluations(instance, run.run_id).values())

    # The next tick, with the cursor the first one stored, sees the same file and asks for nothing.
    second = evaluate_file_arrival(dg.build_sensor_context(instance=instance, cursor=first.cursor), source, now=PUBLICATION_DAY)
    assert second.run_requests == [] or second.run_requests is None
    assert "unchanged since last seen: " + WEEK in second.skip_reason.skip_message
