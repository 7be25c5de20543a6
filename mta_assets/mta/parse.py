"""A vectorized parser for both MTA layouts: a week's file -> Arrow rows in the ``Reading`` contract, plus rejects.

Rows are never validated one by one through pydantic: a week holds about 250,000
readings, so ``parse_week`` checks them column-wise with pyarrow compute kernels, a
block of the file at a time so that memory stays bounded whatever the file's size.

pyarrow and numpy are imported inside functions: the Dagster code location imports
this module and must load fast.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mta_assets.mta.calendar import week_start
from mta_assets.mta.formats import (
    READING_TIME_UNIT,
    WIDE_GROUP_FIELDS,
    WIDE_KEY_FIELDS,
    WIDE_MAX_GROUPS,
    Layout,
    Reading,
    arrow_schema,
    detect_layout,
)
from mta_assets.mta.stations import StationKey, load_station_key  # noqa: F401  (moved there; kept importable here)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ParsedWeek", "Reading", "StationKey", "arrow_schema", "load_station_key", "parse_week"]


# --- parsing ---------------------------------------------------------------------------------

REJECT_SAMPLE_LIMIT = 10
CHUNK_LINES = 32_768
# A file is read in blocks of this size, cut at line ends: peak memory follows the block,
# not the file (a week is about 33 MB as published).
BLOCK_BYTES = 4 * 1024 * 1024
REJECT_TEXT_CHARS = 120
# Enough digits for any register while staying inside int64.
_COUNTER_MAX_DIGITS = 18


@dataclass(frozen=True)
class _LayoutSpec:
    key_positions: tuple[int, ...]  # C/A, UNIT, SCP and, in the 11-column file, STATION, LINENAME, DIVISION
    first_group: int  # position of the first DATE field
    date_pattern: str  # shape check: strptime alone accepts 1-digit fields and stray spaces
    date_format: str
    has_header: bool


_ELEVEN = _LayoutSpec((0, 1, 2, 3, 4, 5), 6, r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$", "%m/%d/%Y %H:%M:%S", True)
_WIDE = _LayoutSpec((0, 1, 2), WIDE_KEY_FIELDS, r"^\d\d-\d\d-\d\d \d\d:\d\d:\d\d$", "%m-%d-%y %H:%M:%S", False)
_ELEVEN_FIELDS = 11


@dataclass
class ParsedWeek:
    """A parsed MTA file and the bookkeeping that proves nothing was dropped silently."""

    table: pa.Table  # in arrow_schema(), exact duplicates removed, rows in file order
    layout: Layout
    lines: int  # physical lines; a final newline does not start another line
    blank_lines: int  # empty or only whitespace: padding, not rejects
    readings_seen: int  # readings kept + readings lost, before duplicates are removed
    rejects: int  # readings lost: a rejected wide row counts every reading it held
    reject_samples: list[dict[str, Any]] = field(default_factory=list)  # first few: line, reason, text
    duplicates: int = 0  # exact duplicate rows removed
    # The last non-blank line ended with a newline and parsed whole: evidence that the
    # file was not cut short (with the readings reaching the week's Friday).
    last_line_complete: bool = True

    @property
    def reject_share(self) -> float:
        return self.rejects / max(self.readings_seen, 1)


def parse_week(
    source: bytes | Path,
    week: str,
    source_file: str,
    station_key: StationKey | None = None,
) -> ParsedWeek:
    """Parse an MTA file (either layout), given as its bytes or as a path, into ``arrow_schema()`` rows.

    A path is read in blocks of ``BLOCK_BYTES`` cut at line ends, so memory is bounded by
    the block and the resulting table, not the file; bytes go through the same blocks, so
    both give the same table.

    Fields are trimmed (``REGULAR `` is ``REGULAR``). Rejected readings (wrong field count,
    bad date or time, non-numeric or negative counter, empty C/A, UNIT, SCP or DESC) are
    counted as readings lost and the first few sampled with their 1-based physical line
    number. A wide row whose last group is cut short keeps its complete groups; the partial
    group is one lost reading. A wide row that cannot be split into 1 to 8 groups (a
    trailing comma, more than 8 groups, none) is rejected whole and counts every reading it
    held (its non-empty fields after C/A,UNIT,SCP, by groups of 5, at least one); an
    11-column line with another field count counts its fields by 11. A counter
    cut short that still reads as digits is kept: it is what MTA published.

    Raises ``UnknownLayout`` when the first non-blank line fits neither layout.
    """
    import pyarrow as pa

    week_day = week_start(week)
    layout: Layout | None = None
    spec = _WIDE
    header_line = -1
    line_offset = 0
    blank_before_layout = 0
    ends_with_newline = True
    chunks: list[_Chunk] = []
    for block in _blocks(source, BLOCK_BYTES):
        ends_with_newline = block.endswith(b"\n")
        lines = _split_lines(block)
        if layout is None:
            first = _first_nonblank(lines)
            if first is None:
                blank_before_layout += len(lines)
                line_offset += len(lines)
                continue
            layout = detect_layout(lines[first].as_py())
            spec = _ELEVEN if layout == "eleven_column" else _WIDE
            header_line = line_offset + first if spec.has_header else -1
        # Chunks of lines bound the intermediate arrays (split fields, positions, masks).
        for start in range(0, len(lines), CHUNK_LINES):
            chunks.append(
                _parse_chunk(
                    lines.slice(start, CHUNK_LINES),
                    first_line=line_offset + start,
                    header_line=header_line,
                    spec=spec,
                    layout=layout,
                    week_day=week_day,
                    source_file=source_file,
                    station_key=station_key,
                )
            )
        line_offset += len(lines)
        del lines, block
    if layout is None:
        detect_layout("")  # raises UnknownLayout with the reason
        raise AssertionError("unreachable")

    table = pa.Table.from_batches([], schema=arrow_schema())
    tables = [chunk.table for chunk in chunks if chunk.table.num_rows]
    if tables:
        table = pa.concat_tables(tables)
    table, duplicates = _drop_exact_duplicates(table)
    rejects = sum(chunk.rejects for chunk in chunks)
    last = next((chunk.last_line for chunk in reversed(chunks) if chunk.last_line is not None), None)
    last_whole = next((chunk.last_whole for chunk in reversed(chunks) if chunk.last_line is not None), False)
    return ParsedWeek(
        table=table,
        layout=layout,
        lines=line_offset,
        blank_lines=blank_before_layout + sum(chunk.blank_lines for chunk in chunks),
        readings_seen=sum(chunk.kept for chunk in chunks) + rejects,
        rejects=rejects,
        reject_samples=[sample for chunk in chunks for sample in chunk.samples][:REJECT_SAMPLE_LIMIT],
        duplicates=duplicates,
        last_line_complete=last is not None and last_whole and (last < line_offset - 1 or ends_with_newline),
    )


def _blocks(source: bytes | Path, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The file in pieces of about ``block_bytes`` that end at a line end (the last may not);
    a UTF-8 byte order mark is dropped."""
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    with handle:
        carry = b""
        first = True
        while data := handle.read(block_bytes):
            if first and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            first = False
            data = carry + data if carry else data
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a block: keep reading
                carry = data
                continue
            carry = data[cut:]
            yield data if cut == len(data) else data[:cut]
        if carry:
            yield carry


