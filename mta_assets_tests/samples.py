"""Where the real MTA samples live (``../shared/mta-samples`` beside the repo), for tests.

The samples are never copied into the repository: tests read them in place and skip
with a reason when the folder is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES_ENV = "MTA_SAMPLES_DIR"


def samples_dir() -> Path:
    """``$MTA_SAMPLES_DIR``, else ``shared/mta-samples`` beside the repository."""
    override = os.environ.get(SAMPLES_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "mta-samples"


def require_samples() -> Path:
    """The samples folder, or skip the calling test saying why."""
    folder = samples_dir()
    if not (folder / "full-weeks").is_dir() or not (folder / "partial-weeks").is_dir():
        pytest.skip(f"real MTA samples not found at {folder} (set {SAMPLES_ENV} to their folder)")
    return folder


def rebuild_full_week(name: str, dest_dir: Path) -> Path:
    """Rebuild ``full-weeks/<name>`` (e.g. ``240106.csv.gz``) as MTA published it, with the
    samples' own ``to_mta_format.py``; returns ``dest_dir/turnstile_YYMMDD.txt``."""
    folder = require_samples()
    source = folder / "full-weeks" / name
    match = re.search(r"(\d{6})\.csv\.gz$", name)
    if not source.is_file() or not match:
        pytest.skip(f"full-week sample {source} not found")
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"turnstile_{match.group(1)}.txt"
    with target.open("wb") as out:
        subprocess.run(
            [sys.executable, str(folder / "to_mta_format.py"), str(source)],
            stdout=out,
            stderr=subprocess.PIPE,
            check=True,
        )
    return target


def offline_station_key(path: Path | None = None):
    """The ``station_key`` resource for tests: a local key file, or none (nothing listens on
    port 9 of this machine, so the fetch fails at once and the wide years keep no names)."""
    from mta_assets.defs.resources import StationKeySource

    return StationKeySource(path=str(path) if path else None, url="http://127.0.0.1:9/key.csv")
