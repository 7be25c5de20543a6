"""The code location: every asset, check, job, schedule, sensor and resource in one place."""

import dagster as dg

from mta_assets.assets import turnstile_csv, turnstile_csv_gz, turnstile_readings
from mta_assets.jobs import mta_turnstile_job
from mta_assets.resources import build_resources

defs = dg.Definitions(
    assets=[turnstile_csv, turnstile_csv_gz, turnstile_readings],
    jobs=[mta_turnstile_job],
    resources=build_resources(),
    # Each step runs its weeks on a thread pool; one process per step would re-import
    # dagster for every step (about 4 s here) and buy nothing on 2 cores.
    executor=dg.in_process_executor,
)
