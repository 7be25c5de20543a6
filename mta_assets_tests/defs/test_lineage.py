"""The whole lineage on Dagster's machinery: the IO manager, automation, a bad week that costs no other week anything."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mta_assets.defs.resources import Lake, LakeIOManager, MTASource, StationKeySource
from mta_assets.defs.ridership.assets import ridership_assets
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_assets.defs.turnstile.partitions import weekly_partitions
from mta_assets.defs.warehouse.assets import warehouse_assets
from mta_assets.defs.warehouse.project import dbt_executable, prepared_project
from mta_assets.defs.warehouse.resources import DuckDBWarehouse
from mta_devtools.synthetic import consecutive_weeks
from mta_assets.mta.calendar import file_name_for_week
from mta_assets_tests.lake_objects import week_stat
from mta_assets_tests.samples import offline_station_key, rebuild_full_week

ASSETS = [turnstile_weeks, *ridership_assets, *warehouse_assets]
RIDERSHIP = dg.AssetKey("ridership_daily")


def resources(mirror, lake, folder) -> dict:
    from dagster_dbt import DbtCliResource

    return {
        "mta_source": MTASource(base_url=mirror.url, retries=0, read_timeout_s=30),
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        "station_key": offline_station_key(),
        "duckdb_warehouse": DuckDBWarehouse(database=str(folder / "warehouse.duckdb")),
        "dbt": DbtCliResource(project_dir=prepared_project(), dbt_executable=dbt_executable()),
    }


def warehouse_weeks(folder) -> list[str]:
    """The weeks whose ridership is in the warehouse."""
    import duckdb

    path = folder / "warehouse.duckdb"
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute("SELECT DISTINCT CAST(week AS VARCHAR) FROM fct_ridership_daily ORDER BY 1").fetchall()
    return [week for (week,) in rows]


def materialize(weeks: list[str], res: dict, instance: dg.DagsterInstance, assets=ASSETS, selection=None):
    range_tags = {"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]}
    return dg.materialize(assets, selection=selection, resources=res, instance=instance, raise_on_error=False, tags=range_tags)


def run_automation(res: dict, instance: dg.DagsterInstance, cursor=None) -> tuple[list[tuple[str, str]], object]:
    """What the automation sensor does: evaluate the conditions, run what they request (a run per week), until quiet."""
    defs = dg.Definitions(assets=ASSETS, resources=res)
    keys = [key for asset in ASSETS for key in asset.keys]
    executed: list[tuple[str, str]] = []
    for _ in range(5):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        by_week: dict[str, list[dg.AssetKey]] = {}
        for key in keys:
            for week in result.get_requested_partitions(key):
                by_week.setdefault(week, []).append(key)
        if not by_week:
            return executed, cursor
        for week, selection in sorted(by_week.items()):
            executed += [(week, key.to_user_string()) for key in selection]
            run = dg.materialize(ASSETS, selection=selection, partition_key=week, resources=res, instance=instance)
            assert run.success, (week, selection)
    raise AssertionError(f"automation did not settle: {executed}")


def recorded_rows(instance: dg.DagsterInstance, week: str) -> int:
    """The row count the week's turnstile_readings materialization recorded."""
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("turnstile_readings"), asset_partitions=[week]), limit=1
    ).records
    return record.asset_materialization.metadata["dagster/row_count"].value


def zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def schedule_hour(schedule: dg.ScheduleDefinition) -> int:
    """The hour of day the schedule fires at (its cron's second field)."""
    return int(str(schedule.cron_schedule).split()[1])


def step_failure_messages(result) -> list[str]:
    return [event.event_specific_data.error.message for event in result.all_events if event.is_step_failure]


def ridership_entries(lake, week: str, tmp_path) -> dict:
    table = pq.read_table(lake.fetch(lake.key_for("ridership", week, ".parquet"), tmp_path / "read" / week))
    return {str(row["date"]): row["entries"] for row in table.group_by("date").aggregate([("entries", "sum")]).rename_columns(["date", "entries"]).to_pylist()}


