"""Resources of the ridership assets: the DuckDB warehouse. (MTA's station key, which the
turnstile step also reads for the wide years, is a shared resource in ``defs/resources.py``.)"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from mta_assets.settings import ridership_settings
from mta_assets.storage.warehouse import DEFAULT_WAREHOUSE


def build_ridership_resources() -> dict[str, object]:
    """The warehouse, from the environment (README "Environment variables")."""
    settings = ridership_settings()
    warehouse = DuckDBResource(database=dg.EnvVar("MTA_WAREHOUSE") if settings["MTA_WAREHOUSE"] else DEFAULT_WAREHOUSE)
    return {"warehouse": warehouse}
