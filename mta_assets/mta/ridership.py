"""Entries and exits per station and day from MTA's cumulative turnstile counters (no Dagster import).

The files hold cumulative registers per turnstile (C/A, UNIT, SCP) that reset, run
backwards and jump. Ridership is the difference between consecutive readings of one
turnstile, kept, capped or dropped by the rules below (docs/data.md "Ridership" has them as a
table, with the anchors each one comes from):

* one reading per turnstile and timestamp: REGULAR before RECOVR AUD before any other
  audit event, then file order;
* an interval longer than ``MAX_GAP`` is dropped (its riders cannot be placed on a day);
* a counter difference is taken as its absolute value (some registers count down);
* an absolute difference of ``RESET_AT`` or more is a reset or a jump: the interval is dropped;
* a difference above one passage per ``SECONDS_PER_PASSAGE`` of the interval is capped there;
* an interval counts on the day of its midpoint, so 20:00-00:00 belongs to the evening it
  covers and 23:00-03:00 to the day it mostly covers;
* a week owns the intervals whose later reading is in the week; the first one of each
  turnstile needs the previous week's last reading and is dropped without it. Because of
  the midpoint rule a week's file also holds a few hours of the Friday before it, and
  its own Friday ends in the next week's file: sum by date across weeks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

MAX_GAP = dt.timedelta(hours=24)
RESET_AT = 10_000
SECONDS_PER_PASSAGE = 2.0
READING_COLUMNS = ["ca", "unit", "scp", "reading_time", "desc", "entries", "exits"]
_DESC_PRIORITY = {"REGULAR": 0, "RECOVR AUD": 1}
STATUSES = ["used", "capped", "dropped"]


@dataclasses.dataclass(frozen=True)
class Rules:
    """The thresholds of the ridership rules; the defaults are docs/data.md's."""

    max_gap: dt.timedelta = MAX_GAP
    reset_at: int = RESET_AT
    seconds_per_passage: float = SECONDS_PER_PASSAGE


def intervals(current: pa.Table, previous: pa.Table | None = None, rules: Rules = Rules()) -> pa.Table:
    """One row per interval that ends in ``current``: turnstile, day, entries, exits and status.

    ``current`` and ``previous`` are readings tables (at least ``READING_COLUMNS``); only the
    last reading of each turnstile in ``previous`` matters. ``status`` is ``used``, ``capped``
    or ``dropped``; a dropped interval counts 0 entries and 0 exits.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    tables = [current.select(READING_COLUMNS)]
    if previous is not None and previous.num_rows and current.num_rows:
        # Only the previous week's readings near the boundary can start a kept interval:
        # anything older than MAX_GAP before the week's first reading would be dropped anyway.
        cutoff = pc.subtract(pc.min(current["reading_time"]), pa.scalar(rules.max_gap))
        recent = previous.filter(pc.greater_equal(previous["reading_time"], cutoff))
        tables.insert(0, recent.select(READING_COLUMNS).cast(tables[0].schema))
    readings = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries()
    is_current = np.zeros(readings.num_rows, dtype=bool)
    is_current[readings.num_rows - current.num_rows :] = True

    turnstile = np.zeros(readings.num_rows, dtype=np.int64)
    for column in ("ca", "unit", "scp"):  # one integer per (C/A, UNIT, SCP), no string joins
        indices, size = _codes(readings[column])
        turnstile = turnstile * size + indices
    times = readings["reading_time"].cast(pa.timestamp("s")).cast(pa.int64()).to_numpy()
    # A week has a handful of distinct DESC values: rank those, then take by index.
    desc_codes, _ = _codes(readings["desc"])
    ranks = np.array([_DESC_PRIORITY.get(str(v).strip(), 2) for v in _dictionary(readings["desc"])] or [2], np.int8)
    priority = ranks[desc_codes]
    order = _sort_order(turnstile, times, priority)

    turnstile, times, is_current = turnstile[order], times[order], is_current[order]
    entries = readings["entries"].to_numpy()[order]
    exits = readings["exits"].to_numpy()[order]
    # One reading per turnstile and time: the first after sorting by priority and file order.
    first_of_time = np.ones(len(order), dtype=bool)
    first_of_time[1:] = (turnstile[1:] != turnstile[:-1]) | (times[1:] != times[:-1])
    keep = np.flatnonzero(first_of_time)
    order, turnstile, times, is_current = order[keep], turnstile[keep], times[keep], is_current[keep]
    entries, exits = entries[keep], exits[keep]

    has_previous = np.zeros(len(order), dtype=bool)
    has_previous[1:] = turnstile[1:] == turnstile[:-1]
    ends = np.flatnonzero(is_current)  # a week owns the intervals whose later reading it holds
    linked = has_previous[ends]
    starts = np.where(linked, ends - 1, ends)

    gap = (times[ends] - times[starts]).astype(np.float64)
    d_entries = np.abs(entries[ends] - entries[starts])
    d_exits = np.abs(exits[ends] - exits[starts])
    limit = gap / rules.seconds_per_passage
    dropped = (
        ~linked
        | (gap > rules.max_gap.total_seconds())
        | (d_entries >= rules.reset_at)
        | (d_exits >= rules.reset_at)
    )
    capped = ~dropped & ((d_entries > limit) | (d_exits > limit))
    entries_out = np.where(dropped, 0, np.minimum(d_entries, np.floor(limit))).astype(np.int64)
    exits_out = np.where(dropped, 0, np.minimum(d_exits, np.floor(limit))).astype(np.int64)
    # The midpoint's day; an interval without a start counts on its reading's day.
    midpoint = times[starts] + (times[ends] - times[starts]) // 2
    day = (midpoint // 86_400).astype("datetime64[D]")
    status_codes = np.where(dropped, 2, np.where(capped, 1, 0)).astype(np.int8)
    status = pa.DictionaryArray.from_arrays(pa.array(status_codes), pa.array(STATUSES))

    rows = order[ends]
    return pa.table(
        {
            "ca": _plain(readings["ca"].take(pa.array(rows))),
            "unit": _plain(readings["unit"].take(pa.array(rows))),
            "scp": _plain(readings["scp"].take(pa.array(rows))),
            "start": pa.array(times[starts], pa.int64(), mask=~linked).cast(pa.timestamp("s")),
            "end": pa.array(times[ends], pa.int64()).cast(pa.timestamp("s")),
            "date": pa.array(day, pa.date32()),
            "entries": pa.array(entries_out, pa.int64()),
            "exits": pa.array(exits_out, pa.int64()),
            "status": status,
        }
    )


def _codes(column: pa.ChunkedArray) -> tuple:
    """(int64 numpy codes, number of distinct values) of a string or dictionary column.

    A dictionary column must have unified dictionaries (``Table.unify_dictionaries``).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        # One chunk first, so that every code comes from one dictionary.
        column = pa.chunked_array([pc.dictionary_encode(column.combine_chunks())])
    size = len(column.chunk(0).dictionary) if column.num_chunks else 0
    indices = [chunk.indices.to_numpy(zero_copy_only=False).astype(np.int64) for chunk in column.chunks]
    return (np.concatenate(indices) if indices else np.zeros(0, np.int64)), max(size, 1)


