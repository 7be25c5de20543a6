"""The pipeline job: every weekly asset, from MTA's file to the warehouse, for one week or a range."""

import dagster as dg

from mta_assets.defs.turnstile.assets import GROUP

# Downstream of the turnstile assets: ridership and the warehouse, so that a scheduled or
# sensed week ends with its rows in the warehouse in the same run. The station-complex
# crosswalk (group mta_official, downstream of stations, read whole by the warehouse) is MTA's own table: it is
# built with the official ridership (./mta materialize, the official sensor), not every week.
mta_turnstile_job = dg.define_asset_job(
    "mta_turnstile_job",
    selection=dg.AssetSelection.groups(GROUP).downstream() - dg.AssetSelection.groups("mta_official"),
    description="Download, compress and validate each selected week's MTA turnstile file, then its stations, "
    "ridership and warehouse load.",
)
