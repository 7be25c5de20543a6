"""What earlier weeks recorded: a metadata value of each week's latest materialization."""

import dagster as dg


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
