"""The one place settings are read and checked: ``MtaSettings``, every ``MTA_*`` variable (``model.py``).

Every setting is checked when the code location loads (``validate_environment``, called
by ``mta_assets.defs.resources``): a wrong value stops the load with one line per bad
variable naming it and its allowed values (``errors.py``), instead of failing minutes
later inside a download. Credentials are settings of their own, never inside a URL
(``checks.py``). Checks that need the disk or the network (the lake folder is writable,
the bucket exists) run once before the first download (``Lake.check``). The table in
``docs/settings.md`` is generated from the model (``python -m mta_assets.settings --markdown``).
No Dagster import.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import ValidationError

from mta_assets.settings.checks import (
    GCS_CHUNK_MULTIPLE,
    SettingError,
    check_chunk_size,
    check_http_url,
    check_source_url,
    check_webhook_url,
    check_writable_folder,
    split_lake_url,
    without_userinfo,
)
from mta_assets.settings.env import bool_from_env, env_text, float_from_env, int_from_env
from mta_assets.settings.errors import problems
from mta_assets.settings.model import (
    DEFAULT_LAKE_URL,
    DEFAULT_SOURCE_URL,
    DEFAULT_UI_URL,
    VARIABLES,
    MtaSettings,
    env_name,
)
from mta_assets.settings.redact import REDACTED, redact, secret_fragments

__all__ = [
    "DEFAULTS", "DEFAULT_LAKE_URL", "DEFAULT_SOURCE_URL", "DEFAULT_UI_URL", "GCS_CHUNK_MULTIPLE", "LAST_WEEK_ENV_VAR",
    "REDACTED", "VARIABLES", "MtaSettings", "SettingError", "bool_from_env", "check_chunk_size",
    "check_http_url", "check_source_url", "check_webhook_url", "check_writable_folder", "env_name", "env_text",
    "float_from_env", "int_from_env", "last_week_from_env", "load", "redact", "secret_fragments",
    "split_lake_url", "staging_root", "validate_environment", "weeks_per_run", "without_userinfo",
]

LAST_WEEK_ENV_VAR = "MTA_LAST_WEEK"
# Each variable's default, by name (``DEFAULTS["MTA_SOURCE_DEADLINE_S"]``).
DEFAULTS: dict[str, object] = {env_name(field): info.default for field, info in MtaSettings.model_fields.items()}


def load() -> MtaSettings:
    """The settings of this process's environment, checked; ``SettingError`` names every bad variable."""
    try:
        return MtaSettings()
    except ValidationError as exc:
        # from None: the ValidationError would repeat every input, a secret's among them.
        raise SettingError(problems(exc, MtaSettings.model_fields, env_name)) from None


def validate_environment() -> MtaSettings:
    """Check every setting of the environment without I/O (``load``, under the name callers know)."""
    return load()


def weeks_per_run() -> int:
    """How many weeks one backfill run takes (``MTA_WEEKS_PER_RUN``); 0, the default, means a whole range in one run."""
    return load().weeks_per_run


def last_week_from_env() -> str | None:
    """The source's last week (``MTA_LAST_WEEK``, a Saturday key ``YYYY-MM-DD``), or None when unset.

    Weekly partitions end with this week, so no later week is listed, requested, late or
    missing. MTA's archive has no announced last file: declaring it is the operator's call.
    """
    return load().last_week


def staging_root() -> Path:
    """Where steps stage files (``MTA_STAGING_DIR``, else the system temp dir), checked writable."""
    folder = load().staging_dir
    return check_writable_folder(folder.expanduser() if folder else Path(tempfile.gettempdir()), "MTA_STAGING_DIR")
