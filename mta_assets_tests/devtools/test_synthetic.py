"""Synthetic weeks: exact size, determinism, MTA's two layouts and plausible content."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from mta_devtools.synthetic import (
    DESCS,
    count_readings,
    main,
    week_bytes,
    write_week,
    write_weeks,
)
from mta_assets.mta.calendar import week_window
from mta_assets.mta.formats import detect_layout
from mta_assets_tests.samples import samples_dir

ELEVEN_COLUMN_WEEK = "2023-12-30"
WIDE_WEEK = "2013-01-26"




def parse(content: bytes) -> list[dict]:
    """Readings of either layout as dicts, with the raw counter text kept for width checks."""
    lines = content.decode("ascii").split("\n")
    assert lines[-1] == "", "every line, the last too, ends with LF"
    lines = lines[:-1]
    readings = []
    if detect_layout(lines[0]) == "eleven_column":
        for line in lines[1:]:
            ca, unit, scp, station, linename, division, date, time, desc, entries, exits = line.rstrip(" ").split(",")
            when = dt.datetime.strptime(f"{date} {time}", "%m/%d/%Y %H:%M:%S")
            readings.append(dict(key=(ca, unit, scp, station), when=when, desc=desc, entries=entries, exits=exits,
                                 line=line))
    else:
        for line in lines:
            fields = line.rstrip(" ").split(",")
            assert (len(fields) - 3) % 5 == 0 and 1 <= (len(fields) - 3) // 5 <= 8
            for group in range(3, len(fields), 5):
                date, time, desc, entries, exits = fields[group : group + 5]
                when = dt.datetime.strptime(f"{date} {time}", "%m-%d-%y %H:%M:%S")
                readings.append(dict(key=tuple(fields[:3]), when=when, desc=desc, entries=entries, exits=exits,
                                     line=line))
    return readings


@pytest.mark.parametrize("readings", [1, 7, 43, 2_000, 30_001])
@pytest.mark.parametrize("week", [ELEVEN_COLUMN_WEEK, WIDE_WEEK])
def test_exact_reading_count(week, readings):
    content = week_bytes(week, readings=readings)
    assert len(parse(content)) == readings
    assert count_readings(content) == readings


def test_write_week_names_the_file_for_the_publication_saturday(tmp_path):
    path = write_week(tmp_path, ELEVEN_COLUMN_WEEK, readings=500, seed=3)
    assert path == tmp_path / "turnstile_240106.txt"
    assert path.read_bytes() == week_bytes(ELEVEN_COLUMN_WEEK, readings=500, seed=3)
    assert [p.name for p in tmp_path.iterdir()] == ["turnstile_240106.txt"]


def test_same_seed_same_bytes_other_seed_other_bytes():
    first = week_bytes(ELEVEN_COLUMN_WEEK, readings=5_000, seed=7)
    assert week_bytes(ELEVEN_COLUMN_WEEK, readings=5_000, seed=7) == first
    assert week_bytes(ELEVEN_COLUMN_WEEK, readings=5_000, seed=8) != first
    assert week_bytes(WIDE_WEEK, readings=5_000, seed=7) == week_bytes(WIDE_WEEK, readings=5_000, seed=7)


@pytest.mark.parametrize(
    ("week", "layout"),
    [("2010-05-01", "wide"), ("2014-10-04", "wide"), ("2014-10-11", "eleven_column"), ("2024-02-10", "eleven_column")],
)
def test_layout_follows_mtas_format_change(week, layout):
    first_line = week_bytes(week, readings=100).split(b"\n", 1)[0].decode()
    assert detect_layout(first_line) == layout


def test_layout_can_be_forced():
    first_line = week_bytes(ELEVEN_COLUMN_WEEK, readings=100, layout="wide").split(b"\n", 1)[0].decode()
    assert detect_layout(first_line) == "wide"
    with pytest.raises(ValueError, match="unknown layout"):
        week_bytes(ELEVEN_COLUMN_WEEK, readings=100, layout="csv")


@pytest.mark.parametrize("week", [ELEVEN_COLUMN_WEEK, WIDE_WEEK, "2014-10-04", "2010-05-01"])
def test_every_reading_is_inside_the_week_and_in_order(week):
    start, end = week_window(week)
    readings = parse(week_bytes(week, readings=20_000))
    assert all(start <= r["when"] < end for r in readings)
    assert min(r["when"] for r in readings) == start.replace(hour=min(r["when"].hour for r in readings))
    by_turnstile = collections.defaultdict(list)
    for r in readings:
        by_turnstile[r["key"]].append(r["when"])
    assert all(times == sorted(times) for times in by_turnstile.values())
    # Each turnstile appears in one block, as in MTA's sorted files.
    keys = [r["key"] for r in readings]
    blocks = [key for i, key in enumerate(keys) if i == 0 or keys[i - 1] != key]
    assert len(blocks) == len(set(blocks)) == len(by_turnstile)


def test_eleven_column_padding_and_counters():
    content = week_bytes(ELEVEN_COLUMN_WEEK, readings=20_000)
    lines = content.decode("ascii").split("\n")[:-1]
    assert lines[0].rstrip() == "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS"
    assert all(len(line) == 130 for line in lines)
    assert b"\r" not in content
    readings = parse(content)
    assert all(len(r["entries"]) == len(r["exits"]) == 10 for r in readings)
    entries = [int(r["entries"]) for r in readings]
    assert max(entries) > 2_000_000_000  # some counters near the 2.1e9 MTA reaches
    assert all(0 <= int(r["exits"]) < 10**10 for r in readings)
    ca, unit, scp, station = readings[0]["key"]
    assert (ca, unit, scp) == ("A002", "R051", "00-00-00") and station == "59 ST"
    assert all(len(r["key"][2].split("-")) == 3 for r in readings)


def test_wide_padding_wrapping_and_counters():
    content = week_bytes(WIDE_WEEK, readings=20_000)
    lines = content.decode("ascii").split("\n")[:-1]
    assert all(len(line) == 500 for line in lines)
    readings = parse(content)
    assert all(len(r["entries"]) == len(r["exits"]) == 9 for r in readings)
    assert all(int(r["entries"]) >= 0 and int(r["exits"]) >= 0 for r in readings)
    # Only a turnstile's last line holds fewer than 8 readings.
    groups_per_line = [(tuple(line.split(",")[:3]), (line.rstrip().count(",") - 2) // 5) for line in lines]
    for (key, groups), (next_key, _) in zip(groups_per_line, groups_per_line[1:]):
        if key == next_key:
            assert groups == 8
    assert any(groups < 8 for _, groups in groups_per_line)


def test_content_looks_like_a_real_week():
    readings = parse(week_bytes(ELEVEN_COLUMN_WEEK, readings=50_000))
    descs = collections.Counter(r["desc"] for r in readings)
    assert set(descs) == {"REGULAR", "RECOVR AUD"}
    assert descs["REGULAR"] / len(readings) > 0.97
    exact_duplicates = len(readings) - len({r["line"] for r in readings})
    assert exact_duplicates / len(readings) < 0.001
    assert {r["when"].minute for r in readings} == {0}
    assert {r["when"].hour % 4 for r in readings} >= {0, 3}
    assert len({r["key"][3] for r in readings}) >= 30  # a few dozen stations
    # RECOVR AUD sometimes repeats a REGULAR reading at the same time with the same counters.
    regular = {(r["key"], r["when"], r["entries"], r["exits"]) for r in readings if r["desc"] == "REGULAR"}
    assert any((r["key"], r["when"], r["entries"], r["exits"]) in regular for r in readings if r["desc"] == "RECOVR AUD")
    # Counters are cumulative: most steps go up, a rare turnstile runs backwards or resets.
    steps = [
        int(b["entries"]) - int(a["entries"])
        for a, b in zip(readings, readings[1:])
        if a["key"] == b["key"]
    ]
    assert sum(step >= 0 for step in steps) / len(steps) > 0.99
    assert any(step > 0 for step in steps)


def test_wide_weeks_have_rare_maintenance_events():
    readings = parse(week_bytes(WIDE_WEEK, readings=50_000))
    descs = collections.Counter(r["desc"] for r in readings)
    assert set(descs) <= set(DESCS)
    assert descs["REGULAR"] / len(readings) > 0.97
    assert descs["DOOR OPEN"] + descs["DOOR CLOSE"] + descs["LOGON"] > 0
    assert any(r["when"].second or r["when"].minute for r in readings if r["desc"] != "REGULAR")


def test_one_reading_week():
    for week in (ELEVEN_COLUMN_WEEK, WIDE_WEEK):
        (reading,) = parse(week_bytes(week, readings=1))
        assert reading["desc"] == "REGULAR"
        assert reading["key"][:3] == ("A002", "R051", "00-00-00")
    assert week_bytes(ELEVEN_COLUMN_WEEK, readings=1).count(b"\n") == 2


def test_zero_readings_is_refused():
    with pytest.raises(ValueError, match="at least one reading"):
        week_bytes(ELEVEN_COLUMN_WEEK, readings=0)


def test_weeks_share_turnstiles_and_counters_move_on(tmp_path):
    paths = write_weeks(tmp_path, ["2024-01-06", "2024-01-13"], readings=3_000, seed=1)
    assert [p.name for p in paths] == ["turnstile_240113.txt", "turnstile_240120.txt"]
    first, second = (parse(p.read_bytes()) for p in paths)
    assert {r["key"] for r in first} == {r["key"] for r in second}
    assert first != second


def test_command_line_writes_the_weeks(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--week", "2013-01-26", "--weeks-from", "2023-12-30", "--count", "2",
                 "--readings", "300", "--seed", "5"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "turnstile_130202.txt", "turnstile_240106.txt", "turnstile_240113.txt",
    ]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and "wide" in printed[0] and "eleven_column" in printed[1]
    assert (out / "turnstile_240106.txt").read_bytes() == week_bytes("2023-12-30", readings=300, seed=5)


def test_command_line_rejects_a_week_that_is_not_a_saturday(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--week", "2024-01-01"])
    assert "Saturday" in capsys.readouterr().err


def test_synthetic_week_fixture_writes_into_the_mirror(synthetic_week, mirror_root):
    path = synthetic_week("2024-01-06", readings=120)
    assert path.parent == mirror_root
    assert count_readings(path.read_bytes()) == 120


def test_widths_match_the_real_published_samples():
    samples = samples_dir() / "partial-weeks"
    if not samples.is_dir():
        pytest.skip(f"real MTA samples not found at {samples} (set MTA_SAMPLES_DIR)")
    wide_sample = (samples / "sample_data_wdlindmeier.txt").read_text().splitlines()
    assert max(len(line) for line in wide_sample) == len(week_bytes(WIDE_WEEK, readings=100).split(b"\n")[0])
    wide_counter = wide_sample[0].split(",")[6]
    eleven_sample = (samples / "turnstile_170624_emanoelim_partial.txt").read_text().splitlines()
    ours = week_bytes(ELEVEN_COLUMN_WEEK, readings=100).decode().split("\n")
    assert len(eleven_sample[0]) == len(ours[0]) == len(eleven_sample[1]) == len(ours[1])
    assert eleven_sample[0] == ours[0]
    assert len(wide_counter) == len(parse(week_bytes(WIDE_WEEK, readings=100))[0]["entries"])
    assert len(eleven_sample[1].rstrip().split(",")[9]) == len(ours[1].rstrip().split(",")[9])
