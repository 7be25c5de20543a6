"""The baseline: the same weekly work written as a plain Python script, no Dagster.

This is what a data engineer would write by hand, and what the benchmark compares
the assets with. For each week, one after another:

1. stream ``turnstile_YYMMDD.txt`` from the source with requests, gzip-compressing
   it to a local file on the fly;
2. upload the ``.csv.gz`` with google-cloud-storage's chunked resumable upload;
3. parse it with ``pandas.read_csv`` (the 11-column layout MTA used from 2014-10-18),
   drop exact duplicate rows;
4. write Parquet and upload it.

Objects go to ``gs://BUCKET/PREFIX/turnstile/{csv_gz,readings}/YYYY/turnstile_YYMMDD.*``,
the same names the assets use. gzip level 6 of the stdlib's zlib writes about the size the
assets' zlib-ng writes at its default level 5 (docs/benchmark.md "Compression level"),
and zstd Parquet is the assets' default, so both sides store the same compression.

    python mta_assets_bench/plain_script.py --weeks 2023-12-30 2024-01-06 \\
        --source http://127.0.0.1:8765 --bucket my-bucket --prefix plain

With ``STORAGE_EMULATOR_HOST`` set it talks to that emulator anonymously.
"""

import argparse
import datetime as dt
import gzip
import io
import os
import tempfile
from pathlib import Path

import pandas as pd
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

CHUNK_SIZE = 8 * 1024 * 1024  # a multiple of 256 KiB, as GCS requires
GZIP_LEVEL = 6


def file_stem(week: str) -> str:
    """MTA names a week's file for the Saturday after it: 2023-12-30 -> turnstile_240106."""
    published = dt.date.fromisoformat(week) + dt.timedelta(days=7)
    return f"turnstile_{published:%y%m%d}"


def gcs_client() -> storage.Client:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project="plain-script", credentials=AnonymousCredentials())
    return storage.Client()


def process_week(bucket: storage.Bucket, source: str, prefix: str, week: str, workdir: Path) -> int:
    stem = file_stem(week)
    year = "20" + stem[len("turnstile_") :][:2]
    gz_path = workdir / f"{stem}.csv.gz"

    with requests.get(f"{source.rstrip('/')}/{stem}.txt", stream=True, timeout=60) as response:
        response.raise_for_status()
        with open(gz_path, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0
        ) as out:
            for chunk in response.iter_content(chunk_size=1024 * 1024):
                out.write(chunk)

    gz_blob = bucket.blob(f"{prefix}/turnstile/csv_gz/{year}/{stem}.csv.gz", chunk_size=CHUNK_SIZE)
    gz_blob.upload_from_filename(str(gz_path), content_type="application/gzip")

    frame = pd.read_csv(gz_path, dtype={"ENTRIES": "int64", "EXITS": "int64"})
    frame.columns = [name.strip() for name in frame.columns]  # MTA pads the header line with spaces
    frame["reading_time"] = pd.to_datetime(frame["DATE"] + " " + frame["TIME"], format="%m/%d/%Y %H:%M:%S")
    frame = frame.drop(columns=["DATE", "TIME"]).drop_duplicates()
    frame["week"] = dt.date.fromisoformat(week)
    frame["source_file"] = f"{stem}.txt"

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    buffer.seek(0)
    parquet_blob = bucket.blob(f"{prefix}/turnstile/readings/{year}/{stem}.parquet", chunk_size=CHUNK_SIZE)
    parquet_blob.upload_from_file(buffer, content_type="application/vnd.apache.parquet")
    gz_path.unlink()
    return len(frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", nargs="+", required=True, help="partition keys: the Saturday each week begins")
    parser.add_argument("--source", required=True, help="base URL serving turnstile_YYMMDD.txt")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="plain")
    args = parser.parse_args(argv)

    bucket = gcs_client().bucket(args.bucket)
    with tempfile.TemporaryDirectory(prefix="plain-script-") as workdir:
        for week in args.weeks:
            rows = process_week(bucket, args.source, args.prefix, week, Path(workdir))
            print(f"{week}: {rows} readings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
