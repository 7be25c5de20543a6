"""MTA's official hourly ridership by week: the rows as published (gzip) and validated (Parquet), committed together.

A week is downloaded once through the SODA client, checked, and only when every blocking
check passes are both objects committed as one unit (``commit_week``, area ``official``).
A week that data.ny.gov has not published yet is "not published": the run ends without
a materialization and without an error (no alert); the sensor only requests published weeks.
"""

import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

from mta_assets.defs.history import latest_values
from mta_assets.mta.calendar import weeks_before
from mta_assets.defs.official.checks import BLOCKING, HOURLY, RAW, blocking_results, hourly_check_specs, plausible_result, reconciliation_result
from mta_assets.defs.official.daily import official_daily
from mta_assets.defs.official.partitions import official_partitions
from mta_assets.defs.official.resources import OpenDataSource
from mta_assets.defs.official.stations import station_complexes
from mta_assets.defs.io_manager import lake_metadata
from mta_assets.defs.resources import Lake, with_links
from mta_assets.defs.weeks import WEEK_RETRY_POLICY, WeekReport
from mta_assets.mta import official
from mta_assets.storage.commit import commit_week, week_key
from mta_assets.storage.errors import is_transient
from mta_assets.storage.http import source_down
from mta_assets.storage.soda import NotPublished, SodaError

GROUP = "mta_official"
AREA = "official"
PARQUET = "application/vnd.apache.parquet"


class OfficialHourlyConfig(dg.Config):
    max_change: float = Field(default=0.5, ge=0, description="Warn when rows or ridership differ more than this share from earlier weeks.")
    earlier_weeks: int = Field(default=8, ge=1, description="Earlier weeks whose median the plausibility check uses.")
    lock_wait_s: float = Field(default=120.0, gt=0, description="How long the week's commit waits for another run's lock.")


def _turnstile_by_day(lake: Lake, week: str, folder: Path) -> dict | None:
    """The week's turnstile entries per day from ridership_daily in the lake, or None when it is not there."""
    import pyarrow.parquet as pq

    from mta_assets.mta.ridership import system_by_day

    key = lake.key_for("ridership", week, ".parquet")
    if lake.stat(key) is None:
        return None
    daily = pq.read_table(lake.fetch(key, folder), columns=["date", "entries", "exits"])
    return {day: float(entries) for day, (entries, _) in system_by_day(daily).items()}


@dg.multi_asset(
    specs=[
        # Stored by the step's own commit; loaded by downstream assets through the lake IO manager.
        dg.AssetSpec(RAW, description="MTA's hourly subway ridership of the week as data.ny.gov published it (gzip CSV).",
                     kinds={"csv"}, group_name=GROUP, owners=["team:data-engineering"], skippable=True,
                     metadata=lake_metadata("hourly_raw", ".csv.gz", AREA)).with_io_manager_key("lake_io_manager"),
        dg.AssetSpec(HOURLY, description="MTA's hourly ridership of the week by station complex, validated (Parquet).",
                     kinds={"parquet"}, deps=[RAW], group_name=GROUP, owners=["team:data-engineering"], skippable=True,
                     metadata=lake_metadata("hourly", ".parquet", AREA)).with_io_manager_key("lake_io_manager"),
    ],
    check_specs=hourly_check_specs(official_partitions),
    partitions_def=official_partitions,
    # Subsettable so that a week not published yet may end without outputs or check results;
    # whatever is selected, both objects are committed together.
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=WEEK_RETRY_POLICY,
)
def official_hourly_week(context: dg.AssetExecutionContext, config: OfficialHourlyConfig, lake: Lake, open_data: OpenDataSource):
    """Each selected week's official hourly ridership, raw and validated, committed together when valid."""
    weeks = list(context.partition_keys)
    keys = [key for key in (RAW, HOURLY) if key in context.selected_asset_keys]
    report = WeekReport(context, weeks)
    with report.recording_if_interrupted(keys):
        for week in report.to_do:
            if report.held_back(week):
                continue
            try:
                metadata, results = _week(context, config, lake, open_data, week)
            except NotPublished as exc:
                report.skipped(week, f"{exc}; nothing to do until data.ny.gov publishes it")
                continue
            except SodaError as exc:
                report.failed(week, str(exc), retryable=not exc.permanent, source_down=source_down(exc))
                continue
            except _Blocked as blocked:
                report.checks(week, blocked.results, frozenset(BLOCKING))
                report.failed(week, str(blocked))
                continue
            except Exception as exc:  # the lake (a lock held past the wait, an unwritable store): this week's alone
                report.failed(week, f"week {week}: {exc}", retryable=is_transient(exc))
                continue
            report.checks(week, results, frozenset(BLOCKING))
            report.committed(week, metadata)
    yield from report.finish(keys)


class _Blocked(Exception):
    """A week whose blocking checks failed: nothing of it was committed."""

    def __init__(self, message: str, results: list):
        super().__init__(message)
        self.results = results


def _week(context, config: OfficialHourlyConfig, lake: Lake, open_data: OpenDataSource, week: str):
    """One week: downloaded, checked, and committed as a unit when it passes. Returns (metadata, check results)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix=f"official-{week}-") as folder:
        work = Path(folder)
        download = open_data.client().hourly_week(week, work)
        try:
            table = official.parse_hourly(download.path)
        except (ValueError, OSError) as exc:
            raise SodaError(f"week {week}: {', '.join(download.urls)}: rows do not parse: {exc}") from None
        results = blocking_results(table, week)
        failed = [result for result in results if not result.passed]
        if failed:
            raise _Blocked(f"week {week} not committed: " + "; ".join(str(result.description) for result in failed), results)
        table = official.conform(table)
        rows, total = table.num_rows, official.total_ridership(table)
        earlier = weeks_before(week, config.earlier_weeks)
        earlier_rows = latest_values(context.instance, HOURLY, earlier, "rows")
        earlier_totals = latest_values(context.instance, HOURLY, earlier, "total_ridership")
        pairs = [(earlier_rows[w], earlier_totals[w]) for w in earlier if w in earlier_rows and w in earlier_totals]
        results.append(plausible_result(week, rows, total, pairs, config.max_change))
        reconciliation, ratio = reconciliation_result(week, _turnstile_by_day(lake, week, work / "turnstile"), official.daily_totals(table))
        results.append(reconciliation)

        parquet = work / f"official_hourly_{week}.parquet"
        pq.write_table(table, parquet, compression="zstd")
        commit_week(
            lake.client, AREA, week,
            {"hourly_raw": (download.path, download.path.name, "application/gzip"),
             "hourly": (parquet, parquet.name, PARQUET)},
            owner=context.run.run_id, wait_s=config.lock_wait_s,
            metadata={"week": week, "datasets": ",".join(download.datasets)},
        )
    source = {"source_urls": ", ".join(download.urls), "datasets": ", ".join(download.datasets),
              "published_through": download.published_through.isoformat()}
    metadata = {RAW: with_links({"uri": lake.uri_for(week_key(lake.client, AREA, "hourly_raw", week) or ""),
                                 "rows": download.rows, **source})}
    hourly_metadata = {"uri": lake.uri_for(week_key(lake.client, AREA, "hourly", week) or ""), "rows": rows,
                       "total_ridership": total, "complexes": pc.count_distinct(table["station_complex_id"]).as_py(), **source}
    if ratio is not None:
        hourly_metadata["turnstile_over_official"] = round(ratio, 4)  # a number: the Plots tab draws it across weeks
    metadata[HOURLY] = with_links(hourly_metadata)
    return metadata, results



official_assets = [official_hourly_week, official_daily, station_complexes]
