"""A week's objects committed as a unit: new keys per generation, one manifest switches them.

Layout (under the lake's prefix), for an area such as ``turnstile``::

    <area>/<dataset>/<YYYY>/<week>/<generation>/<file name>   the objects, never overwritten
    <area>/manifests/<YYYY>/<week>.json                       the week's manifest: the commit point
    <area>/locks/<week>.lock                                  the week's lease (storage/locks.py)

e.g. ``turnstile/readings/2023/2023-12-30/20240107T060000Z-1a2b3c4d/turnstile_240106.parquet``.
The dataset folders stay where they were (a user browsing ``turnstile/readings/`` finds
the tables); the week's folder holds its generations, so a commit lists exactly the week's
objects to clean up; the last part keeps MTA's file name, so a fetched copy is named after
the week. ``YYYY`` is the week's own year (the Saturday it starts), for any area.

Commit (``commit_week``), under the week's lease: every object is uploaded (atomic,
verified) to keys of a new generation, then the manifest - one small JSON object naming
each dataset's key, size, checksums and generation, the owner and time - replaces the
previous one by compare-and-swap. Readers follow the manifest (``week_key``), so they see
the old objects or the new ones, never a mix: a failure or a kill -9 at any point before
the manifest leaves the previous week whole (the stray uploads are removed by the next
commit), and after it the week is whole and new. The generation just replaced is kept
until the next commit (``replaced`` in the manifest), so a reader in flight finishes.

Idempotent: an object whose bytes equal the current manifest's (size, md5, crc32c) keeps
its key; when every object is unchanged no manifest is written at all, so running a week
twice changes nothing visible. A commit naming only some datasets (the table rebuilt from
the lake's gzip object) carries the others forward, but only when they come from the same
download (``Source``): a commit of new bytes from another download that would carry forward
objects of the earlier one raises ``SourceChanged`` and commits nothing, so a reader never
sees one week's objects from two downloads. Carried objects the caller calls ``droppable``
(the optional raw text) leave the manifest instead.

Migration: a week written before manifests has objects at the fixed keys
``turnstile/<dataset>/<YYYY>/turnstile_<YYMMDD>.<ext>`` (``lake.object_key``) and no
manifest; ``week_key`` returns those keys (for a dataset the manifest does not name, too),
so old lakes are read as they are. The first commit of such a week records the legacy
objects it replaces, and the commit after that deletes them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from mta_assets.mta.calendar import candidate_file_names
from mta_assets.storage.lake import LakeError, StoredObject, file_checksums, object_key
from mta_assets.storage.lake_client import LakeClient
from mta_assets.storage.locks import DEFAULT_LEASE_S, Lease, LeaseLost, week_lock

LEGACY_AREA = "turnstile"  # the only area written before manifests
LEGACY_EXTENSIONS = {"raw": ".txt", "csv_gz": ".csv.gz", "readings": ".parquet"}


@dataclasses.dataclass(frozen=True)
class Source:
    """The download a commit's objects come from; a commit with one carries forward only objects of the same download."""

    sha256: str  # the source file's checksum, recorded as the manifest's ``source_sha256``
    # The lake key the objects were rebuilt from (the week's own gzip object): while the
    # manifest still names it, they come from the download the week already holds.
    built_from: str | None = None
    # Datasets dropped from the manifest, not refused, when they come from another download.
    droppable: frozenset[str] = frozenset()


class SourceChanged(RuntimeError):
    """A commit of some of a week's datasets from another download than the rest of the week: nothing was committed."""

    permanent = True  # the same selection fails the same way on a retry

    def __init__(self, week: str, uri: str, changed: list[str], carried: list[str], ours: str, theirs: str):
        self.week, self.changed, self.carried, self.ours, self.theirs = week, changed, carried, ours, theirs
        super().__init__(
            f"week {week}: {', '.join(changed)} from a download with sha256 {ours[:12] or 'unknown'} would be committed "
            f"beside {', '.join(carried)} from another download (sha256 {theirs[:12] or 'not recorded'}, {uri}); "
            "nothing was committed"
        )


class CommitConflict(RuntimeError):
    """The week's manifest changed under us (a run that lost its lease): nothing was committed."""

    permanent = False


@dataclasses.dataclass(frozen=True)
class Entry:
    """One dataset's current object of a week."""

    key: str
    file_name: str
    size: int
    crc32c: str
    md5: str
    generation: str
    content_type: str


