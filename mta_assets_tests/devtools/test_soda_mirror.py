"""The loopback data.ny.gov as ./mta and make start it, and its synthetic hourly rows."""

import datetime as dt
import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from mta_assets.mta import official
from mta_devtools.official_synthetic import BUILT_IN, window_rows
from mta_assets_tests.official_helpers import DAILY_EXPORT, need_shared

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_serves_the_real_daily_totals_and_synthetic_hours_on_loopback():
    need_shared()
    process = subprocess.Popen(
        [sys.executable, "-m", "mta_devtools.soda_mirror", "--daily", str(DAILY_EXPORT), "--port", "0",
         "--published-through", "2024-01-12T23:00:00"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("MTA_OPEN_DATA_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        with urllib.request.urlopen(f"{url}/resource/vxuj-8kew.json?$order=date&$limit=2&$offset=1", timeout=10) as answer:
            rows = json.load(answer)
        assert [r["date"] for r in rows] == ["2020-03-02T00:00:00.000", "2020-03-03T00:00:00.000"]
        where = official.soda_where(dt.datetime(2024, 1, 6), dt.datetime(2024, 1, 6, 2))
        query = urllib.parse.urlencode({"$where": where, "$order": official.SODA_ORDER, "$limit": 50_000})
        with urllib.request.urlopen(f"{url}/resource/wujg-7c2s.csv?{query}", timeout=10) as answer:
            table = official.parse_hourly(answer.read())
        assert official.schema_problems(table) == [] and official.missing_hours(table, "2024-01-06")[:1] == [dt.datetime(2024, 1, 6, 2)]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_rows_are_sparse_deterministic_and_the_same_whatever_the_window():
    start = dt.datetime(2024, 1, 6)
    week = window_rows(start, start + dt.timedelta(days=7), BUILT_IN)
    assert week == window_rows(start, start + dt.timedelta(days=7), BUILT_IN)
    halves = window_rows(start, start + dt.timedelta(days=3), BUILT_IN) + window_rows(start + dt.timedelta(days=3), start + dt.timedelta(days=7), BUILT_IN)
    assert halves == week
    assert min(row["ridership"] for row in week) >= 1  # no row for a combination without riders
    per_hour_complex = {(r["transit_timestamp"], r["station_complex_id"]) for r in week}
    assert len(per_hour_complex) < 168 * len(BUILT_IN)  # sparse: some complex-hours have no row at all
    assert {r["payment_method"] for r in week} == {"omny", "metrocard"}
