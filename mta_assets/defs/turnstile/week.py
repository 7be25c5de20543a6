"""One week, start to finish: download → gzip → parse → validate → commit.

The week is the unit of truth. Nothing reaches the lake until the new file has passed
every blocking validation; then the week's objects are committed as one unit, under the
week's lease, from this one download: uploaded under a new generation, then switched by
the week's manifest (``storage/commit.py``), so readers never see two downloads mixed. A week that fails keeps every object it had, and
its rejected file is kept aside under ``quarantine/`` and named in the error.

This module has no Dagster import: the multi-asset in ``assets.py`` decides which
objects a run commits (``WeekPlan``), runs weeks through ``process_week`` a few at a
time, and reports each week's result.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from mta_assets.mta.calendar import candidate_file_names, expected_layout
from mta_assets.mta.validate import Outcome, ValidationSettings, WeekEvidence, blocking_failures, validate_week
from mta_assets.storage.commit import Source, SourceChanged, commit_week, week_key
from mta_assets.storage.errors import is_transient
from mta_assets.storage.staging import RunStaging

RAW, GZ, READINGS = "turnstile_csv", "turnstile_csv_gz", "turnstile_readings"
CONTENT_TYPES = {".txt": "text/plain", ".csv.gz": "application/gzip", ".parquet": "application/vnd.apache.parquet"}
_COPY_BLOCK = 1024 * 1024
DATASETS = {RAW: "raw", GZ: "csv_gz", READINGS: "readings"}  # the lake's dataset of each asset
ASSETS = {dataset: asset for asset, dataset in DATASETS.items()}
_DOWNLOAD_STARTED = "download.started"
# zlib-ng's level 5 writes what its 6 writes (0.1% larger) in 63% of the time, and about
# what the stdlib's zlib writes at 6 in a third of zlib's time (docs/benchmark.md "Compression level").
DEFAULT_GZIP_LEVEL = 5


@dataclasses.dataclass(frozen=True)
class WeekPlan:
    """What a run does for each week: which assets it materializes and what it stores."""

    assets: frozenset[str]
    store_raw_text: bool = False  # the raw .txt beside the gzip object (docs/architecture.md "How a turnstile week flows")
    gzip_level: int = DEFAULT_GZIP_LEVEL

    @property
    def downloads(self) -> bool:
        # The table alone is rebuilt from the lake's gzip object, the byte-exact published file.
        return bool(self.assets & {RAW, GZ})

    @property
    def writes_gzip(self) -> bool:
        # turnstile_csv's durable copy is the gzip object unless the raw text is stored too.
        return GZ in self.assets or (RAW in self.assets and not self.store_raw_text)

    @property
    def writes_raw(self) -> bool:
        return RAW in self.assets and self.store_raw_text

    @property
    def writes_table(self) -> bool:
        return READINGS in self.assets


@dataclasses.dataclass
class WeekContext:
    """Everything a week needs from the run: shared by the weeks processed at once."""

    source: Any  # MTASource
    lake: Any  # Lake
    staging: RunStaging
    run_id: str
    plan: WeekPlan
    validation: ValidationSettings
    earlier_row_counts: Callable[[str], Sequence[int]]
    parse_slots: threading.Semaphore
    station_key: Callable[[], Any] = lambda: None  # the station key (wide weeks only), loaded when first asked
    lock_wait_s: float = 300.0
    log: Callable[[str], None] = lambda message: None
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)


@dataclasses.dataclass
class WeekResult:
    """A committed week: each asset's metadata, the check outcomes and the row count."""

    week: str
    metadata: dict[str, dict[str, Any]]  # asset name -> that week's metadata
    outcomes: list[Outcome]
    rows: int
    seconds: float


class WeekFailed(RuntimeError):
    """A week that was not committed; its message names the week, the file or object, and the cause."""

    def __init__(self, week: str, message: str, permanent: bool, outcomes: Sequence[Outcome] = ()):
        super().__init__(message if week in message else f"week {week}: {message}")
        self.week = week
        self.permanent = permanent
        self.outcomes = list(outcomes)


