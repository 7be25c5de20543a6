"""The official hourly ridership's weeks: the turnstile assets' Saturday weeks, from the first whole week of
MTA's hourly data to the current week (not ended by ``MTA_LAST_WEEK``: this source still grows)."""

import dagster as dg

from mta_assets.mta import official
from mta_assets.mta.calendar import KEY_FORMAT, TIMEZONE

official_partitions = dg.WeeklyPartitionsDefinition(
    start_date=official.FIRST_WEEK,
    day_offset=6,  # Saturday, as the turnstile weeks
    timezone=TIMEZONE,
    fmt=KEY_FORMAT,
)
