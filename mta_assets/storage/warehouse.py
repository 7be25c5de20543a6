"""The DuckDB warehouse (one embedded file) and the BigQuery DDL for the same tables over the lake.

Tables, each replaced one week at a time inside one transaction, so loading a week
twice leaves the warehouse as it was:

* ``ridership_daily_parts``: each week's ridership file as written to the lake;
* ``station_weeks``: each week's station dimension.

Views: ``ridership_daily`` (one row per station and day: a day at a week boundary has
parts in two weeks' files) and ``stations`` (one row per (unit, ca), its latest name).

``readings`` is a view over Parquet files, never a table: loading a week into a table
took 0.4 s and 9 MB of a 1.4 MB Parquet file (README "Warehouse (DuckDB) and
BigQuery" has the measurement). The files are the lake's own when the lake is a local
folder; from a GCS lake, which DuckDB could only read through its httpfs extension
(downloaded at first use) and HMAC keys, each week's file is kept beside the database
(``readings_folder``), replaced atomically like the lake's object.

DuckDB allows one writing process per file. Loads hold the file only for their own
transaction and retry, until a deadline, when another process holds the lock or
another transaction in this process conflicts; Dagster's concurrency pool in front of
the load asset keeps runs from even trying at once.

Run ``python -m mta_assets.storage.warehouse bigquery-ddl --lake gs://BUCKET/PREFIX
--dataset PROJECT.DATASET`` to print the BigQuery DDL.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_LOCK_DEADLINE_S = 120.0

_READINGS_TABLE = """
CREATE TABLE IF NOT EXISTS readings (
    ca VARCHAR NOT NULL, unit VARCHAR NOT NULL, scp VARCHAR NOT NULL,
    station VARCHAR, linename VARCHAR, division VARCHAR,
    reading_time TIMESTAMP NOT NULL, "desc" VARCHAR NOT NULL,
    entries BIGINT NOT NULL, exits BIGINT NOT NULL,
    week DATE NOT NULL, source_file VARCHAR NOT NULL
);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ridership_daily_parts (
    week DATE NOT NULL, date DATE NOT NULL, unit VARCHAR NOT NULL,
    station VARCHAR, linename VARCHAR, division VARCHAR,
    entries BIGINT NOT NULL, exits BIGINT NOT NULL,
    intervals_used BIGINT NOT NULL, intervals_capped BIGINT NOT NULL, intervals_dropped BIGINT NOT NULL,
    turnstiles BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS station_weeks (
    week DATE NOT NULL, unit VARCHAR NOT NULL, ca VARCHAR NOT NULL,
    station VARCHAR, linename VARCHAR, division VARCHAR, station_in_file VARCHAR, source VARCHAR
);
CREATE OR REPLACE VIEW ridership_daily AS
SELECT date, unit, station, linename, division,
       sum(entries) AS entries, sum(exits) AS exits,
       sum(intervals_used) AS intervals_used, sum(intervals_capped) AS intervals_capped,
       sum(intervals_dropped) AS intervals_dropped, max(turnstiles) AS turnstiles
FROM ridership_daily_parts
GROUP BY ALL;
CREATE OR REPLACE VIEW stations AS
SELECT unit, ca,
       arg_max(station, week) AS station, arg_max(linename, week) AS linename,
       arg_max(division, week) AS division, arg_max(station_in_file, week) AS station_in_file,
       arg_max(source, week) AS source, min(week) AS first_week, max(week) AS last_week
FROM station_weeks
GROUP BY unit, ca;
"""

# The lake dataset each table is loaded from (``Lake.key_for(dataset, week, ".parquet")``).
TABLE_DATASETS = {"readings": "readings", "ridership_daily_parts": "ridership", "station_weeks": "stations"}


class WarehouseBusy(RuntimeError):
    """The warehouse stayed locked by another writer until the deadline."""


@dataclasses.dataclass(frozen=True)
class LoadedWeek:
    week: str
    rows: dict[str, int]  # table -> rows of the week after the load
    seconds: float
    attempts: int


Connect = Callable[[], contextlib.AbstractContextManager[Any]]


def plain_connect(database: str | Path) -> Connect:
    """A ``Connect`` that opens the DuckDB file directly (tests, scripts)."""

    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        import duckdb

        Path(database).parent.mkdir(parents=True, exist_ok=True)
        connection = duckdb.connect(str(database))
        try:
            yield connection
        finally:
            connection.close()

    return connect


def readings_folder(database: str | Path) -> Path | None:
    """Where the readings files of a GCS lake are kept for the view: ``warehouse.readings/``
    beside ``warehouse.duckdb``; None for an in-memory database (its readings are a table)."""
    if str(database) == ":memory:":
        return None
    path = Path(database).expanduser()
    return path.with_name(path.stem + ".readings")


def keep_readings_file(source: Path, folder: Path, year: str, name: str) -> str:
    """Move a fetched week's readings file to ``folder/year/name`` atomically; return the view's glob.

    The temporary name does not end in ``.parquet``, so a concurrent query through the view
    never reads a half-written file, and the same week kept twice leaves the same file.
    """
    target = folder / year / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        shutil.move(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return str(folder / "*" / "*.parquet")


def _retryable(exc: Exception) -> bool:
    import duckdb

    # Another process holds the file lock (IOException "Could not set lock"), or another
    # transaction of this process changed the same table (TransactionException "Conflict").
    if isinstance(exc, duckdb.TransactionException):
        return True
    if isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower():
        return True
    return "conflict" in str(exc).lower()


def load_week(
    connect: Connect,
    week: str,
    files: dict[str, Path],
    deadline_s: float = DEFAULT_LOCK_DEADLINE_S,
    database: str = "",
    readings_glob: str | None = None,
    on_busy: Callable[[int, Exception], None] | None = None,
) -> LoadedWeek:
    """Replace ``week`` in each table of ``files`` (table -> local Parquet file) in one transaction.

    With ``readings_glob`` (the local lake's readings files), ``readings`` is a view over
    them instead of a table and ``files`` should not name it.

    Retries while the file is locked by another process or a concurrent transaction
    conflicts, until ``deadline_s``; then raises ``WarehouseBusy`` naming the week, the
    database and the last cause. ``on_busy(attempt, error)`` hears about each wait.
    """
    unknown = sorted(set(files) - set(TABLE_DATASETS))
    if unknown:
        raise ValueError(f"week {week}: no warehouse table {unknown}; tables are {sorted(TABLE_DATASETS)}")
    started = time.monotonic()
    attempts = 0
    delay = 0.05
    while True:
        attempts += 1
        try:
            with connect() as connection:
                rows = _replace_week(connection, week, files, readings_glob)
            return LoadedWeek(week=week, rows=rows, seconds=time.monotonic() - started, attempts=attempts)
        except Exception as exc:
            if not _retryable(exc):
                raise
            waited = time.monotonic() - started
            if waited + delay > deadline_s:
                raise WarehouseBusy(
                    f"week {week}: warehouse {database or '(duckdb)'} stayed busy for {waited:.0f} s "
                    f"({attempts} attempts; last: {str(exc).splitlines()[0]})"
                ) from exc
            if on_busy is not None:
                on_busy(attempts, exc)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _replace_week(connection, week: str, files: dict[str, Path], readings_glob: str | None) -> dict[str, int]:
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.execute(_SCHEMA)
        readings_kind = connection.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = 'readings'"
        ).fetchone()
        if readings_glob is not None:
            if readings_kind and readings_kind[0] == "BASE TABLE":
                connection.execute("DROP TABLE readings")  # the lake moved from GCS to a folder
            quoted = readings_glob.replace("'", "''")
            connection.execute(f"CREATE OR REPLACE VIEW readings AS SELECT * FROM read_parquet('{quoted}')")
        else:
            if readings_kind and readings_kind[0] == "VIEW":
                connection.execute("DROP VIEW readings")
            connection.execute(_READINGS_TABLE)
        rows = {}
        for table, path in files.items():
            connection.execute(f"DELETE FROM {table} WHERE week = CAST(? AS DATE)", [week])
            # BY NAME: the Parquet file's column order is the writer's business.
            connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet(?)", [str(path)])
            rows[table] = connection.execute(
                f"SELECT count(*) FROM {table} WHERE week = CAST(? AS DATE)", [week]
            ).fetchone()[0]
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            connection.execute("ROLLBACK")
        raise
    return rows


def bigquery_ddl(lake_url: str, dataset: str) -> str:
    """BigQuery DDL exposing the lake's Parquet objects as external tables and the same two views."""
    if not lake_url.startswith("gs://"):
        raise ValueError(f"BigQuery reads from GCS: the lake URL must be gs://BUCKET[/PREFIX], not {lake_url!r}")
    base = lake_url.rstrip("/")
    statements = []
    for table, lake_dataset in TABLE_DATASETS.items():
        statements.append(
            f"CREATE OR REPLACE EXTERNAL TABLE `{dataset}.{table}`\n"
            f"OPTIONS (format = 'PARQUET', uris = ['{base}/turnstile/{lake_dataset}/*.parquet']);"
        )
    statements.append(
        f"CREATE OR REPLACE VIEW `{dataset}.ridership_daily` AS\n"
        "SELECT date, unit, station, linename, division,\n"
        "       SUM(entries) AS entries, SUM(exits) AS exits,\n"
        "       SUM(intervals_used) AS intervals_used, SUM(intervals_capped) AS intervals_capped,\n"
        "       SUM(intervals_dropped) AS intervals_dropped, MAX(turnstiles) AS turnstiles\n"
        f"FROM `{dataset}.ridership_daily_parts`\n"
        "GROUP BY date, unit, station, linename, division;"
    )
    statements.append(
        f"CREATE OR REPLACE VIEW `{dataset}.stations` AS\n"
        "SELECT unit, ca,\n"
        "       ARRAY_AGG(STRUCT(station, linename, division, station_in_file, source)\n"
        "                 ORDER BY week DESC LIMIT 1)[OFFSET(0)].*,\n"
        "       MIN(week) AS first_week, MAX(week) AS last_week\n"
        f"FROM `{dataset}.station_weeks`\n"
        "GROUP BY unit, ca;"
    )
    return "\n\n".join(statements) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mta_assets.storage.warehouse", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ddl = commands.add_parser("bigquery-ddl", help="print the BigQuery DDL for a GCS lake")
    ddl.add_argument("--lake", required=True, help="gs://BUCKET[/PREFIX], the MTA_LAKE_URL of the pipeline")
    ddl.add_argument("--dataset", required=True, help="BigQuery dataset, e.g. my-project.mta")
    args = parser.parse_args(argv)
    print(bigquery_ddl(args.lake, args.dataset), end="")


if __name__ == "__main__":
    main()
