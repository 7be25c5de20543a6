"""The ridership rules on crafted turnstile series (README "Ridership")."""

import datetime as dt

import pyarrow as pa
import pytest

from mta_assets.mta.ridership import Rules, daily, intervals, system_by_day
from mta_assets.mta.stations import STATION_COLUMNS

SAT = dt.date(2024, 1, 6)


def readings(*rows) -> pa.Table:
    """rows: (scp, 'MM-DD HH:MM', desc, entries, exits) of turnstile A002/R051, in 2024."""
    records = []
    for scp, when, desc, entries, exits in rows:
        month_day, clock = when.split(" ")
        month, day = month_day.split("-")
        hour, minute = clock.split(":")
        records.append(
            {
                "ca": "A002", "unit": "R051", "scp": scp,
                "reading_time": dt.datetime(2024, int(month), int(day), int(hour), int(minute)),
                "desc": desc, "entries": entries, "exits": exits,
            }
        )
    schema = pa.schema(
        [("ca", pa.string()), ("unit", pa.string()), ("scp", pa.string()), ("reading_time", pa.timestamp("s")),
         ("desc", pa.string()), ("entries", pa.int64()), ("exits", pa.int64())]
    )
    return pa.Table.from_pylist(records, schema=schema)


def rows_of(table: pa.Table) -> list[tuple]:
    return [(r["date"], r["entries"], r["exits"], r["status"]) for r in table.to_pylist()]


def test_consecutive_readings_give_their_differences():
    week = readings(
        ("01", "01-06 00:00", "REGULAR", 1000, 500),
        ("01", "01-06 04:00", "REGULAR", 1100, 530),
        ("01", "01-06 08:00", "REGULAR", 1400, 600),
    )
    result = intervals(week)
    assert rows_of(result) == [
        (SAT, 0, 0, "dropped"),  # the first reading has nothing before it (no previous week given)
        (SAT, 100, 30, "used"),
        (SAT, 300, 70, "used"),
    ]


def test_a_counter_running_backwards_counts_its_absolute_difference():
    week = readings(
        ("01", "01-06 00:00", "REGULAR", 5000, 9000),
        ("01", "01-06 04:00", "REGULAR", 4880, 8950),
    )
    assert rows_of(intervals(week))[1:] == [(SAT, 120, 50, "used")]


def test_a_reset_is_dropped_and_counting_resumes_after_it():
    week = readings(
        ("01", "01-06 00:00", "REGULAR", 1_234_567, 765_432),
        ("01", "01-06 04:00", "REGULAR", 12, 3),  # the register was reset to about zero
        ("01", "01-06 08:00", "REGULAR", 112, 43),
    )
    assert rows_of(intervals(week))[1:] == [(SAT, 0, 0, "dropped"), (SAT, 100, 40, "used")]


def test_a_jump_over_the_rate_cap_is_capped_and_over_the_reset_threshold_dropped():
    week = readings(
        ("01", "01-06 00:00", "REGULAR", 0, 0),
        ("01", "01-06 04:00", "REGULAR", 9_000, 10),  # 4 h allow 7,200 (one passage per 2 s)
        ("01", "01-06 08:00", "REGULAR", 19_000, 20),  # a jump of 10,000: a reset or garbage
    )
    assert rows_of(intervals(week))[1:] == [(SAT, 7_200, 10, "capped"), (SAT, 0, 0, "dropped")]


def test_a_gap_over_24_hours_is_dropped():
    week = readings(
        ("01", "01-06 00:00", "REGULAR", 100, 100),
        ("01", "01-07 04:00", "REGULAR", 300, 200),  # 28 h later
        ("01", "01-07 08:00", "REGULAR", 350, 260),
    )
    assert rows_of(intervals(week))[1:] == [(dt.date(2024, 1, 6), 0, 0, "dropped"), (dt.date(2024, 1, 7), 50, 60, "used")]


def test_regular_wins_over_recovr_aud_at_the_same_time_whatever_the_file_order():
    week = readings(
        ("01", "01-06 00:00", "REGULAR", 1000, 1000),
        ("01", "01-06 04:00", "RECOVR AUD", 5000, 5000),  # first in the file, but not REGULAR
        ("01", "01-06 04:00", "REGULAR", 1040, 1020),
        ("01", "01-06 08:00", "REGULAR", 1100, 1050),
    )
    result = intervals(week)
    assert result.num_rows == 3  # one interval per timestamp
    assert rows_of(result)[1:] == [(SAT, 40, 20, "used"), (SAT, 60, 30, "used")]


def test_an_interval_counts_on_the_day_of_its_midpoint():
    week = readings(
        ("01", "01-06 16:00", "REGULAR", 0, 0),
        ("01", "01-06 20:00", "REGULAR", 10, 10),
        ("01", "01-07 00:00", "REGULAR", 30, 20),  # 20:00-00:00 is Saturday evening
        ("01", "01-07 03:00", "REGULAR", 31, 21),  # 00:00-03:00 is Sunday
        ("01", "01-07 23:00", "REGULAR", 41, 31),  # 03:00-23:00, midpoint 13:00 Sunday
        ("01", "01-08 03:00", "REGULAR", 45, 35),  # 23:00-03:00, midpoint 01:00 Monday
    )
    days = [row[0] for row in rows_of(intervals(week))[1:]]
    assert days == [SAT, SAT, dt.date(2024, 1, 7), dt.date(2024, 1, 7), dt.date(2024, 1, 8)]


