"""The row contract and the vectorized parser, against real MTA files and crafted edge cases.

Expectations for real files are computed independently, with the csv module and a plain
row loop, and compared value by value with what ``parse_week`` produced.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from mta_assets.mta.calendar import week_window
from mta_assets.defs.turnstile.tables import table_schema
from mta_assets.mta.formats import Reading, UnknownLayout, arrow_schema, columns_markdown
from mta_assets.mta.parse import load_station_key, parse_week
from mta_assets_tests.samples import rebuild_full_week, require_samples

ELEVEN_HEADER = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS"
ROW_FIELDS = ("ca", "unit", "scp", "station", "linename", "division", "reading_time", "desc", "entries", "exits")


# --- independent expectation ----------------------------------------------------------------


@dataclass
class Expected:
    layout: str
    lines: int
    blank_lines: int
    rows: list[tuple]  # every accepted reading, duplicates included, file order
    rejected: int

    @property
    def unique_rows(self) -> list[tuple]:
        return list(dict.fromkeys(self.rows))

    @property
    def duplicates(self) -> int:
        return len(self.rows) - len(self.unique_rows)

    @property
    def week(self) -> str:
        first_day = self.rows[0][6].date()
        return (first_day - dt.timedelta(days=(first_day.weekday() - 5) % 7)).isoformat()


@functools.cache
def strict_datetime(text: str, date_format: str) -> dt.datetime | None:
    """Cached: a week repeats a few thousand distinct timestamps 250,000 times."""
    try:
        return dt.datetime.strptime(text, date_format)
    except ValueError:
        return None


def expected_from_csv(raw: bytes) -> Expected:
    """A straightforward reading of an MTA file, one line at a time."""
    text = raw.decode("utf-8")
    physical = text.split("\n")
    if text.endswith("\n"):
        physical.pop()
    content = [line for line in physical if line.strip()]
    first = next(csv.reader([content[0].strip()]))
    layout = "eleven_column" if [f.strip() for f in first][1:] == ELEVEN_HEADER.split(",")[1:] else "wide"
    date_format = "%m/%d/%Y %H:%M:%S" if layout == "eleven_column" else "%m-%d-%y %H:%M:%S"

    rows: list[tuple] = []
    rejected = 0
    blank = len(physical) - len(content)
    records = csv.reader(line.strip() for line in content)
    if layout == "eleven_column":
        next(records)  # the header
    for record in records:
        fields = [value.strip() for value in record]
        if layout == "eleven_column":
            if len(fields) != 11:
                held = list(fields)
                while held and not held[-1]:
                    held.pop()
                rejected += max(1, math.ceil(len(held) / 11))
                continue
            key, groups = fields[:6], [fields[6:11]]
        else:
            key, rest = [*fields[:3], None, None, None], fields[3:]
            if len(rest) < 5 or len(rest) > 40:
                # The whole row is lost: every reading it held, trailing empty fields aside.
                held = list(rest)
                while held and not held[-1]:
                    held.pop()
                rejected += max(1, math.ceil(len(held) / 5))
                continue
            complete = len(rest) - len(rest) % 5
            groups = [rest[i : i + 5] for i in range(0, complete, 5)]
            if len(rest) % 5:
                rejected += 1
        for date, time_of_day, desc, entries, exits in groups:
            when = strict_datetime(f"{date} {time_of_day}", date_format)
            if when is None:
                rejected += 1
                continue
            counters_ok = all(value.isascii() and value.isdigit() and len(value) <= 18 for value in (entries, exits))
            if not counters_ok or not all(key[:3]) or not desc:
                rejected += 1
                continue
            rows.append((*key, when, desc, int(entries), int(exits)))
    return Expected(layout=layout, lines=len(physical), blank_lines=blank, rows=rows, rejected=rejected)


def assert_matches(parsed, expected: Expected) -> None:
    assert parsed.layout == expected.layout
    assert parsed.lines == expected.lines
    assert parsed.blank_lines == expected.blank_lines
    assert parsed.rejects == expected.rejected
    assert parsed.duplicates == expected.duplicates
    assert parsed.readings_seen == len(expected.rows) + expected.rejected
    assert parsed.table.num_rows == len(expected.unique_rows)
    assert parsed.table.schema == arrow_schema()
    unique = expected.unique_rows
    schema = arrow_schema()
    for position, name in enumerate(ROW_FIELDS):
        expected_column = pa.array([row[position] for row in unique], schema.field(name).type)
        assert parsed.table.column(name).combine_chunks().equals(expected_column), name


# --- real files -------------------------------------------------------------------------------


def partial_week_files() -> list[Path]:
    folder = require_samples() / "partial-weeks"
    return sorted(folder.iterdir())


PARTIAL_WEEK_NAMES = [
    "sample_data_wdlindmeier.txt",
    "turnstile-test_jkeefe.csv",
    "turnstile_110528_YuliyaKar.txt",
    "turnstile_150919_hudsonyd_jkeefe.csv",
    "turnstile_170603_ShrutiRathi.txt",
    "turnstile_170617_ShrutiRathi.txt",
    "turnstile_170624_emanoelim_partial.txt",
]


def test_every_partial_week_file_is_covered():
    assert [path.name for path in partial_week_files()] == PARTIAL_WEEK_NAMES


@pytest.mark.parametrize("name", PARTIAL_WEEK_NAMES)
def test_partial_week_matches_an_independent_csv_reading(name):
    raw = (require_samples() / "partial-weeks" / name).read_bytes()
    expected = expected_from_csv(raw)
    parsed = parse_week(raw, expected.week, name)

    assert_matches(parsed, expected)
    table = parsed.table
    assert table.schema.field("entries").type == pa.int64()
    assert table.schema.field("reading_time").type == pa.timestamp("ms")
    assert set(table.column("source_file").to_pylist()) == {name}
    assert set(table.column("week").to_pylist()) == {dt.date.fromisoformat(expected.week)}
    if parsed.layout == "wide":
        assert table.column("station").null_count == table.num_rows


def test_known_facts_of_the_partial_weeks():
    folder = require_samples() / "partial-weeks"

    cut = parse_week((folder / "turnstile_170603_ShrutiRathi.txt").read_bytes(), "2017-05-27", "t.txt")
    assert cut.rejects == 1
    assert cut.reject_samples == [
        {"line": 13820, "reason": "expected 11 fields, found 4", "readings_lost": 1, "text": "B015,R098,01-00-00,CH"}
    ]

    # The last EXITS was cut to 9 digits and still parses: MTA's value is kept as published.
    short = parse_week((folder / "turnstile_170617_ShrutiRathi.txt").read_bytes(), "2017-06-10", "t.txt")
    assert short.rejects == 0
    assert short.table.column("exits")[-1].as_py() == 245744

    # Cut files do not prove themselves whole: a last line cut to 4 fields, or ending in its padding.
    assert not cut.last_line_complete
    ends_in_padding = parse_week(folder / "turnstile_170624_emanoelim_partial.txt", "2017-06-17", "t.txt")
    assert not ends_in_padding.last_line_complete

    wide = parse_week((folder / "sample_data_wdlindmeier.txt").read_bytes(), "2013-01-26", "t.txt")
    assert wide.blank_lines == 1
    assert {"DOOR OPEN", "LOGON", "RECOVR AUD"} <= set(wide.table.column("desc").to_pylist())


FULL_WEEKS = {"240106.csv.gz": ("2023-12-30", 250_816), "turnstile_230603.csv.gz": ("2023-05-27", 253_237)}


@pytest.fixture(scope="module", params=sorted(FULL_WEEKS))
def full_week(request, tmp_path_factory):
    require_samples()
    path = rebuild_full_week(request.param, tmp_path_factory.mktemp("full-week"))
    week, readings = FULL_WEEKS[request.param]
    return path, week, readings


def test_full_week_matches_an_independent_csv_reading(full_week):
    path, week, readings = full_week
    raw = path.read_bytes()
    parsed = parse_week(raw, week, path.name)
    expected = expected_from_csv(raw)

    assert len(expected.rows) == readings
    assert_matches(parsed, expected)
    assert parsed.readings_seen == readings
    assert parsed.reject_share == expected.rejected / readings

    start, end = week_window(week)
    times = parsed.table.column("reading_time")
    import pyarrow.compute as pc

    assert pc.min(times).as_py() >= start
    assert pc.max(times).as_py() < end
    assert parsed.table.column("station").null_count == 0


# --- crafted files ------------------------------------------------------------------------------


def wide_group(day: dt.datetime, desc: str = "REGULAR", entries: int = 1000, exits: int = 500) -> str:
    return f"{day:%m-%d-%y},{day:%H:%M:%S},{desc},{entries:09d},{exits:09d}"


def wide_row(groups: list[str], key: str = "A002,R051,02-00-00", width: int = 500) -> str:
    return ",".join([key, *groups]).ljust(width)


def eleven_row(day: dt.datetime, entries: int | str = 1000, exits: int | str = 500, scp: str = "02-00-00") -> str:
    counters = [f"{value:010d}" if isinstance(value, int) else value for value in (entries, exits)]
    return ",".join(
        ["A002", "R051", scp, "59 ST", "NQR456W", "BMT", f"{day:%m/%d/%Y}", f"{day:%H:%M:%S}", "REGULAR", *counters]
    ).ljust(130)


SATURDAY = dt.datetime(2013, 1, 26)


def times(count: int, start: dt.datetime = SATURDAY) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=4 * i) for i in range(count)]


def eleven_file(rows: list[str], newline: str = "\n") -> bytes:
    return (newline.join([ELEVEN_HEADER.ljust(130), *rows]) + newline).encode()


@pytest.mark.parametrize("group_count", range(1, 9))
def test_wide_rows_with_one_to_eight_groups(group_count):
    moments = times(group_count * 3)
    rows = [
        wide_row([wide_group(m, entries=1000 + i, exits=2000 + i) for i, m in enumerate(moments[n::3])])
        for n in range(3)
    ]
    raw = ("\n".join(rows) + "\n").encode()

    parsed = parse_week(raw, "2013-01-26", "turnstile_130202.txt")

    assert parsed.layout == "wide"
    assert parsed.rejects == 0
    assert parsed.table.num_rows == 3 * group_count
    # Row by row, then group by group: the order of the file.
    expected_times = [m for n in range(3) for m in moments[n::3]]
    assert parsed.table.column("reading_time").to_pylist() == expected_times
    assert parsed.table.column("entries").to_pylist() == [1000 + i for n in range(3) for i in range(group_count)]
    assert parsed.table.column("station").null_count == 3 * group_count


def test_wide_row_with_more_than_eight_groups_or_none_counts_the_readings_it_held():
    nine = wide_row([wide_group(m) for m in times(9)], width=0)
    bare = "A002,R051,02-00-00"
    good = wide_row([wide_group(SATURDAY)])
    parsed = parse_week(f"{good}\n{nine}\n{bare}\n".encode(), "2013-01-26", "w.txt")

    assert parsed.table.num_rows == 1
    assert parsed.rejects == 9 + 1  # nine readings in the long row, one for the bare key
    assert parsed.readings_seen == 1 + 10
    assert [sample["line"] for sample in parsed.reject_samples] == [2, 3]
    assert [sample["readings_lost"] for sample in parsed.reject_samples] == [9, 1]
    assert "found 48" in parsed.reject_samples[0]["reason"]


def test_crlf_and_lf_and_missing_final_newline_parse_alike():
    rows = [eleven_row(m, entries=7 + i) for i, m in enumerate(times(6))]
    lf = eleven_file(rows)
    crlf = eleven_file(rows, newline="\r\n")
    unterminated = lf.rstrip(b"\n")
    results = [parse_week(raw, "2013-01-26", "f.txt") for raw in (lf, crlf, unterminated)]

    for parsed in results:
        assert parsed.lines == 7
        assert parsed.rejects == 0
        assert parsed.table.num_rows == 6
        assert parsed.table.column("exits").to_pylist() == [500] * 6
    assert results[0].table.equals(results[1].table)
    assert results[0].table.equals(results[2].table)


def test_end_inside_the_padding_without_newline():
    raw = eleven_file([eleven_row(m) for m in times(2)]).rstrip(b"\n")[:-40]
    parsed = parse_week(raw, "2013-01-26", "f.txt")
    assert (parsed.table.num_rows, parsed.rejects) == (2, 0)


def test_lines_of_spaces_are_blank_not_rejects():
    rows = [wide_row([wide_group(m)]) for m in times(3)]
    raw = "\n".join([rows[0], " " * 500, rows[1], "", "   \r", rows[2], ""]).encode()
    parsed = parse_week(raw, "2013-01-26", "w.txt")
    assert parsed.lines == 6  # the final newline starts no line
    assert parsed.blank_lines == 3
    assert parsed.rejects == 0
    assert parsed.table.num_rows == 3


def test_cut_last_wide_line_keeps_complete_groups_and_rejects_the_partial_one():
    moments = times(5)
    full = wide_row([wide_group(m, entries=10 + i) for i, m in enumerate(moments[:2])])
    cut = ",".join(["A002,R051,02-00-01", *[wide_group(m) for m in moments[2:4]], f"{moments[4]:%m-%d-%y},04:0"])
    parsed = parse_week(f"{full}\n{cut}".encode(), "2013-01-26", "w.txt")

    assert parsed.table.num_rows == 4
    assert parsed.table.column("scp").to_pylist() == ["02-00-00"] * 2 + ["02-00-01"] * 2
    assert parsed.rejects == 1
    assert parsed.readings_seen == 5
    assert parsed.reject_samples[0]["line"] == 2
    assert parsed.reject_samples[0]["reason"].startswith("last reading group cut short: 2 of 5 fields")
    assert parsed.reject_share == pytest.approx(1 / 5)


def test_cut_last_eleven_column_line_is_rejected_with_its_line_number():
    rows = [eleven_row(m) for m in times(3)]
    raw = eleven_file(rows)[:-100]  # leaves 30 characters of the last row: 5 fields
    parsed = parse_week(raw, "2013-01-26", "f.txt")
    assert parsed.table.num_rows == 2
    assert parsed.rejects == 1
    assert parsed.reject_samples[0]["line"] == 4
    assert parsed.reject_samples[0]["reason"].startswith("expected 11 fields, found ")


def test_bad_dates_and_counters_are_rejected_counted_and_sampled():
    good = times(2)
    rows = [
        eleven_row(good[0]),
        eleven_row(good[0]).replace("01/26/2013", "02/30/2013"),  # no such day
        eleven_row(good[0]).replace("01/26/2013", "13/01/2013"),
        eleven_row(good[0]).replace("01/26/2013", "01-26-13"),  # the other layout's date
        eleven_row(good[0]).replace("00:00:00", "25:00:00"),
        eleven_row(good[1], entries="00012A4567"),
        eleven_row(good[1], exits="-000000012"),
        eleven_row(good[1], entries=""),
        eleven_row(good[1], entries=2_147_483_700, exits=9_999_999_999),
    ]
    parsed = parse_week(eleven_file(rows), "2013-01-26", "f.txt")

    assert parsed.table.num_rows == 2
    assert parsed.table.column("entries").to_pylist() == [1000, 2_147_483_700]
    assert parsed.table.column("exits").to_pylist() == [500, 9_999_999_999]
    assert parsed.rejects == 7
    assert parsed.readings_seen == 9
    assert [(s["line"], s["reason"]) for s in parsed.reject_samples] == [
        (3, "bad date or time"),
        (4, "bad date or time"),
        (5, "bad date or time"),
        (6, "bad date or time"),
        (7, "non-numeric ENTRIES counter '00012A4567'"),
        (8, "negative EXITS counter '-000000012'"),
        (9, "non-numeric ENTRIES counter ''"),
    ]
    assert parsed.reject_samples[0]["text"] == rows[1].rstrip()[:120]


def test_reject_samples_stop_at_ten_but_every_reject_is_counted():
    rows = [eleven_row(SATURDAY, entries="x") for _ in range(25)]
    parsed = parse_week(eleven_file(rows), "2013-01-26", "f.txt")
    assert parsed.rejects == 25
    assert parsed.reject_share == 1.0
    assert [sample["line"] for sample in parsed.reject_samples] == list(range(2, 12))


def test_exact_duplicate_rows_are_removed_and_counted():
    moments = times(3)
    rows = [
        eleven_row(moments[0]),
        eleven_row(moments[1]),
        eleven_row(moments[0]),  # exact duplicate
        eleven_row(moments[0], entries=1001),  # same time, other counter: kept
        eleven_row(moments[0], scp="02-00-01"),  # other turnstile: kept
        eleven_row(moments[1]),  # exact duplicate
        eleven_row(moments[2]),
        eleven_row(moments[0]),  # third copy
    ]
    parsed = parse_week(eleven_file(rows), "2013-01-26", "f.txt")

    assert parsed.duplicates == 3
    assert parsed.readings_seen == 8
    assert parsed.table.num_rows == 5
    table = parsed.table
    assert list(zip(table.column("reading_time").to_pylist(), table.column("entries").to_pylist(),
                    table.column("scp").to_pylist())) == [
        (moments[0], 1000, "02-00-00"),
        (moments[1], 1000, "02-00-00"),
        (moments[0], 1001, "02-00-00"),
        (moments[0], 1000, "02-00-01"),
        (moments[2], 1000, "02-00-00"),
    ]


def test_wide_duplicates_within_one_row_and_across_rows():
    first, second = times(2)
    rows = [
        wide_row([wide_group(first), wide_group(first), wide_group(second)]),
        wide_row([wide_group(second)]),
    ]
    parsed = parse_week(("\n".join(rows) + "\n").encode(), "2013-01-26", "w.txt")
    assert parsed.duplicates == 2
    assert parsed.table.column("reading_time").to_pylist() == [first, second]


def test_the_2014_switch_gives_one_schema():
    wide_week = dt.datetime(2014, 10, 4)
    wide_raw = ("\n".join(wide_row([wide_group(m) for m in times(8, wide_week)]) for _ in range(1)) + "\n").encode()
    eleven_week = dt.datetime(2014, 10, 11)
    eleven_raw = eleven_file([eleven_row(m) for m in times(8, eleven_week)])

    wide = parse_week(wide_raw, "2014-10-04", "turnstile_141011.txt")
    eleven = parse_week(eleven_raw, "2014-10-11", "turnstile_141018.txt")

    assert (wide.layout, eleven.layout) == ("wide", "eleven_column")
    assert wide.table.schema == eleven.table.schema == arrow_schema()
    both = pa.concat_tables([wide.table, eleven.table])
    assert both.num_rows == 16
    assert both.column("week").to_pylist() == [dt.date(2014, 10, 4)] * 8 + [dt.date(2014, 10, 11)] * 8
    assert both.column("station").to_pylist() == [None] * 8 + ["59 ST"] * 8


def test_station_key_fills_wide_rows_and_leaves_unknown_units_null():
    folder = require_samples() / "reference"
    mango = load_station_key(folder / "Remote-Booth-Station_mango314.csv")
    jehiah = load_station_key(folder / "Remote-Booth-Station_jehiah_2010.csv")
    assert mango.stations[("R001", "A060")] == ("WHITEHALL ST", "R1", "BMT")
    assert jehiah.stations[("R248", "H007")] == ("1 AVE", None, None)

    rows = [
        wide_row([wide_group(SATURDAY)], key="A060,R001,00-00-00"),
        wide_row([wide_group(SATURDAY)], key="Z999,R999,00-00-00"),
    ]
    parsed = parse_week(("\n".join(rows) + "\n").encode(), "2013-01-26", "w.txt", station_key=mango)
    table = parsed.table
    assert table.column("station").to_pylist() == ["WHITEHALL ST", None]
    assert table.column("linename").to_pylist() == ["R1", None]
    assert table.column("division").to_pylist() == ["BMT", None]


def test_station_key_from_a_minimal_csv(tmp_path):
    key_file = tmp_path / "key.csv"
    key_file.write_text("Remote,Booth,Station,Line Name,Division\nR051,A002,59 ST,NQR456,BMT\nR051,A002,OTHER,X,IRT\n")
    key = load_station_key(key_file)
    assert len(key) == 1  # the first entry wins
    parsed = parse_week((wide_row([wide_group(SATURDAY)]) + "\n").encode(), "2013-01-26", "w.txt", key)
    assert parsed.table.column("station").to_pylist() == ["59 ST"]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no unit, ca, station column"):
        load_station_key(tmp_path / "bad.csv")


def test_an_eleven_column_file_ignores_the_station_key(tmp_path):
    key_file = tmp_path / "key.csv"
    key_file.write_text("Remote,Booth,Station,Line Name,Division\nR051,A002,FROM KEY,X,IRT\n")
    parsed = parse_week(eleven_file([eleven_row(SATURDAY)]), "2013-01-26", "f.txt", load_station_key(key_file))
    assert parsed.table.column("station").to_pylist() == ["59 ST"]


def test_a_stray_non_utf8_byte_is_read_as_cp1252():
    row = eleven_row(SATURDAY).replace("59 ST", "CAF\u00c9 ST")
    raw = eleven_file([row]).replace("CAF\u00c9".encode(), b"CAF\xc9")
    parsed = parse_week(raw, "2013-01-26", "f.txt")
    assert parsed.table.column("station").to_pylist() == ["CAF\u00c9 ST"]


def test_files_in_no_known_layout_raise():
    with pytest.raises(UnknownLayout):
        parse_week(b"<html><body>Not found</body></html>\n", "2013-01-26", "f.txt")
    with pytest.raises(UnknownLayout):
        parse_week(b"   \n\n", "2013-01-26", "f.txt")


def test_header_only_file_is_an_empty_table():
    parsed = parse_week(eleven_file([]), "2013-01-26", "f.txt")
    assert parsed.table.num_rows == 0
    assert parsed.table.schema == arrow_schema()
    assert (parsed.readings_seen, parsed.rejects, parsed.reject_share) == (0, 0, 0.0)


def test_week_must_be_a_saturday():
    with pytest.raises(ValueError, match="Saturday"):
        parse_week(eleven_file([eleven_row(SATURDAY)]), "2013-01-27", "f.txt")


# --- the contract -------------------------------------------------------------------------------


def test_arrow_schema_is_derived_from_the_model():
    schema = arrow_schema()
    assert schema.names == list(Reading.model_fields)
    assert schema.names == [*ROW_FIELDS, "week", "source_file"]
    assert schema.field("entries").type == pa.int64()
    assert schema.field("exits").type == pa.int64()
    assert schema.field("reading_time").type == pa.timestamp("ms")
    assert schema.field("reading_time").type.tz is None
    assert schema.field("week").type == pa.date32()
    nullable = {field.name for field in schema if field.nullable}
    assert nullable == {"station", "linename", "division"}


def test_table_schema_and_markdown_list_every_field():
    columns = table_schema().columns
    assert [column.name for column in columns] == list(Reading.model_fields)
    assert all(column.description for column in columns)
    assert {column.name for column in columns if column.constraints.nullable} == {"station", "linename", "division"}

    markdown = columns_markdown()
    body = markdown.strip().splitlines()[2:]
    assert [line.split("|")[1].strip().strip("`") for line in body] == list(Reading.model_fields)
    assert "| `entries` | int64 | no |" in markdown
    assert "America/New_York" in markdown


def test_readings_module_imports_without_pyarrow(tmp_path):
    import subprocess
    import sys

    code = "import sys, mta_assets.mta.parse; print('pyarrow' in sys.modules, 'pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.split() == ["False", "False"]


# --- edge cases found by the audit (issue 13), counts computed here independently ------------


def test_a_wide_row_with_a_trailing_comma_counts_every_reading_it_loses():
    moments = times(8 + 1)
    eight = [wide_group(m) for m in moments[:8]]
    trailing = ",".join(["A002,R051,02-00-00", *eight]) + ","  # 44 fields: not 3 + 5k
    good = wide_row([wide_group(moments[8])], key="A002,R051,02-00-01")
    parsed = parse_week(f"{trailing}\n{good}\n".encode(), "2013-01-26", "w.txt")

    lost = len(eight)  # every group of the rejected row
    assert parsed.rejects == lost == 8
    assert parsed.readings_seen == lost + 1
    assert parsed.reject_share == pytest.approx(8 / 9)
    assert parsed.reject_samples[0]["readings_lost"] == 8
    assert parsed.table.num_rows == 1


def test_fields_are_trimmed_so_padded_values_are_the_same_value():
    moment = SATURDAY
    plain = wide_row([wide_group(moment)])
    padded = plain.replace("REGULAR", "REGULAR ").replace("A002,", "A002 ,")
    parsed = parse_week(f"{plain}\n{padded}\n".encode(), "2013-01-26", "w.txt")
    assert parsed.table.column("desc").to_pylist() == ["REGULAR"]
    assert parsed.table.column("ca").to_pylist() == ["A002"]
    assert parsed.duplicates == 1  # once trimmed, the second row is an exact duplicate
    assert parsed.rejects == 0


def test_a_dash_in_desc_is_a_reading_not_a_reject():
    rows = [wide_row([wide_group(m, desc=desc)]) for m, desc in zip(times(2), ("LGF-MAN", "REGULAR"))]
    parsed = parse_week(("\n".join(rows) + "\n").encode(), "2013-01-26", "w.txt")
    assert parsed.layout == "wide"
    assert parsed.table.column("desc").to_pylist() == ["LGF-MAN", "REGULAR"]


def test_a_blank_first_line_is_padding():
    rows = [eleven_row(m) for m in times(2)]
    parsed = parse_week(b"\n" + eleven_file(rows), "2013-01-26", "f.txt")
    assert (parsed.blank_lines, parsed.rejects, parsed.table.num_rows) == (1, 0, 2)


@pytest.mark.parametrize(
    ("raw", "complete"),
    [
        (eleven_file([eleven_row(m) for m in times(3)]), True),
        (eleven_file([eleven_row(m) for m in times(3)]) + b"   \n\n", True),  # blank padding after it
        (eleven_file([eleven_row(m) for m in times(3)]).rstrip(b"\n"), False),  # no final newline
        (eleven_file([eleven_row(m) for m in times(3)])[:-100] + b"\n", False),  # last line cut short
        (eleven_file([]), True),  # the header alone is whole
    ],
)
def test_last_line_complete(raw, complete):
    assert parse_week(raw, "2013-01-26", "f.txt").last_line_complete is complete


def test_a_wide_last_line_that_lost_its_last_group_is_not_complete():
    full = wide_row([wide_group(m) for m in times(2)], width=0)
    assert parse_week(f"{full}\n".encode(), "2013-01-26", "w.txt").last_line_complete
    cut = full.rsplit(",", 1)[0]  # the last group lost its EXITS field
    assert not parse_week(f"{cut}\n".encode(), "2013-01-26", "w.txt").last_line_complete


def test_bytes_and_path_give_the_same_week_across_block_boundaries(tmp_path, monkeypatch):
    import mta_assets.mta.parse as parse_module

    moments = times(40)
    rows = [eleven_row(m, entries=i) for i, m in enumerate(moments)]
    rows[7] = eleven_row(moments[7], entries="bad")
    rows[8] = rows[6]  # an exact duplicate, in another block than its first copy
    raw = b"\xef\xbb\xbf" + eleven_file(rows, newline="\r\n")
    path = tmp_path / "f.txt"
    path.write_bytes(raw)
    whole = parse_week(raw, "2013-01-26", "f.txt")
    # Blocks of ~300 bytes: two or three lines each, the header alone in the first.
    monkeypatch.setattr(parse_module, "BLOCK_BYTES", 300)
    small_bytes = parse_week(raw, "2013-01-26", "f.txt")
    small_path = parse_week(path, "2013-01-26", "f.txt")

    for parsed in (small_bytes, small_path):
        assert parsed.table.equals(whole.table)
        assert (parsed.lines, parsed.rejects, parsed.duplicates, parsed.blank_lines) == (41, 1, 1, 0)
        assert parsed.reject_samples == whole.reject_samples
        assert parsed.reject_samples[0]["line"] == 9
        assert parsed.last_line_complete


def test_a_real_full_week_is_the_same_from_bytes_and_from_its_path(full_week):
    path, week, _ = full_week
    from_path = parse_week(path, week, path.name)
    from_bytes = parse_week(path.read_bytes(), week, path.name)
    assert from_path.table.equals(from_bytes.table)
    assert (from_path.rejects, from_path.lines, from_path.last_line_complete) == (
        from_bytes.rejects, from_bytes.lines, from_bytes.last_line_complete
    )
    assert from_path.last_line_complete


def test_two_eleven_column_rows_run_together_count_two_lost_readings():
    first, second = (eleven_row(m).rstrip() for m in times(2))
    merged = first + second  # the newline between them lost: 21 fields
    parsed = parse_week(eleven_file([merged, eleven_row(times(3)[2])]), "2013-01-26", "f.txt")
    assert len(merged.split(",")) == 21
    assert parsed.rejects == 2
    assert parsed.readings_seen == 3
    assert parsed.reject_samples[0]["readings_lost"] == 2
