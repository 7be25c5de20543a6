"""Alert delivery against real receivers on 127.0.0.1: an HTTP webhook and an SMTP server."""

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.smtp import SMTP, AuthResult

from mta_assets.alerting import REDACTED, Alert, AlertDestinations

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


def destinations(webhook: WebhookReceiver | None = None, smtp: SmtpReceiver | None = None, **extra):
    env = {"MTA_UI_URL": "http://dagster.test:3000", "MTA_ALERT_BACKOFF_SECONDS": "0.01"}
    if webhook:
        env["MTA_ALERT_WEBHOOK_URL"] = webhook.url
    if smtp:
        env.update(
            {
                "MTA_ALERT_SMTP_HOST": "127.0.0.1",
                "MTA_ALERT_SMTP_PORT": str(smtp.port),
                "MTA_ALERT_SMTP_USER": SMTP_USER,
                "MTA_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
                "MTA_ALERT_SMTP_FROM": "dagster@example.test",
                "MTA_ALERT_SMTP_TO": "oncall@example.test, data@example.test",
                "MTA_ALERT_SMTP_STARTTLS": "false",
            }
        )
    env.update(extra)
    return env


@pytest.fixture
def alert_env(monkeypatch):
    """Put settings in the real environment, as dg.EnvVar resolves them from there."""

    def apply(env: dict[str, str]) -> AlertDestinations:
        for name in [
            "MTA_ALERT_WEBHOOK_URL", "MTA_ALERT_SMTP_HOST", "MTA_ALERT_SMTP_PORT", "MTA_ALERT_SMTP_USER",
            "MTA_ALERT_SMTP_PASSWORD", "MTA_ALERT_SMTP_FROM", "MTA_ALERT_SMTP_TO", "MTA_ALERT_SMTP_STARTTLS",
            "MTA_UI_URL", "MTA_ALERT_TIMEOUT_SECONDS", "MTA_ALERT_ATTEMPTS", "MTA_ALERT_BACKOFF_SECONDS",
        ]:
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


def send_through_sensor(resource: AlertDestinations, alert: Alert) -> list:
    """Deliver as a sensor would: the resource resolved from EnvVar by Dagster itself."""
    reports = []

    @dg.sensor()
    def deliver(context, mta_alerts: AlertDestinations):
        reports.append(mta_alerts.send(alert, context.log))
        reports.append(mta_alerts.send(alert, context.log) if not mta_alerts.any_configured else None)
        return dg.SkipReason("sent")

    deliver.evaluate_tick(dg.build_sensor_context(resources={"mta_alerts": resource}))
    return reports


ALERT = Alert(subject="[mta_assets] test failed for week 2024-01-06", body="Failed step: turnstile_readings")


def test_env_settings_are_bound_by_name_and_secrets_stay_out_of_repr(alert_env):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp))
        # The UI shows a resource's config; for the secrets it must be the variable's name.
        assert resource.webhook_url.env_var_name == "MTA_ALERT_WEBHOOK_URL"
        assert resource.smtp_password.env_var_name == "MTA_ALERT_SMTP_PASSWORD"
        assert resource.smtp_starttls is False
        assert resource.backoff_seconds == 0.01
        assert WEBHOOK_TOKEN not in repr(resource) and SMTP_PASSWORD not in repr(resource)

        seen = {}

        @dg.sensor()
        def inspect(context, mta_alerts: AlertDestinations):
            seen.update(
                url=mta_alerts.webhook_url,
                repr=repr(mta_alerts),
                described=mta_alerts.describe(),
                recipients=mta_alerts.recipients,
                port=mta_alerts.smtp_port,
                redacted=mta_alerts.redact(f"POST {mta_alerts.webhook_url} failed; /services/{WEBHOOK_TOKEN}"),
            )
            return dg.SkipReason("inspected")

        inspect.evaluate_tick(dg.build_sensor_context(resources={"mta_alerts": resource}))
    assert seen["url"] == hook.url
    assert WEBHOOK_TOKEN not in seen["repr"] and SMTP_PASSWORD not in seen["repr"]
    assert seen["described"] == "webhook at 127.0.0.1, e-mail via 127.0.0.1:%d to 2 recipient(s)" % smtp.port
    assert seen["recipients"] == ["oncall@example.test", "data@example.test"]
    assert seen["port"] == smtp.port
    assert seen["redacted"] == f"POST {REDACTED} failed; {REDACTED}"


