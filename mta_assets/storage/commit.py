"""A week committed as a unit (minimal placeholder with the agreed signature; the lead replaces it at merge).

Each dataset's object is stored under ``<area>/<dataset>/<YYYY>/<object file name>``, then
one manifest per week (``<area>/_manifests/<week>.json``) is written last and names them:
readers follow the manifest (``week_key``), so a week without a manifest has no objects.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from mta_assets.storage.lake_client import LakeClient


@dataclasses.dataclass(frozen=True)
class WeekManifest:
    area: str
    week: str
    keys: dict[str, str]
    owner: str
    metadata: dict[str, str]


def _manifest_key(client: LakeClient, area: str, week: str) -> str:
    return client.key(area, "_manifests", f"{week}.json")


def commit_week(
    client: LakeClient,
    area: str,
    week: str,
    objects: dict[str, tuple[Path, str, str]],
    owner: str,
    wait_s: float,
    metadata: dict[str, str] | None = None,
) -> WeekManifest:
    """Store the week's objects, then its manifest naming them (``wait_s``: unused here, no lock)."""
    keys = {}
    for dataset, (path, name, content_type) in objects.items():
        key = client.key(area, dataset, week[:4], name)
        client.put_file(path, key, content_type, metadata)
        keys[dataset] = key
    manifest = WeekManifest(area, week, keys, owner, dict(metadata or {}))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.json"
        path.write_text(json.dumps(dataclasses.asdict(manifest), sort_keys=True))
        client.put_file(path, _manifest_key(client, area, week), "application/json")
    return manifest


def week_key(client: LakeClient, area: str, dataset: str, week: str) -> str | None:
    """The key of the week's current object of ``dataset``, or None when the week has none."""
    data = client.read_bytes(_manifest_key(client, area, week))
    if data is None:
        return None
    return json.loads(data)["keys"].get(dataset)
