"""The shared resources (the lake, the MTA source, the lake IO manager, MTA's station key), configured from the environment.

They are thin: their descriptions live here, the work in plain classes under
``storage/`` (``LakeClient``, ``MTAClient``) built from those fields; every variable's
type, bounds, default and meaning is in the settings model (``mta_assets.settings``,
table in ``docs/settings.md``).

Every setting is checked here, when the code location loads (``settings.load``): a wrong
value stops the load with one line per bad variable naming it and its allowed values.
A string or integer setting given in the environment is passed as ``dg.EnvVar`` so the
UI shows the variable's name, never its value (credentials among them); numbers with a
fraction (deadlines) and unset settings take the checked model's values.
"""

import collections.abc
import dataclasses
import shutil
import tempfile
import threading
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from mta_assets.defs.io_manager import WeekFiles, WeekValues, as_type, own_file, store_week, where
from mta_assets.mta.stations import DEFAULT_STATION_KEY_URL, StationKey, load_station_key, parse_station_key
from mta_assets.settings import DEFAULT_LAKE_URL, DEFAULT_SOURCE_URL, DEFAULTS, MtaSettings, env_name, load
from mta_assets.storage.http import DownloadedFile, MTAClient, RemoteFile
from mta_assets.storage.lake import MIB, ChunkCallback, StoredObject
from mta_assets.storage.lake_client import LakeClient

# The station key fetched from MTA's site, once per URL and process.
_FETCHED: dict[str, tuple[StationKey | None, str]] = {}
_FETCH_LOCK = threading.Lock()
STATION_KEY_MAX_BYTES = 20 * 1024 * 1024


class Lake(dg.ConfigurableResource):
    """Where the weekly objects live: ``gs://BUCKET[/PREFIX]`` or a local folder."""

    url: str = Field(
        default=DEFAULT_LAKE_URL,
        description="gs://BUCKET[/PREFIX] for Google Cloud Storage, or a local folder (env MTA_LAKE_URL).",
    )
    gcp_project: str | None = Field(default=None, description="GCP project for the storage client (env MTA_GCP_PROJECT).")
    gcp_credentials: str | None = Field(
        default=None,
        repr=False,
        description="Base64-encoded service-account key; unset means Application Default Credentials "
        "(env MTA_GCP_CREDENTIALS). Ignored when STORAGE_EMULATOR_HOST is set.",
    )
    chunk_size_bytes: int = Field(
        default=8 * MIB,
        description="Resumable upload chunk size, a multiple of 256 KiB (env MTA_UPLOAD_CHUNK_BYTES).",
    )
    retry_deadline_s: float = Field(
        default=DEFAULTS["MTA_LAKE_DEADLINE_S"],
        description="How long one lake request keeps retrying transient errors (env MTA_LAKE_DEADLINE_S).",
    )
    request_timeout_s: float = Field(
        default=DEFAULTS["MTA_LAKE_TIMEOUT_S"],
        description="Seconds to connect, and without an answer, before one lake request fails (env MTA_LAKE_TIMEOUT_S).",
    )
    min_bytes_per_s: float = Field(
        default=DEFAULTS["MTA_MIN_BYTES_PER_S"],
        description="Slowest acceptable upload or download, over each request-timeout window (env MTA_MIN_BYTES_PER_S).",
    )

    _client: LakeClient | None = PrivateAttr(default=None)

    @property
    def client(self) -> LakeClient:
        return plain_client(self, LakeClient)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Before the first download of a run: a lake that cannot work fails the run now, once.
        self.check()

    @property
    def is_gcs(self) -> bool:
        return self.client.is_gcs

    @property
    def bucket_name(self) -> str:
        return self.client.bucket_name

    @property
    def prefix(self) -> str:
        return self.client.prefix

    @property
    def root(self) -> Path:
        return self.client.root

    def check(self) -> None:
        self.client.check()

    def key_for(self, dataset: str, week: str, extension: str, file_name: str | None = None) -> str:
        return self.client.key_for(dataset, week, extension, file_name)

    def key(self, *parts: str) -> str:
        return self.client.key(*parts)

    def uri_for(self, key: str) -> str:
        return self.client.uri_for(key)

    def put_file(
        self,
        source: Path,
        key: str,
        content_type: str,
        metadata: dict[str, str] | None = None,
        *,
        on_chunk: ChunkCallback | None = None,
        new_key: bool = False,
    ) -> StoredObject:
        return self.client.put_file(source, key, content_type, metadata, on_chunk=on_chunk, new_key=new_key)

    def stat(self, key: str) -> StoredObject | None:
        return self.client.stat(key)

    def fetch(self, key: str, dest_dir: Path) -> Path:
        return self.client.fetch(key, dest_dir)

    def read_bytes(self, key: str) -> bytes | None:
        return self.client.read_bytes(key)

    def list_keys(self, prefix_under_lake: str) -> list[str]:
        return self.client.list_keys(prefix_under_lake)

    def delete(self, key: str) -> None:
        self.client.delete(key)

    def prune(self, prefix_under_lake: str, keep: Collection[str]) -> None:
        self.client.prune(prefix_under_lake, keep)

    def create_if_absent(self, key: str, data: bytes) -> bool:
        return self.client.create_if_absent(key, data)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        return self.client.read_versioned(key)

    def replace_if(self, key: str, data: bytes, token: str | None) -> str | None:
        return self.client.replace_if(key, data, token)

    def delete_if(self, key: str, token: str) -> bool:
        return self.client.delete_if(key, token)


