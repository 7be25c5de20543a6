"""Weeks, file names and publication days: one partition per MTA file, keyed by the Saturday its readings begin.

MTA publishes ``turnstile_YYMMDD.txt`` on Saturday D with the readings of Saturday D-7
through Friday D-1. The partition key is D-7 (``YYYY-MM-DD``), so a key names the
first day of the week it holds and the file for key K is named for K + 7 days.

Dagster's weekly partitions only list a week once it has ended, in New York time:
the week starting K appears at K + 7 days 00:00 America/New_York, which is exactly
the day its file is published. No future file can be requested.

The exception is MTA's first file, ``turnstile_100505.txt``, named for Wednesday
2010-05-05 (see ``EXCEPTIONAL_FILE_NAMES``). Its readings begin on Saturday 2010-04-17,
so it cannot belong to the week 2010-05-01, whose Saturday file ``turnstile_100508.txt``
follows it: it is the file of week 2010-04-24, the first partition (``FIRST_WEEK``), and
it straddles the week before (``KNOWN_STRADDLING_FILES``). Every other week has exactly
one name, its Saturday one; no made-up fallback names are tried.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

TIMEZONE = "America/New_York"
KEY_FORMAT = "%Y-%m-%d"

# Weeks whose file was not named for the Saturday after them, with the names to try in
# order. Only names the archive is known to have held belong here. MTA's first file is
# turnstile_100505.txt, a Wednesday (the archive's own list, as copied in
# pbmendoza/mta_ridership references/docs/turnstile_data.md: "Files from
# turnstile_100505.txt through turnstile_141011.txt"); Saturday names are in use by
# turnstile_100619.txt. No public copy of the archive list names any other non-Saturday
# file, so none is guessed: a missing Saturday file is reported under its real name.
EXCEPTIONAL_FILE_NAMES: dict[str, tuple[str, ...]] = {
    "2010-04-24": ("turnstile_100505.txt",),
}

# The first partition: the week of MTA's first file. Its readings start 2010-04-17
# (pbmendoza/mta_ridership's first record; Ritaotao/pymtattl), but the week 2010-04-17
# has no file of its own, so no partition either.
FIRST_WEEK = "2010-04-24"

# Files whose readings legitimately leave their Saturday week; the week-window check
# passes them with this note instead of blocking.
KNOWN_STRADDLING_FILES: dict[str, str] = {
    "turnstile_100505.txt": (
        "MTA's first file, published on Wednesday 2010-05-05 before weekly Saturday files began: "
        "its readings start on Saturday 2010-04-17, a week before its partition 2010-04-24 "
        "(pbmendoza/mta_ridership, Ritaotao/pymtattl), and may run until the day before it was published."
    ),
}

# Format change: the file published 2014-10-18 (readings from 2014-10-11) is the
# first in the 11-column layout.
ELEVEN_COLUMN_FIRST_WEEK = "2014-10-11"

_FILE_NAME = re.compile(r"^turnstile_(\d{6})\.txt$")
_WEEK_OF_EXCEPTIONAL_NAME = {name: week for week, names in EXCEPTIONAL_FILE_NAMES.items() for name in names}


def week_start(key: str) -> dt.date:
    """The Saturday a partition key names; rejects keys that are not Saturdays."""
    try:
        day = dt.datetime.strptime(key, KEY_FORMAT).date()
    except ValueError as exc:
        raise ValueError(f"week {key!r} is not a YYYY-MM-DD partition key") from exc
    if day.weekday() != 5:
        raise ValueError(f"week {key!r} is a {day:%A}, not a Saturday: weeks start on a Saturday")
    return day


def shift_week(key: str, weeks: int) -> str:
    """The key ``weeks`` weeks after ``key`` (before, when negative)."""
    return (week_start(key) + dt.timedelta(weeks=weeks)).strftime(KEY_FORMAT)


def weeks_between(first: str, last: str) -> list[str]:
    """Saturday keys from ``first`` through ``last``, both included (empty when first > last)."""
    start, end = week_start(first), week_start(last)
    return [(start + dt.timedelta(weeks=n)).strftime(KEY_FORMAT) for n in range((end - start).days // 7 + 1)]


def weeks_before(key: str, count: int) -> list[str]:
    """Up to ``count`` keys before ``key``, oldest first, none before ``FIRST_WEEK``."""
    return [week for week in (shift_week(key, -n) for n in range(count, 0, -1)) if week >= FIRST_WEEK]


def publication_date(key: str) -> dt.date:
    """The Saturday the week's file is due: the day after its last reading."""
    return week_start(shift_week(key, 1))


