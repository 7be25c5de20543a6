"""Generated weeks pass every check: the turnstile checks of ``mta/validate.py`` and the
station check against MTA's own key, wide (2010-2014) weeks included."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mta_assets.defs.ridership.checks import blocking_failures, check_named
from mta_assets.mta.calendar import file_name_for_week
from mta_assets.mta.parse import parse_week
from mta_assets.mta.stations import load_station_key, station_dimension
from mta_assets.mta.validate import CHECKS, UNNAMED_SHOWN, WeekEvidence, every_unit_has_station, validate_week
from mta_assets_tests.samples import require_samples
from mta_devtools.booths import BOOTHS
from mta_devtools.synthetic import week_bytes

STATION_COLUMNS = ["unit", "ca", "station", "linename", "division"]
# MTA's key as its site served it, the same as a CSV, and the 2010 re-save (no lines or division).
KEYS = ["Remote-Booth-Station_original.xls", "Remote-Booth-Station_mango314.csv", "Remote-Booth-Station_jehiah_2010.csv"]


def parsed(week: str, readings: int):
    name = file_name_for_week(week)
    return name, parse_week(week_bytes(week, readings=readings), week, name)


@pytest.mark.parametrize(
    ("week", "readings"),
    [
        ("2010-05-01", 20_000),  # the first year of the wide layout
        ("2013-01-26", 100_000),  # more turnstiles than the key's booths hold at a real booth's size
        ("2014-10-04", 20_000),  # the last wide week
        ("2014-10-11", 20_000),  # the first 11-column week
        ("2023-12-30", 20_000),
    ],
)
def test_a_generated_week_passes_every_turnstile_check(week: str, readings: int) -> None:
    name, week_parsed = parsed(week, readings)
    # One earlier week of the same size, so the volume checks compare something.
    outcomes = validate_week(week_parsed, WeekEvidence(week, name, length_stated=True, earlier_row_counts=[readings]))
    assert [outcome.name for outcome in outcomes] == list(CHECKS)
    failed = [f"{outcome.name} ({'blocking' if outcome.blocking else 'warn'}): {outcome.description}" for outcome in outcomes if not outcome.passed]
    assert failed == []
    assert week_parsed.rejects == 0 and week_parsed.table.num_rows > 0


@pytest.mark.parametrize("key_file", KEYS)
@pytest.mark.parametrize("week", ["2010-05-01", "2012-06-30", "2014-10-04", "2023-12-30"])
def test_a_generated_week_names_only_booths_of_mtas_key(week: str, key_file: str) -> None:
    key_path = require_samples() / "reference" / key_file
    key = load_station_key(key_path)
    _, week_parsed = parsed(week, 60_000)
    stations = station_dimension(week_parsed.table.select(STATION_COLUMNS), key)
    outcome = every_unit_has_station(stations, str(key_path))
    assert outcome.passed, outcome.description
    assert outcome.description == f"all {stations.num_rows} (unit, C/A) pairs have a station (station key: {key_path})"
    # Every booth of the generator is one of the key's, the wide weeks' names come from it.
    assert {(unit, ca) for ca, unit, *_ in BOOTHS} <= set(key.stations)
    if week < "2014-10-11":
        assert set(stations["source"].to_pylist()) == {"key"}
    assert stations.num_rows == len(BOOTHS)  # 60,000 readings reach every booth


def stations_table(pairs: list[tuple[str, str, str | None]]) -> pa.Table:
    unit, ca, station = zip(*pairs)
    return pa.table({"unit": list(unit), "ca": list(ca), "station": pa.array(list(station), pa.string())})


def test_a_failed_station_check_names_the_pairs_how_many_and_the_key_in_its_message() -> None:
    unnamed = [(f"R{900 + n}", f"A{700 + n}", None) for n in range(UNNAMED_SHOWN + 3)]
    stations = stations_table([("R001", "A058", "WHITEHALL ST"), *unnamed])
    outcome = every_unit_has_station(stations, "/keys/Remote-Booth-Station.csv")
    assert not outcome.passed and outcome.blocking
    shown = ", ".join(f"{unit}/{ca}" for unit, ca, _ in unnamed[:UNNAMED_SHOWN])
    assert outcome.description == (
        f"13 of 14 (unit, C/A) pairs (13 units) have no station: {shown} and 3 more; "
        "station key: /keys/Remote-Booth-Station.csv"
    )
    assert outcome.metadata["pairs_without_station"] == 13 and outcome.metadata["units_without_station"] == 13

    # The Dagster check carries the same line, and so does the week's failure line.
    result = check_named(stations_table([("R051", "A702", None), ("R142", "A700", None)]), "station key unavailable from http://127.0.0.1:9/key.csv")
    assert result.passed is False
    assert result.description == (
        "2 of 2 (unit, C/A) pairs (2 units) have no station: R051/A702, R142/A700; "
        "station key: station key unavailable from http://127.0.0.1:9/key.csv"
    )
    assert blocking_failures([result]) == [f"every_unit_has_station: {result.description}"]
