"""The warehouse's resources: the DuckDB file (path and lock deadline) and the dbt CLI."""

import os
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from pydantic import Field

from mta_assets.defs.warehouse.project import dbt_executable, prepared_project
from mta_assets.settings import float_from_env
from mta_assets.storage.duckdb_file import DEFAULT_LOCK_DEADLINE_S, DEFAULT_WAREHOUSE, warehouse_path


class DuckDBWarehouse(dg.ConfigurableResource):
    """The embedded warehouse file that dbt builds (one writer at a time, pool mta_warehouse)."""

    database: str = Field(default=DEFAULT_WAREHOUSE, description="The DuckDB file (env MTA_WAREHOUSE).")
    lock_deadline_s: float = Field(
        default=DEFAULT_LOCK_DEADLINE_S,
        description="Longest total wait for another process to release the file, every retry included "
        "(env MTA_WAREHOUSE_LOCK_DEADLINE_S).",
    )

    @property
    def path(self) -> Path:
        return warehouse_path(self.database)


def build_warehouse_resources() -> dict[str, object]:
    """The warehouse and dbt, from the environment; a wrong deadline stops the load naming the variable."""
    deadline = float_from_env("MTA_WAREHOUSE_LOCK_DEADLINE_S", DEFAULT_LOCK_DEADLINE_S, 0.1)
    database = dg.EnvVar("MTA_WAREHOUSE") if os.environ.get("MTA_WAREHOUSE", "").strip() else DEFAULT_WAREHOUSE
    return {
        "duckdb_warehouse": DuckDBWarehouse(database=database, lock_deadline_s=deadline),
        "dbt": DbtCliResource(project_dir=prepared_project(), dbt_executable=dbt_executable()),
    }
