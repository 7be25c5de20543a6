"""Realistic synthetic MTA turnstile weeks, for offline runs, tests and the benchmark.

``write_week(dest_dir, week)`` writes ``turnstile_<week + 7 days>.txt`` in the
layout MTA published for that week:

* from 2014-10-11: the 11-column layout, header
  ``C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS``,
  ``MM/DD/YYYY`` dates, counters zero-padded to 10 digits, every line (the
  header too) space-padded to 130 characters, LF line ends;
* before: the 2010-2014 wide layout, no header, ``C/A,UNIT,SCP`` then up to 8
  groups of ``MM-DD-YY,HH:MM:SS,DESC,ENTRIES,EXITS`` per line with counters
  zero-padded to 9 digits, a turnstile's readings wrapping onto further lines
  and its last line holding the rest; lines space-padded to 500 characters.

Content imitates the real files: real station / line / division names and
booths, every one of them in MTA's Remote-Booth-Station key (``booths.py``: a
week never names a booth the key lacks, so its stations are known in either
layout), SCPs like ``02-00-00``, readings every 4 hours from the
turnstile's hour offset (00, 01, 02 or 03:00) on Saturday through Friday, a
few scheduled readings missing, cumulative counters that grow with the hour
of day and the weekday (some near 2.1e9 in 11-column weeks, a few that run
backwards or reset), runs of ``RECOVR AUD`` and a few ``RECOVR AUD`` repeats
of a REGULAR reading at the same time, a very few exact duplicate rows, and
in wide weeks the odd ``DOOR OPEN`` / ``DOOR CLOSE`` / ``LOGON``.

The file holds exactly ``readings`` readings (groups, in the wide layout),
all inside ``[Saturday 00:00, next Saturday 00:00)``. The same arguments give
byte-identical output with the same NumPy. The turnstiles depend on ``seed``
and ``readings`` only, so consecutive weeks share them; counters move on
from week to week roughly as they would.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mta_assets.mta.calendar import (
    FIRST_WEEK,
    expected_layout,
    file_name_for_week,
    week_start,
)
from mta_assets.mta.formats import ELEVEN_COLUMN_HEADER, WIDE_MAX_GROUPS
from mta_devtools.booths import BOOTHS

FULL_WEEK_READINGS = 250_000
ELEVEN_COLUMN_LINE_WIDTH = 130
WIDE_LINE_WIDTH = 500
SLOTS_PER_WEEK = 42  # every 4 hours for 7 days


# SCPs in the order they are most common in real files; a booth with n turnstiles uses the
# first n. Real booths use the first 72 (00-xx-xx to 02-xx-xx); the rest, in the same style,
# hold the further turnstiles of a week larger than the real booths hold.
SCP_CODES: tuple[str, ...] = tuple(
    sorted(f"{a:02d}-{b:02d}-{c:02d}" for a in range(10) for b in (0, 3, 5, 6) for c in range(6))
)

DESCS = ("REGULAR", "RECOVR AUD", "DOOR OPEN", "DOOR CLOSE", "LOGON")
REGULAR, RECOVR_AUD, DOOR_OPEN, DOOR_CLOSE, LOGON = range(len(DESCS))

# Real weeks: ~40% of turnstiles report at 00/04/08..., ~54% at 03/07/11..., a few at 01 and 02.
HOUR_OFFSET_SHARES = (0.40, 0.04, 0.02, 0.54)
# Relative entries per hour of day; morning peak for entries, evening for exits.
_ENTRIES_BY_HOUR = np.array(
    [0.30, 0.15, 0.08, 0.05, 0.05, 0.20, 0.80, 1.60, 2.20, 1.60, 1.00, 0.90,
     1.00, 1.00, 1.10, 1.40, 1.90, 2.20, 1.90, 1.30, 1.00, 0.80, 0.60, 0.45]
)
_EXITS_BY_HOUR = np.roll(_ENTRIES_BY_HOUR, 9)
WEEKEND_FACTOR = 0.6

# Shares of the readings that are extra rows beside the scheduled ones.
RECOVR_REPEAT_SHARE = 0.002  # RECOVR AUD repeating a REGULAR reading at the same time
DOOR_EVENT_SHARE = 0.001  # wide layout only
EXACT_DUPLICATE_EVERY = 100_000
RECOVR_RUN_SHARE = 0.01  # scheduled readings reported as RECOVR AUD after an outage


@dataclasses.dataclass(frozen=True)
class _Turnstiles:
    ca: list[str]
    unit: list[str]
    scp: list[str]
    station: list[str]
    linename: list[str]
    division: list[str]

    def __len__(self) -> int:
        return len(self.ca)


def _week_index(week: str) -> int:
    return (week_start(week) - week_start(FIRST_WEEK)).days // 7


@functools.lru_cache(maxsize=8)
def _turnstiles(count: int, seed: int) -> _Turnstiles:
    """``count`` turnstiles in file order, ~6.7 per booth as in real weeks, at booths of MTA's key only.

    A week larger than ``BOOTHS`` hold at that size gives each booth further turnstiles
    (further SCPs) in turn rather than invent a booth: an invented (UNIT, C/A) pair has
    no station in MTA's key and fails the ``every_unit_has_station`` check.
    """
    rng = np.random.default_rng([seed, 0x7475726E])
    sizes: list[int] = []
    remaining = count
    while remaining > 0 and len(sizes) < len(BOOTHS):
        size = min(remaining, 1 + int(rng.poisson(5.7)))
        sizes.append(size)
        remaining -= size
    if remaining:
        more, first = divmod(remaining, len(sizes))
        sizes = [size + more + (i < first) for i, size in enumerate(sizes)]
    if max(sizes) > len(SCP_CODES):
        raise ValueError(
            f"{count} turnstiles need {max(sizes)} SCPs at a booth, more than the {len(SCP_CODES)} codes "
            f"made here; write fewer readings a week"
        )
    order = sorted(range(len(sizes)), key=lambda i: (BOOTHS[i][0], BOOTHS[i][1]))
    columns: list[list[str]] = [[], [], [], [], [], []]
    for i in order:
        ca, unit, station, linename, division = BOOTHS[i]
        for scp in SCP_CODES[: sizes[i]]:
            for column, value in zip(columns, (ca, unit, scp, station, linename, division)):
                column.append(value)
    return _Turnstiles(*columns)


def _slot_rates(by_hour: np.ndarray) -> np.ndarray:
    """Expected counts in the 4 hours before each slot, shape (hour offset 0-3, slot)."""
    rates = np.empty((4, SLOTS_PER_WEEK))
    for offset in range(4):
        for slot in range(SLOTS_PER_WEEK):
            end = offset + 4 * slot
            hours = np.arange(end - 4, end) % (24 * 7)
            day = hours // 24  # 0 = Saturday, 1 = Sunday
            factor = np.where(day < 2, WEEKEND_FACTOR, 1.0)
            rates[offset, slot] = float((by_hour[hours % 24] * factor).sum())
    return rates


def _counters(
    rng: np.random.Generator, count: int, week: str, layout: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hour offsets and cumulative entries/exits at every scheduled slot, shape (count, 42)."""
    offsets = rng.choice(4, size=count, p=HOUR_OFFSET_SHARES)
    busy = np.minimum(rng.lognormal(np.log(12.0), 1.0, size=count), 400.0)
    busy[rng.random(count) < 0.05] = 0.0  # turnstiles out of service
    exit_ratio = rng.lognormal(np.log(1.1), 0.6, size=count)
    entries_step = rng.poisson(busy[:, None] * _slot_rates(_ENTRIES_BY_HOUR)[offsets])
    exits_step = rng.poisson((busy * exit_ratio)[:, None] * _slot_rates(_EXITS_BY_HOUR)[offsets])

    weeks_run = _week_index(week) + 1
    ceiling = 10**9 - 1 if layout == "wide" else 10**10 - 1
    start_entries = np.exp(rng.uniform(np.log(1e3), np.log(8e6), size=count)) + busy * 900 * weeks_run
    start_exits = np.exp(rng.uniform(np.log(1e3), np.log(6e6), size=count)) + busy * exit_ratio * 900 * weeks_run
    if layout != "wide":
        near_max = rng.random(count) < 0.015
        start_entries[near_max] = rng.uniform(2.0e9, 2.1e9, size=int(near_max.sum()))
        start_exits[near_max] = rng.uniform(1.8e9, 2.1e9, size=int(near_max.sum()))

    entries = start_entries.astype(np.int64)[:, None] + np.cumsum(entries_step, axis=1)
    exits = start_exits.astype(np.int64)[:, None] + np.cumsum(exits_step, axis=1)

    # Some real counters run backwards all week.
    backwards = np.flatnonzero(rng.random(count) < 0.003)
    if backwards.size:
        entries[backwards] = 2 * entries[backwards, :1] - entries[backwards]
        exits[backwards] = 2 * exits[backwards, :1] - exits[backwards]
    # A few are reset to near zero mid-week (a replaced counter).
    resets = np.flatnonzero(rng.random(count) < 0.002)
    for row, at in zip(resets, rng.integers(1, SLOTS_PER_WEEK, size=resets.size)):
        entries[row, at:] -= entries[row, at] - int(rng.integers(0, 50))
        exits[row, at:] -= exits[row, at] - int(rng.integers(0, 50))
    np.clip(entries, 0, ceiling, out=entries)
    np.clip(exits, 0, ceiling, out=exits)
    return offsets, entries, exits


