"""The one place environment settings are read and checked, and where secrets are redacted.

Every setting is checked when the code location loads (``validate_environment``, called
by ``mta_assets.defs.resources``): a wrong value stops the load with one line naming the
variable and what it may be, instead of failing minutes later inside a download. Checks
that need the disk or the network (the lake folder is writable, the bucket exists) run
once before the first download (``Lake.check``). No Dagster import here.

``redact`` removes every credential this project may be given from any text: passwords
in URLs (``scheme://user:PASSWORD@host``, also percent-encoded), the webhook URL and its
token, the SMTP password and the service-account key, in the forms HTTP libraries print
them (percent-encoded by requests, for instance).
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path

REDACTED = "[redacted]"
GCS_CHUNK_MULTIPLE = 256 * 1024

# Defaults of the deadlines (README "Retries and deadlines"); each is a setting below.
DEFAULTS: dict[str, float] = {
    "MTA_SOURCE_CONNECT_TIMEOUT_S": 10.0,
    "MTA_SOURCE_STALL_TIMEOUT_S": 15.0,
    "MTA_SOURCE_DEADLINE_S": 75.0,
    # A week's download across the step's 2 retries: 240 s + one stall timeout + run overhead < 5 minutes.
    "MTA_SOURCE_WEEK_DEADLINE_S": 240.0,
    "MTA_PROBE_DEADLINE_S": 15.0,
    "MTA_MIN_BYTES_PER_S": 65536,
    "MTA_MAX_FILE_BYTES": 200_000_000,
    "MTA_LAKE_TIMEOUT_S": 15.0,
    "MTA_LAKE_DEADLINE_S": 40.0,
    "MTA_ALERT_DEADLINE_S": 20.0,
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# A bucket name as GCS allows it (the dotted, domain-named form included).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class SettingError(ValueError):
    """A setting has a value the code cannot use; the message names the variable and the allowed values."""

    permanent = True  # retrying with the same setting cannot help


def _raw(name: str, environ: Mapping[str, str] | None = None) -> str:
    return (os.environ if environ is None else environ).get(name, "").strip()


def env_text(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """A text setting; unset or blank means ``default``."""
    return _raw(name, environ) or default


def int_from_env(
    name: str,
    default: int,
    lowest: int,
    highest: int | None = None,
    why: str = "",
    environ: Mapping[str, str] | None = None,
) -> int:
    """An integer setting; a value that is not a whole number or out of range names the variable."""
    raw = _raw(name, environ)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a whole number{_bounds(lowest, highest)}") from None
    if value < lowest or (highest is not None and value > highest):
        raise SettingError(f"{name}={value} is outside {_range(lowest, highest)}{'; ' + why if why else ''}")
    return value


def weeks_per_run() -> int:
    """How many weeks one backfill run takes (``MTA_WEEKS_PER_RUN``); 0, the default, means a whole range in one run."""
    return int_from_env(
        "MTA_WEEKS_PER_RUN",
        0,
        0,
        why="0 (or unset) runs a whole range in one run, N splits a backfill into runs of N weeks",
    )


LAST_WEEK_ENV_VAR = "MTA_LAST_WEEK"


def last_week_from_env() -> str | None:
    """The source's last week (``MTA_LAST_WEEK``, a Saturday key ``YYYY-MM-DD``), or None when unset.

    Weekly partitions end with this week, so no later week is listed, requested, late or
    missing. MTA's archive has no announced last file: declaring it is the operator's call.
    """
    import datetime as dt

    from mta_assets.mta.calendar import FIRST_WEEK, KEY_FORMAT

    raw = os.environ.get(LAST_WEEK_ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        day = dt.datetime.strptime(raw, KEY_FORMAT).date()
    except ValueError:
        raise ValueError(
            f"{LAST_WEEK_ENV_VAR}={raw!r} is not a date: use the Saturday a week begins, YYYY-MM-DD "
            "(e.g. 2024-02-10, the week of turnstile_240217.txt)"
        ) from None
    if day.weekday() != 5:
        saturday = day - dt.timedelta(days=(day.weekday() - 5) % 7)
        raise ValueError(
            f"{LAST_WEEK_ENV_VAR}={raw} is a {day:%A}; weeks are keyed by the Saturday they begin "
            f"(the week holding {raw} is {saturday:{KEY_FORMAT}})"
        )
    key = day.strftime(KEY_FORMAT)
    if key < FIRST_WEEK:
        raise ValueError(f"{LAST_WEEK_ENV_VAR}={key} is before the first week, {FIRST_WEEK}")
    return key


def float_from_env(
    name: str,
    default: float,
    lowest: float,
    highest: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A number setting (seconds, bytes per second); refuses text, NaN and values out of range by name."""
    raw = _raw(name, environ)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number{_bounds(lowest, highest)}") from None
    if value != value or value < lowest or (highest is not None and value > highest):
        raise SettingError(f"{name}={raw} is outside {_range(lowest, highest)}")
    return value


