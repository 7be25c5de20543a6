"""Checks of one setting's value that a bound (``ge``, ``le``) cannot express: URLs, folders, chunk sizes.

Each raises ``SettingError`` with a message naming the variable and what it may be; the
settings model (``model.py``) runs them as validators, and the storage classes run the
same ones on values given to them directly. No Dagster import, no I/O except the folder check.
"""

from __future__ import annotations

import re
import tempfile
import urllib.parse
from pathlib import Path

GCS_CHUNK_MULTIPLE = 256 * 1024
# A bucket name as GCS allows it (the dotted, domain-named form included).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class SettingError(SystemExit, ValueError):
    """A setting has a value the code cannot use; the message names the variable and the allowed values.

    A ``ValueError`` (an ``Exception``), so Dagster reports it as the code location's load
    error and callers catch it like any bad value; also a ``SystemExit``, so a command that
    imports the code location (``python -c "import mta_assets.definitions"``, ``dagster``)
    ends with this message alone and exit status 1, not a traceback around it.
    """

    permanent = True  # retrying with the same setting cannot help


def without_userinfo(url: str) -> str:
    """The URL as it may be stored and shown: ``http://user:pw@host/x`` -> ``http://host/x``."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def check_http_url(url: str, variable: str, example: str, credentials: str | None = None) -> str:
    """An http(s) URL with a host, a valid port and no user or password in it.

    ``credentials`` names the settings that carry the user and password instead; the
    refused URL is shown without them, and the password is never printed.
    """
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    shown = without_userinfo(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(f"{variable}={shown!r} is not an http(s) URL: use http(s)://HOST[/PATH], e.g. {example}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise SettingError(f"{variable}: the URL has an invalid port (allowed: 1..65535)") from None
    if "@" in parts.netloc:
        instead = f"set {credentials} instead" if credentials else "this URL takes none"
        raise SettingError(
            f"{variable}={shown!r} carries a user and password in the URL (not shown); "
            f"put the URL without them in {variable} and {instead}"
        )
    return url


def check_source_url(url: str, variable: str = "MTA_SOURCE_URL") -> str:
    """The folder URL of MTA's weekly files: http(s), no query, no credentials (MTA_SOURCE_USER/PASSWORD)."""
    url = check_http_url(
        url, variable, "http://web.mta.info/developers/data/nyct/turnstile", "MTA_SOURCE_USER and MTA_SOURCE_PASSWORD"
    )
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        raise SettingError(f"{variable}={url!r} has a query or fragment; use a plain folder URL")
    return url


def check_webhook_url(url: str, variable: str = "MTA_ALERT_WEBHOOK_URL") -> str:
    """An http(s) URL with a host; the value itself is never shown (it is the credential)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(
            f"{variable} is not an http(s) URL (value not shown: it is secret); "
            "use the incoming-webhook URL, e.g. https://hooks.slack.com/services/…"
        )
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise SettingError(f"{variable}: the URL has an invalid port (allowed: 1..65535)") from None
    return url.strip()


def split_lake_url(url: str, variable: str = "MTA_LAKE_URL") -> tuple[str, str] | None:
    """(bucket, prefix) for ``gs://BUCKET[/PREFIX]``, None for a local folder; refuses what GCS would."""
    url = url.strip()
    if not url:
        raise SettingError(f"{variable} is empty: use gs://BUCKET[/PREFIX] or a local folder")
    if "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    if scheme != "gs":
        raise SettingError(f"{variable}={without_userinfo(url)!r}: only gs://BUCKET[/PREFIX] or a local folder is supported")
    if "@" in rest.split("/", 1)[0]:
        raise SettingError(f"{variable}: a gs:// URL takes no user or password; use MTA_GCP_CREDENTIALS or ADC")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise SettingError(f"{variable}={url!r} names no bucket: use gs://BUCKET[/PREFIX]")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise SettingError(
            f"{variable}={url!r}: {bucket!r} is not a bucket name "
            "(3-222 characters: lower-case letters, digits, '-', '_', '.'; starting and ending with a letter or digit)"
        )
    segments = [segment for segment in prefix.split("/") if segment]
    bad = [segment for segment in segments if segment in (".", "..") or any(c in segment for c in "#?[]*\r\n")]
    if bad:
        raise SettingError(
            f"{variable}={url!r}: the prefix may not contain {bad[0]!r} "
            "(allowed: gs://BUCKET/a/b with plain names, no '.', '..', '#', '?', '[', ']', '*')"
        )
    return bucket, "/".join(segments)


def check_chunk_size(value: int, variable: str = "MTA_UPLOAD_CHUNK_BYTES") -> int:
    if value <= 0 or value % GCS_CHUNK_MULTIPLE:
        raise SettingError(
            f"{variable}={value}: chunk size is not a positive multiple of 256 KiB "
            f"({GCS_CHUNK_MULTIPLE}); e.g. {8 * 1024 * 1024} (8 MiB)"
        )
    return value


def check_not_a_file(path: Path, variable: str) -> Path:
    """A folder setting may name a folder that does not exist yet, never a file."""
    if path.expanduser().exists() and not path.expanduser().is_dir():
        raise SettingError(f"{variable}={str(path)!r} is a file, not a folder; set it to a folder")
    return path


def check_is_file(path: Path, variable: str, what: str) -> Path:
    if not path.expanduser().is_file():
        raise SettingError(f"{variable}={str(path)!r} is not a file ({what})")
    return path


def check_writable_folder(path: Path, variable: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".mta-write-check-"):
            pass
    except OSError as exc:
        raise SettingError(
            f"{variable}={str(path)!r} is not a writable folder ({exc.strerror or exc}); "
            "set it to a folder this process can create and write"
        ) from None
    return path
