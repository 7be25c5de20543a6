"""Local staging for one run: a folder per week in flight, gone when the week is done.

A run stages only the weeks it is working on (a few at a time), never the whole range,
so local disk stays bounded whatever the range. Each run owns one folder,
``<base>/mta-staging/run-<run_id>/``, marked with the owner's host and pid; a run that
was killed leaves its folder behind, and the next run on the host removes every folder
whose owner is no longer alive. Within a run, a download staged whole is kept until
its week is done, so a step retry after a lake outage does not download it again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

STAGING_ENV = "MTA_STAGING_DIR"
_OWNER = "owner.json"
# A folder of a live process on another host (a shared disk) is only removed once it is
# this old: we cannot see that process, and no run stages one week for a day.
_FOREIGN_STALE_S = 24 * 3600


def staging_base() -> Path:
    """Where staging folders live: ``MTA_STAGING_DIR`` (checked writable), else the temp dir."""
    from mta_assets.settings import staging_root

    return staging_root() / "mta-staging"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _stale(folder: Path) -> bool:
    try:
        owner = json.loads((folder / _OWNER).read_text())
    except (OSError, ValueError):
        # No owner file: a folder being created right now, or debris. Only old debris goes.
        try:
            return time.time() - folder.stat().st_mtime > 3600
        except OSError:
            return False
    if owner.get("host") == socket.gethostname():
        return not _alive(int(owner.get("pid", 0)))
    return time.time() - float(owner.get("created", 0)) > _FOREIGN_STALE_S


def clean_stale(base: Path) -> list[Path]:
    """Remove the staging folders of runs that are no longer alive; return what was removed."""
    removed = []
    if not base.is_dir():
        return removed
    for folder in base.iterdir():
        if folder.is_dir() and folder.name.startswith("run-") and _stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def disk_usage(folder: Path) -> int:
    """Bytes in files under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class RunStaging:
    """The staging folder of one run; ``week(week)`` is a week's own sub-folder."""

    def __init__(self, run_id: str, base: Path | None = None):
        self.base = base or staging_base()
        self.root = self.base / f"run-{run_id}"
        self.peak_bytes = 0

    def open(self) -> RunStaging:
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            clean_stale(self.base)
            self.root.mkdir(exist_ok=True)
            owner = {"host": socket.gethostname(), "pid": os.getpid(), "created": time.time()}
            (self.root / _OWNER).write_text(json.dumps(owner))
        except OSError as exc:
            raise OSError(
                f"{STAGING_ENV}: cannot use {self.base} as the local staging folder ({exc}); "
                "set it to a writable folder with room for a few weeks (about 100 MB a week)"
            ) from exc
        return self

    def week(self, week: str) -> Path:
        folder = self.root / week
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def note_usage(self) -> int:
        """Measure the run's staged bytes now and keep the peak (reported in the step's metadata)."""
        used = disk_usage(self.root)
        self.peak_bytes = max(self.peak_bytes, used)
        return used

    def done(self, week: str) -> None:
        shutil.rmtree(self.root / week, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
