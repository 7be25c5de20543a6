"""Turnstile booths -> MTA station complexes (``station_complexes``), covering every (unit, C/A) the lake's weeks hold."""

import tempfile
from pathlib import Path

import dagster as dg

from mta_assets.defs.io_manager import lake_metadata
from mta_assets.defs.official.resources import OpenDataSource
from mta_assets.defs.resources import Lake, with_links
from mta_assets.mta import complexes
from mta_assets.mta.calendar import week_for_file_name
from mta_assets.storage.soda import SodaError

STATION_COMPLEXES = dg.AssetKey("station_complexes")
KEY_PARTS = ("official", "stations", "station_complexes.parquet")


def lake_pairs(lake: Lake, folder: Path) -> dict[str, set[tuple[str, str]]]:
    """Every week's (unit, C/A) pairs from the turnstile ``stations`` tables in the lake."""
    import pyarrow.parquet as pq

    found: dict[str, set[tuple[str, str]]] = {}
    for key in lake.list_keys("turnstile/stations/"):
        name = key.rsplit("/", 1)[-1]
        if not name.endswith(".parquet"):
            continue
        table = pq.read_table(lake.fetch(key, folder), columns=["unit", "ca"])
        found[week_for_file_name(name.removesuffix(".parquet") + ".txt")] = set(zip(table["unit"].to_pylist(), table["ca"].to_pylist()))
    return found


@dg.asset(
    key=STATION_COMPLEXES,
    group_name="mta_official",
    kinds={"parquet"},
    # Stored whole by the asset itself; loaded by downstream assets through the lake IO manager.
    metadata=lake_metadata("official/stations/station_complexes", ".parquet"),
    io_manager_key="lake_io_manager",
    owners=["team:data-engineering"],
    deps=[dg.AssetKey("stations")],
    # Unpartitioned, and built in the same run as a range of weeks (`./mta materialize A...B`):
    # the CLI runs a range in one run only when every selected asset says so.
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("every_unit_has_complex", asset=STATION_COMPLEXES,
                                   description="Every (unit, C/A) of the lake's weeks maps to an MTA station complex.")],
)
def station_complexes(context: dg.AssetExecutionContext, lake: Lake, open_data: OpenDataSource):
    """The crosswalk from turnstile booths (unit, C/A) to MTA's station complexes."""
    import pyarrow.parquet as pq

    try:
        texts = open_data.crosswalk_texts()
    except SodaError as exc:
        raise dg.Failure(description=str(exc), allow_retries=not exc.permanent) from None
    crosswalk = complexes.parse_crosswalk(*(texts[name] for name in complexes.CROSSWALK_FILES))
    with tempfile.TemporaryDirectory(prefix="station-complexes-") as folder:
        weeks = lake_pairs(lake, Path(folder) / "stations")
        table, unmapped = complexes.map_pairs(crosswalk, weeks)
        path = Path(folder) / KEY_PARTS[-1]
        pq.write_table(table, path, compression="zstd")
        stored = lake.put_file(path, lake.key(*KEY_PARTS), "application/vnd.apache.parquet")
    listed = [str(item) for item in unmapped]
    yield dg.MaterializeResult(metadata=with_links({
        **stored.metadata(), "rows": table.num_rows, "weeks_covered": len(weeks), "unmapped": len(unmapped),
        "unmapped_units": dg.MetadataValue.json(listed[:200]),
        "sources": dg.MetadataValue.json({name: texts[f"{name}#source"] for name in complexes.CROSSWALK_FILES}),
    }))
    text = f"{len(unmapped)} (unit, C/A) pairs of {len(weeks)} weeks have no complex" + (": " + "; ".join(listed[:20]) if listed else "")
    yield dg.AssetCheckResult(check_name="every_unit_has_complex", passed=not unmapped, description=text,
                              severity=dg.AssetCheckSeverity.WARN, metadata={"unmapped": dg.MetadataValue.json(listed[:200])})
