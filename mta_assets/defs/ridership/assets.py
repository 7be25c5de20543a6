"""Ridership assets: the station dimension, and entries and exits per station and day.

One step, ``ridership_weeks``, produces both assets (``can_subset``: either can be
selected alone). Its input is the weeks' readings tables, loaded through the lake IO
manager (each week and the one before it: a week's first interval starts at the previous
week's last reading). Each week is computed, checked and stored in week order; its check
results and materialization go to its own partition through ``WeekReport``, so a failed
week stops only itself. The warehouse is built from these weeks by dbt
(``defs/warehouse/``); both assets follow their upstream weeks by automation
(``defs/automation.py``), so a week rebuilt out of order brings the next week's ridership
up to date.
"""

import datetime as dt
import time
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mta_assets.defs.automation import weekly_eager
from mta_assets.defs.history import latest_values
from mta_assets.defs.io_manager import WeekFiles, lake_metadata, store_week
from mta_assets.defs.official.daily import stored_daily_totals
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
from mta_assets.defs.weeks import WeekReport
from mta_assets.mta.calendar import shift_week, weeks_before
from mta_assets.storage.errors import is_transient

GROUP = "mta_ridership"
STATIONS = dg.AssetKey("stations")
READINGS = dg.AssetKey("turnstile_readings")

# Each week and the week before it (which may not exist, or not be in the lake).
PREVIOUS_AND_CURRENT_WEEK = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
)
# What the step reads of a week's readings table. Strings as dictionaries: the rules and
# the station dimension only compare them, and decoding costs more than the rules.
STATION_COLUMNS = ["unit", "ca", "station", "linename", "division"]
READ_COLUMNS = ["ca", "unit", "scp", "station", "linename", "division", "reading_time", "desc", "entries", "exits"]
DICTIONARY_COLUMNS = ["ca", "unit", "scp", "station", "linename", "division", "desc"]


class RidershipConfig(dg.Config):
    max_entries_change: float = Field(
        default=0.5, ge=0, description="Block a week whose mean daily entries differ more than this share from earlier weeks."
    )
    max_unusable_share: float = Field(
        default=0.05, ge=0, le=1, description="Warn when more than this share of intervals is capped or dropped."
    )


def _spec(key: dg.AssetKey, description: str, deps: list, dataset: str, condition) -> dg.AssetSpec:
    # Skippable: a run materializes only the selected assets, and a failed week none of them.
    return dg.AssetSpec(
        key,
        description=description,
        kinds={"parquet", "pyarrow"},
        deps=deps,
        metadata=lake_metadata(dataset, ".parquet"),
        group_name=GROUP,
        owners=["team:data-engineering"],
        skippable=True,
        automation_condition=condition,
    ).with_io_manager_key("lake_io_manager")


_specs = [
    _spec(STATIONS, "Each week's turnstiles (unit, C/A) with their station, lines and division, one name across both eras.",
          [READINGS], "stations", weekly_eager()),
    _spec(RIDERSHIP, "Entries and exits per station and day, from each turnstile's counter differences.",
          [dg.AssetDep(READINGS, partition_mapping=PREVIOUS_AND_CURRENT_WEEK), STATIONS], "ridership",
          # A missing previous week only costs the week its first intervals (docs/data.md "Ridership").
          weekly_eager(ignore_missing=dg.AssetSelection.assets(READINGS))),
]


def earlier_mean_entries(instance: dg.DagsterInstance, week: str, limit: int = 8) -> dict[str, float]:
    """``mean_daily_entries`` of up to ``limit`` materialized weeks of ``ridership_daily`` before ``week``."""
    return latest_values(instance, RIDERSHIP, weeks_before(week, limit), "mean_daily_entries")