def _dictionary(column: pa.ChunkedArray) -> list:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        column = pa.chunked_array([pc.dictionary_encode(column.combine_chunks())])
    return column.chunk(0).dictionary.to_pylist() if column.num_chunks else []


def _plain(array: pa.Array) -> pa.Array:
    import pyarrow as pa

    return array.cast(pa.string()) if pa.types.is_dictionary(array.type) else array


def _sort_order(turnstile, times, priority):
    """Stable order by (turnstile, time, priority): one packed int64 key when it fits, else lexsort."""
    import numpy as np

    if len(times) == 0:
        return np.zeros(0, np.int64)
    relative = times - times.min()
    time_bits = max(int(relative.max()).bit_length(), 1)
    turnstile_bits = max(int(turnstile.max()).bit_length(), 1)
    if turnstile_bits + time_bits + 2 > 62:
        return np.lexsort((priority, times, turnstile))
    key = (turnstile << (time_bits + 2)) | (relative << 2) | priority.astype(np.int64)
    return np.argsort(key, kind="stable")


DAILY_COLUMNS = ["week", "date", "unit", "station", "linename", "division", "entries", "exits",
                 "intervals_used", "intervals_capped", "intervals_dropped", "turnstiles"]


def daily(week_intervals: pa.Table, stations: pa.Table, week: dt.date) -> pa.Table:
    """One row per station and day: the week's intervals summed, named by the station dimension.

    ``stations`` maps (unit, ca) to station, linename and division (see ``stations.py``);
    a pair it does not name keeps a null station, which the ``every_unit_has_station``
    check reports.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    status = week_intervals["status"]
    per_pair = (
        pa.table(
            {
                "date": week_intervals["date"],
                "unit": week_intervals["unit"],
                "ca": week_intervals["ca"],
                "scp": week_intervals["scp"],
                "entries": week_intervals["entries"],
                "exits": week_intervals["exits"],
                "used": pc.cast(pc.equal(status, "used"), pa.int64()),
                "capped": pc.cast(pc.equal(status, "capped"), pa.int64()),
                "dropped": pc.cast(pc.equal(status, "dropped"), pa.int64()),
            }
        )
        # Summed per (date, unit, C/A) first: a few thousand rows to name instead of 250,000.
        .group_by(["date", "unit", "ca"], use_threads=False)
        .aggregate(
            [("entries", "sum"), ("exits", "sum"), ("used", "sum"), ("capped", "sum"), ("dropped", "sum"),
             ("scp", "count_distinct")]
        )
    )
    named = per_pair.join(
        stations.select(["unit", "ca", "station", "linename", "division"]), keys=["unit", "ca"], join_type="left outer"
    )
    keys = ["date", "unit", "station", "linename", "division"]
    grouped = named.group_by(keys, use_threads=False).aggregate(
        [
            ("entries_sum", "sum"),
            ("exits_sum", "sum"),
            ("used_sum", "sum"),
            ("capped_sum", "sum"),
            ("dropped_sum", "sum"),
            ("scp_count_distinct", "sum"),
        ]
    )
    result = pa.table(
        {
            "week": pa.repeat(pa.scalar(week, pa.date32()), grouped.num_rows),
            **{key: grouped[key] for key in keys},
            "entries": grouped["entries_sum_sum"],
            "exits": grouped["exits_sum_sum"],
            "intervals_used": grouped["used_sum_sum"],
            "intervals_capped": grouped["capped_sum_sum"],
            "intervals_dropped": grouped["dropped_sum_sum"],
            "turnstiles": pc.cast(grouped["scp_count_distinct_sum"], pa.int64()),
        }
    )
    # Deterministic row order, so the same week gives the same Parquet bytes.
    return result.sort_by([("date", "ascending"), ("unit", "ascending"), ("station", "ascending")])


def system_by_day(daily_rows: pa.Table) -> dict[dt.date, tuple[int, int]]:
    """System-wide (entries, exits) per date of a ``daily`` table."""
    grouped = daily_rows.group_by(["date"]).aggregate([("entries", "sum"), ("exits", "sum")])
    return {
        row["date"]: (row["entries_sum"], row["exits_sum"])
        for row in grouped.sort_by("date").to_pylist()
    }
