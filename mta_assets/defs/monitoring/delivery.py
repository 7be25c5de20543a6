"""Alert destinations (Slack-compatible webhook and/or e-mail) and robust delivery.

Settings come from the environment through ``mta_assets.settings`` and ``dg.EnvVar``, so
the Dagster UI shows the variable's name, never its value. The webhook URL (whose path is
the credential for Slack-style hooks) and the SMTP password are kept out of reprs, logs,
metadata and alert bodies: every text that leaves this module goes through
``AlertDestinations.redact`` (``mta_assets.settings.redact`` plus the resolved secrets).

Delivery never raises: each destination gets a few short attempts within a total
deadline (``MTA_ALERT_DEADLINE_S``), with urllib3's ``Retry`` deciding what is retried and
how long to back off (the webhook through a requests adapter, e-mail through the same
policy object); destinations are tried in parallel so one that hangs cannot delay the
other, and a failure ends as one redacted log line.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import urllib.parse
from dataclasses import dataclass, field

import dagster as dg
from pydantic import Field, PrivateAttr

from mta_assets.settings import (
    DEFAULTS,
    REDACTED,
    bool_from_env,
    env_text,
    float_from_env,
    int_from_env,
    redact,
    secret_fragments,
)
from mta_assets.storage.deadline import Deadline, deadline_retry

__all__ = ["REDACTED", "Alert", "AlertDestinations", "DeliveryReport"]

DEFAULT_UI_URL = "http://127.0.0.1:3000"

# Environment variable for each resource field; strings and ints are bound through
# dg.EnvVar (the UI shows the name), the rest are read through mta_assets.settings.
STRING_SETTINGS = {
    "webhook_url": "MTA_ALERT_WEBHOOK_URL",
    "smtp_host": "MTA_ALERT_SMTP_HOST",
    "smtp_user": "MTA_ALERT_SMTP_USER",
    "smtp_password": "MTA_ALERT_SMTP_PASSWORD",
    "smtp_from": "MTA_ALERT_SMTP_FROM",
    "smtp_to": "MTA_ALERT_SMTP_TO",
    "ui_url": "MTA_UI_URL",
}
INT_SETTINGS = {
    "smtp_port": ("MTA_ALERT_SMTP_PORT", 1, 65535),
    "attempts": ("MTA_ALERT_ATTEMPTS", 1, 10),
}
FLOAT_SETTINGS = {
    "timeout_seconds": ("MTA_ALERT_TIMEOUT_SECONDS", 0.1),
    "backoff_seconds": ("MTA_ALERT_BACKOFF_SECONDS", 0.0),
    "deadline_seconds": ("MTA_ALERT_DEADLINE_S", 0.1),
}
BOOL_SETTINGS = {
    "smtp_starttls": "MTA_ALERT_SMTP_STARTTLS",
}
_RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Alert:
    """One message for a person: a one-line subject and a plain-text body."""

    subject: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.subject}\n{self.body}"


@dataclass
class DeliveryReport:
    """What happened to one alert: destinations that took it and those that failed."""

    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    configured: bool = True

    @property
    def any_delivered(self) -> bool:
        return bool(self.delivered)


class _DeliveryError(Exception):
    """The destination refused or may have taken the alert: trying again could duplicate it."""


class _RetryableDeliveryError(Exception):
    """The destination certainly did not take the alert: safe to try again."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


