"""A range of weeks processed in one step: bounded parallelism, per-week outcomes.

Backfills run a whole partition range in one run (Dagster's per-run start-up is paid
once). Each week is still its own unit: it succeeds or fails alone, and a failure
names its week without touching the other weeks' results.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mta_assets.settings import staging_root

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class WeekFile:
    """A local file ready to be stored in the lake for one week."""

    week: str
    path: Path
    content_type: str


@dataclasses.dataclass
class WeekBatch:
    """What an asset hands to the lake IO manager: files for the weeks that succeeded,
    and a reason for each week that did not (those are named, never stored)."""

    files: dict[str, WeekFile] = dataclasses.field(default_factory=dict)
    failures: dict[str, str] = dataclasses.field(default_factory=dict)
    # Per-week metadata for the materialization events the IO manager logs itself
    # when only some weeks of a range succeeded.
    metadata: dict[str, dict] = dataclasses.field(default_factory=dict)
    # Whether re-running could help (an unreachable source), so Dagster's retry policy applies.
    retryable: bool = False


def worker_count(requested: int, weeks: int) -> int:
    """Threads for a range: the work is I/O, zlib and Arrow, which release the GIL."""
    available = requested if requested > 0 else (os.cpu_count() or 2)
    return max(1, min(available, weeks))


def map_weeks(
    weeks: Sequence[str], work: Callable[[str], T], max_workers: int = 0
) -> tuple[dict[str, T], dict[str, WeekError]]:
    """Run ``work`` for every week; return (results, errors) keyed by week, in week order."""
    results: dict[str, T] = {}
    failures: dict[str, WeekError] = {}
    workers = worker_count(max_workers, len(weeks))
    if workers == 1:
        outcomes = [_attempt(work, week) for week in weeks]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mta-week") as pool:
            outcomes = list(pool.map(lambda week: _attempt(work, week), weeks))
    for week, (value, error) in zip(weeks, outcomes):
        if error is None:
            results[week] = value
        else:
            failures[week] = error
    return results, failures


class WeekError(Exception):
    """Why one week failed; the message always names the week."""

    def __init__(self, week: str, cause: Exception):
        message = str(cause) or type(cause).__name__
        super().__init__(message if week in message else f"week {week}: {message}")
        self.week = week
        self.cause = cause


def _attempt(work: Callable[[str], T], week: str) -> tuple[T | None, WeekError | None]:
    try:
        return work(week), None
    except Exception as exc:  # reported per week by the caller
        return None, WeekError(week, exc)


def staging_dir(name: str) -> Path:
    """A fresh local folder for one step's intermediate files (env MTA_STAGING_DIR, else the temp dir).

    The lake consumes the files it stores; whatever a failed step leaves behind goes
    when the process ends.
    """
    base = staging_root()  # MTA_STAGING_DIR checked: a clear error naming it, not a bare OSError
    folder = Path(tempfile.mkdtemp(prefix=f"mta-{name}-", dir=base))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
