"""The checks of a parsed week, as pure functions: what must hold before a week is committed.

``validate_week`` returns one ``Outcome`` per check in ``CHECKS``; a failed blocking
outcome stops the week from being committed. Dagster code only turns outcomes into
check results (``defs/turnstile/checks.py``). Every failing outcome's metadata names the
week and the source file, and says what was expected and what was found.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from mta_assets.mta.calendar import KNOWN_STRADDLING_FILES, TIMEZONE, expected_layout, week_window
from mta_assets.mta.formats import arrow_schema, markdown_table

if TYPE_CHECKING:
    import pyarrow as pa

    from mta_assets.mta.parse import ParsedWeek

DUPLICATE_KEY = ("ca", "unit", "scp", "reading_time", "desc")
EXAMPLE_ROWS = 5
UNNAMED_SHOWN = 10  # (unit, C/A) pairs a failed station check names in its message


@dataclass(frozen=True)
class ValidationSettings:
    max_reject_share: float = 0.001  # blocking
    volume_tolerance: float = 0.25  # warn beyond this share of the median of earlier weeks
    max_row_drop: float = 0.3  # BLOCK when rows fall more than this share below that median


@dataclass(frozen=True)
class WeekEvidence:
    week: str  # partition key
    source_file: str  # the file name actually downloaded
    length_stated: bool  # the server sent a Content-Length and the body matched it
    earlier_row_counts: Sequence[int] = ()  # row counts of up to 8 earlier weeks, oldest first (may be empty)


@dataclass(frozen=True)
class Outcome:
    name: str
    passed: bool
    blocking: bool  # a failed blocking outcome stops the week from being committed
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)  # JSON-able; markdown as str under keys ending "_md"


SCHEMA = "schema_matches_contract"
LAYOUT = "layout_matches_week"
COMPLETE = "file_complete"
NON_NEGATIVE = "counters_non_negative"
INSIDE_WEEK = "readings_inside_week"
NO_DUPLICATES = "no_duplicate_readings"
REJECT_RATE = "reject_rate_under_threshold"
NOT_COLLAPSED = "row_count_not_collapsed"
VOLUME = "row_count_plausible"

# name -> (description, blocking), in display order.
CHECKS: dict[str, tuple[str, bool]] = {
    SCHEMA: ("The table's columns and types are exactly the Reading contract's.", True),
    LAYOUT: ("The file's layout is the one MTA used that week: wide before 2014-10-11, 11-column from it on.", True),
    COMPLETE: (
        "The file is whole: its length matched the server's Content-Length, or, without one, its last line "
        "is complete, its readings reach the week's Friday and its row count has not collapsed.",
        True,
    ),
    NON_NEGATIVE: ("ENTRIES and EXITS counters are never negative.", True),
    INSIDE_WEEK: (
        "Every reading falls in the partition's week, Saturday 00:00 to the next Saturday 00:00 (New York), "
        "except in the files known to straddle weeks.",
        True,
    ),
    NO_DUPLICATES: (
        "No two readings share (ca, unit, scp, reading_time, desc), except the two a turnstile may report "
        "at one wall time in the repeated hour of a DST fall-back.",
        True,
    ),
    REJECT_RATE: ("The share of readings lost to unparseable lines is under the configured threshold.", True),
    NOT_COLLAPSED: (
        "The week has readings, and not fewer than the configured share below the median of up to 8 earlier weeks.",
        True,
    ),
    VOLUME: ("The week's row count is within the configured share of the median of up to 8 earlier weeks.", False),
}


def validate_week(
    parsed: ParsedWeek, evidence: WeekEvidence, settings: ValidationSettings = ValidationSettings()
) -> list[Outcome]:
    """Every check of ``CHECKS`` on the parsed week, in display order."""
    collapse = _collapse(parsed.table.num_rows, evidence, settings)
    schema = _schema(parsed.table, evidence)
    outcomes = {
        SCHEMA: schema,
        LAYOUT: _layout(parsed, evidence),
        REJECT_RATE: _reject_rate(parsed, evidence, settings),
        NOT_COLLAPSED: collapse,
        VOLUME: _volume(parsed.table.num_rows, evidence, settings),
    }
    table_checks = {
        COMPLETE: lambda: _complete(parsed, evidence, collapse),
        NON_NEGATIVE: lambda: _non_negative(parsed.table, evidence),
        INSIDE_WEEK: lambda: _inside_week(parsed.table, evidence),
        NO_DUPLICATES: lambda: _no_duplicates(parsed.table, evidence),
    }
    for name, check in table_checks.items():
        # Columns missing or of another type cannot be checked; the schema outcome says which.
        outcomes[name] = check() if schema.passed else _outcome(
            name, False, evidence, "not evaluated: the table does not match the contract",
            expected="a table in the Reading contract", found=schema.description,
        )
    return [outcomes[name] for name in CHECKS]


def blocking_failures(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The failed outcomes that stop the week from being committed."""
    return [outcome for outcome in outcomes if outcome.blocking and not outcome.passed]


