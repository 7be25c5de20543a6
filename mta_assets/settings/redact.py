"""Removing every credential this project may be given from any text (log lines, errors, alerts).

Credentials are settings of their own (``MTA_SOURCE_PASSWORD``, ``MTA_ALERT_SMTP_PASSWORD``,
``MTA_GCP_CREDENTIALS``, the webhook URL whose path is its token), never inside another
URL: a URL with a password is refused when the settings are read (``checks.py``). What a
library may still print — a server's redirect to ``user:pw@host``, a secret it has
percent-encoded — is hidden here, in the forms HTTP libraries print it.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"

# Variables whose whole value is a secret, and URL variables whose userinfo would be one.
SECRET_VARIABLES = (
    "MTA_SOURCE_PASSWORD", "MTA_ALERT_URLS", "MTA_ALERT_WEBHOOK_URL", "MTA_ALERT_SMTP_PASSWORD", "MTA_GCP_CREDENTIALS",
    "MTA_OPEN_DATA_APP_TOKEN", "MTA_BIGQUERY_TOKEN",
)
URL_VARIABLES = ("MTA_SOURCE_URL", "MTA_LAKE_URL", "MTA_STATION_KEY_URL", "MTA_ALERT_URLS", "MTA_ALERT_WEBHOOK_URL", "MTA_OPEN_DATA_URL")

# scheme://USERINFO@ and its percent-encoded form scheme%3A%2F%2FUSERINFO%40 (a URL inside a URL).
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#@\s\"'<>]+)@", re.IGNORECASE)
_ENCODED_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*%3A%2F%2F)(?P<userinfo>(?:(?!%2F|%40)[^/?#@\s\"'<>&])+)%40", re.IGNORECASE
)


def _variants(secret: str) -> set[str]:
    """The forms a secret takes once a library has quoted or unquoted it."""
    import requests.utils

    forms = {secret, urllib.parse.unquote(secret)}
    for form in list(forms):
        forms.update(
            {
                urllib.parse.quote(form, safe=""),
                urllib.parse.quote(form, safe="/:"),
                urllib.parse.quote_plus(form),
                requests.utils.requote_uri(form),
            }
        )
    return {form for form in forms if len(form) >= 4}


def _secret_pieces(value: str, whole: bool) -> set[str]:
    """The fragments of one value to hide: all of it (``whole``), its URL path and query, its userinfo."""
    found: set[str] = _variants(value) if whole else set()
    if "://" in value:
        parts = urllib.parse.urlsplit(value)
        if whole:
            # Slack-style hooks carry the token in the path; some carry it in the query.
            for piece in (parts.path, parts.path.strip("/"), parts.query):
                if len(piece.strip("/")) >= 4:
                    found.update(_variants(piece))
        if "@" in parts.netloc:
            found.update(_variants(parts.netloc.rsplit("@", 1)[0]))
            if parts.password:
                found.update(_variants(urllib.parse.unquote(parts.password)))
    return found


def secret_fragments(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> list[str]:
    """Every piece of a configured secret that could identify it, longest first.

    ``extra`` are secret values known only at run time (a resource's resolved settings).
    """
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name in SECRET_VARIABLES:
        if env.get(name):
            found.update(_secret_pieces(env[name], whole=True))
    for name in URL_VARIABLES:
        if env.get(name):
            found.update(_secret_pieces(env[name], whole=False))
    for value in extra:
        if value:
            found.update(_secret_pieces(value, whole=True))
    return sorted(found, key=len, reverse=True)


def redact(text: str, extra_secrets: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every credential replaced by ``[redacted]`` (see the module docstring)."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _ENCODED_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}%40", text)
    for secret in secret_fragments(environ, extra_secrets):
        if secret.lower() in text.lower():
            text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    return text