class MTASource(dg.ConfigurableResource):
    """HTTP source of the weekly turnstile files: MTA's site or any mirror with the same names."""

    base_url: str = Field(
        default=DEFAULT_SOURCE_URL,
        description="Folder URL of the turnstile files (env MTA_SOURCE_URL); no user or password in it.",
    )
    user: str | None = Field(default=None, description="User for the source's Basic auth (env MTA_SOURCE_USER).")
    password: str | None = Field(
        default=None, repr=False, description="Password for the source's Basic auth (env MTA_SOURCE_PASSWORD). Secret."
    )
    connect_timeout_s: float = Field(
        default=DEFAULTS["MTA_SOURCE_CONNECT_TIMEOUT_S"], description="Seconds to wait for a connection."
    )
    read_timeout_s: float = Field(
        default=DEFAULTS["MTA_SOURCE_STALL_TIMEOUT_S"],
        description="Stall timeout: seconds without a byte before an attempt fails (env MTA_SOURCE_STALL_TIMEOUT_S).",
    )
    deadline_s: float = Field(
        default=DEFAULTS["MTA_SOURCE_DEADLINE_S"],
        description="Total seconds for one download, transport retries included (env MTA_SOURCE_DEADLINE_S).",
    )
    week_deadline_s: float = Field(
        default=DEFAULTS["MTA_SOURCE_WEEK_DEADLINE_S"],
        description="Total seconds for a week's download across the step's retries in one run "
        "(env MTA_SOURCE_WEEK_DEADLINE_S); each attempt also stops at deadline_s.",
    )
    probe_deadline_s: float = Field(
        default=DEFAULTS["MTA_PROBE_DEADLINE_S"], description="Total seconds for one HEAD probe (env MTA_PROBE_DEADLINE_S)."
    )
    min_bytes_per_s: float = Field(
        default=DEFAULTS["MTA_MIN_BYTES_PER_S"],
        description="Minimum throughput over each stall-timeout window (env MTA_MIN_BYTES_PER_S).",
    )
    max_file_bytes: int = Field(
        default=int(DEFAULTS["MTA_MAX_FILE_BYTES"]),
        description="Largest week file accepted, in bytes (env MTA_MAX_FILE_BYTES); a normal week is about 33 MB.",
    )
    max_redirects: int = Field(default=5, description="Redirects followed before giving up.")
    retries: int = Field(default=4, description="Transport retries on connection errors, 429 and 5xx, within the deadline.")
    backoff_factor_s: float = Field(default=1.0, description="Backoff base: waits are factor * 2**attempt seconds.")
    chunk_bytes: int = Field(default=1024 * 1024, description="Largest read; the file goes to disk read by read.")

    _client: MTAClient | None = PrivateAttr(default=None)

    @property
    def client(self) -> MTAClient:
        return plain_client(self, MTAClient)

    @property
    def display_base_url(self) -> str:
        return self.client.display_base_url

    def url_for(self, week: str, file_name: str | None = None) -> str:
        return self.client.url_for(week, file_name)

    def probe(self, week: str) -> RemoteFile | None:
        return self.client.probe(week)

    def download(
        self, week: str, dest_dir: Path, deadline_s: float | None = None, stop: threading.Event | None = None
    ) -> DownloadedFile:
        return self.client.download(week, dest_dir, deadline_s, stop)


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores and loads weekly lake objects (GCS or a local folder): tables, data frames or files (``io_manager.py``)."""

    lake: dg.ResourceDependency[Lake]
    _held: list[Path] = PrivateAttr(default_factory=list)  # folders of the files handed out as values

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is None:
            return  # a weekly step of ours has stored each week as it finished (io_manager.py)
        dataset, extension, _ = where(context.definition_metadata, context.asset_key.path)
        weeks = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        if len(weeks) == 1 and not isinstance(obj, Mapping):
            obj = {weeks[0]: obj}
        if not isinstance(obj, Mapping) or set(obj) != set(weeks):
            # Dagster records every week of the run as materialized: each must get its object.
            found = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise dg.Failure(
                f"{context.asset_key.to_user_string()}: a range of weeks is stored from a mapping week -> value "
                f"with every week from {weeks[0]} to {weeks[-1]} ({len(weeks)}); got {found}"
            )
        stored = {week: store_week(self.lake.client, dataset, week, value, extension) for week, value in obj.items()}
        if len(stored) == 1:
            (only,) = stored.values()
            context.add_output_metadata(with_links(only.metadata()))
        else:
            context.add_output_metadata({"weeks_stored": len(stored)})

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        dataset, extension, area = where(upstream.definition_metadata if upstream else None, context.asset_key.path)
        wanted = context.dagster_type.typing_type
        name = context.asset_key.to_user_string()
        _check_table_type(name, extension, wanted)
        if not context.has_asset_partitions:
            return as_type(self._hold_object(name, self.lake.client.key(dataset + extension)), wanted)
        weeks = list(context.asset_partition_keys)
        files = WeekFiles(self.lake.client, dataset, extension, weeks, area, name=name, log=context.log.info)
        if typing.get_origin(wanted) in (dict, Mapping, collections.abc.Mapping):
            value_type = (typing.get_args(wanted) or (str, Any))[-1]
            _check_table_type(name, extension, value_type)
            return WeekValues(files, value_type)  # a dict week -> value, asked for by name
        if not _is_one_value(wanted):
            return files  # WeekFiles: week -> local file
        if len(weeks) > 1:
            raise dg.Failure(
                f"{name}: weeks {weeks[0]} to {weeks[-1]} ({len(weeks)}) for a parameter typed "
                f"{getattr(wanted, '__name__', wanted)}, which holds one week; type it "
                f"dict[str, {getattr(wanted, '__name__', wanted)}] to get a dict week -> value"
            )
        if weeks[0] not in files:
            raise dg.Failure(
                f"{name} week {weeks[0]}: no object in the lake "
                f"({self.lake.uri_for(self.lake.key_for(dataset, weeks[0], extension))})"
            )
        if wanted is Path:
            # The step's own file until teardown: a local lake's object itself goes when
            # other runs' commits collect it (storage/commit.py).
            folder = Path(tempfile.mkdtemp(prefix="mta-load-"))
            self._held.append(folder)
            return files.read(weeks[0], lambda path: own_file(path, folder))
        return files.read(weeks[0], lambda path: as_type(path, wanted))

    def _hold_object(self, name: str, key: str) -> Path:
        """An unpartitioned asset's object as a local file, kept until teardown."""
        folder = Path(tempfile.mkdtemp(prefix="mta-load-"))
        self._held.append(folder)
        if self.lake.client.stat(key) is None:
            raise dg.Failure(f"{name}: no object in the lake ({self.lake.uri_for(key)})")
        return self.lake.client.fetch(key, folder)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # The local copies handed out as values (a Path, an unpartitioned asset's object).
        for folder in self._held:
            shutil.rmtree(folder, ignore_errors=True)
        self._held.clear()


