"""Two checkouts' runs, alternated on one mirror and one emulator: did a change make a run faster?

The machine's speed drifts between days by as much as most changes (docs/benchmark.md),
so a change is judged against the code before it on the same machine, in turn, pair by
pair. Each side is a checkout (``git worktree add ../before HEAD~1``); both run the same
weeks with the same selection as ``make bench`` runs them, after one untimed run a side
whose stored objects are compared (the command fails when they differ):

    python -m mta_assets_bench.ab ../before . [--weeks 7] [--repeats 6] [--select 'turnstile_csv*']
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from mta_assets_bench.bench import (
    FIRST_WEEK, TURNSTILE_SELECTION, Bench, Server, gcs_client, prepare_weeks, start_emulator, start_mirror,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mta_assets_bench.ab", description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the checkout without the change")
    parser.add_argument("after", type=Path, help="the checkout with it")
    parser.add_argument("--weeks", type=int, default=7, help="weeks in each run, from 2023-12-30 (default 7: the real weeks)")
    parser.add_argument("--repeats", type=int, default=6, help="runs of each side, alternating (default 6)")
    parser.add_argument("--select", default=TURNSTILE_SELECTION, help=f"asset selection (default {TURNSTILE_SELECTION})")
    args = parser.parse_args(argv)
    if args.weeks < 1 or args.repeats < 1:
        parser.error("--weeks and --repeats must be at least 1")

    from mta_devtools.synthetic import consecutive_weeks

    weeks = consecutive_weeks(FIRST_WEEK, args.weeks)
    workdir = Path(tempfile.mkdtemp(prefix="mta-ab-"))
    servers: list[Server] = []
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    try:
        prepare_weeks(workdir / "mirror", len(weeks), 250_000, real=True)
        servers.append(start_mirror(workdir / "mirror", workdir / "mirror.log"))
        emulator = start_emulator(workdir / "emulator.log")
        servers.append(emulator)
        bucket = f"mta-ab-{uuid.uuid4().hex[:8]}"
        gcs_client(emulator.url).create_bucket(bucket)
        benches = {side: Bench(workdir / side, servers[0], emulator, bucket, weeks, code_root=getattr(args, side).resolve())
                   for side in seconds}
        outputs: dict[str, dict] = {}
        for side, bench in benches.items():
            bench.workdir.mkdir()
            (bench.workdir / "mirror").symlink_to(workdir / "mirror")  # where Bench.outputs finds the served files
            # A fresh checkout compiles its bytecode and dbt parses its project on the first
            # run: one run a side, not timed, pays that; its objects show what the side stores.
            _, prefix = bench.run_ours(weeks, select=args.select)
            outputs[side] = bench.outputs(prefix, weeks)
            bench.forget(prefix)
        for repeat in range(args.repeats):
            for side in ("before", "after") if repeat % 2 == 0 else ("after", "before"):
                result, prefix = benches[side].run_ours(weeks, select=args.select)
                seconds[side].append(result["seconds"])
                print(f"repeat {repeat + 1}/{args.repeats}: {side} {result['seconds']:.2f} s", file=sys.stderr)
                benches[side].forget(prefix)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    # Pairs in the order they ran: each "after" against the "before" run beside it.
    ratios = [after / before for before, after in zip(seconds["before"], seconds["after"])]
    print(f"{args.weeks} week(s), --select {args.select}, {args.repeats} alternating runs a side")
    for side, values in seconds.items():
        print(f"{side:6s} median {statistics.median(values):.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"after/before, pair by pair: median {statistics.median(ratios):.3f} ({', '.join(f'{r:.2f}' for r in ratios)})")
    # Each week's .csv.gz decompresses to the served file, and the tables hold the same rows.
    agree = outputs["before"] == outputs["after"] and all(
        week["csv_gz_matches_source"] for side in outputs.values() for week in side.values()
    )
    print(f"outputs agree: {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
