"""data.ny.gov's SODA API (Socrata): MTA's hourly and daily ridership, paged, with the MTA source's retry rules.

Rows come from ``/resource/<id>.csv`` or ``.json`` with ``$where``, a stable ``$order`` and
``$limit``/``$offset`` paging (dev.socrata.com/docs/paging.html); never ``$group``: the lake
keeps the rows as MTA published them. Transport retries (connection errors, 429 with its
``Retry-After``, 5xx) are urllib3's, through the same session factory as MTA's turnstile
source (``http.retrying_session``), bounded by one total deadline per operation, which is
also checked between the chunks of every page. The optional app token travels only in the
``X-App-Token`` header: never in a URL, a message or a repr.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from mta_assets.mta import official
from mta_assets.storage.deadline import Deadline, TransferAborted
from mta_assets.storage import http
from mta_assets.storage.http import SourceError, SourceUnavailable, retrying_session

DEFAULT_OPEN_DATA_URL = "https://data.ny.gov"
MAX_PAGE_SIZE = 50_000  # SODA 2.0's largest $limit
_CHUNK = 64 * 1024


class SodaError(SourceError):
    """A SODA request failed; the message names the week (or dataset), the URL and the cause.

    A source error like MTA's (redacted, ``permanent``), so both sources' errors are judged alike.
    """


class NotPublished(SodaError, http.NotPublished):
    """data.ny.gov has not published the whole week yet: not an error of the source."""


class SodaUnavailable(SodaError, SourceUnavailable):
    """data.ny.gov could not be reached, kept failing (429, 5xx) or was too slow."""


@dataclasses.dataclass(frozen=True)
class HourlyDownload:
    """A week's hourly rows as published: one gzip CSV (header once), with where they came from."""

    week: str
    path: Path
    rows: int
    datasets: tuple[str, ...]
    urls: tuple[str, ...]
    published_through: dt.datetime  # the dataset's newest transit_timestamp when asked


