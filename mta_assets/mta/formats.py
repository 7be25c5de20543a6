"""The two layouts MTA published, how to tell them apart, and the row contract of the readings table.

``Reading`` is the single source of truth for ``turnstile_readings``: the Arrow/Parquet
schema (``arrow_schema``), the column schema shown in the UI (built from ``column_specs``
in ``defs/turnstile/tables.py``) and docs/data.md's table of columns (``columns_markdown``)
are all derived from its fields.

No Dagster here, and pyarrow only inside functions: the code location imports this module
and must load fast.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from mta_assets.mta.calendar import TIMEZONE

if TYPE_CHECKING:
    import pyarrow as pa

Layout = Literal["wide", "eleven_column"]

ELEVEN_COLUMN_HEADER = (
    "C/A", "UNIT", "SCP", "STATION", "LINENAME", "DIVISION", "DATE", "TIME", "DESC", "ENTRIES", "EXITS",
)
WIDE_GROUP_FIELDS = 5  # DATE(MM-DD-YY), TIME, DESC, ENTRIES, EXITS
WIDE_KEY_FIELDS = 3  # C/A, UNIT, SCP
WIDE_MAX_GROUPS = 8

# C/A, UNIT, SCP then the first reading group of a 2010-2014 row. DESC is any text without
# a comma: real values include LGF-MAN, DOOR OPEN and RECOVR AUD. Fields may carry padding.
_WIDE_ROW = re.compile(
    r"^[^,]+,[^,]+,[^,]+, *\d\d-\d\d-\d\d *, *\d\d:\d\d:\d\d *,[^,]+, *\d+ *, *\d+"
)


class UnknownLayout(ValueError):
    """The text is not a turnstile file in either known layout."""


def detect_layout(head: str) -> Layout:
    """Classify a file by its first non-blank line; raise ``UnknownLayout`` saying what was seen.

    ``head`` may be one line or the start of a file: blank lines (padding, a stray empty
    first line) are skipped exactly as the parser skips them, so a download and its parse
    never disagree about a file.
    """
    line = next((text.strip() for text in head.lstrip("\ufeff").splitlines() if text.strip()), "")
    if not line:
        raise UnknownLayout("the file has no non-blank line")
    if line.startswith("<") or "<html" in line.lower():
        raise UnknownLayout(f"it is an HTML page, not a turnstile file (starts {line[:60]!r})")
    header = tuple(field.strip().upper() for field in line.split(","))
    # pandas re-saves write CA for C/A; the columns are otherwise the same.
    if header == ELEVEN_COLUMN_HEADER or header == ("CA", *ELEVEN_COLUMN_HEADER[1:]):
        return "eleven_column"
    if _WIDE_ROW.match(line):
        return "wide"
    if header[:3] in (ELEVEN_COLUMN_HEADER[:3], ("CA", "UNIT", "SCP")):
        raise UnknownLayout(f"unknown header with columns {list(header)}")
    raise UnknownLayout(f"unknown row layout: first line starts {line[:80]!r}")


# --- the row contract ------------------------------------------------------------------------


class Reading(BaseModel):
    """One audit reading of one turnstile: the row contract of ``turnstile_readings``."""

    ca: str = Field(description="Control area (booth), e.g. A002; `C/A` in MTA's files.")
    unit: str = Field(description="Remote unit of the station, e.g. R051.")
    scp: str = Field(description="Subunit channel position: the turnstile's address in its unit, e.g. 02-00-00.")
    station: str | None = Field(
        default=None,
        description="Station name. From the file from 2014-10-11 on; for earlier (wide) files "
        "only when a Remote-Booth-Station key is configured, else null."
    )
    linename: str | None = Field(
        default=None,
        description="Lines stopping at the station, one character per line, e.g. NQR456W; null like `station`."
    )
    division: str | None = Field(
        default=None,
        description="Division the station belonged to (BMT, IND, IRT, PTH, ...); null like `station`."
    )
    reading_time: dt.datetime = Field(
        description=f"When the reading was taken: naive local wall time in {TIMEZONE}, exactly as MTA "
        "wrote it, stored in milliseconds (Parquet has no seconds unit; the values are whole seconds). "
        "MTA's files carry no UTC offset, so the repeated hour of a DST fall-back can hold two readings "
        "of one turnstile at the same wall time: both are kept; localize downstream if needed."
    )
    desc: str = Field(description="Audit event: REGULAR (every 4 hours), RECOVR AUD, DOOR OPEN, LOGON, ...")
    entries: int = Field(
        description="Cumulative entry register (int64: it reaches ~2.1e9). Can run backwards or reset."
    )
    exits: int = Field(description="Cumulative exit register (int64). Can run backwards or reset.")
    week: dt.date = Field(
        description="Partition key: the Saturday the week of readings begins (the file is named for the next Saturday)."
    )
    source_file: str = Field(
        description="Name of the MTA file the reading came from, as downloaded, e.g. turnstile_240106.txt."
    )


COLUMN_NAMES: tuple[str, ...] = tuple(Reading.model_fields)
# Parquet stores timestamps in ms, us or ns only: the contract says what the file holds.
READING_TIME_UNIT = "ms"


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); ``X`` -> (X, False)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unsupported column annotation {annotation!r}")
        return members[0], True
    return annotation, False


def column_specs() -> list[tuple[str, Any, bool, str]]:
    """(name, python type, nullable, description) for every ``Reading`` field, in order."""
    specs = []
    for name, info in Reading.model_fields.items():
        python_type, nullable = _unwrap_optional(info.annotation)
        specs.append((name, python_type, nullable, info.description or ""))
    return specs


def _arrow_type(python_type: Any) -> pa.DataType:
    import pyarrow as pa

    # datetime is checked before date: it is a subclass of date.
    if python_type is dt.datetime:
        return pa.timestamp(READING_TIME_UNIT)
    if python_type is dt.date:
        return pa.date32()
    if python_type is int:
        return pa.int64()
    if python_type is str:
        return pa.string()
    raise TypeError(f"no Arrow type for {python_type!r}")


@functools.cache
def arrow_schema() -> pa.Schema:
    """The Parquet/Arrow schema of ``turnstile_readings``, derived from ``Reading``: exactly what
    a written file reads back as."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(name, _arrow_type(python_type), nullable=nullable)
            for name, python_type, nullable, _ in column_specs()
        ]
    )


def columns_markdown() -> str:
    """A markdown table of the columns (for docs/data.md), derived from ``Reading``."""
    schema = arrow_schema()
    lines = ["| column | type | nullable | description |", "|---|---|---|---|"]
    for name, _, nullable, description in column_specs():
        cell = description.replace("|", "\\|")
        lines.append(f"| `{name}` | {schema.field(name).type} | {'yes' if nullable else 'no'} | {cell} |")
    return "\n".join(lines) + "\n"


def markdown_table(table: pa.Table, empty: str = "(none)") -> str:
    """A few rows as a markdown table, for check examples and previews."""
    if table.num_rows == 0:
        return empty
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join("" if row[n] is None else str(row[n]) for n in names) + " |" for row in table.to_pylist()]
    return "\n".join(lines)