def every_unit_has_station(stations: pa.Table, key_source: str) -> Outcome:
    """Every (unit, C/A) pair of a week's station dimension has a station name.

    ``stations`` is ``mta.stations.station_dimension``'s table; ``key_source`` says where
    the station key came from (a path or URL, or why there is none). A failure's message
    itself names the first pairs, how many there are and the key, so the one line a run
    prints is enough to act on; the metadata keeps the same for the UI.
    """
    import pyarrow.compute as pc

    unnamed = stations.filter(pc.is_null(stations["station"]))
    pairs = [f"{row['unit']}/{row['ca']}" for row in unnamed.slice(0, UNNAMED_SHOWN).to_pylist()]
    units = sorted(set(unnamed["unit"].to_pylist()))
    if unnamed.num_rows == 0:
        message = f"all {stations.num_rows} (unit, C/A) pairs have a station (station key: {key_source})"
    else:
        more = f" and {unnamed.num_rows - len(pairs)} more" if unnamed.num_rows > len(pairs) else ""
        message = (
            f"{unnamed.num_rows} of {stations.num_rows} (unit, C/A) pairs ({len(units)} units) have no station: "
            f"{', '.join(pairs)}{more}; station key: {key_source}"
        )
    return Outcome(
        name="every_unit_has_station",
        passed=unnamed.num_rows == 0,
        blocking=True,
        description=message,
        metadata={
            "pairs": stations.num_rows,
            "pairs_without_station": unnamed.num_rows,
            "units_without_station": len(units),
            "examples": pairs,
            "station_key": key_source,
        },
    )


def _outcome(name: str, passed: bool, evidence: WeekEvidence, message: str, **metadata: Any) -> Outcome:
    """An outcome whose metadata always names the week and the file; ``message`` says what was found."""
    _, blocking = CHECKS[name]
    return Outcome(
        name=name,
        passed=passed,
        blocking=blocking,
        description=f"week {evidence.week} ({evidence.source_file}): {message}",
        metadata={"week": evidence.week, "source_file": evidence.source_file, **metadata},
    )


def _schema(table: pa.Table, evidence: WeekEvidence) -> Outcome:
    wanted = {field.name: str(field.type) for field in arrow_schema()}
    actual = {field.name: str(field.type) for field in table.schema}
    missing = sorted(set(wanted) - set(actual))
    extra = sorted(set(actual) - set(wanted))
    wrong = {name: f"{actual[name]} (expected {wanted[name]})" for name in wanted if name in actual and actual[name] != wanted[name]}
    order_ok = list(actual) == list(wanted)
    passed = not (missing or extra or wrong) and order_ok
    message = "the columns are the contract's" if passed else (
        f"missing {missing}, unexpected {extra}, wrong types {wrong}, column order {'ok' if order_ok else 'differs'}"
    )
    return _outcome(
        SCHEMA, passed, evidence, message,
        expected=[f"{name}: {kind}" for name, kind in wanted.items()],
        found=[f"{name}: {kind}" for name, kind in actual.items()],
        missing_columns=missing, unexpected_columns=extra, wrong_types=wrong, column_order_matches=order_ok,
    )


def _layout(parsed: ParsedWeek, evidence: WeekEvidence) -> Outcome:
    expected = expected_layout(evidence.week)
    passed = parsed.layout == expected
    message = (
        f"{expected} layout, as expected" if passed
        else f"expected the {expected} layout for this week, found a {parsed.layout} file"
    )
    return _outcome(LAYOUT, passed, evidence, message, expected=expected, found=parsed.layout)


def _complete(parsed: ParsedWeek, evidence: WeekEvidence, collapse: Outcome) -> Outcome:
    friday = week_window(evidence.week)[1].date() - dt.timedelta(days=1)
    if evidence.length_stated:
        return _outcome(
            COMPLETE, True, evidence, "the body's length matched the server's Content-Length",
            expected="the length the server stated", found="that length", verified_by="Content-Length",
        )
    last = _max_time(parsed.table)
    reaches_friday = last is not None and last.date() >= friday
    passed = parsed.last_line_complete and reaches_friday and collapse.passed
    problems = [
        *([] if parsed.last_line_complete else ["the last line is cut short (no final newline, or it lost readings)"]),
        *([] if reaches_friday else [f"the readings stop at {last.isoformat() if last else 'nothing'}, before Friday {friday}"]),
        *([] if collapse.passed else [
            f"the row count collapsed ({collapse.metadata['found']} rows, expected {collapse.metadata['expected']})"
        ]),
    ]
    message = (
        "no Content-Length; the content proves the file whole" if passed
        else "no Content-Length and the content does not prove the file whole: " + "; ".join(problems)
    )
    return _outcome(
        COMPLETE, passed, evidence, message,
        verified_by="content",
        expected=f"last line complete, readings through Friday {friday}, row count not collapsed",
        found="; ".join(problems) if problems else "all three",
        last_line_complete=parsed.last_line_complete,
        last_reading=last.isoformat() if last else None,
        row_count_not_collapsed=collapse.passed,
    )


