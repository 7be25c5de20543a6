"""The MTA source: where each week's turnstile file is published, and a careful downloader (``MTAClient``).

HTTP goes through ``RetryingSession`` (``retrying_session``), shared with the SODA client:
urllib3's ``Retry``, used as it is, decides which failures and statuses (connection
errors, 429, 5xx) are retried and how long to wait (backoff, ``Retry-After``); the session
runs the attempts itself so the operation's total deadline is checked between them and
every attempt's timeouts are cut to what is left of it. A download also has a stall
timeout (no byte for N seconds) and a minimum throughput, checked between reads, so a
stalled or trickling server ends the attempt in bounded time; a file larger than the
size limit is refused. Redirects are followed up to a limit and the final URL is
recorded. The user and password are settings of their own, sent as Basic auth and never shown; a
source URL carrying them is refused (``check_source_url``), every
URL that leaves this module has no userinfo, every message is redacted.

Errors carry ``permanent``: True when retrying cannot help (404, not published, not a
turnstile file, too large, refused credentials, a bad setting), False for outages
(``storage/errors.py`` decides it for every other exception).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from mta_assets.mta import calendar
from mta_assets.mta.formats import Layout, UnknownLayout, detect_layout
from mta_assets.settings import DEFAULT_SOURCE_URL, check_source_url, redact, without_userinfo
from mta_assets.storage.deadline import (
    Deadline,
    Interrupted,
    TransferAborted,
    is_interrupt,
    request_stop,
)

RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = "mta_assets/0.1 (Dagster turnstile pipeline)"
# Encodings we decode (urllib3 does it); MTA serves plain text, a mirror might compress.
_DECODED_ENCODINGS = ("gzip", "x-gzip", "deflate")
_HEAD_BYTES = 4096


@dataclasses.dataclass
class RetryingSession:
    """A requests session whose requests urllib3's ``Retry`` retries within a total deadline.

    Build it with ``retrying_session``; use it as a context manager. ``request`` returns
    the last response (a 429/5xx one when retries or time ran out; ``retries_made`` tells
    how many were made) or raises the last ``requests`` exception.
    """

    session: Any  # requests.Session
    retry: Any  # urllib3.util.Retry, as configured: the policy
    connect_timeout_s: float
    read_timeout_s: float

    def __enter__(self) -> RetryingSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.session.close()

    def request(self, method: str, url: str, deadline: Deadline, **kwargs):
        import requests
        from urllib3.exceptions import HTTPError, MaxRetryError

        retry = self.retry
        while True:
            if deadline.stopped():  # also after a backoff a stop cut short
                raise Interrupted(f"stopped on request after {deadline.elapsed():.1f} s")
            remaining = max(deadline.remaining(), 0.05)
            timeout = (min(self.connect_timeout_s, remaining), min(self.read_timeout_s, remaining))
            try:
                response = self.session.request(method, url, timeout=timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                try:
                    retry = retry.increment(method, url, error=_urllib3_error(exc))
                except (MaxRetryError, HTTPError):
                    raise exc from None
                wait, last = retry.get_backoff_time(), exc
            else:
                response.retries_made = len(retry.history)
                if not retry.is_retry(method, response.status_code, "Retry-After" in response.headers):
                    return response
                try:
                    retry = retry.increment(method, url, response=response.raw)
                except MaxRetryError:
                    return response
                after = retry.get_retry_after(response.raw) if retry.respect_retry_after_header else None
                wait, last = (after if after is not None else retry.get_backoff_time()), response
            if wait >= deadline.remaining() and not deadline.stopped():
                # Out of time for another attempt: the last answer or error is the outcome.
                if isinstance(last, Exception):
                    raise last
                return last
            if not isinstance(last, Exception):
                last.close()
            deadline.sleep(wait)  # at once when stopped: the loop's first line then raises


def retrying_session(
    *,
    retries: int,
    backoff_factor_s: float,
    connect_timeout_s: float,
    read_timeout_s: float,
    methods: frozenset[str] = frozenset({"GET", "HEAD"}),
    max_redirects: int = 5,
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> RetryingSession:
    """One session for one operation: retries of connection errors, read errors and 429/5xx, with backoff."""
    import requests
    from urllib3.util.retry import Retry

    session = requests.Session()
    session.max_redirects = max_redirects
    session.headers["User-Agent"] = USER_AGENT
    session.headers.update(headers or {})
    # requests drops the Authorization header when a redirect leaves the host.
    session.auth = auth
    retry = Retry(
        total=retries, connect=retries, read=retries, status=retries, other=0, redirect=False,
        backoff_factor=backoff_factor_s, status_forcelist=RETRY_STATUSES, allowed_methods=methods,
        respect_retry_after_header=True, raise_on_status=False,
    )
    return RetryingSession(session, retry, connect_timeout_s, read_timeout_s)


def _urllib3_error(exc: Exception) -> Exception:
    """The urllib3 error inside a requests exception, which ``Retry`` classifies (connect, read, other)."""
    from urllib3.exceptions import MaxRetryError

    reason = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    return reason.reason if isinstance(reason, MaxRetryError) and reason.reason is not None else reason


class SourceError(RuntimeError):
    """A week's file could not be fetched or is not a turnstile file; names week, URL and cause."""

    permanent: bool = True

    def __init__(self, message: str, permanent: bool | None = None):
        super().__init__(redact(message))
        if permanent is not None:
            self.permanent = permanent


