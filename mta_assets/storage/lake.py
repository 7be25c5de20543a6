"""The data lake's one small interface (``LakeStore``), its errors, objects, checksums and keys.

A lake is a GCS bucket (``gs://BUCKET[/PREFIX]``, ``storage/gcs.py``) or a local folder
with the same layout (``storage/local.py``); ``storage/lake_client.py`` picks one from the
lake's URL, and nothing else asks which one it is. Every write is atomic and verified, so
a reader never sees a partial object and a failed write never replaces the last good
one; every operation has a deadline (docs/operations.md "Retries and deadlines") and every failure is
a ``LakeError`` that names the bucket or folder, the object and the cause, with
``permanent`` telling whether a retry can help.

A week's turnstile objects are committed together under generation keys that the week's
manifest names (``storage/commit.py``, which documents the layout); ``object_key`` is the
fixed key ``[PREFIX/]turnstile/<dataset>/<YYYY>/turnstile_<YYMMDD>.<ext>`` of weeks written
before manifests, named after the MTA file the week comes from (``2023-12-30`` ->
``turnstile/csv_gz/2024/turnstile_240106.csv.gz``), and of the ridership datasets, which
are one object per week. ``LakeClient.key`` builds keys of other datasets under the same prefix.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import hashlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from mta_assets.mta.calendar import file_name_for_week
from mta_assets.settings import DEFAULT_LAKE_URL, GCS_CHUNK_MULTIPLE, redact
from mta_assets.storage.deadline import Deadline

MIB = 1024 * 1024
__all__ = [
    "DEFAULT_LAKE_URL", "GCS_CHUNK_MULTIPLE", "MIB", "LakeError", "LakeStore", "StoredObject",
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
        """What a materialization reports about the object (plain values; Dagster shows ``uri`` as a link)."""
        return {
            "uri": self.uri,
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
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """A small object's bytes and its version token (GCS generation, a local content hash); None if absent."""

    @abc.abstractmethod
    def replace_if(self, key: str, data: bytes, token: str | None) -> str | None:
        """Write a small object only if it is still at version ``token`` (None: only if absent).

        Atomic compare-and-swap: the new version's token, or None when another writer got
        there first. Leases and week manifests are written this way.
        """

    @abc.abstractmethod
    def delete_if(self, key: str, token: str) -> bool:
        """Delete the object only if it is still at version ``token``; True if this call deleted it."""

    @abc.abstractmethod
    def check(self) -> None:
        """Fail now, permanently, if the lake cannot be used at all (missing, unwritable, refused)."""

    def prune(self, prefix: str, keep: Collection[str]) -> None:
        """Remove the partial files that killed writes left in the folders right under ``prefix``
        that hold none of the keys in ``keep``, and those folders once empty. The caller holds
        the lease that keeps other writers out of them. Nothing to do where writes leave no
        partial object and keys make no folders (GCS)."""

    def differs_cheaply(self, key: str, size: int) -> bool:
        """True when it is cheap to tell that the object is absent or not ``size`` bytes long."""
        return False
