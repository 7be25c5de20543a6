"""The code location: every asset, check, job, schedule, sensor and resource in one place."""

import dagster as dg

from mta_assets.defs.monitoring.sensors import alert_sensors, monitoring_resources
from mta_assets.defs.resources import build_resources
from mta_assets.defs.ridership.assets import ridership_assets
from mta_assets.defs.ridership.resources import build_ridership_resources
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_assets.defs.turnstile.jobs import mta_turnstile_job
from mta_assets.defs.turnstile.schedules import mta_weekly_schedule
from mta_assets.defs.turnstile.sensors import mta_file_arrival_sensor
from mta_assets.defs.warehouse.assets import warehouse_assets
from mta_assets.defs.warehouse.resources import build_warehouse_resources

defs = dg.Definitions(
    assets=[turnstile_weeks, *ridership_assets, *warehouse_assets],
    jobs=[mta_turnstile_job],
    schedules=[mta_weekly_schedule],
    sensors=[mta_file_arrival_sensor, *alert_sensors],
    resources={
        **build_resources(),
        **build_ridership_resources(),
        **build_warehouse_resources(),
        **monitoring_resources,
    },
    # Each step runs its weeks on a thread pool; one process per step would re-import
    # dagster for every step (about 4 s here) and buy nothing on 2 cores.
    executor=dg.in_process_executor,
)
