"""What the dashboard reads from the warehouse, each query on its own short read-only connection.

DuckDB's lock is per process and a read-only connection holds it too: a connection kept
open would make every load wait (and fail at its deadline). Opening one per query keeps the
dashboard's hold to the query's few milliseconds; a query that meets a load in progress
shows that the warehouse is busy instead of failing the page.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

SYSTEM = """
select date, entries_turnstile, entries_official, turnstile_over_official, turnstile_complete
from system_daily order by date
"""
STATIONS = "select station_id, station, linename, unit, division from dim_station order by station, linename, unit"
COMPLEXES = "select complex_id, complex_name from dim_complex where complex_name is not null order by complex_name"
STATION_SERIES = "select date, entries, exits, complete from ridership_daily where station_id = ? order by date"
# complete: whether the day's turnstile entries are whole (turnstile_days, one row per date).
COMPLEX_SERIES = """
select c.date, c.entries_turnstile, c.entries_official, c.source, coalesce(d.complete, false) as complete
from ridership_complex_daily c left join turnstile_days d on d.date = c.date
where c.complex_id = ? order by c.date
"""
TOP = """
select station, linename, sum(entries) as entries from ridership_daily
where date between ? and ? group by station, linename order by entries desc, station limit ?
"""


class WarehouseUnavailable(RuntimeError):
    """The warehouse file is missing, or a load holds it right now."""


class Warehouse:
    """Read-only queries over one DuckDB file."""

    def __init__(self, database: str | Path):
        self.database = Path(database).expanduser()

    def rows(self, sql: str, parameters: list | None = None) -> list[dict]:
        if not self.database.is_file():
            raise WarehouseUnavailable(f"no warehouse at {self.database}: materialize the warehouse assets first")
        try:
            with duckdb.connect(str(self.database), read_only=True) as connection:
                cursor = connection.execute(sql, parameters or [])
                names = [column[0] for column in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
        except duckdb.IOException as error:
            raise WarehouseUnavailable(f"warehouse {self.database} is busy (a load is writing it): try again") from error

    def system(self) -> list[dict]:
        return self.rows(SYSTEM)

    def stations(self) -> list[dict]:
        return self.rows(STATIONS)

    def complexes(self) -> list[dict]:
        return self.rows(COMPLEXES)

    def station_series(self, station_id: str) -> list[dict]:
        return self.rows(STATION_SERIES, [station_id])

    def complex_series(self, complex_id: str) -> list[dict]:
        return self.rows(COMPLEX_SERIES, [complex_id])

    def top_stations(self, first: dt.date, last: dt.date, limit: int = 10) -> list[dict]:
        return self.rows(TOP, [first, last, limit])
