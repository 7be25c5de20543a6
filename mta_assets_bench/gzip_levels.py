"""Size and time of every gzip level on one turnstile file: zlib-ng (what the
turnstile_csv_gz asset writes with) beside the stdlib's zlib (what the plain script uses).

    python -m mta_assets_bench.gzip_levels turnstile_240106.txt
"""

import argparse
import gzip
import io
import statistics
import time
from pathlib import Path

from zlib_ng import gzip_ng

WRITERS = {"zlib-ng": gzip_ng.GzipNGFile, "zlib": gzip.GzipFile}


def measure(data: bytes, level: int, repeats: int, writer=gzip_ng.GzipNGFile) -> tuple[int, float]:
    seconds = []
    for _ in range(repeats):
        out = io.BytesIO()
        started = time.perf_counter()
        # The same settings as the turnstile_csv_gz asset: no file name, mtime 0.
        with writer(filename="", mode="wb", compresslevel=level, fileobj=out, mtime=0) as handle:
            handle.write(data)
        seconds.append(time.perf_counter() - started)
    return len(out.getvalue()), statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5, 6, 7, 9])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    data = args.file.read_bytes()
    print(f"{args.file.name}: {len(data):,} bytes; median of {args.repeats}, in memory")
    print("| level | " + " | ".join(f"{name} bytes | ratio | seconds" for name in WRITERS) + " |")
    print("|---" * (1 + 3 * len(WRITERS)) + "|")
    for level in args.levels:
        cells = []
        for writer in WRITERS.values():
            size, seconds = measure(data, level, args.repeats, writer)
            cells.append(f"{size:,} | {len(data) / size:.1f} | {seconds:.2f}")
        print(f"| {level} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
