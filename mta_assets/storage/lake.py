"""The data lake: one small interface (``LakeStore``) and the ``Lake`` resource that picks its implementation.

A lake is a GCS bucket (``gs://BUCKET[/PREFIX]``, ``storage/gcs.py``) or a local folder
with the same layout (``storage/local.py``). Nothing outside this package asks which one
it is. Every write is atomic and verified, so a reader never sees a partial object and a
failed write never replaces the last good one; every operation has a deadline (README
"Retries and deadlines") and every failure is a ``LakeError`` that names the bucket or
folder, the object and the cause, with ``permanent`` telling whether a retry can help.

Object keys of the weekly datasets are
``[PREFIX/]turnstile/<dataset>/<YYYY>/turnstile_<YYMMDD>.<ext>``, named after the MTA file
the week comes from (``2023-12-30`` -> ``turnstile/csv_gz/2024/turnstile_240106.csv.gz``);
``Lake.key`` builds keys of other datasets under the same prefix.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from mta_assets.mta.calendar import file_name_for_week
from mta_assets.settings import (
    DEFAULTS,
    GCS_CHUNK_MULTIPLE,
    SettingError,
    check_chunk_size,
    redact,
    split_lake_url,
)
from mta_assets.storage.deadline import Deadline, is_interrupt, request_stop

MIB = 1024 * 1024
DEFAULT_LAKE_URL = "data/lake"
__all__ = [
    "DEFAULT_LAKE_URL", "GCS_CHUNK_MULTIPLE", "MIB", "Lake", "LakeError", "LakeStore", "StoredObject",
    "file_checksums", "object_key",
]

ChunkCallback = Callable[[int, int, int], None]  # (chunk number, bytes sent, total bytes)


class LakeError(RuntimeError):
    """A lake operation failed; the message names the bucket or folder, the object and the cause.

    ``permanent`` is True when retrying cannot help (missing bucket, permission, a bad
    setting, a missing object), False for outages, timeouts and checksum mismatches in transit.
    """

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(redact(message))
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class StoredObject:
    uri: str
    key: str
    size: int
    crc32c: str  # base64, as GCS reports it
    md5: str  # base64, as GCS reports it
    # How the object got there, not what it is: not part of equality.
    chunks: int = dataclasses.field(default=1, compare=False)
    seconds: float = dataclasses.field(default=0.0, compare=False)
    unchanged: bool = dataclasses.field(default=False, compare=False)  # already held these bytes

    @property
    def throughput_mib_s(self) -> float:
        return self.size / MIB / self.seconds if self.seconds > 0 else 0.0

    def metadata(self) -> dict[str, Any]:
        return {
            "uri": dg.MetadataValue.url(self.uri) if self.uri.startswith("gs://") else dg.MetadataValue.path(self.uri),
            "stored_bytes": self.size,
            "crc32c": self.crc32c,
            "md5": self.md5,
            "upload_chunks": self.chunks,
            "already_stored": self.unchanged,
            "upload_seconds": round(self.seconds, 3),
            "upload_mib_per_s": round(self.throughput_mib_s, 1),
        }


def file_checksums(path: Path, block: int = 4 * MIB) -> tuple[str, str]:
    """(crc32c, md5) of a file, base64 encoded the way GCS reports them."""
    import google_crc32c

    crc = google_crc32c.Checksum()
    md5 = hashlib.md5()
    with open(path, "rb") as handle:
        while data := handle.read(block):
            crc.update(data)
            md5.update(data)
    return base64.b64encode(crc.digest()).decode(), base64.b64encode(md5.digest()).decode()


def object_key(dataset: str, week: str, extension: str, prefix: str = "", file_name: str | None = None) -> str:
    """The key of a week's object, named after the MTA file (``file_name`` when the one downloaded differs)."""
    name = (file_name or file_name_for_week(week)).removesuffix(".txt") + extension
    year = "20" + name[len("turnstile_") : len("turnstile_") + 2]
    return "/".join(part for part in (prefix, "turnstile", dataset, year, name) if part)


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


