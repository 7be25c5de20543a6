"""The three weekly assets: raw file -> gzip lake object -> validated readings table.

Each asset handles a whole partition range in one step (``BackfillPolicy.single_run``),
working on the weeks in parallel threads, and hands the IO manager one file per
week. A week that fails is named and not stored; the other weeks are stored.
"""

import gzip
import shutil
import time
import warnings
from pathlib import Path

import dagster as dg
from pydantic import Field

from mta_assets.batches import WeekBatch, WeekFile, map_weeks, staging_dir
from mta_assets.defs.io_manager import lake_metadata
from mta_assets.defs.turnstile.checks import BLOCKING, READINGS, readings_check_specs, to_check_result
from mta_assets.defs.turnstile.partitions import weekly_partitions
from mta_assets.mta.calendar import require_published
from mta_assets.mta.validate import ValidationSettings, WeekEvidence, blocking_failures, validate_week
from mta_assets.storage.http import MTASource, SourceUnavailable
from mta_assets.storage.lake import Lake

GROUP = "mta_turnstile"
DEFAULT_GZIP_LEVEL = 6  # README "Compression level": 19% smaller than 1, a quarter of 9's time

# Single-run backfills (a beta parameter) are what make a range one run: chosen knowingly,
# so that the warning is not repeated by every command that loads the code location.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

_weekly = dict(
    group_name=GROUP,
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="lake_io_manager",
    owners=["team:data-engineering"],
)


class RangeConfig(dg.Config):
    max_workers: int = Field(default=0, description="Weeks processed at once in a range; 0 means one per CPU.")


class CompressionConfig(RangeConfig):
    gzip_level: int = Field(default=DEFAULT_GZIP_LEVEL, ge=1, le=9, description="gzip compression level.")


class ReadingsConfig(RangeConfig):
    # Each week parsed at once costs about 200 MB at its peak: memory grows with the
    # workers, never with the number of weeks. Set 1 on a machine short of memory.
    max_workers: int = Field(
        default=0, description="Weeks parsed at once in a range; 0 means one per CPU (about 200 MB each)."
    )
    max_reject_share: float = Field(
        default=0.001, ge=0, le=1, description="Largest share of unparseable readings a week may have (0.1%)."
    )
    volume_tolerance: float = Field(
        default=0.25, ge=0, description="Warn when a week's row count differs more than this share from earlier weeks."
    )
    station_key_path: str | None = Field(
        default=None,
        description="MTA Remote-Booth-Station CSV giving station, line names and division to the 2010-2014 rows.",
    )


def _record_week(batch: WeekBatch, item: WeekFile, metadata: dict) -> None:
    batch.files[item.week] = item
    batch.metadata[item.week] = metadata


def _result(context: dg.AssetExecutionContext, weeks: list[str], batch: WeekBatch) -> dg.MaterializeResult:
    """The step's result, with each week's own metadata on that week's materialization."""
    if len(weeks) == 1:
        return dg.MaterializeResult(value=batch, metadata=batch.metadata.get(weeks[0], {}))
    for week, metadata in batch.metadata.items():
        context.add_asset_metadata(metadata, partition_key=week)
    return dg.MaterializeResult(value=batch, metadata={"weeks": len(weeks), "weeks_failed": len(batch.failures)})


def _fail_fast_on_unpublished(weeks: list[str]) -> None:
    for week in weeks:
        try:
            require_published(week)
        except ValueError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None


@dg.asset(
    **_weekly,
    kinds={"http", "csv"},
    metadata=lake_metadata("raw", ".txt"),
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    code_version="1",
)
def turnstile_csv(
    context: dg.AssetExecutionContext, config: RangeConfig, mta_source: MTASource, lake: Lake
) -> dg.MaterializeResult:
    """The week's turnstile file, byte for byte as MTA published it."""
    weeks = list(context.partition_keys)
    _fail_fast_on_unpublished(weeks)
    staging = staging_dir("raw")
    downloads, errors = map_weeks(weeks, lambda week: mta_source.download(week, staging / week), config.max_workers)
    batch = WeekBatch(
        failures={week: str(exc) for week, exc in errors.items()},
        retryable=any(isinstance(exc.cause, SourceUnavailable) for exc in errors.values()),
    )
    for week, download in downloads.items():
        key = lake.key_for("raw", week, ".txt")
        _record_week(
            batch,
            WeekFile(week, download.path, "text/plain"),
            {**download.metadata(), "lake_uri": lake.uri_for(key)},
        )
        context.log.info(f"week {week}: downloaded {download.size:,} bytes from {download.url} ({download.layout})")
    return _result(context, weeks, batch)


