"""The weekly schedule: every Saturday, run the week whose file MTA has just published.

A weekly partition ends at Saturday 00:00 America/New_York, the day its file is
published, so a schedule built from the partitioned job requests exactly that
week: the Saturday 2024-01-06 tick runs the week 2023-12-30 (``turnstile_240106.txt``).
The schedule runs in the partitions' timezone (New York), so DST never shifts it.
It fires some hours after midnight because MTA posts the file during the day; the
hour is set with ``MTA_SCHEDULE_HOUR`` / ``MTA_SCHEDULE_MINUTE`` (New York time).
The file-arrival sensor covers a file that appears later than that hour.

The schedule starts STOPPED: turning it on is a deployment decision (it downloads
from MTA's site and writes to the lake every week), taken in the UI or with
``dagster schedule start mta_weekly_schedule``, not something loading the code
should do on its own. Running both the schedule and the sensor is safe: if both
request the same week, the second run rewrites identical lake objects.
"""

from __future__ import annotations

import dagster as dg

from mta_assets import settings
from mta_assets.defs.turnstile.jobs import mta_turnstile_job
from mta_assets.mta.calendar import TIMEZONE

# MTA_SCHEDULE_HOUR / MTA_SCHEDULE_MINUTE, checked (0..23, 0..59) by the settings model.
_SETTINGS = settings.load()
SCHEDULE_HOUR = _SETTINGS.schedule_hour
SCHEDULE_MINUTE = _SETTINGS.schedule_minute

mta_weekly_schedule = dg.build_schedule_from_partitioned_job(
    mta_turnstile_job,
    name="mta_weekly_schedule",
    description=(
        f"Saturdays {SCHEDULE_HOUR:02d}:{SCHEDULE_MINUTE:02d} {TIMEZONE}: the week whose file was "
        "published that day (the partition that ended at midnight)."
    ),
    day_of_week=6,  # cron's Saturday (Sunday is 0): publication day
    hour_of_day=SCHEDULE_HOUR,
    minute_of_hour=SCHEDULE_MINUTE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
