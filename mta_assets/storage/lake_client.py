"""The lake at one URL: keys, verified puts that skip unchanged bytes, fetches, all with deadlines.

``LakeClient`` picks the ``LakeStore`` its URL names (``gs://BUCKET[/PREFIX]`` ->
``gcs.py``, else a local folder -> ``local.py``) and holds what every store shares: the
settings check, object keys under the lake's prefix, the checksums of a file to store and
the "already stored" comparison, the transfer deadlines, and interrupts ended as
``LakeError``. The ``Lake`` resource (``defs/resources.py``) builds one from its settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mta_assets.settings import SettingError, check_chunk_size, split_lake_url
from mta_assets.storage.deadline import Deadline, is_interrupt, request_stop
from mta_assets.storage.gcs import GcsStore
from mta_assets.storage.lake import ChunkCallback, LakeError, LakeStore, StoredObject, file_checksums, object_key
from mta_assets.storage.local import LocalStore


T = TypeVar("T")
R = TypeVar("R")
@functools.cache
def _lookup_threads() -> ThreadPoolExecutor:
    # One small pool for the process, kept: a GCS store builds a client per thread (its
    # credentials resolved once each), so threads made anew for every call would build
    # clients anew too. (Two first calls at once may each make a pool; an executor starts
    # no thread until it is given work, so the one not kept costs nothing.)
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="mta-lake-lookup")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LakeClient:
    """Where the weekly objects live: ``gs://BUCKET[/PREFIX]`` or a local folder.

    Every setting is given: the ``Lake`` resource holds their defaults, descriptions and
    environment variables.
    """

    url: str
    gcp_project: str | None
    gcp_credentials: str | None = dataclasses.field(repr=False)
    chunk_size_bytes: int
    retry_deadline_s: float
    request_timeout_s: float
    min_bytes_per_s: float

    # -- what the lake is ------------------------------------------------------------------

    @property
    def is_gcs(self) -> bool:
        return self._split() is not None

    @property
    def bucket_name(self) -> str:
        split = self._split()
        return split[0] if split else ""

    @property
    def prefix(self) -> str:
        split = self._split()
        return split[1] if split else ""

    @property
    def root(self) -> Path:
        return Path(self.url).expanduser().resolve()

    def _split(self) -> tuple[str, str] | None:
        try:
            return split_lake_url(self.url)
        except SettingError as exc:
            raise LakeError(str(exc), permanent=True) from None

    @functools.cached_property
    def store(self) -> LakeStore:
        """The store this URL names, built on first use (a bad URL or chunk size fails here)."""
        split = self._split()
        if split is None:
            return LocalStore(self.root)
        try:
            check_chunk_size(self.chunk_size_bytes)
        except SettingError as exc:
            raise LakeError(f"bucket gs://{split[0]}: {exc}", permanent=True) from None
        return GcsStore(
            bucket=split[0],
            project=self.gcp_project,
            credentials=self.gcp_credentials,
            chunk_size=self.chunk_size_bytes,
            retry_deadline_s=self.retry_deadline_s,
            request_timeout_s=self.request_timeout_s,
        )

    def check(self) -> None:
        """Validate the settings and prove the lake usable (folder writable; bucket exists and is allowed)."""
        if self.retry_deadline_s <= 0 or self.request_timeout_s <= 0 or self.min_bytes_per_s < 0:
            raise LakeError(
                "MTA_LAKE_DEADLINE_S and MTA_LAKE_TIMEOUT_S must be positive and MTA_MIN_BYTES_PER_S at least 0 "
                f"(got {self.retry_deadline_s}, {self.request_timeout_s}, {self.min_bytes_per_s})",
                permanent=True,
            )
        self.store.check()

    # -- keys ------------------------------------------------------------------------------

    def key_for(self, dataset: str, week: str, extension: str, file_name: str | None = None) -> str:
        return object_key(dataset, week, extension, self.prefix, file_name)

    def key(self, *parts: str) -> str:
        """A key under the lake's prefix for any dataset: ``key("quarantine", "2024", "x.txt")``."""
        pieces = [piece for part in parts for piece in part.strip("/").split("/") if piece]
        if any(piece in (".", "..") for piece in pieces):
            raise LakeError(f"{self.store.where}: key {'/'.join(parts)!r} may not contain '.' or '..'", permanent=True)
        return "/".join([self.prefix, *pieces] if self.prefix else pieces)

    def uri_for(self, key: str) -> str:
        return self.store.uri_for(key)

    # -- operations ---------------------------------------------------------------------------

    def _transfer_deadline(self, size: int) -> Deadline:
        # Long enough for the bytes at the slowest acceptable rate; the throughput floor and the
        # request timeout end a stalled or trickling transfer well before this backstop.
        floor = self.min_bytes_per_s or 1.0
        return Deadline(self.retry_deadline_s + size / floor, self.min_bytes_per_s, self.request_timeout_s)

    def put_file(
        self,
        source: Path,
        key: str,
        content_type: str,
        metadata: dict[str, str] | None = None,
        *,
        on_chunk: ChunkCallback | None = None,
        new_key: bool = False,
    ) -> StoredObject:
        """Store ``source`` at ``key`` atomically and verified; the source file is left in place.

        An object that already holds exactly these bytes is left as it is (no upload, same
        GCS generation, ``unchanged=True``): re-running an unchanged week costs one metadata
        request. ``new_key``: nothing was ever stored at ``key`` (a new generation's key), so
        that request is not made. ``metadata`` becomes the object's custom metadata on GCS
        (ignored locally).
        """
        try:
            crc32c, md5 = file_checksums(source)
            size = source.stat().st_size
        except OSError as exc:
            raise LakeError(
                f"{self.store.where}: cannot store {key}: the local file {source} cannot be read ({exc.strerror or exc})",
                permanent=True,
            ) from None
        started = time.perf_counter()
        with _interrupts_as_lake_errors(self.store.where, key):
            existing = None if new_key else self._existing_if_identical(key, size, crc32c, md5)
            if existing is not None:
                stored = dataclasses.replace(existing, chunks=0, unchanged=True)
            else:
                stored = self.store.put(
                    source, key, content_type, metadata, (size, crc32c, md5), self._transfer_deadline(size), on_chunk
                )
        return dataclasses.replace(stored, seconds=time.perf_counter() - started)

    def _existing_if_identical(self, key: str, size: int, crc32c: str, md5: str) -> StoredObject | None:
        if self.store.differs_cheaply(key, size):
            return None  # e.g. a local file's size, before reading it to hash it
        existing = self.store.stat(key)
        if existing is not None and (existing.size, existing.crc32c, existing.md5) == (size, crc32c, md5):
            return existing
        return None

    def stat(self, key: str) -> StoredObject | None:
        return self.store.stat(key)

    def fetch(self, key: str, dest_dir: Path) -> Path:
        """A local file with the object's bytes: the object's own path on a local lake (no copy),
        else a verified (crc32c) download into ``dest_dir``."""
        with _interrupts_as_lake_errors(self.store.where, key):
            return self.store.fetch(key, dest_dir, self._transfer_deadline)

    def lookups(self, lookup: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``lookup`` of each item (a request or two each, a manifest or an object's stat), a few
        at a time on the process's lookup threads, in order."""
        return list(_lookup_threads().map(lookup, items))

    def read_bytes(self, key: str) -> bytes | None:
        """A small object's bytes (a lock file, a manifest); None when it does not exist."""
        return self.store.read_bytes(key)

    def list_keys(self, prefix_under_lake: str) -> list[str]:
        """Full keys of the objects whose key starts with ``prefix/prefix_under_lake``, sorted."""
        under = prefix_under_lake.lstrip("/")
        return sorted(self.store.list(f"{self.prefix}/{under}" if self.prefix else under))

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is fine."""
        self.store.delete(key)

    def prune(self, prefix_under_lake: str, keep: Collection[str]) -> None:
        """Remove killed writes' partial files and emptied folders right under the prefix (a
        local lake's; GCS has neither), sparing the folders of the keys in ``keep``."""
        under = prefix_under_lake.lstrip("/")
        self.store.prune(f"{self.prefix}/{under}" if self.prefix else under, keep)

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only if no object has that key (atomic): True if this call created it."""
        return self.store.create_if_absent(key, data)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """A small object's bytes and version token (for ``replace_if``); None when it does not exist."""
        return self.store.read_versioned(key)

    def replace_if(self, key: str, data: bytes, token: str | None) -> str | None:
        """Compare-and-swap a small object: written only if still at ``token`` (None: absent); its new token or None."""
        return self.store.replace_if(key, data, token)

    def delete_if(self, key: str, token: str) -> bool:
        """Delete the object only if it is still at version ``token``."""
        return self.store.delete_if(key, token)


@contextlib.contextmanager
def _interrupts_as_lake_errors(where: str, key: str) -> Iterator[None]:
    """An interrupt (SIGTERM, the UI's Terminate) ends a transfer as a permanent LakeError.

    Dagster turns an interrupted step into a retry under its RetryPolicy; a permanent error
    does not retry. The previous object is untouched: an unfinished upload is never finalized.
    """
    try:
        yield
    except BaseException as exc:
        if not is_interrupt(exc):
            raise
        request_stop()
        raise LakeError(f"{where}: {key}: stopped, the run was interrupted; the previous object is kept", True) from None
