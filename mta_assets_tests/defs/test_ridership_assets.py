"""The ridership assets end to end: real weeks' tables -> stations -> ridership in the lake.

System entries per day are checked against an independent computation written in plain
Python over the csv module, reading MTA's files as published (rebuilt from the samples).
"""

import csv
import datetime as dt
import os
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mta_assets.defs.resources import Lake, LakeIOManager, MTASource
from mta_assets.defs.ridership.assets import ridership_assets
from mta_assets.defs.ridership.checks import ridership_check_specs
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_devtools.synthetic import consecutive_weeks
from mta_assets.defs.turnstile.tables import write_parquet
from mta_assets.mta.calendar import file_name_for_week
from mta_assets.mta.parse import parse_week
from mta_assets_tests.samples import offline_station_key, rebuild_full_week, require_samples
from mta_assets_tests.lake_objects import week_object_key

ASSETS = [turnstile_weeks, *ridership_assets]
# The 7 consecutive real weeks of 2024 start here; MTA_TEST_REAL_WEEKS=7 runs all of them
# (about a minute); the default keeps the suite fast.
FIRST_REAL_WEEK = "2023-12-30"
REAL_WEEKS = consecutive_weeks(FIRST_REAL_WEEK, int(os.environ.get("MTA_TEST_REAL_WEEKS", "3")))
# The two computations apply the same rules to the same readings; they differ only in how
# (Arrow and numpy against dicts and the csv module). Allowed: 0.1% of a day's entries.
TOLERANCE = 0.001


def resources(mirror, lake: Lake, key_path: Path | None) -> dict:
    return {
        "mta_source": MTASource(base_url=mirror.url, retries=0, read_timeout_s=30),
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        "station_key": offline_station_key(key_path),
    }


def lake_table(lake: Lake, dataset: str, weeks: list[str], folder: Path) -> pa.Table:
    """The weeks' objects of a dataset, as one table."""
    return pa.concat_tables(
        [pq.read_table(lake.fetch(lake.key_for(dataset, week, ".parquet"), folder / dataset / week)) for week in weeks],
        promote_options="permissive",
    )


def materialize_range(weeks: list[str], res: dict, instance: dg.DagsterInstance):
    return dg.materialize(
        ASSETS,
        resources=res,
        instance=instance,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
    )


def materializations_of(result, asset: str) -> list[dg.AssetMaterialization]:
    return [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
        if event.event_specific_data.materialization.asset_key == dg.AssetKey(asset)
    ]


