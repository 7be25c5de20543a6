"""``validate_week`` on crafted tables: every check, passing and failing."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest

from mta_assets.mta.formats import arrow_schema
from mta_assets.mta.parse import ParsedWeek, parse_week
from mta_assets.mta.validate import (
    CHECKS,
    Outcome,
    ValidationSettings,
    WeekEvidence,
    blocking_failures,
    validate_week,
)
from mta_assets_tests.samples import rebuild_full_week

WEEK = "2023-12-30"
FILE = "turnstile_240106.txt"
START = dt.datetime(2023, 12, 30)


def readings_table(rows: list[dict], week: dt.date = dt.date(2023, 12, 30), source_file: str = FILE) -> pa.Table:
    defaults = dict(ca="A002", unit="R051", scp="02-00-00", station="59 ST", linename="NQR456W", division="BMT",
                    desc="REGULAR", entries=100, exits=50, week=week, source_file=source_file)
    return pa.Table.from_pylist([{**defaults, **row} for row in rows], schema=arrow_schema())


# Every 4 hours from Saturday 00:00 to Friday 20:00: the week's 42 regular readings.
GOOD = readings_table([{"reading_time": START + dt.timedelta(hours=4 * i), "entries": 100 + i} for i in range(42)])


def parsed(table: pa.Table = GOOD, *, layout: str = "eleven_column", rejects: int = 0, seen: int | None = None,
           last_line_complete: bool = True) -> ParsedWeek:
    return ParsedWeek(
        table=table, layout=layout, lines=table.num_rows + 1, blank_lines=0,
        readings_seen=seen if seen is not None else table.num_rows + rejects, rejects=rejects,
        reject_samples=[{"line": 7, "reason": "non-numeric ENTRIES counter 'x'", "text": "A002,..."}] if rejects else [],
        last_line_complete=last_line_complete,
    )


def evidence(week: str = WEEK, source_file: str = FILE, length_stated: bool = True, earlier=(42, 40, 44)) -> WeekEvidence:
    return WeekEvidence(week=week, source_file=source_file, length_stated=length_stated, earlier_row_counts=earlier)


def outcome(outcomes: list[Outcome], name: str) -> Outcome:
    return next(o for o in outcomes if o.name == name)


def assert_failure_names_the_week(failed: Outcome, week: str = WEEK, source_file: str = FILE) -> None:
    assert not failed.passed
    assert failed.metadata["week"] == week
    assert failed.metadata["source_file"] == source_file
    assert "expected" in failed.metadata and "found" in failed.metadata
    assert f"week {week} ({source_file})" in failed.description


def test_the_checks_in_display_order_with_a_stable_blocking_flag():
    assert list(CHECKS) == [
        "schema_matches_contract", "layout_matches_week", "file_complete", "counters_non_negative",
        "readings_inside_week", "no_duplicate_readings", "reject_rate_under_threshold",
        "row_count_not_collapsed", "row_count_plausible",
    ]
    assert [name for name, (_, blocking) in CHECKS.items() if not blocking] == ["row_count_plausible"]


@pytest.mark.parametrize("length_stated", [True, False])
def test_a_good_week_passes_every_check(length_stated):
    outcomes = validate_week(parsed(), evidence(length_stated=length_stated))
    assert [o.name for o in outcomes] == list(CHECKS)
    assert all(o.passed for o in outcomes), [o.description for o in outcomes if not o.passed]
    assert blocking_failures(outcomes) == []
    assert all(o.blocking == CHECKS[o.name][1] for o in outcomes)


def test_schema_check_names_missing_and_mistyped_columns():
    broken = GOOD.drop_columns(["division"]).set_column(
        GOOD.schema.get_field_index("entries") - 1, "entries", GOOD["entries"].cast(pa.float64())
    )
    outcomes = validate_week(parsed(broken), evidence())
    schema = outcome(outcomes, "schema_matches_contract")
    assert_failure_names_the_week(schema)
    assert schema.metadata["missing_columns"] == ["division"]
    assert schema.metadata["wrong_types"] == {"entries": "double (expected int64)"}
    # The checks that read columns are not evaluated on a table outside the contract.
    assert not outcome(outcomes, "counters_non_negative").passed
    assert "not evaluated" in outcome(outcomes, "counters_non_negative").description


@pytest.mark.parametrize(
    ("week", "source_file", "layout", "expected"),
    [("2012-03-03", "turnstile_120310.txt", "eleven_column", "wide"),
     ("2020-03-07", "turnstile_200314.txt", "wide", "eleven_column")],
)
def test_a_layout_that_does_not_fit_the_week_blocks(week, source_file, layout, expected):
    table = readings_table([{"reading_time": dt.datetime.fromisoformat(week)}], dt.date.fromisoformat(week), source_file)
    result = outcome(validate_week(parsed(table, layout=layout), evidence(week, source_file, earlier=())), "layout_matches_week")
    assert_failure_names_the_week(result, week, source_file)
    assert result.blocking
    assert (result.metadata["expected"], result.metadata["found"]) == (expected, layout)
    assert f"expected the {expected} layout for this week, found a {layout} file" in result.description


def test_a_stated_length_proves_the_file_whole():
    result = outcome(validate_week(parsed(last_line_complete=False), evidence(length_stated=True)), "file_complete")
    assert result.passed
    assert result.metadata["verified_by"] == "Content-Length"


@pytest.mark.parametrize(
    ("table", "last_line_complete", "earlier", "problem"),
    [
        (GOOD, False, (42,), "the last line is cut short"),
        (GOOD.slice(0, 30), True, (), "before Friday 2024-01-05"),  # readings stop on Thursday
        (GOOD.slice(0, 20), True, (42, 42), "before Friday"),  # half a week: cut, and collapsed
    ],
)
def test_without_a_stated_length_the_content_must_prove_the_file_whole(table, last_line_complete, earlier, problem):
    outcomes = validate_week(parsed(table, last_line_complete=last_line_complete), evidence(length_stated=False, earlier=earlier))
    result = outcome(outcomes, "file_complete")
    assert_failure_names_the_week(result)
    assert result.blocking
    assert problem in result.description
    assert result in blocking_failures(outcomes)


def test_a_collapsed_row_count_fails_file_complete_and_blocks():
    # Readings reach Friday and the last line is whole, but half the turnstiles are gone.
    sparse = GOOD.filter(pa.array([i % 3 == 0 or i == 41 for i in range(42)]))
    outcomes = validate_week(parsed(sparse), evidence(length_stated=False, earlier=(42, 42, 42)))
    assert not outcome(outcomes, "file_complete").passed
    assert "row count collapsed" in outcome(outcomes, "file_complete").description
    assert not outcome(outcomes, "row_count_not_collapsed").passed


def test_negative_counters_block_with_examples():
    table = readings_table([{"reading_time": START, "entries": -5, "exits": 1}])
    result = outcome(validate_week(parsed(table), evidence(earlier=())), "counters_non_negative")
    assert_failure_names_the_week(result)
    assert (result.metadata["negative_entries"], result.metadata["negative_exits"]) == (1, 0)
    assert "-5" in result.metadata["examples_md"]


@pytest.mark.parametrize("when", [dt.datetime(2023, 12, 29, 23), dt.datetime(2024, 1, 6, 0, 0)])
def test_readings_outside_the_week_block(when):
    table = readings_table([{"reading_time": START}, {"reading_time": when}])
    result = outcome(validate_week(parsed(table), evidence(earlier=())), "readings_inside_week")
    assert_failure_names_the_week(result)
    assert result.blocking
    assert result.metadata["readings_outside"] == 1
    assert result.metadata["window_end"] == "2024-01-06T00:00:00"


def test_a_2010_file_that_is_not_known_to_straddle_blocks():
    # Every week of 2010 used to only warn; now a wrong file blocks in 2010 as in any year.
    table = readings_table([{"reading_time": dt.datetime(2010, 5, 1, 3)}], dt.date(2010, 5, 8), "turnstile_100515.txt")
    result = outcome(validate_week(parsed(table, layout="wide"), evidence("2010-05-08", "turnstile_100515.txt", earlier=())),
                     "readings_inside_week")
    assert_failure_names_the_week(result, "2010-05-08", "turnstile_100515.txt")


def test_the_known_straddling_first_file_passes_with_a_note():
    # turnstile_100505.txt, week 2010-04-24, holds readings from 2010-04-17.
    rows = [{"reading_time": dt.datetime(2010, 4, 17) + dt.timedelta(hours=4 * i)} for i in range(84)]
    table = readings_table(rows, dt.date(2010, 4, 24), "turnstile_100505.txt")
    outcomes = validate_week(parsed(table, layout="wide"), evidence("2010-04-24", "turnstile_100505.txt", earlier=()))
    result = outcome(outcomes, "readings_inside_week")
    assert result.passed
    assert result.metadata["readings_outside"] == 42
    assert "2010-04-17" in result.metadata["known_straddling_file"]
    assert blocking_failures(outcomes) == []


def test_duplicate_reading_keys_block():
    twice = {"reading_time": dt.datetime(2023, 12, 30, 3), "desc": "REGULAR"}
    table = readings_table([twice, {**twice, "entries": 101}, {**twice, "desc": "RECOVR AUD"}])
    result = outcome(validate_week(parsed(table), evidence(earlier=())), "no_duplicate_readings")
    assert_failure_names_the_week(result)
    assert (result.metadata["duplicated_keys"], result.metadata["extra_rows"]) == (1, 1)


def test_two_readings_in_the_fall_back_hour_are_not_duplicates():
    # 2023-11-05 01:00-01:59 happened twice in New York: MTA wrote both passes as 01:00.
    week, source_file = "2023-11-04", "turnstile_231111.txt"
    repeated = {"reading_time": dt.datetime(2023, 11, 5, 1, 0)}
    table = readings_table([repeated, {**repeated, "entries": 160}], dt.date(2023, 11, 4), source_file)
    result = outcome(validate_week(parsed(table), evidence(week, source_file, earlier=())), "no_duplicate_readings")
    assert result.passed
    assert result.metadata["fall_back_hour_pairs"] == 1

    # A third reading at that wall time, or a pair in an ordinary hour, is still a duplicate.
    thrice = readings_table([repeated, {**repeated, "entries": 160}, {**repeated, "entries": 170}],
                            dt.date(2023, 11, 4), source_file)
    assert not outcome(validate_week(parsed(thrice), evidence(week, source_file, earlier=())), "no_duplicate_readings").passed
    ordinary = {"reading_time": dt.datetime(2023, 11, 5, 5, 0)}
    pair = readings_table([ordinary, {**ordinary, "entries": 160}], dt.date(2023, 11, 4), source_file)
    assert not outcome(validate_week(parsed(pair), evidence(week, source_file, earlier=())), "no_duplicate_readings").passed


def test_reject_rate_over_threshold_blocks_with_samples():
    result = outcome(validate_week(parsed(rejects=2, seen=1000), evidence()), "reject_rate_under_threshold")
    assert_failure_names_the_week(result)
    assert result.metadata["reject_share"] == 0.002
    assert result.metadata["rejected_samples"][0]["line"] == 7
    assert outcome(validate_week(parsed(rejects=1, seen=1000), evidence()), "reject_rate_under_threshold").passed


def test_row_counts_warn_beyond_the_tolerance_and_block_beyond_the_drop():
    earlier = (100, 100, 100)
    settings = ValidationSettings(volume_tolerance=0.25, max_row_drop=0.5)

    def row_outcomes(rows: int) -> tuple[Outcome, Outcome]:
        table = GOOD.take(pa.array([i % 42 for i in range(rows)]))
        table = table.set_column(8, "entries", pa.array(range(rows), pa.int64()))
        outcomes = validate_week(parsed(table), evidence(earlier=earlier), settings)
        return outcome(outcomes, "row_count_not_collapsed"), outcome(outcomes, "row_count_plausible")

    collapsed, plausible = row_outcomes(90)
    assert collapsed.passed and plausible.passed
    collapsed, plausible = row_outcomes(60)  # 40% below: a warning only
    assert collapsed.passed and not plausible.passed and not plausible.blocking
    assert plausible.metadata["median_of_earlier_weeks"] == 100
    collapsed, plausible = row_outcomes(40)  # 60% below: blocks
    assert_failure_names_the_week(collapsed)
    assert collapsed.blocking and not plausible.passed
    collapsed, plausible = row_outcomes(200)  # twice the usual: a warning only
    assert collapsed.passed and not plausible.passed


def test_an_empty_week_fails_both_row_checks_even_without_history():
    outcomes = validate_week(parsed(GOOD.slice(0, 0)), evidence(earlier=()))
    assert not outcome(outcomes, "row_count_not_collapsed").passed
    assert not outcome(outcomes, "row_count_plausible").passed
    assert outcome(validate_week(parsed(), evidence(earlier=())), "row_count_plausible").passed


def test_outcome_metadata_is_plain_json(tmp_path):
    import json

    outcomes = validate_week(parsed(rejects=5, seen=10, last_line_complete=False), evidence(length_stated=False))
    for result in outcomes:
        json.dumps(result.metadata)
        assert all(isinstance(value, str) for key, value in result.metadata.items() if key.endswith("_md"))


def test_a_real_week_passes_every_check(tmp_path):
    path = rebuild_full_week("240113.csv.gz", tmp_path)
    week = parse_week(path, "2024-01-06", path.name)
    outcomes = validate_week(week, WeekEvidence("2024-01-06", path.name, False, [250_816]))
    assert [o.name for o in outcomes if not o.passed] == []
    # The same file served without a Content-Length and cut in half is refused.
    half = path.read_bytes()[: path.stat().st_size // 2]
    cut = parse_week(half, "2024-01-06", path.name)
    failed = blocking_failures(validate_week(cut, WeekEvidence("2024-01-06", path.name, False, [250_816])))
    # Half the rows is also more than the default 30% drop below the earlier weeks.
    assert [o.name for o in failed] == ["file_complete", "row_count_not_collapsed"]
    assert "the last line is cut short" in failed[0].description


def test_settings_and_evidence_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ValidationSettings().max_reject_share = 1  # type: ignore[misc]


# --- crafted files like the 2010 ones ------------------------------------------------------------


def wide_file(first: dt.datetime, days: int) -> bytes:
    """A wide-layout file: two turnstiles, 6 readings a day from ``first``, 8 readings a row."""
    lines = []
    for scp in ("02-00-00", "02-00-01"):
        moments = [first + dt.timedelta(hours=4 * i) for i in range(6 * days)]
        groups = [f"{m:%m-%d-%y},{m:%H:%M:%S},REGULAR,{1000 + i:09d},{500 + i:09d}" for i, m in enumerate(moments)]
        lines += [",".join(["A002,R051", scp, *groups[i : i + 8]]).ljust(500) for i in range(0, len(groups), 8)]
    return ("\n".join(lines) + "\n").encode()


def test_mtas_first_wednesday_file_is_week_2010_04_24_and_passes():
    from mta_assets.mta.calendar import candidate_file_names

    # Readings from Saturday 2010-04-17 to Tuesday 2010-05-04, published Wednesday 2010-05-05.
    name = candidate_file_names("2010-04-24")[0]
    assert name == "turnstile_100505.txt"
    week = parse_week(wide_file(dt.datetime(2010, 4, 17), 18), "2010-04-24", name)
    outcomes = validate_week(week, WeekEvidence("2010-04-24", name, False, []))
    assert [o.name for o in outcomes if not o.passed] == []
    assert outcome(outcomes, "readings_inside_week").metadata["readings_outside"] > 0


def test_a_saturday_named_2010_file_passes_and_the_same_straddling_content_under_it_blocks():
    name = "turnstile_100515.txt"  # week 2010-05-08
    good = parse_week(wide_file(dt.datetime(2010, 5, 8), 7), "2010-05-08", name)
    assert blocking_failures(validate_week(good, WeekEvidence("2010-05-08", name, True, []))) == []
    straddling = parse_week(wide_file(dt.datetime(2010, 5, 1), 10), "2010-05-08", name)
    failed = blocking_failures(validate_week(straddling, WeekEvidence("2010-05-08", name, True, [])))
    assert [o.name for o in failed] == ["readings_inside_week"]


def test_a_wide_file_served_for_a_2020_week_blocks_on_its_layout():
    name = "turnstile_200314.txt"
    week = parse_week(wide_file(dt.datetime(2020, 3, 7), 7), "2020-03-07", name)
    failed = blocking_failures(validate_week(week, WeekEvidence("2020-03-07", name, True, [])))
    assert [o.name for o in failed] == ["layout_matches_week"]
    assert "expected the eleven_column layout for this week, found a wide file" in failed[0].description
