"""The pipeline job: every weekly asset, from MTA's file to the warehouse, for one week or a range."""

import dagster as dg

from mta_assets.defs.turnstile.assets import GROUP

# Downstream of the turnstile assets: ridership and the warehouse, so that a scheduled or
# sensed week ends with its rows in the warehouse in the same run.
mta_turnstile_job = dg.define_asset_job(
    "mta_turnstile_job",
    selection=dg.AssetSelection.groups(GROUP).downstream(),
    description="Download, compress and validate each selected week's MTA turnstile file, then its stations, "
    "ridership and warehouse load.",
)
