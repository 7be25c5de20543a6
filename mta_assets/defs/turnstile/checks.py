"""Asset checks on ``turnstile_readings``: the specs and results Dagster shows, built from ``mta.validate``.

The rules themselves are pure functions in ``mta_assets.mta.validate``; this module only
declares one partitioned check per rule and turns an ``Outcome`` into a check result.
"""

from __future__ import annotations

import dagster as dg

from mta_assets.defs.turnstile.partitions import weekly_partitions
from mta_assets.defs.weeks import week_check_spec
from mta_assets.mta.validate import CHECKS, Outcome

READINGS = dg.AssetKey("turnstile_readings")
BLOCKING = frozenset(name for name, (_, blocking) in CHECKS.items() if blocking)

readings_check_specs = [
    week_check_spec(name, READINGS, description, blocking, weekly_partitions)
    for name, (description, blocking) in CHECKS.items()
]


def to_check_result(outcome: Outcome) -> dg.AssetCheckResult:
    """The outcome as Dagster shows it: a failed non-blocking check is a warning."""
    severity = (
        dg.AssetCheckSeverity.WARN if not outcome.blocking and not outcome.passed else dg.AssetCheckSeverity.ERROR
    )
    metadata = {
        key: dg.MetadataValue.md(value) if key.endswith("_md") else _metadata_value(value)
        for key, value in outcome.metadata.items()
    }
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=READINGS,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata=metadata,
    )


def _metadata_value(value):
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, (list, tuple, dict)):
        return dg.MetadataValue.json(list(value) if isinstance(value, tuple) else value)
    return value
