"""Asset checks on ``turnstile_readings``, evaluated per week on the parsed table.

They run inside the asset, on the table it just built, so a week that fails a
blocking check is reported in the UI and never replaces the last good table in
the lake. The functions here are pure: tests call them on hand-made tables.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from mta_assets.defs.turnstile.partitions import weekly_partitions as _weekly_partitions
from mta_assets.defs.turnstile.tables import markdown_table
from mta_assets.mta.calendar import LEGACY_NAMING_ENDS, week_window

if TYPE_CHECKING:
    import pyarrow as pa

    from mta_assets.mta.parse import ParsedWeek

READINGS = dg.AssetKey("turnstile_readings")
DUPLICATE_KEY = ("ca", "unit", "scp", "reading_time", "desc")

SCHEMA = "schema_matches_contract"
NON_NEGATIVE = "counters_non_negative"
INSIDE_WEEK = "readings_inside_week"
NO_DUPLICATES = "no_duplicate_readings"
REJECT_RATE = "reject_rate_under_threshold"
VOLUME = "row_count_plausible"

_DESCRIPTIONS = {
    SCHEMA: "The table's columns and types are exactly the Reading contract's.",
    NON_NEGATIVE: "ENTRIES and EXITS counters are never negative.",
    INSIDE_WEEK: "Every reading falls in the partition's week, Saturday 00:00 to the next Saturday 00:00 (New York).",
    NO_DUPLICATES: "No two readings share (ca, unit, scp, reading_time, desc).",
    REJECT_RATE: "The share of unparseable readings is under the configured threshold.",
    VOLUME: "The week has readings, and its count is within the configured share of the median of up to 8 earlier weeks.",
}
BLOCKING = {SCHEMA, NON_NEGATIVE, INSIDE_WEEK, NO_DUPLICATES, REJECT_RATE}

# Per-week check results need partitioned checks, a Dagster preview: chosen knowingly,
# so that one warning is not repeated by every command that loads the code location.
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)

readings_check_specs = [
    dg.AssetCheckSpec(
        name,
        asset=READINGS,
        description=_DESCRIPTIONS[name],
        blocking=name in BLOCKING,
        partitions_def=_weekly_partitions,
    )
    for name in _DESCRIPTIONS
]


def _result(name: str, passed: bool, metadata: dict, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, asset_key=READINGS, passed=passed, metadata=metadata, severity=severity
    )


def check_schema(table: pa.Table) -> dg.AssetCheckResult:
    from mta_assets.mta.parse import arrow_schema

    expected = arrow_schema()
    actual = {field.name: str(field.type) for field in table.schema}
    wanted = {field.name: str(field.type) for field in expected}
    missing = sorted(set(wanted) - set(actual))
    extra = sorted(set(actual) - set(wanted))
    wrong = {name: f"{actual[name]} (expected {wanted[name]})" for name in wanted if name in actual and actual[name] != wanted[name]}
    order_ok = list(actual) == list(wanted)
    return _result(
        SCHEMA,
        not (missing or extra or wrong) and order_ok,
        {
            "missing_columns": dg.MetadataValue.json(missing),
            "unexpected_columns": dg.MetadataValue.json(extra),
            "wrong_types": dg.MetadataValue.json(wrong),
            "column_order_matches": order_ok,
        },
    )


def check_non_negative(table: pa.Table) -> dg.AssetCheckResult:
    import pyarrow.compute as pc

    negative = {}
    for column in ("entries", "exits"):
        mask = pc.less(table[column], 0)
        negative[column] = int(pc.sum(mask).as_py() or 0)
    bad = table.filter(pc.or_(pc.less(table["entries"], 0), pc.less(table["exits"], 0)))
    return _result(
        NON_NEGATIVE,
        not any(negative.values()),
        {
            "negative_entries": negative["entries"],
            "negative_exits": negative["exits"],
            "examples": dg.MetadataValue.md(markdown_table(bad.slice(0, 5))),
        },
    )


def check_inside_week(table: pa.Table, week: str) -> dg.AssetCheckResult:
    import pyarrow as pa
    import pyarrow.compute as pc

    start, end = week_window(week)
    times = table["reading_time"]
    outside_mask = pc.or_(pc.less(times, pa.scalar(start, times.type)), pc.greater_equal(times, pa.scalar(end, times.type)))
    outside = table.filter(outside_mask)
    first = pc.min(times).as_py() if len(table) else None
    last = pc.max(times).as_py() if len(table) else None
    # MTA's first 2010 files were cut on Wednesdays and straddle two Saturday weeks.
    severity = dg.AssetCheckSeverity.WARN if week <= LEGACY_NAMING_ENDS else dg.AssetCheckSeverity.ERROR
    return _result(
        INSIDE_WEEK,
        len(outside) == 0,
        {
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "readings_outside": len(outside),
            "first_reading": first.isoformat() if first else "",
            "last_reading": last.isoformat() if last else "",
            "examples": dg.MetadataValue.md(markdown_table(outside.slice(0, 5))),
        },
        severity,
    )


def check_no_duplicates(table: pa.Table) -> dg.AssetCheckResult:
    import pyarrow.compute as pc

    counts = table.group_by(list(DUPLICATE_KEY)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    extra_rows = int(pc.sum(repeated["count_all"]).as_py() or 0) - len(repeated)
    return _result(
        NO_DUPLICATES,
        len(repeated) == 0,
        {
            "duplicated_keys": len(repeated),
            "extra_rows": max(extra_rows, 0),
            "examples": dg.MetadataValue.md(markdown_table(repeated.slice(0, 5))),
        },
    )


def check_reject_rate(parsed: ParsedWeek, max_reject_share: float) -> dg.AssetCheckResult:
    return _result(
        REJECT_RATE,
        parsed.reject_share <= max_reject_share,
        {
            "rejected": parsed.rejected,
            "readings_seen": parsed.readings_seen,
            "reject_share": round(parsed.reject_share, 6),
            "max_reject_share": max_reject_share,
            "rejected_samples": dg.MetadataValue.json(parsed.rejected_samples),
        },
    )


def check_volume(row_count: int, earlier_counts: Sequence[int], tolerance: float) -> dg.AssetCheckResult:
    if row_count == 0:
        return _result(VOLUME, False, {"row_count": 0, "reason": "the week has no readings"})
    metadata: dict = {"row_count": row_count, "earlier_weeks": len(earlier_counts), "tolerance": tolerance}
    if not earlier_counts:
        metadata["reason"] = "no earlier week to compare with"
        return _result(VOLUME, True, metadata)
    median = statistics.median(earlier_counts)
    deviation = abs(row_count - median) / median if median else 0.0
    metadata.update({"median_of_earlier_weeks": float(median), "deviation": round(deviation, 4)})
    return _result(VOLUME, deviation <= tolerance, metadata, dg.AssetCheckSeverity.WARN)


def table_checks(parsed: ParsedWeek, week: str, max_reject_share: float) -> list[dg.AssetCheckResult]:
    """Every check that needs the week's table; ``check_volume`` needs only its row count."""
    table = parsed.table
    return [
        check_schema(table),
        check_non_negative(table),
        check_inside_week(table, week),
        check_no_duplicates(table),
        check_reject_rate(parsed, max_reject_share),
    ]


def blocking_failures(results: Sequence[dg.AssetCheckResult]) -> list[str]:
    return [
        r.check_name
        for r in results
        if r.check_name in BLOCKING and not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    ]


def to_check_result(outcome) -> dg.AssetCheckResult:
    """TEMPORARY bridge: a pure validation outcome as Dagster's check result."""
    severity = dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=READINGS,
        passed=outcome.passed,
        severity=severity,
        metadata={k: (dg.MetadataValue.md(v) if k.endswith("_md") else v) for k, v in outcome.metadata.items()},
    )
