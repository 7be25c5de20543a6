"""The benchmark: the assets as a user runs them against a plain script, in one run.

``python -m mta_assets_bench [--weeks 7] [--year-weeks 52] [--repeats 3] [--raw-text] [--out results.json] [--smoke]``

1. Prepares the weeks from 2023-12-30 on: each is rebuilt from the real sample
   (``../shared/mta-samples/full-weeks/``, with the samples' ``to_mta_format.py``)
   when there is one, else written by ``mta_devtools.synthetic`` with ``--readings``
   readings. The samples hold the 7 consecutive weeks 2023-12-30 .. 2024-02-10; the
   52-week year continues with synthetic weeks of the same size.
2. Serves them from a loopback mirror and stores into gcp-storage-emulator on loopback;
   both run as their own processes so their memory is reported apart.
3. Measures, alternating the sides ``--repeats`` times (medians reported): one week, the
   ``--weeks`` range and the ``--year-weeks`` range of the turnstile group
   (``dagster asset materialize ... --partition``/``--partition-range``) against
   ``plain_script.py`` on the same weeks; then our range with everything downstream
   (ridership, warehouse) and, with ``--raw-text``, with the raw text stored. For each run:
   wall time, peak resident memory (``os.wait4``) and peak local disk of its folder
   (sampled); and the time to import ``mta_assets.definitions`` against ``import dagster``.
   What each of our runs recorded (its events by type, from its ``DAGSTER_HOME``) and the
   time Dagster takes to store one asset event in a new SQLite ``DAGSTER_HOME`` on the same disk.
4. Checks both sides stored the same thing: every ``.csv.gz`` object decompresses to the
   served file's bytes and the Parquet tables have equal row counts.
5. Prints one markdown table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests


REPO_ROOT = Path(__file__).resolve().parents[1]
PLAIN_SCRIPT = Path(__file__).resolve().with_name("plain_script.py")
FIRST_WEEK = "2023-12-30"
SAMPLES_ENV = "MTA_SAMPLES_DIR"
SMOKE_READINGS = 5_000
SMOKE_WEEKS = 2  # a range of two, so the backfill path (one run, several weeks) is exercised
TARGETS = {
    "one_week_ratio": 1.5,
    "backfill_ratio": 0.6,
    "year_ratio": 0.5,  # the whole lineage (issue 18)
    "peak_rss_mb": 400.0,  # the turnstile assets alone
    "lineage_peak_rss_mb": 450.0,  # the whole lineage, 1, 7 and 52 weeks
    "peak_disk_mb": 600.0,
    "import_ratio": 1.3,
}
YEAR_WEEKS = 52
# What ./mta and the Dockerfile set for every process (glibc and Arrow read them at start).
MEMORY_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "1048576", "ARROW_DEFAULT_MEMORY_POOL": "system"}
# The plain script's work: the file, its gzip object and the table. Ridership and the
# warehouse are timed apart, as what they add to a week (README "Benchmark").
TURNSTILE_SELECTION = "group:mta_turnstile"
EVERYTHING_SELECTION = "turnstile_csv*"


STATIONS_DIR = REPO_ROOT.parent / "shared" / "mta-ridership" / "stations"


def samples_dir() -> Path:
    override = os.environ.get(SAMPLES_ENV)
    return Path(override) if override else REPO_ROOT.parent / "shared" / "mta-samples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(code_root: Path = REPO_ROOT, **extra: str) -> dict[str, str]:
    """The caller's environment without its MTA_* settings, ``code_root``'s packages importable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MTA_") or name == SAMPLES_ENV}
    env.pop("STORAGE_EMULATOR_HOST", None)
    # The memory settings a user gets from ./mta and the image (docs/benchmark.md).
    for name, value in MEMORY_ENV.items():
        env.setdefault(name, value)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_root), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


# -- the weeks ---------------------------------------------------------------------


