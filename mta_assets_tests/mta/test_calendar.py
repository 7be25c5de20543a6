import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from mta_assets.defs.turnstile.partitions import published_weeks, weekly_partitions
from mta_assets.mta.calendar import (
    FIRST_WEEK,
    KNOWN_STRADDLING_FILES,
    candidate_file_names,
    expected_layout,
    file_name_for_week,
    latest_published_week,
    require_published,
    week_for_file_name,
    week_window,
)

NY = ZoneInfo("America/New_York")


def test_the_first_partition_is_the_week_of_mtas_first_file():
    # turnstile_100505.txt (Wednesday 2010-05-05) is MTA's first file; its readings begin
    # 2010-04-17, and week 2010-05-01 has its own Saturday file, turnstile_100508.txt.
    assert FIRST_WEEK == "2010-04-24"
    assert published_weeks(dt.datetime(2010, 5, 21, 12, tzinfo=NY)) == ["2010-04-24", "2010-05-01", "2010-05-08"]
    assert candidate_file_names("2010-04-24") == ["turnstile_100505.txt"]
    assert week_for_file_name("turnstile_100505.txt") == "2010-04-24"
    assert "turnstile_100505.txt" in KNOWN_STRADDLING_FILES


@pytest.mark.parametrize("week", ["2010-05-01", "2010-05-08", "2010-06-12", "2010-12-25", "2023-12-30"])
def test_every_other_week_has_one_name_its_saturday_name(week):
    # No Wednesday name is made up for the other 2010 weeks: a missing file is reported
    # under the name MTA would have used.
    assert candidate_file_names(week) == [file_name_for_week(week)]
    assert week_for_file_name(file_name_for_week(week)) == week


def test_every_file_name_maps_to_exactly_one_partition():
    weeks = published_weeks(dt.datetime(2024, 3, 1, tzinfo=NY))
    names = [name for week in weeks for name in candidate_file_names(week)]
    assert len(names) == len(set(names))
    assert [week_for_file_name(name) for name in names] == weeks


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("turnstile_100512.txt", "Wednesday"),  # the archive is not known to have held it
        ("turnstile_100501.txt", "turnstile_100505.txt"),  # the first week's file has another name
        ("turnstile_100424.txt", "older than MTA's first file"),
    ],
)
def test_names_outside_the_archive_are_refused(name, reason):
    with pytest.raises(ValueError, match=reason):
        week_for_file_name(name)


@pytest.mark.parametrize(
    ("week", "file_name"),
    [
        ("2023-12-30", "turnstile_240106.txt"),  # readings in 2023, file named in 2024
        ("2023-12-23", "turnstile_231230.txt"),
        ("2014-10-11", "turnstile_141018.txt"),  # first 11-column file
        ("2014-10-04", "turnstile_141011.txt"),  # last wide file
        ("2010-05-01", "turnstile_100508.txt"),
        ("2010-04-24", "turnstile_100505.txt"),  # MTA's first file, named for a Wednesday
    ],
)
def test_key_and_file_name_map_both_ways(week, file_name):
    assert file_name_for_week(week) == file_name
    assert week_for_file_name(file_name) == week


def test_layout_switches_at_2014_10_18_file():
    assert expected_layout("2014-10-04") == "wide"
    assert expected_layout("2014-10-11") == "eleven_column"


def test_week_window_is_saturday_to_saturday():
    start, end = week_window("2023-12-30")
    assert (start, end) == (dt.datetime(2023, 12, 30), dt.datetime(2024, 1, 6))


@pytest.mark.parametrize("bad", ["2023-12-31", "2023/12/30", "next week"])
def test_non_saturday_keys_are_refused(bad):
    with pytest.raises(ValueError, match="week"):
        file_name_for_week(bad)


@pytest.mark.parametrize("bad", ["turnstile_240107.txt", "turnstile_2401.txt", "foo.txt", "turnstile_241332.txt"])
def test_bad_file_names_are_refused(bad):
    with pytest.raises(ValueError):
        week_for_file_name(bad)


def test_no_key_for_a_week_whose_file_is_not_published():
    # The file for 2023-12-30 appears on Saturday 2024-01-06, New York time.
    just_before = dt.datetime(2024, 1, 5, 23, 59, tzinfo=NY)
    just_after = dt.datetime(2024, 1, 6, 0, 1, tzinfo=NY)
    assert latest_published_week(just_before) == "2023-12-23"
    assert "2023-12-30" not in published_weeks(just_before)
    assert latest_published_week(just_after) == "2023-12-30"
    assert published_weeks(just_after)[-1] == "2023-12-30"
    # 05:00 UTC on Saturday is still Friday night in New York.
    assert latest_published_week(dt.datetime(2024, 1, 6, 4, 59, tzinfo=dt.timezone.utc)) == "2023-12-23"


def test_latest_published_week_agrees_with_dagster_partitions():
    for hour in range(0, 24 * 14, 7):
        now = dt.datetime(2024, 3, 1, tzinfo=NY) + dt.timedelta(hours=hour)
        assert latest_published_week(now) == published_weeks(now)[-1], now


def test_require_published_names_the_publication_day():
    with pytest.raises(ValueError, match=r"week 2024-01-06 is not published yet: turnstile_240113.txt appears on Saturday 2024-01-13"):
        require_published("2024-01-06", dt.datetime(2024, 1, 10, tzinfo=NY))
    require_published("2023-12-30", dt.datetime(2024, 1, 10, tzinfo=NY))


@pytest.mark.parametrize("key", ["2023-12-31", "2010-05-02"])
def test_require_published_says_a_wrong_key_is_not_a_saturday(key):
    # Even for a key in the past, the key itself is checked first.
    with pytest.raises(ValueError, match="not a Saturday"):
        require_published(key, dt.datetime(2024, 1, 10, tzinfo=NY))


def test_require_published_refuses_a_week_before_the_archive():
    with pytest.raises(ValueError, match="before MTA's first file: the archive starts with week 2010-04-24"):
        require_published("2010-04-17", dt.datetime(2024, 1, 10, tzinfo=NY))


def test_partitions_have_no_end_date():
    assert weekly_partitions.end is None


def test_week_arithmetic_lives_here_and_stops_at_the_first_week():
    from mta_assets.mta.calendar import FIRST_WEEK, shift_week, weeks_before, weeks_between

    assert shift_week("2023-12-30", 1) == "2024-01-06"
    assert shift_week("2024-01-06", -2) == "2023-12-23"
    assert weeks_between("2023-12-23", "2024-01-06") == ["2023-12-23", "2023-12-30", "2024-01-06"]
    assert weeks_between("2024-01-06", "2023-12-30") == []
    assert weeks_before("2024-01-06", 2) == ["2023-12-23", "2023-12-30"]
    assert weeks_before(shift_week(FIRST_WEEK, 1), 3) == [FIRST_WEEK]
