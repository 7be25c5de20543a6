"""Writing the readings table and describing it for the Dagster UI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import pyarrow as pa

    from mta_assets.mta.parse import ParsedWeek

PREVIEW_ROWS = 5


def write_parquet(table: pa.Table, target: Path) -> None:
    """Deterministic Parquet: the same rows give the same bytes (no creation timestamp varies)."""
    import pyarrow.parquet as pq

    pq.write_table(
        table,
        target,
        compression="zstd",
        use_dictionary=True,
        write_statistics=True,
        # Arrow's pandas metadata would differ between writers; the contract is the schema.
        store_schema=True,
    )
    # Nothing else holds the file open; make sure it is complete before it is uploaded.
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())


def readings_metadata(parsed: ParsedWeek) -> dict[str, Any]:
    import pyarrow.compute as pc

    from mta_assets.mta.parse import table_schema

    table = parsed.table
    turnstiles = table.group_by(["ca", "unit", "scp"]).aggregate([]).num_rows if table.num_rows else 0
    stations = pc.count_distinct(table["station"]).as_py() if table.num_rows else 0
    first = pc.min(table["reading_time"]).as_py() if table.num_rows else None
    last = pc.max(table["reading_time"]).as_py() if table.num_rows else None
    return {
        # Dagster's standard table keys (TableMetadataSet is not exported by dagster 1.13):
        # the UI shows them as the asset's row count and column schema.
        "dagster/row_count": dg.MetadataValue.int(table.num_rows),
        "dagster/partition_row_count": dg.MetadataValue.int(table.num_rows),
        "dagster/column_schema": dg.MetadataValue.table_schema(table_schema()),
        "layout": parsed.layout,
        "lines": parsed.lines,
        "blank_lines": parsed.blank_lines,
        "readings_seen": parsed.readings_seen,
        "rejected": parsed.rejected,
        "reject_share": round(parsed.reject_share, 6),
        "rejected_samples": dg.MetadataValue.json(parsed.rejected_samples),
        "duplicates_removed": parsed.duplicates,
        "turnstiles": turnstiles,
        "stations": stations,
        "first_reading": first.isoformat() if first else "",
        "last_reading": last.isoformat() if last else "",
        "preview": dg.MetadataValue.md(markdown_table(table.slice(0, PREVIEW_ROWS), empty="(no rows)")),
    }


def markdown_table(table: pa.Table, empty: str = "(none)") -> str:
    """A few rows as a markdown table, for metadata the UI renders."""
    if table.num_rows == 0:
        return empty
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join("" if row[n] is None else str(row[n]) for n in names) + " |" for row in table.to_pylist()]
    return "\n".join(lines)
