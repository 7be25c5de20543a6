"""Pytest plugin: a loopback MTA mirror and synthetic weeks to serve from it.

Loaded from conftest with ``pytest_plugins = ["mta_assets_tests.fixtures_mirror"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mta_devtools.mirror import MirrorServer
from mta_devtools.synthetic import write_week


@pytest.fixture
def mirror_root(tmp_path: Path) -> Path:
    """The folder the mirror serves."""
    root = tmp_path / "mirror"
    root.mkdir()
    return root


@pytest.fixture
def mirror(mirror_root: Path) -> Iterator[MirrorServer]:
    """A started ``MirrorServer`` on ``mirror_root`` (free loopback port), stopped after the test."""
    with MirrorServer(mirror_root) as server:
        yield server


@pytest.fixture
def synthetic_week(mirror_root: Path) -> Callable[..., Path]:
    """``synthetic_week(week, readings=2000, seed=0, layout=None) -> Path`` written into ``mirror_root``."""

    def make(week: str, readings: int = 2000, seed: int = 0, layout: str | None = None) -> Path:
        return write_week(mirror_root, week, readings=readings, seed=seed, layout=layout)

    return make