@dataclasses.dataclass
class _Staged:
    """The week's published file on local disk, as downloaded (or rebuilt from the lake)."""

    path: Path
    file_name: str
    length_stated: bool
    metadata: dict[str, Any]
    built_from: str | None = None  # the lake's gzip object it was rebuilt from; None for a download


def process_week(week: str, ctx: WeekContext) -> WeekResult:
    started = time.perf_counter()
    folder = ctx.staging.week(week)
    keep_download = False
    try:
        staged = _stage_source(week, ctx, folder)
        objects: list[tuple[str, Path, str]] = []  # (asset, local file, extension)
        gz_path, gzipped = None, None
        if ctx.plan.writes_gzip or ctx.plan.downloads:
            gz_path = folder / (staged.file_name.removesuffix(".txt") + ".csv.gz")
            # Compressed while the week is parsed: both release the GIL, and a single week
            # (the schedule's, the sensor's) has no other week to overlap with.
            gzipped = on_thread(f"mta-gzip-{week}", gzip_file, staged.path, gz_path, ctx.plan.gzip_level)
        try:
            _stop_if_cancelled(week, ctx)
            outcomes, table_path, table_metadata, rows = _parse_and_validate(week, ctx, staged, folder)
        except BaseException as exc:
            # Waited for: the week's folder is cleaned up next.
            if gzipped is not None and (gzip_error := gzipped.exception()) is not None:
                exc.add_note(f"week {week}: the gzip of {staged.file_name} failed too: {gzip_error}")
            raise
        gz_seconds = gzipped.result() if gzipped else 0.0  # the quarantine and the commit need the whole file
        failed = blocking_failures(outcomes)
        if failed:
            where = _quarantine(week, ctx, staged, gz_path)
            names = ", ".join(f"{o.name} ({_why(o)})" for o in failed)
            raise WeekFailed(
                week,
                f"week {week}: {staged.file_name} from {staged.metadata.get('url', 'the lake')} failed blocking "
                f"checks: {names}; every object of the week is kept as it was; the rejected file is at {where}",
                permanent=True,
                outcomes=outcomes,
            )
        if ctx.plan.writes_gzip:
            objects.append((GZ, gz_path, ".csv.gz"))
        if ctx.plan.writes_raw:
            objects.append((RAW, staged.path, ".txt"))
        if ctx.plan.writes_table:
            objects.append((READINGS, table_path, ".parquet"))
        _stop_if_cancelled(week, ctx)
        stored = _commit(week, ctx, staged, objects)
        metadata = _metadata(week, ctx, staged, stored, table_metadata, gz_seconds)
        return WeekResult(week, metadata, outcomes, rows, time.perf_counter() - started)
    except WeekFailed:
        raise
    except Exception as exc:
        permanent = not is_transient(exc)
        keep_download = not permanent
        raise WeekFailed(week, str(exc) or type(exc).__name__, permanent) from exc
    finally:
        ctx.staging.note_usage()
        if keep_download:
            _keep_only_download(folder)
        else:
            ctx.staging.done(week)