@dataclasses.dataclass(frozen=True, kw_only=True)
class SodaClient:
    """A client of one Socrata site (``base_url``); the ``OpenDataSource`` resource holds the settings."""

    base_url: str = DEFAULT_OPEN_DATA_URL
    app_token: str | None = dataclasses.field(default=None, repr=False)
    page_size: int = MAX_PAGE_SIZE
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0  # the stall timeout: seconds without a byte
    deadline_s: float = 300.0  # one operation (a week, the daily totals), every page and retry included
    retries: int = 5
    backoff_factor_s: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise SodaError(f"MTA_OPEN_DATA_PAGE_SIZE={self.page_size} is outside 1..{MAX_PAGE_SIZE:,} (SODA's largest $limit)")
        if "@" in self.base_url.split("//", 1)[-1].split("/", 1)[0]:
            raise SodaError("MTA_OPEN_DATA_URL may not hold a user or password; set MTA_OPEN_DATA_APP_TOKEN instead")

    def resource_url(self, dataset: str, fmt: str) -> str:
        return f"{self.base_url.rstrip('/')}/resource/{dataset}.{fmt}"

    # -- plumbing ------------------------------------------------------------------------------

    def _session(self, deadline: Deadline):
        # The same session as MTA's source: urllib3's Retry for 429 (Retry-After) and 5xx, each
        # attempt's timeouts cut to what is left of ``deadline`` (given per request).
        return retrying_session(
            retries=self.retries,
            backoff_factor_s=self.backoff_factor_s,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            headers={"X-App-Token": self.app_token} if self.app_token else None,
        )

    def _get(self, session, what: str, url: str, params: dict[str, str], deadline: Deadline) -> bytes:
        """One page's body, read in chunks under the deadline; errors name ``what``, the URL and the cause."""
        import requests

        shown = requests.Request("GET", url, params=params).prepare().url or url
        if deadline.expired():
            raise SodaUnavailable(f"{what}: {shown}: deadline of {deadline.seconds:g} s exceeded")
        try:
            with session.request("GET", url, deadline, params=params, stream=True) as response:
                status = response.status_code
                if status == 429 or status >= 500:
                    retried = getattr(response, "retries_made", 0)
                    raise SodaUnavailable(
                        f"{what}: {shown} answered HTTP {status} after {retried} retries in {deadline.elapsed():.0f} s"
                    )
                if status in (401, 403):
                    raise SodaError(f"{what}: {shown} refused access (HTTP {status}); check MTA_OPEN_DATA_APP_TOKEN")
                if status != 200:
                    raise SodaError(f"{what}: {shown} answered HTTP {status}: {response.text[:200]!r}")
                body = bytearray()
                for chunk in response.iter_content(_CHUNK):
                    deadline.check(len(chunk))
                    body.extend(chunk)
                return bytes(body)
        except TransferAborted as exc:
            raise SodaUnavailable(f"{what}: {shown}: {exc}", permanent=exc.permanent) from None
        except requests.RequestException as exc:
            cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SodaUnavailable(f"{what}: cannot fetch {shown}: {cause} (after {deadline.elapsed():.0f} s)") from None

    def _pages(self, what: str, dataset: str, fmt: str, params: dict[str, str], deadline: Deadline, read) -> Iterator:
        """Every page of a query, in its ``$order``, until a short page; ``read(body)`` gives (page, its row count)."""
        url = self.resource_url(dataset, fmt)
        with self._session(deadline) as session:
            offset = 0
            while True:
                page = {**params, "$limit": str(self.page_size), "$offset": str(offset)}
                value, count = read(self._get(session, what, url, page, deadline))
                yield value
                if count < self.page_size:
                    return
                offset += count

    def json_rows(self, what: str, dataset: str, params: dict[str, str], deadline: Deadline | None = None) -> list[dict]:
        """All rows of a JSON query, paged."""
        deadline = deadline or Deadline(self.deadline_s)
        url = self.resource_url(dataset, "json")

        def read(body: bytes) -> tuple[list, int]:
            try:
                page = json.loads(body)
            except ValueError as exc:
                raise SodaError(f"{what}: {url} did not answer JSON: {exc}") from None
            if not isinstance(page, list):
                raise SodaError(f"{what}: {url} answered {str(page)[:200]!r}, not rows")
            return page, len(page)

        return [row for page in self._pages(what, dataset, "json", params, deadline, read) for row in page]

    def get_text(self, what: str, url: str) -> str:
        """A small public file (a crosswalk) under the same retry and deadline rules."""
        deadline = Deadline(self.deadline_s)
        with self._session(deadline) as session:
            return self._get(session, what, url, {}, deadline).decode("utf-8-sig")

    # -- MTA's hourly ridership ------------------------------------------------------------------

    def published_through(self, what: str, dataset: str, deadline: Deadline | None = None) -> dt.datetime | None:
        """The dataset's newest ``transit_timestamp`` (an aggregate over the dataset, not a $group)."""
        rows = self.json_rows(what, dataset, {"$select": "max(transit_timestamp) AS last"}, deadline or Deadline(self.deadline_s))
        value = rows[0].get("last") if rows else None
        return official.parse_timestamp(value) if value else None

    def hourly_week(self, week: str, dest_dir: Path) -> HourlyDownload:
        """Download the week's rows from every dataset that covers it into one gzip CSV in ``dest_dir``.

        Raises ``NotPublished`` when the dataset does not reach the week's last hour yet.
        """
        deadline = Deadline(self.deadline_s)
        parts = official.datasets_for_week(week)
        last_dataset = parts[-1][0]
        what = f"week {week}"
        through = self.published_through(what, last_dataset, deadline)
        last_hour = official.week_hours(week)[-1]
        if through is None or through < last_hour:
            raise NotPublished(
                f"week {week} is not published yet: {self.resource_url(last_dataset, 'csv')} has rows through "
                f"{through or 'nothing'}, the week ends at {last_hour}"
            )
        dest_dir.mkdir(parents=True, exist_ok=True)
        final = dest_dir / official.raw_file_name(week)
        partial = dest_dir / f".{final.name}.{uuid.uuid4().hex}.part"
        header: bytes | None = None
        rows = 0
        urls = []
        try:
            with gzip.open(partial, "wb", compresslevel=6) as out:
                for dataset, start, end in parts:
                    urls.append(self.resource_url(dataset, "csv"))
                    params = {
                        "$select": ", ".join(official.HOURLY_FIELDS),
                        "$where": official.soda_where(start, end),
                        "$order": official.SODA_ORDER,
                    }
                    def read(body: bytes) -> tuple[tuple[bytes, bytes, int], int]:
                        head, _, data = body.partition(b"\n")
                        count = sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"))))
                        return (head, data, count), count

                    for head, data, count in self._pages(what, dataset, "csv", params, deadline, read):
                        if header is None:
                            header = head
                            out.write(head + b"\n")
                        elif head != header:
                            raise SodaError(f"{what}: {urls[-1]} answered columns {head[:200]!r}, not {header[:200]!r}")
                        if data:
                            out.write(data if data.endswith(b"\n") else data + b"\n")
                        rows += count
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        return HourlyDownload(week, final, rows, tuple(p[0] for p in parts), tuple(urls), through)

    # -- MTA's daily totals -------------------------------------------------------------------------

    def daily_totals(self) -> list[tuple[str, list[dict]]]:
        """The rows of ``vxuj-8kew`` and, for later dates, of its successor ``sayj-mze2`` (subway only)."""
        deadline = Deadline(self.deadline_s)
        first = self.json_rows("daily totals", official.DAILY_DATASET, {"$order": "date"}, deadline)
        last = max((row.get("date", "") for row in first), default="")
        where = f"date > '{last}'" if last else "date IS NOT NULL"
        later = self.json_rows(
            "daily totals", official.DAILY_SUCCESSOR, {"$where": where, "$order": "date, mode"}, deadline
        )
        return [(official.DAILY_DATASET, first), (official.DAILY_SUCCESSOR, later)]
