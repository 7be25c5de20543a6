import datetime as dt

import dagster as dg
import pyarrow as pa
import pytest

from mta_assets.defs.turnstile import checks
from mta_assets.mta.parse import ParsedWeek, arrow_schema

WEEK = "2023-12-30"


def readings_table(rows: list[dict]) -> pa.Table:
    defaults = dict(ca="A002", unit="R051", scp="02-00-00", station="59 ST", linename="NQR456W", division="BMT",
                    desc="REGULAR", entries=100, exits=50, week=dt.date(2023, 12, 30), source_file="turnstile_240106.txt")
    return pa.Table.from_pylist([{**defaults, **row} for row in rows], schema=arrow_schema())


def parsed(table: pa.Table, rejected: int = 0, seen: int | None = None) -> ParsedWeek:
    return ParsedWeek(table=table, layout="eleven_column", lines=table.num_rows + 1, blank_lines=0,
                      readings_seen=seen if seen is not None else table.num_rows + rejected, rejected=rejected,
                      rejected_samples=[{"line": 7, "reason": "non-numeric ENTRIES", "text": "A002,..."}] if rejected else [])


GOOD = readings_table([{"reading_time": dt.datetime(2023, 12, 30, 3) + dt.timedelta(hours=4 * i), "entries": 100 + i} for i in range(42)])


def test_a_good_week_passes_every_check():
    results = [*checks.table_checks(parsed(GOOD), WEEK, 0.001), checks.check_volume(GOOD.num_rows, [42, 40, 44], 0.25)]
    assert {r.check_name for r in results} == {spec.name for spec in checks.readings_check_specs}
    assert all(r.passed for r in results)
    assert checks.blocking_failures(results) == []


def test_schema_check_names_missing_and_mistyped_columns():
    broken = GOOD.drop_columns(["division"]).set_column(
        GOOD.schema.get_field_index("entries") - 1, "entries", GOOD["entries"].cast(pa.float64())
    )
    result = checks.check_schema(broken)
    assert not result.passed
    assert result.metadata["missing_columns"].value == ["division"]
    assert result.metadata["wrong_types"].value == {"entries": "double (expected int64)"}


def test_negative_counters_fail():
    table = readings_table([{"reading_time": dt.datetime(2023, 12, 30, 3), "entries": -5, "exits": 1}])
    result = checks.check_non_negative(table)
    assert not result.passed
    assert result.metadata["negative_entries"].value == 1
    assert result.metadata["negative_exits"].value == 0
    assert "-5" in result.metadata["examples"].value


@pytest.mark.parametrize("when", [dt.datetime(2023, 12, 29, 23), dt.datetime(2024, 1, 6, 0, 0)])
def test_readings_outside_the_week_fail(when):
    table = readings_table([{"reading_time": dt.datetime(2023, 12, 30, 0, 0)}, {"reading_time": when}])
    result = checks.check_inside_week(table, WEEK)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["readings_outside"].value == 1
    assert result.metadata["window_end"].value == "2024-01-06T00:00:00"


def test_readings_outside_a_2010_wednesday_week_only_warn():
    table = readings_table([{"reading_time": dt.datetime(2010, 4, 28, 3), "week": dt.date(2010, 5, 1)}])
    result = checks.check_inside_week(table, "2010-05-01")
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert checks.blocking_failures([result]) == []


def test_duplicate_reading_keys_fail():
    twice = {"reading_time": dt.datetime(2023, 12, 30, 3), "desc": "REGULAR"}
    table = readings_table([twice, {**twice, "entries": 101}, {**twice, "desc": "RECOVR AUD"}])
    result = checks.check_no_duplicates(table)
    assert not result.passed
    assert result.metadata["duplicated_keys"].value == 1
    assert result.metadata["extra_rows"].value == 1


def test_reject_rate_over_threshold_fails_with_samples():
    result = checks.check_reject_rate(parsed(GOOD, rejected=2, seen=1000), 0.001)
    assert not result.passed
    assert result.metadata["reject_share"].value == 0.002
    assert result.metadata["rejected_samples"].value[0]["line"] == 7
    assert checks.check_reject_rate(parsed(GOOD, rejected=1, seen=1000), 0.001).passed


def test_volume_zero_fails_and_a_large_deviation_warns():
    empty = checks.check_volume(0, [250_000], 0.25)
    assert not empty.passed and empty.severity == dg.AssetCheckSeverity.ERROR
    low = checks.check_volume(100_000, [250_000, 252_000, 249_000], 0.25)
    assert not low.passed and low.severity == dg.AssetCheckSeverity.WARN
    assert low.metadata["median_of_earlier_weeks"].value == 250_000
    assert checks.check_volume(240_000, [250_000], 0.25).passed
    assert checks.check_volume(5, [], 0.25).passed
    assert checks.VOLUME not in checks.BLOCKING


def test_blocking_failures_only_count_blocking_errors():
    results = [*checks.table_checks(parsed(GOOD, rejected=50, seen=100), WEEK, 0.001), checks.check_volume(42, [1000], 0.25)]
    assert checks.blocking_failures(results) == ["reject_rate_under_threshold"]
