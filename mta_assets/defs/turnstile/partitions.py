"""The weekly partitions definition: one partition per MTA file, keyed by the Saturday its readings begin.

Week arithmetic lives in ``mta_assets.mta.calendar``; this module only turns it into
Dagster's partitions definition. A declared last week (``MTA_LAST_WEEK``) ends the
partitions there: later weeks are neither listed, scheduled, requested nor late.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from mta_assets.mta.calendar import FIRST_WEEK, KEY_FORMAT, TIMEZONE, week_start
from mta_assets.settings import last_week_from_env


def build_weekly_partitions(last_week: str | None = None) -> dg.WeeklyPartitionsDefinition:
    """Saturday weeks from ``FIRST_WEEK``, through ``last_week`` when given (else open-ended)."""
    # Dagster's end_date is exclusive and names a partition boundary: the week that
    # starts at end_date is the first one NOT listed, so the last week's own key + 7 days.
    end_date = None
    if last_week is not None:
        end_date = (week_start(last_week) + dt.timedelta(days=7)).strftime(KEY_FORMAT)
    return dg.WeeklyPartitionsDefinition(
        start_date=FIRST_WEEK,
        end_date=end_date,
        day_offset=6,  # Saturday
        timezone=TIMEZONE,
        fmt=KEY_FORMAT,
    )


LAST_WEEK = last_week_from_env()
weekly_partitions = build_weekly_partitions(LAST_WEEK)


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
