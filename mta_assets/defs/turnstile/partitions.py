"""The weekly partitions definition: one partition per MTA file, keyed by the Saturday its readings begin.

Week arithmetic lives in ``mta_assets.mta.calendar``; this module only turns it into
Dagster's partitions definition.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from mta_assets.mta.calendar import FIRST_WEEK, KEY_FORMAT, TIMEZONE

weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=FIRST_WEEK,
    day_offset=6,  # Saturday
    timezone=TIMEZONE,
    fmt=KEY_FORMAT,
)


def published_weeks(now: dt.datetime | None = None) -> list[str]:
    """All weeks whose file is published at ``now`` (default: the current time)."""
    return list(weekly_partitions.get_partition_keys(current_time=now))


def backfill_policy() -> dg.BackfillPolicy:
    """TEMPORARY: one run per range (the deploy branch adds MTA_WEEKS_PER_RUN)."""
    return dg.BackfillPolicy.single_run()
