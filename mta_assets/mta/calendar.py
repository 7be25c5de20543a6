"""Weekly partitions: one partition per MTA file, keyed by the Saturday its readings begin.

MTA publishes ``turnstile_YYMMDD.txt`` on Saturday D with the readings of Saturday D-7
through Friday D-1. The partition key is D-7 (``YYYY-MM-DD``), so a key names the
first day of the week it holds and the file for key K is named for K + 7 days.

Dagster's weekly partitions only list a week once it has ended, in New York time:
the week starting K appears at K + 7 days 00:00 America/New_York, which is exactly
the day its file is published. No future file can be requested.

MTA's first files (from ``turnstile_100505.txt``, a Wednesday) were named for
Wednesdays, which no Saturday-keyed rule can produce. Partitions begin at
2010-05-01, the Saturday week in which the first file was published; for weeks
before ``LEGACY_NAMING_ENDS`` the source resource falls back to the Wednesday name
(K + 4 days: 2010-05-01 -> ``turnstile_100505.txt``) when the Saturday name is
not found. Those files straddle two Saturday weeks, so the week-window check
reports their out-of-week readings as a warning, not a blocking failure.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

TIMEZONE = "America/New_York"
FIRST_WEEK = "2010-05-01"
# Format change: the file published 2014-10-18 (readings from 2014-10-11) is the
# first in the 11-column layout.
ELEVEN_COLUMN_FIRST_WEEK = "2014-10-11"
# Wednesday-named files only occurred in MTA's first weeks of 2010.
LEGACY_NAMING_ENDS = "2010-12-31"

KEY_FORMAT = "%Y-%m-%d"
_FILE_NAME = re.compile(r"^turnstile_(\d{6})\.txt$")

def week_start(key: str) -> dt.date:
    """The Saturday a partition key names; rejects keys that are not Saturdays."""
    try:
        day = dt.datetime.strptime(key, KEY_FORMAT).date()
    except ValueError as exc:
        raise ValueError(f"week {key!r} is not a YYYY-MM-DD partition key") from exc
    if day.weekday() != 5:
        raise ValueError(f"week {key!r} is a {day:%A}; weeks start on a Saturday")
    return day


def publication_date(key: str) -> dt.date:
    """The Saturday the week's file is published: the day after its last reading."""
    return week_start(key) + dt.timedelta(days=7)


def file_name_for_week(key: str) -> str:
    return f"turnstile_{publication_date(key):%y%m%d}.txt"


def legacy_file_name_for_week(key: str) -> str | None:
    """The Wednesday name MTA used in 2010 for the week, or None after the naming settled."""
    start = week_start(key)
    if key > LEGACY_NAMING_ENDS:
        return None
    return f"turnstile_{start + dt.timedelta(days=4):%y%m%d}.txt"


def week_for_file_name(name: str) -> str:
    """Inverse of ``file_name_for_week``: ``turnstile_240106.txt`` -> ``2023-12-30``."""
    match = _FILE_NAME.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a turnstile_YYMMDD.txt file name")
    published = dt.datetime.strptime(match.group(1), "%y%m%d").date()
    if published.weekday() != 5:
        raise ValueError(f"{name!r} is not named for a Saturday publication day")
    return (published - dt.timedelta(days=7)).strftime(KEY_FORMAT)


def week_window(key: str) -> tuple[dt.datetime, dt.datetime]:
    """[Saturday 00:00, next Saturday 00:00) in naive New York local time."""
    start = dt.datetime.combine(week_start(key), dt.time())
    return start, start + dt.timedelta(days=7)


def expected_layout(key: str) -> str:
    return "eleven_column" if key >= ELEVEN_COLUMN_FIRST_WEEK else "wide"


def latest_published_week(now: dt.datetime | None = None) -> str | None:
    """The newest week whose publication Saturday has begun in New York at ``now``."""
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(ZoneInfo(TIMEZONE))
    today = local.date()
    last_saturday = today - dt.timedelta(days=(today.weekday() - 5) % 7)
    key = (last_saturday - dt.timedelta(days=7)).strftime(KEY_FORMAT)
    return key if key >= FIRST_WEEK else None


def require_published(key: str, now: dt.datetime | None = None) -> None:
    """Fail clearly for a week whose file cannot exist yet."""
    latest = latest_published_week(now)
    if latest is None or key > latest:
        raise ValueError(
            f"week {key} is not published yet: {file_name_for_week(key)} appears on "
            f"{publication_date(key):%A %Y-%m-%d} ({TIMEZONE}); the latest published week is {latest}"
        )
