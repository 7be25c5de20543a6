"""The data lake: a GCS bucket (``gs://BUCKET[/PREFIX]``) or a local folder with the same layout.

Every write is atomic and verified, so a reader never sees a partial object and a
failed write never replaces the last good one:

* GCS: one resumable upload, in chunks, straight to the final name. GCS only
  creates the object when the upload finalizes, and we send the crc32c and md5
  we computed locally in the upload's metadata, so GCS refuses to finalize bytes
  that differ. An interrupted upload leaves the previous generation in place.
  The finished object's size and hashes are compared with ours once more.
* Local folder: write a temporary file beside the target, fsync, ``os.replace``.

Object keys are ``[PREFIX/]turnstile/<dataset>/<YYYY>/turnstile_<YYMMDD>.<ext>``,
named like the MTA file the week comes from (the year is the file's, so
``2023-12-30`` -> ``turnstile/csv_gz/2024/turnstile_240106.csv.gz``).
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mta_assets.mta.calendar import file_name_for_week

MIB = 1024 * 1024
GCS_CHUNK_MULTIPLE = 256 * 1024
DEFAULT_LAKE_URL = "data/lake"

ChunkCallback = Callable[[int, int, int], None]  # (chunk number, bytes sent, total bytes)


class LakeError(RuntimeError):
    """A lake operation failed; the message names the bucket or folder and the object."""


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


def object_key(dataset: str, week: str, extension: str, prefix: str = "") -> str:
    name = file_name_for_week(week).removesuffix(".txt") + extension
    year = "20" + name[len("turnstile_") : len("turnstile_") + 2]
    return "/".join(part for part in (prefix, "turnstile", dataset, year, name) if part)


class _LocalCopies:
    """Process-wide cache of lake objects already on local disk, keyed by URI and crc32c.

    Steps of one run that share a machine hand a 33 MB file to the next step without a
    round trip to GCS; a step on another machine, or a changed object, downloads.
    Bounded in bytes, oldest evicted first.
    """

    def __init__(self, max_bytes: int = 2048 * MIB):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Path, str, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._dir: Path | None = None

    def directory(self) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="mta-lake-cache-"))
                atexit.register(shutil.rmtree, self._dir, ignore_errors=True)
            return self._dir

    def adopt(self, uri: str, source: Path, crc32c: str) -> Path:
        """Keep ``source`` (moved, not copied) as the local copy of ``uri``, under the object's name."""
        target = self.directory() / uuid.uuid4().hex / uri.rsplit("/", 1)[-1]
        target.parent.mkdir()
        shutil.move(source, target)
        with self._lock:
            self._forget(uri)
            self._entries[uri] = (target, crc32c, target.stat().st_size)
            while sum(size for _, _, size in self._entries.values()) > self.max_bytes and len(self._entries) > 1:
                self._forget(next(iter(self._entries)))
        return target

    def get(self, uri: str, crc32c: str) -> Path | None:
        with self._lock:
            entry = self._entries.get(uri)
            if entry and entry[1] == crc32c and entry[0].exists():
                self._entries.move_to_end(uri)
                return entry[0]
            return None

    def _forget(self, uri: str) -> None:
        entry = self._entries.pop(uri, None)
        if entry:
            shutil.rmtree(entry[0].parent, ignore_errors=True)


LOCAL_COPIES = _LocalCopies()
_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()