def gzip_file(source: Path, target: Path, level: int) -> None:
    """Deterministic gzip: no file name and mtime 0 in the header, so equal input gives equal bytes."""
    with open(source, "rb") as src, open(target, "wb") as raw_out:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw_out, mtime=0) as out:
            shutil.copyfileobj(src, out, 1024 * 1024)


@dg.asset(
    **_weekly,
    kinds={"gcs", "gzip"},
    metadata=lake_metadata("csv_gz", ".csv.gz"),
    code_version="1",
)
def turnstile_csv_gz(
    context: dg.AssetExecutionContext,
    config: CompressionConfig,
    lake: Lake,
    turnstile_csv: dict[str, Path],
) -> dg.MaterializeResult:
    """The week's file gzip-compressed in the data lake, uploaded in chunks and verified."""
    staging = staging_dir("gz")

    def compress(week: str) -> tuple[WeekFile, dict]:
        source = turnstile_csv[week]
        target = staging / f"{source.name.removesuffix('.txt')}.csv.gz"
        started = time.perf_counter()
        gzip_file(source, target, config.gzip_level)
        seconds = time.perf_counter() - started
        size_in, size_out = source.stat().st_size, target.stat().st_size
        return WeekFile(week, target, "application/gzip"), {
            "bytes_in": size_in,
            "bytes_out": size_out,
            "compression_ratio": round(size_in / size_out, 2) if size_out else 0.0,
            "gzip_level": config.gzip_level,
            "gzip_seconds": round(seconds, 3),
            "lake_uri": lake.uri_for(lake.key_for("csv_gz", week, ".csv.gz")),
            "chunk_size_bytes": lake.chunk_size_bytes,
            "upload_chunks": max(1, -(-size_out // lake.chunk_size_bytes)),
        }

    results, errors = map_weeks(list(turnstile_csv), compress, config.max_workers)
    batch = WeekBatch(failures={week: str(exc) for week, exc in errors.items()})
    for item, metadata in results.values():
        _record_week(batch, item, metadata)
    return _result(context, list(turnstile_csv), batch)


def earlier_row_counts(instance: dg.DagsterInstance, week: str, limit: int = 8) -> dict[str, int]:
    """Row counts of up to ``limit`` earlier weeks of the table that exist, by week."""
    keys = list(weekly_partitions.get_partition_keys())
    earlier = [key for key in keys if key < week][-limit:]
    if not earlier:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=READINGS, asset_partitions=earlier), limit=limit * 4
    ).records
    counts: dict[str, int] = {}
    for record in records:  # newest first: keep each week's latest materialization
        materialization = record.asset_materialization
        if materialization is None or record.partition_key in counts:
            continue
        row_count = materialization.metadata.get("dagster/row_count")
        if row_count is not None:
            counts[record.partition_key] = int(row_count.value)
    return counts


