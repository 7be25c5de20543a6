"""What Dagster takes to store one asset event, and what a run stored.

Every event of a run is stored as it happens, in the run's own SQLite file, and each asset
event (a planned materialization, a materialization, a check result) in the asset index as
well, in transactions of their own. A run of many weeks and assets stores thousands:

    python -m mta_assets_bench.records [--dir FOLDER] [--events 300] [--postgres-url URL]
    python -m mta_assets_bench.records --count DAGSTER_HOME   # a run's events by type

The benchmark runs it as a child process (``--json``): importing Dagster into the
benchmark's own process would raise every child's peak memory as the kernel reports it
(a child's high-water mark starts from its parent's resident memory at the fork).

The time is the median over ``--events`` asset materializations stored one by one in a new
``DAGSTER_HOME`` in ``--dir`` (the disk matters: each transaction syncs it); with
``--postgres-url`` (``eval "$(bash .ci/postgres.sh)"`` starts one) also in PostgreSQL.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

INSTANCE = "telemetry:\n  enabled: false\n"


def recorded_events(home: Path) -> dict[str, int]:
    """The events the runs in this ``DAGSTER_HOME`` stored, by type."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return dict(collections.Counter(
            entry.dagster_event.event_type_value
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event is not None
        ))


def record_seconds(folder: Path, events: int = 300, instance_yaml: str = INSTANCE) -> float:
    """Seconds Dagster takes to store one asset materialization, the median over ``events``
    of them, in a new ``DAGSTER_HOME`` in ``folder`` configured by ``instance_yaml``."""
    import dagster as dg

    home = Path(tempfile.mkdtemp(prefix="record-", dir=folder))
    try:
        (home / "dagster.yaml").write_text(instance_yaml)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            asset = f"bench_record_{home.name}"  # its own asset: a shared PostgreSQL keeps earlier ones
            seconds = []
            for number in range(events):
                started = time.perf_counter()
                instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=str(number)))
                seconds.append(time.perf_counter() - started)
        return statistics.median(seconds)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mta_assets_bench.records", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the new DAGSTER_HOME goes")
    parser.add_argument("--events", type=int, default=300, help="asset events to store (default 300)")
    parser.add_argument("--postgres-url", help="also store them in this PostgreSQL (postgresql://user:password@host:port/database)")
    parser.add_argument("--count", type=Path, metavar="DAGSTER_HOME", help="print the events stored in this home, by type")
    parser.add_argument("--json", action="store_true", help="print the counts or the SQLite time (ms) as JSON")
    args = parser.parse_args(argv)
    if args.count:
        found = recorded_events(args.count)
        if args.json:
            print(json.dumps(found))
            return 0
        for kind, count in sorted(found.items(), key=lambda item: -item[1]):
            print(f"{count:7,} {kind}")
        print(f"{sum(found.values()):7,} in all")
        return 0
    if args.json:
        print(json.dumps({"sqlite_ms": round(record_seconds(args.dir, args.events) * 1000, 3)}))
        return 0
    print(f"SQLite in {args.dir}: {record_seconds(args.dir, args.events) * 1000:.2f} ms per asset event")
    if args.postgres_url:
        # psycopg2, as deploy/dagster.yaml has it: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3.
        url = re.sub(r"^postgresql://", "postgresql+psycopg2://", args.postgres_url)
        config = INSTANCE + f"storage:\n  postgres:\n    postgres_url: {url}\n"
        print(f"PostgreSQL: {record_seconds(args.dir, args.events, config) * 1000:.2f} ms per asset event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
