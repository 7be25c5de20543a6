"""MTA's daily subway ridership estimate (``vxuj-8kew``, then ``sayj-mze2``) as one Parquet table, replaced whole."""

import tempfile
from pathlib import Path

import dagster as dg

from mta_assets.defs.io_manager import lake_metadata
from mta_assets.defs.official.resources import OpenDataSource
from mta_assets.defs.resources import Lake, with_links
from mta_assets.mta import official
from mta_assets.storage.soda import SodaError

DAILY = dg.AssetKey("official_daily")
KEY_PARTS = ("official", "daily", "daily_ridership.parquet")


@dg.asset(
    key=DAILY,
    group_name="mta_official",
    kinds={"parquet"},
    # Stored whole by the asset itself; loaded by downstream assets through the lake IO manager.
    metadata=lake_metadata("official/daily/daily_ridership", ".parquet"),
    io_manager_key="lake_io_manager",
    owners=["team:data-engineering"],
    # Unpartitioned, and built in the same run as a range of weeks (`./mta materialize A...B`):
    # the CLI runs a range in one run only when every selected asset says so.
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("one_row_per_day", asset=DAILY, blocking=True,
                                   description="Every date once, no day missing between the first and the last, ridership >= 0.")],
)
def official_daily(context: dg.AssetExecutionContext, lake: Lake, open_data: OpenDataSource):
    """MTA's daily subway ridership estimate, every published day."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pieces = dict(open_data.client().daily_totals())
    except SodaError as exc:
        raise dg.Failure(description=str(exc), allow_retries=not exc.permanent) from None
    table = official.parse_daily(pieces[official.DAILY_DATASET], pieces[official.DAILY_SUCCESSOR])
    days = table["date"].to_pylist()
    span = (days[-1] - days[0]).days + 1 if days else 0
    negative = int(pc.sum(pc.less(table["subways_total_estimated_ridership"], 0)).as_py() or 0)
    passed = bool(days) and span == len(days) and negative == 0
    text = f"{len(days)} days from {days[0] if days else '-'} to {days[-1] if days else '-'} ({span - len(days)} missing), {negative} negative"
    if not passed:
        yield dg.AssetCheckResult(check_name="one_row_per_day", passed=False, description=text)
        raise dg.Failure(description=f"MTA's daily totals not stored: {text}", allow_retries=False)
    with tempfile.TemporaryDirectory(prefix="official-daily-") as folder:
        path = Path(folder) / KEY_PARTS[-1]
        pq.write_table(table, path, compression="zstd")
        stored = lake.put_file(path, lake.key(*KEY_PARTS), "application/vnd.apache.parquet")
    yield dg.MaterializeResult(metadata=with_links({
        **stored.metadata(), "rows": len(days), "first_date": str(days[0]), "last_date": str(days[-1]),
        "from_successor": int(pc.sum(pc.equal(table["source_dataset"], official.DAILY_SUCCESSOR)).as_py() or 0),
    }))
    yield dg.AssetCheckResult(check_name="one_row_per_day", passed=True, description=text)


def stored_daily_totals(lake: Lake) -> dict:
    """MTA's daily subway estimate by date from the lake's table, or {} when it is not there."""
    import pyarrow.parquet as pq

    key = lake.key(*KEY_PARTS)
    if lake.stat(key) is None:
        return {}
    with tempfile.TemporaryDirectory(prefix="official-daily-") as folder:
        table = pq.read_table(lake.fetch(key, Path(folder)), columns=["date", "subways_total_estimated_ridership"])
    return dict(zip(table["date"].to_pylist(), table["subways_total_estimated_ridership"].to_pylist()))