def prepare_weeks(dest: Path, count: int, readings: int, real: bool) -> dict[str, str]:
    """Write ``count`` consecutive weeks into ``dest``; returns {week: where it came from}."""
    from mta_devtools.synthetic import consecutive_weeks, write_week
    from mta_assets.mta.calendar import file_name_for_week

    dest.mkdir(parents=True, exist_ok=True)
    folder = samples_dir()
    origins: dict[str, str] = {}
    for week in consecutive_weeks(FIRST_WEEK, count):
        name = file_name_for_week(week)
        sample = folder / "full-weeks" / f"{name[len('turnstile_'):-len('.txt')]}.csv.gz"
        if real and sample.is_file() and (folder / "to_mta_format.py").is_file():
            with open(dest / name, "wb") as out:
                subprocess.run(
                    [sys.executable, str(folder / "to_mta_format.py"), str(sample)],
                    stdout=out, stderr=subprocess.DEVNULL, check=True,
                )
            origins[week] = f"real ({sample.name})"
        else:
            write_week(dest, week, readings=readings)
            origins[week] = f"synthetic ({readings:,} readings)"
    return origins


# -- processes -----------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process: the most resident memory it has used so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(
    command: list[str], env: dict[str, str], cwd: Path, log: Path, disk: Path | None = None, also: tuple[Path, ...] = ()
) -> dict:
    """Wall time (start-up included), peak resident memory and, when ``disk`` is given, the peak
    bytes of local files under that folder and ``also`` (sampled every 0.2 s) of one command,
    which must succeed."""
    import threading

    from mta_assets.storage.staging import disk_usage

    started = time.perf_counter()
    peak_disk = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            # The run's staging and temp files; its DAGSTER_HOME (event log) is not counted.
            used = disk_usage(disk) - disk_usage(disk / "dagster_home") + sum(disk_usage(folder) for folder in also)
            peak_disk[0] = max(peak_disk[0], used)

    sampler = threading.Thread(target=sample, daemon=True) if disk is not None else None
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        if sampler:
            sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: leave no run behind
            process.kill()
            process.wait()
            raise
        finally:
            stop.set()
            if sampler:
                sampler.join()
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{shlex.join(command)} exited with {process.returncode}; end of its output:\n{tail}")
    # ru_maxrss is in KiB on Linux; it covers the process and any children it waited for.
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "peak_disk_mb": peak_disk[0] / 1024**2}


