"""Pytest plugin: real alert receivers on loopback (an HTTP webhook and an SMTP server) and alert settings.

Loaded from conftest with ``pytest_plugins``; the alerting and monitoring tests share them.
"""

import asyncio
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.smtp import SMTP, AuthResult

from mta_assets.defs.monitoring.delivery import AlertDestinations

WEBHOOK_TOKEN = "T000-SECRET-HOOK-TOKEN-4f9a"
SMTP_PASSWORD = "smtp-Secret-Pa55word-77"
SMTP_USER = "alerts@example.test"


@dataclass
class WebhookReceiver:
    url: str
    requests: list[dict] = field(default_factory=list)


@contextmanager
def webhook_receiver(status: int = 200, hang: bool = False) -> Iterator[WebhookReceiver]:
    """A loopback HTTP server taking POSTs at a secret path; it can fail or hang."""
    release = threading.Event()
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"path": self.path, "json": json.loads(body)})
            if hang:
                release.wait(10)
                return
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver = WebhookReceiver(url=f"http://127.0.0.1:{server.server_port}/services/{WEBHOOK_TOKEN}")
    receiver.requests = received
    try:
        yield receiver
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@dataclass
class SmtpReceiver:
    port: int
    messages: list = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """A loopback aiosmtpd server with LOGIN/PLAIN auth over plain text (test only)."""
    loop = asyncio.new_event_loop()
    receiver = SmtpReceiver(port=0)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            receiver.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == SMTP_USER and auth_data.password.decode() == SMTP_PASSWORD
        if ok:
            receiver.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def factory():
        return SMTP(Handler(), authenticator=authenticator, auth_require_tls=False, hostname="localhost")

    server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", 0))
    receiver.port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def mailto_url(smtp: SmtpReceiver) -> str:
    """E-mail to two recipients through the loopback server, as an Apprise URL without its password."""
    query = urllib.parse.urlencode(
        {"user": SMTP_USER, "from": "dagster@example.test", "to": "oncall@example.test,data@example.test",
         "smtp": "127.0.0.1", "format": "text"}
    )
    return f"mailto://127.0.0.1:{smtp.port}?{query}"


def destinations(webhook: WebhookReceiver | None = None, smtp: SmtpReceiver | None = None, **extra):
    env = {"MTA_UI_URL": "http://dagster.test:3000", "MTA_ALERT_BACKOFF_SECONDS": "0.01"}
    if webhook:
        env["MTA_ALERT_WEBHOOK_URL"] = webhook.url
    if smtp:
        env.update({"MTA_ALERT_URLS": mailto_url(smtp), "MTA_ALERT_SMTP_PASSWORD": SMTP_PASSWORD})
    env.update(extra)
    return env


ALERT_VARIABLES = [
    "MTA_ALERT_URLS", "MTA_ALERT_WEBHOOK_URL", "MTA_ALERT_SMTP_PASSWORD", "MTA_UI_URL", "MTA_ALERT_TIMEOUT_SECONDS",
    "MTA_ALERT_ATTEMPTS", "MTA_ALERT_BACKOFF_SECONDS", "MTA_ALERT_DEADLINE_S", "MTA_LATE_WEEK_HOURS",
]


@pytest.fixture
def alert_env(monkeypatch):
    """Put settings in the real environment, as dg.EnvVar resolves them from there."""

    def apply(env: dict[str, str]) -> AlertDestinations:
        for name in ALERT_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return AlertDestinations.from_env()

    return apply


@pytest.fixture
def sensor_log(capfd):
    """The sensor's context.log text: Dagster's console handler writes it to stderr."""

    def read() -> str:
        return capfd.readouterr().err

    return read


