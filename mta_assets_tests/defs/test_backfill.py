"""Partition ranges in one run: 4 weeks, 4 independent lake objects per asset, failures by name."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from mta_assets.defs.resources import Lake, LakeIOManager, MTASource
from mta_assets.defs.turnstile.assets import TurnstileConfig, turnstile_weeks
from mta_assets.defs.turnstile.checks import readings_check_specs
from mta_devtools.mirror import MirrorServer
from mta_devtools.synthetic import consecutive_weeks, count_readings
from mta_assets.mta.calendar import file_name_for_week, latest_published_week
from mta_assets_tests.samples import offline_station_key
from mta_assets_tests.lake_objects import week_object_key

REPO_ROOT = Path(__file__).resolve().parents[2]
WEEKS = consecutive_weeks("2023-12-30", 4)  # across New Year: files turnstile_240106 .. turnstile_240127
READINGS = 3000
ASSETS = [turnstile_weeks]
DATASETS = {"csv_gz": ".csv.gz", "readings": ".parquet"}


def resources(mirror: MirrorServer, lake: Lake) -> dict[str, object]:
    return {
        "mta_source": MTASource(base_url=mirror.url, retries=0, backoff_factor_s=0),
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        "station_key": offline_station_key(),
    }


def materialize_range(mirror: MirrorServer, lake: Lake, instance: dg.DagsterInstance, first: str, last: str):
    return dg.materialize(
        ASSETS,
        instance=instance,
        resources=resources(mirror, lake),
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )


def lake_snapshot(lake: Lake) -> dict[str, bytes]:
    return {key: lake.read_bytes(key) for dataset in DATASETS for key in lake.list_keys(f"turnstile/{dataset}/")}


def expected_keys(lake: Lake, dataset: str, weeks: list[str]) -> list[str]:
    return sorted(week_object_key(lake, dataset, week) for week in weeks)


def materialized(instance: dg.DagsterInstance, asset: str) -> list[str]:
    return sorted(instance.get_materialized_partitions(dg.AssetKey(asset)))


def step_failure_messages(result) -> list[str]:
    return [event.event_specific_data.error.message for event in result.all_events if event.is_step_failure]


def table_rows(lake: Lake, week: str) -> int:
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as folder:
        return pq.read_metadata(lake.fetch(week_object_key(lake, "readings", week), Path(folder))).num_rows


def latest_readings_metadata(instance: dg.DagsterInstance, week: str) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("turnstile_readings"), asset_partitions=[week]), limit=1
    ).records
    return {key: value.value for key, value in record.asset_materialization.metadata.items()}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def test_a_four_week_range_runs_once_and_commits_every_week(
    mirror: MirrorServer, synthetic_week, any_lake: Lake, instance: dg.DagsterInstance
) -> None:
    served = {week: synthetic_week(week, readings=READINGS, seed=index).read_bytes() for index, week in enumerate(WEEKS)}

    result = materialize_range(mirror, any_lake, instance, WEEKS[0], WEEKS[-1])

    assert result.success, step_failure_messages(result)
    assert len(instance.get_runs()) == 1
    for dataset in DATASETS:
        assert sorted(any_lake.list_keys(f"turnstile/{dataset}/")) == expected_keys(any_lake, dataset, WEEKS)
    for asset in ("turnstile_csv", "turnstile_csv_gz", "turnstile_readings"):
        assert materialized(instance, asset) == WEEKS
    for week in WEEKS:
        assert gzip.decompress(any_lake.read_bytes(week_object_key(any_lake, "csv_gz", week))) == served[week]
        metadata = latest_readings_metadata(instance, week)
        assert metadata["readings_seen"] == count_readings(served[week]) == READINGS
        assert table_rows(any_lake, week) == metadata["dagster/row_count"]
        assert metadata["dagster/row_count"] == READINGS - metadata["duplicates_removed"] - metadata["rejected"]
        assert metadata["uri"] == any_lake.uri_for(week_object_key(any_lake, "readings", week))

    before = lake_snapshot(any_lake)
    again = materialize_range(mirror, any_lake, instance, WEEKS[0], WEEKS[-1])
    assert again.success, step_failure_messages(again)
    assert lake_snapshot(any_lake) == before  # idempotent: the same keys with the same bytes


@pytest.mark.parametrize("fault", ["missing", "html", "bad_counters"])
def test_a_failing_week_stops_only_itself(
    mirror: MirrorServer, synthetic_week, any_lake: Lake, instance: dg.DagsterInstance, fault: str
) -> None:
    failing = WEEKS[2]
    served = {week: synthetic_week(week, readings=READINGS).read_bytes() for week in WEEKS}
    if fault == "missing":
        (Path(mirror.root) / file_name_for_week(failing)).unlink()
    elif fault == "html":
        mirror.inject(file_name_for_week(failing), "html")
    else:
        path = Path(mirror.root) / file_name_for_week(failing)
        lines = path.read_bytes().split(b"\n")
        for index in range(1, len(lines) - 1, 50):
            fields = lines[index].split(b",")
            fields[9] = b"12X4"
            lines[index] = b",".join(fields)
        path.write_bytes(b"\n".join(lines))

    result = materialize_range(mirror, any_lake, instance, WEEKS[0], WEEKS[-1])

    assert not result.success
    (message,) = step_failure_messages(result)
    assert f"1 of 4 week(s) failed: week {failing}: " in message
    cause = {"missing": "is not published (HTTP 404)", "html": "HTML page", "bad_counters": "reject_rate_under_threshold"}
    assert cause[fault] in message
    others = [week for week in WEEKS if week != failing]
    # Every other week completed all of its assets in the same run.
    for dataset in DATASETS:
        assert sorted(any_lake.list_keys(f"turnstile/{dataset}/")) == expected_keys(any_lake, dataset, others)
    for week in others:
        assert gzip.decompress(any_lake.read_bytes(week_object_key(any_lake, "csv_gz", week))) == served[week]
    for asset in ("turnstile_csv", "turnstile_csv_gz", "turnstile_readings"):
        assert materialized(instance, asset) == others
    # "Materialize missing" is exactly the failed week.
    assert _missing(instance, WEEKS) == [failing]


def _missing(instance: dg.DagsterInstance, weeks: list[str]) -> list[str]:
    done = set(materialized(instance, "turnstile_readings"))
    return [week for week in weeks if week not in done]


def test_each_weeks_metadata_in_a_range_is_what_a_single_week_run_records(
    mirror: MirrorServer, synthetic_week, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    for index, week in enumerate(WEEKS[:3]):
        synthetic_week(week, readings=READINGS, seed=index)
    range_lake, single_lake = Lake(url=str(tmp_path / "range")), Lake(url=str(tmp_path / "single"))
    assert materialize_range(mirror, range_lake, instance, WEEKS[0], WEEKS[2]).success
    single_instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(
        [turnstile_weeks], instance=single_instance, resources=resources(mirror, single_lake), partition_key=WEEKS[1]
    ).success

    # Each run commits its own generation: the keys differ by it, and only by it.
    timings = {"upload_seconds", "upload_mib_per_s", "gzip_seconds", "parse_seconds", "uri", "manifest_uri", "generation"}
    for asset in ("turnstile_csv", "turnstile_csv_gz", "turnstile_readings"):
        in_range = _latest_metadata(instance, asset, WEEKS[1])
        alone = _latest_metadata(single_instance, asset, WEEKS[1])
        assert {k: v for k, v in in_range.items() if k not in timings} == {
            k: v for k, v in alone.items() if k not in timings
        }, asset
        def where(metadata: dict, lake: str) -> tuple[str, str]:
            relative = lambda uri: uri.split(f"/{lake}/", 1)[1].replace(metadata["generation"], "<generation>")  # noqa: E731
            return relative(metadata["uri"]), relative(metadata["manifest_uri"])

        assert where(in_range, "range") == where(alone, "single")
        assert "weeks" not in in_range and "stored_objects" not in in_range  # no range totals on a week


def _latest_metadata(instance: dg.DagsterInstance, asset: str, week: str) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[week]), limit=1
    ).records
    return {key: value.value for key, value in record.asset_materialization.metadata.items()}


def test_a_week_not_yet_published_fails_naming_the_week_and_its_publication_day(local_lake: Lake) -> None:
    latest = latest_published_week()
    future = consecutive_weeks(latest, 2)[1]
    publication = dt.date.fromisoformat(future) + dt.timedelta(days=7)

    with pytest.raises(dg.Failure) as failure:
        list(
            turnstile_weeks(
                context=dg.build_asset_context(partition_key=future),
                config=TurnstileConfig(),
                mta_source=MTASource(base_url="http://127.0.0.1:9"),  # never contacted
                lake=local_lake,
                station_key=offline_station_key(),
            )
        )

    assert failure.value.description.startswith(f"week {future} is not published yet: {file_name_for_week(future)}")
    assert f"appears on Saturday {publication:%Y-%m-%d} (America/New_York)" in failure.value.description


def test_a_range_reaching_into_the_future_fails_before_downloading(
    mirror: MirrorServer, synthetic_week, local_lake: Lake, instance: dg.DagsterInstance
) -> None:
    latest = latest_published_week()
    future = consecutive_weeks(latest, 2)[1]
    synthetic_week(latest, readings=READINGS)

    result = materialize_range(mirror, local_lake, instance, latest, future)

    assert not result.success
    (message,) = step_failure_messages(result)
    assert f"week {future} is not published yet" in message
    assert mirror.requests == []
    assert local_lake.list_keys("turnstile/csv_gz/") == []


def test_dagster_refuses_a_single_future_partition(local_lake: Lake) -> None:
    future = consecutive_weeks(latest_published_week(), 2)[1]

    with pytest.raises(dg.DagsterUnknownPartitionError, match=re.escape(future)):
        dg.materialize(
            [turnstile_weeks],
            partition_key=future,
            resources={
                "mta_source": MTASource(base_url="http://127.0.0.1:9"),
                "lake": local_lake,
                "lake_io_manager": LakeIOManager(lake=local_lake),
                "station_key": offline_station_key(),
            },
        )


def cli_environment(tmp_path: Path, mirror: MirrorServer, lake_dir: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MTA_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        MTA_SOURCE_URL=mirror.url,
        MTA_LAKE_URL=str(lake_dir),
        MTA_STAGING_DIR=str(tmp_path / "cli-staging"),
        # The range builds ridership and the warehouse too (issue 14): keep both offline and in tmp_path.
        MTA_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
        MTA_STATION_KEY_URL="http://127.0.0.1:9/Remote-Booth-Station.csv",
        PYTHONWARNINGS="ignore",
    )
    if os.environ.get("MTA_STATION_COMPLEXES_URL"):  # the shared crosswalks, never GitHub
        env["MTA_STATION_COMPLEXES_URL"] = os.environ["MTA_STATION_COMPLEXES_URL"]
    return env


def runs_in(home: str, monkeypatch: pytest.MonkeyPatch) -> list[dg.DagsterRun]:
    monkeypatch.setenv("DAGSTER_HOME", home)
    with dg.DagsterInstance.get() as instance:
        return list(instance.get_runs())


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            ["dagster", "asset", "materialize", "-m", "mta_assets.definitions", "--select", "turnstile_csv*"],
            id="dagster-asset-materialize",
        ),
        pytest.param(["dg", "launch", "--assets", "turnstile_csv*"], id="dg-launch"),
    ],
)
def test_the_cli_runs_a_four_week_range_as_one_run(
    tmp_path: Path, mirror: MirrorServer, synthetic_week, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    for week in WEEKS:
        synthetic_week(week, readings=READINGS)
    lake_dir = tmp_path / "cli-lake"
    env = cli_environment(tmp_path, mirror, lake_dir)
    executable = str(Path(sys.executable).parent / command[0])

    completed = subprocess.run(
        [executable, *command[1:], "--partition-range", f"{WEEKS[0]}...{WEEKS[-1]}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr[-4000:]
    lake = Lake(url=str(lake_dir))
    for dataset in DATASETS:
        assert sorted(lake.list_keys(f"turnstile/{dataset}/")) == expected_keys(lake, dataset, WEEKS)
    for week in WEEKS:
        published = (mirror.root / file_name_for_week(week)).read_bytes()
        assert gzip.decompress(lake.read_bytes(week_object_key(lake, "csv_gz", week))) == published
    with duckdb.connect(env["MTA_WAREHOUSE"], read_only=True) as warehouse:  # ... -> ridership -> warehouse
        loaded = warehouse.execute("SELECT DISTINCT week FROM fct_ridership_daily ORDER BY week").fetchall()
    assert [str(week) for (week,) in loaded] == WEEKS
    (run,) = runs_in(env["DAGSTER_HOME"], monkeypatch)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/asset_partition_range_start"] == WEEKS[0]
    assert run.tags["dagster/asset_partition_range_end"] == WEEKS[-1]


def test_a_range_records_every_check_per_week_and_a_blocking_failure_spares_the_other_weeks(
    mirror: MirrorServer, synthetic_week, local_lake: Lake, instance: dg.DagsterInstance
) -> None:
    weeks = WEEKS[:3]
    for index, week in enumerate(weeks):
        synthetic_week(week, readings=READINGS, seed=index)
    assert materialize_range(mirror, local_lake, instance, weeks[0], weeks[-1]).success
    good_tables = {week: local_lake.read_bytes(week_object_key(local_lake, "readings", week)) for week in weeks}

    # The middle week is re-published with a negative-signed counter on 1% of its lines.
    bad_week = weeks[1]
    path = synthetic_week(bad_week, readings=READINGS, seed=7)
    lines = path.read_bytes().split(b"\n")
    for index in range(1, len(lines) - 1, 100):
        fields = lines[index].split(b",")
        fields[9] = b"-" + fields[9][1:]
        lines[index] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))
    for week in (weeks[0], weeks[2]):  # and the other two change, so their tables must be rewritten
        synthetic_week(week, readings=READINGS, seed=11)

    result = materialize_range(mirror, local_lake, instance, weeks[0], weeks[-1])

    assert not result.success
    assert any(f"week {bad_week}: " in m and "failed blocking checks: reject_rate_under_threshold" in m for m in step_failure_messages(result))
    evaluations = [
        record.dagster_event.event_specific_data
        for record in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    per_week = {(e.check_name, e.partition): e.passed for e in evaluations if e.partition is not None}
    check_names = {e.check_name for e in evaluations if e.partition is not None}
    assert check_names == {spec.name for spec in readings_check_specs}
    assert {partition for _, partition in per_week} == set(weeks)
    assert per_week[("reject_rate_under_threshold", bad_week)] is False
    assert all(per_week[(name, week)] for name in check_names for week in (weeks[0], weeks[2]))
    # The failing week keeps its last good table; the others got their new one.
    assert local_lake.read_bytes(week_object_key(local_lake, "readings", bad_week)) == good_tables[bad_week]
    for week in (weeks[0], weeks[2]):
        assert local_lake.read_bytes(week_object_key(local_lake, "readings", week)) != good_tables[week]