class Lake(dg.ConfigurableResource):
    """Where the weekly objects live: ``gs://BUCKET[/PREFIX]`` or a local folder."""

    url: str = Field(
        default=DEFAULT_LAKE_URL,
        description="gs://BUCKET[/PREFIX] for Google Cloud Storage, or a local folder (env MTA_LAKE_URL).",
    )
    gcp_project: str | None = Field(default=None, description="GCP project for the storage client (env MTA_GCP_PROJECT).")
    gcp_credentials: str | None = Field(
        default=None,
        description="Base64-encoded service-account key; unset means Application Default Credentials "
        "(env MTA_GCP_CREDENTIALS). Ignored when STORAGE_EMULATOR_HOST is set.",
    )
    chunk_size_bytes: int = Field(
        default=8 * MIB,
        description="Resumable upload chunk size, a multiple of 256 KiB (env MTA_UPLOAD_CHUNK_BYTES).",
    )
    retry_deadline_s: float = Field(default=120.0, description="How long GCS calls retry transient errors.")

    @property
    def is_gcs(self) -> bool:
        return self.url.startswith("gs://")

    @property
    def bucket_name(self) -> str:
        return self.url.removeprefix("gs://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        if self.is_gcs:
            parts = self.url.removeprefix("gs://").split("/", 1)
            return parts[1].strip("/") if len(parts) > 1 else ""
        return ""

    @property
    def root(self) -> Path:
        return Path(self.url).expanduser().resolve()

    def key_for(self, dataset: str, week: str, extension: str, file_name: str | None = None) -> str:
        if file_name:
            name = file_name.removesuffix(".txt") + extension
            year = "20" + name[len("turnstile_") : len("turnstile_") + 2]
            return "/".join(part for part in (self.prefix, "turnstile", dataset, year, name) if part)
        return object_key(dataset, week, extension, self.prefix)

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def fetch(self, key: str, dest_dir: Path) -> Path:
        if not self.is_gcs:
            return self.local_path(key)
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / key.rsplit("/", 1)[-1]
        try:
            self._bucket().blob(key).download_to_filename(str(target), checksum="crc32c", retry=self._retry())
        except Exception as exc:
            target.unlink(missing_ok=True)
            raise self._explain(exc, key, "download") from exc
        return target

    def delete(self, key: str) -> None:
        if not self.is_gcs:
            (self.root / key).unlink(missing_ok=True)
            return
        from google.api_core import exceptions as gexc

        try:
            self._bucket().blob(key).delete(retry=self._retry())
        except gexc.NotFound:
            pass

    def create_if_absent(self, key: str, data: bytes) -> bool:
        if not self.is_gcs:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return True
        from google.api_core import exceptions as gexc

        try:
            self._bucket().blob(key).upload_from_string(data, if_generation_match=0)
        except gexc.PreconditionFailed:
            return False
        return True

    def read_bytes(self, key: str) -> bytes | None:
        if not self.is_gcs:
            path = self.root / key
            return path.read_bytes() if path.exists() else None
        blob = self._bucket().get_blob(key)
        return None if blob is None else blob.download_as_bytes()

    def uri_for(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{key}" if self.is_gcs else str(self.root / key)

    # -- writing -----------------------------------------------------------------

    def put_file(
        self,
        source: Path,
        key: str,
        content_type: str,
        on_chunk: ChunkCallback | None = None,
        keep_local_copy: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Store ``source`` at ``key`` atomically and verified; the source file is consumed.

        An object that already holds exactly these bytes is left as it is (no upload, same
        GCS generation): re-running an unchanged week costs one metadata request.
        """
        crc32c, md5 = file_checksums(source)
        size = source.stat().st_size
        started = time.perf_counter()
        existing = self._existing_if_identical(key, size, crc32c, md5)
        if existing is not None:
            stored = dataclasses.replace(existing, chunks=0, unchanged=True)
        elif self.is_gcs:
            stored = self._put_gcs(source, key, content_type, size, crc32c, md5, on_chunk)
        else:
            stored = self._put_local(source, key, size, crc32c, md5)
        stored = dataclasses.replace(stored, seconds=time.perf_counter() - started)
        if self.is_gcs and keep_local_copy:
            LOCAL_COPIES.adopt(stored.uri, source, crc32c)
        return stored

    def _existing_if_identical(self, key: str, size: int, crc32c: str, md5: str) -> StoredObject | None:
        if not self.is_gcs and (not (self.root / key).exists() or (self.root / key).stat().st_size != size):
            return None  # cheap answer before reading a local file to hash it
        existing = self.stat(key)
        if existing is not None and (existing.size, existing.crc32c, existing.md5) == (size, crc32c, md5):
            return existing
        return None

    def _put_local(self, source: Path, key: str, size: int, crc32c: str, md5: str) -> StoredObject:
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, 4 * MIB)
                out.flush()
                os.fsync(out.fileno())
            temp = Path(temp_name)
            temp.chmod(0o644)  # mkstemp creates 0600; lake readers are other users and processes
            if temp.stat().st_size != size:
                temp.unlink(missing_ok=True)
                raise LakeError(f"local lake {self.root}: {key} was written short; the previous version is kept")
            os.replace(temp, target)
        except OSError as exc:
            raise LakeError(f"local lake {self.root}: cannot write {key}: {exc}") from exc
        return StoredObject(uri=str(target), key=key, size=size, crc32c=crc32c, md5=md5)

    def _put_gcs(
        self,
        source: Path,
        key: str,
        content_type: str,
        size: int,
        crc32c: str,
        md5: str,
        on_chunk: ChunkCallback | None,
    ) -> StoredObject:
        if self.chunk_size_bytes <= 0 or self.chunk_size_bytes % GCS_CHUNK_MULTIPLE:
            raise LakeError(f"chunk size {self.chunk_size_bytes} is not a positive multiple of 256 KiB")
        blob = self._bucket().blob(key, chunk_size=self.chunk_size_bytes)
        blob.content_type = content_type
        # GCS checks these at finalization and refuses an object whose bytes differ.
        blob.crc32c = crc32c
        blob.md5_hash = md5
        uri = self.uri_for(key)
        chunks = 0
        try:
            writer = blob.open(
                "wb",
                chunk_size=self.chunk_size_bytes,
                content_type=content_type,
                retry=self._retry(),
                ignore_flush=True,
            )
            with open(source, "rb") as src:
                sent = 0
                while data := src.read(self.chunk_size_bytes):
                    writer.write(data)
                    sent += len(data)
                    chunks += 1
                    if on_chunk:
                        on_chunk(chunks, sent, size)
            # Closing finalizes; it is only reached when every byte was written.
            writer.close()
            blob.reload(retry=self._retry())
        except LakeError:
            raise
        except Exception as exc:  # google.api_core / requests / urllib3 errors all end here
            raise self._explain(exc, key, "upload") from exc
        if blob.size != size or blob.crc32c != crc32c or blob.md5_hash != md5:
            raise LakeError(
                f"{uri}: stored object does not match the local file "
                f"(size {blob.size} vs {size}, crc32c {blob.crc32c} vs {crc32c}, md5 {blob.md5_hash} vs {md5})"
            )
        return StoredObject(uri=uri, key=key, size=size, crc32c=crc32c, md5=md5, chunks=chunks)

    # -- reading -----------------------------------------------------------------

    def stat(self, key: str) -> StoredObject | None:
        if not self.is_gcs:
            path = self.root / key
            if not path.exists():
                return None
            crc32c, md5 = file_checksums(path)
            return StoredObject(uri=str(path), key=key, size=path.stat().st_size, crc32c=crc32c, md5=md5)
        try:
            blob = self._bucket().get_blob(key, retry=self._retry())
        except Exception as exc:
            raise self._explain(exc, key, "read") from exc
        if blob is None:
            return None
        return StoredObject(uri=self.uri_for(key), key=key, size=blob.size, crc32c=blob.crc32c, md5=blob.md5_hash)

    def local_path(self, key: str) -> Path:
        """A local file with the object's bytes: the file itself on a local lake, else a verified download."""
        uri = self.uri_for(key)
        if not self.is_gcs:
            path = self.root / key
            if not path.exists():
                raise LakeError(f"local lake {self.root}: {key} does not exist")
            return path
        stored = self.stat(key)
        if stored is None:
            raise LakeError(f"{uri} does not exist in bucket {self.bucket_name}")
        cached = LOCAL_COPIES.get(uri, stored.crc32c)
        if cached is not None:
            return cached
        download = LOCAL_COPIES.directory() / f"{uuid.uuid4().hex}.download"
        try:
            # checksum="crc32c" makes the client verify the bytes it received.
            self._bucket().blob(key).download_to_filename(str(download), checksum="crc32c", retry=self._retry())
        except Exception as exc:
            download.unlink(missing_ok=True)
            raise self._explain(exc, key, "download") from exc
        return LOCAL_COPIES.adopt(uri, download, stored.crc32c)

    def list_keys(self, dataset: str) -> list[str]:
        start = "/".join(part for part in (self.prefix, "turnstile", dataset) if part) + "/"
        if not self.is_gcs:
            base = self.root / start
            return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))
        try:
            return sorted(blob.name for blob in self._client().list_blobs(self.bucket_name, prefix=start))
        except Exception as exc:
            raise self._explain(exc, start, "list") from exc

    # -- GCS plumbing --------------------------------------------------------------

    def _client(self):
        # One client per configuration and thread: building one resolves credentials,
        # and its HTTP session is not meant to be shared between threads.
        key = (self.gcp_project, self.gcp_credentials, os.environ.get("STORAGE_EMULATOR_HOST"), threading.get_ident())
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
        if client is None:
            client = self._new_client()
            with _CLIENTS_LOCK:
                _CLIENTS[key] = client
        return client

    def _new_client(self):
        # dagster_gcp and google.cloud.storage are imported here, not at module level:
        # importing them costs seconds, and the code location must load fast.
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return storage.Client(project=self.gcp_project or "mta-local", credentials=AnonymousCredentials())
        if self.gcp_credentials:
            from google.oauth2 import service_account

            info = json.loads(base64.b64decode(self.gcp_credentials))
            credentials = service_account.Credentials.from_service_account_info(info)
            return storage.Client(project=self.gcp_project or info.get("project_id"), credentials=credentials)
        from dagster_gcp import GCSResource

        return GCSResource(project=self.gcp_project).get_client()

    def _bucket(self):
        return self._client().bucket(self.bucket_name)

    def _retry(self):
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_deadline(self.retry_deadline_s).with_timeout(self.retry_deadline_s)

    def _explain(self, exc: Exception, key: str, action: str) -> LakeError:
        from google.api_core import exceptions as gexc

        where = f"gs://{self.bucket_name}/{key}"
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # Resumable uploads raise InvalidResponse carrying the HTTP status, not api_core errors.
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None) or getattr(exc, "code", None)
        if isinstance(exc, gexc.NotFound) or status == 404:
            return LakeError(f"{action} {where}: bucket {self.bucket_name!r} does not exist ({first_line})")
        if isinstance(exc, gexc.Forbidden | gexc.Unauthorized) or status in (401, 403):
            return LakeError(f"{action} {where}: permission denied on bucket {self.bucket_name!r} ({first_line})")
        if isinstance(exc, gexc.RetryError | ConnectionError | OSError) or "Connection" in type(exc).__name__:
            host = os.environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"
            return LakeError(f"{action} {where}: cannot reach GCS at {host} ({first_line})")
        return LakeError(f"{action} {where} failed: {type(exc).__name__}: {first_line}")
