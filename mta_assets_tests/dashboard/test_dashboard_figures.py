"""The dashboard's figures over a warehouse built by dbt from two real weeks: partial days apart.

Two weeks alone, 2024-01-27 and 2024-02-03: the first Saturday lacks the week before it and
the last Friday ends in the week after, so both are partial (system_daily's
``turnstile_complete``, ridership_daily's ``complete``). The figures are built as the page
builds them, from the warehouse's own rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from dashboard.app import _series_figure, _system_figure
from dashboard.data import Warehouse

WEEKS = ["2024-01-27", "2024-02-03"]
PARTIAL_DAYS = [dt.date(2024, 1, 27), dt.date(2024, 2, 9)]
STATION = "34 ST-HERALD SQ"
PARTIAL_DAY = "partial day (file boundary or missing week)"  # the legend's words
PARTIAL = f"turnstile entries, {PARTIAL_DAY}"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    from mta_assets_tests.warehouse_lake import built_warehouse

    return built_warehouse(tmp_path_factory.mktemp("dashboard-figures"), WEEKS)


def by_name(figure) -> dict[str, dict[dt.date, float | None]]:
    return {trace.name: dict(zip(trace.x, trace.y)) for trace in figure.data}


def query(database: Path, sql: str, parameters: list | None = None) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql, parameters or []).fetchall()


def test_the_system_chart_draws_partial_days_apart_from_the_whole_days_line(warehouse):
    figure = _system_figure(Warehouse(warehouse).system())
    traces = by_name(figure)
    assert list(traces) == ["turnstile entries", PARTIAL, "MTA's daily estimate"]
    rows = query(warehouse, "select date, entries_turnstile, turnstile_complete from system_daily where entries_turnstile is not null")
    assert sorted(day for day, _, complete in rows if not complete) == PARTIAL_DAYS
    # The line: each whole day's entries, and a gap (no point) on each partial day.
    assert {day: entries for day, entries in traces["turnstile entries"].items() if entries is not None} == {
        day: entries for day, entries, complete in rows if complete
    }
    assert all(traces["turnstile entries"][day] is None for day in PARTIAL_DAYS)
    # The partial days: their own labelled points, with their counts, said so in the hover.
    assert traces[PARTIAL] == {day: entries for day, entries, complete in rows if not complete}
    (partial,) = [trace for trace in figure.data if trace.name == PARTIAL]
    assert partial.mode == "markers" and "partial day" in partial.hovertemplate


def test_the_station_and_complex_charts_draw_partial_days_as_their_own_bars(warehouse):
    data = Warehouse(warehouse)
    # The busiest of the station's rows (one per unit and lines), as a user would pick it.
    ((station_id,),) = query(warehouse, "select station_id from ridership_daily where station = ? group by station_id "
                             "order by sum(entries) desc limit 1", [STATION])
    assert station_id in {row["station_id"] for row in data.stations()}
    station = by_name(_series_figure(data, "station", station_id))
    assert list(station) == ["entries", f"entries, {PARTIAL_DAY}", "exits", f"exits, {PARTIAL_DAY}"]
    rows = query(warehouse, "select date, entries, exits, complete from ridership_daily where station_id = ?", [station_id])
    assert station["entries"] == {day: entries for day, entries, _, complete in rows if complete}
    assert station["exits"] == {day: exits for day, _, exits, complete in rows if complete}
    assert station[f"entries, {PARTIAL_DAY}"] == {day: entries for day, entries, _, complete in rows if not complete}
    assert sorted(station[f"exits, {PARTIAL_DAY}"]) == PARTIAL_DAYS

    (complex_id,) = query(warehouse, "select complex_id from dim_station where station_id = ?", [station_id])[0]
    complex_ = _series_figure(data, "complex", complex_id)
    traces = by_name(complex_)
    assert list(traces) == ["turnstile entries", f"turnstile entries, {PARTIAL_DAY}", "MTA hourly, summed"]
    assert sorted(traces[f"turnstile entries, {PARTIAL_DAY}"]) == PARTIAL_DAYS
    assert not set(PARTIAL_DAYS) & set(traces["turnstile entries"])
    whole = query(warehouse, "select date, entries_turnstile from ridership_complex_daily c where complex_id = ? "
                  "and entries_turnstile is not null and date not in (select date from turnstile_days where not complete)", [complex_id])
    assert traces["turnstile entries"] == dict(whole)
    for trace in complex_.data:
        if trace.name.endswith(PARTIAL_DAY):
            assert trace.marker.pattern.shape == "/" and "partial day" in trace.hovertemplate
