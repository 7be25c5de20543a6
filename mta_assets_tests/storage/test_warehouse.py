"""The DuckDB warehouse: idempotent weekly replace, concurrent writers, the readings view, the BigQuery DDL."""

import datetime as dt
import multiprocessing
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mta_assets.mta.parse import arrow_schema
from mta_assets.storage.warehouse import WarehouseBusy, bigquery_ddl, load_week, main, plain_connect

WEEKS = ["2024-01-06", "2024-01-13"]


def week_files(folder: Path, week: str, scale: int = 1) -> dict[str, Path]:
    """Small Parquet files shaped like the lake's ridership, stations and readings of one week."""
    start = dt.date.fromisoformat(week)
    folder.mkdir(parents=True, exist_ok=True)
    ridership = pa.table(
        {
            "week": [start] * 3,
            "date": [start - dt.timedelta(days=1), start, start + dt.timedelta(days=1)],
            "unit": ["R051"] * 3, "station": ["59 ST"] * 3, "linename": ["NQR456W"] * 3, "division": ["BMT"] * 3,
            "entries": [10 * scale, 1000 * scale, 900 * scale], "exits": [5, 800, 700],
            "intervals_used": [1, 6, 6], "intervals_capped": [0, 0, 1], "intervals_dropped": [0, 1, 0],
            "turnstiles": [1, 1, 1],
        }
    )
    stations = pa.table(
        {
            "unit": ["R051"], "ca": ["A002"], "station": ["LEXINGTON AVE"], "linename": ["456NQR"],
            "division": ["BMT"], "station_in_file": ["59 ST"], "source": ["key"], "week": [start],
        }
    )
    readings = pa.Table.from_pylist(
        [
            {
                "ca": "A002", "unit": "R051", "scp": "02-00-00", "station": "59 ST", "linename": "NQR456W",
                "division": "BMT", "reading_time": dt.datetime.combine(start, dt.time(hour)), "desc": "REGULAR",
                "entries": 100 + hour, "exits": 50 + hour, "week": start, "source_file": "turnstile_x.txt",
            }
            for hour in (0, 4, 8)
        ],
        schema=arrow_schema(),
    )
    files = {}
    for table, data in (("ridership_daily_parts", ridership), ("station_weeks", stations), ("readings", readings)):
        path = folder / f"{table}-{week}.parquet"
        pq.write_table(data, path)
        files[table] = path
    return files


def snapshot(database: Path) -> dict[str, list]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return {
            name: connection.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
            for name in ("readings", "ridership_daily_parts", "ridership_daily", "station_weeks", "stations")
        }


