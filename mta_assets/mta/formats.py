"""The two layouts MTA published, and how to tell them apart from a file's first line."""

from __future__ import annotations

import re
from typing import Literal

Layout = Literal["wide", "eleven_column"]

ELEVEN_COLUMN_HEADER = (
    "C/A", "UNIT", "SCP", "STATION", "LINENAME", "DIVISION", "DATE", "TIME", "DESC", "ENTRIES", "EXITS",
)
WIDE_GROUP_FIELDS = 5  # DATE(MM-DD-YY), TIME, DESC, ENTRIES, EXITS
WIDE_KEY_FIELDS = 3  # C/A, UNIT, SCP
WIDE_MAX_GROUPS = 8

# C/A, UNIT, SCP then the first reading group of a 2010-2014 row.
_WIDE_ROW = re.compile(
    r"^[A-Z0-9]+,[A-Z0-9]+,[0-9A-Z-]+,\d\d-\d\d-\d\d,\d\d:\d\d:\d\d,[A-Z ]+,\d+,\d+"
)


class UnknownLayout(ValueError):
    """The text is not a turnstile file in either known layout."""


def detect_layout(first_line: str) -> Layout:
    """Classify a file by its first line; raise ``UnknownLayout`` saying what was seen."""
    line = first_line.lstrip("\ufeff").strip()
    if not line:
        raise UnknownLayout("the first line is empty")
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
