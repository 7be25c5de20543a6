"""Layout detection and the row contract: what the Parquet file really holds."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mta_assets.defs.turnstile.tables import table_schema, write_parquet
from mta_assets.mta.formats import UnknownLayout, arrow_schema, columns_markdown, detect_layout
from mta_assets.mta.parse import parse_week

WIDE_LINE = "A002,R051,02-00-00,04-17-10,00:00:00,REGULAR,002704717,000928793"
ELEVEN_HEADER = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS"


@pytest.mark.parametrize(
    "head",
    [
        WIDE_LINE,
        WIDE_LINE.replace("REGULAR", "LGF-MAN"),  # a real DESC with a dash
        WIDE_LINE.replace("REGULAR", "RECOVR AUD"),
        WIDE_LINE.replace("REGULAR", "REGULAR "),  # padded field
        "PTH01,R540,00-00-00,04-17-10,00:00:00,DOOR OPEN,000000000,000000000",
        "\n   \n" + WIDE_LINE + "\n",  # blank lines before the first row
    ],
)
def test_wide_first_lines_are_recognized(head):
    assert detect_layout(head) == "wide"


@pytest.mark.parametrize("head", [ELEVEN_HEADER, ELEVEN_HEADER.replace("C/A", "CA"), "\r\n" + ELEVEN_HEADER.ljust(130) + "\r\n"])
def test_eleven_column_headers_are_recognized(head):
    assert detect_layout(head) == "eleven_column"


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        ("", "no non-blank line"),
        ("   \n\n", "no non-blank line"),
        ("<html><body>404</body></html>", "HTML page"),
        ("C/A,UNIT,SCP,DATE,TIME", "unknown header"),
        ("hello,world", "unknown row layout"),
    ],
)
def test_other_text_is_no_layout(head, reason):
    with pytest.raises(UnknownLayout, match=reason):
        detect_layout(head)


def test_a_blank_first_line_parses_like_the_download_detects_it():
    raw = f"\n{WIDE_LINE}\n".encode()
    assert detect_layout(raw.decode()) == parse_week(raw, "2010-04-17", "t.txt").layout == "wide"


def test_the_parquet_file_reads_back_exactly_as_the_contract_says(tmp_path):
    row = "A002,R051,02-00-00,59 ST,NQR456W,BMT,01/26/2013,03:00:00,REGULAR,0002704717,2100000000"
    raw = (ELEVEN_HEADER + "\n" + row + "\n").encode()
    parsed = parse_week(raw, "2013-01-26", "turnstile_130202.txt")
    target = tmp_path / "week.parquet"
    write_parquet(parsed.table, target)

    back = pq.read_table(target)
    assert back.schema.equals(arrow_schema())
    assert back.schema.field("reading_time").type == pa.timestamp("ms")
    assert back.schema.field("week").type == pa.date32()
    assert back.schema.field("entries").type == pa.int64()
    assert back.equals(parsed.table)
    assert back.column("reading_time").to_pylist() == [dt.datetime(2013, 1, 26, 3)]
    # What the UI and the README say is what the file holds.
    declared = {column.name: column.type for column in table_schema().columns}
    assert declared == {field.name: str(field.type) for field in back.schema}
    assert "| `reading_time` | timestamp[ms] | no |" in columns_markdown()
