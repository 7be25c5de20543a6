"""The official ridership assets against the loopback SODA server, on a local lake."""

import datetime as dt
import statistics

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mta_assets.defs.official.assets import official_daily, official_hourly_week, station_complexes
from mta_assets.defs.official.checks import HOURLY
from mta_assets.defs.official.partitions import official_partitions
from mta_assets.defs.official.resources import OpenDataSource
from mta_assets.defs.resources import Lake, LakeIOManager
from mta_assets.mta import official
from mta_assets.storage.commit import week_key
from mta_assets_tests.fixtures_gcs import free_port
from mta_assets_tests.official_helpers import PUBLISHED_THROUGH, STATIONS, soda_mirror  # noqa: F401

WEEK = "2024-01-06"


def _resources(tmp_path, mirror, **source) -> dict:
    lake = Lake(url=str(tmp_path / "lake"))
    return {
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        "open_data": OpenDataSource(base_url=mirror.url, page_size=5_000, backoff_factor_s=0.1, **source),
    }


INSTANCE = {}


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    # Every week's results are logged on its partition (defs/weeks.py), in failed runs too: read them from the instance.
    records = INSTANCE["current"].all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return {r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data for r in records}


def _materialize(*args, **kwargs):
    kwargs.setdefault("instance", dg.DagsterInstance.ephemeral())
    INSTANCE["current"] = kwargs["instance"]
    return dg.materialize(*args, **kwargs)


def test_a_published_week_is_downloaded_validated_and_committed_together(tmp_path, soda_mirror):
    res = _resources(tmp_path, soda_mirror)
    result = _materialize([official_hourly_week], partition_key=WEEK, resources=res)
    assert result.success
    checks = _checks(result)
    assert {name for name, e in checks.items() if e.passed} >= {"schema", "every_hour_present", "no_duplicate_rows", "ridership_not_negative", "plausible"}
    lake = res["lake"].client
    hourly = pq.read_table(lake.root / week_key(lake, "official", "hourly", WEEK))
    # Parquet has no seconds unit: the contract's timestamp[s] is stored as milliseconds.
    assert hourly.schema.field("transit_timestamp").type == pa.timestamp("ms")
    assert hourly.cast(official.hourly_schema()).schema == official.hourly_schema()
    assert len(official.missing_hours(hourly, WEEK)) == 0
    raw = official.parse_hourly(lake.root / week_key(lake, "official", "hourly_raw", WEEK))
    assert raw.num_rows == hourly.num_rows > 5_000  # more than one page
    (materialization,) = [m for m in result.asset_materializations_for_node("official_hourly_week") if m.asset_key.path == ["official_hourly"]]
    assert materialization.metadata["rows"].value == hourly.num_rows
    assert materialization.metadata["total_ridership"].value == official.total_ridership(hourly)
    pages = [r for r in soda_mirror.requests if r["path"] == "/resource/wujg-7c2s.csv"]
    assert [int(p["query"]["$offset"]) for p in pages] == [5_000 * n for n in range(len(pages))] and len(pages) > 1


def test_a_week_with_a_missing_hour_is_blocked_and_nothing_is_committed(tmp_path, soda_mirror):
    gap = dt.datetime(2024, 1, 9, 4)
    soda_mirror.drop_hours = frozenset({gap})
    res = _resources(tmp_path, soda_mirror)
    result = _materialize([official_hourly_week], partition_key=WEEK, resources=res, raise_on_error=False)
    assert not result.success
    hours = _checks(result)["every_hour_present"]
    assert not hours.passed and "2024-01-09 04:00" in hours.description
    assert week_key(res["lake"].client, "official", "hourly", WEEK) is None
    assert not list((tmp_path / "lake").rglob("*.parquet")) and not list((tmp_path / "lake").rglob("*.gz"))
    assert "week 2024-01-06 not committed" in str(result.failure_data_for_node("official_hourly_week").error)


def test_a_week_not_published_yet_ends_without_error_or_materialization(tmp_path, soda_mirror):
    later = (PUBLISHED_THROUGH + dt.timedelta(days=1)).date()
    week = (later - dt.timedelta(days=(later.weekday() - 5) % 7)).isoformat()
    res = _resources(tmp_path, soda_mirror)
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize([official_hourly_week], partition_key=week, resources=res, instance=instance)
    assert result.success  # no failure, so no run-failure alert
    assert result.asset_materializations_for_node("official_hourly_week") == []
    assert week_key(res["lake"].client, "official", "hourly", week) is None
    logs = [e.user_message for e in instance.all_logs(result.run_id) if f"week {week} is not published yet" in e.user_message]
    assert logs, "the run says why nothing was materialized"


