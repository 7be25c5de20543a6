"""The SODA client against the loopback data.ny.gov: paging, windows, 429 with Retry-After, the app token."""

import datetime as dt
import time

import pytest

from mta_assets.mta import official
from mta_assets.mta.calendar import week_window
from mta_assets.storage.soda import NotPublished, SodaClient, SodaError, SodaUnavailable
from mta_assets_tests.official_helpers import DAILY_EXPORT, need_shared, soda_mirror  # noqa: F401
from mta_devtools.official_synthetic import BUILT_IN
from mta_devtools.soda_mirror import SodaMirror


def test_a_week_larger_than_a_page_is_paged_in_a_stable_order_and_kept_as_published(tmp_path, soda_mirror):
    client = SodaClient(base_url=soda_mirror.url, page_size=2_000)
    download = client.hourly_week("2024-01-06", tmp_path)
    table = official.parse_hourly(download.path)
    pages = [r["query"] for r in soda_mirror.requests if r["path"] == "/resource/wujg-7c2s.csv"]
    assert len(pages) == download.rows // 2_000 + 1 and download.rows == table.num_rows > 2 * 2_000
    assert all(p["$where"] == official.soda_where(*week_window("2024-01-06")) for p in pages)
    assert {p["$order"] for p in pages} == {official.SODA_ORDER} and "$group" not in pages[0]
    # The same rows as one big page: paging lost or repeated nothing.
    whole = SodaClient(base_url=soda_mirror.url).hourly_week("2024-01-06", tmp_path / "whole")
    assert official.parse_hourly(whole.path).equals(table)
    assert official.duplicate_rows(table) == 0 and official.missing_hours(table, "2024-01-06") == []


def test_a_429_is_retried_after_its_retry_after_and_the_token_is_only_a_header(tmp_path, soda_mirror):
    soda_mirror.throttle(2, retry_after_s=1)
    client = SodaClient(base_url=soda_mirror.url, app_token="s3cret-token", backoff_factor_s=0.01)
    started = time.monotonic()
    rows = client.json_rows("daily totals", "vxuj-8kew", {"$order": "date"})
    assert time.monotonic() - started >= 2.0  # two Retry-After waits of 1 s, not the 0.01 s backoff
    assert len(rows) == 1_720
    assert [r["app_token"] for r in soda_mirror.requests] == ["s3cret-token"] * 3
    assert all("s3cret" not in str(r["query"]) for r in soda_mirror.requests)
    assert "s3cret" not in repr(client)


def test_a_source_that_keeps_answering_429_fails_naming_the_url_within_its_deadline(soda_mirror):
    soda_mirror.throttle(100, retry_after_s=1)
    client = SodaClient(base_url=soda_mirror.url, retries=10, deadline_s=2.5)
    started = time.monotonic()
    with pytest.raises(SodaUnavailable, match=r"daily totals: .*/resource/vxuj-8kew.json.* answered HTTP 429") as caught:
        client.json_rows("daily totals", "vxuj-8kew", {"$order": "date"})
    assert time.monotonic() - started < 5 and not caught.value.permanent


def test_a_week_beyond_what_is_published_is_not_published(tmp_path, soda_mirror):
    with pytest.raises(NotPublished, match=r"week 2024-01-13 is not published yet: .* rows through 2024-01-12 23:00"):
        SodaClient(base_url=soda_mirror.url).hourly_week("2024-01-13", tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_daily_totals_come_from_the_dataset_and_its_successor():
    need_shared()
    with SodaMirror(DAILY_EXPORT, BUILT_IN, successor_from=dt.date(2024, 11, 1)) as mirror:
        (first, wide), (second, long) = SodaClient(base_url=mirror.url, page_size=500).daily_totals()
    table = official.parse_daily(wide, long)
    assert (first, second) == ("vxuj-8kew", "sayj-mze2") and len(long) == 14
    assert table.num_rows == 1_720 and table["source_dataset"].to_pylist()[-14:] == ["sayj-mze2"] * 14


def test_settings_that_cannot_work_are_refused_naming_the_variable():
    with pytest.raises(SodaError, match="MTA_OPEN_DATA_PAGE_SIZE=60000"):
        SodaClient(page_size=60_000)
    with pytest.raises(SodaError, match="MTA_OPEN_DATA_APP_TOKEN instead") as caught:
        SodaClient(base_url="https://user:pa55@data.ny.gov")
    assert "pa55" not in str(caught.value)



def test_a_week_across_two_datasets_asks_each_for_its_own_days(tmp_path):
    with SodaMirror(None, BUILT_IN, dt.datetime(2025, 1, 3, 23)) as mirror:
        download = SodaClient(base_url=mirror.url).hourly_week("2024-12-28", tmp_path)
        asked = [(r["path"], r["query"].get("$where")) for r in mirror.requests if "$where" in r["query"]]
    assert download.datasets == ("wujg-7c2s", "5wq4-mkjj")
    assert asked == [
        ("/resource/wujg-7c2s.csv", official.soda_where(dt.datetime(2024, 12, 28), dt.datetime(2025, 1, 1))),
        ("/resource/5wq4-mkjj.csv", official.soda_where(dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 4))),
    ]
    table = official.parse_hourly(download.path)
    assert official.missing_hours(table, "2024-12-28") == [] and official.duplicate_rows(table) == 0
