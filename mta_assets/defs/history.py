"""What earlier weeks recorded: a metadata value of each week's latest materialization."""

import datetime as dt

import dagster as dg

from mta_assets.mta.calendar import FIRST_WEEK


def weeks_before(week: str, count: int) -> list[str]:
    """Up to ``count`` partition keys before ``week``, oldest first (arithmetic: listing every
    week since 2010 through the partitions definition costs 0.1 s)."""
    start = dt.date.fromisoformat(week)
    keys = [(start - dt.timedelta(days=7 * n)).isoformat() for n in range(count, 0, -1)]
    return [key for key in keys if key >= FIRST_WEEK]


def latest_values(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, weeks: list[str], metadata_key: str
) -> dict[str, float]:
    """``metadata_key`` of the latest materialization of each of ``weeks`` that has one, by week."""
    if not weeks:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=weeks), limit=len(weeks) * 4
    ).records
    values: dict[str, float] = {}
    for record in records:  # newest first: keep each week's latest materialization
        materialization = record.asset_materialization
        if materialization is None or record.partition_key in values:
            continue
        value = materialization.metadata.get(metadata_key)
        if value is not None:
            values[record.partition_key] = float(value.value)
    return values


def log_week_check(
    context: dg.AssetExecutionContext, result: dg.AssetCheckResult, week: str, blocking: bool
) -> None:
    """Record one check result against its week's partition.

    A step that covers a range of weeks cannot yield a check result per partition
    (partitioned checks are a Dagster preview); an evaluation event can.
    """
    context.log_event(
        dg.AssetCheckEvaluation(
            asset_key=result.asset_key,
            check_name=result.check_name,
            passed=result.passed,
            metadata=result.metadata,
            severity=result.severity,
            partition=week,
            blocking=blocking,
        )
    )