def _check_table_type(name: str, extension: str, wanted: Any) -> None:
    """A table or a data frame is read from Parquet only: say so before the step, not with Arrow's error."""
    if _is_one_value(wanted) and wanted is not Path and extension != ".parquet":
        raise dg.Failure(
            f"{name}: its objects are {extension} files, not Parquet tables, so a parameter typed "
            f"{getattr(wanted, '__name__', wanted)} cannot take them; type it Path (one week's file) or leave it "
            "untyped (a mapping week -> file)"
        )


def _is_one_value(wanted: Any) -> bool:
    """Whether a parameter's type holds one week: a table, a data frame or a file."""
    if wanted is Path:
        return True
    return getattr(wanted, "__name__", "") in ("Table", "DataFrame") and str(getattr(wanted, "__module__", "")).startswith(
        ("pyarrow", "pandas")
    )


class StationKeySource(dg.ConfigurableResource):
    """MTA's Remote-Booth-Station key: a local file when configured, else fetched once from MTA's site."""

    path: str | None = Field(
        default=None, description="Local CSV or xls of the key, for offline use (env MTA_STATION_KEY_PATH)."
    )
    url: str = Field(default=DEFAULT_STATION_KEY_URL, description="Where MTA publishes the key (env MTA_STATION_KEY_URL).")
    timeout_s: float = Field(default=20.0, description="Deadline of the one fetch attempt, connection included.")

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

        from mta_assets.storage.deadline import Deadline, TransferAborted

        # timeout_s bounds the whole fetch, not each read: a server sending a byte at a time
        # would otherwise hold every step that waits for the key (under _FETCH_LOCK).
        deadline = Deadline(self.timeout_s)
        try:
            with requests.get(self.url, timeout=(min(self.timeout_s, 5.0), self.timeout_s), stream=True) as response:
                response.raise_for_status()
                body = bytearray()
                while chunk := response.raw.read1(64 * 1024, decode_content=True):
                    deadline.check(len(chunk))
                    body += chunk
                    if len(body) > STATION_KEY_MAX_BYTES:
                        raise ValueError(f"more than {STATION_KEY_MAX_BYTES:,} bytes; the key is about 0.1 MB")
            return parse_station_key(bytes(body), self.url.rsplit("/", 1)[-1]), self.url
        except (requests.RequestException, ValueError, TransferAborted) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return None, f"station key unavailable from {self.url}: {first} (set MTA_STATION_KEY_PATH for offline use)"


