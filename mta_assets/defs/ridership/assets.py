"""Ridership assets: the station dimension, entries and exits per station and day, the DuckDB warehouse.

Each handles a partition range in one step. A week's work needs only its readings, its
previous week's last readings and its station dimension; ``ridership_daily`` computes two
weeks at a time (one per CPU), then checks, draws and stores them in week order. Every
week is written to the lake by itself, reports its own metadata and check results,
and fails alone: the good weeks of a range are recorded, the failed ones named.
"""

import datetime as dt
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from mta_assets.defs.memory import tune_memory
from mta_assets.defs.history import latest_values, log_week_check, weeks_before
from mta_assets.defs.io_manager import WeekFiles, lake_metadata
from mta_assets.defs.ridership.checks import (
    BLOCKING,
    NAMED,
    PLAUSIBLE,
    RIDERSHIP,
    USABLE,
    blocking_failures,
    check_named,
    check_plausible,
    check_usable,
    mean_daily_entries,
    ridership_check_specs,
)
from mta_assets.defs.ridership.resources import StationKeySource
from mta_assets.defs.turnstile.partitions import weekly_partitions
from mta_assets.storage.lake import Lake

# The previous-week mapping needs allow_nonexistent_upstream_partitions (beta): the first
# week has no week before it. Chosen knowingly; one filter instead of a warning per command.
warnings.filterwarnings("ignore", message=".*allow_nonexistent_upstream_partitions.*", category=dg.BetaWarning)
# The same single-run backfill policy as the turnstile assets (beta), filtered the same way.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

GROUP = "mta_ridership"
PARQUET = "application/vnd.apache.parquet"
WAREHOUSE_POOL = "mta_warehouse"

_weekly = dict(
    group_name=GROUP,
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:data-engineering"],
)

# A week's first interval starts at the previous week's last reading: the readings input
# maps each week to itself and the week before (which may not exist, or not be in the lake).
PREVIOUS_AND_CURRENT_WEEK = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
)


def previous_week(week: str) -> str:
    return (dt.date.fromisoformat(week) - dt.timedelta(days=7)).isoformat()


def _run_weeks(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    work: Callable[[str], tuple[dict, list[dg.AssetCheckResult]]],
    check_names: list[str],
):
    """Run ``work`` for each week in order; report each week's metadata and checks on its own partition.

    Yields the step's check results and its ``MaterializeResult``, or raises ``dg.Failure``
    naming the failed weeks after recording the good ones.
    """
    weeks = list(context.partition_keys)
    done: dict[str, dict] = {}
    checks: dict[str, list[dg.AssetCheckResult]] = {}
    failures: dict[str, str] = {}
    for week in weeks:
        try:
            metadata, results = work(week)
        except _WeekFailed as exc:
            failures[week], results = str(exc), exc.results
        except Exception as exc:  # reported per week; the other weeks go on
            failures[week], results = (str(exc) if week in str(exc) else f"week {week}: {exc}"), []
        else:
            done[week] = metadata
        checks[week] = results
        if week in failures:  # good weeks speak through their materialization; an event costs a write
            context.log.error(failures[week])

    if len(weeks) == 1 and not failures:
        yield from checks[weeks[0]]
        yield dg.MaterializeResult(metadata=done[weeks[0]])
        return
    for week, results in checks.items():
        for result in results:
            log_week_check(context, result, week, result.check_name in BLOCKING)
    if failures:
        for week, metadata in done.items():
            context.log_event(dg.AssetMaterialization(asset_key=asset_key, partition=week, metadata=metadata))
        failed = sorted(failures)
        raise dg.Failure(
            description=f"{len(failed)} of {len(weeks)} week(s) failed: " + "; ".join(failures[w] for w in failed),
            metadata={"failed_weeks": dg.MetadataValue.json(failed), "stored_weeks": dg.MetadataValue.json(sorted(done))},
            allow_retries=False,
        )
    for week, metadata in done.items():
        context.add_asset_metadata(metadata, partition_key=week)
    for name in check_names:
        failing = sorted(w for w, rs in checks.items() for r in rs if r.check_name == name and not r.passed)
        yield dg.AssetCheckResult(
            check_name=name,
            asset_key=asset_key,
            passed=not failing,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"weeks_checked": len(checks), "weeks_failed": dg.MetadataValue.json(failing)},
        )
    yield dg.MaterializeResult(metadata={"weeks": len(weeks)})