@dg.asset(
    **_weekly,
    kinds={"parquet", "pandas"},
    metadata=lake_metadata("readings", ".parquet"),
    check_specs=readings_check_specs,
    code_version="1",
)
def turnstile_readings(
    context: dg.AssetExecutionContext,
    config: ReadingsConfig,
    turnstile_csv_gz: dict[str, Path],
):
    """One validated row per turnstile reading for the week, both MTA layouts in one schema."""
    from mta_assets.defs.turnstile.tables import readings_metadata, write_parquet
    from mta_assets.mta.parse import load_station_key, parse_week

    station_key = load_station_key(Path(config.station_key_path)) if config.station_key_path else None
    staging = staging_dir("readings")
    weeks = list(turnstile_csv_gz)
    settings = ValidationSettings(max_reject_share=config.max_reject_share, volume_tolerance=config.volume_tolerance)
    # Read before the threads start: the instance is queried from this thread only.
    earlier = {week: earlier_row_counts(context.instance, week) for week in weeks}

    def build(week: str):
        import pyarrow as pa

        source = turnstile_csv_gz[week]
        started = time.perf_counter()
        with gzip.open(source, "rb") as handle:
            raw = handle.read()
        source_file = source.name.removesuffix(".csv.gz") + ".txt"
        parsed = parse_week(raw, week, source_file, station_key)
        del raw
        parse_seconds = time.perf_counter() - started
        target = staging / f"{source_file.removesuffix('.txt')}.parquet"
        write_parquet(parsed.table, target)
        # Everything that needs the table happens here, so a range keeps one table per worker
        # in memory, not one per week. This step cannot tell whether the server stated the
        # length, so the content must prove the file whole.
        evidence = WeekEvidence(
            week=week,
            source_file=source_file,
            length_stated=False,
            earlier_row_counts=[count for _, count in sorted(earlier[week].items())][-8:],
        )
        results = validate_week(parsed, evidence, settings)
        metadata = {**readings_metadata(parsed), "parse_seconds": round(parse_seconds, 3)}
        rows = parsed.table.num_rows
        del parsed
        pa.default_memory_pool().release_unused()
        return rows, results, metadata, target

    built, errors = map_weeks(weeks, build, config.max_workers)
    batch = WeekBatch(failures={week: str(exc) for week, exc in errors.items()})
    all_results: dict[str, list[dg.AssetCheckResult]] = {}
    for week in weeks:
        if week not in built:
            continue
        rows, outcomes, metadata, target = built[week]
        all_results[week] = [to_check_result(outcome) for outcome in outcomes]
        failed = [outcome.name for outcome in blocking_failures(outcomes)]
        if failed:
            batch.failures[week] = (
                f"week {week}: blocking checks failed: {', '.join(failed)}; the last good table is kept"
            )
            target.unlink(missing_ok=True)
            continue
        _record_week(batch, WeekFile(week, target, "application/vnd.apache.parquet"), metadata)

    yield from _check_results(context, weeks, all_results)
    yield _result(context, weeks, batch)


def _check_results(context: dg.AssetExecutionContext, weeks: list[str], results: dict[str, list[dg.AssetCheckResult]]):
    """One evaluation per check and week.

    A single-week step reports its results directly. Dagster ties a step's check results
    to one partition only, so for a range each week's evaluation is logged with its
    partition, and the step's own result summarizes the range.
    """
    names = [spec.name for spec in readings_check_specs]
    if len(weeks) == 1:
        week = weeks[0]
        if week in results:
            yield from results[week]
        else:
            for name in names:
                yield dg.AssetCheckResult(
                    check_name=name, asset_key=READINGS, passed=False,
                    metadata={"reason": "the week could not be parsed; see the step's error"},
                )
        return
    for week, week_results in results.items():
        for result in week_results:
            context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=READINGS,
                    check_name=result.check_name,
                    passed=result.passed,
                    metadata=result.metadata,
                    severity=result.severity,
                    partition=week,
                    blocking=result.check_name in BLOCKING,
                )
            )
    for name in names:
        outcomes = {week: next(r for r in rs if r.check_name == name) for week, rs in results.items()}
        failing = sorted(week for week, r in outcomes.items() if not r.passed)
        unparsed = sorted(set(weeks) - set(results))
        yield dg.AssetCheckResult(
            check_name=name,
            asset_key=READINGS,
            passed=not failing and not unparsed,
            severity=(
                dg.AssetCheckSeverity.WARN
                if failing and not unparsed and all(outcomes[w].severity == dg.AssetCheckSeverity.WARN for w in failing)
                else dg.AssetCheckSeverity.ERROR
            ),
            metadata={
                "weeks_checked": len(outcomes),
                "weeks_failed": dg.MetadataValue.json(failing),
                "weeks_not_parsed": dg.MetadataValue.json(unparsed),
            },
        )