def test_webhook_and_email_both_receive_the_alert(alert_env):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        reports = send_through_sensor(alert_env(destinations(hook, smtp)), ALERT)
    assert reports[0].delivered == ["webhook", "e-mail"] and reports[0].failed == []
    assert len(hook.requests) == 1
    assert hook.requests[0]["json"] == {"text": f"{ALERT.subject}\n{ALERT.body}"}
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == ALERT.subject
    assert message["To"] == "oncall@example.test, data@example.test"
    assert message.get_content().strip() == ALERT.body
    assert smtp.logins == [SMTP_USER]


def test_no_destination_means_no_alert_and_one_log_line(alert_env, sensor_log):
    resource = alert_env(destinations())
    reports = send_through_sensor(resource, ALERT)
    assert reports[0].configured is False and reports[0].delivered == []
    assert reports[1].configured is False
    assert sensor_log().count("No alert destination configured") == 1


def test_failing_webhook_is_retried_then_logged_and_email_still_arrives(alert_env, sensor_log):
    with webhook_receiver(status=500) as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp, MTA_ALERT_ATTEMPTS="3"))
        reports = send_through_sensor(resource, ALERT)
    assert reports[0].delivered == ["e-mail"] and reports[0].failed == ["webhook"]
    assert len(hook.requests) == 3
    assert len(smtp.messages) == 1
    logged = sensor_log()
    assert logged.count("Alert webhook attempt") == 2
    assert "ERROR - Alert webhook not delivered after 3 attempt(s): webhook answered HTTP 500" in logged
    assert "INFO - Alert delivered by e-mail" in logged


def test_hanging_webhook_times_out_once_and_does_not_block_email(alert_env, sensor_log):
    with webhook_receiver(hang=True) as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp, MTA_ALERT_TIMEOUT_SECONDS="0.3"))
        reports = send_through_sensor(resource, ALERT)
    assert reports[0].delivered == ["e-mail"] and reports[0].failed == ["webhook"]
    # A read timeout may mean the hook posted it: not retried, so no duplicate.
    assert len(hook.requests) == 1
    logged = sensor_log()
    assert "Alert webhook not delivered (not retried): ReadTimeout (it may have been received)" in logged
    assert WEBHOOK_TOKEN not in logged


def test_unreachable_destinations_are_logged_without_secrets(alert_env, sensor_log):
    with webhook_receiver() as hook:
        dead_url = hook.url  # the server is closed on exit: connections are refused
    with smtp_receiver() as smtp:
        dead_smtp_port = smtp.port
    env = destinations(None, None, MTA_ALERT_WEBHOOK_URL=dead_url, MTA_ALERT_ATTEMPTS="2")
    env.update(
        {k: v for k, v in destinations(None, SmtpReceiver(port=dead_smtp_port)).items() if "SMTP" in k}
    )
    reports = send_through_sensor(alert_env(env), ALERT)
    assert reports[0].delivered == [] and sorted(reports[0].failed) == ["e-mail", "webhook"]
    logged = sensor_log()
    assert "Alert webhook not delivered after 2 attempt(s): ConnectionError" in logged
    assert "Alert e-mail not delivered after 2 attempt(s): cannot connect" in logged
    assert WEBHOOK_TOKEN not in logged and SMTP_PASSWORD not in logged


def test_wrong_smtp_password_is_reported_without_echoing_it(alert_env, sensor_log):
    with smtp_receiver() as smtp:
        env = destinations(None, smtp, MTA_ALERT_SMTP_PASSWORD="not-the-" + SMTP_PASSWORD)
        reports = send_through_sensor(alert_env(env), ALERT)
    assert reports[0].failed == ["e-mail"]
    assert smtp.messages == []
    logged = sensor_log()
    assert "SMTP login refused (code 535)" in logged
    assert SMTP_PASSWORD not in logged
