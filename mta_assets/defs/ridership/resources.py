"""Resources of the ridership assets: MTA's station key and the DuckDB warehouse."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from mta_assets.mta.stations import DEFAULT_STATION_KEY_URL, StationKey, load_station_key, parse_station_key
from mta_assets.settings import ridership_settings
from mta_assets.storage.warehouse import DEFAULT_WAREHOUSE

_FETCHED: dict[str, tuple[StationKey | None, str]] = {}
_FETCH_LOCK = threading.Lock()


class StationKeySource(dg.ConfigurableResource):
    """MTA's Remote-Booth-Station key: a local file when configured, else fetched once from MTA's site."""

    path: str | None = Field(
        default=None, description="Local CSV or xls of the key, for offline use (env MTA_STATION_KEY_PATH)."
    )
    url: str = Field(default=DEFAULT_STATION_KEY_URL, description="Where MTA publishes the key (env MTA_STATION_KEY_URL).")
    timeout_s: float = Field(default=20.0, description="Connect and read timeout of the one fetch attempt.")

    def load(self) -> tuple[StationKey | None, str]:
        """(key, where it came from) or (None, why not). A local path must work; a fetch may fail.

        A failed fetch is not retried within the process: 11-column weeks then keep the
        names in their files and wide weeks fail the ``every_unit_has_station`` check.
        """
        if self.path:
            return load_station_key(Path(self.path).expanduser()), self.path
        with _FETCH_LOCK:
            if self.url not in _FETCHED:
                _FETCHED[self.url] = self._fetch()
            return _FETCHED[self.url]

    def _fetch(self) -> tuple[StationKey | None, str]:
        import requests

        try:
            response = requests.get(self.url, timeout=(min(self.timeout_s, 5.0), self.timeout_s))
            response.raise_for_status()
            return parse_station_key(response.content, self.url.rsplit("/", 1)[-1]), self.url
        except (requests.RequestException, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return None, f"station key unavailable from {self.url}: {first} (set MTA_STATION_KEY_PATH for offline use)"


def build_ridership_resources() -> dict[str, object]:
    """The station key and the warehouse, from the environment (README "Environment variables")."""
    settings = ridership_settings()
    key_source = StationKeySource(
        path=dg.EnvVar("MTA_STATION_KEY_PATH") if settings["MTA_STATION_KEY_PATH"] else None,
        url=dg.EnvVar("MTA_STATION_KEY_URL") if settings["MTA_STATION_KEY_URL"] else DEFAULT_STATION_KEY_URL,
    )
    warehouse = DuckDBResource(database=dg.EnvVar("MTA_WAREHOUSE") if settings["MTA_WAREHOUSE"] else DEFAULT_WAREHOUSE)
    return {"station_key": key_source, "warehouse": warehouse}
