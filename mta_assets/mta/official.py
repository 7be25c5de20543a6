"""MTA's official ridership (data.ny.gov): the hourly rows as a table, their checks, the daily totals, the comparison.

MTA Subway Hourly Ridership has one row per station complex, hour, payment method and
fare class, entries only, in New York wall time with no offset. Its rows are sparse (a
complex-hour with no riders has no row), so a week is complete when every hour of the
week has rows system-wide, not every hour of every complex. No Dagster import.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from mta_assets.mta.calendar import TIMEZONE, week_window

if TYPE_CHECKING:
    import pyarrow as pa

# The hourly datasets by period: (first day, dataset id); each runs until the next one starts.
HOURLY_DATASETS: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2017, 1, 1), "t69i-h2me"),
    (dt.date(2020, 1, 1), "wujg-7c2s"),
    (dt.date(2025, 1, 1), "5wq4-mkjj"),
)
# The first Saturday week wholly inside the hourly data (2017-01-01 is a Sunday).
FIRST_WEEK = "2017-01-07"
DAILY_DATASET = "vxuj-8kew"
DAILY_SUCCESSOR = "sayj-mze2"
# A total order of the raw rows, so SODA's pages are stable (dev.socrata.com/docs/paging.html).
SODA_ORDER = "transit_timestamp, station_complex_id, payment_method, fare_class_category, :id"
KEY_COLUMNS = ["station_complex_id", "transit_timestamp", "payment_method", "fare_class_category"]
_STRINGS = ["transit_mode", "station_complex_id", "station_complex", "borough", "payment_method", "fare_class_category"]
_FLOATS = ["ridership", "transfers", "latitude", "longitude"]
# The columns asked of every hourly dataset ($select: rows as published, the same columns from
# each dataset, so a week spanning two is one CSV; ``georeference`` repeats latitude/longitude).
HOURLY_FIELDS = ("transit_timestamp", *_STRINGS, *_FLOATS)


def hourly_schema() -> pa.Schema:
    """The data contract of ``official_hourly`` (the warehouse's models read exactly these)."""
    import pyarrow as pa

    return pa.schema(
        [("transit_timestamp", pa.timestamp("s"))]
        + [(name, pa.string()) for name in _STRINGS]
        + [(name, pa.float64()) for name in _FLOATS]
    )


def daily_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("date", pa.date32()),
            ("subways_total_estimated_ridership", pa.int64()),
            ("subways_of_comparable_pre_pandemic_day", pa.float64()),
            ("source_dataset", pa.string()),
        ]
    )


# -- weeks and queries -------------------------------------------------------------------------


def dataset_for(day: dt.date) -> str:
    chosen = None
    for first, dataset in HOURLY_DATASETS:
        if day >= first:
            chosen = dataset
    if chosen is None:
        raise ValueError(f"{day} is before MTA's hourly ridership, which starts {HOURLY_DATASETS[0][0]}")
    return chosen


def datasets_for_week(week: str) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(dataset id, start, end) pieces of the week's window; two when it spans a change of dataset."""
    start, end = week_window(week)
    pieces: list[tuple[str, dt.datetime, dt.datetime]] = []
    cut = start
    for first, _ in HOURLY_DATASETS:
        boundary = dt.datetime.combine(first, dt.time())
        if start < boundary < end:
            pieces.append((dataset_for(cut.date()), cut, boundary))
            cut = boundary
    pieces.append((dataset_for(cut.date()), cut, end))
    return pieces


def soda_where(start: dt.datetime, end: dt.datetime) -> str:
    return f"transit_timestamp >= '{start:%Y-%m-%dT%H:%M:%S}' AND transit_timestamp < '{end:%Y-%m-%dT%H:%M:%S}'"


def week_hours(week: str) -> list[dt.datetime]:
    """Every wall-clock hour of the week that exists in New York (the spring-forward 02:00 does not)."""
    start, end = week_window(week)
    zone = ZoneInfo(TIMEZONE)
    hours = []
    moment = start
    while moment < end:
        aware = moment.replace(tzinfo=zone)
        # A wall time that does not exist does not survive a round trip through UTC.
        if aware.astimezone(dt.timezone.utc).astimezone(zone).replace(tzinfo=None) == moment:
            hours.append(moment)
        moment += dt.timedelta(hours=1)
    return hours


