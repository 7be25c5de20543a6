"""MTA's Remote-Booth-Station key and the station dimension across both eras (no Dagster import).

A **station** here is what MTA's key names for a turnstile's (UNIT, C/A) pair: the
remote unit R### plus the booth. A unit is usually one station, but not always
(R001 is both WHITEHALL ST and SOUTH FERRY), so the pair is the key.

The 2010-2014 wide files carry no station at all; the 11-column files (from
2014-10-11) carry a name that often differs from the key's for the same pair
(``42 ST-TIMES SQ`` in the key, ``TIMES SQ-42 ST`` in the files). To keep one name
per station across both eras the key wins wherever it knows the pair; the file's
name is kept beside it (``station_in_file``) and used only for pairs the key does
not know (stations opened after it was published, such as the Second Avenue
subway's R570-R572). A wide-era pair the key does not list takes the name of its
unit when every booth of that unit in the key agrees on one.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

# The xls MTA publishes next to the turnstile files; any CSV or xls with the same columns works.
DEFAULT_STATION_KEY_URL = "http://web.mta.info/developers/resources/nyct/turnstile/Remote-Booth-Station.xls"


@dataclass(frozen=True, eq=False)
class StationKey:
    """MTA's Remote-Booth-Station key: (unit, ca) -> (station, linename, division).

    The wide 2010-2014 files carry no station columns; this key gives their rows one.
    """

    stations: dict[tuple[str, str], tuple[str, str | None, str | None]]
    source: str = ""

    def __len__(self) -> int:
        return len(self.stations)

    def by_unit(self) -> dict[str, tuple[str, str | None, str | None]]:
        """A unit's station when all of its booths in the key agree on the name."""
        names: dict[str, set[str]] = {}
        first: dict[str, tuple[str, str | None, str | None]] = {}
        for (unit, _), value in self.stations.items():
            names.setdefault(unit, set()).add(value[0])
            first.setdefault(unit, value)
        return {unit: first[unit] for unit, seen in names.items() if len(seen) == 1}


# Both published variants of the key: MTA's own header and an older re-save.
_KEY_COLUMN_ALIASES = {
    "unit": ("remote", "unit"),
    "ca": ("booth", "control_area", "c/a", "ca"),
    "station": ("station",),
    "linename": ("line name", "linename", "line_name"),
    "division": ("division",),
}


def load_station_key(path: str | Path) -> StationKey:
    """Read a Remote-Booth-Station CSV (``Remote,Booth,Station,Line Name,Division`` or
    ``unit,control_area,station``), or MTA's xls of the same. The first entry wins when a
    (unit, ca) pair repeats."""
    path = Path(path)
    return parse_station_key(path.read_bytes(), path.name)


def parse_station_key(data: bytes, source: str) -> StationKey:
    """The key from the bytes of a CSV or an xls file (MTA publishes an xls)."""
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":  # OLE2: a legacy Excel workbook
        records = _xls_records(data, source)
    else:
        text = data.decode("utf-8-sig", errors="replace")
        records = list(csv.reader(io.StringIO(text)))
    if not records:
        raise ValueError(f"station key {source}: the file is empty")
    header = [str(column).strip().lower() for column in records[0]]
    positions: dict[str, int | None] = {}
    for column, aliases in _KEY_COLUMN_ALIASES.items():
        positions[column] = next((header.index(alias) for alias in aliases if alias in header), None)
    missing = [column for column in ("unit", "ca", "station") if positions[column] is None]
    if missing:
        raise ValueError(f"station key {source}: no {', '.join(missing)} column in header {header}")

    def cell(record: list, column: str) -> str | None:
        position = positions[column]
        if position is None or position >= len(record) or record[position] is None:
            return None
        return str(record[position]).strip() or None

    stations: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}
    for record in records[1:]:
        unit, ca, station = cell(record, "unit"), cell(record, "ca"), cell(record, "station")
        if unit and ca and station:
            stations.setdefault((unit, ca), (station, cell(record, "linename"), cell(record, "division")))
    if not stations:
        raise ValueError(f"station key {source}: no (unit, booth, station) rows")
    return StationKey(stations=stations, source=source)


def _xls_records(data: bytes, source: str) -> list[list]:
    try:
        import pandas as pd

        frame = pd.read_excel(io.BytesIO(data), header=None, dtype=str)
    except ImportError as exc:
        raise ValueError(
            f"station key {source} is an xls workbook and reading it needs xlrd ({exc}); "
            "install xlrd or point MTA_STATION_KEY_PATH at a CSV export of it"
        ) from exc
    return frame.where(frame.notna(), None).values.tolist()


STATION_COLUMNS = ("unit", "ca", "station", "linename", "division", "station_in_file", "source")


def station_dimension(turnstiles: pa.Table, key: StationKey | None) -> pa.Table:
    """One row per (unit, ca) seen in a week's readings, with its station across both eras.

    ``turnstiles`` has columns unit, ca, station, linename, division (the file's own
    values, null in the wide layout). ``source`` says where the name came from:
    ``key`` (the pair is in MTA's key), ``file`` (only the 11-column file names it),
    ``key_unit`` (the key knows the unit, not this booth) or null when nothing does.
    """
    import pyarrow as pa

    # Counted in Arrow first: a week has about 250,000 readings but under a thousand pairs.
    columns = ["unit", "ca", "station", "linename", "division"]
    counts = turnstiles.select(columns).group_by(columns, use_threads=False).aggregate([([], "count_all")])
    seen: dict[tuple[str, str], Counter] = {}
    for row in counts.to_pylist():
        names = seen.setdefault((row["unit"], row["ca"]), Counter())
        if row["station"] is not None:
            names[(row["station"], row["linename"], row["division"])] += row["count_all"]
    known = key.stations if key is not None else {}
    by_unit = key.by_unit() if key is not None else {}
    rows = []
    for (unit, ca), names in sorted(seen.items()):
        in_file = names.most_common(1)[0][0] if names else (None, None, None)
        if (unit, ca) in known:
            station, linename, division = known[(unit, ca)]
            source = "key"
        elif in_file[0] is not None:
            station, linename, division = in_file
            source = "file"
        elif unit in by_unit:
            station, linename, division = by_unit[unit]
            source = "key_unit"
        else:
            station, linename, division, source = None, None, None, None
        # The key's older lists have no lines or division: take the file's when it has them.
        linename = linename or in_file[1]
        division = division or in_file[2]
        rows.append((unit, ca, station, linename, division, in_file[0], source))
    columns = list(zip(*rows)) if rows else [()] * len(STATION_COLUMNS)
    return pa.table({name: pa.array(list(values), pa.string()) for name, values in zip(STATION_COLUMNS, columns)})
