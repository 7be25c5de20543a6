"""Ridership assets: the station dimension, entries and exits per station and day, the DuckDB warehouse.

One step, ``ridership_weeks``, produces the three assets (``can_subset``: any of them can
be selected alone; the lineage in the UI is the same as for three steps). Each week's
readings table is fetched once: two weeks at a time (one per CPU) are read, given their
stations, turned into ridership, drawn and written to local files, while the main thread
takes the finished weeks in order, runs their checks, commits their objects to the lake
and loads them into the warehouse. Every week reports its own metadata and check results
and fails alone: the good weeks of a range are recorded, the failed ones named.
"""

import contextlib
import datetime as dt
import os
import shutil
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from mta_assets.defs.history import latest_values, log_week_check, weeks_before
from mta_assets.defs.io_manager import WeekFiles, lake_metadata
from mta_assets.defs.memory import tune_memory
from mta_assets.defs.resources import Lake, StationKeySource, with_links
from mta_assets.defs.ridership.checks import (
    BLOCKING,
    RIDERSHIP,
    blocking_failures,
    check_named,
    check_plausible,
    check_usable,
    mean_daily_entries,
    ridership_check_specs,
)
from mta_assets.defs.turnstile.partitions import weekly_partitions

# The previous-week mapping needs allow_nonexistent_upstream_partitions (beta): the first
# week has no week before it. Chosen knowingly; one filter instead of a warning per command.
warnings.filterwarnings("ignore", message=".*allow_nonexistent_upstream_partitions.*", category=dg.BetaWarning)
# The same single-run backfill policy as the turnstile assets (beta), filtered the same way.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

GROUP = "mta_ridership"
PARQUET = "application/vnd.apache.parquet"
WAREHOUSE_POOL = "mta_warehouse"
STATIONS = dg.AssetKey("stations")
WAREHOUSE = dg.AssetKey("ridership_warehouse")
READINGS = dg.AssetKey("turnstile_readings")

# A week's first interval starts at the previous week's last reading: ridership maps each
# week to itself and the week before (which may not exist, or not be in the lake).
PREVIOUS_AND_CURRENT_WEEK = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
)
# What the step reads of a week's readings table. Strings as dictionaries: the rules and
# the station dimension only compare them, and decoding costs more than the rules.
STATION_COLUMNS = ["unit", "ca", "station", "linename", "division"]
READ_COLUMNS = ["ca", "unit", "scp", "station", "linename", "division", "reading_time", "desc", "entries", "exits"]
DICTIONARY_COLUMNS = ["ca", "unit", "scp", "station", "linename", "division", "desc"]


def previous_week(week: str) -> str:
    return (dt.date.fromisoformat(week) - dt.timedelta(days=7)).isoformat()


class RidershipConfig(dg.Config):
    max_workers: int = Field(
        default=0, description="Weeks read and computed at once in a range; 0 means one per CPU (about 100 MB each)."
    )
    max_entries_change: float = Field(
        default=0.5, ge=0, description="Block a week whose mean daily entries differ more than this share from earlier weeks."
    )
    max_unusable_share: float = Field(
        default=0.05, ge=0, le=1, description="Warn when more than this share of intervals is capped or dropped."
    )
    lock_deadline_s: float = Field(
        default=120.0, gt=0, description="How long a week's warehouse load waits for another writer of the DuckDB file."
    )


def _spec(key: dg.AssetKey, description: str, kinds: set[str], deps: list, dataset: str | None) -> dg.AssetSpec:
    # Skippable: a run materializes only the selected assets, and a failed week none of them.
    spec = dg.AssetSpec(
        key,
        description=description,
        kinds=kinds,
        deps=deps,
        metadata=lake_metadata(dataset, ".parquet") if dataset else None,
        group_name=GROUP,
        owners=["team:data-engineering"],
        skippable=True,
    )
    # The lake IO manager hands the weeks of a Parquet dataset to a user's own downstream asset.
    return spec.with_io_manager_key("lake_io_manager") if dataset else spec


_specs = [
    _spec(STATIONS, "Each week's turnstiles (unit, C/A) with their station, lines and division, one name across both eras.",
          {"parquet"}, [READINGS], "stations"),
    _spec(RIDERSHIP, "Entries and exits per station and day, from each turnstile's counter differences.",
          {"parquet"}, [dg.AssetDep(READINGS, partition_mapping=PREVIOUS_AND_CURRENT_WEEK), STATIONS], "ridership"),
    _spec(WAREHOUSE, "The week's readings, ridership and stations in the embedded DuckDB warehouse, replaced idempotently.",
          {"duckdb"}, [RIDERSHIP, STATIONS, READINGS], None),
]


class _WeekFailed(Exception):
    """A week's blocking check failed; its results are already in the run's ``checks``."""


