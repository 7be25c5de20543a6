"""The official hourly week's checks: blocking where they protect the lake, warnings for plausibility and the undercount.

Each is a pure function of ``mta/official.py``; this module names them and turns their
answers into Dagster check results for the week being built.
"""

import datetime as dt

import dagster as dg

from mta_assets.defs.ridership.checks import full_days
from mta_assets.defs.weeks import week_check_spec
from mta_assets.mta import official

HOURLY = dg.AssetKey("official_hourly")
RAW = dg.AssetKey("official_hourly_raw")
BLOCKING = {
    "schema": "Every column of the contract, with its type; no empty timestamp, complex or ridership.",
    "every_hour_present": "Every hour of the week has rows system-wide (rows are sparse per complex).",
    "no_duplicate_rows": "One row per complex, hour, payment method and fare class.",
    "ridership_not_negative": "No negative ridership.",
}
WARN = {
    "plausible": "Row count and total ridership within a share of the median of earlier weeks.",
    "turnstile_over_official": "Turnstile entries (ridership_daily) over MTA's hourly ridership on the week's full days "
    "(Saturday to Thursday), when both exist; warns when they disagree by more than 10% (after 2020 the turnstiles "
    "undercount, about 0.5).",
}
AGREEMENT = (0.9, 1.1)


def hourly_check_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """One check per rule, partitioned like the asset: each week's result is recorded on its week."""
    return [week_check_spec(name, HOURLY, text, True, partitions_def) for name, text in BLOCKING.items()] + [
        week_check_spec(name, HOURLY, text, False, partitions_def) for name, text in WARN.items()
    ]


def _result(name: str, passed: bool, text: str, **metadata) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.ERROR if name in BLOCKING else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        asset_key=HOURLY, check_name=name, passed=passed, severity=severity,
        description=text, metadata={"details": text, **metadata},
    )


def blocking_results(table, week: str) -> list[dg.AssetCheckResult]:
    """The blocking checks; the schema first, since the others need its columns."""
    problems = official.schema_problems(table)
    results = [_result("schema", not problems, f"week {week}: " + ("; ".join(problems) or "as the contract says"))]
    if problems:
        return results + [_result(name, False, f"week {week}: not judged, the schema check failed") for name in list(BLOCKING)[1:]]
    missing = official.missing_hours(table, week)
    outside = official.outside_week(table, week)
    shown = ", ".join(f"{hour:%Y-%m-%d %H:00}" for hour in missing[:10]) + (" ..." if len(missing) > 10 else "")
    results.append(_result(
        "every_hour_present", not missing and not outside,
        f"week {week}: {len(missing)} hours without any row ({shown or 'none'}); {outside} rows outside the week",
        missing_hours=len(missing), rows_outside_week=outside,
    ))
    duplicates = official.duplicate_rows(table)
    results.append(_result("no_duplicate_rows", duplicates == 0, f"week {week}: {duplicates} duplicate rows", duplicates=duplicates))
    negative = official.negative_ridership(table)
    results.append(_result("ridership_not_negative", negative == 0, f"week {week}: {negative} rows with negative ridership", negative_rows=negative))
    return results


def plausible_result(week: str, rows: int, total: float, earlier: list[tuple[float, float]], max_change: float) -> dg.AssetCheckResult:
    passed, text = official.plausibility(rows, total, earlier, max_change)
    return _result("plausible", passed, f"week {week}: {text}")


def reconciliation_result(
    week: str, turnstile_by_day: dict[dt.date, float] | None, official_by_day: dict[dt.date, float]
) -> tuple[dg.AssetCheckResult, float | None]:
    """The week's turnstile entries over MTA's hourly ridership, per full day and as a median.

    Saturday to Thursday, the days ridership_daily's own ``turnstile_over_official`` uses: the
    week's Friday ends in the next week's file, so its turnstile entries are a part of the day.
    """
    if turnstile_by_day is None:
        return _result("turnstile_over_official", True, f"week {week}: no turnstile ridership_daily in the lake; nothing to compare"), None
    first, last = full_days(week)
    days = f"{first:%a %Y-%m-%d} to {last:%a %Y-%m-%d}"
    full = {day: entries for day, entries in turnstile_by_day.items() if first <= day <= last}
    ratios = official.turnstile_over_official(full, official_by_day)
    summary = official.ratio_summary(ratios)
    if not summary:
        return _result("turnstile_over_official", True, f"week {week}: no full day ({days}) with both sources"), None
    median = summary["median"]
    text = (
        f"week {week}: turnstile entries are {median:.2f} of MTA's hourly ridership (median of {len(ratios)} full days, "
        f"{days}, {summary['min']:.2f}-{summary['max']:.2f}; the Friday ends in the next week's file); "
        + ("the sources agree" if AGREEMENT[0] <= median <= AGREEMENT[1] else
           "the turnstile registers undercount paid entries after 2020: read ridership_daily as a lower bound")
    )
    per_day = {f"ratio_{day:%Y-%m-%d}": round(value, 4) for day, value in ratios.items()}
    passed = AGREEMENT[0] <= median <= AGREEMENT[1]
    return _result("turnstile_over_official", passed, text, turnstile_over_official=round(median, 4),
                   days_compared=f"{days}, the week's full days", **per_day), median