def _non_negative(table: pa.Table, evidence: WeekEvidence) -> Outcome:
    import pyarrow.compute as pc

    negative_entries = pc.less(table["entries"], 0)
    negative_exits = pc.less(table["exits"], 0)
    counts = {name: int(pc.sum(mask).as_py() or 0) for name, mask in (("entries", negative_entries), ("exits", negative_exits))}
    bad = table.filter(pc.or_(negative_entries, negative_exits))
    passed = bad.num_rows == 0
    return _outcome(
        NON_NEGATIVE, passed, evidence,
        "no negative counter" if passed else f"{counts['entries']} negative ENTRIES and {counts['exits']} negative EXITS",
        expected="no negative counter", found=f"{bad.num_rows} rows with a negative counter",
        negative_entries=counts["entries"], negative_exits=counts["exits"],
        examples_md=markdown_table(bad.slice(0, EXAMPLE_ROWS)),
    )


def _inside_week(table: pa.Table, evidence: WeekEvidence) -> Outcome:
    import pyarrow as pa
    import pyarrow.compute as pc

    start, end = week_window(evidence.week)
    times = table["reading_time"]
    outside_mask = pc.or_(pc.less(times, pa.scalar(start, times.type)), pc.greater_equal(times, pa.scalar(end, times.type)))
    outside = table.filter(outside_mask)
    first, last = _min_time(table), _max_time(table)
    straddles = KNOWN_STRADDLING_FILES.get(evidence.source_file)
    passed = outside.num_rows == 0 or straddles is not None
    if outside.num_rows == 0:
        message = "every reading is inside the week"
    elif straddles:
        message = f"{outside.num_rows} readings outside the week, accepted: {straddles}"
    else:
        message = (
            f"{outside.num_rows} readings fall outside {start.isoformat()} – {end.isoformat()} "
            f"(readings run {first.isoformat() if first else '-'} to {last.isoformat() if last else '-'})"
        )
    return _outcome(
        INSIDE_WEEK, passed, evidence, message,
        expected=f"{start.isoformat()} <= reading_time < {end.isoformat()}",
        found=f"{outside.num_rows} readings outside",
        window_start=start.isoformat(), window_end=end.isoformat(),
        readings_outside=outside.num_rows,
        first_reading=first.isoformat() if first else "", last_reading=last.isoformat() if last else "",
        known_straddling_file=straddles or "",
        examples_md=markdown_table(outside.slice(0, EXAMPLE_ROWS)),
    )


