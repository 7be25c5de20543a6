"""Every ``MTA_*`` setting in one pydantic-settings model: its type, bounds, default and meaning.

The field ``max_file_bytes`` is the variable ``MTA_MAX_FILE_BYTES``; an empty value is
unset. The descriptions are the table in ``docs/settings.md`` (``docs.py``). Bounds are
``Field(ge=..., le=...)``; what a bound cannot say (a URL, a bucket, a folder) is a
validator calling ``checks.py``. No Dagster import.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mta_assets.mta.calendar import FIRST_WEEK, KEY_FORMAT
from mta_assets.mta.stations import DEFAULT_STATION_KEY_URL
from mta_assets.settings.checks import (
    GCS_CHUNK_MULTIPLE,
    SettingError,
    check_chunk_size,
    check_http_url,
    check_is_file,
    check_not_a_file,
    check_source_url,
    check_webhook_url,
    split_lake_url,
)

ENV_PREFIX = "MTA_"
DEFAULT_SOURCE_URL = "http://web.mta.info/developers/data/nyct/turnstile"
DEFAULT_LAKE_URL = "data/lake"
DEFAULT_UI_URL = "http://127.0.0.1:3000"


def _number(default: float, description: str, lowest: float = 0.1, **extra: Any) -> Any:
    """A float setting (seconds, bytes per second): finite and at least ``lowest``."""
    return Field(default=default, ge=lowest, allow_inf_nan=False, description=description, json_schema_extra=extra or None)


class MtaSettings(BaseSettings):
    """The project's settings, read from ``MTA_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, str_strip_whitespace=True, extra="ignore")

    # -- MTA's source -----------------------------------------------------------------------------
    source_url: str = Field(
        default=DEFAULT_SOURCE_URL,
        description="Folder URL of the weekly turnstile files: MTA's site or a mirror with the same names. "
        "No user or password in it (see MTA_SOURCE_USER).",
        json_schema_extra={"allowed": "http(s) URL, no query, no user:password@"},
    )
    source_user: str | None = Field(default=None, description="User name for the source's Basic auth, with MTA_SOURCE_PASSWORD.")
    source_password: SecretStr | None = Field(default=None, description="Password for the source's Basic auth. Secret: never shown.")
    source_connect_timeout_s: float = _number(10.0, "Seconds to wait for a connection to the source.")
    source_stall_timeout_s: float = _number(15.0, "Seconds without a byte before one download attempt fails.")
    source_deadline_s: float = _number(75.0, "Total seconds for one download attempt, transport retries included.")
    source_week_deadline_s: float = _number(
        240.0, "Total seconds for a week's download across the step's retries; then the week fails as permanent."
    )
    probe_deadline_s: float = _number(15.0, "Total seconds for one HEAD probe of the source (the sensor's).")
    min_bytes_per_s: float = _number(
        65536.0, "Slowest acceptable transfer from the source or to and from the lake, over each timeout window."
    )
    max_file_bytes: int = Field(
        default=200_000_000,
        ge=1024,
        description="Largest week file accepted, in bytes.",
        json_schema_extra={"hint": "a normal week is about 33 MB"},
    )

    # -- the lake ---------------------------------------------------------------------------------
    lake_url: str = Field(
        default=DEFAULT_LAKE_URL,
        description="Where the weekly objects live: gs://BUCKET[/PREFIX] for Google Cloud Storage, or a local folder.",
        json_schema_extra={"allowed": "gs://BUCKET[/PREFIX] or a folder"},
    )
    gcp_project: str | None = Field(default=None, description="GCP project of the storage client; unset: the credentials' own.")
    gcp_credentials: SecretStr | None = Field(
        default=None,
        description="Base64-encoded service-account key JSON; unset: Application Default Credentials. Secret: never shown.",
    )
    upload_chunk_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1,
        description="Chunk size of resumable uploads to GCS, in bytes.",
        json_schema_extra={"allowed": f"a multiple of {GCS_CHUNK_MULTIPLE} (256 KiB)"},
    )
    lake_timeout_s: float = _number(15.0, "Seconds to connect, and without an answer, before one lake request fails.")
    # 30 s: a GCS outage fails a week within 3 minutes over the step's 3 attempts (docs/operations.md).
    lake_deadline_s: float = _number(30.0, "How long one lake request keeps retrying transient errors, in seconds.")
    staging_dir: Path | None = Field(
        default=None, description="Folder where steps stage files; unset: the system's temporary folder."
    )

    # -- weeks and automation ---------------------------------------------------------------------
    last_week: str | None = Field(
        default=None,
        description="The source's last week; weekly partitions end there, so no later week is requested or late. "
        "The warehouse's weeks end there too: MTA's hourly data of later weeks stays in the lake (official_hourly). "
        "Unset: partitions run to the current week.",
        json_schema_extra={"allowed": f"a Saturday YYYY-MM-DD, from {FIRST_WEEK}"},
    )
    weeks_per_run: int = Field(
        default=0,
        ge=0,
        description="Weeks per backfill run; 0 runs a whole range in one run.",
        json_schema_extra={"hint": "0 (or unset) runs a whole range in one run, N splits a backfill into runs of N weeks"},
    )
    schedule_hour: int = Field(default=9, ge=0, le=23, description="Hour of the weekly schedule, New York time.")
    schedule_minute: int = Field(default=0, ge=0, le=59, description="Minute of the weekly schedule.")
    sensor_interval_s: int = Field(
        default=15 * 60,
        ge=30,
        description="Seconds between two looks of the file-arrival sensor at the source.",
        json_schema_extra={"hint": "MTA publishes once a week"},
    )
    late_week_hours: float = _number(
        36.0, "Hours after 00:00 of a week's publication Saturday (New York) by which its table must exist.",
        lowest=0.0, le=24.0 * 28,
    )

    # -- MTA's station key and the warehouse ------------------------------------------------------
    station_key_path: Path | None = Field(
        default=None, description="A local copy of MTA's Remote-Booth-Station key (CSV or xls), for offline use."
    )
    station_key_url: str = Field(
        default=DEFAULT_STATION_KEY_URL,
        description="Where MTA publishes the station key, fetched once when no path is given.",
        json_schema_extra={"allowed": "http(s) URL, no user:password@"},
    )
    warehouse: str = Field(default="data/warehouse.duckdb", description="The warehouse's DuckDB file.")
    warehouse_lock_deadline_s: float = _number(
        120.0, "Longest total wait for another process to release the DuckDB file, every retry included."
    )
    warehouse_memory: str = Field(
        default="192MB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="DuckDB's memory limit while dbt builds the warehouse; beyond it DuckDB spills to disk.",
        json_schema_extra={"allowed": "a size such as 192MB or 1GB"},
    )
    dbt_project_dir: Path | None = Field(default=None, description="The dbt project folder (the image sets it); unset: dbt/ in the checkout.")
    dbt_executable: str | None = Field(
        default=None,
        description="The dbt command, from dbt's own environment (the image sets it); unset: .venv/dbt's "
        "dbt-for-dagster (make setup), then dbt beside Python or on PATH.",
    )
    dbt_target: str = Field(
        default="duckdb", pattern="^(duckdb|bigquery)$", description="The dbt target: the embedded DuckDB file or BigQuery.",
        json_schema_extra={"allowed": "duckdb or bigquery"},
    )
    bigquery_project: str | None = Field(default=None, description="GCP project of the BigQuery target.")
    bigquery_dataset: str = Field(default="mta", description="BigQuery dataset the models are built in.")
    bigquery_location: str = Field(default="US", description="BigQuery location of the dataset.")
    bigquery_method: str = Field(
        default="oauth", pattern="^(oauth|oauth-secrets)$", description="How dbt authenticates to BigQuery.",
        json_schema_extra={"allowed": "oauth or oauth-secrets"},
    )
    bigquery_token: SecretStr | None = Field(default=None, description="Access token for oauth-secrets. Secret: never shown.")
    dashboard_host: str = Field(default="127.0.0.1", description="Address the dashboard listens on (0.0.0.0 in Docker only).")
    dashboard_port: int = Field(default=8050, ge=1, le=65535, description="Port of the dashboard (./mta dashboard).")

    # -- MTA's official ridership (data.ny.gov) ---------------------------------------------------
    open_data_url: str = Field(
        default="https://data.ny.gov", description="Base URL of data.ny.gov's SODA API (or a loopback stand-in).",
        json_schema_extra={"allowed": "http(s) URL, no user:password@"},
    )
    open_data_app_token: SecretStr | None = Field(
        default=None, description="Socrata app token, sent only as the X-App-Token header. Secret: never shown."
    )
    open_data_page_size: int = Field(default=50_000, ge=1, le=50_000, description="Rows per SODA page ($limit).")
    station_complexes_url: str | None = Field(
        default=None,
        description="Folder path or http(s) URL holding the station-complex crosswalks; unset: each file from its public source.",
    )

    # -- alerts -----------------------------------------------------------------------------------
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="Incoming webhook (Slack-compatible JSON) that receives alerts; its path is the credential. "
        "Secret: never shown.",
        json_schema_extra={"allowed": "http(s) URL"},
    )
    alert_urls: SecretStr | None = Field(
        default=None,
        description="Apprise URLs of the alert destinations (mailto://, json://, slack://, ...), comma or space "
        "separated; no password in them (MTA_ALERT_SMTP_PASSWORD). Secret: never shown.",
    )
    alert_smtp_password: SecretStr | None = Field(default=None, description="SMTP login password. Secret: never shown.")
    alert_attempts: int = Field(default=3, ge=1, le=10, description="Delivery attempts per alert destination.")
    alert_timeout_seconds: float = _number(5.0, "Connect and read timeout of one delivery attempt, in seconds.")
    alert_backoff_seconds: float = _number(0.5, "Wait before the second delivery attempt, doubled after.", lowest=0.0)
    alert_deadline_s: float = _number(20.0, "Total seconds for one alert to one destination, retries included.")
    ui_url: str = Field(
        default=DEFAULT_UI_URL,
        description="Base URL of the Dagster UI, for run links in alerts and summaries.",
        json_schema_extra={"allowed": "http(s) URL"},
    )

    # -- checks a bound cannot express ------------------------------------------------------------

    @field_validator("source_url")
    @classmethod
    def _source_url(cls, value: str) -> str:
        return check_source_url(value)

    @field_validator("station_key_url")
    @classmethod
    def _station_key_url(cls, value: str) -> str:
        return check_http_url(value, "MTA_STATION_KEY_URL", DEFAULT_STATION_KEY_URL)

    @field_validator("open_data_url")
    @classmethod
    def _open_data_url(cls, value: str) -> str:
        return check_http_url(value, "MTA_OPEN_DATA_URL", "https://data.ny.gov")

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str) -> str:
        return check_http_url(value, "MTA_UI_URL", DEFAULT_UI_URL)

    @field_validator("lake_url")
    @classmethod
    def _lake_url(cls, value: str) -> str:
        split_lake_url(value)
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_url(value.get_secret_value())
        return value

    @field_validator("upload_chunk_bytes")
    @classmethod
    def _chunk_size(cls, value: int) -> int:
        return check_chunk_size(value)

    @field_validator("staging_dir")
    @classmethod
    def _staging_dir(cls, value: Path | None) -> Path | None:
        return check_not_a_file(value, "MTA_STAGING_DIR") if value is not None else None

    @field_validator("station_key_path")
    @classmethod
    def _station_key_path(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        return check_is_file(value, "MTA_STATION_KEY_PATH", "MTA's Remote-Booth-Station key, CSV or xls")

    @field_validator("last_week")
    @classmethod
    def _last_week(cls, value: str | None) -> str | None:
        return None if value is None else saturday_key(value, "MTA_LAST_WEEK")


def saturday_key(raw: str, variable: str) -> str:
    """A week's key: the Saturday it begins, ``YYYY-MM-DD``, not before the first week."""
    try:
        day = dt.datetime.strptime(raw, KEY_FORMAT).date()
    except ValueError:
        raise SettingError(
            f"{variable}={raw!r} is not a date: use the Saturday a week begins, YYYY-MM-DD "
            "(e.g. 2024-02-10, the week of turnstile_240217.txt)"
        ) from None
    if day.weekday() != 5:
        saturday = day - dt.timedelta(days=(day.weekday() - 5) % 7)
        raise SettingError(
            f"{variable}={raw} is a {day:%A}; weeks are keyed by the Saturday they begin "
            f"(the week holding {raw} is {saturday:{KEY_FORMAT}})"
        )
    key = day.strftime(KEY_FORMAT)
    if key < FIRST_WEEK:
        raise SettingError(f"{variable}={key} is before the first week, {FIRST_WEEK}")
    return key


def env_name(field: str) -> str:
    """The environment variable of a field: ``max_file_bytes`` -> ``MTA_MAX_FILE_BYTES``."""
    return f"{ENV_PREFIX}{field.upper()}"


VARIABLES: dict[str, str] = {env_name(field): field for field in MtaSettings.model_fields}