class NotPublished(SourceError):
    """The file is not (or not yet) published: 404, or a week whose publication day is ahead."""


class SourceUnavailable(SourceError):
    """The source could not be reached, kept failing (connection errors, 429, 5xx) or was too slow."""

    permanent = False


def source_down(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is the source failing past its retries: other weeks would wait it out too."""
    while exc is not None:
        if isinstance(exc, SourceUnavailable) and not exc.permanent:
            return True
        exc = exc.__cause__
    return False


class DownloadInterrupted(SourceError):
    """The run is being stopped; the partial file is removed and nothing is retried."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """What a HEAD request says about a published file; ``validator`` changes when the file does."""

    week: str
    url: str
    size: int | None
    etag: str | None
    last_modified: str | None

    @property
    def validator(self) -> str:
        return self.etag or self.last_modified or f"size-{self.size}"


@dataclasses.dataclass(frozen=True)
class DownloadedFile:
    week: str
    url: str  # the final URL after redirects, without userinfo
    path: Path
    size: int
    sha256: str
    lines: int
    layout: Layout
    etag: str | None
    last_modified: str | None
    requested_url: str = ""  # the URL asked for, without userinfo
    file_name: str = ""  # the MTA file name actually downloaded
    length_stated: bool = False  # the server sent Content-Length and the body matched it
    content_encoding: str = ""  # as sent by the server; the stored file is always decoded
    reused: bool = False  # already staged whole in dest_dir and unchanged at the source (304)

    def metadata(self) -> dict[str, Any]:
        """What a materialization reports about the download (plain values; Dagster shows the URLs as links)."""
        return {
            "url": self.url,
            "requested_url": self.requested_url or self.url,
            "source_file": self.file_name or self.path.name,
            "source_bytes": self.size,
            "length_stated": self.length_stated,
            "sha256": self.sha256,
            "lines": self.lines,
            "layout": self.layout,
            "source_etag": self.etag or "",
            "source_last_modified": self.last_modified or "",
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class MTAClient:
    """HTTP source of the weekly turnstile files: MTA's site or any mirror with the same names.

    Every setting is given: the ``MTASource`` resource (``defs/resources.py``) holds their
    defaults, descriptions and environment variables.
    """

    base_url: str  # no user:password@ in it: those are user and password
    connect_timeout_s: float
    read_timeout_s: float  # the stall timeout: seconds without a byte
    deadline_s: float
    probe_deadline_s: float
    min_bytes_per_s: float
    max_file_bytes: int
    max_redirects: int
    retries: int
    backoff_factor_s: float
    chunk_bytes: int
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_source_url(self.base_url)  # refuses a URL with a password in it, without printing it

    # -- URLs ------------------------------------------------------------------------------------

    @property
    def display_base_url(self) -> str:
        """The source URL as it may be shown and stored: without user and password."""
        return without_userinfo(self.base_url)

    def url_for(self, week: str, file_name: str | None = None) -> str:
        """The file's URL as shown and stored (no userinfo)."""
        return f"{self.display_base_url.rstrip('/')}/{file_name or calendar.file_name_for_week(week)}"

    # -- plumbing ---------------------------------------------------------------------------------

    def _session(self) -> RetryingSession:
        return retrying_session(
            retries=self.retries,
            backoff_factor_s=self.backoff_factor_s,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_redirects=self.max_redirects,
            # The user and password settings become a header; requests drops it when a redirect leaves the host.
            auth=(self.user or "", self.password or "") if self.user or self.password else None,
            # MTA's files are plain text; asking for identity keeps Content-Length about the bytes we store.
            headers={"Accept-Encoding": "identity"},
        )

    def _request(self, session: RetryingSession, week: str, url: str, method: str, deadline: Deadline, **kwargs):
        import requests

        if deadline.expired():
            raise SourceUnavailable(f"week {week}: {url}: deadline of {deadline.seconds:g} s exceeded before the request")
        try:
            response = session.request(method, url, deadline, **kwargs)
        except Interrupted:
            raise DownloadInterrupted(f"week {week}: {method} {url} stopped on request") from None
        except requests.TooManyRedirects as exc:
            last = without_userinfo(getattr(exc.response, "url", "") or url) if exc.response is not None else url
            raise SourceError(
                f"week {week}: {url} redirects more than {self.max_redirects} times (last to {last})"
            ) from None
        except requests.RequestException as exc:
            if deadline.stopped():
                raise DownloadInterrupted(f"week {week}: {method} {url} stopped on request") from None
            raise SourceUnavailable(f"week {week}: cannot fetch {url}: {self._cause(exc, deadline)}") from None
        if response.status_code in RETRY_STATUSES:
            response.close()
            raise SourceUnavailable(
                f"week {week}: {url} answered HTTP {response.status_code} after {response.retries_made} retries "
                f"in {deadline.elapsed():.0f} s"
            )
        return response

    def _cause(self, exc: Exception, deadline: Deadline) -> str:
        from urllib3.exceptions import (
            ConnectTimeoutError,
            MaxRetryError,
            NameResolutionError,
            NewConnectionError,
            ReadTimeoutError,
        )

        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        # NewConnectionError subclasses ConnectTimeoutError in urllib3: test it first.
        if isinstance(reason, NameResolutionError):
            cause = f"cannot resolve the host name {reason.conn.host if reason.conn else ''!r} (DNS)"
        elif isinstance(reason, NewConnectionError):
            cause = f"connection failed ({str(reason).rsplit(':', 1)[-1].strip()})"
        elif isinstance(reason, ReadTimeoutError):
            cause = f"no answer within the stall timeout of {self.read_timeout_s:g} s"
        elif isinstance(reason, ConnectTimeoutError):
            cause = f"no connection within {self.connect_timeout_s:g} s"
        else:
            cause = _first_line(exc)
        spent = f"gave up after {deadline.elapsed():.0f} s"
        if deadline.expired():
            spent += f", the deadline of {deadline.seconds:g} s"
        return f"{cause} ({spent})"

    # -- probing ------------------------------------------------------------------------------------

    def probe(self, week: str) -> RemoteFile | None:
        """HEAD the week's file: None when it is not published, else its size and validators."""
        deadline = Deadline(self.probe_deadline_s)
        with self._session() as session:
            for name in calendar.candidate_file_names(week):
                url = self.url_for(week, name)
                response = self._request(session, week, url, "HEAD", deadline, allow_redirects=True)
                if response.status_code == 404:
                    continue
                if response.status_code != 200:
                    raise SourceUnavailable(f"week {week}: HEAD {url} answered HTTP {response.status_code}")
                length = response.headers.get("Content-Length")
                return RemoteFile(
                    week=week,
                    url=without_userinfo(response.url),
                    size=int(length) if length and length.isdigit() else None,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                )
        return None

    # -- downloading --------------------------------------------------------------------------------

    def download(
        self, week: str, dest_dir: Path, deadline_s: float | None = None, stop: threading.Event | None = None
    ) -> DownloadedFile:
        """Stream the week's file to ``dest_dir`` and check it is whole and a turnstile file.

        ``deadline_s`` (default ``self.deadline_s``) bounds every request, retry and read of it;
        ``stop``, once set, ends it at its next read or retry, as an interrupt does.

        Nothing new is left in ``dest_dir`` when this raises. A file this method already
        staged whole in ``dest_dir`` is reused when the source says it is unchanged (304),
        so a retried step does not download it again. An interrupt (SIGTERM, the UI's
        Terminate) ends it as ``DownloadInterrupted``, which is permanent: Dagster would
        otherwise turn an interrupted step into a retry under its RetryPolicy.
        """
        try:
            return self._download(week, dest_dir, deadline_s or self.deadline_s, stop)
        except BaseException as exc:
            if not is_interrupt(exc):
                raise
            request_stop()  # the other weeks' transfers in worker threads stop too
            raise DownloadInterrupted(f"week {week}: download from {self.display_base_url} stopped: the run was interrupted") from None

    def _download(self, week: str, dest_dir: Path, deadline_s: float, stop: threading.Event | None) -> DownloadedFile:
        names = self._names_or_fail(week)
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"week {week}: cannot create the staging folder {dest_dir}: {exc.strerror or exc}") from None
        deadline = Deadline(deadline_s, self.min_bytes_per_s, self.read_timeout_s, stop)
        tried: list[str] = []
        with self._session() as session:
            for name in names:
                url = self.url_for(week, name)
                staged = _Staged.load(dest_dir, name)
                response = self._request(
                    session, week, url, "GET", deadline, stream=True, headers=staged.conditions() if staged else {}
                )
                if response.status_code == 404:
                    response.close()
                    tried.append(url)
                    continue
                with response:
                    if response.status_code == 304 and staged is not None:
                        return dataclasses.replace(staged.file, reused=True)
                    return self._save(week, name, url, response, dest_dir, deadline)
        raise NotPublished(f"week {week}: {' and '.join(tried)} {'is' if len(tried) == 1 else 'are'} not published (HTTP 404)")

    def _names_or_fail(self, week: str) -> list[str]:
        try:
            calendar.week_start(week)
        except ValueError as exc:
            raise SourceError(f"week {week}: not a Saturday partition key: {exc}") from None
        try:
            calendar.require_published(week)
        except ValueError as exc:
            raise NotPublished(str(exc)) from None
        return calendar.candidate_file_names(week)

    def _save(self, week: str, name: str, url: str, response, dest_dir: Path, deadline: Deadline) -> DownloadedFile:
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        final_url = without_userinfo(response.url)
        where = url if final_url == url else f"{url} (redirected to {final_url})"
        status = response.status_code
        if status == 404:
            raise NotPublished(f"week {week}: {where} is not published (HTTP 404)")
        if status in (401, 403):
            raise SourceError(
                f"week {week}: {where} refused access (HTTP {status}); check MTA_SOURCE_USER and MTA_SOURCE_PASSWORD"
            )
        if status != 200:
            raise SourceError(f"week {week}: {where} answered HTTP {status}")
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity", *_DECODED_ENCODINGS):
            raise SourceError(
                f"week {week}: {where} was sent with Content-Encoding {encoding!r}, which is not decoded here "
                "(MTA serves plain text; gzip and deflate are decoded)"
            )
        content_type = response.headers.get("Content-Type", "")
        stated = response.headers.get("Content-Length")
        stated_bytes = int(stated) if stated and stated.strip().isdigit() else None
        if stated_bytes is not None and encoding in ("", "identity") and stated_bytes > self.max_file_bytes:
            raise SourceError(
                f"week {week}: {where} is {stated_bytes:,} bytes, more than the limit of {self.max_file_bytes:,} "
                "(MTA_MAX_FILE_BYTES; a normal week is about 33 MB)"
            )
        final = dest_dir / name
        partial = dest_dir / f".{name}.{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        lines = 0
        last_byte = b"\n"
        head = b""
        raw = response.raw
        try:
            with open(partial, "wb") as out:
                checked = False
                while True:
                    deadline.check()
                    chunk = raw.read1(self.chunk_bytes, decode_content=True)
                    if not chunk:
                        break
                    deadline.check(len(chunk))
                    if not checked:
                        head += chunk
                        if len(head) >= _HEAD_BYTES:
                            self._check_head(head, content_type, encoding)
                            checked = True
                    size += len(chunk)
                    if size > self.max_file_bytes:
                        raise SourceError(
                            f"week {week}: {where} is larger than the limit of {self.max_file_bytes:,} bytes "
                            "(MTA_MAX_FILE_BYTES; a normal week is about 33 MB); download stopped"
                        )
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _LocalWriteError(exc) from None
                    digest.update(chunk)
                    lines += chunk.count(b"\n")
                    last_byte = chunk[-1:]
                if not checked and head:
                    self._check_head(head, content_type, encoding)
            wire_bytes = raw.tell() if encoding not in ("", "identity") else size
            if size == 0:
                raise SourceError(f"week {week}: {where} returned an empty body")
            if stated_bytes is not None and wire_bytes != stated_bytes:
                raise SourceUnavailable(
                    f"week {week}: {where} body cut short: received {wire_bytes} of {stated_bytes} bytes (Content-Length)"
                )
            with open(partial, "rb") as handle:
                layout = detect_layout(handle.read(_HEAD_BYTES).decode("utf-8", errors="replace"))
            # Whether it holds readings, and which, is the validation's to say (mta/validate.py).
            os.replace(partial, final)
        except Interrupted as exc:
            partial.unlink(missing_ok=True)
            raise DownloadInterrupted(f"week {week}: download of {where} {exc} after {size:,} bytes") from None
        except TransferAborted as exc:
            partial.unlink(missing_ok=True)
            raise SourceUnavailable(
                f"week {week}: {where} {exc}, after {size:,} of {stated or 'unknown'} bytes in {deadline.elapsed():.0f} s"
            ) from None
        except (requests.RequestException, Urllib3Error) as exc:
            partial.unlink(missing_ok=True)
            received = f"after {size:,} of {stated or 'unknown'} bytes"
            if _is_read_timeout(exc):
                raise SourceUnavailable(
                    f"week {week}: {where} stalled: no byte for {self.read_timeout_s:g} s (the stall timeout) {received}"
                ) from None
            if "Decod" in type(exc).__name__:
                raise SourceError(
                    f"week {week}: {where} has a body that does not decode as Content-Encoding {encoding!r} "
                    f"({received}): {_first_line(exc)}"
                ) from None
            raise SourceUnavailable(f"week {week}: {where} body cut short {received}: {_first_line(exc)}") from None
        except _LocalWriteError as exc:
            partial.unlink(missing_ok=True)
            raise SourceError(f"week {week}: cannot save {where} to {dest_dir}: {exc.cause}") from None
        except OSError as exc:  # RequestException is an OSError too: it is handled above
            partial.unlink(missing_ok=True)
            raise SourceError(f"week {week}: cannot save {where} to {dest_dir}: {exc}") from None
        except UnknownLayout as exc:
            partial.unlink(missing_ok=True)
            raise SourceError(f"week {week}: {where} is not a turnstile file: {exc}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        downloaded = DownloadedFile(
            week=week,
            url=final_url,
            path=final,
            size=size,
            sha256=digest.hexdigest(),
            lines=lines + (0 if last_byte == b"\n" else 1),
            layout=layout,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            requested_url=url,
            file_name=name,
            length_stated=stated_bytes is not None,
            content_encoding=encoding,
        )
        _Staged.save(downloaded)
        return downloaded

    @staticmethod
    def _check_head(head: bytes, content_type: str, encoding: str) -> None:
        if head[:2] == b"\x1f\x8b":
            raise UnknownLayout(
                "the body is gzip-compressed data but the server did not declare it (no Content-Encoding); "
                "MTA serves plain text"
            )
        text = head[:_HEAD_BYTES].decode("utf-8", errors="replace")
        if "html" in content_type.lower():
            raise UnknownLayout(f"the server sent {content_type!r}, an HTML page (starts {text.strip()[:60]!r})")
        # The whole head, not its first line: blank lines before the first row are skipped
        # by the layout detection exactly as the parser skips them.
        detect_layout(text)