def latest_complete_week(through: dt.datetime) -> str | None:
    """The newest Saturday week whose every hour is at or before ``through`` (a dataset's newest hour)."""
    edge = (through + dt.timedelta(hours=1)).date()  # the week must end (Saturday 00:00) by then
    saturday = edge - dt.timedelta(days=(edge.weekday() - 5) % 7)
    key = (saturday - dt.timedelta(days=7)).isoformat()
    return key if key >= FIRST_WEEK else None


def raw_file_name(week: str) -> str:
    return f"official_hourly_{week}.csv.gz"


def parse_timestamp(value: str) -> dt.datetime:
    """SODA's ``2024-01-06T00:00:00.000`` or a CSV export's ``01/06/2024 01:00:00 PM``."""
    text = value.strip()
    if "/" in text:
        return dt.datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
    return dt.datetime.fromisoformat(text[:19])


# -- the hourly rows --------------------------------------------------------------------------


def field_name(header: str) -> str:
    """An export's title-case header as SODA's field name: ``Transit Timestamp`` -> ``transit_timestamp``."""
    kept = "".join(ch.lower() if ch.isalnum() else " " for ch in header)
    return "_".join(kept.split())


def parse_hourly(data: bytes | Path) -> pa.Table:
    """Hourly rows (SODA CSV or an export) -> a typed table with the contract's columns that are present.

    Unknown columns (``georeference``, ``routes``) are dropped; missing ones are for
    ``schema_problems`` to report. Raises ValueError naming the first bad value.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pv

    if isinstance(data, Path):
        import gzip

        opener = gzip.open if data.suffix == ".gz" else open
        with opener(data, "rb") as handle:
            first_line = handle.readline()
        source = str(data)  # Arrow streams the file and decompresses a .gz itself: no copy in memory
    else:
        first_line, source = data[: data.find(b"\n") + 1], io.BytesIO(data)
    header = next(csv.reader(io.StringIO(first_line.decode("utf-8-sig"))), [])
    # Every column as text first: each is then parsed by its contract, not by Arrow's guesses.
    table = pv.read_csv(
        source,
        read_options=pv.ReadOptions(use_threads=False),
        convert_options=pv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True),
    )
    table = table.rename_columns([field_name(name) for name in table.column_names])
    wanted = hourly_schema()
    columns = {}
    for field in wanted:
        if field.name not in table.column_names:
            continue
        column = table[field.name]
        if field.name == "transit_timestamp":
            text = column
            sample = next((value for value in text.to_pylist()[:1] if value), "")
            if "/" in sample:
                column = pc.strptime(text, format="%m/%d/%Y %I:%M:%S %p", unit="s")
            else:
                column = pc.strptime(pc.utf8_slice_codeunits(text, 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="s")
        columns[field.name] = pc.cast(column, field.type)
    return pa.table(columns)


def conform(table: pa.Table) -> pa.Table:
    """The table with exactly the contract's columns, in order (call after ``schema_problems`` is empty)."""
    return table.select(hourly_schema().names).cast(hourly_schema())


def schema_problems(table: pa.Table) -> list[str]:
    problems = []
    for field in hourly_schema():
        if field.name not in table.column_names:
            problems.append(f"column {field.name} is missing")
        elif table.schema.field(field.name).type != field.type:
            problems.append(f"column {field.name} is {table.schema.field(field.name).type}, not {field.type}")
        elif field.name in ("transit_timestamp", "station_complex_id", "ridership") and table[field.name].null_count:
            problems.append(f"column {field.name} has {table[field.name].null_count} empty values")
    return problems


def missing_hours(table: pa.Table, week: str) -> list[dt.datetime]:
    """The week's hours with no row anywhere in the system."""
    import pyarrow.compute as pc

    present = set(pc.unique(table["transit_timestamp"]).to_pylist())
    return [hour for hour in week_hours(week) if hour not in present]


def outside_week(table: pa.Table, week: str) -> int:
    import pyarrow.compute as pc

    start, end = week_window(week)
    column = table["transit_timestamp"]
    return int(pc.sum(pc.or_(pc.less(column, start), pc.greater_equal(column, end))).as_py() or 0)


def duplicate_rows(table: pa.Table) -> int:
    """Rows beyond the first of each (complex, hour, payment method, fare class)."""
    distinct = table.group_by(KEY_COLUMNS, use_threads=False).aggregate([]).num_rows
    return table.num_rows - distinct


