"""The MTA source: where each week's turnstile file is published, and a careful downloader."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mta_assets.mta.calendar import file_name_for_week, legacy_file_name_for_week
from mta_assets.mta.formats import Layout, UnknownLayout, detect_layout

DEFAULT_SOURCE_URL = "http://web.mta.info/developers/data/nyct/turnstile"
_RETRY_STATUSES = (429, 500, 502, 503, 504)
# Date and time of every reading, in either layout: MM/DD/YYYY,HH:MM:SS or MM-DD-YY,HH:MM:SS.
_READING_TIME = re.compile(rb",(\d\d[/-]\d\d[/-](?:\d{4}|\d\d),\d\d:\d\d:\d\d)")


class SourceError(RuntimeError):
    """A week's file could not be fetched or is not a turnstile file; names week, URL and cause."""


class NotPublished(SourceError):
    """The source answered 404: the file is not (or not yet) published."""


class SourceUnavailable(SourceError):
    """The source could not be reached or kept failing (connection errors, 429, 5xx)."""


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
    url: str
    path: Path
    size: int
    sha256: str
    lines: int
    layout: Layout
    first_reading: str | None
    last_reading: str | None
    etag: str | None
    last_modified: str | None

    def metadata(self) -> dict[str, Any]:
        return {
            "url": dg.MetadataValue.url(self.url),
            "source_bytes": self.size,
            "sha256": self.sha256,
            "lines": self.lines,
            "layout": self.layout,
            "first_reading": self.first_reading or "",
            "last_reading": self.last_reading or "",
            "source_etag": self.etag or "",
            "source_last_modified": self.last_modified or "",
        }


def reading_time_span(path: Path) -> tuple[str | None, str | None]:
    """Earliest and latest reading time in a file, as ISO strings, without parsing rows."""
    stamps = set(_READING_TIME.findall(path.read_bytes()))
    if not stamps:
        return None, None

    def iso(stamp: bytes) -> str:
        date, clock = stamp.decode().split(",")
        month, day, year = date[:2], date[3:5], date[6:]
        return f"{year if len(year) == 4 else '20' + year}-{month}-{day}T{clock}"

    ordered = sorted(iso(stamp) for stamp in stamps)
    return ordered[0], ordered[-1]


