"""The weekly turnstile assets: the file as published → its gzip object → the validated table.

One multi-asset step produces all three, week by week: each week goes through download →
gzip → parse → validate → commit (``week.py``) a few weeks at a time, so a range of any
length stages only the weeks in flight, a week is committed only once it has passed
every blocking check, and a week that fails stops only itself. The three assets keep
their own keys, lineage and per-week metadata; any subset can be materialized (the
table alone is rebuilt from the lake's gzip object), but a week MTA published again needs
the table with its gzip: one without the other would leave the week's objects from two
downloads (``week._commit``).
"""


import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait

import dagster as dg
from pydantic import Field

from mta_assets.defs.history import latest_values
from mta_assets.defs.io_manager import lake_metadata
from mta_assets.defs.resources import Lake, MTASource, StationKeySource, with_links
from mta_assets.defs.turnstile.checks import BLOCKING, readings_check_specs, to_check_result
from mta_assets.defs.turnstile.partitions import backfill_policy, weekly_partitions
from mta_assets.defs.turnstile.week import (
    DEFAULT_GZIP_LEVEL, GZ, RAW, READINGS, WeekContext, WeekFailed, WeekPlan, on_thread, process_week,
)
from mta_assets.defs.weeks import WEEK_RETRY_POLICY, WeekReport
from mta_assets.mta.calendar import require_published, weeks_before
from mta_assets.mta.stations import StationKey
from mta_assets.mta.validate import ValidationSettings
from mta_assets.storage.deadline import request_stop, stop_transfers_on_interrupt
from mta_assets.storage.http import source_down
from mta_assets.storage.staging import RunStaging

GROUP = "mta_turnstile"
READINGS_KEY = dg.AssetKey(READINGS)
CANCEL_GRACE_S = 6.0  # Dagster's Terminate should end the run within 10 s


def _lake_kind() -> str:
    # Kinds are drawn when the code location loads; the lake URL is known then.
    return "gcs" if os.environ.get("MTA_LAKE_URL", "").startswith("gs://") else "file"


class TurnstileConfig(dg.Config):
    weeks_in_flight: int = Field(
        default=2, ge=1, le=16, description="Weeks worked on at once; local disk holds about 40 MB per week in flight."
    )
    parse_slots: int = Field(
        default=1, ge=1, le=8, description="Weeks parsed at once; each parse needs about 100 MB of memory."
    )
    gzip_level: int = Field(
        default=DEFAULT_GZIP_LEVEL, ge=1, le=9,
        description="gzip (zlib-ng) level of the .csv.gz object; 5 writes about what 6 writes in 63% of the time.",
    )
    store_raw_text: bool = Field(
        default=False,
        description="Also keep the uncompressed .txt in the lake (33 MB a week); the gzip object is already "
        "the published file, byte for byte.",
    )
    max_reject_share: float = Field(default=0.001, ge=0, le=1, description="Largest share of readings lost to parse errors.")
    volume_tolerance: float = Field(
        default=0.25, ge=0, description="Warn when the row count differs more than this share from earlier weeks."
    )
    max_row_drop: float = Field(
        default=0.3, ge=0, le=1,
        description="Block a week whose row count falls more than this share below the median of earlier weeks "
        "(a file cut short that still looks whole).",
    )
    lock_wait_s: float = Field(default=300.0, ge=0, description="How long a week waits for another run committing it.")


def _spec(name: str, description: str, kinds: set[str], dataset: str, extension: str, deps=()) -> dg.AssetSpec:
    # Skippable: a run materializes only the selected assets, and a failed week none of them.
    return dg.AssetSpec(
        name,
        description=description,
        kinds=kinds,
        deps=list(deps),
        metadata=lake_metadata(dataset, extension),
        group_name=GROUP,
        owners=["team:data-engineering"],
        skippable=True,
    ).with_io_manager_key("lake_io_manager")