def negative_ridership(table: pa.Table) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(pc.less(table["ridership"], 0)).as_py() or 0)


def total_ridership(table: pa.Table) -> float:
    import pyarrow.compute as pc

    return float(pc.sum(table["ridership"]).as_py() or 0.0)


def plausibility(
    rows: int, total: float, earlier: Iterable[tuple[float, float]], max_change: float
) -> tuple[bool, str]:
    """Row count and total ridership against the median of earlier weeks' (rows, total)."""
    earlier = list(earlier)
    if not earlier:
        return True, "no earlier week to compare with"
    median_rows = statistics.median(r for r, _ in earlier)
    median_total = statistics.median(t for _, t in earlier)
    changes = {
        "rows": abs(rows - median_rows) / median_rows if median_rows else 0.0,
        "ridership": abs(total - median_total) / median_total if median_total else 0.0,
    }
    worst = max(changes, key=lambda key: changes[key])
    text = (
        f"{rows:,} rows and {total:,.0f} riders against medians of {median_rows:,.0f} and {median_total:,.0f} "
        f"over {len(earlier)} earlier weeks ({worst} off by {changes[worst]:.0%}, allowed {max_change:.0%})"
    )
    return changes[worst] <= max_change, text


def daily_totals(table: pa.Table, mode: str | None = "subway") -> dict[dt.date, float]:
    """Ridership summed per day (of ``mode`` when given and the table has ``transit_mode``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if mode is not None and "transit_mode" in table.column_names:
        table = table.filter(pc.equal(table["transit_mode"], mode))
    days = pc.cast(table["transit_timestamp"], pa.date32())
    grouped = pa.table({"date": days, "ridership": table["ridership"]}).group_by("date").aggregate([("ridership", "sum")])
    return {row["date"]: row["ridership_sum"] for row in grouped.to_pylist()}


# -- MTA's daily totals -------------------------------------------------------------------------


def read_daily_export(path: Path) -> list[dict[str, str]]:
    """A CSV export of ``vxuj-8kew`` as rows with SODA's field names."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [{field_name(k): v for k, v in row.items()} for row in csv.DictReader(handle)]


def _date(value: str) -> dt.date:
    text = value.strip()
    if "/" in text:
        return dt.datetime.strptime(text[:10], "%m/%d/%Y").date()
    return dt.date.fromisoformat(text[:10])


def parse_daily(wide: Iterable[Mapping[str, str]], long: Iterable[Mapping[str, str]] = ()) -> pa.Table:
    """``vxuj-8kew`` rows (export or API) and ``sayj-mze2`` rows (date, mode, count; subway rows
    for dates after the first dataset ends) -> one table of subway totals by day."""
    import pyarrow as pa

    by_day: dict[dt.date, tuple[int, float | None, str]] = {}
    for row in wide:
        day = _date(row["date"])
        share = (row.get("subways_of_comparable_pre_pandemic_day") or "").strip().rstrip("%")
        by_day[day] = (int(float(row["subways_total_estimated_ridership"])), float(share) if share else None, DAILY_DATASET)
    for row in long:
        if "subway" not in (row.get("mode") or "").lower():
            continue
        day = _date(row["date"])
        if day not in by_day:
            by_day[day] = (int(float(row["count"])), None, DAILY_SUCCESSOR)
    days = sorted(by_day)
    return pa.table(
        {
            "date": pa.array(days, pa.date32()),
            "subways_total_estimated_ridership": pa.array([by_day[d][0] for d in days], pa.int64()),
            "subways_of_comparable_pre_pandemic_day": pa.array([by_day[d][1] for d in days], pa.float64()),
            "source_dataset": pa.array([by_day[d][2] for d in days], pa.string()),
        },
        schema=daily_schema(),
    )


# -- turnstile against official ----------------------------------------------------------------


def turnstile_over_official(
    turnstile: Mapping[dt.date, float], official_by_day: Mapping[dt.date, float]
) -> dict[dt.date, float]:
    """Per day present in both with official > 0: turnstile entries / official ridership."""
    return {
        day: turnstile[day] / official_by_day[day]
        for day in sorted(set(turnstile) & set(official_by_day))
        if official_by_day[day]
    }


def ratio_summary(ratios: Mapping[dt.date, float]) -> dict[str, float]:
    values = list(ratios.values())
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "days": float(len(values))}
