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
    """The turnstile assets' backfill policy: one run per range, or runs of ``MTA_WEEKS_PER_RUN`` weeks.

    One run per range is the default because on one machine each run pays Dagster's
    start-up once; on a cluster, runs of N weeks let the run launcher spread a backfill
    over several pods at once.
    """
    from mta_assets.settings import weeks_per_run

    weeks = weeks_per_run()
    if weeks == 0:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=weeks)
