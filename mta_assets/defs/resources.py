"""Resources, configured from the environment (see README "Environment variables").

A setting given in the environment is passed as ``dg.EnvVar`` so the UI shows the
variable's name, never its value; an unset one falls back to the embedded default,
which runs everything on this machine (a local lake folder, MTA's own site).
"""

from __future__ import annotations

import os

import dagster as dg

from mta_assets.defs.io_manager import LakeIOManager
from mta_assets.defs.ridership.resources import build_ridership_resources
from mta_assets.storage.http import DEFAULT_SOURCE_URL, MTASource
from mta_assets.storage.lake import DEFAULT_LAKE_URL, MIB, Lake


def _env(name: str, default):
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: int):
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def build_resources() -> dict[str, object]:
    lake = Lake(
        url=_env("MTA_LAKE_URL", DEFAULT_LAKE_URL),
        gcp_project=_env("MTA_GCP_PROJECT", None),
        gcp_credentials=_env("MTA_GCP_CREDENTIALS", None),
        chunk_size_bytes=_env_int("MTA_UPLOAD_CHUNK_BYTES", 8 * MIB),
    )
    return {
        "mta_source": MTASource(base_url=_env("MTA_SOURCE_URL", DEFAULT_SOURCE_URL)),
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        **build_ridership_resources(),  # station_key, warehouse
    }
