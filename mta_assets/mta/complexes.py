"""Turnstile booths (unit + C/A) -> MTA station complexes, the key of the official hourly ridership (no Dagster import).

Sources, in order of trust: hshore29/mta-lookups' remote-booth-station table (every row
has MTA's ``complex_id``), then qri-io's older remote -> complex lookup; names from MTA's
"Stations and Complexes" (``5f5g-n3cz``), whose Display Name is the hourly data's
``station_complex``. A pair neither table lists takes its unit's complex when every booth
of that unit agrees on one. A pair that still has no complex is reported with its week
and the reason, never dropped.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

HSHORE29 = "remote_booth_station_to_complex_hshore29.csv"
QRI_IO = "remote_complex_lookup_qri-io.csv"
COMPLEX_NAMES = "5f5g-n3cz_MTA_Subway_Stations_and_Complexes_2025-09-18.csv"
CROSSWALK_FILES = (HSHORE29, QRI_IO, COMPLEX_NAMES)
# Where each file is read from when MTA_STATION_COMPLEXES_URL names no folder: the public
# copies the shared test data was taken from, pinned to those commits, and MTA's own export.
DEFAULT_SOURCES = {
    HSHORE29: "https://raw.githubusercontent.com/hshore29/mta-lookups/44efb04/clean/remote_booth_station.csv",
    QRI_IO: "https://raw.githubusercontent.com/qri-io/data-stories-scripts/b2705a67497e046112e1b1b2506cb49bd2ea6485/"
    "nyc-turnstile-counts/lookup/remote_complex_lookup.csv",
    COMPLEX_NAMES: "https://data.ny.gov/api/views/5f5g-n3cz/rows.csv?accessType=DOWNLOAD",
}


@dataclasses.dataclass(frozen=True)
class Crosswalk:
    """(unit, ca) -> (complex_id, source), and complex_id -> name."""

    pairs: dict[tuple[str, str], tuple[str, str]]
    names: dict[str, str]

    def by_unit(self) -> dict[str, tuple[str, str] | None]:
        """A unit's complex when all of its booths agree on one, else None (ambiguous)."""
        seen: dict[str, set[str]] = {}
        first: dict[str, tuple[str, str]] = {}
        for (unit, _), value in self.pairs.items():
            seen.setdefault(unit, set()).add(value[0])
            first.setdefault(unit, value)
        return {unit: first[unit] if len(ids) == 1 else None for unit, ids in seen.items()}


def _rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]


def parse_crosswalk(hshore29: str, qri_io: str, complexes: str) -> Crosswalk:
    """The three files' text -> one crosswalk (hshore29 wins over qri-io for a pair both list)."""
    names = {row["complex id"]: row["display name"] for row in _rows(complexes) if row.get("complex id")}
    pairs: dict[tuple[str, str], tuple[str, str]] = {}
    fallback_names: dict[str, str] = {}
    for row in _rows(hshore29):
        if row.get("remote") and row.get("booth") and row.get("complex_id"):
            pairs[(row["remote"], row["booth"])] = (row["complex_id"], "hshore29")
            fallback_names.setdefault(row["complex_id"], row.get("complex_name", ""))
    for row in _rows(qri_io):
        unit, booth, complex_id = row.get("remote", ""), row.get("booth", ""), row.get("complex_id", "")
        if unit and booth and complex_id:
            pairs.setdefault((unit, booth), (complex_id, "qri-io"))
    # A complex MTA's list lacks (since renumbered) keeps the crosswalk's own name.
    return Crosswalk(pairs, {**fallback_names, **names})


@dataclasses.dataclass(frozen=True)
class Unmapped:
    week: str
    unit: str
    ca: str
    reason: str

    def __str__(self) -> str:
        return f"week {self.week}: {self.unit}/{self.ca}: {self.reason}"


def map_pairs(
    crosswalk: Crosswalk, pairs_by_week: Mapping[str, Iterable[tuple[str, str]]]
) -> tuple[pa.Table, list[Unmapped]]:
    """Every crosswalk pair and every pair the weeks hold -> the ``station_complexes`` table,
    plus the weeks' pairs that have no complex, each with a reason."""
    import pyarrow as pa

    by_unit = crosswalk.by_unit()
    mapped: dict[tuple[str, str], tuple[str, str]] = dict(crosswalk.pairs)
    unmapped: list[Unmapped] = []
    for week in sorted(pairs_by_week):
        for unit, ca in sorted(set(pairs_by_week[week])):
            if (unit, ca) in mapped:
                continue
            if unit not in by_unit:
                unmapped.append(Unmapped(week, unit, ca, f"unit {unit} is in neither crosswalk ({HSHORE29}, {QRI_IO})"))
                continue
            value = by_unit[unit]
            if value is None:
                unmapped.append(Unmapped(week, unit, ca, f"booth {ca} is not listed and unit {unit}'s booths map to several complexes"))
                continue
            mapped[(unit, ca)] = (value[0], f"{value[1]}-unit")
    keys = sorted(mapped)
    table = pa.table(
        {
            "unit": pa.array([k[0] for k in keys], pa.string()),
            "ca": pa.array([k[1] for k in keys], pa.string()),
            "complex_id": pa.array([mapped[k][0] for k in keys], pa.string()),
            "complex_name": pa.array([crosswalk.names.get(mapped[k][0]) for k in keys], pa.string()),
            "source": pa.array([mapped[k][1] for k in keys], pa.string()),
        }
    )
    return table, unmapped