@dataclass
class _Chunk:
    table: pa.Table  # duplicates not yet removed: they may span chunks
    kept: int
    rejects: int
    blank_lines: int
    samples: list[dict[str, Any]]
    last_line: int | None  # 0-based physical line of the chunk's last non-blank line
    last_whole: bool  # that line is the header or a row that lost no reading


def _first_nonblank(lines: pa.Array) -> int | None:
    import numpy as np
    import pyarrow.compute as pc

    lengths = pc.binary_length(pc.ascii_trim_whitespace(lines)).to_numpy(zero_copy_only=False)
    found = np.flatnonzero(lengths > 0)
    return int(found[0]) if len(found) else None


def _parse_chunk(
    lines: pa.Array,
    *,
    first_line: int,
    header_line: int,
    spec: _LayoutSpec,
    layout: Layout,
    week_day: dt.date,
    source_file: str,
    station_key: StationKey | None,
) -> _Chunk:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    line_count = len(lines)
    # Only ASCII whitespace pads MTA's lines; the ASCII kernel is safe on UTF-8 and faster.
    trimmed = pc.ascii_trim_whitespace(lines)
    nonblank = np.flatnonzero(pc.binary_length(trimmed).to_numpy(zero_copy_only=False) > 0)
    blank_lines = line_count - len(nonblank)
    row_lines = nonblank[nonblank != header_line - first_line]
    last_line = first_line + int(nonblank[-1]) if len(nonblank) else None

    contiguous = len(row_lines) > 0 and int(row_lines[-1]) - int(row_lines[0]) + 1 == len(row_lines)
    # Usually every line after the header is a row: a zero-copy slice instead of a take.
    if contiguous:
        rows = trimmed.slice(int(row_lines[0]), len(row_lines))
    else:
        rows = trimmed.take(pa.array(row_lines, pa.int64()))
    split = pc.split_pattern(rows, ",")
    field_counts = pc.list_value_length(split).to_numpy(zero_copy_only=False).astype(np.int64)
    row_starts = split.offsets.to_numpy()[:-1].astype(np.int64)
    # Fields are trimmed: "REGULAR " is "REGULAR", " 0001" is a counter.
    values = pc.ascii_trim_whitespace(split.values)

    if spec is _ELEVEN:
        groups = (field_counts == _ELEVEN_FIELDS).astype(np.int64)
        whole_row_rejects = field_counts != _ELEVEN_FIELDS
        partial_group_rejects = np.zeros(len(field_counts), dtype=bool)
        lost_in_row = np.zeros(len(field_counts), dtype=np.int64)
    else:
        complete = (field_counts - WIDE_KEY_FIELDS) // WIDE_GROUP_FIELDS
        leftover = (field_counts - WIDE_KEY_FIELDS) % WIDE_GROUP_FIELDS
        usable = (complete >= 1) & (complete <= WIDE_MAX_GROUPS) & ~((complete == WIDE_MAX_GROUPS) & (leftover > 0))
        groups = np.where(usable, complete, 0)
        whole_row_rejects = ~usable
        partial_group_rejects = usable & (leftover > 0)
        lost_in_row = partial_group_rejects.astype(np.int64)
    rejected_rows = np.flatnonzero(whole_row_rejects)
    if len(rejected_rows):
        lost_in_row[rejected_rows] = _readings_held(rows.take(pa.array(rejected_rows, pa.int64())), spec)
    del rows

    # One entry per reading, in file order: which row it comes from and which group it is.
    reading_rows = np.repeat(np.arange(len(groups)), groups)
    group_index = np.arange(len(reading_rows)) - np.repeat(np.cumsum(groups) - groups, groups)
    reading_base = row_starts[reading_rows]
    group_base = reading_base + spec.first_group + WIDE_GROUP_FIELDS * group_index

    def take_field(positions: Any) -> pa.Array:
        return values.take(pa.array(positions))

    keys = [take_field(reading_base + position) for position in spec.key_positions]
    date, time_of_day, desc, entries, exits = (take_field(group_base + offset) for offset in range(5))
    del split, values  # every field is copied out; the list array is the largest buffer

    reading_time = _parse_times(pc.binary_join_element_wise(date, time_of_day, " "), spec)
    bad_time = pc.is_null(reading_time).to_numpy(zero_copy_only=False)
    entries_ok = _is_counter(entries)
    exits_ok = _is_counter(exits)
    empty_key = np.zeros(len(reading_rows), dtype=bool)
    for column in (*keys[:3], desc):
        empty_key |= (pc.binary_length(column).to_numpy(zero_copy_only=False) == 0)
    reading_rejects = bad_time | ~entries_ok | ~exits_ok | empty_key

    keep = pa.array(~reading_rejects)
    n_kept = int((~reading_rejects).sum())
    all_kept = n_kept == len(reading_rejects)

    def _keep(column, mask):
        return column if all_kept else pc.filter(column, mask)

    if spec is _ELEVEN:
        station, linename, division = (_keep(column, keep) for column in keys[3:6])
    else:
        station, linename, division = _stations_from_key(
            _keep(keys[1], keep), _keep(keys[0], keep), station_key
        )

    def counter(column: pa.Array) -> pa.Array:
        # Cast only after rejects are filtered out, so every input is 1 to 18 digits.
        return pc.cast(_keep(column, keep), pa.int64())

    table = pa.Table.from_arrays(
        [
            _keep(keys[0], keep),
            _keep(keys[1], keep),
            _keep(keys[2], keep),
            station,
            linename,
            division,
            pc.cast(_keep(reading_time, keep), pa.timestamp(READING_TIME_UNIT)),
            _keep(desc, keep),
            counter(entries),
            counter(exits),
            pa.repeat(pa.scalar(week_day, pa.date32()), n_kept),
            pa.repeat(pa.scalar(source_file, pa.string()), n_kept),
        ],
        schema=arrow_schema(),
    )
    rejects = int(lost_in_row.sum() + reading_rejects.sum())
    last_whole = True
    if len(row_lines) and last_line == first_line + int(row_lines[-1]):
        last_row = len(row_lines) - 1
        last_whole = not lost_in_row[last_row] and not reading_rejects[reading_rows == last_row].any()
    samples = []
    if rejects:
        samples = _reject_samples(
            trimmed=trimmed,
            row_lines=row_lines,
            first_line=first_line,
            whole_row_rejects=whole_row_rejects,
            partial_group_rejects=partial_group_rejects,
            lost_in_row=lost_in_row,
            field_counts=field_counts,
            reading_rows=reading_rows,
            group_index=group_index,
            reading_reasons=(bad_time, ~entries_ok, ~exits_ok, empty_key),
            entries=entries,
            exits=exits,
            layout=layout,
        )
    return _Chunk(
        table=table,
        kept=n_kept,
        rejects=rejects,
        blank_lines=blank_lines,
        samples=samples,
        last_line=last_line,
        last_whole=bool(last_whole),
    )