class _WeekFailed(Exception):
    def __init__(self, message: str, results: list[dg.AssetCheckResult]):
        super().__init__(message)
        self.results = results


def _store(lake: Lake, dataset: str, week: str, table, staging: Path) -> dict:
    from mta_assets.defs.turnstile.tables import write_parquet

    staging.mkdir(parents=True, exist_ok=True)
    key = lake.key_for(dataset, week, ".parquet")
    target = staging / f"{dataset}-{week}.parquet"
    write_parquet(table, target)
    try:
        return lake.put_file(target, key, PARQUET).metadata()
    finally:
        target.unlink(missing_ok=True)  # put_file leaves its source: a range keeps one file at a time


def _staging() -> Path:
    """A folder for the week being stored, under the staging root; removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    from mta_assets.settings import staging_root

    folder = Path(tempfile.mkdtemp(prefix="mta-ridership-", dir=staging_root()))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def map_weeks(weeks: list[str], work: Callable, max_workers: int = 0) -> tuple[dict, dict]:
    """Run ``work`` for every week, a few at a time; return (results, errors) keyed by week."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(max_workers or os.cpu_count() or 2, len(weeks)))

    def attempt(week: str):
        try:
            return week, work(week), None
        except Exception as exc:  # reported per week by the caller
            return week, None, exc

    results, errors = {}, {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mta-ridership") as pool:
        for week, value, error in pool.map(attempt, weeks):
            if error is None:
                results[week] = value
            else:
                errors[week] = error
    return results, errors


@dg.asset(
    **_weekly,
    kinds={"parquet"},
    io_manager_key="lake_io_manager",
    metadata=lake_metadata("stations", ".parquet"),
    code_version="1",
)
def stations(
    context: dg.AssetExecutionContext,
    lake: Lake,
    station_key: StationKeySource,
    turnstile_readings: WeekFiles,
):
    """Each week's turnstiles (unit, C/A) with their station, lines and division, one name across both eras."""
    tune_memory()
    import pyarrow.parquet as pq

    from mta_assets.mta.stations import station_dimension

    key, key_note = station_key.load()
    if key is None:
        context.log.warning(key_note)
    staging = _staging()

    def build(week: str) -> tuple[dict, list]:
        if week not in turnstile_readings:
            raise ValueError(f"week {week}: no turnstile_readings table in the lake")
        columns = ["unit", "ca", "station", "linename", "division"]
        # One dictionary per column for the whole week: each row group of the file has its own.
        readings = pq.read_table(turnstile_readings[week], columns=columns, read_dictionary=columns).unify_dictionaries()
        table = station_dimension(readings, key)
        table = table.append_column("week", _week_column(week, table.num_rows))
        sources = table.group_by(["source"]).aggregate([([], "count_all")]).to_pylist()
        metadata = {
            "dagster/row_count": dg.MetadataValue.int(table.num_rows),
            "pairs_by_source": dg.MetadataValue.json({str(row["source"]): row["count_all"] for row in sources}),
            "station_key": key_note,
            **_store(lake, "stations", week, table, staging),
        }
        return metadata, []

    yield from _run_weeks(context, dg.AssetKey("stations"), build, [])


def _week_column(week: str, rows: int):
    import pyarrow as pa

    return pa.repeat(pa.scalar(dt.date.fromisoformat(week), pa.date32()), rows)


class RidershipConfig(dg.Config):
    max_workers: int = Field(
        default=0, description="Weeks computed at once in a range; 0 means one per CPU (about 100 MB each)."
    )
    max_entries_change: float = Field(
        default=0.5, ge=0, description="Block a week whose mean daily entries differ more than this share from earlier weeks."
    )
    max_unusable_share: float = Field(
        default=0.05, ge=0, le=1, description="Warn when more than this share of intervals is capped or dropped."
    )


def earlier_mean_entries(instance: dg.DagsterInstance, week: str, limit: int = 8) -> dict[str, float]:
    """``mean_daily_entries`` of up to ``limit`` earlier materialized weeks of ``ridership_daily``."""
    return latest_values(instance, RIDERSHIP, weeks_before(week, limit), "mean_daily_entries")


@dg.asset(
    **_weekly,
    kinds={"parquet"},
    ins={
        "turnstile_readings": dg.AssetIn(partition_mapping=PREVIOUS_AND_CURRENT_WEEK),  # a week without a table is absent
        "stations": dg.AssetIn(),
    },
    check_specs=ridership_check_specs,
    code_version="1",
)
def ridership_daily(
    context: dg.AssetExecutionContext,
    config: RidershipConfig,
    lake: Lake,
    station_key: StationKeySource,
    turnstile_readings: WeekFiles,
    stations: WeekFiles,
):
    """Entries and exits per station and day, from each turnstile's counter differences."""
    tune_memory()
    import pyarrow.parquet as pq

    from mta_assets.defs.ridership.report import day_chart_markdown, day_table_markdown, top_stations_markdown
    from mta_assets.mta.ridership import READING_COLUMNS, daily, intervals, system_by_day

    staging = _staging()
    seen_in_run: dict[str, float] = {}
    _, key_note = station_key.load()  # cached: only said in the station check's metadata

    def compute(week: str) -> dict:
        """The week's rows and what describes them: Arrow and numpy, run for two weeks at a time."""
        started = time.perf_counter()
        if week not in turnstile_readings:
            raise ValueError(f"week {week}: no turnstile_readings table in the lake")
        before = previous_week(week)
        # Strings as dictionaries: the rules only compare them, and decoding costs more than the rules.
        read = dict(columns=READING_COLUMNS, read_dictionary=["ca", "unit", "scp", "desc"])
        # unify_dictionaries: each row group of a file has its own dictionary, the rules need one.
        current = pq.read_table(turnstile_readings[week], **read).unify_dictionaries()
        previous = pq.read_table(turnstile_readings[before], **read).unify_dictionaries() if before in turnstile_readings else None
        station_table = pq.read_table(stations[week])
        rows = daily(intervals(current, previous), station_table, dt.date.fromisoformat(week))
        by_day = system_by_day(rows)
        return {
            "rows": rows,
            "by_day": by_day,
            "stations": station_table,
            "previous_week_used": previous is not None,
            "top_stations": top_stations_markdown(rows),
            "chart": day_chart_markdown(by_day, week),  # plain text (SVG): safe in these threads
            "seconds": time.perf_counter() - started,
        }

    weeks = list(context.partition_keys)
    computed, errors = map_weeks(weeks, compute, config.max_workers)

    def build(week: str) -> tuple[dict, list[dg.AssetCheckResult]]:
        """Checks and storage, in week order: the plausibility check needs the weeks before."""
        if week in errors:
            raise errors[week]
        week_data = computed.pop(week)
        rows, by_day, station_table = week_data["rows"], week_data["by_day"], week_data["stations"]
        mean_entries = mean_daily_entries(by_day, week)
        earlier = {**earlier_mean_entries(context.instance, week), **seen_in_run}
        recent = [earlier[w] for w in sorted(earlier) if w < week][-8:]
        seen_in_run[week] = mean_entries
        sources = sorted({str(source) for source in station_table["source"].to_pylist()})
        results = [
            check_plausible(mean_entries, recent, config.max_entries_change),
            check_usable(rows, config.max_unusable_share),
            check_named(station_table, f"{key_note}; names from: {', '.join(sources)}"),
        ]
        failed = blocking_failures(results)
        if failed:
            raise _WeekFailed(f"week {week}: blocking checks failed: {', '.join(failed)}; the last good file is kept", results)
        metadata = {
            "dagster/row_count": dg.MetadataValue.int(rows.num_rows),
            "dagster/column_schema": dg.MetadataValue.table_schema(_ridership_schema(rows)),
            "previous_week_used": week_data["previous_week_used"],
            "mean_daily_entries": round(mean_entries, 1),
            "system_by_day": dg.MetadataValue.md(day_table_markdown(by_day)),
            "chart": dg.MetadataValue.md(week_data["chart"]),
            "top_stations": dg.MetadataValue.md(week_data["top_stations"]),
            "compute_seconds": round(week_data["seconds"], 3),
            **_store(lake, "ridership", week, rows, staging),
        }
        return metadata, results

    yield from _run_weeks(context, RIDERSHIP, build, [PLAUSIBLE, USABLE, NAMED])


def _ridership_schema(table) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in table.schema])


