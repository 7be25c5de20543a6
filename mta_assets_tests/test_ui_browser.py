"""The UI, in a real browser: lineage, the materialized week, its row count and its checks,
and the week's ridership chart and top stations.

One synthetic week is materialized (ridership and warehouse included) from a loopback
mirror into the GCS emulator by ``dg launch``, then ``dg dev`` serves that
instance and headless Chromium reads the pages a user opens. Screenshots land in
``test-artifacts/ui/`` (or ``$MTA_TEST_ARTIFACTS/ui/``); Chromium comes from Debian
(``.ci/chromium.sh``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mta_assets.mta.validate import CHECKS as WEEK_CHECKS
from mta_assets_tests.ui_helpers import (
    ASSET_GRAPH_QUERY,
    DagsterDev,
    find_chromium,
    prepare_dagster_home,
    run_dg,
    start_chromium,
)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
# Read at import: the autouse fixture clears MTA_* variables before each test runs.
ARTIFACTS = Path(os.environ.get("MTA_TEST_ARTIFACTS") or REPO / "test-artifacts") / "ui"
WEEK = "2023-12-30"
ASSETS = ("turnstile_csv", "turnstile_csv_gz", "turnstile_readings")
CHECKS = tuple(WEEK_CHECKS)
# Evaluated against the newest published week, which this test does not materialize:
# the UI must show it failed, next to the week checks that passed.
# Lateness is the late-week sensor's concern, never a check on the asset (issue 13).
LATE_CHECK = "latest_week_on_time"
WAIT_S = 60
CHART_ALT = "system entries and exits per day"

# Each lineage node is an SVG foreignObject titled by its asset; each edge an SVG path
# with an arrow marker. Their geometry is what the user sees as "connected".
LINEAGE_JS = """
// innerText exists on HTML elements only: read the node's HTML content, not the SVG wrapper.
const nodes = [...document.querySelectorAll('svg foreignObject')].map(fo => ({
  name: ((fo.firstElementChild && fo.firstElementChild.innerText) || '').trim().split('\\n')[0].trim(),
  x: +fo.getAttribute('x'), y: +fo.getAttribute('y'),
  width: +fo.getAttribute('width'), height: +fo.getAttribute('height'),
}));
const edges = [...document.querySelectorAll('svg path[marker-end]')].map(p => p.getAttribute('d'));
return {nodes, edges};
"""

# A metadata entry is a table row: its label cell, then its value cell. A markdown table in
# the value is read through its own rows: CSS selectors would also match the page's table.
METADATA_ROW_JS = """
const row = [...document.querySelectorAll('tr')].find(tr => tr.cells.length > 1 && tr.cells[0].innerText.trim() === arguments[0]);
"""
METADATA_VALUE_JS = METADATA_ROW_JS + "return row ? row.cells[1] : null;"
METADATA_TABLE_JS = METADATA_ROW_JS + """
const table = row && row.cells[1].querySelector('table');
return table && {headers: [...table.tHead.rows[0].cells].map(c => c.innerText.trim()), rows: table.tBodies[0].rows.length};
"""
# naturalWidth is 0 until the image has decoded, and stays 0 if it cannot be; the dialog
# showing it fades in (opacity below 1 on an ancestor) before it is what a user sees.
CHART_JS = """
const img = [...document.querySelectorAll('img')].find(i => (i.alt || '').startsWith(arguments[0]));
if (!img) return null;
let opacity = 1;
for (let e = img; e; e = e.parentElement) opacity *= +getComputedStyle(e).opacity;
return {src: img.src.slice(0, 30), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight, opacity};
"""


@pytest.fixture
def chromium() -> tuple[str, str]:
    pytest.importorskip("selenium", reason="selenium not installed: pip install -e '.[dev]'")
    paths = find_chromium()
    if paths is None:
        pytest.skip("Chromium not installed (needs chromium and chromedriver on PATH): run .ci/chromium.sh")
    return paths


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def one_week_instance(tmp_path, mirror, synthetic_week, gcs_bucket) -> tuple[Path, dict[str, str]]:
    """A DAGSTER_HOME holding one materialized week of the three assets, and the env that made it."""
    synthetic_week(WEEK, readings=3000)
    home = prepare_dagster_home(tmp_path / "dagster_home")
    env = {
        **os.environ,  # carries STORAGE_EMULATOR_HOST and MTA_STAGING_DIR from the fixtures
        "DAGSTER_HOME": str(home),
        "MTA_SOURCE_URL": mirror.url,
        "MTA_LAKE_URL": f"gs://{gcs_bucket}/dev",
        # turnstile_csv* builds ridership and the warehouse too (issue 14): keep both offline and in tmp_path.
        "MTA_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "MTA_STATION_KEY_URL": "http://127.0.0.1:9/Remote-Booth-Station.csv",
        # dg finds the project by --target-path and serves the checkout's package; the
        # instance is the DAGSTER_HOME above, never the checkout's dagster.yaml.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    run_dg(["launch", "--target-path", str(REPO), "--assets", "turnstile_csv*", "--partition", WEEK], env=env, cwd=home)
    return home, env


@pytest.fixture
def dagster_dev(one_week_instance, tmp_path, artifacts) -> Iterator[DagsterDev]:
    _, env = one_week_instance
    server = DagsterDev(REPO, env=env, cwd=tmp_path, log_path=tmp_path / "dagster-dev.log")
    try:
        with server:
            yield server
    finally:
        if server.log_path.exists():
            shutil.copyfile(server.log_path, artifacts / "dagster-dev.log")


@pytest.fixture
def browser(chromium, tmp_path, monkeypatch, artifacts):
    # Selenium Manager would try to download a driver; the closed network would make it hang.
    monkeypatch.setenv("SE_OFFLINE", "true")
    session = start_chromium(*chromium, profile_dir=tmp_path / "chromium-profile")
    try:
        yield session
    finally:
        session.quit()


def latest_row_count(home: Path, week: str) -> int:
    """The week's ``dagster/row_count`` as the run recorded it in the instance."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("turnstile_readings"), asset_partitions=[week]), limit=1
        ).records
    assert records, f"no materialization of turnstile_readings for {week}"
    return int(records[0].asset_materialization.metadata["dagster/row_count"].value)


