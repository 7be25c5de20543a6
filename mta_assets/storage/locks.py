"""A per-week lock in the lake, so a week's objects always come from one download.

Two runs of the same week (a schedule tick and a manual backfill, say) could otherwise
interleave their uploads and leave the gzip object of one download beside the table of
the other. The lock is an object created only if absent (a GCS generation precondition
of 0, ``O_EXCL`` on a local lake), held while a week's objects are replaced, and
removed after. A holder that died leaves its lock behind: it is broken once older than
the lock's time to live, which is far longer than any commit takes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Protocol


class LockStore(Protocol):
    def key(self, *parts: str) -> str: ...
    def create_if_absent(self, key: str, data: bytes) -> bool: ...
    def read_bytes(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...


class WeekLocked(RuntimeError):
    """Another run held the week's lock for longer than we were willing to wait."""

    permanent = False


def lock_key(store: LockStore, week: str) -> str:
    return store.key("turnstile", "locks", f"{week}.lock")


@contextlib.contextmanager
def week_lock(
    store: LockStore, week: str, owner: str, wait_s: float = 300.0, ttl_s: float = 1800.0, poll_s: float = 0.5
) -> Iterator[None]:
    """Hold the week's lock while the block runs; wait up to ``wait_s`` for another holder."""
    key = lock_key(store, week)
    body = json.dumps({"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    deadline = time.monotonic() + wait_s
    while not store.create_if_absent(key, body.encode()):
        holder = _holder(store, key)
        if holder is not None and _abandoned(holder, ttl_s):
            store.delete(key)  # its holder died mid-commit; the objects it wrote are whole (atomic puts)
            continue
        if time.monotonic() >= deadline:
            who = holder.get("owner", "another run") if holder else "another run"
            raise WeekLocked(f"week {week}: {key} is held by {who}; gave up after {wait_s:.0f} s")
        time.sleep(poll_s)
    try:
        yield
    finally:
        store.delete(key)


def _abandoned(holder: dict, ttl_s: float) -> bool:
    """A lock whose holder is a dead process on this host, or older than its time to live."""
    if time.time() - float(holder.get("since", 0)) > ttl_s:
        return True
    if holder.get("host") == socket.gethostname() and holder.get("pid"):
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            return False
    return False


def _holder(store: LockStore, key: str) -> dict | None:
    raw = store.read_bytes(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"since": 0}