def test_the_daily_totals_and_the_station_complexes_are_stored_whole(tmp_path, soda_mirror):
    res = _resources(tmp_path, soda_mirror, station_complexes_url=str(STATIONS))
    result = _materialize([official_daily, station_complexes], resources=res)
    assert result.success
    lake = res["lake"].client
    daily = pq.read_table(lake.root / "official/daily/daily_ridership.parquet")
    assert daily.schema == official.daily_schema() and daily.num_rows == 1_720
    assert daily.filter(pc.equal(daily["date"], dt.date(2024, 2, 1)))["subways_total_estimated_ridership"].to_pylist() == [3_814_682]
    crosswalk = pq.read_table(lake.root / "official/stations/station_complexes.parquet")
    assert crosswalk.column_names == ["unit", "ca", "complex_id", "complex_name", "source"]
    row = crosswalk.filter(pc.and_(pc.equal(crosswalk["unit"], "R051"), pc.equal(crosswalk["ca"], "A002"))).to_pylist()
    assert row == [{"unit": "R051", "ca": "A002", "complex_id": "613", "complex_name": row[0]["complex_name"], "source": "hshore29"}]
    assert row[0]["complex_name"].startswith("Lexington Av/59 St")
    assert _checks(result)["every_unit_has_complex"].passed


def test_the_sensor_requests_each_published_week_once_and_never_one_not_published(soda_mirror):
    from mta_assets.defs.official.sensors import official_publication_sensor

    res = {"open_data": OpenDataSource(base_url=soda_mirror.url)}
    first = official_publication_sensor(dg.build_sensor_context(resources=res))
    # The mirror has published through 2024-01-12 23:00; MTA's daily totals are refreshed with each new week.
    assert [(r.partition_key, r.asset_selection) for r in first] == [
        (WEEK, [dg.AssetKey("official_hourly_raw"), HOURLY]), (None, [dg.AssetKey("official_daily")])]
    behind = official_publication_sensor(dg.build_sensor_context(cursor="2023-12-23", resources=res))
    assert [(r.partition_key, r.run_key) for r in behind] == [
        ("2023-12-30", "official_hourly:2023-12-30"), (WEEK, f"official_hourly:{WEEK}"), (None, f"official_daily:{WEEK}")]
    current = official_publication_sensor(dg.build_sensor_context(cursor=WEEK, resources=res))
    assert isinstance(current, dg.SkipReason) and "rows through 2024-01-12 23:00:00" in current.skip_message


def test_the_week_check_states_turnstile_over_official_on_the_full_days_when_both_sources_exist(tmp_path, soda_mirror):
    res = _resources(tmp_path, soda_mirror)
    first = _materialize([official_hourly_week], partition_key=WEEK, resources=res)
    lake = res["lake"].client
    hourly = pq.read_table(lake.root / week_key(lake, "official", "hourly", WEEK))
    by_day = official.daily_totals(hourly)
    # A ridership_daily week as the turnstiles give it: Saturday to Thursday at 0.40-0.65 of the
    # official ridership, and a partial Friday (its evening is in the next week's file) at 0.10.
    days = sorted(by_day)
    friday = dt.date.fromisoformat(WEEK) + dt.timedelta(days=6)
    assert len(days) == 7 and days[-1] == friday
    share = {day: (0.10 if day == friday else 0.40 + 0.05 * n) for n, day in enumerate(days)}
    entries = {day: int(by_day[day] * share[day]) for day in days}
    ridership = pa.table({"date": pa.array(days, pa.date32()), "entries": [entries[d] for d in days],
                          "exits": [0] * len(days)})
    path = tmp_path / "ridership.parquet"
    pq.write_table(ridership, path)
    lake.put_file(path, lake.key_for("ridership", WEEK, ".parquet"), "application/vnd.apache.parquet")
    assert _checks(first)["turnstile_over_official"].passed  # nothing to compare with yet
    again = _materialize([official_hourly_week], partition_key=WEEK, resources=res)
    check = _checks(again)["turnstile_over_official"]
    # The median of the six full days' ratios (about 0.525): the partial Friday would pull it to 0.50.
    expected = statistics.median(entries[d] / by_day[d] for d in days if d != friday)
    assert 0.52 < expected < 0.53
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert (f"turnstile entries are {expected:.2f} of MTA's hourly ridership (median of 6 full days, "
            "Sat 2024-01-06 to Thu 2024-01-11") in check.description
    assert check.metadata["turnstile_over_official"].value == round(expected, 4)
    assert check.metadata["days_compared"].value == "Sat 2024-01-06 to Thu 2024-01-11, the week's full days"
    assert f"ratio_{friday}" not in check.metadata
    (materialization,) = [m for m in again.asset_materializations_for_node("official_hourly_week") if m.asset_key == HOURLY]
    assert materialization.metadata["turnstile_over_official"].value == round(expected, 4)