def test_loading_a_week_twice_leaves_the_warehouse_unchanged(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    connect = plain_connect(database)
    first = load_week(connect, WEEKS[0], week_files(tmp_path / "a", WEEKS[0]))
    assert first.rows == {"ridership_daily_parts": 3, "station_weeks": 1, "readings": 3}
    once = snapshot(database)
    load_week(connect, WEEKS[0], week_files(tmp_path / "a", WEEKS[0]))
    assert snapshot(database) == once

    # A changed week replaces its rows, and only its rows.
    load_week(connect, WEEKS[1], week_files(tmp_path / "b", WEEKS[1]))
    load_week(connect, WEEKS[0], week_files(tmp_path / "a2", WEEKS[0], scale=2))
    after = snapshot(database)
    assert len(after["ridership_daily_parts"]) == 6
    entries = {(row[0], row[1]): row[6] for row in after["ridership_daily_parts"]}
    assert entries[(dt.date(2024, 1, 6), dt.date(2024, 1, 6))] == 2000
    assert entries[(dt.date(2024, 1, 13), dt.date(2024, 1, 13))] == 1000


def test_ridership_daily_sums_a_day_that_spans_two_weeks_files(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    for week in WEEKS:
        load_week(plain_connect(database), week, week_files(tmp_path / week, week))
    with duckdb.connect(str(database), read_only=True) as connection:
        # 2024-01-12 is the last day of week 2024-01-06 and the partial first day of week 2024-01-13.
        rows = connection.execute("SELECT date, entries FROM ridership_daily ORDER BY date").fetchall()
        stations = connection.execute("SELECT unit, ca, station, first_week, last_week FROM stations").fetchall()
    assert rows == [
        (dt.date(2024, 1, 5), 10), (dt.date(2024, 1, 6), 1000), (dt.date(2024, 1, 7), 900),
        (dt.date(2024, 1, 12), 10), (dt.date(2024, 1, 13), 1000), (dt.date(2024, 1, 14), 900),
    ]
    assert stations == [("R051", "A002", "LEXINGTON AVE", dt.date(2024, 1, 6), dt.date(2024, 1, 13))]


def test_readings_can_be_a_view_over_the_lakes_files(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    lake = tmp_path / "lake" / "readings"
    for week in WEEKS:
        files = week_files(tmp_path / week, week)
        (lake / week[:4]).mkdir(parents=True, exist_ok=True)
        files.pop("readings").rename(lake / week[:4] / f"{week}.parquet")
        load_week(plain_connect(database), week, files, readings_glob=str(lake / "*" / "*.parquet"))
    with duckdb.connect(str(database), read_only=True) as connection:
        kind = connection.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'readings'")
        assert kind.fetchone() == ("VIEW",)
        assert connection.execute("SELECT count(*), count(DISTINCT week) FROM readings").fetchone() == (6, 2)


def _load_in_child(database: str, folder: str, week: str, events) -> None:
    reported = []

    def busy(attempt: int, error: Exception) -> None:
        if not reported:
            reported.append(attempt)
            events.put(("busy", week, str(error)))

    loaded = load_week(plain_connect(database), week, week_files(Path(folder), week), deadline_s=120, on_busy=busy)
    events.put(("loaded", week, loaded.attempts))


def test_two_processes_loading_different_weeks_at_once_both_land(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    load_week(plain_connect(database), WEEKS[0], week_files(tmp_path / "seed", WEEKS[0]))  # the file exists
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    # This process holds the file (DuckDB's lock is per process) until both children have
    # found it busy, so both must wait and retry: no sleeps decide the order.
    holder = duckdb.connect(str(database))
    children = [
        context.Process(target=_load_in_child, args=(str(database), str(tmp_path / week), week, events))
        for week in WEEKS
    ]
    try:
        for child in children:
            child.start()
        busy = [events.get(timeout=120) for _ in children]
        assert sorted(event[:2] for event in busy) == [("busy", week) for week in WEEKS]
        assert all("lock" in event[2].lower() for event in busy)
    finally:
        holder.close()
    loaded = sorted(events.get(timeout=120) for _ in children)
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    assert [event[:2] for event in loaded] == [("loaded", week) for week in WEEKS]
    assert all(event[2] > 1 for event in loaded)
    weeks = {row[0] for row in snapshot(database)["ridership_daily_parts"]}
    assert weeks == {dt.date.fromisoformat(week) for week in WEEKS}


def test_two_threads_loading_different_weeks_at_once_both_land(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    files = {week: week_files(tmp_path / week, week) for week in WEEKS}
    start = threading.Barrier(len(WEEKS))
    errors: list[Exception] = []

    def load(week: str) -> None:
        start.wait()
        try:
            load_week(plain_connect(database), week, files[week], deadline_s=120)
        except Exception as exc:  # collected: an exception in a thread would not fail the test
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(week,)) for week in WEEKS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    weeks = {row[0] for row in snapshot(database)["ridership_daily_parts"]}
    assert weeks == {dt.date.fromisoformat(week) for week in WEEKS}


def test_a_warehouse_held_past_the_deadline_fails_naming_week_file_and_cause(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    load_week(plain_connect(database), WEEKS[0], week_files(tmp_path / "seed", WEEKS[0]))
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(database), ready, release))
    holder.start()
    try:
        assert ready.wait(timeout=120)
        with pytest.raises(WarehouseBusy, match=rf"week {WEEKS[1]}: warehouse {database} stayed busy .*lock"):
            load_week(plain_connect(database), WEEKS[1], week_files(tmp_path / "b", WEEKS[1]), deadline_s=0.5,
                      database=str(database))
    finally:
        release.set()
        holder.join(timeout=120)


def _hold(database: str, ready, release) -> None:
    with duckdb.connect(database):
        ready.set()
        release.wait(timeout=120)


def test_an_unknown_table_is_refused():
    with pytest.raises(ValueError, match="week 2024-01-06: no warehouse table \\['nope'\\]"):
        load_week(plain_connect("unused.duckdb"), "2024-01-06", {"nope": Path("x.parquet")})


def test_bigquery_ddl_exposes_the_lakes_parquet_as_external_tables(capsys):
    ddl = bigquery_ddl("gs://mta-lake/prod/", "my-project.mta")
    for table, dataset in (("readings", "readings"), ("ridership_daily_parts", "ridership"), ("station_weeks", "stations")):
        assert (
            f"CREATE OR REPLACE EXTERNAL TABLE `my-project.mta.{table}`\n"
            f"OPTIONS (format = 'PARQUET', uris = ['gs://mta-lake/prod/turnstile/{dataset}/*.parquet']);"
        ) in ddl
    assert "CREATE OR REPLACE VIEW `my-project.mta.ridership_daily` AS" in ddl
    assert "CREATE OR REPLACE VIEW `my-project.mta.stations` AS" in ddl
    main(["bigquery-ddl", "--lake", "gs://mta-lake/prod", "--dataset", "my-project.mta"])
    assert capsys.readouterr().out == ddl
    with pytest.raises(ValueError, match="must be gs://BUCKET"):
        bigquery_ddl("data/lake", "p.d")
