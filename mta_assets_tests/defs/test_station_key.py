"""MTA's station key fetched from a loopback stand-in for MTA's site: once, within its deadline."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from mta_assets.defs.resources import StationKeySource
from mta_assets_tests.samples import samples_dir
from mta_devtools.mirror import MirrorServer

KEY = "Remote-Booth-Station_original.xls"  # as MTA published it


@pytest.fixture
def published_key(mirror_root: Path) -> str:
    source = samples_dir() / "reference" / KEY
    if not source.is_file():
        pytest.skip(f"the station key sample {source} is not here")
    shutil.copy(source, mirror_root / KEY)
    return KEY


def test_the_key_is_fetched_from_its_url(mirror: MirrorServer, published_key: str) -> None:
    key, note = StationKeySource(url=f"{mirror.url}/{published_key}").load()

    assert note == f"{mirror.url}/{published_key}"
    assert key is not None and len(key) > 400  # MTA's key names about 500 booths


def test_a_key_sent_a_few_bytes_at_a_time_stops_at_its_deadline(mirror: MirrorServer, published_key: str) -> None:
    mirror.inject(published_key, "trickle:0.2")  # 100 bytes every 0.2 s: the whole key would take minutes
    started = time.monotonic()

    key, note = StationKeySource(url=f"{mirror.url}/{published_key}", timeout_s=1.0).load()

    assert key is None
    assert note == (
        f"station key unavailable from {mirror.url}/{published_key}: deadline of 1 s exceeded "
        "(set MTA_STATION_KEY_PATH for offline use)"
    )
    assert time.monotonic() - started < 10  # not the minutes the whole body would take