def plain_client(resource: dg.ConfigurableResource, client_class: type) -> Any:
    """The resource's plain client, built from its fields of the same names and kept while they
    stay the same (``model_copy`` keeps private attributes, so the settings are compared)."""
    wanted = client_class(**{field.name: getattr(resource, field.name) for field in dataclasses.fields(client_class)})
    if resource._client != wanted:
        resource._client = wanted
    return resource._client


_LINKS = ("uri", "url", "requested_url")


def with_links(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata of a lake object or a download as Dagster shows it: its URI and URLs as links."""
    return {
        key: _link(value) if key in _LINKS and isinstance(value, str) and value else value
        for key, value in metadata.items()
    }


def _link(value: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(value) if "://" in value else dg.MetadataValue.path(value)


def _bound(settings: MtaSettings, field: str) -> object:
    """A setting given in the environment as ``dg.EnvVar`` (the UI shows its name), else its default."""
    if field not in settings.model_fields_set:
        return getattr(settings, field)
    kind = type(getattr(settings, field))
    return dg.EnvVar.int(env_name(field)) if kind is int else dg.EnvVar(env_name(field))


def build_resources() -> dict[str, object]:
    settings = load()
    lake = Lake(
        url=_bound(settings, "lake_url"),
        gcp_project=_bound(settings, "gcp_project"),
        gcp_credentials=_bound(settings, "gcp_credentials"),
        chunk_size_bytes=_bound(settings, "upload_chunk_bytes"),
        retry_deadline_s=settings.lake_deadline_s,
        request_timeout_s=settings.lake_timeout_s,
        min_bytes_per_s=settings.min_bytes_per_s,
    )
    source = MTASource(
        base_url=_bound(settings, "source_url"),
        user=_bound(settings, "source_user"),
        password=_bound(settings, "source_password"),
        connect_timeout_s=settings.source_connect_timeout_s,
        read_timeout_s=settings.source_stall_timeout_s,
        deadline_s=settings.source_deadline_s,
        week_deadline_s=settings.source_week_deadline_s,
        probe_deadline_s=settings.probe_deadline_s,
        min_bytes_per_s=settings.min_bytes_per_s,
        max_file_bytes=_bound(settings, "max_file_bytes"),
    )
    key_source = StationKeySource(
        path=_bound(settings, "station_key_path"),
        url=_bound(settings, "station_key_url"),
    )
    return {
        "mta_source": source,
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        "station_key": key_source,
    }