def candidate_file_names(key: str) -> list[str]:
    """The names to try for the week, in order: its Saturday name, or the archive's own
    exceptional names for the few weeks in ``EXCEPTIONAL_FILE_NAMES``."""
    week_start(key)
    if key in EXCEPTIONAL_FILE_NAMES:
        return list(EXCEPTIONAL_FILE_NAMES[key])
    return [f"turnstile_{publication_date(key):%y%m%d}.txt"]


def file_name_for_week(key: str) -> str:
    """The week's file name: the first candidate (the only one, for every week but exceptions)."""
    return candidate_file_names(key)[0]


def week_for_file_name(name: str) -> str:
    """Inverse of ``file_name_for_week``, exceptional names included:
    ``turnstile_240106.txt`` -> ``2023-12-30``, ``turnstile_100505.txt`` -> ``2010-04-24``."""
    if name in _WEEK_OF_EXCEPTIONAL_NAME:
        return _WEEK_OF_EXCEPTIONAL_NAME[name]
    match = _FILE_NAME.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a turnstile_YYMMDD.txt file name")
    try:
        published = dt.datetime.strptime(match.group(1), "%y%m%d").date()
    except ValueError as exc:
        raise ValueError(f"{name!r} does not name a real date") from exc
    if published.weekday() != 5:
        raise ValueError(
            f"{name!r} is named for a {published:%A}: MTA's files are named for Saturdays, "
            f"except {', '.join(sorted(_WEEK_OF_EXCEPTIONAL_NAME))}"
        )
    week = (published - dt.timedelta(days=7)).strftime(KEY_FORMAT)
    if week < FIRST_WEEK:
        raise ValueError(f"{name!r} is older than MTA's first file, {file_name_for_week(FIRST_WEEK)}")
    if week in EXCEPTIONAL_FILE_NAMES:
        raise ValueError(f"{name!r} is not in MTA's archive: week {week}'s file is {file_name_for_week(week)}")
    return week


def week_window(key: str) -> tuple[dt.datetime, dt.datetime]:
    """[Saturday 00:00, next Saturday 00:00) in naive New York local time."""
    start = dt.datetime.combine(week_start(key), dt.time())
    return start, start + dt.timedelta(days=7)


def expected_layout(key: str) -> str:
    """``wide`` for files before ``turnstile_141018.txt``, ``eleven_column`` from it on."""
    return "eleven_column" if week_start(key) >= week_start(ELEVEN_COLUMN_FIRST_WEEK) else "wide"


def latest_published_week(now: dt.datetime | None = None) -> str | None:
    """The newest week whose publication Saturday has begun in New York at ``now``."""
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(ZoneInfo(TIMEZONE))
    today = local.date()
    last_saturday = today - dt.timedelta(days=(today.weekday() - 5) % 7)
    key = (last_saturday - dt.timedelta(days=7)).strftime(KEY_FORMAT)
    return key if key >= FIRST_WEEK else None


def require_published(key: str, now: dt.datetime | None = None) -> None:
    """Fail clearly for a key that is not a week, a week before MTA's first file, or a
    week whose file cannot exist yet."""
    week_start(key)  # "... is a Sunday, not a Saturday ..."
    if key < FIRST_WEEK:
        raise ValueError(
            f"week {key} is before MTA's first file: the archive starts with week {FIRST_WEEK} "
            f"({file_name_for_week(FIRST_WEEK)})"
        )
    latest = latest_published_week(now)
    if latest is None or key > latest:
        raise ValueError(
            f"week {key} is not published yet: {file_name_for_week(key)} appears on "
            f"{publication_date(key):%A %Y-%m-%d} ({TIMEZONE}); the latest published week is {latest}"
        )
