"""The pipeline job: the three weekly assets for one week or a range of weeks."""

import dagster as dg

from mta_assets.defs.turnstile.assets import GROUP

mta_turnstile_job = dg.define_asset_job(
    "mta_turnstile_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Download, compress and validate the MTA turnstile file of each selected week.",
)
