"""The table of every setting, generated from the model, as ``docs/settings.md`` holds it."""

from __future__ import annotations

from mta_assets.settings.errors import allowed, is_secret
from mta_assets.settings.model import MtaSettings, env_name

HEADER = """# Settings

<!-- Generated from mta_assets/settings/model.py by
     `./mta python -m mta_assets.settings --markdown > docs/settings.md`;
     mta_assets_tests/test_settings.py fails when this file and the code differ. -->

Every setting is an `MTA_*` environment variable; an empty value is the same as unset.
They are all checked when the code location loads: a wrong value stops the load with one
line naming the variable and what it may be (`./mta python -m mta_assets.settings --check`
runs the same check alone). Credentials are settings of their own and never part of a URL:
a URL with `user:password@` is refused, naming the variables to use instead. Secrets are
bound to resources as `dg.EnvVar`, so the Dagster UI shows their names, never their values.
How they are checked and where each is used: [operations](operations.md#settings).

| Variable | Allowed | Default | Description |
|---|---|---|---|
"""


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def markdown() -> str:
    """docs/settings.md: the header and one row per variable, in the model's order."""
    rows = []
    for field, info in MtaSettings.model_fields.items():
        description = (info.description or "").replace("|", "\\|")
        default = "unset (secret)" if is_secret(info) else _default(info.default)
        rows.append(f"| `{env_name(field)}` | {allowed(info).replace('|', '/')} | {default} | {description} |")
    return HEADER + "\n".join(rows) + "\n"