class AlertDestinations(dg.ConfigurableResource):
    """Where alerts go. Build it with ``AlertDestinations.from_env()``.

    Neither destination is required: with none configured, alerts are skipped with one
    log line per sensor tick.
    """

    webhook_url: str | None = Field(
        default=None,
        repr=False,
        description="Slack-compatible incoming webhook (POST JSON {'text': ...}). Secret.",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server host name.")
    smtp_port: int = Field(default=587, description="SMTP server port.")
    smtp_user: str | None = Field(default=None, description="SMTP login user, if the server needs one.")
    smtp_password: str | None = Field(default=None, repr=False, description="SMTP login password. Secret.")
    smtp_from: str | None = Field(default=None, description="Sender address.")
    smtp_to: str | None = Field(default=None, description="Comma-separated recipient addresses.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS.")
    ui_url: str = Field(default=DEFAULT_UI_URL, description="Base URL of the Dagster UI, for run links.")
    timeout_seconds: float = Field(default=5.0, description="Connect/read timeout of one delivery attempt.")
    attempts: int = Field(default=3, description="Delivery attempts per destination.")
    backoff_seconds: float = Field(default=0.5, description="Wait before the 2nd attempt; doubles after.")
    deadline_seconds: float = Field(
        default=DEFAULTS["MTA_ALERT_DEADLINE_S"],
        description="Total time for one alert to one destination, retries included.",
    )

    _reported_unconfigured: bool = PrivateAttr(default=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AlertDestinations:
        """Bind every setting present in the environment; absent ones keep their defaults.

        Strings and ints are passed as ``dg.EnvVar`` so their values are resolved only
        when a sensor runs and the UI shows the variable names (ints are checked now).
        Booleans and numbers with a fraction, which ``dg.EnvVar`` cannot carry, are not
        secret and are read here. A bad value names its variable and the allowed values.
        """
        env = os.environ if environ is None else environ
        settings: dict[str, object] = {}
        for attr, name in STRING_SETTINGS.items():
            if env_text(name, environ=env):
                settings[attr] = dg.EnvVar(name)
        for attr, (name, lowest, highest) in INT_SETTINGS.items():
            if env_text(name, environ=env):
                int_from_env(name, 0, lowest, highest, environ=env)
                settings[attr] = dg.EnvVar.int(name)
        for attr, (name, lowest) in FLOAT_SETTINGS.items():
            if env_text(name, environ=env):
                settings[attr] = float_from_env(name, 0.0, lowest, environ=env)
        for attr, name in BOOL_SETTINGS.items():
            if name in env:
                settings[attr] = bool_from_env(name, True, environ=env)
        return cls(**settings)

    # -- what is configured -------------------------------------------------

    @property
    def recipients(self) -> list[str]:
        return [address.strip() for address in (self.smtp_to or "").split(",") if address.strip()]

    @property
    def webhook_configured(self) -> bool:
        return bool(self.webhook_url)

    @property
    def email_configured(self) -> bool:
        return bool(self.smtp_host and self.recipients)

    @property
    def any_configured(self) -> bool:
        return self.webhook_configured or self.email_configured

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def describe(self) -> str:
        """Destinations in words safe to log: hosts only, never the hook path or password."""
        parts = []
        if self.webhook_configured:
            host = urllib.parse.urlsplit(self.webhook_url or "").hostname or "?"
            parts.append(f"webhook at {host}")
        if self.email_configured:
            parts.append(f"e-mail via {self.smtp_host}:{self.smtp_port} to {len(self.recipients)} recipient(s)")
        return ", ".join(parts) or "none"

    # -- secrets --------------------------------------------------------------

    def secrets(self) -> list[str]:
        """Every fragment of a configured secret that could identify it on its own."""
        return secret_fragments(extra=[self.webhook_url or "", self.smtp_password or ""])

    def redact(self, text: str) -> str:
        return redact(text, extra_secrets=[self.webhook_url or "", self.smtp_password or ""])

    # -- delivery -------------------------------------------------------------

    def send(self, alert: Alert, log: logging.Logger) -> DeliveryReport:
        """Deliver to every configured destination; never raises.

        Destinations run in parallel so a hanging one cannot hold the other back; each
        is bounded by ``attempts`` x ``timeout_seconds`` plus backoff.
        """
        if not self.any_configured:
            if not self._reported_unconfigured:
                self._reported_unconfigured = True
                log.info(
                    "No alert destination configured (set MTA_ALERT_WEBHOOK_URL and/or "
                    "MTA_ALERT_SMTP_HOST + MTA_ALERT_SMTP_TO); alert not sent: %s",
                    self.redact(alert.subject),
                )
            return DeliveryReport(configured=False)

        safe_alert = Alert(subject=self.redact(alert.subject), body=self.redact(alert.body))
        senders = {}
        if self.webhook_configured:
            senders["webhook"] = self._post_webhook
        if self.email_configured:
            senders["e-mail"] = self._send_email

        report = DeliveryReport()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(senders)) as pool:
            futures = {
                name: pool.submit(self._with_retries, name, sender, safe_alert, log)
                for name, sender in senders.items()
            }
            for name, future in futures.items():
                (report.delivered if future.result() else report.failed).append(name)
        return report

    def _retry(self, deadline: Deadline):
        # attempts - 1 retries of refused connections and 429/5xx; a read timeout is never
        # retried (the hook may have posted it); never past the deadline.
        retries = max(1, self.attempts) - 1
        return deadline_retry(
            deadline, total=retries, connect=retries, read=0, status=retries, other=retries, redirect=0,
            backoff_factor=self.backoff_seconds, status_forcelist=_RETRY_STATUSES, allowed_methods=None,
            respect_retry_after_header=True, raise_on_status=False, raise_on_redirect=False,
        )

    def _with_retries(self, name: str, sender, alert: Alert, log: logging.Logger) -> bool:
        try:
            attempts = sender(alert, Deadline(self.deadline_seconds))
        except _RetryableDeliveryError as exc:
            log.error("Alert %s not delivered after %d attempt(s): %s", name, exc.attempts, self.redact(str(exc)))
            return False
        except _DeliveryError as exc:
            log.error("Alert %s not delivered (not retried): %s", name, self.redact(str(exc)))
            return False
        except Exception as exc:  # noqa: BLE001 - a broken destination must not break the sensor
            log.error(
                "Alert %s not delivered (not retried): %s: %s", name, type(exc).__name__, self.redact(str(exc))
            )
            return False
        if attempts > 1:
            log.warning("Alert %s needed %d attempts", name, attempts)
        log.info("Alert delivered by %s: %s", name, alert.subject)
        return True

    def _post_webhook(self, alert: Alert, deadline: Deadline) -> int:
        """POST the alert; urllib3's Retry on the session retries refused connections and 429/5xx."""
        import requests
        from requests.adapters import HTTPAdapter

        adapter = HTTPAdapter(max_retries=self._retry(deadline))
        with requests.Session() as session:
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                response = session.post(
                    self.webhook_url or "",
                    json={"text": alert.text},
                    timeout=(self.timeout_seconds, self.timeout_seconds),
                    allow_redirects=False,
                )
            except requests.ConnectionError as exc:
                if "Read timed out" in str(exc):
                    raise _DeliveryError(f"ReadTimeout (it may have been received): {exc}") from None
                # A refused or timed-out connection, after its retries: the hook never saw it.
                raise _RetryableDeliveryError(f"{type(exc).__name__}: {exc}", max(1, self.attempts)) from None
            except requests.Timeout as exc:
                # A ReadTimeout lands here: the hook may already have posted the message.
                raise _DeliveryError(f"{type(exc).__name__} (it may have been received): {exc}") from None
            except requests.RequestException as exc:
                raise _DeliveryError(f"{type(exc).__name__}: {exc}") from None
        attempts = 1 + len(getattr(getattr(response.raw, "retries", None), "history", ()) or ())
        if response.status_code in _RETRY_STATUSES:
            raise _RetryableDeliveryError(f"webhook answered HTTP {response.status_code}", attempts)
        if response.status_code >= 300:
            raise _DeliveryError(f"webhook answered HTTP {response.status_code}")
        return attempts

    def _send_email(self, alert: Alert, deadline: Deadline) -> int:
        """Send by SMTP; the same urllib3 Retry policy decides whether and when to try again."""
        from urllib3.exceptions import MaxRetryError

        retry = self._retry(deadline)
        attempts = 0
        while True:
            attempts += 1
            try:
                self._send_email_once(alert, min(self.timeout_seconds, max(deadline.remaining(), 0.1)))
                return attempts
            except _RetryableDeliveryError as exc:
                try:
                    retry = retry.increment(error=exc)
                except MaxRetryError:
                    exc.attempts = attempts
                    raise exc from None
                retry.sleep()

    def _send_email_once(self, alert: Alert, timeout: float) -> None:
        # Imported here: the email package alone costs the code location 60 ms at every load.
        import smtplib
        import ssl
        from email import policy
        from email.message import EmailMessage

        # 998 is SMTP's own line limit; the default 78 folds long subjects in a way some
        # readers show with a leading space.
        message = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
        message["Subject"] = alert.subject
        message["From"] = self.smtp_from or (self.smtp_user or f"dagster@{self.smtp_host}")
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.body)
        try:
            client = smtplib.SMTP(self.smtp_host or "", self.smtp_port, timeout=timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise _RetryableDeliveryError(f"cannot connect: {type(exc).__name__}: {exc}") from None
        try:
            try:
                if self.smtp_starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.smtp_user and self.smtp_password:
                    client.login(self.smtp_user, self.smtp_password)
                client.send_message(message)
            except smtplib.SMTPAuthenticationError as exc:
                raise _DeliveryError(f"SMTP login refused (code {exc.smtp_code})") from None
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code >= 500:  # permanent refusal: retrying cannot help
                    raise _DeliveryError(f"SMTP refused with code {exc.smtp_code}") from None
                raise _RetryableDeliveryError(f"SMTP answered code {exc.smtp_code}") from None
            except smtplib.SMTPRecipientsRefused as exc:
                raise _DeliveryError(f"SMTP refused {len(exc.recipients)} recipient(s)") from None
            except (OSError, smtplib.SMTPException) as exc:
                # Nothing is delivered until the server accepts DATA, which send_message
                # confirms by returning; failing before that leaves nothing to duplicate.
                raise _RetryableDeliveryError(f"{type(exc).__name__}: {exc}") from None
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
