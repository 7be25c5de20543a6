"""A loopback HTTP proxy in front of gcp-storage-emulator that can fail like GCS does.

Tests point ``STORAGE_EMULATOR_HOST`` at it. Modes: ``forward`` (pass everything),
``503`` (answer 503 to every request), ``stall`` (accept and never answer),
``flip`` (forward, but flip one byte in the body of the next upload chunk), and
``precondition`` (forward, but answer 412 to uploads carrying ``ifGenerationMatch=0``
when the object already exists, as GCS does and the emulator does not), and ``full``
(forward, but answer 507 Insufficient Storage to uploads that name ``full_match``).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class GcsFaultProxy:
    def __init__(self, upstream: str, mode: str = "forward", full_match: str = ""):
        self.upstream = upstream.rstrip("/")
        self.mode = mode
        self.full_match = full_match
        self.requests: list[tuple[str, str]] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                    mode = proxy.mode
                if mode == "stall":
                    proxy._release.wait(60)
                    self.close_connection = True
                    return
                if mode == "503":
                    self._answer(503, b'{"error": {"code": 503, "message": "Service Unavailable"}}')
                    return
                if mode == "full" and self.command in ("POST", "PUT") and proxy.full_match in (
                    urllib.parse.unquote(self.path) + body.decode("latin-1")
                ):
                    self._answer(507, b'{"error": {"code": 507, "message": "Insufficient Storage"}}')
                    return
                if mode == "flip" and self.command == "PUT" and len(body) > 10:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]
                    with proxy._lock:
                        proxy.mode = "forward"
                if mode == "precondition" and self._creates_only():
                    # Check and create under one lock, so the proxy is as atomic as GCS.
                    with proxy._create_lock:
                        if self._exists(body):
                            self._answer(412, b'{"error": {"code": 412, "message": "Precondition Failed"}}')
                            return
                        self._forward(body)
                    return
                self._forward(body)

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=30,
                    allow_redirects=False,
                )
                content = upstream.content
                location = upstream.headers.get("Location")
                self.send_response(upstream.status_code)
                for name, value in upstream.headers.items():
                    if name.lower() in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        continue
                    if name.lower() == "location" and location:
                        value = location.replace(proxy.upstream, f"http://127.0.0.1:{proxy.port}")
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _creates_only(self) -> bool:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                return query.get("ifGenerationMatch") == ["0"]

            def _exists(self, body: bytes) -> bool:
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query)
                bucket = parts.path.split("/b/", 1)[1].split("/", 1)[0]
                # A multipart upload names the object in its JSON part, a resumable one in the query.
                found = re.search(rb'"name": ?"([^"]+)"', body)
                name = found.group(1).decode() if found else query.get("name", [""])[0]
                url = f"{proxy.upstream}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"
                return requests.get(url, timeout=10).status_code == 200

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GcsFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