def page_lines(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [line.strip() for line in driver.find_element(By.TAG_NAME, "body").text.splitlines() if line.strip()]


def wait_until(driver, read, done, what: str):
    """Poll ``read(driver)`` until ``done(value)``; on timeout, fail showing the last value read."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    seen = None

    def ready(_driver) -> bool:
        nonlocal seen
        seen = read(_driver)
        return bool(done(seen))

    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.25).until(ready)
    except TimeoutException:
        raise AssertionError(f"{driver.current_url} never showed {what}; it showed: {seen}") from None
    return seen


def wait_for_lines(driver, predicate, what: str) -> list[str]:
    return wait_until(driver, page_lines, predicate, what)


def followed_by(lines: list[str], first: str, second: str) -> bool:
    return any(a == first and b == second for a, b in zip(lines, lines[1:]))


def between(lines: list[str], start: str, end: str | None) -> list[str]:
    """The lines after ``start`` and before ``end`` (or to the end); empty when ``start`` is absent."""
    if start not in lines:
        return []
    rest = lines[lines.index(start) + 1 :]
    return rest[: rest.index(end)] if end in rest else rest


def screenshot(driver, artifacts: Path, name: str, dialog: bool = False) -> None:
    """Save the page as ``name``; no dialog may cover it unless ``dialog`` (the one the test opened)."""
    from selenium.webdriver.common.by import By

    dialogs = [e for e in driver.find_elements(By.CSS_SELECTOR, "[role=dialog], .bp5-dialog, .bp4-dialog") if e.is_displayed()]
    if not dialog:
        assert not dialogs, f"a dialog covers the page before {name}: {[d.text[:200] for d in dialogs]}"
    assert driver.save_screenshot(str(artifacts / name)), f"could not save {name}"


def edge_ends(path_d: str) -> tuple[tuple[float, float], tuple[float, float]]:
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path_d)]
    return (numbers[0], numbers[1]), (numbers[-2], numbers[-1])


def nearest_node(point: tuple[float, float], nodes: list[dict], tolerance: float = 25) -> str | None:
    """The node whose box the point touches (within ``tolerance`` px, the arrowhead's room)."""

    def distance(node: dict) -> float:
        dx = max(node["x"] - point[0], 0, point[0] - (node["x"] + node["width"]))
        dy = max(node["y"] - point[1], 0, point[1] - (node["y"] + node["height"]))
        return (dx * dx + dy * dy) ** 0.5

    best = min(nodes, key=distance)
    return best["name"] if distance(best) <= tolerance else None


def drawn_lineage(driver) -> tuple[dict[str, dict], set[tuple[str | None, str | None]]]:
    """The asset nodes drawn (by name) and the edges between them (source, target)."""

    def complete(graph: dict) -> bool:
        names = {node["name"] for node in graph["nodes"]}
        return set(ASSETS) <= names and len(graph["edges"]) >= len(ASSETS) - 1

    graph = wait_until(driver, lambda d: d.execute_script(LINEAGE_JS), complete, "the three assets and their edges")
    nodes = [node for node in graph["nodes"] if node["name"] in ASSETS]
    edges = {tuple(nearest_node(end, nodes) for end in edge_ends(d)) for d in graph["edges"]}
    return {node["name"]: node for node in nodes}, edges


def test_ui_shows_lineage_materialized_week_row_count_and_checks(
    browser, one_week_instance, dagster_dev, artifacts  # browser first: without Chromium, skip before any setup
):
    home, _ = one_week_instance
    row_count = latest_row_count(home, WEEK)
    # 3000 synthetic readings, of which dedup may drop a few: the UI must show what was stored.
    assert 0 < row_count <= 3000

    # The code location as the webserver serves it: one group, csv -> csv_gz -> readings.
    served = {
        "/".join(node["assetKey"]["path"]): node for node in dagster_dev.graphql(ASSET_GRAPH_QUERY)["assetNodes"]
    }
    deps = {key: {"/".join(dep["path"]) for dep in node["dependencyKeys"]} for key, node in served.items()}
    assert {key: deps[key] for key in ASSETS} == {
        "turnstile_csv": set(),
        "turnstile_csv_gz": {"turnstile_csv"},
        "turnstile_readings": {"turnstile_csv_gz"},
    }
    assert {served[key]["groupName"] for key in ASSETS} == {"mta_turnstile"}
    # Ridership reads the table (issue 14), in a group of its own.
    assert "turnstile_readings" in deps["ridership_daily"]
    assert served["ridership_daily"]["groupName"] == "mta_ridership"

    try:
        # The table and what it comes from; ridership (its own group) is drawn downstream elsewhere.
        browser.get(f"{dagster_dev.url}/assets/turnstile_readings?view=lineage&lineageScope=upstream&lineageDepth=2")
        nodes, edges = drawn_lineage(browser)
        assert sorted(nodes) == sorted(ASSETS)
        assert edges == {("turnstile_csv", "turnstile_csv_gz"), ("turnstile_csv_gz", "turnstile_readings")}
        # Drawn left to right in the order the data flows.
        assert [name for name in sorted(nodes, key=lambda name: nodes[name]["x"])] == list(ASSETS)
        wait_for_lines(
            browser,
            lambda lines: f"{len(CHECKS)} / {len(CHECKS)} Passed" in lines,
            f"the readings node's {len(CHECKS)} / {len(CHECKS)} passed checks",
        )
        screenshot(browser, artifacts, "lineage.png")

        # Each page renders in pieces: wait for everything asserted at once, then screenshot.
        browser.get(f"{dagster_dev.url}/assets/turnstile_readings")
        shown_count = f"{row_count:,}"
        wait_for_lines(
            browser,
            lambda lines: followed_by(lines, "Row count", shown_count)
            and WEEK in between(lines, "Latest materialization", "Latest check results")
            # Only the passed count: no check failed.
            and between(lines, "Latest check results", "Row count") == [str(len(CHECKS))],
            f"the latest materialization of {WEEK}, {len(CHECKS)} passed check results and Row count {shown_count}",
        )
        screenshot(browser, artifacts, "readings-overview.png")

        browser.get(f"{dagster_dev.url}/assets/turnstile_readings?view=partitions&partition={WEEK}")
        wait_for_lines(
            browser,
            lambda lines: "Materialized (1)" in lines
            and followed_by(lines, WEEK, "Materialized")
            and followed_by(lines, "dagster/row_count", str(row_count)),
            f"week {WEEK} as the one materialized partition, with dagster/row_count {row_count}",
        )
        screenshot(browser, artifacts, "readings-partition.png")

        browser.get(f"{dagster_dev.url}/assets/turnstile_readings?view=checks")
        wait_for_lines(
            browser,
            lambda lines: f"Checks ({len(CHECKS)})" in lines
            and all(followed_by(lines, check, "Succeeded") for check in CHECKS)
            and LATE_CHECK not in lines
            and followed_by(between(lines, "Latest execution", None), "Evaluation result", "Passed")
            and followed_by(between(lines, "Latest execution", None), "Partition", WEEK),
            f"the week checks succeeded ({', '.join(CHECKS)}), no {LATE_CHECK}, and the latest execution passed for {WEEK}",
        )
        screenshot(browser, artifacts, "readings-checks.png")
    except BaseException:
        browser.save_screenshot(str(artifacts / "failure.png"))
        raise


def test_ui_shows_the_weeks_ridership_chart_and_top_stations(browser, one_week_instance, dagster_dev, artifacts):
    """Issue 14: each week's ridership materialization shows its chart and its top stations."""
    from selenium.webdriver.common.by import By

    try:
        browser.get(f"{dagster_dev.url}/assets/ridership_daily?view=partitions&partition={WEEK}")
        # The UI shows a markdown value inline when it is short (the top stations), behind
        # [Show Markdown] when it is not (the chart, an inline image).
        shown = wait_until(
            browser, lambda d: d.execute_script(METADATA_TABLE_JS, "top_stations"),
            lambda seen: seen and "station" in seen["headers"] and seen["rows"] > 0,
            f"week {WEEK}'s top_stations table, with a station column and at least one row",
        )
        assert shown["rows"] <= 10
        chart_cell = wait_until(
            browser, lambda d: d.execute_script(METADATA_VALUE_JS, "chart"), bool, f"week {WEEK}'s chart"
        )
        chart_cell.find_element(By.XPATH, ".//a[normalize-space()='[Show Markdown]']").click()
        chart = wait_until(
            browser, lambda d: d.execute_script(CHART_JS, CHART_ALT),
            lambda seen: seen and seen["complete"] and seen["width"] > 0 and seen["opacity"] == 1,
            f"the chart image ({CHART_ALT!r}) decoded and shown",
        )
        assert chart["src"].startswith("data:image/svg+xml;base64,"), chart
        assert (chart["width"], chart["height"]) == (480, 180), chart  # the size the SVG declares
        screenshot(browser, artifacts, "ridership-chart.png", dialog=True)
    except BaseException:
        browser.save_screenshot(str(artifacts / "failure.png"))
        raise
