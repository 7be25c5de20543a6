"""Synthetic MTA Subway Hourly Ridership rows: real complexes, sparse rows, deterministic by hour.

Each hour's rows depend only on that hour (a seeded generator), so any window, any paging
and any week boundary give the same rows. Like MTA's, the rows are sparse: a complex,
payment method and fare class with no riders in an hour has no row.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
import random
from pathlib import Path

FARE_CLASSES = (
    ("metrocard", "Metrocard - Full Fare", 0.14),
    ("metrocard", "Metrocard - Unlimited 30-Day", 0.10),
    ("metrocard", "Metrocard - Unlimited 7-Day", 0.05),
    ("metrocard", "Metrocard - Seniors & Disability", 0.03),
    ("metrocard", "Metrocard - Students", 0.04),
    ("metrocard", "Metrocard - Fair Fare", 0.02),
    ("metrocard", "Metrocard - Other", 0.01),
    ("omny", "OMNY - Full Fare", 0.55),
    ("omny", "OMNY - Seniors & Disability", 0.03),
    ("omny", "OMNY - Students", 0.01),
    ("omny", "OMNY - Fair Fare", 0.01),
    ("omny", "OMNY - Other", 0.01),
)
BOROUGHS = {"M": "Manhattan", "Bk": "Brooklyn", "Q": "Queens", "Bx": "Bronx", "SI": "Staten Island"}
FIELDS = (
    "transit_timestamp", "transit_mode", "station_complex_id", "station_complex", "borough",
    "payment_method", "fare_class_category", "ridership", "transfers", "latitude", "longitude",
)


@dataclasses.dataclass(frozen=True)
class Complex:
    complex_id: str
    name: str
    borough: str
    latitude: float
    longitude: float
    size: float  # riders per hour at the daily peak, before the fare-class split


# A few real complexes (MTA's Stations and Complexes) for when no export is given.
BUILT_IN = (
    Complex("611", "Times Sq-42 St (N,Q,R,W,S,1,2,3,7)/42 St (A,C,E)", "Manhattan", 40.757308, -73.989735, 9000),
    Complex("610", "Grand Central-42 St (S,4,5,6,7)", "Manhattan", 40.751776, -73.976848, 7000),
    Complex("602", "14 St-Union Sq (L,N,Q,R,W,4,5,6)", "Manhattan", 40.735736, -73.990568, 5000),
    Complex("636", "Jay St-MetroTech (A,C,F,R)", "Brooklyn", 40.692338, -73.987342, 2000),
    Complex("616", "Jackson Hts-Roosevelt Av (E,F,M,R,7)", "Queens", 40.746644, -73.891338, 3000),
    Complex("604", "149 St-Grand Concourse (2,4,5)", "Bronx", 40.818375, -73.927351, 900),
    Complex("398", "77 St (6)", "Manhattan", 40.77362, -73.959874, 1500),
    Complex("515", "Annadale (SIR)", "Staten Island", 40.54046, -74.178217, 20),
)


def load_complexes(path: Path | None, limit: int | None = None) -> tuple[Complex, ...]:
    """Complexes from an export of MTA's Stations and Complexes (``5f5g-n3cz``), or the built-in few."""
    if path is None:
        return BUILT_IN[:limit] if limit else BUILT_IN
    found = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            rng = random.Random(f"size-{row['Complex ID']}")
            found.append(
                Complex(
                    row["Complex ID"], row["Display Name"], BOROUGHS.get(row["Borough"], row["Borough"]),
                    float(row["Latitude"]), float(row["Longitude"]),
                    # Heavy-tailed like the real system: most complexes small, a few very busy.
                    size=round(30 * math.exp(rng.gauss(1.5, 1.1)), 1),
                )
            )
    found.sort(key=lambda c: c.complex_id)
    return tuple(found[:limit] if limit else found)


def _profile(hour: dt.datetime) -> float:
    """Share of the peak hour's riders: two rush-hour peaks on weekdays, a flat day at weekends."""
    h = hour.hour + 0.5
    if hour.weekday() >= 5:
        return 0.05 + 0.45 * math.exp(-((h - 14) ** 2) / 18)
    return 0.04 + math.exp(-((h - 8) ** 2) / 2) + 0.9 * math.exp(-((h - 17.5) ** 2) / 3) + 0.2 * math.exp(-((h - 13) ** 2) / 8)


def _timestamp(hour: dt.datetime) -> str:
    return f"{hour:%Y-%m-%dT%H:%M:%S}.000"


def hour_rows(hour: dt.datetime, complexes: tuple[Complex, ...]) -> list[dict[str, object]]:
    """The rows of one hour (sparse), as SODA's JSON would give them but with numbers as numbers."""
    rng = random.Random(f"hour-{hour.isoformat()}")
    rows = []
    for complex_ in complexes:
        for payment, fare_class, share in FARE_CLASSES:
            expected = complex_.size * _profile(hour) * share
            riders = int(rng.gammavariate(2.0, expected / 2.0)) if expected > 0 else 0
            if riders <= 0:
                continue  # MTA publishes no row for a combination with no riders
            rows.append(
                {
                    "transit_timestamp": _timestamp(hour),
                    "transit_mode": "subway",
                    "station_complex_id": complex_.complex_id,
                    "station_complex": complex_.name,
                    "borough": complex_.borough,
                    "payment_method": payment,
                    "fare_class_category": fare_class,
                    "ridership": riders,
                    "transfers": int(riders * rng.uniform(0.0, 0.15)),
                    "latitude": complex_.latitude,
                    "longitude": complex_.longitude,
                }
            )
    return rows


def window_rows(
    start: dt.datetime, end: dt.datetime, complexes: tuple[Complex, ...], drop_hours: frozenset[dt.datetime] = frozenset()
) -> list[dict[str, object]]:
    """Every row of the hours in [start, end), except the hours in ``drop_hours`` (a gap, for tests)."""
    rows: list[dict[str, object]] = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    if hour < start:
        hour += dt.timedelta(hours=1)
    while hour < end:
        if hour not in drop_hours:
            rows.extend(hour_rows(hour, complexes))
        hour += dt.timedelta(hours=1)
    return rows