def earlier_mean_entries(instance: dg.DagsterInstance, week: str, limit: int = 8) -> dict[str, float]:
    """``mean_daily_entries`` of up to ``limit`` materialized weeks of ``ridership_daily`` before ``week``."""
    return latest_values(instance, RIDERSHIP, weeks_before(week, limit), "mean_daily_entries")


@dg.multi_asset(
    specs=_specs,
    check_specs=ridership_check_specs,
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    # DuckDB has one writer per file: runs loading the warehouse take turns (dagster.yaml).
    pool=WAREHOUSE_POOL,
    code_version="2",
)
def ridership_weeks(
    context: dg.AssetExecutionContext,
    config: RidershipConfig,
    lake: Lake,
    station_key: StationKeySource,
    warehouse: DuckDBResource,
):
    """Each selected week's stations, ridership and warehouse load, from its readings table read once."""
    tune_memory()
    run = _RidershipRun(context, config, lake, station_key, warehouse)
    try:
        with run.connection_kept:
            run.run()
    finally:
        shutil.rmtree(run.staging, ignore_errors=True)
    yield from run.report()


class _RidershipRun:
    """The weeks of one step: computed a few at a time on threads, finished in week order."""

    def __init__(self, context, config: RidershipConfig, lake: Lake, station_key: StationKeySource, warehouse):
        import tempfile

        from mta_assets.settings import staging_root

        self.context = context
        self.config = config
        self.lake = lake
        self.warehouse = warehouse
        self.weeks = list(context.partition_keys)
        self.selected = set(context.selected_asset_keys)
        self.key, self.key_note = station_key.load()
        if self.key is None and STATIONS in self.selected:
            context.log.warning(self.key_note)
        self.readings = WeekFiles(lake.client, "readings", ".parquet", [previous_week(self.weeks[0]), *self.weeks])
        self.staging = Path(tempfile.mkdtemp(prefix="mta-ridership-", dir=staging_root()))
        self.copies = None
        if WAREHOUSE in self.selected:
            from mta_assets.storage.warehouse import readings_folder

            if warehouse.database != ":memory:":  # DuckDB creates the file, not its folder
                Path(warehouse.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.copies = readings_folder(warehouse.database)
        # One query for the whole range: 8 weeks before its start through its end.
        self.earlier = earlier_mean_entries(context.instance, self.weeks[-1], limit=8 + len(self.weeks))
        # One warehouse connection for the step, opened at the first load: opening and
        # closing the file (a checkpoint each time) cost more than a week's load.
        self.connection_kept = contextlib.ExitStack()
        self._connection = None
        self.done: dict[str, dict[dg.AssetKey, dict]] = {}  # week -> asset -> that week's metadata
        self.checks: dict[str, list[dg.AssetCheckResult]] = {}
        self.failures: dict[str, str] = {}

    # -- the weeks --------------------------------------------------------------------

    def run(self) -> None:
        workers = max(1, min(self.config.max_workers or os.cpu_count() or 2, len(self.weeks)))
        pending = iter(self.weeks)
        futures: dict[str, Future] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mta-ridership") as pool:

            def keep_busy() -> None:
                # One week more than the workers: the next is ready when the main thread is.
                while len(futures) < workers + 1 and (week := next(pending, None)) is not None:
                    futures[week] = pool.submit(self._compute, week)

            keep_busy()
            for week in self.weeks:
                future = futures.pop(week)
                keep_busy()
                done: dict[dg.AssetKey, dict] = {}
                self.done[week] = done
                try:
                    self._finish(week, future.result(), done)
                except Exception as exc:  # reported per week; the other weeks go on
                    self.failures[week] = str(exc) if week in str(exc) else f"week {week}: {exc}"
                if week in self.failures:  # good weeks speak through their materializations
                    self.context.log.error(self.failures[week])
                if len(self.weeks) > 1 or week in self.failures:
                    # Now, not at the end: the events are written while the next weeks compute.
                    # A single good week yields its results from report().
                    for result in self.checks.get(week, []):
                        log_week_check(self.context, result, week, result.check_name in BLOCKING)

    def _compute(self, week: str) -> dict[str, Any]:
        """Everything about a week that needs no order: read, stations, ridership, chart, local files."""
        import pyarrow.parquet as pq

        from mta_assets.defs.ridership.report import day_chart_markdown, top_stations_markdown
        from mta_assets.defs.turnstile.tables import write_parquet
        from mta_assets.mta.ridership import daily, intervals, system_by_day
        from mta_assets.mta.stations import station_dimension

        started = time.perf_counter()
        if week not in self.readings:
            raise ValueError(f"week {week}: no turnstile_readings table in the lake")
        folder = self.staging / week
        folder.mkdir()
        data: dict[str, Any] = {"folder": folder}
        current = None
        if self.selected & {STATIONS, RIDERSHIP}:
            read = dict(columns=READ_COLUMNS, read_dictionary=DICTIONARY_COLUMNS)
            # One dictionary per column for the week: each row group of the file has its own.
            current = pq.read_table(self.readings[week], **read).unify_dictionaries()
        if STATIONS in self.selected:
            stations = station_dimension(current.select(STATION_COLUMNS), self.key)
            stations = stations.append_column("week", _week_column(week, stations.num_rows))
            data["stations_file"] = folder / "stations.parquet"
            write_parquet(stations, data["stations_file"])
            # No check gates the station dimension: stored here, off the main thread.
            data["stations_stored"] = self._store("stations", week, data["stations_file"])
        else:
            data["stations_file"] = self._from_lake("stations", week, folder, needed_by="ridership_daily and the warehouse")
            stations = pq.read_table(data["stations_file"]) if RIDERSHIP in self.selected else None
        data["stations"] = stations
        if RIDERSHIP in self.selected:
            before = previous_week(week)
            previous = None
            if before in self.readings:
                previous = pq.read_table(self.readings[before], **read).unify_dictionaries()
            rows = daily(intervals(current, previous), stations, dt.date.fromisoformat(week))
            data["previous_week_used"] = previous is not None
            del current, previous
            by_day = system_by_day(rows)
            data.update(
                rows=rows,
                by_day=by_day,
                top_stations=top_stations_markdown(rows),
                chart=day_chart_markdown(by_day, week),
                ridership_file=folder / "ridership.parquet",
            )
            write_parquet(rows, data["ridership_file"])
        elif WAREHOUSE in self.selected:
            data["ridership_file"] = self._from_lake("ridership", week, folder, needed_by="the warehouse")
        if WAREHOUSE in self.selected:
            data["readings_file"], data["readings_in_lake"] = self._readings_for_warehouse(week, folder)
        data["seconds"] = time.perf_counter() - started
        return data

    def _from_lake(self, dataset: str, week: str, folder: Path, needed_by: str) -> Path:
        key = self.lake.key_for(dataset, week, ".parquet")
        if self.lake.stat(key) is None:
            raise ValueError(f"week {week}: no {dataset} table in the lake ({self.lake.uri_for(key)}), needed by {needed_by}")
        return self.lake.fetch(key, folder / dataset)

    def _readings_for_warehouse(self, week: str, folder: Path) -> tuple[Path, bool]:
        """(the week's readings file, whether it is the lake's own); a copy outlives the
        reading, since WeekFiles keeps only the last few weeks it fetched."""
        path, _ = self.readings.file(week)
        # A local lake's folder holds each week's committed generation and the one it
        # replaced (storage/commit.py): a view globbing it would count a week twice. The
        # view reads the warehouse's own copy, a hard link where the filesystem allows.
        target = folder / "readings" / path.name
        target.parent.mkdir()
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        return target, False

    def _finish(self, week: str, data: dict[str, Any], done: dict[dg.AssetKey, dict]) -> None:
        """In week order: checks, then the week's objects in the lake, then the warehouse."""
        try:
            if STATIONS in self.selected:
                stations = data["stations"]
                sources = stations.group_by(["source"]).aggregate([([], "count_all")]).to_pylist()
                done[STATIONS] = {
                    "dagster/row_count": dg.MetadataValue.int(stations.num_rows),
                    "pairs_by_source": dg.MetadataValue.json({str(row["source"]): row["count_all"] for row in sources}),
                    "station_key": self.key_note,
                    **data["stations_stored"],
                }
            if RIDERSHIP in self.selected:
                done[RIDERSHIP] = self._finish_ridership(week, data)
            if WAREHOUSE in self.selected:
                done[WAREHOUSE] = self._load(week, data)
        finally:
            shutil.rmtree(data["folder"], ignore_errors=True)

    def _finish_ridership(self, week: str, data: dict[str, Any]) -> dict:
        from mta_assets.defs.ridership.report import day_table_markdown

        rows, by_day, stations = data["rows"], data["by_day"], data["stations"]
        mean_entries = mean_daily_entries(by_day, week)
        recent = [self.earlier[w] for w in sorted(self.earlier) if w < week][-8:]
        sources = sorted({str(source) for source in stations["source"].to_pylist()})
        results = [
            check_plausible(mean_entries, recent, self.config.max_entries_change),
            check_usable(rows, self.config.max_unusable_share),
            check_named(stations, f"{self.key_note}; names from: {', '.join(sources)}"),
        ]
        self.checks[week] = results
        failed = blocking_failures(results)
        if failed:
            raise _WeekFailed(f"week {week}: blocking checks failed: {', '.join(failed)}; the last good file is kept")
        self.earlier[week] = mean_entries  # the next weeks of the range compare with this one
        return {
            "dagster/row_count": dg.MetadataValue.int(rows.num_rows),
            "dagster/column_schema": dg.MetadataValue.table_schema(_ridership_schema(rows)),
            "previous_week_used": data["previous_week_used"],
            "mean_daily_entries": round(mean_entries, 1),
            "system_by_day": dg.MetadataValue.md(day_table_markdown(by_day)),
            "chart": dg.MetadataValue.md(data["chart"]),
            "top_stations": dg.MetadataValue.md(data["top_stations"]),
            "compute_seconds": round(data["seconds"], 3),
            **self._store("ridership", week, data["ridership_file"]),
        }

    def _store(self, dataset: str, week: str, path: Path) -> dict:
        return with_links(self.lake.put_file(path, self.lake.key_for(dataset, week, ".parquet"), PARQUET).metadata())

    def _load(self, week: str, data: dict[str, Any]) -> dict:
        import pyarrow.parquet as pq

        from mta_assets.storage.warehouse import keep_readings_file, load_week

        files = {"ridership_daily_parts": data["ridership_file"], "station_weeks": data["stations_file"]}
        readings = data["readings_file"]
        readings_rows = pq.ParquetFile(readings).metadata.num_rows
        # The readings are a view over Parquet files (README: loading them as a table cost
        # 0.4 s a week): a local lake's own files, or a GCS lake's kept beside the database.
        # An in-memory database has no beside: a table then.
        if data["readings_in_lake"]:
            readings_glob = str(readings.parent.parent / "*" / "*.parquet")
        elif self.copies is not None:
            year = self.lake.key_for("readings", week, ".parquet").split("/")[-2]
            readings_glob = keep_readings_file(readings, self.copies, year, readings.name)
        else:
            readings_glob, files["readings"] = None, readings
        database = self.warehouse.database

        def busy(attempt: int, error: Exception) -> None:
            self.context.log.info(f"week {week}: warehouse {database} busy (attempt {attempt}): {error}")

        loaded = load_week(self._connect, week, files, self.config.lock_deadline_s, database, readings_glob, busy)
        return {
            "database": dg.MetadataValue.path(str(Path(database).resolve())),
            "rows": dg.MetadataValue.json({**loaded.rows, "readings": loaded.rows.get("readings", readings_rows)}),
            "load_seconds": round(loaded.seconds, 3),
            "attempts": loaded.attempts,
        }

    @contextlib.contextmanager
    def _connect(self):
        # A busy file fails here, and load_week retries until its deadline.
        if self._connection is None:
            self._connection = self.connection_kept.enter_context(self.warehouse.get_connection())
        yield self._connection

    # -- what Dagster records -----------------------------------------------------------

    def report(self):
        """Each week's materializations and check results on its own partition; failed weeks named."""
        context = self.context
        keys = [spec.key for spec in _specs if spec.key in self.selected]
        check_names = [
            key.name for key in context.selected_asset_check_keys if key.asset_key == RIDERSHIP
        ]
        if len(self.weeks) == 1 and not self.failures:
            (week,) = self.weeks
            for result in self.checks.get(week, []):
                if result.check_name in check_names:
                    yield result
            for key in keys:
                yield dg.MaterializeResult(asset_key=key, metadata=self.done[week][key])
            return
        if self.failures:
            for week, assets in self.done.items():
                for key, metadata in assets.items():
                    context.log_event(dg.AssetMaterialization(asset_key=key, partition=week, metadata=metadata))
            failed = sorted(self.failures)
            raise dg.Failure(
                description=f"{len(failed)} of {len(self.weeks)} week(s) failed: "
                + "; ".join(self.failures[w] for w in failed),
                metadata={
                    "failed_weeks": dg.MetadataValue.json(failed),
                    "stored_weeks": dg.MetadataValue.json(sorted(w for w in self.done if w not in self.failures)),
                },
                allow_retries=False,
            )
        for week, assets in self.done.items():
            for key, metadata in assets.items():
                context.add_asset_metadata(metadata, asset_key=key, partition_key=week)
        for name in check_names:
            failing = sorted(w for w, rs in self.checks.items() for r in rs if r.check_name == name and not r.passed)
            yield dg.AssetCheckResult(
                check_name=name,
                asset_key=RIDERSHIP,
                passed=not failing,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"weeks_checked": len(self.checks), "weeks_failed": dg.MetadataValue.json(failing)},
            )
        for key in keys:
            yield dg.MaterializeResult(asset_key=key, metadata={"weeks": len(self.weeks)})


def _week_column(week: str, rows: int):
    import pyarrow as pa

    return pa.repeat(pa.scalar(dt.date.fromisoformat(week), pa.date32()), rows)


def _ridership_schema(table) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in table.schema])


ridership_assets = [ridership_weeks]
