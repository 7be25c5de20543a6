"""The warehouse: the dbt project's models as weekly assets under ``warehouse/``, its tests as checks.

One dbt invocation per run builds the run's weeks (``BackfillPolicy.single_run``): the
weeks and their lake files go to dbt in a file of the invocation (``dbt/macros/run.sql``),
not as vars, so dbt parses only what changed; the weekly tables replace exactly those
weeks (delete+insert on ``week``), and the rest (dimensions, series, marts) is rebuilt from
the tables. Runs are serialized on DuckDB's single writer by the pool ``mta_warehouse``;
a reader holding the file makes the run wait, at most the lock deadline in total
(``storage/duckdb_file.py``).
"""

import itertools
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliInvocation, DbtCliResource, dbt_assets

from mta_assets.defs.automation import weekly_eager
from mta_assets.defs.resources import Lake
from mta_assets.defs.turnstile.partitions import weekly_partitions
from mta_assets.defs.warehouse.lake_files import local_files, source_versions, week_keys
from mta_assets.defs.warehouse.metrics import week_metrics
from mta_assets.defs.warehouse.project import (
    dbt_target, dbt_vars, keep_parse_state, prepared_project, write_run_file,
)
from mta_assets.defs.warehouse.resources import DuckDBWarehouse
from mta_assets.storage.duckdb_file import WarehouseBusy, busy_error, lock_holder, open_for_writing, while_busy

GROUP = "mta_warehouse"
POOL = "mta_warehouse"
PREFIX = "warehouse"
SYSTEM_DAILY = dg.AssetKey([PREFIX, "system_daily"])
# Lake assets a week may lack for good: MTA's official ridership starts in 2020.
OPTIONAL_UPSTREAM = dg.AssetSelection.assets("official_hourly", "official_daily", "station_complexes")
DBT_STOP_GRACE_S = 10.0  # dbt's clean stop after SIGINT, before it is killed
# Builds again, and the wait before each, when another run replaced a source of the build while dbt read it.
SOURCE_CHANGE_RETRIES = 2
SOURCE_CHANGE_WAIT_S = 5.0
# Unpartitioned: every dbt run reads them whole, so their update is no reason to rebuild every week.
WHOLE_TABLES = dg.AssetSelection.assets("official_daily", "station_complexes")
# The lake's turnstile datasets the warehouse reads (dbt sources, macros/lake_datasets.sql).
TURNSTILE_SOURCES = frozenset(dg.AssetKey(name) for name in ("turnstile_readings", "stations", "ridership_daily"))


