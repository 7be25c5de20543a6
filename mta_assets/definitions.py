"""The code location: every asset, check, job, schedule, sensor and resource in one place."""

import warnings

import dagster as dg

# Chosen knowingly, so that no command that loads the code location repeats these warnings:
# single-run backfills (beta) make a range one run; partitioned asset checks (preview) record
# each week's results on its week; the previous-week partition mapping (beta) lets the
# first week do without a week before it.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", message=".*allow_nonexistent_upstream_partitions.*", category=dg.BetaWarning)

from mta_assets.defs.monitoring.sensors import alert_sensors, monitoring_resources  # noqa: E402
from mta_assets.defs.official.assets import official_assets  # noqa: E402
from mta_assets.defs.official.resources import build_official_resources  # noqa: E402
from mta_assets.defs.official.sensors import official_publication_sensor  # noqa: E402
from mta_assets.defs.resources import build_resources  # noqa: E402
from mta_assets.defs.ridership.assets import ridership_assets  # noqa: E402
from mta_assets.defs.turnstile.assets import turnstile_weeks  # noqa: E402
from mta_assets.defs.turnstile.jobs import mta_turnstile_job  # noqa: E402
from mta_assets.defs.turnstile.schedules import mta_weekly_schedule  # noqa: E402
from mta_assets.defs.turnstile.sensors import mta_file_arrival_sensor  # noqa: E402
from mta_assets.defs.warehouse.assets import warehouse_assets  # noqa: E402
from mta_assets.defs.warehouse.resources import build_warehouse_resources  # noqa: E402

# Brings downstream weeks up to date (defs/automation.py); running by default, like the
# sensors it stands beside, since it only ever acts on weeks whose upstream changed.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "mta_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)

defs = dg.Definitions(
    assets=[turnstile_weeks, *ridership_assets, *official_assets, *warehouse_assets],
    jobs=[mta_turnstile_job],
    schedules=[mta_weekly_schedule],
    sensors=[mta_file_arrival_sensor, official_publication_sensor, automation_sensor, *alert_sensors],
    resources={**build_resources(), **build_official_resources(), **build_warehouse_resources(), **monitoring_resources},
    # Each step works through its weeks itself; one process per step would re-import
    # dagster for every step (about 4 s here) and buy nothing on 2 cores.
    executor=dg.in_process_executor,
)