class LakeStore(abc.ABC):
    """Where the bytes of a lake live. Keys are full object keys (the lake's prefix included)."""

    #: "bucket gs://NAME" or "local lake /path", for messages
    where: str

    @abc.abstractmethod
    def uri_for(self, key: str) -> str: ...

    @abc.abstractmethod
    def put(
        self, source: Path, key: str, content_type: str, metadata: dict[str, str] | None,
        checksums: tuple[int, str, str], deadline: Deadline, on_chunk: ChunkCallback | None,
    ) -> StoredObject:
        """Store ``source`` at ``key`` atomically and verified; ``checksums`` = (size, crc32c, md5)."""

    @abc.abstractmethod
    def stat(self, key: str) -> StoredObject | None: ...

    @abc.abstractmethod
    def fetch(self, key: str, dest_dir: Path, deadline_for: Callable[[int], Deadline]) -> Path:
        """The object's bytes as a local file; ``deadline_for(size)`` gives the transfer its deadline."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def create_if_absent(self, key: str, data: bytes) -> bool: ...

    @abc.abstractmethod
    def check(self) -> None:
        """Fail now, permanently, if the lake cannot be used at all (missing, unwritable, refused)."""

    def differs_cheaply(self, key: str, size: int) -> bool:
        """True when it is cheap to tell that the object is absent or not ``size`` bytes long."""
        return False


class Lake(dg.ConfigurableResource):
    """Where the weekly objects live: ``gs://BUCKET[/PREFIX]`` or a local folder."""

    url: str = Field(
        default=DEFAULT_LAKE_URL,
        description="gs://BUCKET[/PREFIX] for Google Cloud Storage, or a local folder (env MTA_LAKE_URL).",
    )
    gcp_project: str | None = Field(default=None, description="GCP project for the storage client (env MTA_GCP_PROJECT).")
    gcp_credentials: str | None = Field(
        default=None,
        repr=False,
        description="Base64-encoded service-account key; unset means Application Default Credentials "
        "(env MTA_GCP_CREDENTIALS). Ignored when STORAGE_EMULATOR_HOST is set.",
    )
    chunk_size_bytes: int = Field(
        default=8 * MIB,
        description="Resumable upload chunk size, a multiple of 256 KiB (env MTA_UPLOAD_CHUNK_BYTES).",
    )
    retry_deadline_s: float = Field(
        default=DEFAULTS["MTA_LAKE_DEADLINE_S"],
        description="How long one lake request keeps retrying transient errors (env MTA_LAKE_DEADLINE_S).",
    )
    request_timeout_s: float = Field(
        default=DEFAULTS["MTA_LAKE_TIMEOUT_S"],
        description="Seconds to connect, and without an answer, before one lake request fails (env MTA_LAKE_TIMEOUT_S).",
    )
    min_bytes_per_s: float = Field(
        default=DEFAULTS["MTA_MIN_BYTES_PER_S"],
        description="Slowest acceptable upload or download, over each request-timeout window (env MTA_MIN_BYTES_PER_S).",
    )

    # The store built for this configuration (model_copy keeps private attributes: keyed to be safe).
    _store: tuple[tuple, LakeStore] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Before the first download of a run: a lake that cannot work fails the run now, once.
        self.check()

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

    @property
    def store(self) -> LakeStore:
        config = (self.url, self.gcp_project, self.gcp_credentials, self.chunk_size_bytes,
                  self.retry_deadline_s, self.request_timeout_s)
        if self._store is None or self._store[0] != config:
            self._store = (config, self._new_store())
        return self._store[1]

    def _new_store(self) -> LakeStore:
        split = self._split()
        if split is None:
            from mta_assets.storage.local import LocalStore

            return LocalStore(self.root)
        from mta_assets.storage.gcs import GcsStore

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
    ) -> StoredObject:
        """Store ``source`` at ``key`` atomically and verified; the source file is left in place.

        An object that already holds exactly these bytes is left as it is (no upload, same
        GCS generation, ``unchanged=True``): re-running an unchanged week costs one metadata
        request. ``metadata`` becomes the object's custom metadata on GCS (ignored locally).
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
            existing = self._existing_if_identical(key, size, crc32c, md5)
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

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only if no object has that key (atomic): True if this call created it."""
        return self.store.create_if_absent(key, data)
