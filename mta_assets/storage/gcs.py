"""A lake in a Google Cloud Storage bucket.

* Writes: one resumable upload, in chunks, straight to the final name, with the crc32c
  and md5 we computed sent in the upload's metadata. GCS only creates the object when
  the upload finalizes and refuses to finalize bytes that differ, so an interrupted
  upload leaves the previous generation in place; the finished object's size and hashes
  are compared with ours once more.
* Reads: ranged requests pinned to one generation, crc32c computed over the whole file
  and compared with the object's, so a download never mixes two versions.
* Retries: google-cloud-storage's own (api_core ``Retry``) for transient errors, bounded
  by ``retry_deadline_s`` per request; every request has ``request_timeout_s``. Between
  chunks the operation's ``Deadline`` is checked (total, throughput, stop request).
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from mta_assets.storage.deadline import Deadline, TransferAborted
from mta_assets.storage.errors import is_transient
from mta_assets.storage.lake import ChunkCallback, LakeError, LakeStore, StoredObject

_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()


class GcsStore(LakeStore):
    def __init__(
        self,
        bucket: str,
        project: str | None,
        credentials: str | None,
        chunk_size: int,
        retry_deadline_s: float,
        request_timeout_s: float,
    ):
        self.bucket_name = bucket
        self.project = project
        self.credentials = credentials
        self.chunk_size = chunk_size
        self.retry_deadline_s = retry_deadline_s
        self.timeout = (request_timeout_s, request_timeout_s)
        self.where = f"bucket gs://{bucket}"

    def uri_for(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{key}"

    # -- writing ---------------------------------------------------------------------------------

    def put(
        self, source: Path, key: str, content_type: str, metadata: dict[str, str] | None,
        checksums: tuple[int, str, str], deadline: Deadline, on_chunk: ChunkCallback | None,
    ) -> StoredObject:
        size, crc32c, md5 = checksums
        uri = self.uri_for(key)
        chunks = 0
        try:
            blob = self._bucket().blob(key, chunk_size=self.chunk_size)
            blob.content_type = content_type
            # GCS checks these at finalization and refuses an object whose bytes differ.
            blob.crc32c = crc32c
            blob.md5_hash = md5
            if metadata:
                blob.metadata = dict(metadata)
            writer = blob.open(
                "wb",
                chunk_size=self.chunk_size,
                content_type=content_type,
                retry=self._retry(),
                timeout=self.timeout,
                ignore_flush=True,
            )
            with open(source, "rb") as src:
                sent = 0
                while data := src.read(self.chunk_size):
                    deadline.check()
                    writer.write(data)
                    sent += len(data)
                    chunks += 1
                    deadline.check(len(data))
                    if on_chunk:
                        on_chunk(chunks, sent, size)
            # Closing finalizes; it is only reached when every byte was written.
            deadline.check()
            writer.close()
            blob.reload(retry=self._retry(), timeout=self.timeout)
        except TransferAborted as exc:
            raise LakeError(f"upload {uri}: {exc} after {chunks} chunk(s); the previous object is kept", exc.permanent) from None
        except LakeError:
            raise
        except Exception as exc:  # google.api_core / google.auth / requests / urllib3 errors all end here
            raise self._explain(exc, key, "upload") from None
        if blob.size != size or blob.crc32c != crc32c or blob.md5_hash != md5:
            raise LakeError(
                f"upload {uri}: checksum mismatch: the stored object does not match the local file "
                f"(size {blob.size} vs {size}, crc32c {blob.crc32c} vs {crc32c}, md5 {blob.md5_hash} vs {md5})"
            )
        return StoredObject(uri=uri, key=key, size=size, crc32c=crc32c, md5=md5, chunks=chunks)

    def create_if_absent(self, key: str, data: bytes) -> bool:
        from google.api_core import exceptions as gexc

        try:
            self._bucket().blob(key).upload_from_string(
                data, if_generation_match=0, retry=self._retry(), timeout=self.timeout
            )
            return True
        except gexc.PreconditionFailed:
            # Either another writer holds it, or our own first attempt landed and its answer was
            # lost before a retry: the bytes tell which.
            return self.read_bytes(key) == data
        except Exception as exc:
            raise self._explain(exc, key, "create") from None

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        from google.api_core import exceptions as gexc

        blob = self._get_blob(key)
        if blob is None:
            return None
        generation = blob.generation  # read first: a download resets it from its response headers
        try:
            # Pinned to the generation we stat'ed: the bytes and the token belong together.
            data = blob.download_as_bytes(
                if_generation_match=generation, retry=self._retry(), timeout=self.timeout
            )
        except (gexc.NotFound, gexc.PreconditionFailed):
            return self.read_versioned(key)  # replaced between the two requests: look again
        except Exception as exc:
            raise self._explain(exc, key, "read") from None
        return data, str(generation)

    def replace_if(self, key: str, data: bytes, token: str | None) -> str | None:
        from google.api_core import exceptions as gexc

        blob = self._bucket().blob(key)
        try:
            # A generation precondition makes the upload a compare-and-swap (0: only if absent),
            # and makes google-cloud-storage's retry of it safe.
            blob.upload_from_string(
                data, if_generation_match=int(token) if token else 0, retry=self._retry(), timeout=self.timeout
            )
            if blob.generation is not None:
                return str(blob.generation)
            # An answer without the object resource (some emulators): ask for the generation.
            current = self.read_versioned(key)
            return current[1] if current is not None and current[0] == data else None
        except gexc.PreconditionFailed:
            # Another writer, or our own attempt whose answer was lost before a retry: versioned
            # objects are unique (owner, expiry, generation), so equal bytes mean it was ours.
            current = self.read_versioned(key)
            return current[1] if current is not None and current[0] == data else None
        except Exception as exc:
            raise self._explain(exc, key, "write") from None

    def delete_if(self, key: str, token: str) -> bool:
        from google.api_core import exceptions as gexc

        try:
            self._bucket().blob(key).delete(if_generation_match=int(token), retry=self._retry(), timeout=self.timeout)
            return True
        except (gexc.NotFound, gexc.PreconditionFailed):
            return False
        except Exception as exc:
            raise self._explain(exc, key, "delete") from None

    def delete(self, key: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            self._bucket().blob(key).delete(retry=self._retry(), timeout=self.timeout)
        except gexc.NotFound:
            return
        except Exception as exc:
            raise self._explain(exc, key, "delete") from None

    # -- reading ---------------------------------------------------------------------------------

    def stat(self, key: str) -> StoredObject | None:
        blob = self._get_blob(key)
        if blob is None:
            return None
        return StoredObject(uri=self.uri_for(key), key=key, size=blob.size, crc32c=blob.crc32c, md5=blob.md5_hash)

    def _get_blob(self, key: str):
        try:
            return self._bucket().get_blob(key, retry=self._retry(), timeout=self.timeout)
        except Exception as exc:
            raise self._explain(exc, key, "read") from None

    def fetch(self, key: str, dest_dir: Path, deadline_for: Callable[[int], Deadline]) -> Path:
        import google_crc32c
        from google.api_core import exceptions as gexc

        uri = self.uri_for(key)
        blob = self._get_blob(key)
        if blob is None:
            raise LakeError(f"read {uri}: the object does not exist", permanent=True)
        deadline = deadline_for(blob.size or 0)
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LakeError(f"read {uri}: cannot create {dest_dir}: {exc.strerror or exc}", permanent=True) from None
        target = dest_dir / key.rsplit("/", 1)[-1]
        partial = dest_dir / f".{target.name}.{uuid.uuid4().hex}.part"
        crc = google_crc32c.Checksum()
        try:
            with open(partial, "wb") as out:
                start = 0
                while start < (blob.size or 0):
                    deadline.check()
                    end = min(start + self.chunk_size, blob.size) - 1
                    buffer = io.BytesIO()
                    # Pinned to the generation we looked at: a concurrent replacement fails the
                    # read instead of mixing two versions.
                    blob.download_to_file(
                        buffer, start=start, end=end, if_generation_match=blob.generation, raw_download=True,
                        checksum=None, retry=self._retry(), timeout=self.timeout,
                    )
                    data = buffer.getvalue()
                    if not data:
                        break
                    out.write(data)
                    crc.update(data)
                    start += len(data)
                    deadline.check(len(data))
            got = base64.b64encode(crc.digest()).decode()
            if start != blob.size or got != blob.crc32c:
                raise LakeError(
                    f"read {uri}: checksum mismatch: received {start} bytes with crc32c {got}, "
                    f"the object has {blob.size} bytes with crc32c {blob.crc32c}"
                )
            os.replace(partial, target)
        except TransferAborted as exc:
            raise LakeError(f"read {uri}: {exc}", exc.permanent) from None
        except LakeError:
            raise
        except gexc.NotFound as exc:
            # It was there a moment ago: deleted while read (another run's commit collected
            # this generation, or someone deleted it), not a missing bucket.
            raise LakeError(
                f"read {uri}: the object was deleted while it was read, after {start} of {blob.size} bytes "
                f"(its week committed anew by another run, or deleted by hand) ({_first_line(exc)})",
                permanent=True,
            ) from None
        except OSError as exc:
            if not _is_network_error(exc):
                raise LakeError(f"read {uri}: cannot write {partial}: {exc.strerror or exc}", permanent=True) from None
            raise self._explain(exc, key, "read") from None
        except Exception as exc:
            raise self._explain(exc, key, "read") from None
        finally:
            partial.unlink(missing_ok=True)
        return target

    def read_bytes(self, key: str) -> bytes | None:
        from google.api_core import exceptions as gexc

        try:
            return self._bucket().blob(key).download_as_bytes(retry=self._retry(), timeout=self.timeout)
        except gexc.NotFound:
            return None
        except Exception as exc:
            raise self._explain(exc, key, "read") from None

    def list(self, prefix: str) -> list[str]:
        try:
            blobs = self._client().list_blobs(
                self.bucket_name, prefix=prefix, retry=self._retry(), timeout=self.timeout
            )
            return [blob.name for blob in blobs]
        except Exception as exc:
            raise self._explain(exc, prefix, "list") from None

    def check(self) -> None:
        """One listing request: a missing bucket, a refused permission or token fail the run here.

        A transient failure is not decided here: the operations themselves retry and report it.
        """
        try:
            list(self._client().list_blobs(self.bucket_name, max_results=1, retry=self._retry(), timeout=self.timeout))
        except LakeError as exc:
            if exc.permanent:
                raise
        except Exception as exc:
            error = self._explain(exc, "", "check")
            if error.permanent:
                raise error from None

    # -- plumbing --------------------------------------------------------------------------------

    def _client(self):
        # One client per configuration and thread: building one resolves credentials,
        # and its HTTP session is not meant to be shared between threads.
        key = (self.project, self.credentials, os.environ.get("STORAGE_EMULATOR_HOST"), threading.get_ident())
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
        if client is None:
            client = self._new_client()
            with _CLIENTS_LOCK:
                _CLIENTS[key] = client
        return client

    def _new_client(self):
        # google.cloud.storage is imported here, not at module level:
        # importing them costs seconds, and the code location must load fast.
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return storage.Client(project=self.project or "mta-local", credentials=AnonymousCredentials())
        if self.credentials:
            from google.oauth2 import service_account

            try:
                info = json.loads(base64.b64decode(self.credentials, validate=True))
                credentials = service_account.Credentials.from_service_account_info(info)
            except Exception as exc:  # binascii, JSON and key-format errors alike
                raise LakeError(
                    f"{self.where}: MTA_GCP_CREDENTIALS is not a base64-encoded service-account key JSON "
                    f"({type(exc).__name__}); encode the key file with `base64 -w0 key.json`, or leave it unset for ADC",
                    permanent=True,
                ) from None
            return storage.Client(project=self.project or info.get("project_id"), credentials=credentials)
        try:
            # Application Default Credentials, as dagster-gcp's GCSResource would find them.
            return storage.Client(project=self.project)
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
            raise LakeError(
                f"{self.where}: no Google credentials found ({_first_line(exc)}); set GOOGLE_APPLICATION_CREDENTIALS "
                "or MTA_GCP_CREDENTIALS, or run where Application Default Credentials exist",
                permanent=True,
            ) from None

    def _bucket(self):
        return self._client().bucket(self.bucket_name)

    def _retry(self):
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.retry_deadline_s)

    def _explain(self, exc: Exception, key: str, action: str, gave_up: bool = False) -> LakeError:
        """One line naming the object and the cause as it is, and whether a retry can help."""
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        if isinstance(exc, LakeError):
            return exc
        if isinstance(exc, gexc.RetryError) and isinstance(exc.cause, Exception):
            # The retry deadline passed: the cause is what the last attempt met.
            return self._explain(exc.cause, key, action, gave_up=True)
        where = self.uri_for(key)
        cause = _first_line(exc)
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None) or getattr(exc, "code", None)
        body = ""
        try:
            body = response.text if response is not None else ""
        except Exception:  # noqa: BLE001 - a body we cannot read is simply not shown
            body = ""
        text = f"{cause} {body}"
        host = os.environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"
        if isinstance(exc, auth_exc.RefreshError):
            return LakeError(
                f"{action} {where}: the token endpoint {_token_uri(self)} refused the credentials ({cause})",
                permanent=True,
            )
        if isinstance(exc, auth_exc.TransportError):
            return LakeError(f"{action} {where}: cannot reach the token endpoint {_token_uri(self)} ({cause})")
        if isinstance(exc, auth_exc.DefaultCredentialsError):
            return LakeError(f"{action} {where}: no usable Google credentials ({cause})", permanent=True)
        if "match" in text and ("MD5" in text or "CRC32C" in text.upper()) and "doesn" in text:
            return LakeError(
                f"{action} {where}: checksum mismatch: GCS refused the bytes it received because they do not "
                f"match the crc32c/md5 computed from the local file ({(body or cause).strip()[:200]})"
            )
        if isinstance(exc, gexc.NotFound) or status == 404:
            return LakeError(f"{action} {where}: bucket {self.bucket_name!r} does not exist ({cause})", permanent=True)
        if isinstance(exc, gexc.Forbidden | gexc.Unauthorized) or status in (401, 403):
            return LakeError(
                f"{action} {where}: permission denied on bucket {self.bucket_name!r} ({cause}); "
                "the account needs roles/storage.objectAdmin on it",
                permanent=True,
            )
        if status in (429, 500, 502, 503, 504) or isinstance(exc, gexc.TooManyRequests | gexc.ServerError):
            return LakeError(
                f"{action} {where}: GCS at {host} answered HTTP {status or type(exc).__name__} "
                f"until the retry deadline of {self.retry_deadline_s:g} s ({cause})"
            )
        if gave_up or is_transient(exc):
            return LakeError(
                f"{action} {where}: cannot reach GCS at {host} within the retry deadline of "
                f"{self.retry_deadline_s:g} s ({cause})"
            )
        if status is not None and 400 <= int(status) < 500:
            return LakeError(f"{action} {where}: GCS refused the request (HTTP {status}): {cause}", permanent=True)
        return LakeError(f"{action} {where} failed: {type(exc).__name__}: {cause}")


def _is_network_error(exc: BaseException) -> bool:
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(exc, requests.RequestException | Urllib3Error | ConnectionError | TimeoutError)


def _token_uri(store: GcsStore) -> str:
    if store.credentials:
        try:
            return json.loads(base64.b64decode(store.credentials)).get("token_uri", "oauth2.googleapis.com")
        except ValueError:
            pass
    return "of Application Default Credentials"


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