def independent_entries_by_day(files: list[Path]) -> dict[dt.date, int]:
    """The README's rules again, one reading at a time: no Arrow, no numpy, no project code."""
    best: dict[tuple, dict[dt.datetime, tuple]] = defaultdict(dict)
    rank = {"REGULAR": 0, "RECOVR AUD": 1}
    for path in files:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            next(reader)  # header
            for row in reader:
                fields = [field.strip() for field in row]
                if len(fields) != 11:
                    continue
                ca, unit, scp, _, _, _, date, clock, desc, entries, exits = fields
                when = dt.datetime.strptime(f"{date} {clock}", "%m/%d/%Y %H:%M:%S")
                candidate = (rank.get(desc, 2), int(entries), int(exits))
                held = best[(ca, unit, scp)].get(when)
                if held is None or candidate[0] < held[0]:
                    best[(ca, unit, scp)][when] = candidate
    totals: dict[dt.date, int] = defaultdict(int)
    for series in best.values():
        times = sorted(series)
        for before, after in zip(times, times[1:]):
            gap = (after - before).total_seconds()
            difference = abs(series[after][1] - series[before][1])
            other = abs(series[after][2] - series[before][2])
            if gap > 24 * 3600 or difference >= 10_000 or other >= 10_000:
                continue
            counted = min(difference, int(gap // 2))
            totals[(before + (after - before) / 2).date()] += counted
    return dict(totals)


@pytest.fixture
def station_key_path() -> Path:
    return require_samples() / "reference" / "Remote-Booth-Station_mango314.csv"


def readings_in_lake(lake: Lake, weeks: list[str], folder: Path) -> list[Path]:
    """MTA's files rebuilt from the samples, parsed into the lake's readings tables as
    ``turnstile_readings`` writes them (the turnstile steps have their own tests; skipping
    them here keeps this test light enough to run beside the others)."""
    files = []
    for week in weeks:
        name = file_name_for_week(week)
        source = rebuild_full_week(f"{name[len('turnstile_'):-len('.txt')]}.csv.gz", folder)
        staged = folder / f"{week}.parquet"
        write_parquet(parse_week(source.read_bytes(), week, name).table, staged)
        lake.put_file(staged, lake.key_for("readings", week, ".parquet"), "application/vnd.apache.parquet")
        files.append(source)
    return files


def test_real_weeks_make_ridership_that_matches_an_independent_computation(tmp_path, mirror, station_key_path):
    lake = Lake(url=str(tmp_path / "lake"))
    served = readings_in_lake(lake, REAL_WEEKS, tmp_path / "mta")
    instance = dg.DagsterInstance.ephemeral()

    result = dg.materialize(
        ASSETS,
        selection=[key for asset in ridership_assets for key in asset.keys],
        resources=resources(mirror, lake, station_key_path),
        instance=instance,
        tags={"dagster/asset_partition_range_start": REAL_WEEKS[0], "dagster/asset_partition_range_end": REAL_WEEKS[-1]},
    )
    assert result.success

    rows = lake_table(lake, "ridership", REAL_WEEKS, tmp_path / "read").to_pylist()
    ours: dict[dt.date, int] = defaultdict(int)
    units_by_day: dict[dt.date, set] = defaultdict(set)
    dropped_by_week: dict[str, int] = defaultdict(int)
    for row in rows:
        ours[row["date"]] += row["entries"]
        units_by_day[row["date"]].add(row["unit"])
        dropped_by_week[str(row["week"])] += row["intervals_dropped"]
    unnamed = sum(1 for row in rows if row["station"] is None)
    readings = lake_table(lake, "readings", REAL_WEEKS, tmp_path / "read")
    readings_units = len(set(readings["unit"].to_pylist()))
    station_units = len(set(lake_table(lake, "stations", REAL_WEEKS, tmp_path / "read")["unit"].to_pylist()))
    units_per_day = [(len(units_by_day[day]),) for day in sorted(units_by_day)]
    dropped_per_week = sorted(dropped_by_week.items())
    independent = independent_entries_by_day(served)

    first = dt.date.fromisoformat(REAL_WEEKS[0])
    last = dt.date.fromisoformat(REAL_WEEKS[-1]) + dt.timedelta(days=6)
    full_days = [first + dt.timedelta(days=n) for n in range((last - first).days)]  # the last Friday is partial
    assert set(full_days) <= set(ours)
    for day in full_days:
        assert ours[day] == pytest.approx(independent[day], rel=TOLERANCE), day
    assert unnamed == 0
    # Each later week starts from the week before's last readings; the first week cannot.
    dropped = [count for _, count in dropped_per_week]
    assert all(count < dropped[0] / 10 for count in dropped[1:]), dropped_per_week
    assert readings_units == station_units
    assert min(count for (count,) in units_per_day[:-1]) >= 0.95 * readings_units

    weekdays = [ours[day] for day in full_days if day.weekday() < 5]
    weekends = [ours[day] for day in full_days if day.weekday() >= 5]
    assert sum(weekdays) / len(weekdays) > 1.3 * sum(weekends) / len(weekends)

    # Each week's own materialization carries its chart, its top stations and its checks.
    materializations = {m.partition: m.metadata for m in materializations_of(result, "ridership_daily")}
    assert sorted(materializations) == REAL_WEEKS
    for week, metadata in materializations.items():
        assert metadata["chart"].value.startswith("![system entries and exits per day")
        assert "data:image/svg+xml;base64," in metadata["chart"].value
        assert metadata["top_stations"].value.count("\n") == 11  # header, rule and 10 stations
        assert metadata["previous_week_used"].value is (week != REAL_WEEKS[0])
        assert metadata["uri"].value.endswith(".parquet")
    evaluations = [
        record.dagster_event.event_specific_data
        for record in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if record.dagster_event.event_specific_data.asset_key == dg.AssetKey("ridership_daily")
    ]
    per_week = defaultdict(set)
    for evaluation in evaluations:
        if evaluation.partition:
            per_week[evaluation.partition].add((evaluation.check_name, evaluation.passed))
    for week in REAL_WEEKS:
        assert per_week[week] == {(spec.name, True) for spec in ridership_check_specs}, week


def test_the_previous_week_is_used_when_it_is_in_the_lake_and_a_rerun_changes_nothing(
    tmp_path, mirror, synthetic_week
):
    weeks = consecutive_weeks("2024-01-06", 2)
    for week in weeks:
        synthetic_week(week, readings=3000)
    lake = Lake(url=str(tmp_path / "lake"))
    instance = dg.DagsterInstance.ephemeral()
    res = resources(mirror, lake, None)  # no key: the 11-column names are kept

    assert dg.materialize(ASSETS, partition_key=weeks[1], resources=res, instance=instance).success
    alone = instance.get_latest_materialization_event(dg.AssetKey("ridership_daily")).asset_materialization.metadata
    assert alone["previous_week_used"].value is False

    ranged = materialize_range(weeks, res, instance)
    assert ranged.success
    used = {m.partition: m.metadata["previous_week_used"].value for m in materializations_of(ranged, "ridership_daily")}
    assert used == {weeks[0]: False, weeks[1]: True}
    before = {week: lake.read_bytes(lake.key_for("ridership", week, ".parquet")) for week in weeks}

    assert materialize_range(weeks, res, instance).success
    assert {week: lake.read_bytes(lake.key_for("ridership", week, ".parquet")) for week in weeks} == before


def test_a_wide_week_without_a_station_key_fails_its_station_check_and_is_not_stored(tmp_path, mirror, synthetic_week):
    week = "2013-01-26"
    synthetic_week(week, readings=1500)
    lake = Lake(url=str(tmp_path / "lake"))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        ASSETS, partition_key=week, resources=resources(mirror, lake, None),
        instance=instance, raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == "ridership_weeks")
    assert f"week {week}: blocking checks failed: every_unit_has_station" in failure.event_specific_data.error.message
    checks = {
        r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data
        for r in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if r.dagster_event.event_specific_data.asset_key == dg.AssetKey("ridership_daily")
    }
    assert checks["every_unit_has_station"].passed is False
    assert "station key unavailable from http://127.0.0.1:9/key.csv" in checks["every_unit_has_station"].metadata["station_key"].value
    assert lake.stat(lake.key_for("ridership", week, ".parquet")) is None


def test_a_week_that_fails_a_blocking_check_keeps_its_last_good_stations_and_ridership(
    tmp_path, mirror, synthetic_week, station_key_path
):
    """Named with the key, then run again while the key is unavailable: the station check
    blocks, and the week's stations object (read beside its ridership) is not replaced."""
    week = "2013-01-26"
    synthetic_week(week, readings=1500)
    lake = Lake(url=str(tmp_path / "lake"))
    instance = dg.DagsterInstance.ephemeral()
    good = dg.materialize(
        ASSETS, partition_key=week, resources=resources(mirror, lake, station_key_path), instance=instance
    )
    assert good.success
    objects = {dataset: lake.key_for(dataset, week, ".parquet") for dataset in ("stations", "ridership")}
    before = {dataset: lake.read_bytes(key) for dataset, key in objects.items()}
    stat_before = {dataset: lake.stat(key) for dataset, key in objects.items()}
    unnamed = pq.read_table(lake.fetch(objects["stations"], tmp_path / "good"))["station"].null_count
    assert unnamed == 0

    blocked = dg.materialize(
        ASSETS, partition_key=week, resources=resources(mirror, lake, None), instance=instance, raise_on_error=False
    )
    assert not blocked.success
    failure = next(e for e in blocked.all_events if e.is_step_failure and e.step_key == "ridership_weeks")
    assert f"week {week}: blocking checks failed: every_unit_has_station" in failure.event_specific_data.error.message
    assert materializations_of(blocked, "stations") == []
    assert materializations_of(blocked, "ridership_daily") == []
    assert {dataset: lake.read_bytes(key) for dataset, key in objects.items()} == before
    assert {dataset: lake.stat(key) for dataset, key in objects.items()} == stat_before
    for asset in ("stations", "ridership_daily"):
        latest = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert latest.run_id == good.run_id, asset


def test_the_checks_judge_a_weeks_rows_as_the_readme_says():
    import pyarrow as pa

    from mta_assets.defs.ridership.checks import (
        check_named,
        check_plausible,
        check_usable,
        full_days,
        mean_daily_entries,
    )

    assert full_days("2024-01-06") == (dt.date(2024, 1, 6), dt.date(2024, 1, 11))
    by_day = {dt.date(2024, 1, 5): (10, 1), dt.date(2024, 1, 6): (100, 1), dt.date(2024, 1, 11): (200, 1),
              dt.date(2024, 1, 12): (5, 1)}
    assert mean_daily_entries(by_day, "2024-01-06") == 150.0  # the partial Fridays do not count

    assert check_plausible(150.0, [], 0.5).passed  # nothing to compare with yet
    assert check_plausible(150.0, [100.0, 140.0, 200.0], 0.5).passed
    low = check_plausible(60.0, [100.0, 140.0, 200.0], 0.5)
    assert not low.passed and low.metadata["change"].value == pytest.approx(0.5714, abs=1e-4)
    assert not check_plausible(0.0, [], 0.5).passed

    rows = pa.table({"intervals_used": [90, 5], "intervals_capped": [1, 0], "intervals_dropped": [4, 0]})
    assert check_usable(rows, 0.05).passed  # 5 of 100
    assert not check_usable(rows, 0.04).passed
    assert check_usable(rows, 0.04).severity == dg.AssetCheckSeverity.WARN

    stations = pa.table({"unit": ["R051", "R999"], "ca": ["A002", "Z999"], "station": ["LEXINGTON AVE", None]})
    named = check_named(stations, "key.csv")
    assert not named.passed and named.metadata["examples"].value == ["R999/Z999"]
    assert check_named(stations.slice(0, 1), "key.csv").passed


def one_week_built(tmp_path, mirror, synthetic_week) -> tuple[str, Lake, dict, dg.DagsterInstance]:
    """A small synthetic week taken through the turnstile and ridership assets on a local lake."""
    week = "2024-01-06"
    synthetic_week(week, readings=3000)
    lake = Lake(url=str(tmp_path / "lake"))
    instance = dg.DagsterInstance.ephemeral()
    res = resources(mirror, lake, None)
    assert dg.materialize(ASSETS, partition_key=week, resources=res, instance=instance).success
    return week, lake, res, instance


def test_each_ridership_asset_can_be_materialized_alone_from_what_the_lake_holds(tmp_path, mirror, synthetic_week):
    """One step makes both assets; selected alone, each reads what it needs from the lake."""
    week, lake, res, instance = one_week_built(tmp_path, mirror, synthetic_week)
    stored = {dataset: lake.read_bytes(lake.key_for(dataset, week, ".parquet")) for dataset in ("stations", "ridership")}

    for name in ("stations", "ridership_daily"):
        alone = dg.materialize(ASSETS, selection=[name], partition_key=week, resources=res, instance=instance)
        assert alone.success
        assert [m.asset_key.to_user_string() for m in materializations_of(alone, name)] == [name]
        assert {e.asset_key for e in alone.get_asset_materialization_events()} == {dg.AssetKey(name)}
    # Recomputed from the same readings and the lake's stations: the same bytes.
    assert lake.read_bytes(lake.key_for("ridership", week, ".parquet")) == stored["ridership"]
    assert lake.read_bytes(lake.key_for("stations", week, ".parquet")) == stored["stations"]


def test_an_interrupted_range_records_the_weeks_it_committed_before_the_interrupt(
    tmp_path, mirror, synthetic_week, monkeypatch
):
    """Terminate in the middle of the ridership step's weeks: those already stored are recorded, the rest stay missing."""
    import mta_assets.defs.ridership.assets as ridership

    weeks = consecutive_weeks("2023-12-30", 3)
    for week in weeks:
        synthetic_week(week, readings=2000)
    lake = Lake(url=str(tmp_path / "lake"))
    instance = dg.DagsterInstance.ephemeral()
    res = resources(mirror, lake, None)
    turnstile = dg.materialize(
        ASSETS, selection="group:mta_turnstile", resources=res, instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
    )
    assert turnstile.success

    computed = ridership._week

    def interrupted_at_the_last_week(week, *args):
        if week == weeks[-1]:
            raise KeyboardInterrupt  # what Dagster's Terminate raises in the step, as an interrupt
        return computed(week, *args)

    monkeypatch.setattr(ridership, "_week", interrupted_at_the_last_week)
    result = dg.materialize(
        ASSETS, selection="group:mta_ridership", resources=res, instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
    )
    assert not result.success
    assert [event.step_key for event in result.all_events if event.is_step_failure] == ["ridership_weeks"]
    for asset in ("stations", "ridership_daily"):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(weeks[:2]), asset
    assert lake.read_bytes(lake.key_for("ridership", weeks[1], ".parquet")) is not None


def test_a_week_whose_ridership_cannot_be_computed_fails_alone_naming_its_cause(tmp_path, mirror, synthetic_week):
    week, lake, res, instance = one_week_built(tmp_path, mirror, synthetic_week)
    lake.delete(lake.key_for("stations", week, ".parquet"))  # ridership alone reads the week's stations from the lake

    alone = dg.materialize(ASSETS, selection=["ridership_daily"], partition_key=week, resources=res,
                           instance=instance, raise_on_error=False)
    assert not alone.success
    (failure,) = [event for event in alone.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "1 of 1 week(s) failed" in message and f"week {week}: no stations table in the lake" in message
