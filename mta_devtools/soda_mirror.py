"""A loopback data.ny.gov: answers the SODA queries ``mta_assets.storage.soda`` sends, offline.

- Hourly ridership (``t69i-h2me``, ``wujg-7c2s``, ``5wq4-mkjj``, each over its own period)
  from ``official_synthetic``: ``$where`` on ``transit_timestamp`` (``>= 'A' AND < 'B'``),
  ``$order``, ``$limit``/``$offset``, ``$select=max(transit_timestamp) AS last``; rows only
  through ``published_through``, so later weeks are "not published".
- Daily totals (``vxuj-8kew``) from a real CSV export of it, with SODA's field names and ISO
  dates; dates from ``successor_from`` on are served only by ``sayj-mze2`` in its long format.
- ``.csv`` (every field quoted, as Socrata writes it) and ``.json``; ``throttle(n, s)`` answers
  the next n requests with 429 and ``Retry-After: s``; ``requests`` records what was asked.

    python -m mta_devtools.soda_mirror --daily FILE [--complexes FILE] [--port N]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mta_assets.mta.official import field_name
from mta_devtools.official_synthetic import FIELDS, Complex, load_complexes, window_rows

HOURLY_PERIODS = {
    "t69i-h2me": (dt.datetime(2017, 1, 1), dt.datetime(2020, 1, 1)),
    "wujg-7c2s": (dt.datetime(2020, 1, 1), dt.datetime(2025, 1, 1)),
    "5wq4-mkjj": (dt.datetime(2025, 1, 1), dt.datetime(9999, 1, 1)),
}
_WINDOW = re.compile(r"transit_timestamp\s*>=\s*'([^']+)'\s+AND\s+transit_timestamp\s*<\s*'([^']+)'", re.IGNORECASE)
_AFTER = re.compile(r"date\s*>\s*'([^']+)'", re.IGNORECASE)


def _iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text[:19])


def last_full_week_end(now: dt.datetime | None = None) -> dt.datetime:
    """The most recent Saturday 00:00: the default edge of what the mirror has published."""
    today = (now or dt.datetime.now()).date()
    saturday = today - dt.timedelta(days=(today.weekday() - 5) % 7)
    return dt.datetime.combine(saturday, dt.time())


class SodaMirror:
    """The server and what it serves; ``start()`` binds 127.0.0.1 on a free port unless one is given."""

    def __init__(
        self,
        daily_export: Path | None,
        complexes: tuple[Complex, ...],
        published_through: dt.datetime | None = None,
        successor_from: dt.date | None = None,
        port: int = 0,
    ):
        self.complexes = complexes
        self.published_through = published_through or last_full_week_end() - dt.timedelta(hours=1)
        self.drop_hours: frozenset[dt.datetime] = frozenset()
        self.requests: list[dict] = []
        self._throttle: list[int] = [0, 0]
        self._lock = threading.Lock()
        self._daily, self._successor = self._load_daily(daily_export, successor_from)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> SodaMirror:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SodaMirror:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def throttle(self, count: int, retry_after_s: int) -> None:
        """Answer the next ``count`` requests with 429 and ``Retry-After: retry_after_s``."""
        with self._lock:
            self._throttle = [count, retry_after_s]

    # -- data -----------------------------------------------------------------------------------

    @staticmethod
    def _load_daily(path: Path | None, successor_from: dt.date | None) -> tuple[list[dict], list[dict]]:
        if path is None:
            return [], []
        daily, successor = [], []
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                fields = {field_name(k): v for k, v in row.items()}
                day = dt.datetime.strptime(fields.pop("date"), "%m/%d/%Y").date()
                stamp = f"{day:%Y-%m-%d}T00:00:00.000"
                if successor_from is not None and day >= successor_from:
                    successor.append({"date": stamp, "mode": "Subway", "count": fields["subways_total_estimated_ridership"]})
                else:
                    daily.append({"date": stamp, **{k: v for k, v in fields.items() if v != ""}})
        return sorted(daily, key=lambda r: r["date"]), sorted(successor, key=lambda r: r["date"])

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one mirror per process; pages of a week reuse its rows
    def _hourly(self, dataset: str, start: dt.datetime, end: dt.datetime, drop: frozenset) -> list[dict]:
        first, last = HOURLY_PERIODS[dataset]
        edge = self.published_through + dt.timedelta(hours=1)
        return window_rows(max(start, first), min(end, last, edge), self.complexes, drop)

    def rows(self, dataset: str, query: dict[str, str]) -> list[dict]:
        where = query.get("$where", "")
        if dataset in HOURLY_PERIODS:
            if query.get("$select", "").lower().startswith("max(transit_timestamp)"):
                first, last = HOURLY_PERIODS[dataset]
                through = min(self.published_through, last - dt.timedelta(hours=1))
                return [{"last": f"{through:%Y-%m-%dT%H:%M:%S}.000"}] if through >= first else [{}]
            match = _WINDOW.search(where)
            if not match:
                raise ValueError(f"the mirror answers only $where {_WINDOW.pattern!r} for {dataset}, got {where!r}")
            rows = list(self._hourly(dataset, _iso(match[1]), _iso(match[2]), self.drop_hours))
        elif dataset == "vxuj-8kew":
            rows = list(self._daily)
        elif dataset == "sayj-mze2":
            rows = list(self._successor)
        else:
            raise LookupError(dataset)
        if (after := _AFTER.search(where)) and dataset not in HOURLY_PERIODS:
            rows = [row for row in rows if row["date"] > after[1]]
        order = [part.split()[0] for part in query.get("$order", "").split(",") if part.strip()]
        if order:
            rows.sort(key=lambda row: tuple(str(row.get(name, "")) for name in order if name != ":id"))
        offset = int(query.get("$offset", "0"))
        limit = int(query.get("$limit", "1000"))
        return rows[offset : offset + limit]

    # -- HTTP -------------------------------------------------------------------------------------

    def _handler(self):
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: tests and ./mta run read their own output
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                with mirror._lock:
                    mirror.requests.append({"path": parts.path, "query": query, "app_token": self.headers.get("X-App-Token")})
                    throttled, retry_after = mirror._throttle
                    if throttled:
                        mirror._throttle[0] -= 1
                if throttled:
                    return self._send(429, b'{"message": "Too many requests"}', "application/json", {"Retry-After": str(retry_after)})
                match = re.fullmatch(r"/resource/([a-z0-9]{4}-[a-z0-9]{4})\.(csv|json)", parts.path)
                if not match:
                    return self._send(404, b"not found", "text/plain")
                try:
                    rows = mirror.rows(match[1], query)
                except LookupError:
                    return self._send(404, b'{"message": "dataset not found"}', "application/json")
                except ValueError as exc:
                    return self._send(400, json.dumps({"message": str(exc)}).encode(), "application/json")
                if match[2] == "json":
                    body = json.dumps([{k: str(v) for k, v in row.items()} for row in rows]).encode()
                    return self._send(200, body, "application/json")
                names = list(FIELDS) if match[1] in HOURLY_PERIODS else sorted({k for row in rows for k in row})
                out = io.StringIO()
                writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
                writer.writerow(names)
                writer.writerows([row.get(name, "") for name in names] for row in rows)
                return self._send(200, out.getvalue().encode(), "text/csv; charset=UTF-8")

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mta_devtools.soda_mirror", description=__doc__.split("\n")[0])
    parser.add_argument("--daily", type=Path, required=True, help="a CSV export of vxuj-8kew (MTA's daily ridership)")
    parser.add_argument("--complexes", type=Path, help="an export of 5f5g-n3cz (Stations and Complexes); default: a few built in")
    parser.add_argument("--complexes-limit", type=int, default=0, help="serve only the first N complexes (0: all)")
    parser.add_argument("--published-through", help="newest hour published, YYYY-MM-DDTHH:MM:SS (default: last Friday 23:00)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args(argv)
    mirror = SodaMirror(
        args.daily,
        load_complexes(args.complexes, args.complexes_limit or None),
        dt.datetime.fromisoformat(args.published_through) if args.published_through else None,
        port=args.port,
    )
    print(f"MTA_OPEN_DATA_URL={mirror.url}", flush=True)
    try:
        mirror._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        mirror._server.server_close()


if __name__ == "__main__":
    main()