_specs = [
    # Its durable copy is the gzip object (docs/architecture.md "How a turnstile week flows"), which is what the IO manager loads.
    _spec(RAW, "The week's turnstile file as MTA published it, kept byte for byte in the lake's gzip object.",
          {"http", "csv"}, "csv_gz", ".csv.gz"),
    _spec(GZ, "The week's file gzip-compressed in the data lake, uploaded in chunks and verified.",
          {"gzip", _lake_kind()}, "csv_gz", ".csv.gz", deps=[RAW]),
    _spec(READINGS, "One validated row per turnstile reading for the week, both MTA layouts in one schema.",
          {"parquet", "pyarrow", _lake_kind()}, "readings", ".parquet", deps=[GZ]),
]


@dg.multi_asset(
    specs=_specs,
    check_specs=readings_check_specs,
    partitions_def=weekly_partitions,
    backfill_policy=backfill_policy(),
    can_subset=True,
    retry_policy=WEEK_RETRY_POLICY,
    code_version="2",
)
def turnstile_weeks(
    context: dg.AssetExecutionContext,
    config: TurnstileConfig,
    mta_source: MTASource,
    lake: Lake,
    station_key: StationKeySource,
):
    """Each selected week, downloaded once, validated, then committed to the lake as a whole."""
    weeks = list(context.partition_keys)
    for week in weeks:
        try:
            require_published(week)
        except ValueError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    plan = WeekPlan(assets=frozenset(selected), store_raw_text=config.store_raw_text, gzip_level=config.gzip_level)
    staging = RunStaging(context.run.run_id).open()
    runner = _RangeRunner(context, config, plan, weeks)
    ctx = WeekContext(
        source=mta_source,
        lake=lake,
        staging=staging,
        run_id=context.run.run_id,
        plan=plan,
        validation=ValidationSettings(config.max_reject_share, config.volume_tolerance, config.max_row_drop),
        earlier_row_counts=runner.earlier_row_counts,
        parse_slots=threading.Semaphore(config.parse_slots),
        station_key=_station_key_once(station_key, context.log.warning),
        lock_wait_s=config.lock_wait_s,
        log=context.log.debug,
    )
    try:
        # Dagster's interrupt reaches the main thread only; transfers in worker threads
        # check the stop request this sets, so Terminate ends a download within seconds.
        with stop_transfers_on_interrupt():
            runner.run(ctx)
    finally:
        retry_coming = runner.retryable and context.retry_number < WEEK_RETRY_POLICY.max_retries
        if not retry_coming:
            staging.close()
    yield from runner.report.finish(
        selected_keys(context),
        totals={"weeks": len(weeks), "peak_staging_bytes": staging.peak_bytes} if len(weeks) > 1 else None,
    )


def selected_keys(context: dg.AssetExecutionContext) -> list[dg.AssetKey]:
    return sorted(context.selected_asset_keys, key=lambda key: key.to_user_string())


def _start_week(week: str, ctx: WeekContext) -> Future:
    """Run one week on its own daemon thread (a terminated run does not wait at exit for a
    download in progress)."""
    return on_thread(f"mta-week-{week}", process_week, week, ctx)


def _station_key_once(source: StationKeySource, warn: Callable[[str], None]) -> Callable[[], StationKey | None]:
    """The station key, loaded at the first wide week that asks for it: the 11-column files
    name their stations, so a run of recent weeks never reads or fetches the key."""
    lock = threading.Lock()
    loaded: list[StationKey | None] = []

    def load() -> StationKey | None:
        with lock:
            if not loaded:
                key, note = source.load()
                if key is None:
                    warn(f"{note}; the 2010-2014 rows keep no station name")
                loaded.append(key)
            return loaded[0]

    return load


