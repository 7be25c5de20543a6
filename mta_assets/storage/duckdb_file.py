"""The warehouse's DuckDB file: waiting for its single writer's lock, with one total deadline.

DuckDB lets one process write a file, and any other process that has it open (a notebook,
the DuckDB CLI, the dashboard in the middle of a query), even read-only, holds the lock.
A load waits for the lock with tenacity, at most ``deadline_s`` in total, and is the only
retry layer on this path (no connection retries of dagster-duckdb underneath). Whether an
error is worth waiting for is decided here, once: DuckDB's lock error is; anything else
(a full disk, a corrupted file, a wrong path) fails at once.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import tenacity

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_LOCK_DEADLINE_S = 120.0
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
T = TypeVar("T")


class WarehouseBusy(RuntimeError):
    """Another process held the warehouse file (transient: waited for, then reported)."""

    def __init__(self, database: str, holder: str, cause: str):
        super().__init__(f"warehouse {database} is held by {holder}: {cause}")
        self.database, self.holder = database, holder


def warehouse_path(database: str | None = None) -> Path:
    """The warehouse file as an absolute path: ``database``, else env MTA_WAREHOUSE, else the default."""
    chosen = database or os.environ.get("MTA_WAREHOUSE", "").strip() or DEFAULT_WAREHOUSE
    return Path(chosen).expanduser().resolve()


def lock_holder(message: str) -> str | None:
    """'PID 123 (/usr/bin/python3)' from DuckDB's lock error, else None (not a lock error)."""
    if "Could not set lock" not in message:
        return None
    match = _HOLDER.search(message)
    return f"PID {match['pid']} ({match['program']})" if match else "another process"


def busy_error(database: str | Path, error: BaseException) -> WarehouseBusy | None:
    """The error as ``WarehouseBusy`` when it is DuckDB's lock error, else None (permanent)."""
    import duckdb

    if isinstance(error, WarehouseBusy):
        return error
    if isinstance(error, duckdb.IOException) and (holder := lock_holder(str(error))):
        return WarehouseBusy(str(database), holder, str(error).splitlines()[0])
    return None


@contextmanager
def lock_errors_as_busy(database: str | Path) -> Iterator[None]:
    """Inside it, DuckDB's lock error on ``database`` is raised as ``WarehouseBusy``; other errors as they are."""
    import duckdb

    try:
        yield
    except duckdb.Error as error:
        busy = busy_error(database, error)
        if busy is None:
            raise
        raise busy from error


def open_for_writing(database: str | Path) -> None:
    """Open and close the file for writing: raises ``WarehouseBusy`` while another process holds it."""
    import duckdb

    Path(database).parent.mkdir(parents=True, exist_ok=True)
    with lock_errors_as_busy(database):
        duckdb.connect(str(database)).close()


def while_busy(
    work: Callable[[], T],
    database: str | Path,
    deadline_s: float = DEFAULT_LOCK_DEADLINE_S,
    on_wait: Callable[[WarehouseBusy, float], None] | None = None,
) -> T:
    """``work()``, again while it raises ``WarehouseBusy``, until ``deadline_s`` in total.

    ``on_wait(error, seconds_waited)`` hears each wait (for the log: who holds the file).
    After the deadline raises ``WarehouseBusy`` naming the file, the holder and the time
    waited; any other error propagates at once.
    """
    started = time.monotonic()

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_wait is not None:
            on_wait(state.outcome.exception(), time.monotonic() - started)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(WarehouseBusy),
        # stop_before_delay: no attempt starts after the deadline, so the wait never exceeds it.
        stop=tenacity.stop_before_delay(deadline_s),
        wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(work)
    except WarehouseBusy as error:
        waited = time.monotonic() - started
        raise WarehouseBusy(
            str(database), error.holder, f"still held after {waited:.0f} s (deadline {deadline_s:g} s); close it and re-run"
        ) from error
