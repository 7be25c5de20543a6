"""A lake for the warehouse tests, built from real files with the project's pure functions.

Turnstile weeks: MTA's files rebuilt from ``../shared/mta-samples/full-weeks``, parsed
(``mta/parse.py``), given their stations (``mta/stations.py``) and ridership
(``mta/ridership.py``), written where the assets write them. Official ridership: the real
exports in ``../shared/mta-ridership`` in the contract of the official assets (daily totals,
the unit -> complex crosswalk, and the one real hourly day, 2024-02-01, with its complexes
given MTA's ids by their coordinates).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pytest

from mta_assets.defs.turnstile.tables import write_parquet
from mta_assets.defs.warehouse.lake_files import official_key
from mta_assets.storage.commit import commit_week
from mta_assets.mta.calendar import file_name_for_week
from mta_assets.mta.parse import parse_week
from mta_assets.mta.ridership import daily, intervals
from mta_assets.mta.stations import load_station_key, station_dimension
from mta_assets_tests.samples import rebuild_full_week, require_samples, samples_dir

PARQUET = "application/vnd.apache.parquet"
HOURLY_DAY = dt.date(2024, 2, 1)


def ridership_dir() -> Path:
    return samples_dir().parent / "mta-ridership"


def require_ridership() -> Path:
    folder = ridership_dir()
    if not (folder / "daily").is_dir():
        pytest.skip(f"MTA's official ridership exports not found at {folder}")
    return folder


def build_turnstile_weeks(lake, weeks: list[str], work: Path) -> None:
    """readings, stations and ridership objects for each week, as the assets write them."""
    key = load_station_key(require_samples() / "reference" / "Remote-Booth-Station_mango314.csv")
    previous = None
    for week in weeks:
        name = file_name_for_week(week)
        source = rebuild_full_week(f"{name[len('turnstile_'):-len('.txt')]}.csv.gz", work)
        readings = parse_week(source, week, name).table
        source.unlink()
        stations = station_dimension(readings.select(["unit", "ca", "station", "linename", "division"]), key)
        day = dt.date.fromisoformat(week)
        stations = stations.append_column("week", pa.repeat(pa.scalar(day, pa.date32()), stations.num_rows))
        rows = daily(intervals(readings, previous), stations, day)
        for dataset, table in (("readings", readings), ("stations", stations), ("ridership", rows)):
            staged = work / f"{dataset}-{week}.parquet"
            write_parquet(table, staged)
            lake.put_file(staged, lake.key_for(dataset, week, ".parquet"), PARQUET)
            staged.unlink()
        previous = readings


def build_official(lake, work: Path) -> None:
    """official_daily, station_complexes and the real hourly day, in the official assets' contract."""
    folder = require_ridership()
    daily_rows = []
    with open(folder / "daily" / "vxuj-8kew_MTA_Daily_Ridership_2020-03-01_to_2024-11-14.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            daily_rows.append(
                {
                    "date": dt.datetime.strptime(row["Date"], "%m/%d/%Y").date(),
                    "subways_total_estimated_ridership": int(row["Subways: Total Estimated Ridership"]),
                    "subways_of_comparable_pre_pandemic_day": float(row["Subways: % of Comparable Pre-Pandemic Day"]),
                    "source_dataset": "vxuj-8kew",
                }
            )
    daily_schema = pa.schema(
        [("date", pa.date32()), ("subways_total_estimated_ridership", pa.int64()),
         ("subways_of_comparable_pre_pandemic_day", pa.float64()), ("source_dataset", pa.string())]
    )
    _put(lake, work, pa.Table.from_pylist(daily_rows, daily_schema), official_key(lake, "daily"))

    crosswalk = []
    with open(folder / "stations" / "remote_booth_station_to_complex_hshore29.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            crosswalk.append(
                {"unit": row["remote"], "ca": row["booth"], "complex_id": row["complex_id"],
                 "complex_name": row["complex_name"], "source": "hshore29/mta-lookups"}
            )
    _put(lake, work, pa.Table.from_pylist(crosswalk), official_key(lake, "stations"))

    complexes = []
    with open(folder / "stations" / "5f5g-n3cz_MTA_Subway_Stations_and_Complexes_2025-09-18.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            complexes.append(
                (float(row["Latitude"]), float(row["Longitude"]), row["Complex ID"], row["Display Name"], row["Stop Name"])
            )
    hourly = []
    with open(folder / "hourly" / "wujg-7c2s_2024-02-01_by_complex_and_hour.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            lat, lon = float(row["latitude"]), float(row["longitude"])
            # The nearest complex sharing the first station name (several share one: Chambers St),
            # a multi-station complex for a name with '/' (the file spells them "A /B /C ").
            parts = [part.strip() for part in row["station_complex"].split("/")]
            named = [c for c in complexes if parts[0] in c[4].split("/")] or complexes
            if len(parts) > 1:
                named = [c for c in named if "/" in c[4]] or named
            _, complex_id, display = min((math.dist((lat, lon), (c[0], c[1])), c[2], c[3]) for c in named)
            hourly.append(
                {
                    "transit_timestamp": dt.datetime.strptime(row["transit_timestamp"], "%m/%d/%Y %I:%M:%S %p"),
                    "transit_mode": "subway", "station_complex_id": complex_id, "station_complex": display,
                    "borough": row["borough"], "payment_method": "all", "fare_class_category": "all",
                    "ridership": float(row["ridership"]), "transfers": 0.0, "latitude": lat, "longitude": lon,
                }
            )
    hourly_schema = pa.schema(
        [("transit_timestamp", pa.timestamp("s")), ("transit_mode", pa.string()), ("station_complex_id", pa.string()),
         ("station_complex", pa.string()), ("borough", pa.string()), ("payment_method", pa.string()),
         ("fare_class_category", pa.string()), ("ridership", pa.float64()), ("transfers", pa.float64()),
         ("latitude", pa.float64()), ("longitude", pa.float64())]
    )
    week = (HOURLY_DAY - dt.timedelta(days=(HOURLY_DAY.weekday() + 2) % 7)).isoformat()
    # Committed as the official assets commit a week: through its manifest.
    staged = work / f"official_hourly_{week}.parquet"
    write_parquet(pa.Table.from_pylist(hourly, hourly_schema), staged)
    commit_week(lake.client, "official", week, {"hourly": (staged, staged.name, PARQUET)}, owner="test", wait_s=10)


def _put(lake, work: Path, table: pa.Table, key: str) -> None:
    staged = work / key.replace("/", "_")
    write_parquet(table, staged)
    lake.put_file(staged, key, PARQUET)
    staged.unlink()


def built_warehouse(root: Path, weeks: list[str]) -> Path:
    """A DuckDB warehouse built by dbt, through the warehouse asset, from a lake of ``weeks`` and MTA's data."""
    from mta_assets.defs.resources import Lake
    from mta_assets_tests.defs.test_warehouse_dbt import failure_text, materialize

    lake = Lake(url=str(root / "lake"))
    build_turnstile_weeks(lake, weeks, root)
    build_official(lake, root)
    database = root / "warehouse.duckdb"
    result = materialize(lake, database, weeks[0], weeks[-1])
    assert result.success, failure_text(result)
    return database