class WarehouseTranslator(DagsterDbtTranslator):
    """Models under ``warehouse/`` (the dbt model ``ridership_daily`` is not the lake asset
    ``ridership_daily``); sources are the lake assets named in their ``meta.dagster.asset_key``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        key = super().get_asset_key(dbt_resource_props)
        return key if dbt_resource_props["resource_type"] == "source" else dg.AssetKey([PREFIX, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        return weekly_eager(OPTIONAL_UPSTREAM, ignore_updates=WHOLE_TABLES)


TRANSLATOR = WarehouseTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=prepared_project().manifest_path,
    project=prepared_project(),
    name="warehouse_models",
    dagster_dbt_translator=TRANSLATOR,
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, lake: Lake, duckdb_warehouse: DuckDBWarehouse
) -> Iterator[Any]:
    """The warehouse's tables, views and marts for the run's weeks, built and tested by dbt."""
    weeks = sorted(context.partition_keys)
    database = duckdb_warehouse.path
    # Beside the DuckDB file: a GCS lake's objects for this run, removed after it.
    database.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{database.name}.fetch-", dir=database.parent))
    held: list[dg.MaterializeResult] = []  # system_daily's, recorded once its metrics are read
    try:
        versions = source_versions(lake, weeks)  # a change after this is seen after the build
        needs_turnstile = reads_turnstile(context.assets_def, context.selected_asset_keys)
        files = local_files(lake, week_keys(lake, weeks, versions, needs_turnstile), folder)
        if not needs_turnstile and (without := [w for w in weeks if versions[("readings", w)] is None]):
            context.log.info(
                f"week(s) {', '.join(without)}: no turnstile objects in the lake; the selected models read MTA's "
                "data only and are built from it (the turnstile models follow when their week is committed)"
            )
        build = _start(context, dbt, duckdb_warehouse, weeks, files)
        try:
            # Each result is recorded as dbt reports it (the UI shows the build's progress, and
            # Dagster records while dbt works), what dbt built and tested even when another node fails.
            for result in _selected(context, build.events):
                if result.asset_key == SYSTEM_DAILY and isinstance(result, dg.MaterializeResult):
                    held.append(result)
                else:
                    yield result
        finally:
            _stop(build)
        failure = _finish(context, build.invocation, database)
        if failure is None:
            _built_from_current(context, lake, weeks, versions)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if failure is None and held:
        # Per week, so the asset's Plots tab shows the series across partitions.
        for week, values in _metrics(context, duckdb_warehouse, weeks).items():
            context.add_asset_metadata(values, asset_key=SYSTEM_DAILY, partition_key=week)
    yield from held
    if failure is not None:
        raise failure


def reads_turnstile(models: dg.AssetsDefinition, keys: Iterable[dg.AssetKey]) -> bool:
    """Whether any of these models reads a turnstile dataset, directly or through other models.

    The official-only models (MTA's hourly data by complex, its daily estimate) are requested
    by automation as soon as MTA's week is in the lake, which after the turnstile files
    ended (early 2024) is the only source a week has.
    """
    seen: set[dg.AssetKey] = set()
    pending = list(keys)
    while pending:
        key = pending.pop()
        if key in TURNSTILE_SOURCES:
            return True
        if key not in seen:
            seen.add(key)
            pending.extend(models.asset_deps.get(key, ()))
    return False


def _built_from_current(context: dg.AssetExecutionContext, lake: Lake, weeks: list[str], versions: dict) -> None:
    """Build again (the step's retry) when another run replaced a week's readings, stations,
    ridership or MTA's hourly data while dbt read them.

    Automation cannot catch it: the week's warehouse update, recorded after the other run's,
    resets the week's condition (docs/architecture.md "Automation"), and its rows would stay
    those dbt read before.
    """
    now = source_versions(lake, weeks)
    replaced = ", ".join(sorted(f"{source} {week}" for (source, week), found in now.items() if versions.get((source, week)) != found))
    if not replaced:
        return
    if context.retry_number >= SOURCE_CHANGE_RETRIES:
        raise dg.Failure(
            description=f"{replaced}: replaced by another run during each of {SOURCE_CHANGE_RETRIES + 1} builds; "
            "the warehouse holds the last build; materialize these weeks again once that run is done",
            allow_retries=False,
        )
    context.log.warning(
        f"{replaced}: replaced by another run while dbt read them; building the weeks again in "
        f"{SOURCE_CHANGE_WAIT_S:g} s (build {context.retry_number + 2} of at most {SOURCE_CHANGE_RETRIES + 1})"
    )
    # A wait, so that a run committing its weeks one after another is likely done by then.
    raise dg.RetryRequested(max_retries=SOURCE_CHANGE_RETRIES, seconds_to_wait=SOURCE_CHANGE_WAIT_S)


@dataclass
class _Started:
    """A dbt build under way: its invocation and its events, the first one already read."""

    invocation: DbtCliInvocation
    events: Iterator[Any]


def _start(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse,
    weeks: list[str], files: dict[str, list[str]],
) -> _Started:
    """Start ``dbt build`` once the file is free; again while another process holds it, within the deadline.

    dbt connects to the file for its first node: a build whose first event came has the
    file, and from then on its events are streamed; one that ended without any on DuckDB's
    lock error is started again.
    """
    database = warehouse.path
    # BigQuery reads no local file: its weeks stay a var (dbt then parses anew).
    args = ["build", *dbt_vars(database, weeks if dbt_target() != "duckdb" else None)]

    def attempt() -> _Started:
        open_for_writing(database)
        # Each invocation has a target folder of its own (DBT_TARGET_PATH), where the
        # models find the run's weeks and files (dbt/macros/run.sql).
        project = prepared_project()
        target = Path(tempfile.mkdtemp(prefix="run-", dir=project.project_dir / project.target_path))
        write_run_file(target, weeks, files)
        # The whole project every time, whatever the selection: a subset (say everything
        # downstream of turnstile_csv) would leave out the models that read only MTA's
        # official data, which the others join. Only the selected assets are recorded.
        invocation = dbt.cli(
            args, manifest=project.manifest_path,
            dagster_dbt_translator=TRANSLATOR, raise_on_error=False, target_path=target,
        )
        events = iter(invocation.stream())
        first = next(events, None)
        if first is None and not invocation.is_successful():
            held = _lock_holder(invocation, invocation.get_error())
            if held is not None:  # a reader took the file between the probe and dbt's connection
                raise WarehouseBusy(str(database), held, "dbt could not open the file")
        return _Started(invocation, itertools.chain([] if first is None else [first], events))

    try:
        return while_busy(attempt, database, warehouse.lock_deadline_s, _waits(context, warehouse))
    except Exception as error:
        if busy_error(database, error) is not None:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        raise


def _waits(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> Callable[[WarehouseBusy, float], None]:
    """Each wait for the file, in the run's log: who holds it, and for how long we waited."""

    def wait(error: WarehouseBusy, waited: float) -> None:
        context.log.info(
            f"warehouse {warehouse.path} held by {error.holder}: waiting ({waited:.1f} s of {warehouse.lock_deadline_s:g} s)"
        )

    return wait


def _metrics(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse, weeks: list[str]) -> dict[str, dict[str, float | str]]:
    """The weeks' figures for ``system_daily``, read after dbt closed the file; none when it stays held.

    Another run's dbt may take the file as soon as ours lets it go. The weeks are built and
    tested by then, so a file held past the deadline costs the figures (logged), not the run.
    """
    try:
        return week_metrics(warehouse.path, weeks, warehouse.lock_deadline_s, _waits(context, warehouse))
    except WarehouseBusy as error:
        context.log.warning(f"system_daily's per-week figures not recorded for weeks {weeks[0]}..{weeks[-1]}: {error}")
        return {}


def _stop(build: _Started) -> None:
    """Stop dbt when the step ends before it (a Terminate while Dagster records a result, an error).

    dagster-dbt forwards an interrupt to dbt only when it arrives while dagster-dbt reads
    dbt's output; one that arrives while Dagster records a yielded result closes the stream
    and leaves dbt running, holding the warehouse file and reading the run's fetched files,
    which are removed next (upstream: dagster-io/dagster#15258; its fix, #19471, catches the
    interrupt only inside dagster-dbt's reader). SIGINT is dbt's own clean stop, as
    dagster-dbt sends it. The rest of dbt's output is then read to its end: dagster-dbt's
    reader, closed instead, would raise "generator ignored GeneratorExit".
    """
    process = build.invocation.process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=DBT_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for _ in build.events:  # nothing left after a build read to its end
        pass


def _finish(context: dg.AssetExecutionContext, invocation: DbtCliInvocation, database: Path) -> dg.Failure | None:
    """After the build: its parse state kept and its folder removed, or the failure naming dbt's errors."""
    if invocation.is_successful():
        keep_parse_state(invocation.target_path)
        # Each invocation has a target folder of its own; a failed one's stays, to read.
        shutil.rmtree(invocation.target_path, ignore_errors=True)
        return None
    return dg.Failure(
        description=f"dbt build of weeks {context.partition_keys[0]}..{context.partition_keys[-1]} on "
        f"{database} failed: {invocation.get_error()}",
        metadata={"errors": dg.MetadataValue.json(_messages(invocation)[:20])},
    )


def _selected(context: dg.AssetExecutionContext, events: Iterable[Any]) -> Iterator[Any]:
    """dbt's events as results of the selected assets and checks."""
    for event in events:
        if isinstance(event, dg.AssetMaterialization) and event.asset_key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=event.asset_key, metadata=event.metadata)
        elif isinstance(event, dg.AssetCheckEvaluation) and (
            dg.AssetCheckKey(event.asset_key, event.check_name) in context.selected_asset_check_keys
        ):
            yield dg.AssetCheckResult(
                asset_key=event.asset_key, check_name=event.check_name, passed=event.passed,
                metadata=event.metadata, severity=event.severity,
            )


def _messages(invocation: DbtCliInvocation) -> list[str]:
    """The failure messages of dbt's nodes (run_results.json), when dbt got that far."""
    if not invocation.target_path.joinpath("run_results.json").exists():
        return []
    results = invocation.get_artifact("run_results.json").get("results", [])
    return [result["message"] for result in results if result.get("status") in ("error", "fail") and result.get("message")]


def _lock_holder(invocation: DbtCliInvocation, error: Exception | None) -> str | None:
    """Who held the file, when dbt failed on DuckDB's lock (while connecting, or in a node)."""
    log = invocation.target_path / "dbt.log"
    texts = [str(error), *_messages(invocation), log.read_text(errors="replace")[-20_000:] if log.exists() else ""]
    return next((holder for text in texts if (holder := lock_holder(text))), None)


warehouse_assets = [warehouse_models]
