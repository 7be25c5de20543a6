"""Pytest plugin: a real GCS JSON API (gcp-storage-emulator) on a free loopback port.

google-cloud-storage finds it through ``STORAGE_EMULATOR_HOST``, exactly as it finds
real GCS through Application Default Credentials: the code under test is unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from mta_assets.defs.resources import Lake


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GcsEmulator:
    """A gcp-storage-emulator process that a test can stop and start again on the same port."""

    def __init__(self, data_dir=None) -> None:
        # With a data folder the objects outlive a stop/start, so a test can look at
        # what an interrupted upload left behind; without one they live in memory.
        self.data_dir = data_dir
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host=127.0.0.1", f"--port={self.port}"]
        env = dict(os.environ)
        if self.data_dir is None:
            command.append("--in-memory")
        else:
            env["STORAGE_BASE"] = str(self.data_dir)
        self._process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.host + "/", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gcp-storage-emulator did not start on {self.host}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def create_bucket(self, name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="mta-test", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.host})
        client.create_bucket(name)


@pytest.fixture(scope="session")
def gcs_emulator_session() -> Iterator[GcsEmulator]:
    emulator = GcsEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def gcs_emulator(gcs_emulator_session: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """The session's emulator, with STORAGE_EMULATOR_HOST pointing at it for this test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_session.host)
    return gcs_emulator_session


@pytest.fixture
def own_gcs_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[GcsEmulator]:
    """An emulator for this test alone, storing on disk, which the test may stop and restart."""
    emulator = GcsEmulator(data_dir=tmp_path / "gcs")
    emulator.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.host)
    yield emulator
    emulator.stop()


@pytest.fixture
def gcs_bucket(gcs_emulator: GcsEmulator) -> str:
    """A fresh bucket, so tests sharing the emulator never see each other's objects."""
    name = f"mta-test-{uuid.uuid4().hex[:12]}"
    gcs_emulator.create_bucket(name)
    return name


@pytest.fixture
def gcs_lake(gcs_bucket: str) -> Lake:
    return Lake(url=f"gs://{gcs_bucket}/dev", retry_deadline_s=10, chunk_size_bytes=256 * 1024)


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    return Lake(url=str(tmp_path / "lake"))


@pytest.fixture(params=["local", "gcs"])
def any_lake(request: pytest.FixtureRequest) -> Lake:
    """Each lake kind in turn: a local folder and the GCS emulator."""
    return request.getfixturevalue("local_lake" if request.param == "local" else "gcs_lake")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No test sees the developer's MTA_* settings; staging files and the warehouse stay in the test's folder."""
    for name in list(os.environ):
        if name.startswith("MTA_") and name != "MTA_SAMPLES_DIR":
            monkeypatch.delenv(name)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("MTA_STAGING_DIR", str(tmp_path / "staging"))
    # A run of the whole lineage writes its own warehouse, never the checkout's data/warehouse.duckdb.
    monkeypatch.setenv("MTA_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    # Offline: MTA's station-complex crosswalks from the shared real files, never from GitHub.
    stations = Path(__file__).resolve().parents[2] / "shared" / "mta-ridership" / "stations"
    if stations.is_dir():
        monkeypatch.setenv("MTA_STATION_COMPLEXES_URL", str(stations))
