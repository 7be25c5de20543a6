"""Time and size of a week's readings table written with a dictionary for every column, and for the text columns only.

    python -m mta_assets_bench.parquet_dictionaries turnstile_240113.txt [--week 2024-01-06]

The file is one of MTA's weekly files (the samples' ``to_mta_format.py`` rebuilds them);
the table is parsed as the turnstile step parses it, and written with the step's other
settings (zstd, row groups of 65,536 rows).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import pyarrow.parquet as pq

    from mta_assets.defs.turnstile.tables import ROW_GROUP_ROWS, write_parquet
    from mta_assets.mta.calendar import week_for_file_name
    from mta_assets.mta.parse import parse_week

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    table = parse_week(args.file, week_for_file_name(args.file.name), args.file.name).table

    def every_column(target: Path) -> None:
        pq.write_table(table, target, compression="zstd", use_dictionary=True, row_group_size=ROW_GROUP_ROWS)

    print(f"{args.file.name}: {table.num_rows:,} rows")
    print("| dictionaries | bytes | seconds |\n|---|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "week.parquet"
        for label, write in (("every column", every_column), ("text columns (write_parquet)", lambda t: write_parquet(table, t))):
            seconds = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                write(target)
                seconds.append(time.perf_counter() - started)
            assert pq.read_table(target).equals(table)
            print(f"| {label} | {target.stat().st_size:,} | {statistics.median(seconds):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
