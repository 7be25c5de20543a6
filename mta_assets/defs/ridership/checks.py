"""Asset checks on ``ridership_daily``, evaluated per week inside the asset before the week is stored.

The functions are pure over a week's ``daily`` table (see ``mta_assets.mta.ridership``);
a week that fails a blocking check is not written and keeps its last good file.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from mta_assets.defs.turnstile.partitions import weekly_partitions
from mta_assets.defs.weeks import week_check_spec
from mta_assets.mta.validate import every_unit_has_station

if TYPE_CHECKING:
    import pyarrow as pa

RIDERSHIP = dg.AssetKey("ridership_daily")
PLAUSIBLE = "system_entries_plausible"
USABLE = "intervals_mostly_usable"
NAMED = "every_unit_has_station"
BLOCKING = {PLAUSIBLE, NAMED}
_DESCRIPTIONS = {
    PLAUSIBLE: "Mean system-wide entries per full day of the week is within the configured share of the "
    "median of up to 8 earlier weeks.",
    USABLE: "The share of intervals capped or dropped is under the configured threshold.",
    NAMED: "Every (unit, C/A) of the week has a station name, wide years included.",
}

ridership_check_specs = [
    week_check_spec(name, RIDERSHIP, description, name in BLOCKING, weekly_partitions)
    for name, description in _DESCRIPTIONS.items()
]


def _result(name: str, passed: bool, metadata: dict, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, asset_key=RIDERSHIP, passed=passed, metadata=metadata, severity=severity)


def full_days(week: str) -> tuple[dt.date, dt.date]:
    """[first, last] day of the week whose intervals all end inside it: Saturday to Thursday.

    The week's Friday ends in the next week's file (midpoint rule), so it is partial here.
    """
    start = dt.date.fromisoformat(week)
    return start, start + dt.timedelta(days=5)


def mean_daily_entries(by_day: dict[dt.date, tuple[int, int]], week: str) -> float:
    first, last = full_days(week)
    values = [entries for day, (entries, _) in by_day.items() if first <= day <= last]
    return float(statistics.fmean(values)) if values else 0.0


def check_plausible(mean_entries: float, earlier: Sequence[float], max_change: float) -> dg.AssetCheckResult:
    metadata: dict = {"mean_daily_entries": round(mean_entries, 1), "earlier_weeks": len(earlier), "max_change": max_change}
    if mean_entries <= 0:
        return _result(PLAUSIBLE, False, {**metadata, "reason": "no entries on any full day of the week"})
    if not earlier:
        return _result(PLAUSIBLE, True, {**metadata, "reason": "no earlier week to compare with"})
    median = statistics.median(earlier)
    change = abs(mean_entries - median) / median if median else 0.0
    metadata.update({"median_of_earlier_weeks": round(float(median), 1), "change": round(change, 4)})
    return _result(PLAUSIBLE, change <= max_change, metadata)


def check_usable(daily_rows: pa.Table, max_share: float) -> dg.AssetCheckResult:
    import pyarrow.compute as pc

    def total(column: str) -> int:
        return int(pc.sum(daily_rows[column]).as_py() or 0)

    used, capped, dropped = total("intervals_used"), total("intervals_capped"), total("intervals_dropped")
    intervals = used + capped + dropped
    share = (capped + dropped) / intervals if intervals else 1.0
    return _result(
        USABLE,
        intervals > 0 and share <= max_share,
        {
            "intervals": intervals,
            "capped": capped,
            "dropped": dropped,
            "capped_or_dropped_share": round(share, 5),
            "max_share": max_share,
        },
        dg.AssetCheckSeverity.WARN,
    )


def check_named(stations: pa.Table, key_note: str) -> dg.AssetCheckResult:
    outcome = every_unit_has_station(stations, key_note)
    metadata = {**outcome.metadata, "examples": dg.MetadataValue.json(outcome.metadata["examples"])}
    return dg.AssetCheckResult(
        check_name=NAMED, asset_key=RIDERSHIP, passed=outcome.passed, metadata=metadata, description=outcome.description
    )


def blocking_failures(results: Sequence[dg.AssetCheckResult]) -> list[str]:
    """The failed blocking checks, each with its message when it has one, for the week's failure line."""
    return [
        f"{r.check_name}: {r.description}" if r.description else r.check_name
        for r in results
        if r.check_name in BLOCKING and not r.passed
    ]
