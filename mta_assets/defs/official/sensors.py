"""Requests each week of MTA's hourly ridership once data.ny.gov has published all of its hours, and MTA's daily totals with it."""

import datetime as dt

import dagster as dg

from mta_assets.defs.official.checks import HOURLY, RAW
from mta_assets.defs.official.daily import DAILY
from mta_assets.defs.official.partitions import official_partitions
from mta_assets.defs.official.resources import OpenDataSource
from mta_assets.mta import official
from mta_assets.mta.calendar import shift_week
from mta_assets.storage.soda import SodaUnavailable


@dg.sensor(
    asset_selection=[RAW, HOURLY, DAILY],
    minimum_interval_seconds=6 * 3600,  # data.ny.gov publishes about weekly; four looks a day are plenty
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def official_publication_sensor(context: dg.SensorEvaluationContext, open_data: OpenDataSource):
    """Requests every newly published week (the cursor is the last week requested; on its first
    tick only the newest one: older weeks are a backfill's job), never a week not published yet;
    and MTA's daily totals once per new week, which nothing else refreshes (the warehouse's
    system series and MTA's estimate beside our figures read them whole)."""
    newest = official_partitions.get_last_partition_key()
    if newest is None:
        return dg.SkipReason("no week of MTA's hourly ridership has ended yet")
    client = open_data.client()
    newest_dataset = official.dataset_for(dt.date.fromisoformat(newest) + dt.timedelta(days=6))
    datasets = [d for _, d in official.HOURLY_DATASETS]
    through, dataset = None, newest_dataset
    try:
        # The newest dataset first; a new one may still be empty while the previous one ends.
        for dataset in reversed(datasets[: datasets.index(newest_dataset) + 1]):
            through = client.published_through("the publication sensor", dataset)
            if through is not None:
                break
    except SodaUnavailable as exc:
        return dg.SkipReason(f"data.ny.gov did not answer, trying again at the next tick: {exc}")
    published = official.latest_complete_week(through) if through else None
    last = min(published, newest) if published else None
    if last is None or (context.cursor and last <= context.cursor):
        return dg.SkipReason(
            f"no new week published: {client.resource_url(dataset, 'csv')} has rows through {through or 'nothing'}, "
            f"last week requested {context.cursor or 'none'}"
        )
    first = shift_week(context.cursor, 1) if context.cursor else last
    weeks = official_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    context.update_cursor(last)
    hourly = [
        dg.RunRequest(run_key=f"official_hourly:{week}", partition_key=week, asset_selection=[RAW, HOURLY])
        for week in weeks
    ]
    return [*hourly, dg.RunRequest(run_key=f"official_daily:{last}", asset_selection=[DAILY])]