def _readings_held(rows: pa.Array, spec: _LayoutSpec) -> Any:
    """How many readings each rejected row held, at least one: a wide row's fields after
    C/A,UNIT,SCP by groups of 5, an 11-column line's fields by 11 (two rows run together
    count two). Empty trailing fields (a trailing comma) hold nothing."""
    import numpy as np
    import pyarrow.compute as pc

    without_trailing = pc.ascii_rtrim(rows, characters=", \t")
    fields = pc.count_substring(without_trailing, ",").to_numpy(zero_copy_only=False).astype(np.int64) + 1
    if spec is _ELEVEN:
        return np.maximum(1, -(-fields // _ELEVEN_FIELDS))
    return np.maximum(1, -(-(fields - WIDE_KEY_FIELDS) // WIDE_GROUP_FIELDS))


def _split_lines(raw: bytes) -> pa.Array:
    """The physical lines of ``raw`` as one Arrow string array, without copying the bytes.

    Each line keeps its terminator; trimming removes it with the padding.
    """
    import numpy as np
    import pyarrow as pa

    def build(text: bytes) -> pa.Array:
        data = np.frombuffer(text, dtype=np.uint8)
        ends = np.flatnonzero(data == ord("\n")) + 1
        if len(text) and (len(ends) == 0 or ends[-1] != len(text)):
            ends = np.append(ends, len(text))  # no final newline: the last line still counts
        offsets = np.concatenate([[0], ends]).astype(np.int32)
        return pa.Array.from_buffers(pa.string(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(text)])

    # 32-bit string offsets are Arrow's default and the schema's; a block is far smaller
    # unless one line never ends.
    if len(raw) >= 2**31:
        raise ValueError(f"a line of {len(raw):,} bytes is not a turnstile file's (a whole week is about 33 MB)")
    lines = build(raw)
    try:
        lines.validate(full=True)  # UTF-8 check, without decoding a copy of the file
    except pa.ArrowInvalid:
        # MTA's files are ASCII; a stray byte from a re-save must not lose the week.
        lines = build(raw.decode("cp1252", errors="replace").encode("utf-8"))
    return lines


def _is_counter(text: pa.Array) -> Any:
    """numpy mask: 1 to 18 ASCII digits (no sign, no spaces), so the int64 cast cannot fail."""
    import pyarrow.compute as pc

    digits = pc.ascii_is_decimal(text).to_numpy(zero_copy_only=False)
    return digits & (pc.binary_length(text).to_numpy(zero_copy_only=False) <= _COUNTER_MAX_DIGITS)


def _parse_times(date_time: pa.Array, spec: _LayoutSpec) -> pa.Array:
    """``MM-DD-YY HH:MM:SS`` / ``MM/DD/YYYY HH:MM:SS`` -> timestamp[s], null where invalid.

    A week has only a few thousand distinct timestamps, so they are parsed once each
    through a dictionary. strptime rolls impossible days over (02-30 -> 03-02), so the
    parsed value is printed back and must equal the text (in seconds: a finer unit would
    print fractions).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(date_time)
    distinct = encoded.dictionary
    shaped = pc.match_substring_regex(distinct, spec.date_pattern)
    parsed = pc.strptime(pc.if_else(shaped, distinct, ""), format=spec.date_format, unit="s", error_is_null=True)
    if len(distinct):
        printed = pc.strftime(parsed, format=spec.date_format)
        round_trip = pc.fill_null(pc.equal(printed, distinct), False)
        parsed = pc.if_else(round_trip, parsed, pa.scalar(None, pa.timestamp("s")))
    return parsed.take(encoded.indices)


def _stations_from_key(
    units: pa.Array, control_areas: pa.Array, station_key: StationKey | None
) -> tuple[pa.Array, pa.Array, pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if station_key is None or not len(station_key):
        empty = pa.nulls(len(units), pa.string())
        return empty, empty, empty
    pairs = list(station_key.stations)
    wanted = pc.binary_join_element_wise(units, control_areas, "\x1f")
    known = pa.array([f"{unit}\x1f{ca}" for unit, ca in pairs], pa.string())
    positions = pc.index_in(wanted, value_set=known)
    columns = []
    for slot in range(3):
        column = pa.array([station_key.stations[pair][slot] for pair in pairs], pa.string())
        columns.append(column.take(positions))
    return columns[0], columns[1], columns[2]


def _drop_exact_duplicates(table: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first of each group of identical rows; file order is preserved."""
    import numpy as np
    import pyarrow as pa

    if table.num_rows == 0:
        return table, 0
    # Identical rows share their three integer columns; sorting on those finds the few
    # candidates cheaply, and only they are compared on every column.
    numbers = [
        table.column(name).combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
        for name in ("exits", "entries", "reading_time")
    ]
    order = np.lexsort(numbers)
    same_as_next = np.ones(len(order) - 1, dtype=bool)
    for column in numbers:
        ordered = column[order]
        same_as_next &= ordered[1:] == ordered[:-1]
    in_group = np.zeros(len(order), dtype=bool)
    in_group[:-1] |= same_as_next
    in_group[1:] |= same_as_next
    candidates = np.sort(order[in_group])
    if len(candidates) == 0:
        return table, 0
    # week and source_file are constant within one file: no need to compare them.
    varying = [name for name in table.column_names if name not in ("week", "source_file")]
    subset = table.select(varying).take(pa.array(candidates))
    subset = subset.append_column("__row", pa.array(candidates))
    firsts = subset.group_by(varying, use_threads=False).aggregate([("__row", "min")])
    drop = np.setdiff1d(candidates, firsts.column("__row_min").to_numpy())
    if len(drop) == 0:
        return table, 0
    keep = np.ones(table.num_rows, dtype=bool)
    keep[drop] = False
    return table.filter(pa.array(keep)), len(drop)


def _reject_samples(
    *,
    trimmed: pa.Array,
    row_lines: Any,
    first_line: int,
    whole_row_rejects: Any,
    partial_group_rejects: Any,
    lost_in_row: Any,
    field_counts: Any,
    reading_rows: Any,
    group_index: Any,
    reading_reasons: tuple[Any, Any, Any, Any],
    entries: pa.Array,
    exits: pa.Array,
    layout: Layout,
) -> list[dict[str, Any]]:
    """The first rejects in file order; only these few are turned into Python objects."""
    import numpy as np

    bad_time, bad_entries, bad_exits, empty_key = reading_reasons
    limit = REJECT_SAMPLE_LIMIT
    candidates: list[tuple[int, int, str, int]] = []  # (row, order within row, reason, readings lost)

    for row in np.flatnonzero(whole_row_rejects)[:limit]:
        count = int(field_counts[row])
        if layout == "eleven_column":
            reason = f"expected {_ELEVEN_FIELDS} fields, found {count}"
            if lost_in_row[row] > 1:
                reason += f"; {int(lost_in_row[row])} readings lost"
        else:
            reason = (
                f"expected C/A,UNIT,SCP and 1 to {WIDE_MAX_GROUPS} groups of {WIDE_GROUP_FIELDS} fields "
                f"({WIDE_KEY_FIELDS + WIDE_GROUP_FIELDS} to {WIDE_KEY_FIELDS + WIDE_MAX_GROUPS * WIDE_GROUP_FIELDS}"
                f" fields), found {count}; {int(lost_in_row[row])} reading(s) lost"
            )
        candidates.append((int(row), 0, reason, int(lost_in_row[row])))
    for row in np.flatnonzero(partial_group_rejects)[:limit]:
        count = int(field_counts[row])
        leftover = (count - WIDE_KEY_FIELDS) % WIDE_GROUP_FIELDS
        reason = (
            f"last reading group cut short: {leftover} of {WIDE_GROUP_FIELDS} fields "
            f"(the row's {(count - WIDE_KEY_FIELDS) // WIDE_GROUP_FIELDS} complete groups are kept)"
        )
        candidates.append((int(row), WIDE_MAX_GROUPS + 1, reason, 1))
    any_reading_reject = bad_time | bad_entries | bad_exits | empty_key
    for reading in np.flatnonzero(any_reading_reject)[:limit]:
        reading = int(reading)
        if bad_time[reading]:
            reason = "bad date or time"
        elif empty_key[reading]:
            reason = "empty C/A, UNIT, SCP or DESC"
        else:
            which = "ENTRIES" if bad_entries[reading] else "EXITS"
            text = (entries if bad_entries[reading] else exits)[reading].as_py()
            kind = "negative" if text.startswith("-") and text[1:].isdigit() else "non-numeric"
            reason = f"{kind} {which} counter {text[:20]!r}"
        row = int(reading_rows[reading])
        candidates.append((row, int(group_index[reading]), reason, 1))

    candidates.sort(key=lambda candidate: (candidate[0], candidate[1]))
    samples = []
    for row, _, reason, lost in candidates[:limit]:
        line_index = int(row_lines[row])
        samples.append(
            {
                "line": first_line + line_index + 1,
                "reason": reason,
                "readings_lost": lost,
                "text": trimmed[line_index].as_py()[:REJECT_TEXT_CHARS],
            }
        )
    return samples