def test_the_first_interval_uses_the_previous_weeks_last_reading_when_there_is_one():
    previous = readings(
        ("01", "01-05 12:00", "REGULAR", 800, 400),
        ("01", "01-05 20:00", "REGULAR", 900, 450),
        ("02", "01-03 20:00", "REGULAR", 10, 10),  # more than 24 h before the week's first reading
    )
    week = readings(
        ("01", "01-06 00:00", "REGULAR", 960, 470),
        ("01", "01-06 04:00", "REGULAR", 1000, 480),
        ("02", "01-06 00:00", "REGULAR", 50, 50),
    )
    with_previous = {(r["scp"], r["status"], r["date"], r["entries"]) for r in intervals(week, previous).to_pylist()}
    assert with_previous == {
        ("01", "used", dt.date(2024, 1, 5), 60),  # Fri 20:00 - Sat 00:00 belongs to Friday
        ("01", "used", SAT, 40),
        ("02", "dropped", SAT, 0),  # its last reading is too old to start an interval
    }
    without = {(r["scp"], r["status"], r["date"], r["entries"]) for r in intervals(week).to_pylist()}
    assert without == {("01", "dropped", SAT, 0), ("01", "used", SAT, 40), ("02", "dropped", SAT, 0)}


def test_the_rules_are_configurable():
    week = readings(("01", "01-06 00:00", "REGULAR", 0, 0), ("01", "01-06 04:00", "REGULAR", 9_000, 10))
    relaxed = Rules(seconds_per_passage=1.0)
    assert rows_of(intervals(week, rules=relaxed))[1:] == [(SAT, 9_000, 10, "used")]


def test_daily_rows_sum_per_station_and_day_and_keep_unnamed_pairs_visible():
    week = pa.concat_tables(
        [
            readings(("01", "01-06 00:00", "REGULAR", 0, 0), ("01", "01-06 04:00", "REGULAR", 10, 5)),
            readings(("02", "01-06 00:00", "REGULAR", 0, 0), ("02", "01-06 04:00", "REGULAR", 20, 7)),
        ]
    )
    other = readings(("01", "01-06 00:00", "REGULAR", 0, 0), ("01", "01-06 04:00", "REGULAR", 3, 4))
    other = other.set_column(0, "ca", pa.array(["Z999"] * 2)).set_column(1, "unit", pa.array(["R999"] * 2))
    stations = pa.table(
        {name: pa.array(values, pa.string()) for name, values in zip(
            STATION_COLUMNS, [["R051"], ["A002"], ["59 ST"], ["NQR456W"], ["BMT"], ["59 ST"], ["file"]]
        )}
    )
    rows = daily(intervals(pa.concat_tables([week, other])), stations, SAT).to_pylist()
    assert [(r["unit"], r["station"], r["entries"], r["exits"], r["intervals_used"], r["intervals_dropped"],
             r["turnstiles"]) for r in rows] == [
        ("R051", "59 ST", 30, 12, 2, 2, 2),
        ("R999", None, 3, 4, 1, 1, 1),
    ]
    assert system_by_day(daily(intervals(week), stations, SAT)) == {SAT: (30, 12)}


@pytest.mark.parametrize("empty_previous", [True, False])
def test_an_empty_week_gives_no_rows(empty_previous):
    empty = readings()
    assert intervals(empty, empty if empty_previous else None).num_rows == 0


def test_dictionary_columns_read_from_parquet_give_the_same_intervals(tmp_path):
    import pyarrow.parquet as pq

    previous = readings(("01", "01-05 20:00", "REGULAR", 900, 450), ("02", "01-05 20:00", "REGULAR", 10, 10))
    week = readings(
        ("02", "01-06 00:00", "RECOVR AUD", 70, 70),
        ("01", "01-06 00:00", "REGULAR", 960, 470),
        ("02", "01-06 00:00", "REGULAR", 50, 50),
        ("01", "01-06 04:00", "REGULAR", 1000, 480),
    )
    pq.write_table(previous, tmp_path / "previous.parquet")
    pq.write_table(week, tmp_path / "week.parquet")
    columns = ["ca", "unit", "scp", "desc"]
    as_dictionaries = intervals(
        pq.read_table(tmp_path / "week.parquet", read_dictionary=columns),
        pq.read_table(tmp_path / "previous.parquet", read_dictionary=columns),
    )
    assert as_dictionaries.to_pylist() == intervals(week, previous).to_pylist()
    assert sorted(rows_of(as_dictionaries)) == sorted(
        [(dt.date(2024, 1, 5), 60, 20, "used"), (dt.date(2024, 1, 5), 40, 40, "used"), (SAT, 40, 10, "used")]
    )