def test_a_range_commits_its_published_weeks_and_leaves_the_unpublished_one_missing(tmp_path, soda_mirror):
    later = (PUBLISHED_THROUGH + dt.timedelta(days=1)).date()
    unpublished = (later - dt.timedelta(days=(later.weekday() - 5) % 7)).isoformat()
    weeks = [(dt.date.fromisoformat(unpublished) - dt.timedelta(weeks=n)).isoformat() for n in (2, 1, 0)]
    res = _resources(tmp_path, soda_mirror)
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(
        [official_hourly_week], resources=res, instance=instance,
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
    )
    assert result.success  # one run for the range; the unpublished week is no error
    status = instance.get_status_by_partition(HOURLY, weeks, official_hourly_week.partitions_def)
    assert {week for week, state in status.items() if state == dg.AssetPartitionStatus.MATERIALIZED} == set(weeks[:2])
    for week in weeks:
        assert (week_key(res["lake"].client, "official", "hourly", week) is None) is (week == unpublished), week


def test_weeks_after_one_whose_source_is_down_are_not_tried_in_that_run(tmp_path):
    weeks = ["2023-12-30", "2024-01-06", "2024-01-13"]
    # Nothing listens there: the first week's download fails past its retries.
    down = OpenDataSource(base_url=f"http://127.0.0.1:{free_port()}", retries=1, backoff_factor_s=0)
    lake = Lake(url=str(tmp_path / "lake"))
    result = _materialize(
        [official_hourly_week], resources={"lake": lake, "lake_io_manager": LakeIOManager(lake=lake), "open_data": down},
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
    )
    assert not result.success
    # The step's RetryPolicy tried twice more; the last attempt's failure names every week.
    assert len([event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]) == 2
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    error = failure.step_failure_data.error  # "Exceeded max_retries of 2", caused by the last attempt's failure
    message = error.cause.message
    assert "3 of 3 week(s) failed" in message
    for week in weeks[:2]:
        assert f"week {week}: cannot fetch" in message
    assert "Connection refused" in message
    assert f"week {weeks[2]}: not tried, the source was down (see weeks {weeks[0]} and {weeks[1]})" in message
    assert not (tmp_path / "lake").exists() or not any(path.is_file() for path in (tmp_path / "lake").rglob("*"))


def test_a_users_asset_reads_the_official_week_and_the_daily_totals_through_the_io_manager(tmp_path, soda_mirror):
    res = _resources(tmp_path, soda_mirror, station_complexes_url=str(STATIONS))
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize([official_hourly_week], partition_key=WEEK, resources=res, instance=instance).success
    assert _materialize([official_daily], resources=res, instance=instance).success
    lake = res["lake"].client
    stored = pq.read_table(lake.root / week_key(lake, "official", "hourly", WEEK))
    seen = {}

    @dg.asset(partitions_def=official_partitions)
    def official_rows(official_hourly: pa.Table, official_hourly_raw) -> None:
        """The week's validated table, and its raw file as a mapping week -> file."""
        seen["hourly"] = official_hourly.num_rows
        seen["raw"] = official.parse_hourly(official_hourly_raw[WEEK]).num_rows

    @dg.asset
    def busiest_day(official_daily: pd.DataFrame) -> None:
        """The unpartitioned daily totals as a data frame."""
        seen["days"] = len(official_daily)

    assets = [official_hourly_week, official_daily, official_rows, busiest_day]
    assert dg.materialize(assets, selection=["official_rows"], partition_key=WEEK, resources=res, instance=instance).success
    assert dg.materialize(assets, selection=["busiest_day"], resources=res, instance=instance).success
    assert seen == {"hourly": stored.num_rows, "raw": stored.num_rows, "days": 1_720}


def test_a_lake_error_in_one_week_of_a_range_fails_that_week_alone_and_once(tmp_path, soda_mirror):
    weeks = ["2023-12-23", "2023-12-30", "2024-01-06"]
    res = _resources(tmp_path, soda_mirror)
    lake = res["lake"].client
    # The middle week's folder is a file: every upload of that week fails for good ("Not a directory").
    blocked = lake.root / "official" / "hourly_raw" / "2023" / weeks[1]
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(
        [official_hourly_week], resources=res, instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
    )
    assert not result.success
    # A permanent cause: no retry of the step, so the week was downloaded once.
    assert not [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]
    first_pages = [
        r["query"]["$where"] for r in soda_mirror.requests
        if r["path"] == "/resource/wujg-7c2s.csv" and int(r["query"]["$offset"]) == 0
    ]
    assert sum(f">= '{weeks[1]}T" in where for where in first_pages) == 1
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "1 of 3 week(s) failed" in message and f"week {weeks[1]}: " in message and "Not a directory" in message
    # The other weeks are committed and recorded as such; the failed one stays missing.
    status = instance.get_status_by_partition(HOURLY, weeks, official_hourly_week.partitions_def)
    assert status == {
        weeks[0]: dg.AssetPartitionStatus.MATERIALIZED,
        weeks[1]: dg.AssetPartitionStatus.FAILED,
        weeks[2]: dg.AssetPartitionStatus.MATERIALIZED,
    }
    assert [week_key(lake, "official", "hourly", week) is not None for week in weeks] == [True, False, True]