@dg.multi_asset(
    specs=_specs,
    check_specs=ridership_check_specs,
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    ins={"turnstile_readings": dg.AssetIn(READINGS)},
    code_version="3",
)
def ridership_weeks(
    context: dg.AssetExecutionContext,
    config: RidershipConfig,
    lake: Lake,
    station_key: StationKeySource,
    turnstile_readings: WeekFiles,
):
    """Each selected week's stations and ridership, from its readings table and the week before's."""
    weeks = list(context.partition_keys)
    selected = set(context.selected_asset_keys)
    key, key_note = station_key.load()
    if key is None and STATIONS in selected:
        context.log.warning(key_note)
    earlier = earlier_mean_entries(context.instance, weeks[-1], limit=8 + len(weeks))
    # MTA's own daily estimate, when the official ridership is in the lake: each week's chart
    # and metadata say how the turnstile counts compare with it (issue 20).
    official = stored_daily_totals(lake) if RIDERSHIP in selected else {}
    keys = [spec.key for spec in _specs if spec.key in selected]
    report = WeekReport(context, weeks)
    tables = _Tables(turnstile_readings)
    read_from: dict[str, dict[str, str | None]] = {}  # week -> the readings objects it was computed from
    checks: dict[str, list[dg.AssetCheckResult]] = {}  # logged once the weeks are settled, so once each

    def run(week: str) -> None:
        started = time.perf_counter()
        checks.pop(week, None)
        upstream = [week, shift_week(week, -1)] if RIDERSHIP in selected else [week]
        read_from[week] = {w: turnstile_readings.key(w) for w in upstream}
        try:
            metadata, results = _week(week, selected, tables, lake, key, key_note, earlier, config, official)
        except Exception as exc:  # reported per week; the other weeks go on
            report.failed(week, str(exc), retryable=is_transient(exc))
            return
        finally:
            # A finished week's upstream files can go; the next week needs only its own and this one.
            turnstile_readings.release(shift_week(week, -1))
        checks[week] = results
        if blocked := blocking_failures(results):
            report.failed(week, f"blocking checks failed: {', '.join(blocked)}; its last good objects are kept")
            return
        if RIDERSHIP in metadata:
            earlier[week] = float(metadata[RIDERSHIP]["mean_daily_entries"])  # later weeks compare with this one
        report.committed(week, metadata, f" in {time.perf_counter() - started:.1f} s")

    try:
        with report.recording_if_interrupted(keys):
            for week in report.to_do:
                run(week)
            # Another run may have committed a week's readings, or the week before's, after
            # this step read them (two weeks of a sensor's catch-up at once): those weeks are
            # computed again before anything is recorded (docs/architecture.md "Automation").
            for attempt in range(UPSTREAM_RECHECKS + 1):
                stale, replaced = replaced_inputs(turnstile_readings, read_from, [w for w in report.done if w in read_from])
                if not stale or attempt == UPSTREAM_RECHECKS:
                    break
                tables.forget(replaced)
                for week in stale:
                    context.log.info(
                        f"week {week}: its readings or the week before's were committed anew by another run "
                        "while this step ran; computing it again from them"
                    )
                    report.done.pop(week)
                    run(week)
            for week in stale:
                report.done.pop(week)
                checks.pop(week, None)
                report.failed(
                    week, f"its readings kept being replaced by another run ({UPSTREAM_RECHECKS + 1} computations); "
                    "it follows by automation once that run is recorded, or materialize it again",
                )
    finally:
        for week, results in checks.items():
            report.checks(week, results, BLOCKING)
    yield from report.finish(keys)


# Computations of a week again, at most, when another run keeps replacing what it reads.
UPSTREAM_RECHECKS = 2


def replaced_inputs(
    files: WeekFiles, read_from: dict[str, dict[str, str | None]], weeks: list[str]
) -> tuple[list[str], set[str]]:
    """(the weeks computed from a readings object that is no longer the current one, the
    upstream weeks committed anew), after following the manifests again."""
    replaced = files.refresh(sorted({w for week in weeks for w in read_from[week]}))
    stale = [week for week in weeks if any(files.key(w) != used for w, used in read_from[week].items())]
    return stale, replaced


class _Tables:
    """The weeks' readings tables as the step reads them. The last one read is kept: the
    next week reads it again as its week before."""

    def __init__(self, files: WeekFiles):
        self._files = files
        self._last: tuple[str | None, Any] = (None, None)

    def __contains__(self, week: str) -> bool:
        return week in self._files

    def __getitem__(self, week: str):
        import pyarrow.parquet as pq

        if self._last[0] != week:
            self._last = (None, None)  # the old table goes before the new one is read
            # One dictionary per column for the week: each row group of the file has its own.
            table = self._files.read(
                week, lambda path: pq.read_table(path, columns=READ_COLUMNS, read_dictionary=DICTIONARY_COLUMNS)
            )
            self._last = (week, table.unify_dictionaries())
        return self._last[1]

    def forget(self, weeks: set[str]) -> None:
        """Drop the kept table if it is one of these weeks (committed anew since it was read)."""
        if self._last[0] in weeks:
            self._last = (None, None)