class _LocalWriteError(Exception):
    def __init__(self, cause: OSError):
        super().__init__(str(cause))
        self.cause = cause


@dataclasses.dataclass(frozen=True)
class _Staged:
    """A file ``download`` left whole in a staging folder, with what it knew about it (a JSON manifest)."""

    file: DownloadedFile

    @staticmethod
    def manifest(dest_dir: Path, name: str) -> Path:
        return dest_dir / f".{name}.download.json"

    @classmethod
    def save(cls, file: DownloadedFile) -> None:
        fields = {key: value for key, value in dataclasses.asdict(file).items() if key != "path"}
        try:
            cls.manifest(file.path.parent, file.path.name).write_text(json.dumps(fields))
        except OSError:
            pass  # only an optimisation for a retry; the file itself is whole

    @classmethod
    def load(cls, dest_dir: Path, name: str) -> _Staged | None:
        manifest, path = cls.manifest(dest_dir, name), dest_dir / name
        try:
            fields = json.loads(manifest.read_text())
            file = DownloadedFile(path=path, **fields)
        except (OSError, ValueError, TypeError):
            return None
        if not (file.etag or file.last_modified) or not path.is_file() or path.stat().st_size != file.size:
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(4 * 1024 * 1024):
                digest.update(block)
        return cls(file) if digest.hexdigest() == file.sha256 else None

    def conditions(self) -> dict[str, str]:
        if self.file.etag:
            return {"If-None-Match": self.file.etag}
        return {"If-Modified-Since": self.file.last_modified or ""}


def _is_read_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ReadTimeoutError | TimeoutError) or "timed out" in str(exc):
            return True
        exc = exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
    return False


def _first_line(value) -> str:
    if isinstance(value, Path):
        with open(value, "rb") as handle:
            return handle.readline(8192).decode("utf-8", errors="replace")
    text = str(value)
    return text.splitlines()[0] if text else type(value).__name__