def _no_duplicates(table: pa.Table, evidence: WeekEvidence) -> Outcome:
    """Keys seen more than once fail, except exactly two readings in the repeated hour of a
    DST fall-back: New York's wall clock shows 01:00-01:59 twice that night, and MTA's
    naive times cannot say which pass a reading belongs to, so both are kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = _rows_sharing_a_key(table).group_by(list(DUPLICATE_KEY)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    fall_back = [
        _in_repeated_hour(when) and count == 2
        for when, count in zip(repeated["reading_time"].to_pylist(), repeated["count_all"].to_pylist())
    ]
    explained = repeated.filter(pa.array(fall_back, pa.bool_())) if repeated.num_rows else repeated
    duplicated = repeated.filter(pa.array([not f for f in fall_back], pa.bool_())) if repeated.num_rows else repeated
    extra_rows = int(pc.sum(duplicated["count_all"]).as_py() or 0) - duplicated.num_rows
    passed = duplicated.num_rows == 0
    message = "every (ca, unit, scp, reading_time, desc) is unique" if passed else (
        f"{duplicated.num_rows} keys appear more than once ({extra_rows} extra rows)"
    )
    if explained.num_rows:
        message += f"; {explained.num_rows} keys appear twice in a DST fall-back hour, as expected"
    return _outcome(
        NO_DUPLICATES, passed, evidence, message,
        expected="one reading per key (two in a DST fall-back hour)",
        found=f"{duplicated.num_rows} repeated keys",
        duplicated_keys=duplicated.num_rows, extra_rows=max(extra_rows, 0),
        fall_back_hour_pairs=explained.num_rows,
        examples_md=markdown_table(duplicated.slice(0, EXAMPLE_ROWS)),
    )


def _rows_sharing_a_key(table: pa.Table) -> pa.Table:
    """The rows whose (ca, unit, scp, reading_time, desc) another row shares.

    Grouping the whole week by five columns, three of them strings, costs about 80 MB of
    hash table for 250,000 rows; packing the key into two integers and sorting them costs
    a few MB, and the exact grouping then runs on the few rows found here.
    """
    import numpy as np
    import pyarrow.compute as pc

    if table.num_rows < 2:
        return table
    packed = np.zeros(table.num_rows, dtype=np.int64)
    for name in ("ca", "unit", "scp", "desc"):
        encoded = pc.dictionary_encode(table[name]).combine_chunks()
        packed = packed * (len(encoded.dictionary) + 1) + encoded.indices.to_numpy(zero_copy_only=False)
    times = pc.cast(table["reading_time"], "int64").to_numpy()
    order = np.lexsort((times, packed))
    same = (packed[order][1:] == packed[order][:-1]) & (times[order][1:] == times[order][:-1])
    rows = np.zeros(table.num_rows, dtype=bool)
    rows[order[1:][same]] = True
    rows[order[:-1][same]] = True
    return table.filter(rows)


def _in_repeated_hour(when: dt.datetime) -> bool:
    """The naive New York wall time happens twice (the hour repeated when DST ends)."""
    zone = ZoneInfo(TIMEZONE)
    return when.replace(tzinfo=zone, fold=0).utcoffset() != when.replace(tzinfo=zone, fold=1).utcoffset()


def _reject_rate(parsed: ParsedWeek, evidence: WeekEvidence, settings: ValidationSettings) -> Outcome:
    share = parsed.reject_share
    passed = share <= settings.max_reject_share
    return _outcome(
        REJECT_RATE, passed, evidence,
        f"{parsed.rejects} of {parsed.readings_seen} readings lost ({share:.4%}; at most {settings.max_reject_share:.4%})",
        expected=f"reject share <= {settings.max_reject_share}", found=round(share, 6),
        rejected=parsed.rejects, readings_seen=parsed.readings_seen,
        reject_share=round(share, 6), max_reject_share=settings.max_reject_share,
        rejected_samples=list(parsed.reject_samples),
    )


def _median(evidence: WeekEvidence) -> float | None:
    counts = list(evidence.earlier_row_counts)
    return float(statistics.median(counts)) if counts else None


def _collapse(rows: int, evidence: WeekEvidence, settings: ValidationSettings) -> Outcome:
    median = _median(evidence)
    floor = median * (1 - settings.max_row_drop) if median is not None else 1
    passed = rows > 0 and rows >= floor
    if rows == 0:
        message = "the week has no readings"
    elif median is None:
        message = f"{rows} rows; no earlier week to compare with"
    else:
        message = f"{rows} rows against a median of {median:g} over {len(evidence.earlier_row_counts)} earlier weeks (at least {floor:g})"
    return _outcome(
        NOT_COLLAPSED, passed, evidence, message,
        expected=f"at least {floor:g} rows", found=rows,
        row_count=rows, median_of_earlier_weeks=median, earlier_weeks=len(evidence.earlier_row_counts),
        max_row_drop=settings.max_row_drop,
    )


def _volume(rows: int, evidence: WeekEvidence, settings: ValidationSettings) -> Outcome:
    median = _median(evidence)
    if median is None:
        return _outcome(
            VOLUME, rows > 0, evidence, f"{rows} rows; no earlier week to compare with",
            expected="more than 0 rows", found=rows, row_count=rows, earlier_weeks=0,
            tolerance=settings.volume_tolerance,
        )
    deviation = abs(rows - median) / median if median else 0.0
    passed = rows > 0 and deviation <= settings.volume_tolerance
    return _outcome(
        VOLUME, passed, evidence,
        f"{rows} rows, {deviation:.1%} from the median {median:g} of {len(evidence.earlier_row_counts)} earlier weeks "
        f"(tolerance {settings.volume_tolerance:.0%})",
        expected=f"within {settings.volume_tolerance:.0%} of {median:g}", found=rows,
        row_count=rows, median_of_earlier_weeks=median, deviation=round(deviation, 4),
        earlier_weeks=len(evidence.earlier_row_counts), tolerance=settings.volume_tolerance,
    )


def _min_time(table: pa.Table) -> dt.datetime | None:
    import pyarrow.compute as pc

    return pc.min(table["reading_time"]).as_py() if table.num_rows else None


def _max_time(table: pa.Table) -> dt.datetime | None:
    import pyarrow.compute as pc

    return pc.max(table["reading_time"]).as_py() if table.num_rows else None