@dataclasses.dataclass
class _Rows:
    turnstile: np.ndarray
    seconds: np.ndarray  # since the week's Saturday 00:00
    desc: np.ndarray
    entries: np.ndarray
    exits: np.ndarray


def _readings(week: str, readings: int, seed: int, layout: str) -> tuple[_Turnstiles, _Rows]:
    repeats = round(readings * RECOVR_REPEAT_SHARE)
    duplicates = readings // EXACT_DUPLICATE_EVERY
    door_events = round(readings * DOOR_EVENT_SHARE) if layout == "wide" else 0
    scheduled = readings - repeats - duplicates - door_events
    count = math.ceil(scheduled / SLOTS_PER_WEEK)
    turnstiles = _turnstiles(count, seed)

    rng = np.random.default_rng([seed, _week_index(week)])
    offsets, entries, exits = _counters(rng, count, week, layout)

    # Scheduled readings that never arrived, so exactly `scheduled` remain.
    slots = count * SLOTS_PER_WEEK
    kept = np.ones(slots, dtype=bool)
    kept[rng.choice(slots, size=slots - scheduled, replace=False)] = False
    kept_slots = np.flatnonzero(kept)
    turnstile = kept_slots // SLOTS_PER_WEEK
    slot = kept_slots % SLOTS_PER_WEEK
    seconds = (offsets[turnstile] + 4 * slot).astype(np.int64) * 3600
    desc = np.full(scheduled, REGULAR, dtype=np.int8)
    # After a communication outage a turnstile reports a run of scheduled readings as RECOVR AUD.
    run_starts = np.flatnonzero(rng.random(scheduled) < RECOVR_RUN_SHARE / 3.5)
    for start, length in zip(run_starts, rng.integers(1, 7, size=run_starts.size)):
        stop = start + length
        same_turnstile = turnstile[start:stop] == turnstile[start]
        desc[start:stop][same_turnstile] = RECOVR_AUD

    parts = [_Rows(turnstile, seconds, desc, entries.ravel()[kept_slots], exits.ravel()[kept_slots])]
    extra = repeats + duplicates + door_events
    if extra:
        source = rng.choice(scheduled, size=extra, replace=extra > scheduled)
        extra_desc = np.full(extra, REGULAR, dtype=np.int8)
        extra_desc[:repeats] = RECOVR_AUD
        extra_seconds = seconds[source].copy()
        if door_events:
            doors = slice(repeats + duplicates, extra)
            extra_desc[doors] = rng.choice([DOOR_OPEN, DOOR_CLOSE, LOGON], size=door_events, p=[0.5, 0.3, 0.2])
            room = np.minimum(3 * 3600, 7 * 86400 - seconds[source[doors]])
            extra_seconds[doors] += rng.integers(60, room)
        # Duplicates copy their source row; repeats keep its counters under RECOVR AUD.
        extra_desc[repeats : repeats + duplicates] = desc[source[repeats : repeats + duplicates]]
        parts.append(
            _Rows(turnstile[source], extra_seconds, extra_desc, parts[0].entries[source], parts[0].exits[source])
        )
    rows = _Rows(*(np.concatenate([getattr(part, field.name) for part in parts]) for field in dataclasses.fields(_Rows)))
    # Stable sort keeps a repeat or duplicate right after the reading it copies.
    order = np.lexsort((rows.seconds, rows.turnstile))
    return turnstiles, _Rows(*(getattr(rows, field.name)[order] for field in dataclasses.fields(_Rows)))