def on_thread(name: str, work: Callable[..., Any], *args: Any) -> Future:
    """``work(*args)`` on a daemon thread (a terminated run does not wait for it at exit, as it
    would for a ThreadPoolExecutor's); its result or error comes from the returned future."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(work(*args))
            except BaseException as exc:  # raised again where future.result() is called
                future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _stop_if_cancelled(week: str, ctx: WeekContext) -> None:
    if ctx.cancel.is_set():
        raise WeekFailed(week, f"week {week}: the run was terminated before its objects were committed", permanent=True)


def _keep_only_download(folder: Path) -> None:
    # A transient failure (a lake outage) will be retried: the whole download stays so the
    # retry does not fetch 33 MB again; everything else the week staged goes now.
    for path in folder.iterdir() if folder.exists() else ():
        if path.name not in ("source.txt", "source.json", _DOWNLOAD_STARTED):
            path.unlink(missing_ok=True) if path.is_file() else shutil.rmtree(path, ignore_errors=True)


def _stage_source(week: str, ctx: WeekContext, folder: Path) -> _Staged:
    """The week's published bytes on disk: downloaded once, or from the lake's gzip object."""
    raw_path, record = folder / "source.txt", folder / "source.json"
    if record.exists() and raw_path.exists():
        # A retry of this step in the same run: the file was staged whole before.
        saved = json.loads(record.read_text())
        if raw_path.stat().st_size == saved["metadata"]["source_bytes"]:
            ctx.log(f"week {week}: reusing the download staged whole by an earlier attempt")
            return _Staged(
                raw_path, saved["file_name"], saved["length_stated"], saved["metadata"], saved.get("built_from")
            )
    if ctx.plan.downloads:
        download = _download(week, ctx, folder)
        download.path.replace(raw_path)
        shutil.rmtree(folder / "download", ignore_errors=True)
        file_name = getattr(download, "file_name", None) or download.url.rsplit("/", 1)[-1]
        metadata = {**download.metadata(), "source_file": file_name}
        metadata["url"] = download.url
        staged = _Staged(raw_path, file_name, bool(getattr(download, "length_stated", True)), metadata)
    else:
        staged = _from_lake(week, ctx, folder, raw_path)
    record.write_text(
        json.dumps(
            {
                "file_name": staged.file_name, "length_stated": staged.length_stated,
                "metadata": _plain(staged.metadata), "built_from": staged.built_from,
            }
        )
    )
    return staged


def _download(week: str, ctx: WeekContext, folder: Path):
    """The week's download within its total deadline, which the step's retries in this run share.

    Each attempt stops at the source's ``deadline_s``; the week's ``week_deadline_s`` counts
    from the first attempt (recorded in the week's staging folder, kept across retries), so
    a stalled source costs a week at most that long, however many retries Dagster makes.
    """
    record = folder / _DOWNLOAD_STARTED
    try:
        started = float(record.read_text())
    except (OSError, ValueError):
        started = time.time()
        record.write_text(repr(started))
    budget = ctx.source.week_deadline_s
    remaining = budget - (time.time() - started)
    if remaining < 1:
        raise WeekFailed(
            week,
            f"week {week}: gave up on {ctx.source.url_for(week)}: the week's download deadline of {budget:g} s "
            "(MTA_SOURCE_WEEK_DEADLINE_S) ran out over the step's retries",
            permanent=True,
        )
    # Stopped as soon as the step cancels: only commits get the step's grace period.
    return ctx.source.download(week, folder / "download", deadline_s=min(ctx.source.deadline_s, remaining), stop=ctx.cancel)


def _from_lake(week: str, ctx: WeekContext, folder: Path, raw_path: Path) -> _Staged:
    key = week_key(ctx.lake, "turnstile", "csv_gz", week, ".csv.gz")
    if key is None:
        where = ctx.lake.uri_for(ctx.lake.key("turnstile", "csv_gz"))
        raise WeekFailed(
            week,
            f"week {week}: no gzip object in the lake (no manifest or object under {where}); "
            "materialize turnstile_csv_gz first",
            permanent=True,
        )
    name = key.rsplit("/", 1)[-1].removesuffix(".csv.gz") + ".txt"
    local = ctx.lake.fetch(key, folder / "lake")
    # The published file's sha256, as a download records it: the commit compares it with the
    # manifest's, so a table rebuilt from this object is known to match the week's gzip.
    digest = hashlib.sha256()
    with gzip.open(local, "rb") as src, open(raw_path, "wb") as out:
        while block := src.read(_COPY_BLOCK):
            digest.update(block)
            out.write(block)
    if local.parent == folder / "lake":
        shutil.rmtree(folder / "lake", ignore_errors=True)
    size = raw_path.stat().st_size
    metadata = {"source_file": name, "source_bytes": size, "url": ctx.lake.uri_for(key), "sha256": digest.hexdigest()}
    # Rebuilt from a gzip object that was committed whole: its length is known.
    return _Staged(raw_path, name, True, metadata, built_from=key)


def gzip_file(source: Path, target: Path, level: int) -> float:
    """Deterministic gzip (no file name, mtime 0), so equal input gives equal objects.

    zlib-ng, not the stdlib's zlib: the same gzip format, and at level 5 about the size
    zlib writes at level 6, in about a third of zlib's time (docs/benchmark.md
    "Compression level"); compression is one of the largest shares of a week's CPU time.
    Errors name the files: the week's failure message is this error's text.
    """
    from zlib_ng import gzip_ng

    started = time.perf_counter()
    try:
        with open(source, "rb") as src, open(target, "wb") as raw_out:
            with gzip_ng.GzipNGFile(filename="", mode="wb", compresslevel=level, fileobj=raw_out, mtime=0) as out:
                shutil.copyfileobj(src, out, _COPY_BLOCK)
    except OSError as exc:  # a full or failing staging disk: same errno, the files named
        raise OSError(exc.errno, f"gzip of {source} into {target} failed: {exc.strerror or exc}") from exc
    return time.perf_counter() - started


def _parse_and_validate(week: str, ctx: WeekContext, staged: _Staged, folder: Path):
    """Parse and check the week; one parse at a time per slot bounds the run's memory."""
    from mta_assets.defs.turnstile.tables import readings_metadata, write_parquet
    from mta_assets.mta.parse import parse_week

    with ctx.parse_slots:
        started = time.perf_counter()
        # Only the 2010-2014 files lack station names; the key is read for them alone.
        key = ctx.station_key() if expected_layout(week) == "wide" else None
        parsed = parse_week(staged.path, week, staged.file_name, key)
        parse_seconds = time.perf_counter() - started
        evidence = WeekEvidence(
            week=week,
            source_file=staged.file_name,
            length_stated=staged.length_stated,
            earlier_row_counts=list(ctx.earlier_row_counts(week)),
        )
        outcomes = validate_week(parsed, evidence, ctx.validation)
        table_path = folder / (staged.file_name.removesuffix(".txt") + ".parquet")
        table_metadata = {**readings_metadata(parsed), "parse_seconds": round(parse_seconds, 3)}
        if ctx.plan.writes_table and not blocking_failures(outcomes):
            write_parquet(parsed.table, table_path)
        rows = parsed.table.num_rows
        del parsed
        _release_arrow_memory()
    return outcomes, table_path, table_metadata, rows


