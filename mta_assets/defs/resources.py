"""The shared resources (the lake, the MTA source, the lake IO manager), configured from the environment.

The ridership assets' own resources are in ``ridership/resources.py`` (README "Environment
variables" lists every setting).

Every setting is checked here, when the code location loads (``validate_environment``):
a wrong value stops the load with one line naming the variable and its allowed values.
A string or integer setting given in the environment is passed as ``dg.EnvVar`` so the
UI shows the variable's name, never its value; numbers with a fraction (deadlines) are
read through ``mta_assets.settings``. Unset settings fall back to the defaults, which run
everything on this machine (a local lake folder, MTA's own site).
"""

from __future__ import annotations

import dagster as dg

from mta_assets.defs.io_manager import LakeIOManager
from mta_assets.settings import deadline, env_text, validate_environment
from mta_assets.storage.http import DEFAULT_SOURCE_URL, MTASource
from mta_assets.storage.lake import DEFAULT_LAKE_URL, MIB, Lake


def _env(name: str, default):
    return dg.EnvVar(name) if env_text(name) else default


def _env_int(name: str, default: int):
    return dg.EnvVar.int(name) if env_text(name) else default


def build_resources() -> dict[str, object]:
    validate_environment()
    lake = Lake(
        url=_env("MTA_LAKE_URL", DEFAULT_LAKE_URL),
        gcp_project=_env("MTA_GCP_PROJECT", None),
        gcp_credentials=_env("MTA_GCP_CREDENTIALS", None),
        chunk_size_bytes=_env_int("MTA_UPLOAD_CHUNK_BYTES", 8 * MIB),
        retry_deadline_s=deadline("MTA_LAKE_DEADLINE_S"),
        request_timeout_s=deadline("MTA_LAKE_TIMEOUT_S"),
        min_bytes_per_s=deadline("MTA_MIN_BYTES_PER_S"),
    )
    source = MTASource(
        base_url=_env("MTA_SOURCE_URL", DEFAULT_SOURCE_URL),
        connect_timeout_s=deadline("MTA_SOURCE_CONNECT_TIMEOUT_S"),
        read_timeout_s=deadline("MTA_SOURCE_STALL_TIMEOUT_S"),
        deadline_s=deadline("MTA_SOURCE_DEADLINE_S"),
        probe_deadline_s=deadline("MTA_PROBE_DEADLINE_S"),
        min_bytes_per_s=deadline("MTA_MIN_BYTES_PER_S"),
        max_file_bytes=_env_int("MTA_MAX_FILE_BYTES", int(deadline("MTA_MAX_FILE_BYTES"))),
    )
    return {
        "mta_source": source,
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
    }
