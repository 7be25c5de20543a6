"""What the browser test needs around the UI: a live ``dg dev`` and headless Chromium.

Both are real processes on 127.0.0.1. ``DagsterDev`` runs in a session of its own so that
stopping it reaches every process it started (webserver, daemon, code server).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from mta_assets_tests.fixtures_gcs import free_port

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMEDRIVER_CANDIDATES = ("chromedriver",)
WINDOW = (1600, 1000)
CHROMIUM_FLAGS = (
    "--headless=new",
    # Root in a container: Chromium's sandbox needs user namespaces we do not have.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Offline machines: nothing may try to reach the internet and wait on it.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTANCE_YAML = """\
telemetry:
  enabled: false
# The community sign-up dialog would cover the page in every screenshot.
nux:
  enabled: false
"""
ASSET_GRAPH_QUERY = "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }"


def find_chromium(browser: str | None = None, driver: str | None = None) -> tuple[str, str] | None:
    """Paths of the Chromium binary and its chromedriver, or None when either is missing."""
    browser = browser or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    driver = driver or next(filter(None, map(shutil.which, CHROMEDRIVER_CANDIDATES)), None)
    if not (browser and driver and os.access(browser, os.X_OK) and os.access(driver, os.X_OK)):
        return None
    return browser, driver


def start_chromium(browser: str, driver: str, profile_dir: Path):
    """A headless Chromium driven through the given chromedriver, never one Selenium downloads."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    session = webdriver.Chrome(service=Service(driver), options=options)
    # --window-size counts the (invisible) browser frame; fix the page's own viewport so the
    # screenshots are exactly WINDOW.
    session.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    return session


def prepare_dagster_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    return home


def run_dg(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run a ``dg`` CLI command (the project's way to run the code location) to completion; its output, or an error that shows it."""
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"dg {' '.join(args)} exited {completed.returncode}:\n{completed.stdout[-6000:]}")
    return completed.stdout


class DagsterDev:
    """``dg dev`` (webserver and daemon) of the project at ``project`` on a free loopback port."""

    def __init__(self, project: Path, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        dg = str(Path(sys.executable).parent / "dg")
        self._args = [dg, "dev", "--target-path", str(project), "-h", "127.0.0.1", "-p", str(self.port)]
        self._env, self._cwd, self.log_path = env, cwd, log_path
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> DagsterDev:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 180) -> None:
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                self._args, env=self._env, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_for_assets(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_for_assets(self, timeout: float) -> list[dict]:
        """Wait until the webserver answers and the code location has loaded its assets."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dg dev exited {self._process.returncode}:\n{self.log_tail()}")
            try:
                nodes = self.graphql(ASSET_GRAPH_QUERY)["assetNodes"]
                if nodes:
                    return nodes
                last_error = "the code location has no assets yet"
            except (requests.RequestException, KeyError, RuntimeError) as exc:
                last_error = str(exc)
            time.sleep(0.5)
        raise TimeoutError(f"dg dev at {self.url} not ready after {timeout:.0f} s ({last_error}):\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=10)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # dg dev (dagster dev underneath) shuts its children down on SIGTERM; SIGKILL to the whole group then
        # catches any child that outlived it.
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
