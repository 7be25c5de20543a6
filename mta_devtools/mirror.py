"""A loopback HTTP mirror of MTA's turnstile folder, for offline runs and tests.

It serves the files of one local folder the way ``web.mta.info`` serves
``/developers/data/nyct/turnstile/turnstile_YYMMDD.txt``: any URL path is
answered with the file named by its last segment, so ``MTA_SOURCE_URL`` may be
the bare mirror URL or carry MTA's path prefix.

Tests can inject the failures a real download meets (5xx, 429, an HTML page
served with 200, a body cut short, a server that never answers, one that stalls
mid-body or trickles, a gzip Content-Encoding, redirects, a reset connection),
require Basic auth (``require_auth``, for credentials carried in the source URL),
and cause an outage of the whole server (``down()`` / ``up()``).

Outage model: ``down()`` closes the listening socket and every open connection,
so new connections are refused (``ECONNREFUSED``) exactly as when a server is
off; ``up()`` binds the same port again (``SO_REUSEADDR``, a few retries) and
raises ``OSError`` if another process took the port meanwhile.

Command line: ``./mta python -m mta_devtools.mirror DIR [--host 127.0.0.1] [--port 8765]``,
stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import collections
import email.utils
import gzip
import html
import ipaddress
import logging
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
DEFAULT_HANG_SECONDS = 5.0
DEFAULT_TRICKLE_SECONDS = 1.0
TRICKLE_BYTES = 100
STALL_AFTER_BYTES = 64 * 1024
FAULTS = ("503", "429", "500", "html", "truncate", "hang", "reset", "stall", "trickle", "gzip", "redirect", "nolength")
_TIMED = ("hang", "stall", "trickle")

_MAINTENANCE_PAGE = b"""<!DOCTYPE html>
<html><head><title>Service Unavailable</title></head>
<body><h1>We'll be back soon</h1>
<p>web.mta.info is undergoing scheduled maintenance. Please try again later.</p>
</body></html>
"""


def _parse_fault(fault: str) -> tuple[str, float | str]:
    kind, _, argument = fault.partition(":")
    if kind not in FAULTS:
        raise ValueError(
            f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)} "
            "(hang:SECONDS, stall:SECONDS, trickle:SECONDS, redirect:URL)"
        )
    if kind == "redirect":
        return kind, argument
    if argument and kind not in _TIMED:
        raise ValueError(f"fault {kind!r} takes no argument (got {fault!r})")
    default = DEFAULT_TRICKLE_SECONDS if kind == "trickle" else DEFAULT_HANG_SECONDS
    try:
        seconds = float(argument) if argument else default
    except ValueError:
        raise ValueError(f"{kind} needs a number of seconds, got {fault!r}") from None
    return kind, seconds


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], mirror: MirrorServer):
        self.mirror = mirror
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive like a real web server; every response sets Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "mta-mirror/1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.mirror._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.mirror._untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        mirror = self.server.mirror
        mirror._record(self.command, self.path)
        if not mirror._authorized(self.headers.get("Authorization")):
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Basic realm="mta-mirror"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        name = _file_name(self.path)
        fault = mirror._next_fault(name) if name else None
        if fault is not None:
            kind, seconds = fault
            if kind == "redirect":
                target = str(seconds) or f"/moved/{urllib.parse.quote(name or '')}"
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if kind == "reset":
                self._reset()
                return
            if kind == "hang":
                mirror._stopping.wait(seconds)
                self.close_connection = True
                return
            if kind in ("503", "429", "500"):
                self._send_error_page(int(kind), send_body)
                return
            if kind == "html":
                self._send_page(HTTPStatus.OK, _MAINTENANCE_PAGE, send_body)
                return
        path = mirror._resolve(name) if name else None
        if path is None:
            self._send_error_page(HTTPStatus.NOT_FOUND, send_body)
            return
        stat = path.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        if _not_modified(self.headers, etag, int(stat.st_mtime)):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.end_headers()
            return
        kind = fault[0] if fault is not None else None
        if kind == "gzip":
            # A server that compresses on the fly: Content-Length is the compressed size.
            self._send_gzip(path, etag, last_modified, send_body)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        if kind == "nolength":
            self.send_header("Connection", "close")  # the end of the body is the end of the connection
        else:
            self.send_header("Content-Length", str(stat.st_size))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.send_header("Accept-Ranges", "none")
        if kind in ("truncate", "stall", "trickle"):
            self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        if kind == "nolength":
            self._stream(path, stat.st_size)
            self.close_connection = True
            return
        if kind == "stall":
            self._stream(path, min(STALL_AFTER_BYTES, stat.st_size))
            self.wfile.flush()
            mirror._stopping.wait(float(fault[1]))
            self.close_connection = True
            return
        if kind == "trickle":
            self._stream(path, stat.st_size, piece=TRICKLE_BYTES, pause=float(fault[1]))
            self.close_connection = True
            return
        limit = stat.st_size // 2 if kind == "truncate" else stat.st_size
        self._stream(path, limit)
        if limit < stat.st_size:
            # The client was promised st_size bytes; closing now is what a dropped download looks like.
            self.close_connection = True

    def _send_gzip(self, path: Path, etag: str, last_modified: str, send_body: bool) -> None:
        body = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _stream(self, path: Path, limit: int, piece: int = CHUNK_BYTES, pause: float = 0.0) -> None:
        stopping = self.server.mirror._stopping
        remaining = limit
        with path.open("rb") as source:
            while remaining > 0:
                chunk = source.read(min(piece, remaining))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                    if pause:
                        self.wfile.flush()
                except OSError:  # the client gave up: what a trickle is for
                    return
                remaining -= len(chunk)
                if pause and stopping.wait(pause):
                    return

    def _send_error_page(self, status: int, send_body: bool) -> None:
        phrase = HTTPStatus(status).phrase
        page = (
            f"<!DOCTYPE html>\n<html><head><title>{status} {phrase}</title></head>\n"
            f"<body><h1>{phrase}</h1><p>{html.escape(urllib.parse.unquote(self.path))}</p></body></html>\n"
        ).encode()
        self._send_page(status, page, send_body)

    def _send_page(self, status: int, page: bytes, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            self.send_header("Retry-After", "0")
        self.end_headers()
        if send_body:
            self.wfile.write(page)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST, so the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


def _file_name(request_path: str) -> str | None:
    """The file a request names: the last segment of its path, if it is a plain file name."""
    path = urllib.parse.urlsplit(request_path).path
    name = urllib.parse.unquote(path.rsplit("/", 1)[-1])
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\x00" in name:
        return None
    return name


def _not_modified(headers, etag: str, mtime_seconds: int) -> bool:
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.timestamp() >= mtime_seconds
    return False


class MirrorServer:
    """Serves ``root``'s files over HTTP on ``host:port`` (port 0: a free port) from a background thread."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str]] = []
        self._faults: dict[str, collections.deque[tuple[str, float]]] = collections.defaultdict(collections.deque)
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._credentials: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> MirrorServer:
        if not self.root.is_dir():
            raise NotADirectoryError(f"mirror folder {self.root} does not exist")
        if self._server is not None:
            return self
        self._stopping.clear()
        self._bind(retries=0)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._close_server()

    def down(self) -> None:
        """Simulate an outage: refuse new connections and drop open ones until ``up()``."""
        self._close_server()

    def up(self) -> None:
        """End an outage by listening again on the same port."""
        if self._server is None:
            self._bind(retries=20)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- test controls -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str]]:
        """A snapshot of the ``(method, path)`` of every request received, in order."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def inject(self, name: str, *faults: str) -> None:
        """Queue faults for file ``name``; each GET or HEAD of it consumes the next one.

        ``503``, ``500``: that status with an HTML page. ``429``: with ``Retry-After: 0``.
        ``html``: 200 with a maintenance HTML page. ``truncate``: headers with the full
        Content-Length, half the body, then the connection closes. ``hang`` / ``hang:SECONDS``:
        no response for SECONDS (default 5), then the connection closes. ``reset``: the
        connection is reset (RST) without any response. ``stall`` / ``stall:SECONDS``: headers
        and the first 64 KiB, then nothing for SECONDS. ``trickle`` / ``trickle:SECONDS``: the
        body 100 bytes at a time, SECONDS apart. ``gzip``: the body gzip-compressed with
        ``Content-Encoding: gzip`` and the compressed Content-Length. ``redirect`` /
        ``redirect:URL``: 302 to URL (default ``/moved/<name>`` on this server). ``nolength``:
        no Content-Length, the body ends when the connection closes.
        """
        parsed = [_parse_fault(fault) for fault in faults]
        with self._lock:
            self._faults[name].extend(parsed)

    def require_auth(self, user: str, password: str) -> None:
        """Answer 401 to every request without this Basic auth (a source URL's ``user:password@``)."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        with self._lock:
            self._credentials = f"Basic {token}"

    def _authorized(self, header: str | None) -> bool:
        with self._lock:
            return self._credentials is None or header == self._credentials

    def pending_faults(self, name: str) -> list[str]:
        with self._lock:
            return [kind for kind, _ in self._faults.get(name, ())]

    # -- internals used by the handler -------------------------------------------------------------

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))

    def _next_fault(self, name: str) -> tuple[str, float] | None:
        with self._lock:
            queue = self._faults.get(name)
            return queue.popleft() if queue else None

    def _resolve(self, name: str) -> Path | None:
        candidate = (self.root / name).resolve()
        if candidate.parent != self.root or not candidate.is_file():
            return None
        return candidate

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _bind(self, retries: int) -> None:
        for attempt in range(retries + 1):
            try:
                server = _Server((self.host, self.port), self)
                break
            except OSError:
                if attempt == retries:
                    raise
                time.sleep(0.05)
        self.port = server.server_address[1]
        self._server = server
        # A short poll interval lets stop() and down() return promptly.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"mta-mirror:{self.port}", daemon=True
        )
        self._thread.start()

    def _close_server(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mta_devtools.mirror",
        description="Serve a folder of turnstile_YYMMDD.txt files over HTTP, standing in for web.mta.info.",
    )
    parser.add_argument("folder", type=Path, help="folder holding turnstile_YYMMDD.txt files")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind, 0 for any free port (default: 8765)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)

    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    if not _is_loopback(args.host):
        print(f"warning: binding {args.host}, which is not a loopback address", file=sys.stderr)

    stop_requested = threading.Event()
    # Both handled explicitly: a shell starting the mirror in the background leaves SIGINT ignored.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: stop_requested.set())
    mirror = MirrorServer(args.folder, host=args.host, port=args.port)
    try:
        mirror.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    files = sorted(path.name for path in mirror.root.glob("turnstile_*.txt"))
    print(f"Serving {len(files)} turnstile file(s) from {mirror.root}", flush=True)
    print(f"MTA_SOURCE_URL={mirror.url}", flush=True)
    try:
        stop_requested.wait()
    finally:
        mirror.stop()
    print("mirror stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
