"""Shared pieces of the official-ridership tests: the real exports' paths and a loopback SODA server."""

import datetime as dt
from pathlib import Path

import pytest

from mta_devtools.official_synthetic import load_complexes
from mta_devtools.soda_mirror import SodaMirror

RIDERSHIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "mta-ridership"
DAILY_EXPORT = RIDERSHIP / "daily" / "vxuj-8kew_MTA_Daily_Ridership_2020-03-01_to_2024-11-14.csv"
STATIONS = RIDERSHIP / "stations"
COMPLEXES_EXPORT = STATIONS / "5f5g-n3cz_MTA_Subway_Stations_and_Complexes_2025-09-18.csv"
# The mirror has published the hourly rows through the end of the week 2024-01-06..12.
PUBLISHED_THROUGH = dt.datetime(2024, 1, 12, 23)


def need_shared() -> None:
    if not DAILY_EXPORT.is_file() or not COMPLEXES_EXPORT.is_file():
        pytest.skip(f"the real MTA ridership exports are not in {RIDERSHIP.resolve()} (see its README)")


@pytest.fixture
def soda_mirror():
    """A loopback data.ny.gov: the real daily export, 30 real complexes' synthetic hourly rows."""
    need_shared()
    with SodaMirror(DAILY_EXPORT, load_complexes(COMPLEXES_EXPORT, 30), PUBLISHED_THROUGH) as mirror:
        yield mirror