class Server:
    """A helper process (mirror or emulator) on a free loopback port."""

    def __init__(self, command: list[str], url: str, log: Path):
        self.url = url
        self._log = open(log, "wb")
        self.process = subprocess.Popen(command, env=child_env(), cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{shlex.join(command)} exited with {self.process.returncode}; see {log}")
            try:
                requests.get(url + "/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{shlex.join(command)} did not answer on {url}")

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_emulator(log: Path, port: int | None = None) -> Server:
    """gcp-storage-emulator on a loopback port, objects in memory."""
    port = port or free_port()
    return Server(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
        f"http://127.0.0.1:{port}", log,
    )


def start_mirror(folder: Path, log: Path, port: int | None = None) -> Server:
    """The loopback mirror serving ``folder``'s turnstile files as MTA's site does."""
    port = port or free_port()
    return Server(
        [sys.executable, "-m", "mta_devtools.mirror", str(folder), "--port", str(port)], f"http://127.0.0.1:{port}", log
    )


def gcs_client(emulator_url: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="mta-bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator_url})


# -- the two sides ---------------------------------------------------------------------


class Bench:
    def __init__(
        self, workdir: Path, mirror: Server, emulator: Server, bucket: str, weeks: list[str], code_root: Path = REPO_ROOT
    ):
        self.workdir = workdir
        self.code_root = code_root
        self.mirror = mirror
        self.emulator = emulator
        self.bucket = bucket
        self.weeks = weeks
        self.client = gcs_client(emulator.url)
        self._runs = 0

    def _prefix(self, side: str) -> str:
        self._runs += 1
        return f"bench{self._runs}-{side}"

    def run_ours(
        self, weeks: list[str], extra_args: tuple[str, ...] = (), select: str = TURNSTILE_SELECTION, **extra_env: str
    ) -> tuple[dict, str]:
        prefix = self._prefix("ours")
        run_dir = self.workdir / prefix
        home = run_dir / "dagster_home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        # One warehouse file for all our runs, as a deployment has one, emptied before each
        # run: dbt keeps the parse state of a build for the next one on the same file.
        warehouse = self.workdir / "warehouse" / "warehouse.duckdb"
        shutil.rmtree(warehouse.parent, ignore_errors=True)
        warehouse.parent.mkdir()
        partition = ["--partition", weeks[0]] if len(weeks) == 1 else ["--partition-range", f"{weeks[0]}...{weeks[-1]}"]
        command = [
            str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
            "-m", "mta_assets.definitions", "--select", select, *partition, *extra_args,
        ]
        env = child_env(
            self.code_root,
            DAGSTER_HOME=str(home),
            MTA_SOURCE_URL=self.mirror.url,
            MTA_LAKE_URL=f"gs://{self.bucket}/{prefix}",
            MTA_STAGING_DIR=str(run_dir / "staging"),
            MTA_WAREHOUSE=str(warehouse),
            STORAGE_EMULATOR_HOST=self.emulator.url,
            TMPDIR=str(run_dir),  # the lake's local-copy cache lands here and goes with the run
            # station_complexes (downstream of stations) reads MTA's crosswalks offline.
            **({"MTA_STATION_COMPLEXES_URL": str(STATIONS_DIR)} if STATIONS_DIR.is_dir() else {}),
            **extra_env,
        )
        result = measure(command, env, self.code_root, run_dir.with_suffix(".log"), disk=run_dir, also=(warehouse.parent,))
        return result, prefix

    def run_plain(self, weeks: list[str]) -> tuple[dict, str]:
        prefix = self._prefix("plain")
        run_dir = self.workdir / prefix
        run_dir.mkdir(parents=True)
        command = [
            sys.executable, str(PLAIN_SCRIPT), "--weeks", *weeks,
            "--source", self.mirror.url, "--bucket", self.bucket, "--prefix", prefix,
        ]
        env = child_env(STORAGE_EMULATOR_HOST=self.emulator.url, TMPDIR=str(run_dir))
        result = measure(command, env, REPO_ROOT, run_dir.with_suffix(".log"), disk=run_dir)
        return result, prefix

    def outputs(self, prefix: str, weeks: list[str]) -> dict[str, dict]:
        """Per week: does the .csv.gz decompress to the served file, and the Parquet row count."""
        import pyarrow.parquet as pq

        from mta_assets.mta.calendar import file_name_for_week
        from mta_assets.storage.lake import object_key

        bucket = self.client.bucket(self.bucket)
        found = {}
        def key(dataset: str, week: str, extension: str) -> str:
            # Ours follow the week's manifest (storage/commit.py); the plain script's fixed keys.
            manifest = bucket.blob(f"{prefix}/turnstile/manifests/{week[:4]}/{week}.json")
            if manifest.exists():
                return json.loads(manifest.download_as_bytes())["datasets"][dataset]["key"]  # the full key
            return object_key(dataset, week, extension, prefix)

        for week in weeks:
            served = (self.workdir / "mirror" / file_name_for_week(week)).read_bytes()
            packed = bucket.blob(key("csv_gz", week, ".csv.gz")).download_as_bytes()
            table = bucket.blob(key("readings", week, ".parquet")).download_as_bytes()
            found[week] = {
                "csv_gz_matches_source": gzip.decompress(packed) == served,
                "csv_gz_bytes": len(packed),
                "parquet_rows": pq.ParquetFile(io.BytesIO(table)).metadata.num_rows,
            }
        return found

    def forget(self, prefix: str) -> None:
        """Delete a run's objects and files: the emulator keeps objects in memory."""
        for blob in list(self.client.list_blobs(self.bucket, prefix=prefix + "/")):
            blob.delete()
        shutil.rmtree(self.workdir / prefix, ignore_errors=True)


def records(*args: str, code_root: Path = REPO_ROOT) -> dict:
    """``python -m mta_assets_bench.records --json ARGS`` in a child process: Dagster stays out of
    this one, whose resident memory would otherwise count in every child's peak (``records.py``)."""
    output = subprocess.run(
        [sys.executable, "-m", "mta_assets_bench.records", "--json", *args],
        env=child_env(code_root), cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def time_imports(modules: list[str], repeats: int, code_root: Path = REPO_ROOT) -> dict[str, list[float]]:
    """Seconds to import each module in a fresh interpreter, the modules alternating."""
    timings: dict[str, list[float]] = {module: [] for module in modules}
    for repeat in range(repeats):
        order = modules if repeat % 2 == 0 else list(reversed(modules))
        for module in order:
            code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
            output = subprocess.run(
                [sys.executable, "-c", code], env=child_env(code_root), cwd=code_root, capture_output=True, text=True, check=True
            ).stdout
            timings[module].append(float(output.strip().splitlines()[-1]))
    return timings


# -- the report ---------------------------------------------------------------------------


def machine_info() -> dict:
    import dagster

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib, 1),
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "os": f"{platform.system()} {platform.release()}",
    }


def summarize(runs: list[dict]) -> dict:
    return {
        "seconds": [round(run["seconds"], 3) for run in runs],
        "median_seconds": round(statistics.median(run["seconds"] for run in runs), 3),
        "peak_rss_mb": [round(run["peak_rss_mb"], 1) for run in runs],
        "max_peak_rss_mb": round(max(run["peak_rss_mb"] for run in runs), 1),
        "max_peak_disk_mb": round(max(run.get("peak_disk_mb", 0.0) for run in runs), 1),
    }


NOT_COMPARABLE = "not comparable (smoke)"


def verdict(value: float, limit: float, smoke: bool = False) -> str:
    # The targets are for full-size weeks and medians of repeats; a smoke run's tiny
    # weeks make every ratio start-up bound, so it must not read as "missed".
    if smoke:
        return NOT_COMPARABLE
    return "met" if value <= limit else "missed"


# Dagster's asset events: each is stored in the run's SQLite and again in the asset index.
ASSET_EVENTS = {
    "planned": ("ASSET_MATERIALIZATION_PLANNED", "ASSET_CHECK_EVALUATION_PLANNED"),
    "materializations": ("ASSET_MATERIALIZATION",),
    "check results": ("ASSET_CHECK_EVALUATION",),
}
RUN_LABELS = {
    "ours_one_week": "(a)", "ours_backfill": "(b)", "ours_year": "(y)", "ours_backfill_paired": "(b2)",
    "ours_backfill_everything": "(r)", "ours_one_week_everything": "(r1)", "ours_backfill_raw_text": "(b')",
}


def events_table(report: dict) -> list[str]:
    """What each of our runs recorded, and the asset events' cost at the measured time per record."""
    record_ms = report["record_ms"]
    lines = [
        f"| run (first repeat) | {' | '.join(ASSET_EVENTS)} | asset events | their records at {record_ms:.1f} ms each | all events |",
        "|---|" + "---:|" * (len(ASSET_EVENTS) + 3),
    ]
    for name, label in RUN_LABELS.items():
        found = report["events"].get(name)
        if found is None:
            continue
        counts = [sum(found.get(kind, 0) for kind in kinds) for kinds in ASSET_EVENTS.values()]
        lines.append(
            f"| {label} | {' | '.join(f'{count:,}' for count in counts)} | {sum(counts):,} | "
            f"{sum(counts) * record_ms / 1000:.1f} s | {sum(found.values()):,} |"
        )
    return lines


def markdown_table(report: dict) -> str:
    r = report["results"]
    n = report["weeks_count"]
    ratios = report["ratios"]
    servers = report["servers"]
    y = report.get("year_weeks") or 0

    def row(label: str, key: str) -> tuple[str, str, str, str]:
        found = r[key]
        return (label, f"{found['median_seconds']:.1f} s", f"{found['max_peak_rss_mb']:.0f} MB", f"{found.get('max_peak_disk_mb', 0):.0f} MB")

    rows = [
        row("(a) one week, `dagster asset materialize` (start-up included)", "ours_one_week"),
        row("(c1) one week, plain script", "plain_one_week"),
        row(f"(b) {n}-week backfill, `--partition-range`", "ours_backfill"),
        row(f"(c{n}) {n} weeks, plain script", "plain_backfill"),
    ]
    rows.append(row(f"(b2) {n}-week backfill again, run beside each variant below", "ours_backfill_paired"))
    rows.append(row(f"(r) {n}-week backfill, whole lineage (`turnstile_csv*`: ridership, complexes, dbt)", "ours_backfill_everything"))
    rows.append(row("(r1) one week, whole lineage", "ours_one_week_everything"))
    if "ours_backfill_raw_text" in r:
        rows.append(row(f"(b') {n}-week backfill storing the raw .txt too", "ours_backfill_raw_text"))
    if "ours_year" in r:
        rows += [row(f"(y) {y}-week year, whole lineage, `--partition-range`", "ours_year"), row(f"(c{y}) {y} weeks, plain script", "plain_year")]
    rows += [
        ("`import mta_assets.definitions`", f"{r['import_definitions']['median_seconds']:.2f} s", "", ""),
        ("`import dagster`", f"{r['import_dagster']['median_seconds']:.2f} s", "", ""),
        ("gcp-storage-emulator (whole run)", "", f"{servers['emulator_peak_rss_mb']:.0f} MB", ""),
        ("mirror (whole run)", "", f"{servers['mirror_peak_rss_mb']:.0f} MB", ""),
    ]
    lines = ["| measurement | median time | peak memory (RSS) | peak local disk |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    t = report["targets"]
    lines += [
        "",
        "| ratio | value | target | |",
        "|---|---:|---:|---|",
        f"| one week (a)/(c1) | {ratios['one_week']:.2f} | ≤ {TARGETS['one_week_ratio']} | {t['one_week_ratio']} |",
        f"| backfill (b)/(c{n}) | {ratios['backfill']:.2f} | ≤ {TARGETS['backfill_ratio']} | {t['backfill_ratio']} |",
        *(
            [f"| year, whole lineage (y)/(c{y}) | {ratios['year']:.2f} | ≤ {TARGETS['year_ratio']} | {t['year_ratio']} |"]
            if "year" in ratios else []
        ),
        f"| ridership and warehouse added per week, (r)/(b2) pair by pair | "
        f"{(report['paired_ratios']['ours_backfill_everything'] - 1) * 100:+.0f}% | ≤ +25% | "
        f"{verdict(report['paired_ratios']['ours_backfill_everything'], 1.25, report.get('smoke', False))} |",
        *(
            [f"| raw text stored too, (b')/(b2) pair by pair | "
             f"{(report['paired_ratios']['ours_backfill_raw_text'] - 1) * 100:+.0f}% | | |"]
            if "ours_backfill_raw_text" in report["paired_ratios"] else []
        ),
        f"| peak local disk of our run (staging, temp files) | {report['ours_peak_disk_mb']:.0f} MB | ≤ {TARGETS['peak_disk_mb']:.0f} MB | {t['peak_disk_mb']} |",
        f"| import definitions / dagster | {ratios['import']:.2f} | ≤ {TARGETS['import_ratio']} | {t['import_ratio']} |",
        f"| peak memory, turnstile assets (a), (b) | {report['ours_peak_rss_mb']:.0f} MB | ≤ {TARGETS['peak_rss_mb']:.0f} MB | {t['peak_rss_mb']} |",
        f"| peak memory, whole lineage (1 week, {n} weeks{', the year' if 'year' in ratios else ''}) | "
        f"{report['lineage_peak_rss_mb']:.0f} MB | ≤ {TARGETS['lineage_peak_rss_mb']:.0f} MB | {t['lineage_peak_rss_mb']} |",
        "",
    ]
    lines += events_table(report) + [""]
    if report.get("smoke"):
        lines += [
            f"Smoke run ({n} small synthetic weeks, 1 repeat): it checks that every measurement works, "
            "not the numbers. The targets are for full-size weeks, so these ratios are not comparable "
            "with them; run without --smoke to compare.",
            "",
        ]
    lines += [
        f"Outputs agree (csv.gz decompresses to the served bytes on both sides, equal Parquet row counts): "
        f"**{'yes' if report['agreement']['all_agree'] else 'NO'}**.",
        f"Weeks: {', '.join(f'{week} {origin}' for week, origin in report['weeks'].items())}.",
        f"Medians of {report['repeats']} alternating repeat(s). Machine: {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, {report['machine']['ram_gib']} GiB RAM, {report['machine']['os']}, "
        f"Python {report['machine']['python']}, dagster {report['machine']['dagster']}.",
        f"Command: `{report['command']}`",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    from mta_devtools.synthetic import consecutive_weeks

    all_weeks = consecutive_weeks(FIRST_WEEK, max(args.weeks, args.year_weeks))
    weeks = all_weeks[: args.weeks]
    workdir = Path(tempfile.mkdtemp(prefix="mta-bench-", dir=args.workdir))
    servers: list[Server] = []
    try:
        print(f"preparing {len(all_weeks)} week(s) in {workdir}", file=sys.stderr)
        origins = prepare_weeks(workdir / "mirror", len(all_weeks), args.readings, real=not args.smoke)

        mirror = start_mirror(workdir / "mirror", workdir / "mirror.log")
        servers.append(mirror)
        emulator = start_emulator(workdir / "emulator.log")
        servers.append(emulator)
        bucket = f"mta-bench-{uuid.uuid4().hex[:8]}"
        gcs_client(emulator.url).create_bucket(bucket)
        bench = Bench(workdir, mirror, emulator, bucket, all_weeks, args.code_root)

        print("timing imports", file=sys.stderr)
        imports = time_imports(["dagster", "mta_assets.definitions"], args.import_repeats, args.code_root)
        print("timing Dagster's record of an event", file=sys.stderr)
        record_ms = records("--dir", str(workdir))["sqlite_ms"]

        scenarios = [("one_week", weeks[:1]), ("backfill", weeks)]
        if args.year_weeks:
            scenarios.append(("year", all_weeks[: args.year_weeks]))
        runs: dict[str, list[dict]] = {f"{side}_{name}": [] for side in ("ours", "plain") for name, _ in scenarios}
        outputs: dict[str, dict] = {}
        events: dict[str, dict[str, int]] = {}  # what each of our runs recorded (the first repeat's)
        for repeat in range(args.repeats):
            for name, scenario_weeks in scenarios:
                # The year is the whole lineage (ridership, complexes, dbt) against the plain script.
                ours = (lambda w: bench.run_ours(w, select=EVERYTHING_SELECTION)) if name == "year" else bench.run_ours
                sides = [("ours", ours), ("plain", bench.run_plain)]
                if repeat % 2:
                    sides.reverse()
                for side, runner in sides:
                    print(f"repeat {repeat + 1}/{args.repeats}: {side}, {name} ({len(scenario_weeks)} week(s))", file=sys.stderr)
                    result, prefix = runner(scenario_weeks)
                    runs[f"{side}_{name}"].append(result)
                    print(f"  {result['seconds']:.1f} s, peak {result['peak_rss_mb']:.0f} MB", file=sys.stderr)
                    if repeat == 0:
                        outputs[f"{side}_{name}"] = bench.outputs(prefix, scenario_weeks)
                        if side == "ours":
                            events[f"ours_{name}"] = records("--count", str(workdir / prefix / "dagster_home"))
                    bench.forget(prefix)

        # Variants of our backfill: everything downstream too (ridership and the warehouse:
        # what they add to a week), and the raw text stored in the lake. Each repeat runs the
        # plain backfill beside them and a variant's cost is the median of its ratios to that
        # neighbour: the machine's speed drifts between the phases of a long benchmark.
        variants = {"ours_backfill_paired": {}, "ours_backfill_everything": {"select": EVERYTHING_SELECTION},
                    "ours_one_week_everything": {"select": EVERYTHING_SELECTION, "weeks": weeks[:1]}}
        if args.raw_text:
            config = json.dumps({"ops": {"turnstile_weeks": {"config": {"store_raw_text": True}}}})
            variants["ours_backfill_raw_text"] = {"extra_args": ("--config-json", config)}
        variant_runs: dict[str, list[dict]] = {name: [] for name in variants}
        for repeat in range(args.repeats):
            for name, options in variants.items():
                print(f"repeat {repeat + 1}/{args.repeats}: {name} ({len(weeks)} week(s))", file=sys.stderr)
                options = dict(options)
                result, prefix = bench.run_ours(options.pop("weeks", weeks), **options)
                variant_runs[name].append(result)
                print(f"  {result['seconds']:.1f} s, peak {result['peak_rss_mb']:.0f} MB", file=sys.stderr)
                if repeat == 0:
                    events[name] = records("--count", str(workdir / prefix / "dagster_home"))
                bench.forget(prefix)
        results = {key: summarize(value) for key, value in runs.items()}
        results.update({name: summarize(value) for name, value in variant_runs.items()})
        paired = {
            name: round(statistics.median(
                run["seconds"] / beside["seconds"] for run, beside in zip(found, variant_runs["ours_backfill_paired"])
            ), 3)
            for name, found in variant_runs.items()
            if name not in ("ours_backfill_paired", "ours_one_week_everything")
        }
        for module, key in (("dagster", "import_dagster"), ("mta_assets.definitions", "import_definitions")):
            results[key] = {
                "seconds": [round(s, 3) for s in imports[module]],
                "median_seconds": round(statistics.median(imports[module]), 3),
            }
        ratios = {
            name: round(results[f"ours_{name}"]["median_seconds"] / results[f"plain_{name}"]["median_seconds"], 3)
            for name, _ in scenarios
        }
        ratios["import"] = round(
            results["import_definitions"]["median_seconds"] / results["import_dagster"]["median_seconds"], 3
        )
        per_week = {name: round(results[f"ours_{name}"]["median_seconds"] / len(w), 3) for name, w in scenarios}
        # The turnstile assets alone (one week, the backfill) and the whole lineage (the year and
        # the variants that select everything downstream) have bounds of their own.
        ours_peak = max(results[f"ours_{name}"]["max_peak_rss_mb"] for name, _ in scenarios if name != "year")
        lineage = ["ours_one_week_everything", "ours_backfill_everything"] + (["ours_year"] if "ours_year" in results else [])
        lineage_peak = max(results[name]["max_peak_rss_mb"] for name in lineage)
        ours_disk = max(results[f"ours_{name}"]["max_peak_disk_mb"] for name, _ in scenarios)
        agree = all(week["csv_gz_matches_source"] for found in outputs.values() for week in found.values())
        for name, scenario_weeks in scenarios:
            ours, plain = outputs[f"ours_{name}"], outputs[f"plain_{name}"]
            agree = agree and all(ours[w]["parquet_rows"] == plain[w]["parquet_rows"] for w in scenario_weeks)
        report = {
            "command": shlex.join([Path(sys.executable).name, "-m", "mta_assets_bench", *args.argv]),
            "machine": machine_info(),
            "weeks_count": len(weeks),
            "year_weeks": args.year_weeks,
            "seconds_per_week": per_week,
            "ours_peak_disk_mb": ours_disk,
            "weeks": origins,
            "repeats": args.repeats,
            "results": results,
            "ratios": ratios,
            "paired_ratios": paired,
            "ours_peak_rss_mb": ours_peak,
            "lineage_peak_rss_mb": lineage_peak,
            "events": events,
            "record_ms": round(record_ms, 2),
            "servers": {"emulator_peak_rss_mb": round(emulator.peak_rss_mb(), 1), "mirror_peak_rss_mb": round(mirror.peak_rss_mb(), 1)},
            "agreement": {"all_agree": agree, "outputs": outputs},
            "targets": {
                "one_week_ratio": verdict(ratios["one_week"], TARGETS["one_week_ratio"], args.smoke),
                "backfill_ratio": verdict(ratios["backfill"], TARGETS["backfill_ratio"], args.smoke),
                "year_ratio": verdict(ratios["year"], TARGETS["year_ratio"], args.smoke) if "year" in ratios else "not run",
                "import_ratio": verdict(ratios["import"], TARGETS["import_ratio"], args.smoke),
                "peak_rss_mb": verdict(ours_peak, TARGETS["peak_rss_mb"], args.smoke),
                "lineage_peak_rss_mb": verdict(lineage_peak, TARGETS["lineage_peak_rss_mb"], args.smoke),
                "peak_disk_mb": verdict(ours_disk, TARGETS["peak_disk_mb"], args.smoke),
            },
            "smoke": bool(args.smoke),
        }
        report["table"] = markdown_table(report)
        return report
    finally:
        for server in reversed(servers):
            server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m mta_assets_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=7, help="weeks in the backfill range, from 2023-12-30 (default 7: the real weeks)")
    parser.add_argument(
        "--year-weeks", type=int, default=YEAR_WEEKS,
        help=f"weeks in the year scenario (default {YEAR_WEEKS}: the 7 real weeks, then synthetic full-size weeks; 0 skips it)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats of each measurement (default 3)")
    parser.add_argument("--readings", type=int, default=250_000, help="readings in each synthetic week (default 250,000)")
    parser.add_argument("--import-repeats", type=int, default=5, help="fresh interpreters per import timing (default 5)")
    parser.add_argument(
        "--raw-text", action="store_true", help="also time the backfill with the raw .txt stored in the lake (store_raw_text)"
    )
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--workdir", type=Path, help="where the weeks and run folders go (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs of every run) afterwards")
    parser.add_argument(
        "--code-root", type=Path, default=REPO_ROOT,
        help="measure the mta_assets package in this folder (a copy with a change to try); default: this checkout",
    )
    parser.add_argument(
        "--smoke", action="store_true",
        help=f"CI-sized: {SMOKE_WEEKS} synthetic weeks of {SMOKE_READINGS:,} readings, 1 repeat",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.weeks, args.repeats, args.readings, args.import_repeats = SMOKE_WEEKS, 1, SMOKE_READINGS, 1
        args.year_weeks = 0
    if args.weeks < 1 or args.repeats < 1 or args.readings < 1 or args.import_repeats < 1:
        parser.error("--weeks, --repeats, --readings and --import-repeats must be at least 1")
    args.argv = argv
    # A terminated benchmark still stops its mirror, emulator and current run.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    report = run(args)
    print(report["table"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0
