"""The data.ny.gov source (``OpenDataSource``): MTA's hourly and daily ridership and the station crosswalks."""

from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from mta_assets.defs.resources import plain_client
from mta_assets.mta.complexes import CROSSWALK_FILES, DEFAULT_SOURCES
from mta_assets.settings import env_text
from mta_assets.storage.soda import DEFAULT_OPEN_DATA_URL, MAX_PAGE_SIZE, SodaClient


class OpenDataSource(dg.ConfigurableResource):
    """data.ny.gov's SODA API (or the loopback mirror), and where the station crosswalks are read."""

    base_url: str = Field(default=DEFAULT_OPEN_DATA_URL, description="The Socrata site (env MTA_OPEN_DATA_URL).")
    app_token: str | None = Field(
        default=None, repr=False, description="Socrata app token, sent as X-App-Token (env MTA_OPEN_DATA_APP_TOKEN)."
    )
    page_size: int = Field(
        default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Rows per page, SODA's $limit (env MTA_OPEN_DATA_PAGE_SIZE)."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds without a byte before an attempt fails.")
    deadline_s: float = Field(default=300.0, gt=0, description="Total time of one week's (or the daily totals') download, retries included.")
    retries: int = Field(default=5, ge=0, description="Transport retries (connection errors, 429, 5xx) within the deadline.")
    backoff_factor_s: float = Field(default=2.0, ge=0, description="urllib3's exponential backoff factor.")
    station_complexes_url: str | None = Field(
        default=None,
        description="A folder (path or http(s) URL) holding the three crosswalk files by their names; "
        "unset: each from its public source (env MTA_STATION_COMPLEXES_URL).",
    )

    _client: SodaClient | None = PrivateAttr(default=None)

    def client(self) -> SodaClient:
        # Built from the fields of the same names, as the Lake's and MTA source's clients are.
        return plain_client(self, SodaClient)

    def crosswalk_texts(self) -> dict[str, str]:
        """The three crosswalk files' text by file name, and where each was read (``name + '#source'``)."""
        texts: dict[str, str] = {}
        for name in CROSSWALK_FILES:
            where = f"{self.station_complexes_url.rstrip('/')}/{name}" if self.station_complexes_url else DEFAULT_SOURCES[name]
            if where.startswith(("http://", "https://")):
                texts[name] = self.client().get_text(f"station complexes ({name})", where)
            else:
                try:
                    texts[name] = Path(where).expanduser().read_text(encoding="utf-8-sig")
                except OSError as exc:
                    raise dg.Failure(f"station complexes: cannot read {where}: {exc.strerror or exc}", allow_retries=False) from None
            texts[f"{name}#source"] = where
        return texts


def build_official_resources() -> dict[str, OpenDataSource]:
    """``open_data``, from the environment: a variable that is set is passed as ``dg.EnvVar`` (shown by name)."""
    return {
        "open_data": OpenDataSource(
            base_url=dg.EnvVar("MTA_OPEN_DATA_URL") if env_text("MTA_OPEN_DATA_URL") else DEFAULT_OPEN_DATA_URL,
            app_token=dg.EnvVar("MTA_OPEN_DATA_APP_TOKEN") if env_text("MTA_OPEN_DATA_APP_TOKEN") else None,
            page_size=dg.EnvVar.int("MTA_OPEN_DATA_PAGE_SIZE") if env_text("MTA_OPEN_DATA_PAGE_SIZE") else MAX_PAGE_SIZE,
            station_complexes_url=dg.EnvVar("MTA_STATION_COMPLEXES_URL") if env_text("MTA_STATION_COMPLEXES_URL") else None,
        )
    }
