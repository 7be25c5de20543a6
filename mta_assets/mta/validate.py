"""TEMPORARY bridge to the old dagster check functions; replaced by the domain branch's pure module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ValidationSettings:
    max_reject_share: float = 0.001
    volume_tolerance: float = 0.25
    max_row_drop: float = 0.5


@dataclass(frozen=True)
class WeekEvidence:
    week: str
    source_file: str
    length_stated: bool
    earlier_row_counts: Sequence[int] = ()


@dataclass(frozen=True)
class Outcome:
    name: str
    passed: bool
    blocking: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def validate_week(parsed, evidence: WeekEvidence, settings: ValidationSettings = ValidationSettings()) -> list[Outcome]:
    import dagster as dg

    from mta_assets.defs.turnstile.checks import BLOCKING, _DESCRIPTIONS, check_volume, table_checks

    results = [*table_checks(parsed, evidence.week, settings.max_reject_share)]
    results.append(check_volume(parsed.table.num_rows, list(evidence.earlier_row_counts), settings.volume_tolerance))
    outcomes = []
    for r in results:
        blocking = r.check_name in BLOCKING and r.severity == dg.AssetCheckSeverity.ERROR
        meta = {k: (v.value if hasattr(v, "value") else v) for k, v in r.metadata.items()}
        outcomes.append(Outcome(r.check_name, r.passed, blocking, _DESCRIPTIONS[r.check_name], meta))
    return outcomes


def blocking_failures(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.blocking and not o.passed]