def _release_arrow_memory() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _quarantine(week: str, ctx: WeekContext, staged: _Staged, gz_path: Path | None) -> str:
    """Keep the rejected file aside in the lake (gzip, byte-exact), never under the week's own names."""
    if gz_path is None or not gz_path.exists():
        gz_path = staged.path.with_suffix(".rejected.csv.gz")
        gzip_file(staged.path, gz_path, ctx.plan.gzip_level)
    key = ctx.lake.key("turnstile", "quarantine", week, f"{ctx.run_id[:8]}-{staged.file_name}.gz")
    try:
        return ctx.lake.put_file(gz_path, key, "application/gzip").uri
    except Exception as exc:  # the week fails anyway; say why the copy is missing
        return f"(not kept: {exc})"


def _commit(week: str, ctx: WeekContext, staged: _Staged, objects: list[tuple[str, Path, str]]) -> dict[str, Any]:
    """Commit the week's objects as one unit, from this one download (``storage/commit.py``).

    A run that selects only some of the assets commits only their objects and carries the
    week's others forward, which is right only when they come from this same download. When
    MTA republished the week (other bytes than those the week's objects come from), a
    ``turnstile_csv_gz`` or ``turnstile_csv`` alone would leave the old table beside the new
    gzip object. The table is parsed and validated here anyway, but committing it would not
    make it a materialization: Dagster records only the selected assets, so
    ``turnstile_readings`` would keep the old row counts and its downstream assets would not
    know the week changed. So that week fails, committing nothing, and says to select the
    group; the optional raw text of an earlier download is dropped from the week instead.
    """
    stem = staged.file_name.removesuffix(".txt")
    source = Source(str(staged.metadata.get("sha256", "")), staged.built_from, droppable=frozenset({DATASETS[RAW]}))
    try:
        manifest = commit_week(
            ctx.lake,
            "turnstile",
            week,
            {DATASETS[asset]: (path, stem + extension, CONTENT_TYPES[extension]) for asset, path, extension in objects},
            owner=f"run {ctx.run_id}",
            wait_s=ctx.lock_wait_s,
            metadata={"run_id": ctx.run_id},
            source=source,
        )
    except SourceChanged as exc:
        changed = ", ".join(ASSETS[d] for d in exc.changed)
        carried = ", ".join(ASSETS[d] for d in exc.carried)
        if staged.built_from is None:
            where = f"{staged.file_name} from {staged.metadata.get('url')}"
            if exc.theirs:
                what = (
                    f"is not the file the week's {carried} in the lake come from (MTA published it again: "
                    f"sha256 {exc.ours[:12]}, the lake's {exc.theirs[:12]})"
                )
            else:  # a week stored before the checksum was recorded: no proof it is the same file
                what = f"may not be the file the week's {carried} in the lake come from (they record no sha256)"
            why = f"{where} {what}, so {changed} alone would mix two downloads of the week"
            fix = f"materialize the turnstile group for this week (select {carried} too)"
        else:
            why = f"its gzip object was replaced by another run while {changed} was rebuilt from {staged.built_from}"
            fix = f"materialize {changed} again"
        raise WeekFailed(
            week, f"week {week}: {why}; nothing was committed and the week keeps its objects; {fix}", permanent=True
        ) from None
    return {
        asset: _Committed(manifest.stored[DATASETS[asset]], manifest.lake_metadata(DATASETS[asset]))
        for asset, _, _ in objects
    }