@dataclasses.dataclass(frozen=True)
class WeekManifest:
    """What a week is: each dataset's object, the generation that wrote it, by whom and when."""

    area: str
    week: str
    generation: str
    committed_at: str
    owner: str
    datasets: dict[str, Entry]
    replaced: dict[str, str] = dataclasses.field(default_factory=dict)  # dataset -> key kept for readers in flight
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    # Not stored: where it is, and what this commit did.
    uri: str = dataclasses.field(default="", compare=False)
    stored: dict[str, StoredObject] = dataclasses.field(default_factory=dict, compare=False)
    unchanged: bool = dataclasses.field(default=False, compare=False)

    def to_json(self) -> bytes:
        body = {
            "area": self.area, "week": self.week, "generation": self.generation,
            "committed_at": self.committed_at, "owner": self.owner,
            "datasets": {name: dataclasses.asdict(entry) for name, entry in sorted(self.datasets.items())},
            "replaced": dict(sorted(self.replaced.items())), "metadata": self.metadata,
        }
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes, uri: str) -> WeekManifest:
        try:
            body = json.loads(raw)
            return cls(
                area=body["area"], week=body["week"], generation=body["generation"],
                committed_at=body["committed_at"], owner=body["owner"],
                datasets={name: Entry(**entry) for name, entry in body["datasets"].items()},
                replaced=dict(body.get("replaced", {})), metadata=dict(body.get("metadata", {})), uri=uri,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LakeError(f"manifest {uri} is unreadable ({type(exc).__name__}: {exc})", permanent=True) from None

    def lake_metadata(self, dataset: str) -> dict[str, Any]:
        """What an asset reports besides its object: the manifest and the generation."""
        return {"manifest_uri": self.uri, "generation": self.datasets[dataset].generation}


def manifest_key(client: LakeClient, area: str, week: str) -> str:
    return client.key(area, "manifests", week[:4], f"{week}.json")


def generation_key(client: LakeClient, area: str, dataset: str, week: str, generation: str, file_name: str) -> str:
    return client.key(area, dataset, week[:4], week, generation, file_name)


def current_week(client: LakeClient, area: str, week: str) -> WeekManifest | None:
    """The week's manifest, or None for a week never committed (or committed before manifests)."""
    key = manifest_key(client, area, week)
    raw = client.read_bytes(key)
    return None if raw is None else WeekManifest.from_json(raw, client.uri_for(key))


def week_key(client: LakeClient, area: str, dataset: str, week: str, extension: str | None = None) -> str | None:
    """The key of the dataset's current object of the week: the manifest's, else the legacy fixed key."""
    manifest = current_week(client, area, week)
    if manifest is not None and dataset in manifest.datasets:
        return manifest.datasets[dataset].key
    return _legacy_key(client, area, dataset, week, extension)


def _legacy_key(client: LakeClient, area: str, dataset: str, week: str, extension: str | None) -> str | None:
    extension = extension or LEGACY_EXTENSIONS.get(dataset)
    if area != LEGACY_AREA or extension is None:
        return None
    for name in candidate_file_names(week):
        key = client.key_for(dataset, week, extension, file_name=name)
        if client.stat(key) is not None:
            return key
    return None


def commit_week(
    client: LakeClient,  # or the Lake resource, which offers the same methods
    area: str,
    week: str,
    objects: dict[str, tuple[Path, str, str]],
    owner: str,
    wait_s: float,
    metadata: dict[str, str] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    source: Source | None = None,
) -> WeekManifest:
    """Commit the week's ``objects`` (dataset -> (local file, file name, content type)) as one unit.

    With ``source``, the datasets not in ``objects`` are carried forward only when they come
    from the same download (``SourceChanged`` otherwise); its checksum is recorded as
    ``source_sha256`` in the manifest and on each object.
    """
    key = manifest_key(client, area, week)
    if source is not None:
        metadata = {**(metadata or {}), "source_sha256": source.sha256}
    with week_lock(client, week, owner, wait_s=wait_s, lease_s=lease_s, area=area) as lease:
        found = client.read_versioned(key)
        current = WeekManifest.from_json(found[0], client.uri_for(key)) if found else None
        generation = _new_generation()
        entries = dict(current.datasets) if current else {}
        replaced: dict[str, str] = {}
        stored: dict[str, StoredObject] = {}
        unchanged = {
            dataset for dataset, (path, file_name, _) in objects.items()
            if (old := entries.get(dataset)) is not None and old.file_name == file_name and _same_bytes(path, old)
        }
        if source is not None and len(unchanged) < len(objects):
            # Checked under the lease, before any upload: the week's objects as they are now.
            for dataset in _one_download(client, area, week, objects, unchanged, current, source, key):
                replaced[dataset] = entries.pop(dataset).key  # kept for readers in flight, like a replaced object
        for dataset, (path, file_name, content_type) in objects.items():
            lease.check()  # a run that lost its lease stops uploading
            old = entries.get(dataset)
            if dataset in unchanged:
                # put_file verifies the object is still there and identical (restores it if not).
                stored[dataset] = client.put_file(path, old.key, content_type, metadata=metadata)
                continue
            target = generation_key(client, area, dataset, week, generation, file_name)
            stored[dataset] = client.put_file(path, target, content_type, metadata=metadata, new_key=True)
            entries[dataset] = Entry(
                target, file_name, stored[dataset].size, stored[dataset].crc32c, stored[dataset].md5,
                generation, content_type,
            )
            previous = old.key if old else (None if current else _legacy_key(client, area, dataset, week, None))
            if previous:
                replaced[dataset] = previous
        if current is not None and entries == current.datasets:
            return dataclasses.replace(current, stored=stored, unchanged=True)
        manifest = WeekManifest(
            area=area, week=week, generation=generation,
            committed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), owner=owner,
            datasets=entries, replaced=replaced, metadata=dict(metadata or {}),
            uri=client.uri_for(key), stored=stored,
        )
        lease.check()  # the last moment a lost lease can stop the commit
        if client.replace_if(key, manifest.to_json(), found[1] if found else None) is None:
            raise CommitConflict(
                f"week {week}: {client.uri_for(key)} changed during this commit (another run took the lock over); "
                "nothing was committed; the week keeps the other run's objects"
            )
        _collect(client, area, week, manifest, current, lease)
    return manifest


