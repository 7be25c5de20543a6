"""How a run's process uses memory: settings the steps apply before their first table.

Issue 11's bound is 400 MB of resident memory for any range; each setting here is
measured in the README ("Benchmark", memory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

_LOCK = threading.Lock()
# glibc's mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1024 * 1024
ARENAS = 2


def tune_memory() -> None:
    """malloc's arenas and large blocks, Arrow's allocator, no pandas behind Arrow's back.

    Idempotent; call at the start of a step, before its threads and its first table.
    """
    import pyarrow as pa

    with _LOCK:
        _bound_malloc()
        _keep_pandas_out_of_arrow(pa)
        # Arrow's bundled allocators (mimalloc, jemalloc) keep freed pages for reuse, so each
        # week parsed leaves the process larger; malloc returns a parse's large blocks to the
        # system when they are freed. Measured on 7 real weeks in one run: 487 MB peak with
        # mimalloc, 415 MB with the system allocator, in the same time (README "Benchmark").
        pa.set_memory_pool(pa.system_memory_pool())


def _bound_malloc() -> None:
    """Two malloc arenas for the whole process, and blocks of 1 MiB or more mapped apart.

    Each week runs on a thread of its own, and glibc gives new threads new arenas (up to 8
    per core), each keeping the free memory of the weeks it served: over a 52-week run the
    floor rose from 280 to 310 MB and kept rising. A parse's large temporary arrays, mapped
    apart, go back to the system when freed instead of leaving holes in an arena. Nothing
    to do where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return
    if mallopt is None:
        return
    mallopt(_M_ARENA_MAX, ARENAS)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


class _NoPandas:
    """A meta-path finder under which ``import pandas`` fails, for one call."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is kept out of Arrow in this process", name=name)
        return None


def _keep_pandas_out_of_arrow(pa) -> None:
    """Let pyarrow decide, once, that it works without pandas.

    pyarrow imports pandas on its first array conversion whenever pandas is installed
    (it is: the xls station key needs it), to recognise pandas objects;
    no step of ours hands it one, and the import costs 43 MB of resident memory in every
    run (README "Benchmark": the 400 MB bound). pyarrow asks once without insisting and
    remembers the answer; later calls that need pandas (``to_pandas``, ``from_pandas``)
    still import it, so code that does use pandas is unaffected.
    """
    if "pandas" in sys.modules:
        return  # already imported by someone else: nothing left to save
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])  # the first conversion: pyarrow tries pandas here, quietly
    finally:
        sys.meta_path.remove(finder)
