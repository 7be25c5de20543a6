"""Deadlines for network operations: a total time, a minimum throughput, and a stop request.

Every loop that moves bytes (a download, an upload, a lake read) calls ``Deadline.check``
between reads or chunks, at most one stall timeout apart, so a stalled or trickling peer
and a stop request all end the operation within seconds. ``request_stop`` stops every
transfer of the process once Dagster interrupts the step (SIGTERM, the UI's Terminate):
worker threads do not receive Dagster's interrupt themselves. A ``Deadline``'s own ``stop``
event ends just its operation: the turnstile step stops its downloads at once that way,
and gives a week being committed a few seconds before ``request_stop``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_STOP = threading.Event()


def request_stop() -> None:
    """Ask every transfer of this process to stop at its next check (they raise ``Interrupted``)."""
    _STOP.set()


def clear_stop() -> None:
    """Allow transfers again (a new run in a long-lived process, or a test)."""
    _STOP.clear()


@contextmanager
def stop_transfers_on_interrupt() -> Iterator[None]:
    """Around a step's work: an interrupt (a BaseException such as Dagster's) stops worker-thread transfers too."""
    clear_stop()
    try:
        yield
    except BaseException as exc:
        if is_interrupt(exc):
            request_stop()
        raise


def is_interrupt(exc: BaseException) -> bool:
    """KeyboardInterrupt or Dagster's execution interrupt (SIGTERM, the UI's Terminate): BaseExceptions
    that are neither errors nor a normal exit."""
    return not isinstance(exc, Exception | SystemExit | GeneratorExit)


class TransferAborted(Exception):
    """A transfer stopped by its deadline, its throughput floor, or a stop request."""

    permanent = False


class DeadlineExceeded(TransferAborted):
    """The operation took longer than its total deadline."""


class TooSlow(TransferAborted):
    """Fewer bytes than the minimum throughput arrived over a whole window."""


class Interrupted(TransferAborted):
    """The run is being stopped; never retried."""

    permanent = True


class Deadline:
    """A total deadline and a minimum throughput for one operation.

    ``stop``, when given, is a stop request of this operation's own (a step cancelling the
    downloads it started while it lets commits finish), on top of the process-wide one.
    """

    def __init__(
        self, seconds: float, min_bytes_per_s: float = 0.0, window_s: float = 15.0, stop: threading.Event | None = None
    ):
        self.stop = stop
        self.seconds = seconds
        self.min_bytes_per_s = min_bytes_per_s
        self.window_s = window_s
        self.started = time.monotonic()
        self.ends = self.started + seconds
        self._window_start = self.started
        self._window_bytes = 0

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return time.monotonic() >= self.ends

    def stopped(self) -> bool:
        return _STOP.is_set() or (self.stop is not None and self.stop.is_set())

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry's backoff), or less once a stop is requested."""
        ends = time.monotonic() + seconds
        while not self.stopped() and (left := ends - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def check(self, new_bytes: int = 0) -> None:
        """Raise if stopped, past the deadline, or slower than the floor over the last full window."""
        if self.stopped():
            raise Interrupted(f"stopped on request after {self.elapsed():.1f} s")
        now = time.monotonic()
        if now >= self.ends:
            raise DeadlineExceeded(f"deadline of {self.seconds:g} s exceeded")
        self._window_bytes += new_bytes
        window = now - self._window_start
        if self.min_bytes_per_s > 0 and window >= self.window_s:
            rate = self._window_bytes / window
            if rate < self.min_bytes_per_s:
                raise TooSlow(
                    f"too slow: {self._window_bytes:,} bytes in {window:.0f} s "
                    f"({rate:,.0f} B/s, below the minimum of {self.min_bytes_per_s:,.0f} B/s)"
                )
            self._window_start, self._window_bytes = now, 0
