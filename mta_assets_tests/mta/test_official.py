"""MTA's official ridership as pure functions, on the real exports in ../shared/mta-ridership."""

import csv
import datetime as dt
import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mta_assets.mta import complexes, official
from mta_assets_tests.official_helpers import DAILY_EXPORT, RIDERSHIP, STATIONS

HOURLY_DAY = RIDERSHIP / "hourly" / "wujg-7c2s_2024-02-01_by_complex_and_hour.csv"
FULL_WEEKS = Path(__file__).resolve().parents[2] / ".." / "shared" / "mta-samples" / "full-weeks"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path.resolve()} is absent (real MTA files, see ../shared/*/README.md)")


def test_the_real_hourly_day_sums_to_its_stated_total():
    _need(HOURLY_DAY)
    table = official.parse_hourly(HOURLY_DAY)
    assert table.num_rows == 10_542
    assert table["transit_timestamp"].type == pa.timestamp("s")
    # An export's 12-hour clock is read as such: 1 PM is 13:00.
    assert dt.datetime(2024, 2, 1, 13) in set(table["transit_timestamp"].to_pylist())
    assert official.daily_totals(table, mode=None) == {dt.date(2024, 2, 1): 3_871_997.0}
    # It is aggregated (no complex id, payment method, fare class): the schema check says so.
    assert "column station_complex_id is missing" in official.schema_problems(table)


def test_the_real_daily_export_parses_one_row_per_day():
    _need(DAILY_EXPORT)
    table = official.parse_daily(official.read_daily_export(DAILY_EXPORT))
    assert table.schema == official.daily_schema() and table.num_rows == 1_720
    days = table["date"].to_pylist()
    assert days[0] == dt.date(2020, 3, 1) and days[-1] == dt.date(2024, 11, 14)
    assert (days[-1] - days[0]).days + 1 == 1_720  # no gaps, no duplicates
    with open(DAILY_EXPORT, newline="") as handle:
        raw = {row["Date"]: row for row in csv.DictReader(handle)}
    row = table.filter(pc.equal(table["date"], dt.date(2024, 2, 1))).to_pylist()[0]
    assert row["subways_total_estimated_ridership"] == int(raw["02/01/2024"]["Subways: Total Estimated Ridership"])
    assert row["subways_of_comparable_pre_pandemic_day"] == float(raw["02/01/2024"]["Subways: % of Comparable Pre-Pandemic Day"])


def test_api_rows_and_export_rows_give_the_same_table():
    export = [{"date": "02/01/2024", "subways_total_estimated_ridership": "3814682", "subways_of_comparable_pre_pandemic_day": "0.7"}]
    api = [{"date": "2024-02-01T00:00:00.000", "subways_total_estimated_ridership": "3814682", "subways_of_comparable_pre_pandemic_day": "0.7"}]
    later = [{"date": "2024-02-02T00:00:00.000", "mode": "Subway", "count": "3900000"},
             {"date": "2024-02-02T00:00:00.000", "mode": "Bus", "count": "1200000"}]
    assert official.parse_daily(export).equals(official.parse_daily(api))
    both = official.parse_daily(api, later).to_pylist()
    assert [(r["date"], r["subways_total_estimated_ridership"], r["source_dataset"]) for r in both] == [
        (dt.date(2024, 2, 1), 3_814_682, "vxuj-8kew"), (dt.date(2024, 2, 2), 3_900_000, "sayj-mze2")]


def _week(rows: list[tuple[str, str, float]], week: str = "2024-01-06") -> pa.Table:
    """A week with one row in every hour, plus ``rows`` (timestamp, complex id, ridership)."""
    hours = [(f"{h:%Y-%m-%dT%H:%M:%S}.000", "1", 5.0) for h in official.week_hours(week)]
    lines = ["transit_timestamp,transit_mode,station_complex_id,station_complex,borough,payment_method,"
             "fare_class_category,ridership,transfers,latitude,longitude,georeference"]
    lines += [f'{t},subway,{c},"A (1)",Manhattan,omny,OMNY - Full Fare,{r},0,40.7,-73.9,POINT (-73.9 40.7)' for t, c, r in hours + rows]
    return official.parse_hourly("\n".join(lines).encode())


def test_the_week_checks_judge_completeness_system_wide_duplicates_and_signs():
    good = _week([("2024-01-06T00:00:00.000", "2", 3.0)])
    assert official.schema_problems(good) == [] and official.conform(good).schema == official.hourly_schema()
    assert official.missing_hours(good, "2024-01-06") == [] and official.duplicate_rows(good) == 0
    gap = good.filter(pc.not_equal(good["transit_timestamp"], dt.datetime(2024, 1, 9, 4)))
    assert official.missing_hours(gap, "2024-01-06") == [dt.datetime(2024, 1, 9, 4)]
    assert official.duplicate_rows(_week([("2024-01-06T00:00:00.000", "1", 2.0)])) == 1
    assert official.negative_ridership(_week([("2024-01-06T03:00:00.000", "2", -1.0)])) == 1
    assert official.outside_week(_week([("2024-01-13T00:00:00.000", "2", 1.0)]), "2024-01-06") == 1


def test_a_spring_forward_week_has_no_0200_on_its_sunday():
    hours = official.week_hours("2024-03-09")
    assert len(hours) == 167 and dt.datetime(2024, 3, 10, 2) not in hours


def test_the_dataset_is_chosen_by_date_and_a_week_across_a_change_asks_both():
    assert [p[0] for p in official.datasets_for_week("2024-01-06")] == ["wujg-7c2s"]
    assert official.datasets_for_week("2024-12-28") == [
        ("wujg-7c2s", dt.datetime(2024, 12, 28), dt.datetime(2025, 1, 1)),
        ("5wq4-mkjj", dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 4)),
    ]
    assert official.dataset_for(dt.date(2019, 6, 1)) == "t69i-h2me"


def test_plausibility_against_the_median_of_earlier_weeks():
    earlier = [(100_000, 20e6), (110_000, 22e6), (90_000, 21e6)]
    assert official.plausibility(105_000, 21e6, earlier, 0.5)[0]
    passed, text = official.plausibility(100_000, 5e6, earlier, 0.5)
    assert not passed and "ridership off by 76%" in text


def test_turnstile_over_official_divides_by_day_where_both_exist():
    ratios = official.turnstile_over_official(
        {dt.date(2024, 1, 6): 1.0e6, dt.date(2024, 1, 7): 1.5e6, dt.date(2024, 1, 8): 2e6},
        {dt.date(2024, 1, 7): 3.0e6, dt.date(2024, 1, 8): 4e6, dt.date(2024, 1, 9): 4e6},
    )
    assert ratios == {dt.date(2024, 1, 7): 0.5, dt.date(2024, 1, 8): 0.5}
    assert official.ratio_summary(ratios) == {"median": 0.5, "min": 0.5, "max": 0.5, "days": 2.0}


def test_every_unit_of_the_real_weeks_maps_to_a_complex_or_is_listed_with_a_reason():
    _need(STATIONS / complexes.HSHORE29)
    _need(FULL_WEEKS)
    crosswalk = complexes.parse_crosswalk(*((STATIONS / name).read_text() for name in complexes.CROSSWALK_FILES))
    weeks = {}
    for path in sorted(FULL_WEEKS.glob("24*.csv.gz")):
        with gzip.open(path, "rt") as handle:
            weeks[path.name] = {(row["UNIT"], row["CA"]) for row in csv.DictReader(handle)}
    assert len(weeks) == 7
    table, unmapped = complexes.map_pairs(crosswalk, weeks)
    mapped = set(zip(table["unit"].to_pylist(), table["ca"].to_pylist()))
    listed = {(item.week, item.unit, item.ca) for item in unmapped}
    for week, pairs in weeks.items():
        for unit, ca in pairs:
            assert (unit, ca) in mapped or (week, unit, ca) in listed
    assert all(item.reason for item in unmapped)
    ids = dict(zip(zip(table["unit"].to_pylist(), table["ca"].to_pylist()), table["complex_id"].to_pylist()))
    assert ids[("R051", "A002")] == "613"  # Lexington Av/59 St, as hshore29 and MTA's own list say
    assert None not in table["complex_name"].to_pylist()


def test_a_unit_missing_from_both_crosswalks_is_listed_with_its_week_and_reason():
    crosswalk = complexes.Crosswalk({("R001", "A060"): ("635", "hshore29"), ("R002", "X1"): ("1", "hshore29"),
                                     ("R002", "X2"): ("2", "qri-io")}, {"635": "South Ferry"})
    table, unmapped = complexes.map_pairs(crosswalk, {"2024-01-06": {("R001", "A099"), ("R999", "B1"), ("R002", "X3")}})
    assert [str(u) for u in unmapped] == [
        "week 2024-01-06: R002/X3: booth X3 is not listed and unit R002's booths map to several complexes",
        f"week 2024-01-06: R999/B1: unit R999 is in neither crosswalk ({complexes.HSHORE29}, {complexes.QRI_IO})",
    ]
    assert ("R001", "A099", "635", "hshore29-unit") in set(zip(*(table[c].to_pylist() for c in ("unit", "ca", "complex_id", "source"))))