def week_bytes(week: str, readings: int = FULL_WEEK_READINGS, seed: int = 0, layout: str | None = None) -> bytes:
    """The content of the week's file, exactly as ``write_week`` writes it."""
    if readings < 1:
        raise ValueError(f"a week needs at least one reading, got {readings}")
    layout = layout or expected_layout(week)
    if layout not in ("wide", "eleven_column"):
        raise ValueError(f"unknown layout {layout!r}; expected 'wide' or 'eleven_column'")
    turnstiles, rows = _readings(week, readings, seed, layout)

    first_day = week_start(week)
    days = [first_day + dt.timedelta(days=n) for n in range(7)]
    day_of_row = (rows.seconds // 86400).tolist()
    time_of_day = (rows.seconds % 86400).tolist()
    times: dict[int, str] = {}
    for seconds in set(time_of_day):
        times[seconds] = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    entries = rows.entries.tolist()
    exits = rows.exits.tolist()
    descs = [DESCS[code] for code in rows.desc.tolist()]
    turnstile = rows.turnstile.tolist()

    if layout == "eleven_column":
        dates = [f"{day:%m/%d/%Y}" for day in days]
        prefixes = [
            ",".join(fields)
            for fields in zip(
                turnstiles.ca, turnstiles.unit, turnstiles.scp,
                turnstiles.station, turnstiles.linename, turnstiles.division,
            )
        ]
        width = ELEVEN_COLUMN_LINE_WIDTH
        lines = [",".join(ELEVEN_COLUMN_HEADER).ljust(width)]
        lines += [
            f"{prefixes[t]},{dates[d]},{times[s]},{desc},{e:010d},{x:010d}".ljust(width)
            for t, d, s, desc, e, x in zip(turnstile, day_of_row, time_of_day, descs, entries, exits)
        ]
    else:
        dates = [f"{day:%m-%d-%y}" for day in days]
        prefixes = [",".join(fields) for fields in zip(turnstiles.ca, turnstiles.unit, turnstiles.scp)]
        groups = [
            f"{dates[d]},{times[s]},{desc},{e:09d},{x:09d}"
            for d, s, desc, e, x in zip(day_of_row, time_of_day, descs, entries, exits)
        ]
        boundaries = np.flatnonzero(np.diff(rows.turnstile)) + 1
        starts = [0, *boundaries.tolist()]
        ends = [*boundaries.tolist(), len(groups)]
        width = WIDE_LINE_WIDTH
        lines = []
        for start, end in zip(starts, ends):
            prefix = prefixes[turnstile[start]]
            for first in range(start, end, WIDE_MAX_GROUPS):
                line = ",".join([prefix, *groups[first : min(first + WIDE_MAX_GROUPS, end)]])
                lines.append(line.ljust(width))
    lines.append("")
    return "\n".join(lines).encode("ascii")


def write_week(
    dest_dir: Path, week: str, readings: int = FULL_WEEK_READINGS, seed: int = 0, layout: str | None = None
) -> Path:
    """Write the week's synthetic ``turnstile_YYMMDD.txt`` into ``dest_dir`` and return its path."""
    content = week_bytes(week, readings=readings, seed=seed, layout=layout)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / file_name_for_week(week)
    # Written beside the target and renamed, so a mirror never serves a half-written file.
    handle, temporary = tempfile.mkstemp(dir=dest_dir, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_weeks(
    dest_dir: Path, weeks: Iterable[str], readings: int = FULL_WEEK_READINGS, seed: int = 0
) -> list[Path]:
    return [write_week(dest_dir, week, readings=readings, seed=seed) for week in weeks]


def consecutive_weeks(first: str, count: int) -> list[str]:
    start = week_start(first)
    return [(start + dt.timedelta(days=7 * n)).strftime("%Y-%m-%d") for n in range(count)]


def count_readings(content: bytes) -> int:
    """Readings in a file of either layout: data lines, or date groups of wide lines."""
    lines = [line for line in content.decode("ascii").splitlines() if line.strip()]
    if lines and lines[0].startswith(("C/A,", "CA,")):
        return len(lines) - 1
    return sum((line.strip().count(",") - 2) // 5 for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mta_devtools.synthetic",
        description="Write realistic synthetic turnstile_YYMMDD.txt weeks, in the layout MTA used for each week.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write into (created if missing)")
    parser.add_argument("--week", action="append", default=[], help="a week key (its Saturday, YYYY-MM-DD); repeatable")
    parser.add_argument("--weeks-from", help="first of --count consecutive weeks (YYYY-MM-DD, a Saturday)")
    parser.add_argument("--count", type=int, default=1, help="how many weeks from --weeks-from (default 1)")
    parser.add_argument("--readings", type=int, default=FULL_WEEK_READINGS, help="readings per week (default 250000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=("wide", "eleven_column"), help="force a layout (default: MTA's for the week)")
    args = parser.parse_args(argv)

    weeks = list(args.week)
    try:
        if args.weeks_from:
            weeks += consecutive_weeks(args.weeks_from, args.count)
        for week in weeks:
            week_start(week)
    except ValueError as exc:
        parser.error(str(exc))
    if not weeks:
        parser.error("give at least one --week or --weeks-from")
    if args.readings < 1:
        parser.error("--readings must be at least 1")

    for week in weeks:
        began = time.perf_counter()
        path = write_week(args.out, week, readings=args.readings, seed=args.seed, layout=args.layout)
        layout = args.layout or expected_layout(week)
        print(
            f"{path}  week {week}  {layout}  {args.readings} readings  "
            f"{path.stat().st_size:,} bytes  {time.perf_counter() - began:.2f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