class _RangeRunner:
    """Runs the weeks a few at a time; each finished week goes to the step's ``WeekReport``."""

    def __init__(self, context: dg.AssetExecutionContext, config: TurnstileConfig, plan: WeekPlan, weeks: list[str]):
        self.context = context
        self.config = config
        self.plan = plan
        self.weeks = weeks
        self.report = WeekReport(context, weeks)
        self._rows_seen: dict[str, int] = {}
        self._rows_lock = threading.Lock()
        self._earlier_from_instance: dict[str, int] | None = None

    @property
    def retryable(self) -> bool:
        return bool(self.report.retryable)

    def earlier_row_counts(self, week: str) -> list[int]:
        """Row counts of up to 8 earlier weeks: from the event log, and from this run's finished weeks."""
        with self._rows_lock:
            if self._earlier_from_instance is None:
                # One query for the whole range: 8 weeks before its start through its end.
                self._earlier_from_instance = earlier_row_counts(
                    self.context.instance, self.weeks[-1], limit=8 + len(self.weeks)
                )
            known = {**self._earlier_from_instance, **self._rows_seen}
        return [known[w] for w in sorted(known) if w < week][-8:]

    def run(self, ctx: WeekContext) -> None:
        pending = iter(self.report.to_do)
        in_flight: dict[Future, str] = {}
        try:
            while True:
                while len(in_flight) < self.config.weeks_in_flight:
                    if self.report.source_failed and in_flight:
                        break  # a week's source just failed: the weeks in flight tell whether it is down
                    week = next(pending, None)
                    if week is None:
                        break
                    if self.report.held_back(week):
                        continue
                    in_flight[_start_week(week, ctx)] = week
                if not in_flight:
                    break
                # A timeout, so the main thread wakes up to run signal handlers: a SIGTERM the
                # kernel delivers to a worker thread would otherwise wait for a week to end.
                done, _ = wait(in_flight, timeout=0.25, return_when=FIRST_COMPLETED)
                for future in done:
                    self._collect(in_flight.pop(future), future)
        except BaseException as exc:
            # Terminate (SIGTERM, the UI's Terminate button): downloads stop at once (they
            # watch ``cancel``), no new stage starts, a week being committed gets a few seconds
            # to finish its commit.
            ctx.cancel.set()
            wait(in_flight, timeout=CANCEL_GRACE_S)
            if isinstance(exc, Exception):
                raise
            request_stop()  # a commit still going stops at its next chunk; the week keeps its previous objects
            for future in [future for future in in_flight if future.done() and future.exception() is None]:
                self._collect(in_flight.pop(future), future)  # committed within the grace period
            # The weeks committed before the interrupt are in the lake: recorded as such.
            self.report.record_committed(selected_keys(self.context))
            weeks = ", ".join(sorted(in_flight.values()))
            # An interrupt is not a transient error: the step's RetryPolicy must not run it again.
            raise dg.Failure(
                f"the run was interrupted ({type(exc).__name__}): week(s) {weeks or 'none'} were not committed "
                f"and keep their previous objects; {len(self.report.done)} week(s) committed before it are recorded",
                allow_retries=False,
            ) from exc

    def _collect(self, week: str, future: Future) -> None:
        try:
            result = future.result()
        except WeekFailed as failure:
            self._checks(week, failure.outcomes)
            self.report.failed(week, str(failure), retryable=not failure.permanent, source_down=source_down(failure))
            return
        except Exception as exc:  # a bug, not a week's fault: still name the week
            self.report.failed(week, f"week {week}: {type(exc).__name__}: {exc}")
            return
        with self._rows_lock:
            self._rows_seen[week] = result.rows
        self._checks(week, result.outcomes)
        metadata = {dg.AssetKey(asset): with_links(values) for asset, values in result.metadata.items()}
        self.report.committed(week, metadata, f": {result.rows:,} rows in {result.seconds:.1f} s")

    def _checks(self, week: str, outcomes) -> None:
        if READINGS_KEY in self.context.selected_asset_keys:
            self.report.checks(week, [to_check_result(outcome) for outcome in outcomes], BLOCKING)


def earlier_row_counts(instance: dg.DagsterInstance, week: str, limit: int = 8) -> dict[str, int]:
    """Row counts of up to ``limit`` weeks before ``week`` that have a table, by week."""
    counts = latest_values(instance, READINGS_KEY, weeks_before(week, limit), "dagster/row_count")
    return {key: int(value) for key, value in counts.items()}