def _week(week, selected, readings: _Tables, lake: Lake, key, key_note: str, earlier: dict[str, float], config, official):
    """One week: stations and ridership computed, checked, and (if they pass) stored. Returns (metadata, checks)."""
    import pyarrow.compute as pc

    from mta_assets.defs.ridership.report import (
        day_chart_markdown,
        day_table_markdown,
        top_stations_markdown,
        turnstile_over_official,
    )
    from mta_assets.mta.ridership import daily, intervals, system_by_day
    from mta_assets.mta.stations import station_dimension

    started = time.perf_counter()
    if week not in readings:
        raise ValueError(f"week {week}: no turnstile_readings table in the lake; materialize turnstile_readings first")
    previous_week = shift_week(week, -1)
    # The week before first: it is the table the previous week left in hand.
    previous = readings[previous_week] if RIDERSHIP in selected and previous_week in readings else None
    current = readings[week]
    metadata: dict[dg.AssetKey, dict[str, Any]] = {}
    if STATIONS in selected:
        stations = station_dimension(current.select(STATION_COLUMNS), key)
        stations = stations.append_column("week", _week_column(week, stations.num_rows))
    else:
        stations = _stored_stations(lake, week)
    if RIDERSHIP not in selected:
        # Stations alone: every check is on ridership_daily and none runs, so nothing blocks the week.
        metadata[STATIONS] = _store_stations(lake, week, stations, key_note)
        return metadata, []
    rows = daily(intervals(current, previous), stations, dt.date.fromisoformat(week))
    del current, previous
    by_day = system_by_day(rows)
    mean_entries = mean_daily_entries(by_day, week)
    recent = [earlier[w] for w in sorted(earlier) if w < week][-8:]
    names = sorted({str(source) for source in stations["source"].to_pylist()})
    results = [
        check_plausible(mean_entries, recent, config.max_entries_change),
        check_usable(rows, config.max_unusable_share),
        check_named(stations, f"{key_note}; names from: {', '.join(names)}"),
    ]
    if blocking_failures(results):
        # Nothing of the week is stored, stations included: the warehouse reads a week's
        # stations beside its ridership, so both keep their last good objects together.
        return metadata, results
    if STATIONS in selected:
        metadata[STATIONS] = _store_stations(lake, week, stations, key_note)
    used, dropped = (int(pc.sum(rows[c]).as_py() or 0) for c in ("intervals_used", "intervals_dropped"))
    capped = int(pc.sum(rows["intervals_capped"]).as_py() or 0)
    stored = store_week(lake.client, "ridership", week, rows)
    metadata[RIDERSHIP] = {
        "dagster/row_count": dg.MetadataValue.int(rows.num_rows),
        "dagster/column_schema": dg.MetadataValue.table_schema(_schema(rows)),
        "previous_week_used": previous_week in readings,
        # Numbers, so the asset's Plots tab draws them across weeks.
        "mean_daily_entries": round(mean_entries, 1),
        "dropped_share": round(dropped / (used + capped + dropped), 5) if used + capped + dropped else 0.0,
        "system_by_day": dg.MetadataValue.md(day_table_markdown(by_day)),
        "chart": dg.MetadataValue.md(day_chart_markdown(by_day, week, official)),
        "top_stations": dg.MetadataValue.md(top_stations_markdown(rows)),
        "compute_seconds": round(time.perf_counter() - started, 3),
        **with_links(stored.metadata()),
    }
    ratio = turnstile_over_official(by_day, official, week)
    if ratio is not None:  # a number, so the Plots tab draws it across weeks
        metadata[RIDERSHIP]["turnstile_over_official"] = round(ratio, 4)
    return metadata, results


def _store_stations(lake: Lake, week: str, stations, key_note: str) -> dict[str, Any]:
    """Store the week's station dimension; returns its materialization metadata."""
    sources = stations.group_by(["source"]).aggregate([([], "count_all")]).to_pylist()
    stored = store_week(lake.client, "stations", week, stations)
    return {
        "dagster/row_count": dg.MetadataValue.int(stations.num_rows),
        "pairs_by_source": dg.MetadataValue.json({str(row["source"]): row["count_all"] for row in sources}),
        "station_key": key_note,
        **with_links(stored.metadata()),
    }


def _stored_stations(lake: Lake, week: str):
    """The week's station dimension from the lake, when only ridership is selected."""
    import tempfile

    import pyarrow.parquet as pq

    key = lake.key_for("stations", week, ".parquet")
    if lake.stat(key) is None:
        raise ValueError(f"week {week}: no stations table in the lake ({lake.uri_for(key)}), needed by ridership_daily")
    with tempfile.TemporaryDirectory(prefix="mta-stations-") as folder:
        return pq.read_table(lake.fetch(key, Path(folder)))


def _week_column(week: str, rows: int):
    import pyarrow as pa

    return pa.repeat(pa.scalar(dt.date.fromisoformat(week), pa.date32()), rows)


def _schema(table) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in table.schema])


ridership_assets = [ridership_weeks]
