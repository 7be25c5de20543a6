"""Where a week's objects are now: tests follow the week's manifest, as readers do."""

from __future__ import annotations

from mta_assets.storage.commit import week_key
from mta_assets.storage.lake import StoredObject


def week_object_key(lake, dataset: str, week: str) -> str:
    """The key of the week's current object of ``dataset``; fails the test when there is none."""
    key = week_key(lake, "turnstile", dataset, week)
    assert key is not None, f"week {week} has no {dataset} object"
    return key


def week_stat(lake, dataset: str, week: str) -> StoredObject | None:
    """The week's current object of ``dataset``, or None."""
    key = week_key(lake, "turnstile", dataset, week)
    return None if key is None else lake.stat(key)