@dataclasses.dataclass(frozen=True)
class _Committed:
    """A committed object and its manifest: the asset's metadata shows both."""

    stored: Any  # StoredObject
    manifest: dict[str, Any]

    @property
    def size(self) -> int:
        return self.stored.size

    @property
    def uri(self) -> str:
        return self.stored.uri

    def metadata(self) -> dict[str, Any]:
        return {**self.stored.metadata(), **self.manifest}


def _metadata(week, ctx, staged, stored, table_metadata, gz_seconds: float) -> dict[str, dict[str, Any]]:
    """Each selected asset's own metadata for this week: the same in a range as for one week."""
    plan = ctx.plan
    out: dict[str, dict[str, Any]] = {}
    if RAW in plan.assets:
        # Without the raw text in the lake, the gzip object is the published file's durable copy.
        copy = stored.get(RAW) or stored.get(GZ)
        out[RAW] = {**staged.metadata, **(copy.metadata() if copy else {}), "stored_as": "text" if RAW in stored else "gzip"}
    if GZ in plan.assets:
        gz = stored[GZ]
        size_in = staged.path.stat().st_size
        out[GZ] = {
            **gz.metadata(),
            "source_file": staged.file_name,
            "bytes_in": size_in,
            "bytes_out": gz.size,
            "compression_ratio": round(size_in / gz.size, 2) if gz.size else 0.0,
            "gzip_level": plan.gzip_level,
            "gzip_seconds": round(gz_seconds, 3),
        }
    if READINGS in plan.assets:
        out[READINGS] = {**table_metadata, **stored[READINGS].metadata(), "source_file": staged.file_name}
    return out


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as JSON-able values (for the staged record); Dagster values keep their raw value."""
    return {k: getattr(v, "value", v) if not isinstance(v, str | int | float | bool) else v for k, v in metadata.items()}


def _why(outcome: Outcome) -> str:
    keep = {k: v for k, v in outcome.metadata.items() if not k.endswith("_md") and not isinstance(v, list | dict)}
    return ", ".join(f"{k}={v}" for k, v in list(keep.items())[:4])