def test_a_users_own_assets_get_the_weeks_table_through_the_io_manager(tmp_path, mirror, mirror_root, any_lake):
    week = "2023-12-30"
    rebuild_full_week("240106.csv.gz", mirror_root)  # MTA's real file, served on loopback
    res = resources(mirror, any_lake, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([turnstile_weeks], partition_key=week, resources=res, instance=instance).success
    rows = instance.get_latest_materialization_event(dg.AssetKey("turnstile_readings")).asset_materialization
    real_rows = rows.metadata["dagster/row_count"].value
    assert real_rows > 200_000

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager")
    def readings_per_unit(turnstile_readings: pd.DataFrame) -> pd.DataFrame:
        """Readings per unit, from the week's table as a data frame."""
        assert len(turnstile_readings) == real_rows
        return turnstile_readings.groupby("unit").size().rename("readings").reset_index()

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager")
    def entries_per_unit(turnstile_readings: pa.Table, readings_per_unit: pa.Table) -> pa.Table:
        """Readings per unit again, from the week's table as Arrow and the frame stored above."""
        assert turnstile_readings.num_rows == real_rows
        assert sum(readings_per_unit["readings"].to_pylist()) == real_rows
        return readings_per_unit

    result = dg.materialize(
        [turnstile_weeks, readings_per_unit, entries_per_unit],
        selection=["readings_per_unit", "entries_per_unit"],
        partition_key=week, resources=res, instance=instance,
    )
    assert result.success
    stored = any_lake.fetch(any_lake.key_for("readings_per_unit", week, ".parquet"), tmp_path / "user")
    assert sum(pq.read_table(stored)["readings"].to_pylist()) == real_rows
    meta = instance.get_latest_materialization_event(dg.AssetKey("entries_per_unit")).asset_materialization.metadata
    assert meta["uri"].value.endswith(file_name_for_week(week).replace(".txt", ".parquet"))


def test_a_users_asset_over_a_range_gets_a_dict_of_weeks_of_the_type_it_names(tmp_path, mirror, synthetic_week, any_lake):
    weeks = consecutive_weeks("2024-01-06", 2)
    for week in weeks:
        synthetic_week(week, readings=1500)
    res = resources(mirror, any_lake, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(weeks, res, instance, assets=[turnstile_weeks]).success
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager", backfill_policy=dg.BackfillPolicy.single_run())
    def frames(turnstile_readings: dict[str, pd.DataFrame]) -> None:
        """The range's tables as data frames, by week."""
        seen["frames"] = {week: len(frame) for week, frame in turnstile_readings.items()}

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager", backfill_policy=dg.BackfillPolicy.single_run())
    def tables(turnstile_readings: Mapping[str, pa.Table]) -> None:
        """The range's tables as Arrow, by week."""
        seen["tables"] = {week: turnstile_readings[week].num_rows for week in turnstile_readings}

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager", backfill_policy=dg.BackfillPolicy.single_run())
    def one_frame(turnstile_readings: pd.DataFrame) -> None:
        """A data frame, which holds one week: not a range."""

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager", backfill_policy=dg.BackfillPolicy.single_run())
    def gzip_frames(turnstile_csv_gz: dict[str, pd.DataFrame]) -> None:
        """Gzip objects are files, not tables."""

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager", backfill_policy=dg.BackfillPolicy.single_run())
    def first_week_only(turnstile_readings: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """Returns one week of two: Dagster would record both as materialized."""
        return {weeks[0]: turnstile_readings[weeks[0]]}

    users = [frames, tables, one_frame, gzip_frames, first_week_only]
    run = materialize(weeks, res, instance, assets=[turnstile_weeks, *users], selection=[a.key.to_user_string() for a in users])
    rows = {week: recorded_rows(instance, week) for week in weeks}
    assert seen == {"frames": rows, "tables": rows}
    failures = step_failure_messages(run)
    assert len(failures) == 3
    for message in (
        "turnstile_readings: weeks 2024-01-06 to 2024-01-13 (2) for a parameter typed DataFrame, which holds one week; "
        "type it dict[str, DataFrame] to get a dict week -> value",
        "turnstile_csv_gz: its objects are .csv.gz files, not Parquet tables, so a parameter typed DataFrame cannot "
        "take them; type it Path (one week's file) or leave it untyped (a mapping week -> file)",
        "first_week_only: a range of weeks is stored from a mapping week -> value with every week from 2024-01-06 "
        "to 2024-01-13 (2); got ['2024-01-06']",
    ):
        assert any(message in failure for failure in failures), (message, failures)
    assert any_lake.stat(any_lake.key_for("first_week_only", weeks[0], ".parquet")) is None  # nothing stored


def test_a_users_asset_reads_its_files_while_it_runs_and_an_unpartitioned_table(tmp_path, mirror, synthetic_week, any_lake):
    week = "2024-01-06"
    synthetic_week(week, readings=1500)
    res = resources(mirror, any_lake, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([turnstile_weeks], partition_key=week, resources=res, instance=instance).success
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager")
    def gzip_sizes(turnstile_csv_gz, turnstile_readings: Path) -> pd.DataFrame:
        """The week's objects as local files: a mapping week -> file (no annotation), a file (Path)."""
        import gc

        gc.collect()  # the files outlive whatever load_input made to fetch them
        seen["gz"] = {w: turnstile_csv_gz[w].read_bytes()[:2] for w in turnstile_csv_gz}
        seen["rows"] = pq.read_metadata(turnstile_readings).num_rows
        return pd.DataFrame({"week": [week], "rows": [seen["rows"]]})

    @dg.asset(io_manager_key="lake_io_manager")
    def all_weeks() -> pd.DataFrame:
        """An unpartitioned table, stored as one object."""
        return pd.DataFrame({"week": [week], "rows": [1500]})  # any table

    @dg.asset(io_manager_key="lake_io_manager")
    def total(all_weeks: pa.Table) -> None:
        """Reads the unpartitioned table back."""
        seen["total"] = all_weeks.to_pylist()

    everything = [turnstile_weeks, gzip_sizes, all_weeks, total]
    assert dg.materialize(everything, selection=["gzip_sizes"], partition_key=week, resources=res, instance=instance).success
    assert seen == {"gz": {week: b"\x1f\x8b"}, "rows": recorded_rows(instance, week)}  # gzip's magic bytes
    assert dg.materialize(everything, selection=["all_weeks", "total"], resources=res, instance=instance).success
    assert seen["total"] == [{"week": week, "rows": 1500}]
    assert any_lake.stat(any_lake.key("all_weeks.parquet")) is not None


def _another_run_commits(lake, week: str, unit: str, folder: Path) -> None:
    """Another run (a republished week, a backfill) committing the week's readings anew: a
    one-row table naming ``unit``."""
    from mta_assets.defs.io_manager import PARQUET_TYPE
    from mta_assets.storage.commit import commit_week

    path = folder / f"{unit}.parquet"
    pq.write_table(pa.table({"unit": [unit]}), path)
    name = file_name_for_week(week).replace(".txt", ".parquet")
    commit_week(lake.client, "turnstile", week, {"readings": (path, name, PARQUET_TYPE)}, owner=f"run {unit}", wait_s=5)


def _users_run(lake, asset, week: str, instance=None):
    res = {"lake": lake, "lake_io_manager": LakeIOManager(lake=lake), "mta_source": MTASource(), "station_key": StationKeySource()}
    return dg.materialize(
        [turnstile_weeks, asset], selection=[asset], partition_key=week, resources=res, instance=instance, raise_on_error=False
    )


def test_a_users_path_keeps_the_week_as_the_step_started_whatever_other_runs_commit(tmp_path, any_lake):
    week = "2024-01-06"
    _another_run_commits(any_lake, week, "R1", tmp_path)
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager")
    def held_file(turnstile_readings: Path) -> None:
        """Reads its file after two other runs committed the week anew: the second collects the first object."""
        _another_run_commits(any_lake, week, "R2", tmp_path)
        _another_run_commits(any_lake, week, "R3", tmp_path)
        seen["units"] = pq.read_table(turnstile_readings)["unit"].to_pylist()

    assert _users_run(any_lake, held_file, week).success
    assert seen == {"units": ["R1"]}


def test_a_users_tables_follow_their_week_when_other_runs_commit_it_meanwhile(tmp_path, local_lake):
    week = "2024-01-06"
    _another_run_commits(local_lake, week, "R1", tmp_path)
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager")
    def frames(turnstile_readings: dict[str, pd.DataFrame]) -> None:
        """Reads its week after two other runs committed it anew: the object read before is gone."""
        _another_run_commits(local_lake, week, "R2", tmp_path)
        _another_run_commits(local_lake, week, "R3", tmp_path)
        seen["units"] = turnstile_readings[week]["unit"].to_list()

    instance = dg.DagsterInstance.ephemeral()
    result = _users_run(local_lake, frames, week, instance)
    assert result.success, step_failure_messages(result)
    assert seen == {"units": ["R3"]}
    said = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(f"turnstile_readings week {week}: committed anew by another run" in line for line in said), said

    @dg.asset(partitions_def=weekly_partitions, io_manager_key="lake_io_manager")
    def deleted(turnstile_readings: dict[str, pd.DataFrame]) -> None:
        """Reads its week after someone deleted its object by hand."""
        from mta_assets.storage.commit import week_key

        local_lake.delete(week_key(local_lake, "turnstile", "readings", week))
        turnstile_readings[week]

    (failure,) = [event.event_specific_data.error for event in _users_run(local_lake, deleted, week).all_events
                  if event.is_step_failure]
    failure = (failure.cause or failure).message  # the error raised, not the step's wrapper around it
    uri = local_lake.uri_for(local_lake.key("turnstile/readings/2024", week))
    assert f"turnstile_readings week {week}: cannot read {uri}/" in failure
    assert "does not exist; the week's manifest still names it" in failure


def test_a_bad_week_costs_no_other_week_its_ridership_and_missing_reruns_only_it(
    tmp_path, mirror, mirror_root, synthetic_week, local_lake
):
    weeks = consecutive_weeks("2024-01-06", 4)
    for week in weeks:
        synthetic_week(week, readings=2500)
    bad = weeks[1]
    good_file = (mirror_root / file_name_for_week(bad)).read_bytes()
    (mirror_root / file_name_for_week(bad)).write_text("<html><body>Service unavailable</body></html>\n")
    res = resources(mirror, local_lake, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    _, cursor = run_automation(res, instance)  # the sensor's first tick: nothing to do yet

    first = materialize(weeks, res, instance)
    assert not first.success
    failure = next(e for e in first.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"week {bad}" in failure.event_specific_data.error.message
    # Dagster skips the ridership step of a failed step; the good weeks' ridership follows by automation.
    executed, cursor = run_automation(res, instance, cursor)
    assert {(week, key) for week, key in executed if key == "ridership_daily"} == {
        (week, "ridership_daily") for week in weeks if week != bad
    }
    for week in weeks:
        ridership = local_lake.stat(local_lake.key_for("ridership", week, ".parquet"))
        assert (ridership is None) is (week == bad), week
    assert week_stat(local_lake, "readings", bad) is None
    assert warehouse_weeks(tmp_path) == [week for week in weeks if week != bad]
    status = instance.get_status_by_partition(dg.AssetKey("turnstile_readings"), weeks, weekly_partitions)
    assert {week for week, state in status.items() if state != dg.AssetPartitionStatus.MATERIALIZED} == {bad}

    # The file is good again: re-running what is missing is that week alone; the week after it
    # then follows, since its first intervals start at the bad week's last readings.
    before = ridership_entries(local_lake, weeks[2], tmp_path)
    (mirror_root / file_name_for_week(bad)).write_bytes(good_file)
    assert materialize([bad], res, instance, selection=[k for a in [turnstile_weeks] for k in a.keys]).success
    executed, _ = run_automation(res, instance, cursor)
    assert {(w, key) for w, key in executed if not key.startswith("warehouse/")} == {
        (bad, "ridership_daily"), (bad, "stations"), (weeks[2], "ridership_daily")
    }
    assert warehouse_weeks(tmp_path) == weeks
    after = ridership_entries(local_lake, weeks[2], tmp_path / "after")
    assert set(after) - set(before) == {"2024-01-19"}  # its first interval now starts in the week before
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RIDERSHIP, asset_partitions=[weeks[2]]), limit=1
    ).records[0].asset_materialization
    assert latest.metadata["previous_week_used"].value is True


@pytest.mark.parametrize("ticks", ["after each run", "once after both runs"])
def test_weeks_built_out_of_order_end_with_the_same_ridership_as_in_order(ticks, tmp_path, mirror, synthetic_week):
    from mta_assets.defs.resources import Lake

    weeks = consecutive_weeks("2024-01-06", 2)
    for week in weeks:
        synthetic_week(week, readings=2500)
    in_order, out_of_order = Lake(url=str(tmp_path / "a")), Lake(url=str(tmp_path / "b"))

    ordered = dg.DagsterInstance.ephemeral()
    for week in weeks:
        assert dg.materialize(ASSETS, partition_key=week, resources=resources(mirror, in_order, tmp_path / "a"), instance=ordered).success

    res = resources(mirror, out_of_order, tmp_path / "b")
    instance = dg.DagsterInstance.ephemeral()
    _, cursor = run_automation(res, instance)  # the sensor's first tick: nothing to do yet
    executed = []
    for week in reversed(weeks):  # W, then W-1
        assert dg.materialize(ASSETS, partition_key=week, resources=res, instance=instance).success
        if ticks == "after each run":
            done, cursor = run_automation(res, instance, cursor)
            executed += done
    if ticks == "once after both runs":  # both runs within one interval of the sensor
        executed, cursor = run_automation(res, instance, cursor)
    assert [(w, key) for w, key in executed if not key.startswith("warehouse/")] == [(weeks[1], "ridership_daily")]
    assert {w for w, _ in executed} == {weeks[1]}  # its warehouse rows follow; nothing else is built again
    for week in weeks:
        assert out_of_order.read_bytes(out_of_order.key_for("ridership", week, ".parquet")) == in_order.read_bytes(
            in_order.key_for("ridership", week, ".parquet")
        ), week


def _commit_objects(lake_url: str, week: str, objects_dir: Path) -> None:
    """Commit a week's turnstile objects (one folder per dataset) as another run reaching its
    own commit would: the same ``commit_week``, the week's real objects."""
    from mta_assets.defs.io_manager import PARQUET_TYPE
    from mta_assets.defs.resources import Lake
    from mta_assets.storage.commit import commit_week

    objects = {
        path.parent.name: (path, path.name, "application/gzip" if path.suffix == ".gz" else PARQUET_TYPE)
        for path in sorted(objects_dir.glob("*/*"))
    }
    commit_week(Lake(url=lake_url).client, "turnstile", week, objects, owner="another run", wait_s=5)


def _objects_of(mirror, tmp_path, week: str, folder: Path) -> Path:
    """A week's turnstile objects as another run commits them: built into a lake of their own."""
    from mta_assets.defs.resources import Lake
    from mta_assets.storage.commit import current_week

    elsewhere = Lake(url=str(folder / "lake"))
    assert dg.materialize([turnstile_weeks], partition_key=week, resources=resources(mirror, elsewhere, folder)).success
    for dataset, entry in current_week(elsewhere.client, "turnstile", week).datasets.items():
        (folder / "objects" / dataset).mkdir(parents=True)
        (folder / "objects" / dataset / entry.file_name).write_bytes(elsewhere.read_bytes(entry.key))
    return folder / "objects"


class _AnotherRunCommitsAWeek(StationKeySource):
    """The station key, read at the start of the ridership step's body, after its inputs were
    loaded: the moment at which another run commits ``week`` into the lake."""

    lake_url: str
    week: str
    objects_dir: str

    def load(self):
        _commit_objects(self.lake_url, self.week, Path(self.objects_dir))
        return super().load()


@pytest.mark.parametrize("before_was", ["missing", "another file"])
def test_a_week_committed_by_another_run_while_ridership_reads_it_is_not_missed(
    before_was, tmp_path, mirror, synthetic_week
):
    from mta_assets.defs.resources import Lake

    before, week = consecutive_weeks("2024-01-06", 2)
    ridership = [key for asset in ridership_assets for key in asset.keys]
    lake = Lake(url=str(tmp_path / "lake"))
    res = resources(mirror, lake, tmp_path / "lake")
    if before_was == "another file":  # W-1 as a first publication, which the other run replaces
        synthetic_week(before, readings=2500, seed=1)
        assert dg.materialize([turnstile_weeks], partition_key=before, resources=res).success
    for each in (before, week):
        synthetic_week(each, readings=2500)

    # In order, for reference: week W-1, then W.
    in_order = Lake(url=str(tmp_path / "in-order"))
    for each in (before, week):
        assert dg.materialize(
            [turnstile_weeks, *ridership_assets], partition_key=each, resources=resources(mirror, in_order, tmp_path / "in-order")
        ).success
    objects = _objects_of(mirror, tmp_path, before, tmp_path / "elsewhere")

    # Week W; then its ridership, while the other run commits W-1 just after the step read it.
    assert dg.materialize([turnstile_weeks], partition_key=week, resources=res).success
    res["station_key"] = _AnotherRunCommitsAWeek(
        url="http://127.0.0.1:9/key.csv", lake_url=lake.url, week=before, objects_dir=str(objects)
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [turnstile_weeks, *ridership_assets], selection=ridership, partition_key=week, resources=res, instance=instance
    )
    assert result.success
    assert lake.read_bytes(lake.key_for("ridership", week, ".parquet")) == in_order.read_bytes(
        in_order.key_for("ridership", week, ".parquet")
    )
    recorded = result.asset_materializations_for_node("ridership_weeks")
    assert [m.metadata["previous_week_used"].value for m in recorded if m.asset_key == RIDERSHIP] == [True]
    said = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(f"week {week}: its readings or the week before's were committed anew" in line for line in said)
    # Each check's result once, on the week as recorded.
    evaluations = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    names = [e.event_specific_data.check_name for e in evaluations]
    assert sorted(names) == sorted(set(names)) and len(names) == 3


class _LakeAnotherRunKeepsWriting(Lake):
    """A lake into which another run commits week ``week`` anew, from two publications in
    turn, each time the ridership step looks a week's stations up (once per computation)."""

    week: str
    objects_dirs: list[str]
    count_dir: str

    def stat(self, key: str):
        if "/stations/" in key:
            done = len(list(Path(self.count_dir).iterdir()))
            (Path(self.count_dir) / str(done)).touch()
            _commit_objects(self.url, self.week, Path(self.objects_dirs[done % 2]))
        return super().stat(key)


def test_a_week_whose_readings_keep_changing_fails_naming_it_and_records_nothing(tmp_path, mirror, synthetic_week):
    from mta_assets.defs.resources import Lake

    before, week = consecutive_weeks("2024-01-06", 2)
    versions = []
    for seed in (1, 0):
        synthetic_week(before, readings=2500, seed=seed)
        versions.append(str(_objects_of(mirror, tmp_path, before, tmp_path / f"seed-{seed}")))
    synthetic_week(week, readings=2500)
    plain = Lake(url=str(tmp_path / "lake"))
    assert dg.materialize(ASSETS[:2], partition_key=week, resources=resources(mirror, plain, tmp_path)).success
    (tmp_path / "count").mkdir()
    lake = _LakeAnotherRunKeepsWriting(url=plain.url, week=before, objects_dirs=versions, count_dir=str(tmp_path / "count"))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        ASSETS[:2], selection=[RIDERSHIP], partition_key=week, resources=resources(mirror, lake, tmp_path),
        instance=instance, raise_on_error=False,
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"week {week}: its readings kept being replaced by another run (3 computations)" in (
        failure.event_specific_data.error.message
    )
    assert len(list((tmp_path / "count").iterdir())) == 3
    assert instance.get_latest_materialization_event(RIDERSHIP) is None
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


@pytest.mark.parametrize("how", ["schedule", "sensor"])
def test_a_requested_week_gets_every_asset_of_the_lineage(how, tmp_path, mirror, synthetic_week, local_lake):
    """The schedule's and the sensor's own run request, executed: the job behind them selects
    everything downstream of the turnstile assets."""
    import datetime as dt

    from mta_assets.definitions import defs
    from mta_assets.defs.turnstile.sensors import evaluate_file_arrival
    from mta_assets.mta.calendar import TIMEZONE

    week = "2024-01-06"
    synthetic_week(week, readings=2500)
    # Saturday 2024-01-13, the afternoon turnstile_240113.txt (the week 2024-01-06) is published.
    published = dt.datetime(2024, 1, 13, 15, 0, tzinfo=zone(TIMEZONE))
    res = resources(mirror, local_lake, tmp_path)
    if how == "schedule":
        schedule = defs.resolve_schedule_def("mta_weekly_schedule")
        when = dt.datetime.combine(dt.date(2024, 1, 13), dt.time(schedule_hour(schedule), 0)).replace(tzinfo=zone(TIMEZONE))
        (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when)).run_requests
        job_name = schedule.job_name
    else:
        sensor = defs.resolve_sensor_def("mta_file_arrival_sensor")
        context = dg.build_sensor_context(cursor=None, resources={"mta_source": res["mta_source"]})
        (request,) = evaluate_file_arrival(context, res["mta_source"], published).run_requests
        job_name = sensor.job_name
    assert request.partition_key == week
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        partition_key=request.partition_key, tags=request.tags, resources=res, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert {"turnstile_csv_gz", "turnstile_readings", "stations", "ridership_daily", "warehouse/fct_ridership_daily"} <= materialized
    assert local_lake.stat(local_lake.key_for("ridership", week, ".parquet")) is not None
    assert warehouse_weeks(tmp_path) == [week]  # the week's rows reached the warehouse in the same run