def _one_download(
    client: LakeClient, area: str, week: str, objects: dict, unchanged: set[str],
    current: WeekManifest | None, source: Source, key: str,
) -> list[str]:
    """The droppable datasets to leave out of the manifest; raises ``SourceChanged`` when a
    dataset this commit does not write would be carried forward from another download."""
    named = current.datasets if current else {}
    # What readers see of the week now: a dataset the manifest does not name is read at its
    # legacy key, if it has one (a week stored before manifests). A droppable one is not
    # looked for: a legacy object cannot leave a manifest that never named it, and the
    # lookups would cost every new week's commit a request or two.
    seen = {dataset: entry.key for dataset, entry in named.items()}
    for dataset in LEGACY_EXTENSIONS:
        if dataset not in named and dataset not in objects and dataset not in source.droppable:
            legacy = _legacy_key(client, area, dataset, week, None)
            if legacy is not None:
                seen[dataset] = legacy
    carried = sorted(dataset for dataset in seen if dataset not in objects)
    if not carried:
        return []
    theirs = current.metadata.get("source_sha256", "") if current else ""
    if (theirs and theirs == source.sha256) or source.built_from in seen.values():
        return []
    refused = [d for d in carried if d not in source.droppable]
    if refused:
        changed = sorted(set(objects) - unchanged)
        raise SourceChanged(week, client.uri_for(key), changed, sorted(refused), source.sha256, theirs)
    return [d for d in carried if d in named]


def _collect(
    client: LakeClient, area: str, week: str, new: WeekManifest, old: WeekManifest | None, lease: Lease
) -> None:
    """Delete the week's objects no manifest points at any more: the generation before the one
    just replaced, and the uploads of runs that never committed (on a local lake also their
    partial files, and the folders left empty). Best effort: what is left is invisible to
    readers and is collected by the next commit."""
    keep = {entry.key for entry in new.datasets.values()} | set(new.replaced.values())
    candidates = set(old.replaced.values()) if old else set()
    for dataset in new.datasets:
        candidates.update(client.list_keys(f"{area}/{dataset}/{week[:4]}/{week}/"))
    for key in sorted(candidates - keep):
        try:
            client.delete(key)
        except LakeError:
            pass
    try:
        # A partial file is an upload in progress unless its writer is dead: only while we
        # hold the week's lease, which keeps every other run's uploads out of the week, is
        # each one outside the kept generations a killed run's.
        lease.check()
        for dataset in set(new.datasets) | set(old.replaced if old else ()):
            client.prune(f"{area}/{dataset}/{week[:4]}/{week}/", keep)
    except (LeaseLost, LakeError):
        pass


def _same_bytes(path: Path, entry: Entry) -> bool:
    crc32c, md5 = file_checksums(path)
    return (path.stat().st_size, crc32c, md5) == (entry.size, entry.crc32c, entry.md5)


def _new_generation() -> str:
    # Sortable by time, unique across hosts.
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