class MTASource(dg.ConfigurableResource):
    """HTTP source of the weekly turnstile files: MTA's site or any mirror with the same names."""

    base_url: str = Field(default=DEFAULT_SOURCE_URL, description="Folder URL of the turnstile files (env MTA_SOURCE_URL).")
    connect_timeout_s: float = Field(default=10.0, description="Seconds to wait for a connection.")
    read_timeout_s: float = Field(default=60.0, description="Seconds to wait for the next bytes of a response.")
    retries: int = Field(default=4, description="Retries on connection errors, 429 and 5xx, with exponential backoff.")
    backoff_factor_s: float = Field(default=1.0, description="Backoff base: waits are factor * 2**attempt seconds.")
    chunk_bytes: int = Field(default=1024 * 1024, description="Download chunk size; the file goes to disk chunk by chunk.")

    def url_for(self, week: str, file_name: str | None = None) -> str:
        return f"{self.base_url.rstrip('/')}/{file_name or file_name_for_week(week)}"

    def _session(self):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            backoff_factor=self.backoff_factor_s,
            status_forcelist=_RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = "mta_assets/0.1 (Dagster turnstile pipeline)"
        return session

    def _get(self, session, week: str, url: str, method: str, **kwargs):
        import requests

        try:
            response = session.request(method, url, timeout=(self.connect_timeout_s, self.read_timeout_s), **kwargs)
        except requests.RequestException as exc:
            raise SourceUnavailable(f"week {week}: cannot fetch {url}: {_first_line(exc)}") from exc
        if response.status_code in _RETRY_STATUSES:
            response.close()
            raise SourceUnavailable(
                f"week {week}: {url} answered HTTP {response.status_code} after {self.retries} retries"
            )
        return response

    def probe(self, week: str) -> RemoteFile | None:
        """HEAD the week's file: None when it is not published, else its size and validators."""
        with self._session() as session:
            for url in self._candidate_urls(week):
                response = self._get(session, week, url, "HEAD", allow_redirects=True)
                if response.status_code == 404:
                    continue
                if response.status_code != 200:
                    raise SourceUnavailable(f"week {week}: HEAD {url} answered HTTP {response.status_code}")
                length = response.headers.get("Content-Length")
                return RemoteFile(
                    week=week,
                    url=url,
                    size=int(length) if length and length.isdigit() else None,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                )
        return None

    def download(self, week: str, dest_dir: Path) -> DownloadedFile:
        """Stream the week's file to ``dest_dir`` and check it is whole and a turnstile file.

        Nothing is left in ``dest_dir`` when this raises.
        """
        dest_dir.mkdir(parents=True, exist_ok=True)
        with self._session() as session:
            urls = self._candidate_urls(week)
            for index, url in enumerate(urls):
                response = self._get(session, week, url, "GET", stream=True)
                if response.status_code == 404 and index + 1 < len(urls):
                    response.close()
                    continue
                with response:
                    return self._save(week, url, response, dest_dir)
        raise AssertionError("unreachable: the last candidate URL always returns or raises")

    def _candidate_urls(self, week: str) -> list[str]:
        legacy = legacy_file_name_for_week(week)
        return [self.url_for(week)] + ([self.url_for(week, legacy)] if legacy else [])

    def _save(self, week: str, url: str, response, dest_dir: Path) -> DownloadedFile:
        import requests

        if response.status_code == 404:
            raise NotPublished(f"week {week}: {url} is not published (HTTP 404)")
        if response.status_code != 200:
            raise SourceError(f"week {week}: {url} answered HTTP {response.status_code}")
        content_type = response.headers.get("Content-Type", "")
        expected = response.headers.get("Content-Length")
        final = dest_dir / url.rsplit("/", 1)[-1]
        partial = dest_dir / f".{final.name}.{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        lines = 0
        last_byte = b"\n"
        try:
            with open(partial, "wb") as out:
                first = True
                for chunk in response.iter_content(chunk_size=self.chunk_bytes):
                    if first:
                        self._check_first_chunk(week, url, chunk, content_type)
                        first = False
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    last_byte = chunk[-1:]
            if size == 0:
                raise SourceError(f"week {week}: {url} returned an empty body")
            if expected is not None and expected.isdigit() and int(expected) != size:
                raise SourceError(
                    f"week {week}: {url} body cut short: received {size} of {expected} bytes (Content-Length)"
                )
            layout = detect_layout(_first_line(partial))
            first_reading, last_reading = reading_time_span(partial)
            if first_reading is None:
                raise SourceError(f"week {week}: {url} has a {layout} header but no readings")
            os.replace(partial, final)
        except requests.RequestException as exc:
            partial.unlink(missing_ok=True)
            received = f"after {size} of {expected or 'unknown'} bytes"
            raise SourceError(f"week {week}: {url} body cut short {received}: {_first_line(exc)}") from exc
        except OSError as exc:  # after RequestException, which is an OSError too
            partial.unlink(missing_ok=True)
            raise SourceError(f"week {week}: cannot save {url} to {dest_dir}: {exc}") from exc
        except UnknownLayout as exc:
            partial.unlink(missing_ok=True)
            raise SourceError(f"week {week}: {url} is not a turnstile file: {exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return DownloadedFile(
            week=week,
            url=url,
            path=final,
            size=size,
            sha256=digest.hexdigest(),
            lines=lines + (0 if last_byte == b"\n" else 1),
            layout=layout,
            first_reading=first_reading,
            last_reading=last_reading,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )

    @staticmethod
    def _check_first_chunk(week: str, url: str, chunk: bytes, content_type: str) -> None:
        head = chunk[:4096].decode("utf-8", errors="replace")
        if "html" in content_type.lower():
            raise UnknownLayout(f"the server sent {content_type!r}, an HTML page (starts {head.strip()[:60]!r})")
        detect_layout(head.splitlines()[0] if head else "")


def _first_line(value) -> str:
    if isinstance(value, Path):
        with open(value, "rb") as handle:
            return handle.readline(8192).decode("utf-8", errors="replace")
    text = str(value)
    return text.splitlines()[0] if text else type(value).__name__