class WarehouseConfig(dg.Config):
    lock_deadline_s: float = Field(
        default=120.0, gt=0, description="How long a week's load waits for another writer of the DuckDB file."
    )


@dg.asset(
    **_weekly,
    kinds={"duckdb"},
    deps=[ridership_daily, stations, "turnstile_readings"],
    pool=WAREHOUSE_POOL,
    code_version="1",
)
def ridership_warehouse(
    context: dg.AssetExecutionContext, config: WarehouseConfig, lake: Lake, warehouse: DuckDBResource
):
    """The week's readings, ridership and stations in the embedded DuckDB warehouse, replaced idempotently."""
    tune_memory()
    import pyarrow.parquet as pq

    from mta_assets.storage.warehouse import TABLE_DATASETS, keep_readings_file, load_week, readings_folder

    if warehouse.database != ":memory:":  # DuckDB creates the file, not its folder
        Path(warehouse.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    copies = readings_folder(warehouse.database)

    def load(week: str) -> tuple[dict, list]:
        import shutil
        import tempfile

        from mta_assets.settings import staging_root

        folder = Path(tempfile.mkdtemp(prefix="mta-warehouse-", dir=staging_root()))
        try:
            return _load(week, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _load(week: str, folder: Path) -> tuple[dict, list]:
        # One folder per table: the three objects of a week share their file name.
        readings_key = lake.key_for("readings", week, ".parquet")
        files = {t: lake.fetch(lake.key_for(d, week, ".parquet"), folder / t) for t, d in TABLE_DATASETS.items()}
        readings_rows = pq.ParquetFile(files["readings"]).metadata.num_rows
        # The readings are a view over Parquet files (README: loading them as a table cost
        # 0.4 s a week): a local lake hands out its own files; a file fetched from GCS is
        # kept beside the database. An in-memory database has no beside: a table then.
        in_place = files["readings"].parent != folder / "readings"
        readings_glob = None
        if in_place:
            readings_glob = str(files.pop("readings").parent.parent / "*" / "*.parquet")
        elif copies is not None:
            year, name = readings_key.split("/")[-2:]
            readings_glob = keep_readings_file(files.pop("readings"), copies, year, name)

        def busy(attempt: int, error: Exception) -> None:
            context.log.info(f"week {week}: warehouse {warehouse.database} busy (attempt {attempt}): {error}")

        loaded = load_week(
            warehouse.get_connection, week, files, config.lock_deadline_s, warehouse.database, readings_glob, busy
        )
        return {
            "database": dg.MetadataValue.path(str(Path(warehouse.database).resolve())),
            "rows": dg.MetadataValue.json({**loaded.rows, "readings": loaded.rows.get("readings", readings_rows)}),
            "load_seconds": round(loaded.seconds, 3),
            "attempts": loaded.attempts,
        }, []

    yield from _run_weeks(context, dg.AssetKey("ridership_warehouse"), load, [])


ridership_assets = [stations, ridership_daily, ridership_warehouse]
