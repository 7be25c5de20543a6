"""The dashboard in headless Chromium over a warehouse built by dbt from two real weeks.

``python -m dashboard`` runs as its own process on a free port of 127.0.0.1, as
``./mta dashboard`` starts it; the page is read the way a user sees it (Plotly's own data
on the chart elements), and another station is chosen by typing in the picker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from mta_assets_tests.fixtures_gcs import free_port
from mta_assets_tests.ui_helpers import find_chromium, start_chromium

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
WEEKS = ["2024-01-27", "2024-02-03"]  # 2024-02-01, MTA's one real hourly day, is in the first
WAIT_S = 60
CHART = "return (document.querySelector('#{0} .js-plotly-plot') || {{}}).data || null;"
TITLE = "const t = document.querySelector('#{0} .gtitle'); return t ? t.textContent : null;"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("selenium", reason="selenium not installed: pip install -e '.[dev]'")
    found = find_chromium()
    if found is None:
        pytest.skip("Chromium not installed (needs chromium and chromedriver on PATH): run .ci/chromium.sh")
    session = start_chromium(*found, tmp_path_factory.mktemp("chromium-profile"))
    yield session
    session.quit()


@pytest.fixture(scope="module")
def warehouse(browser, tmp_path_factory) -> Path:
    from mta_assets_tests.warehouse_lake import built_warehouse

    return built_warehouse(tmp_path_factory.mktemp("dashboard"), WEEKS)


@pytest.fixture(scope="module")
def dashboard(warehouse, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "MTA_WAREHOUSE": str(warehouse), "MTA_DASHBOARD_PORT": str(port)}
    log = (tmp_path_factory.mktemp("dashboard-log") / "dashboard.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "dashboard"], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                break
        except requests.RequestException:  # not up yet, or not answering yet
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"the dashboard did not answer at {url} within {WAIT_S} s")
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


def wait_for(browser, script: str, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def series_values(browser) -> tuple[str, list]:
    data = wait_for(browser, CHART.format("series-chart"), "the series chart")
    title = browser.execute_script(TITLE.format("series-chart"))
    return title, data[0]["y"]


def test_the_charts_draw_with_data_and_another_station_changes_the_series(browser, dashboard):
    from selenium.webdriver.common.by import By

    browser.get(dashboard)
    system = wait_for(browser, CHART.format("system-chart"), "the system chart")
    names = [trace["name"] for trace in system]
    assert names == ["turnstile entries", "turnstile entries, partial day (file boundary or missing week)", "MTA's daily estimate"]
    turnstile_days = [y for y in system[0]["y"] if y]
    assert len(turnstile_days) == 12 and min(turnstile_days) > 500_000
    assert len(system[1]["y"]) == 2  # the first Saturday (no week before it) and the last Friday

    wait_for(browser, TITLE.format("series-chart"), "the first station's series")
    first_title, first_values = series_values(browser)
    assert first_values and any(first_values)

    # As a user does: open the picker, search, click the first match.
    browser.find_element(By.CSS_SELECTOR, "#series-pick").click()
    wait_for(browser, "return document.querySelector(\"input[placeholder='Search']\");", "the picker's search box")
    browser.find_element(By.CSS_SELECTOR, "input[placeholder='Search']").send_keys("34 ST-HERALD SQ")
    wait_for(
        browser,
        "const o = document.querySelector('.dash-dropdown-option'); return o && o.innerText.includes('HERALD');",
        "the search's options",
    )
    browser.find_element(By.CSS_SELECTOR, ".dash-dropdown-option").click()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        title, values = series_values(browser)
        if title != first_title:
            break
        time.sleep(0.2)
    assert "34 ST-HERALD SQ" in title
    assert values != first_values and max(values) > 1_000

    table = wait_for(browser, "const t = document.querySelector('#top-rows'); return t ? t.innerText : null;", "the top stations")
    assert "42 ST-GRD CNTRL" in table or "34 ST-HERALD SQ" in table
