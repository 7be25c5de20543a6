"""Where alerts go, sent through Apprise (https://github.com/caronc/apprise).

Why Apprise and not Dagster's per-service factories (``make_email_on_run_failure_sensor``,
dagster-slack, dagster-msteams): one library and one setting reach Slack, Teams, Discord,
e-mail and a plain JSON webhook from a list of URLs, and Apprise owns what we used to
write by hand: parallel delivery, a per-destination retry (``retry``/``wait``), per-attempt
timeouts (``cto``/``rto``) and a total deadline for the whole call (``notify(timeout=)``).

Secrets: ``MTA_ALERT_URLS`` and ``MTA_ALERT_WEBHOOK_URL`` are secret as a whole (Slack,
Teams and Discord carry their tokens in the URL path by design) and bound with
``dg.EnvVar``, so the UI shows their names only. Passwords never sit in a URL: one with a
password is refused, naming ``MTA_ALERT_SMTP_PASSWORD``, which is put into the ``mailto``
URL in memory at send time. Every text that leaves this module is redacted.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from dataclasses import dataclass, field

import dagster as dg
from pydantic import Field, PrivateAttr

from mta_assets.settings import REDACTED, SettingError, float_from_env, int_from_env, redact

__all__ = ["REDACTED", "Alert", "AlertDestinations", "DeliveryReport", "alert_urls"]

URLS_VAR, WEBHOOK_VAR, PASSWORD_VAR = "MTA_ALERT_URLS", "MTA_ALERT_WEBHOOK_URL", "MTA_ALERT_SMTP_PASSWORD"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
# A new URL starts at a scheme, so "mailto://host?to=a,b" keeps its comma-separated recipients.
_URL_SPLIT = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_PASSWORD_PARAMS = {"pass", "password", "pwd", "secret"}
# Apprise's JSON keys renamed so MTA_ALERT_WEBHOOK_URL keeps receiving Slack's {"text": ...}.
_SLACK_PAYLOAD = ":message=text&:version=&:title=&:attachments=&:type="
_NUMBERS = {  # field: (variable, default, lowest, highest)
    "timeout_seconds": ("MTA_ALERT_TIMEOUT_SECONDS", 5.0, 0.1, None),
    "backoff_seconds": ("MTA_ALERT_BACKOFF_SECONDS", 0.5, 0.0, 20.0),
    "deadline_seconds": ("MTA_ALERT_DEADLINE_S", 20.0, 0.1, None),
}


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
    """Destinations (scheme://host, no secret) that took one alert and those that did not."""

    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    configured: bool = True

    @property
    def any_delivered(self) -> bool:
        return bool(self.delivered)


def label(url: str) -> str:
    """A destination as it may be shown: its scheme and host, never a path, user or password."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def alert_urls(urls: str | None, webhook_url: str | None) -> list[str]:
    """Apprise URLs of every destination; refuses one that carries a password (never printed)."""
    found = [url for url in _URL_SPLIT.split((urls or "").strip()) if url]
    if webhook_url:
        parts = urllib.parse.urlsplit(webhook_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingError(f"{WEBHOOK_VAR} is not an http(s) URL (value not shown: it is secret)")
        scheme = "jsons" if parts.scheme == "https" else "json"
        query = f"{parts.query}&{_SLACK_PAYLOAD}" if parts.query else _SLACK_PAYLOAD
        found.append(urllib.parse.urlunsplit(parts._replace(scheme=scheme, query=query)))
    for url in found:
        parts = urllib.parse.urlsplit(url)
        params = {key.lower() for key, _ in urllib.parse.parse_qsl(parts.query)}
        if parts.password or params & _PASSWORD_PARAMS:
            source = WEBHOOK_VAR if url == found[-1] and webhook_url else URLS_VAR
            raise SettingError(
                f"{source}: the destination {label(url)} carries a password in its URL (not shown); "
                f"remove it and set {PASSWORD_VAR} instead"
            )
    return found


class AlertDestinations(dg.ConfigurableResource):
    """Where alerts go: Apprise URLs. Build it with ``AlertDestinations.from_env()``."""

    urls: str | None = Field(default=None, repr=False, description=f"Apprise URLs ({URLS_VAR}). Secret.")
    webhook_url: str | None = Field(
        default=None, repr=False, description=f"Slack-compatible webhook, gets {{'text': ...}} ({WEBHOOK_VAR}). Secret."
    )
    smtp_password: str | None = Field(
        default=None, repr=False, description=f"Password for mailto:// destinations ({PASSWORD_VAR}). Secret."
    )
    ui_url: str = Field(default=DEFAULT_UI_URL, description="Base URL of the Dagster UI, for run links (MTA_UI_URL).")
    timeout_seconds: float = Field(default=5.0, description="Connect and read timeout of one delivery attempt.")
    attempts: int = Field(default=3, description="Delivery attempts per destination (MTA_ALERT_ATTEMPTS).")
    backoff_seconds: float = Field(default=0.5, description="Wait between attempts (MTA_ALERT_BACKOFF_SECONDS).")
    deadline_seconds: float = Field(default=20.0, description="Total time for one alert, retries included.")

    _reported_unconfigured: bool = PrivateAttr(default=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AlertDestinations:
        """Bind the settings present in the environment, checking them now (the code location's load).

        Secrets and texts go as ``dg.EnvVar`` (resolved when a sensor runs; the UI shows
        the name); numbers are read here. A bad value names its variable.
        """
        env = os.environ if environ is None else environ
        alert_urls(env.get(URLS_VAR), env.get(WEBHOOK_VAR))
        settings: dict[str, object] = {
            attr: dg.EnvVar(name)
            for attr, name in [("urls", URLS_VAR), ("webhook_url", WEBHOOK_VAR), ("smtp_password", PASSWORD_VAR),
                               ("ui_url", "MTA_UI_URL")]
            if env.get(name, "").strip()
        }
        settings["attempts"] = int_from_env("MTA_ALERT_ATTEMPTS", 3, 1, 10, environ=env)
        for attr, (name, default, lowest, highest) in _NUMBERS.items():
            settings[attr] = float_from_env(name, default, lowest, highest, environ=env)
        return cls(**settings)

    def destinations(self) -> list[str]:
        return alert_urls(self.urls, self.webhook_url)

    def redact(self, text: str) -> str:
        return redact(text, extra_secrets=[self.urls or "", self.webhook_url or "", self.smtp_password or ""])

    def _with_secrets(self, url: str) -> str:
        """The URL Apprise gets: the password added (memory only) and our timeouts."""
        parts = urllib.parse.urlsplit(url)
        extra = {"cto": f"{self.timeout_seconds:g}", "rto": f"{self.timeout_seconds:g}"}
        if parts.scheme in ("mailto", "mailtos") and self.smtp_password:
            extra["pass"] = self.smtp_password
        query = "&".join(filter(None, [parts.query, urllib.parse.urlencode(extra)]))
        return urllib.parse.urlunsplit(parts._replace(query=query))

    def send(self, alert: Alert, log: logging.Logger) -> DeliveryReport:
        """Deliver to every destination at once, within ``deadline_seconds``; never raises."""
        import apprise  # imported on first alert: not at every load of the code location

        urls = self.destinations()
        if not urls:
            if not self._reported_unconfigured:
                self._reported_unconfigured = True
                log.info(f"No alert destination configured ({URLS_VAR}); alert not sent: %s", self.redact(alert.subject))
            return DeliveryReport(configured=False)
        asset = apprise.AppriseAsset(default_service_retry=self.attempts - 1, default_service_wait=self.backoff_seconds)
        notifier = apprise.Apprise(asset=asset)
        report = DeliveryReport()
        names: list[str] = []
        for url in urls:
            if notifier.add(self._with_secrets(url)):
                names.append(label(url))
            else:
                report.failed.append(label(url))
                log.error("Alert destination %s is not a URL Apprise knows; skipped", label(url))
        try:
            result = notifier.notify(
                title=self.redact(alert.subject), body=self.redact(alert.text), timeout=self.deadline_seconds
            )
        except Exception as exc:  # noqa: BLE001 - a broken destination must not break the sensor
            log.error("Alert not delivered: %s: %s", type(exc).__name__, self.redact(str(exc)))
            return DeliveryReport(failed=report.failed + names)
        for name, outcome in zip(names, result.results, strict=False):
            if outcome:
                report.delivered.append(name)
                log.info("Alert delivered to %s: %s", name, self.redact(alert.subject))
                continue
            report.failed.append(name)
            why = "; ".join(dict.fromkeys(entry.message for entry in outcome.logs())) or outcome.status.name.lower()
            log.error("Alert to %s not delivered after %d attempt(s): %s", name, len(outcome), self.redact(why))
        return report
