"""What the checks for weeks replaced by another run cost a year's run, against gcp-storage-emulator.

The ridership step follows the manifests of the readings it read once it is done
(``WeekFiles.refresh``); the warehouse step looks up each week's sources before fetching
them and again after dbt (``source_versions``). Both are lake requests only, so they are
timed alone, on small objects:

    python -m mta_assets_bench.rechecks [--weeks 52] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mta_assets_bench.bench import FIRST_WEEK, gcs_client, start_emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="mta-rechecks-"))
    emulator = start_emulator(work / "emulator.log")
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
        gcs_client(emulator.url).create_bucket("mta-rechecks")
        from mta_assets.defs.io_manager import WeekFiles
        from mta_assets.defs.resources import Lake
        from mta_assets.defs.warehouse.lake_files import source_versions
        from mta_assets.mta.calendar import shift_week
        from mta_assets.storage.commit import commit_week
        from mta_devtools.synthetic import consecutive_weeks

        lake = Lake(url="gs://mta-rechecks/bench")
        weeks = list(consecutive_weeks(FIRST_WEEK, args.weeks))
        small = work / "object.parquet"
        small.write_bytes(b"0" * 1000)
        for week in weeks:  # what a year's run leaves: a readings manifest, stations and ridership
            commit_week(lake.client, "turnstile", week, {"readings": (small, "t.parquet", "application/octet-stream")},
                        owner="rechecks", wait_s=5)
            for dataset in ("stations", "ridership"):
                lake.put_file(small, lake.key_for(dataset, week, ".parquet"), "application/octet-stream")
        read = [shift_week(weeks[0], -1), *weeks]  # the ridership step reads the week before the first too
        files = WeekFiles(lake.client, "readings", ".parquet", read)
        ridership, warehouse = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            files.refresh(read)
            ridership.append(time.perf_counter() - started)
            started = time.perf_counter()
            source_versions(lake, weeks)
            warehouse.append(time.perf_counter() - started)
        print(f"ridership step, manifests of {len(read)} weeks: {statistics.median(ridership):.2f} s (median of {args.repeats})")
        print(f"warehouse step, sources of {len(weeks)} weeks, one pass: {statistics.median(warehouse):.2f} s")
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
