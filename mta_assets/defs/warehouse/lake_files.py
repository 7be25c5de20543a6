"""Which lake objects the warehouse reads for a run's weeks, as local files for dbt.

A local lake hands out its own files (no copy); a GCS lake's objects are fetched into a
folder beside the DuckDB file for the run and removed after it (DuckDB reads ``gs://`` only
through its httpfs extension, which cannot be downloaded offline). Every file is opened as
Parquet before dbt runs, so a corrupted object fails the run that reads it, naming the
object, and never reaches a table.
"""

from __future__ import annotations

from pathlib import Path

from mta_assets.defs.resources import Lake
from mta_assets.storage.commit import week_key

# dbt source -> the lake dataset of the turnstile steps (``Lake.key_for``).
WEEKLY = {"stations": "stations", "ridership": "ridership"}


class LakeObjectError(RuntimeError):
    """A lake object the warehouse needs is missing or not readable Parquet."""


def readings_file_key(lake: Lake, week: str) -> str | None:
    """The key of the week's current readings table (its manifest, or the legacy key), or None."""
    return week_key(lake.client, "turnstile", "readings", week)


def official_key(lake: Lake, dataset: str) -> str:
    """The key of MTA's official daily totals or station complexes (one object each)."""
    names = {"daily": "daily/daily_ridership.parquet", "stations": "stations/station_complexes.parquet"}
    return lake.key("official", names[dataset])


def source_versions(lake: Lake, weeks: list[str]) -> dict[tuple[str, str], tuple[str, str] | None]:
    """(source, week) -> the object each weekly source of each week is now: its key, and its MD5
    where the key is fixed (stations, ridership), or None. Two of these taken apart tell
    whether another run replaced one in between. A few weeks are looked up at a time."""

    def one(week: str) -> dict[tuple[str, str], tuple[str, str] | None]:
        readings = readings_file_key(lake, week)
        hourly = week_key(lake.client, "official", "hourly", week)  # the week's committed hourly table
        found = {
            ("readings", week): None if readings is None else (readings, ""),
            ("official_hourly", week): None if hourly is None else (hourly, ""),
        }
        for source, dataset in WEEKLY.items():
            key = lake.key_for(dataset, week, ".parquet")
            stored = lake.stat(key)
            found[(source, week)] = None if stored is None else (key, stored.md5)
        return found

    return {name: version for found in lake.client.lookups(one, weeks) for name, version in found.items()}


def week_keys(
    lake: Lake, weeks: list[str], versions: dict[tuple[str, str], tuple[str, str] | None], turnstile_required: bool = True
) -> dict[str, list[str]]:
    """dbt source -> the keys of the run's weeks, from their ``source_versions``. Official
    datasets are used where they exist. Turnstile datasets are required for every week (a
    missing one fails the run naming the week) when the run records a model that reads them
    (``turnstile_required``); otherwise a week without them is built from MTA's data alone:
    a week after the turnstile files ended, or one whose turnstile week is not in yet."""
    keys: dict[str, list[str]] = {"readings": [], "stations": [], "ridership": [], "official_hourly": []}
    missing = []
    for week in weeks:
        if versions[("readings", week)] is None:
            missing.append(f"week {week}: no turnstile_readings object in the lake")
        for source, dataset in WEEKLY.items():
            if versions[(source, week)] is None:
                missing.append(f"week {week}: no {source} object {lake.uri_for(lake.key_for(dataset, week, '.parquet'))}")
        for source in keys:
            if (found := versions[(source, week)]) is not None:
                keys[source].append(found[0])
    if missing and turnstile_required:
        raise LakeObjectError("; ".join(missing))
    for source, dataset in (("official_daily", "daily"), ("station_complexes", "stations")):
        key = official_key(lake, dataset)
        keys[source] = [key] if lake.stat(key) is not None else []
    return keys


def local_files(lake: Lake, keys: dict[str, list[str]], folder: Path) -> dict[str, list[str]]:
    """The objects as local Parquet files (fetched into ``folder`` from GCS), each checked readable."""
    import pyarrow.parquet as pq

    files: dict[str, list[str]] = {}
    for source, source_keys in keys.items():
        files[source] = []
        for key in source_keys:
            (folder / source).mkdir(parents=True, exist_ok=True)
            path = lake.fetch(key, folder / source)
            try:
                pq.ParquetFile(path).close()
            except Exception as error:  # pyarrow raises several types for a damaged file
                raise LakeObjectError(f"{lake.uri_for(key)} is not readable Parquet: {error}") from error
            files[source].append(str(Path(path).resolve()))
    return files
