"""A per-week lease in the lake, so a week's objects always come from one download.

Two runs of the same week (a schedule tick and a manual backfill, say) could otherwise
interleave their uploads. The lock is a small object holding its owner, host and the
time its lease ends. It is taken and renewed by compare-and-swap (``replace_if``: a GCS
generation precondition, an flock-guarded replace on a local lake), so:

* the holder renews its lease every ``lease_s / 3`` seconds from a background thread;
* a waiter takes over a lock whose lease ended (its holder crashed, on this host or on
  any other pod or container) with the same compare-and-swap, so two waiters never both
  win; a lock is therefore never stuck for longer than ``lease_s`` (30 s by default);
* a holder whose renewal found the lock taken (it was paused longer than its lease) has
  lost it: ``Lease.check()`` raises ``LeaseLost`` and the commit stops before its
  manifest. The manifest is itself written by compare-and-swap (``storage/commit.py``),
  so even a holder paused between its check and its write cannot replace a newer commit.

Clocks: expiry is wall-clock time written by the holder and read by waiters on other
hosts; a lease a few times longer than the renewal interval absorbs ordinary skew.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Protocol

DEFAULT_LEASE_S = 30.0


class LockStore(Protocol):
    def key(self, *parts: str) -> str: ...
    def read_versioned(self, key: str) -> tuple[bytes, str] | None: ...
    def replace_if(self, key: str, data: bytes, token: str | None) -> str | None: ...
    def delete_if(self, key: str, token: str) -> bool: ...


class WeekLocked(RuntimeError):
    """Another run held the week's lock for longer than we were willing to wait."""

    permanent = False


class LeaseLost(RuntimeError):
    """Our lease ended or was taken over before the commit: nothing may be committed."""

    permanent = False


def lock_key(store: LockStore, week: str, area: str = "turnstile") -> str:
    return store.key(area, "locks", f"{week}.lock")


class Lease:
    """A held lock: renewed in the background until released; ``check()`` before committing."""

    def __init__(self, store: LockStore, key: str, week: str, owner: str, lease_s: float, token: str, body: dict):
        self.store, self.key, self.week, self.owner, self.lease_s = store, key, week, owner, lease_s
        self._token: str | None = token
        self._body = body
        self._lost: str | None = None
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease {key}", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise ``LeaseLost`` unless we still hold the lock with time to spare for one write."""
        with self._guard:
            expires = float(self._body["expires"])
            if self._lost is None and expires - time.time() < self.lease_s / 3:
                self._renew()  # the background renewal is late (a busy host): renew now
            if self._lost is not None:
                raise LeaseLost(f"week {self.week}: lost the lock {self.key}: {self._lost}; nothing was committed")

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._guard:
                if self._lost is None:
                    self._renew()

    def _renew(self) -> None:
        body = {**self._body, "expires": time.time() + self.lease_s}
        try:
            token = self.store.replace_if(self.key, json.dumps(body).encode(), self._token)
        except Exception as exc:  # noqa: BLE001 - an outage: the lease may still hold; the next renewal retries
            if time.time() > float(self._body["expires"]):
                self._lost = f"could not renew before the lease ended ({exc})"
            return
        if token is None:
            self._lost = "another run took it over after our lease ended"
        else:
            self._token, self._body = token, body

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        with self._guard:
            if self._lost is None and self._token is not None:
                with contextlib.suppress(Exception):  # an expired lease is harmless: it is taken over
                    self.store.delete_if(self.key, self._token)
            self._token = None


@contextlib.contextmanager
def week_lock(
    store: LockStore,
    week: str,
    owner: str,
    wait_s: float = 300.0,
    lease_s: float = DEFAULT_LEASE_S,
    poll_s: float = 0.5,
    area: str = "turnstile",
) -> Iterator[Lease]:
    """Hold the week's lease while the block runs; wait up to ``wait_s`` for a live holder."""
    key = lock_key(store, week, area)
    body = {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex}
    deadline = time.monotonic() + wait_s
    while True:
        current = store.read_versioned(key)
        holder = _parse(current[0]) if current else None
        if current is None or _expired(holder):
            mine = {**body, "since": time.time(), "expires": time.time() + lease_s}
            token = store.replace_if(key, json.dumps(mine).encode(), current[1] if current else None)
            if token is not None:
                break
            continue  # another waiter won the race: look at its lock
        if time.monotonic() >= deadline:
            who = f"{holder.get('owner', 'another run')} on {holder.get('host', '?')}"
            raise WeekLocked(f"week {week}: {key} is held by {who}; gave up after {wait_s:.0f} s")
        time.sleep(poll_s)
    lease = Lease(store, key, week, owner, lease_s, token, mine)
    try:
        yield lease
    finally:
        lease.release()


def _expired(holder: dict) -> bool:
    """A lease that ended (its holder stopped renewing), or a dead process on this host."""
    # A lock written before leases has only "since": it keeps that version's 30-minute rule.
    if time.time() > float(holder.get("expires", float(holder.get("since", 0)) + 1800)):
        return True
    if holder.get("host") == socket.gethostname() and holder.get("pid"):
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OverflowError):
            return False
    return False


def _parse(raw: bytes) -> dict:
    try:
        holder = json.loads(raw)
        return holder if isinstance(holder, dict) else {}
    except ValueError:
        return {}  # unreadable: treated as expired (no "expires")