def bool_from_env(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if name not in env:
        return default
    value = env[name].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(f"{name}={env[name]!r} must be true or false (1/0, yes/no, on/off)")


def deadline(name: str, environ: Mapping[str, str] | None = None) -> float:
    """A deadline or limit from ``DEFAULTS``, at least 0.1 (seconds or bytes)."""
    return float_from_env(name, DEFAULTS[name], 0.1, environ=environ)


def _range(lowest: float, highest: float | None) -> str:
    return f"{lowest}..{highest}" if highest is not None else f">= {lowest}"


def _bounds(lowest: float, highest: float | None) -> str:
    return f" (allowed: {_range(lowest, highest)})"


# -- URLs and folders ------------------------------------------------------------------------------


def check_source_url(url: str, variable: str = "MTA_SOURCE_URL") -> str:
    """An http(s) folder URL with a host; userinfo is allowed (it is sent as Basic auth, never shown)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(
            f"{variable}={without_userinfo(url)!r} is not a source folder URL: "
            "use http(s)://HOST[/PATH], e.g. http://web.mta.info/developers/data/nyct/turnstile"
        )
    _check_port(url, variable)
    if parts.query or parts.fragment:
        raise SettingError(f"{variable}={without_userinfo(url)!r} has a query or fragment; use a plain folder URL")
    return url.strip()


def check_webhook_url(url: str, variable: str = "MTA_ALERT_WEBHOOK_URL") -> str:
    """An http(s) URL with a host; the value itself is never shown (it is the credential)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(
            f"{variable} is not an http(s) URL (value not shown: it is secret); "
            "use the incoming-webhook URL, e.g. https://hooks.slack.com/services/…"
        )
    _check_port(url, variable)
    return url.strip()


def _check_port(url: str, variable: str) -> None:
    try:
        urllib.parse.urlsplit(url.strip()).port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise SettingError(f"{variable}: the URL has an invalid port (allowed: 1..65535)") from None


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


def staging_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where steps stage files (``MTA_STAGING_DIR``, else the system temp dir), checked writable."""
    raw = env_text("MTA_STAGING_DIR", environ=environ)
    return check_writable_folder(Path(raw).expanduser() if raw else Path(tempfile.gettempdir()), "MTA_STAGING_DIR")


def validate_environment(environ: Mapping[str, str] | None = None) -> None:
    """Check every setting of the environment without I/O; one error lists every problem found."""
    problems: list[str] = []

    def attempt(check, *args) -> None:
        try:
            check(*args)
        except SettingError as exc:
            problems.append(str(exc))

    source = env_text("MTA_SOURCE_URL", environ=environ)
    if source:
        attempt(check_source_url, source)
    lake = env_text("MTA_LAKE_URL", environ=environ)
    if lake is not None:
        attempt(split_lake_url, lake)
    webhook = env_text("MTA_ALERT_WEBHOOK_URL", environ=environ)
    if webhook:
        attempt(check_webhook_url, webhook)
    attempt(lambda: check_chunk_size(int_from_env("MTA_UPLOAD_CHUNK_BYTES", 8 * 1024 * 1024, 1, environ=environ)))
    for name in DEFAULTS:
        if name == "MTA_MAX_FILE_BYTES":
            attempt(int_from_env, name, 0, 1024, None, "a normal week is about 33 MB", environ)
        else:
            attempt(deadline, name, environ)
    staging = env_text("MTA_STAGING_DIR", environ=environ)
    if staging and Path(staging).expanduser().exists() and not Path(staging).expanduser().is_dir():
        problems.append(f"MTA_STAGING_DIR={staging!r} is a file, not a folder; set it to a folder")
    if problems:
        raise SettingError("; ".join(problems))


# -- secrets --------------------------------------------------------------------------------------

# Variables whose whole value is a secret, and URL variables that may carry a password.
SECRET_VARIABLES = ("MTA_ALERT_URLS", "MTA_ALERT_WEBHOOK_URL", "MTA_ALERT_SMTP_PASSWORD", "MTA_GCP_CREDENTIALS")
URL_VARIABLES = ("MTA_SOURCE_URL", "MTA_LAKE_URL", "MTA_ALERT_URLS", "MTA_ALERT_WEBHOOK_URL")

# scheme://USERINFO@ and its percent-encoded form scheme%3A%2F%2FUSERINFO%40 (a URL inside a URL).
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#@\s\"'<>]+)@", re.IGNORECASE)
_ENCODED_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*%3A%2F%2F)(?P<userinfo>(?:(?!%2F|%40)[^/?#@\s\"'<>&])+)%40", re.IGNORECASE
)


def without_userinfo(url: str) -> str:
    """The URL as it may be stored and shown: ``http://user:pw@host/x`` -> ``http://host/x``."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def userinfo_auth(url: str) -> tuple[str, str] | None:
    """(user, password) carried in a URL, percent-decoded, or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return None
    return urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")


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


# --- ridership and warehouse (issue 14) ---------------------------------------------------------


def ridership_settings() -> dict[str, str | None]:
    """The ridership and warehouse settings given in the environment (unset ones are None).

    ``MTA_WAREHOUSE``: the DuckDB file; ``MTA_STATION_KEY_PATH``: a local copy of MTA's
    Remote-Booth-Station key (checked here: it must be a readable file);
    ``MTA_STATION_KEY_URL``: where to fetch the key when no path is given.
    """
    values = {
        name: (os.environ.get(name, "").strip() or None)
        for name in ("MTA_WAREHOUSE", "MTA_STATION_KEY_PATH", "MTA_STATION_KEY_URL")
    }
    key_path = values["MTA_STATION_KEY_PATH"]
    if key_path and not os.path.isfile(os.path.expanduser(key_path)):
        raise ValueError(f"MTA_STATION_KEY_PATH={key_path!r} is not a file (MTA's Remote-Booth-Station key, CSV or xls)")
    url = values["MTA_STATION_KEY_URL"]
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"MTA_STATION_KEY_URL={url!r} is not an http(s) URL")
    return values
