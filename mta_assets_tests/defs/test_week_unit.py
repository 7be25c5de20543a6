"""The week as the unit: bounded staging, cleaned after success, failure and a killed run; one download per week."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from mta_assets.defs.resources import Lake, LakeIOManager, MTASource
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_devtools.mirror import MirrorServer
from mta_devtools.synthetic import consecutive_weeks, week_bytes
from mta_assets.storage.locks import WeekLocked, lock_key, week_lock
from mta_assets.storage.staging import RunStaging, staging_base
from mta_assets_tests.defs.test_assets import OneFileServer
from mta_assets_tests.storage.gcs_proxy import GcsFaultProxy
from mta_assets_tests.samples import offline_station_key
from mta_assets_tests.lake_objects import week_object_key
from mta_assets.storage.commit import week_key

WEEK = "2023-12-30"
WEEKS = consecutive_weeks(WEEK, 3)


def resources(url: str, lake: Lake) -> dict:
    return {"mta_source": MTASource(base_url=url, retries=0), "lake": lake, "lake_io_manager": LakeIOManager(lake=lake),
            "station_key": offline_station_key()}


def staged_files() -> list[Path]:
    base = staging_base()
    return [p for p in base.rglob("*") if p.is_file()] if base.exists() else []


def materialize_range(url: str, lake: Lake, weeks: list[str], instance=None):
    return dg.materialize(
        [turnstile_weeks],
        resources=resources(url, lake),
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
        raise_on_error=False,
    )


def test_staging_is_empty_after_success_and_after_failure(mirror: MirrorServer, synthetic_week, local_lake: Lake):
    for week in WEEKS:
        synthetic_week(week, readings=2000)
    assert materialize_range(mirror.url, local_lake, WEEKS).success
    assert staged_files() == []

    (Path(mirror.root) / "turnstile_240113.txt").write_bytes(b"not,a,turnstile,file\n")
    failed = materialize_range(mirror.url, local_lake, WEEKS)
    assert not failed.success
    assert staged_files() == []


def test_a_killed_runs_staging_is_removed_by_the_next_run(mirror: MirrorServer, synthetic_week, local_lake: Lake):
    # A run that dies hard (SIGKILL: no cleanup handler runs) with a week staged.
    script = (
        "import os, signal\n"
        "from mta_assets.storage.staging import RunStaging\n"
        "staging = RunStaging('killed-run').open()\n"
        "(staging.week('2023-12-30') / 'source.txt').write_bytes(b'x' * 100000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], env=os.environ.copy())
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in staged_files() if p.name == "source.txt"] == ["source.txt"]

    synthetic_week(WEEK, readings=500)
    assert dg.materialize([turnstile_weeks], partition_key=WEEK, resources=resources(mirror.url, local_lake)).success
    assert staged_files() == []


def test_a_live_runs_staging_is_left_alone():
    alive = RunStaging("still-running").open()
    (alive.week(WEEK) / "source.txt").write_bytes(b"x")
    RunStaging("another-run").open().close()
    assert (alive.week(WEEK) / "source.txt").exists()
    alive.close()


def test_the_week_lock_admits_one_holder_and_breaks_a_dead_holders_lock(local_lake: Lake):
    with week_lock(local_lake, WEEK, owner="run A"):
        try:
            with week_lock(local_lake, WEEK, owner="run B", wait_s=0.3, poll_s=0.05):
                raise AssertionError("two holders of one week's lock")
        except WeekLocked as locked:
            assert f"week {WEEK}" in str(locked) and "run A" in str(locked)
    assert local_lake.read_bytes(lock_key(local_lake, WEEK)) is None  # released

    # A holder that died long ago: its lock is broken after the time to live.
    local_lake.create_if_absent(lock_key(local_lake, WEEK), b'{"owner": "dead run", "since": 0}')
    with week_lock(local_lake, WEEK, owner="run C", wait_s=1):
        pass


@pytest.fixture(params=["local", "gcs"])
def lake_with_create_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A lake whose lock objects are create-only: a local folder (O_EXCL), or the GCS emulator
    behind a proxy that refuses ``ifGenerationMatch=0`` on an existing object with 412, as GCS
    does (the emulator alone ignores the precondition)."""
    if request.param == "local":
        yield request.getfixturevalue("local_lake")
        return
    emulator = request.getfixturevalue("gcs_emulator")
    lake = request.getfixturevalue("gcs_lake")
    with GcsFaultProxy(emulator.host, mode="precondition") as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        yield lake.model_copy()


def test_two_overlapping_runs_of_one_week_leave_objects_from_one_download(tmp_path: Path, lake_with_create_only: Lake):
    """Each run downloads a different version of the file; whatever the interleaving, the week's
    gzip object and table come from the same download."""
    any_lake = lake_with_create_only
    versions = [week_bytes(WEEK, readings=3000, seed=1), week_bytes(WEEK, readings=2000, seed=2)]
    servers = [OneFileServer(body) for body in versions]
    results = {}

    def run(index: int) -> None:
        # Disposed in the thread that made it: SQLite objects belong to their thread.
        with dg.DagsterInstance.ephemeral() as instance:
            results[index] = dg.materialize(
                [turnstile_weeks], partition_key=WEEK, resources=resources(servers[index].url, any_lake),
                instance=instance,
            ).success

    with servers[0], servers[1]:
        threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert results == {0: True, 1: True}
    raw = gzip.decompress(any_lake.read_bytes(week_object_key(any_lake, "csv_gz", WEEK)))
    table = pq.read_table(any_lake.fetch(week_object_key(any_lake, "readings", WEEK), tmp_path / "fetched"))
    winner = versions.index(raw)
    assert table.num_rows == (3000, 2000)[winner] - _duplicates(versions[winner])


def _duplicates(body: bytes) -> int:
    lines = [line.rstrip() for line in body.split(b"\n")[1:] if line.strip()]
    return len(lines) - len(set(lines))


def test_a_retry_after_a_lake_outage_does_not_download_again(mirror: MirrorServer, synthetic_week, local_lake: Lake, tmp_path):
    """A transient failure keeps the whole download staged; the step's retry uses it."""
    synthetic_week(WEEK, readings=1000)
    calls = []

    class FlakyLake(Lake):
        def put_file(self, source, key, content_type, **kwargs):
            calls.append(key)
            if len(calls) == 1:
                raise ConnectionError(f"lake unreachable while writing {key}")
            return super().put_file(source, key, content_type, **kwargs)

    flaky = FlakyLake(url=local_lake.url)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [turnstile_weeks], partition_key=WEEK, instance=instance,
        resources={"mta_source": MTASource(base_url=mirror.url, retries=0), "lake": flaky,
                   "lake_io_manager": LakeIOManager(lake=flaky), "station_key": offline_station_key()},
        raise_on_error=False,
    )
    downloads = [path for method, path in mirror.requests if method == "GET"]
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert len(downloads) == 1
    assert staged_files() == []


class TrickleServer(OneFileServer):
    """Sends the headers, then 100 bytes every half second: a download that would take hours."""

    def __init__(self, body: bytes):
        super().__init__(body)
        self.started = threading.Event()
        owner = self
        handler = self.server.RequestHandlerClass

        def do_get(request) -> None:
            request.send_response(200)
            request.send_header("Content-Type", "text/plain")
            request.send_header("Content-Length", str(len(owner.body)))
            request.end_headers()
            owner.started.set()
            for start in range(0, len(owner.body), 100):
                try:
                    request.wfile.write(owner.body[start : start + 100])
                    request.wfile.flush()
                except OSError:
                    return
                if owner.stopping.wait(0.5):
                    return

        handler.do_GET = do_get
        self.stopping = threading.Event()

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        super().__exit__(*exc)


def test_sigterm_stops_a_download_within_seconds_without_a_retry_and_leaves_the_lake_as_it_was(tmp_path: Path):
    import time

    lake_dir = tmp_path / "lake"
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with TrickleServer(week_bytes(WEEK, readings=3000)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
        env.update(DAGSTER_HOME=str(home), MTA_SOURCE_URL=server.url, MTA_LAKE_URL=str(lake_dir), PYTHONWARNINGS="ignore")
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "mta_assets.definitions",
             "--select", "turnstile_csv*", "--partition", WEEK],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            assert server.started.wait(60), "the download never started"
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
    # A download in progress stops at once (measured 0.7-1.3 s in all); it used to run through
    # the commit grace period (CANCEL_GRACE_S, 6 s) first.
    assert took < 5, f"took {took:.1f} s to stop"
    assert process.returncode != 0
    text = output.decode(errors="replace")
    assert "STEP_RESTARTED" not in text and "Retrying" not in text
    assert not any(p.is_file() for p in lake_dir.rglob("*")) if lake_dir.exists() else True
    assert staged_files() == [] or all("run-" in str(p) for p in staged_files())


def test_sigterm_after_a_week_committed_records_that_week_and_keeps_the_next_as_it_was(
    mirror: MirrorServer, synthetic_week, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A Terminate in the middle of a range: the week already in the lake is recorded as
    materialized (its objects are there), the week being downloaded is not, and nothing retries."""
    import time

    first, second = consecutive_weeks(WEEK, 2)
    synthetic_week(first, readings=1000)
    synthetic_week(second, readings=3000)
    mirror.inject("turnstile_240113.txt", "trickle:0.5")  # 100 bytes every half second: hours
    lake = Lake(url=str(tmp_path / "lake"))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(DAGSTER_HOME=str(home), MTA_SOURCE_URL=mirror.url, MTA_LAKE_URL=lake.url, PYTHONWARNINGS="ignore")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "mta_assets.definitions",
         "--select", "group:mta_turnstile", "--partition-range", f"{first}...{second}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        give_up = time.monotonic() + 120
        while week_key(lake.client, "turnstile", "readings", first) is None:
            assert process.poll() is None and time.monotonic() < give_up, "the first week was never committed"
            time.sleep(0.2)
        time.sleep(0.5)  # the step collects the finished week within its 0.25 s poll
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = output.decode(errors="replace")
    assert process.returncode != 0
    assert "STEP_RESTARTED" not in text and "Retrying" not in text
    assert f"week(s) {second} were not committed" in text and "1 week(s) committed before it are recorded" in text

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        for asset in ("turnstile_csv", "turnstile_csv_gz", "turnstile_readings"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {first}, asset
    assert week_key(lake.client, "turnstile", "readings", second) is None
    assert week_key(lake.client, "turnstile", "csv_gz", second) is None


def test_work_on_a_thread_hands_back_its_result_or_its_error_and_never_holds_the_exit():
    from mta_assets.defs.turnstile.week import on_thread

    seen: list[threading.Thread] = []

    def work(a: int, b: int) -> int:
        seen.append(threading.current_thread())
        return a + b

    assert on_thread("mta-test-sum", work, 2, 3).result(timeout=10) == 5
    assert seen[0].name == "mta-test-sum" and seen[0].daemon  # a terminated run does not wait for it

    def fail() -> None:
        raise OSError(28, "No space left on device")

    future = on_thread("mta-test-fail", fail)
    assert isinstance(future.exception(timeout=10), OSError)
    with pytest.raises(OSError, match="No space left"):
        future.result()


def test_a_week_compressed_beside_its_parse_stores_the_published_bytes_at_level_5(
    mirror: MirrorServer, synthetic_week, local_lake: Lake, tmp_path: Path
):
    """The gzip object is the published file, written at the default level, whatever the parse did meanwhile."""
    from mta_assets.defs.turnstile.week import gzip_file

    synthetic_week(WEEK, readings=3000)
    published_path = Path(mirror.root) / "turnstile_240106.txt"
    published = published_path.read_bytes()
    result = dg.materialize([turnstile_weeks], partition_key=WEEK, resources=resources(mirror.url, local_lake))
    assert result.success
    stored = local_lake.read_bytes(week_object_key(local_lake, "csv_gz", WEEK))
    assert gzip.decompress(stored) == published
    # Byte for byte what level 5 writes on its own (deterministic: no name, mtime 0), not level 6's.
    gzip_file(published_path, tmp_path / "level5.gz", 5)
    gzip_file(published_path, tmp_path / "level6.gz", 6)
    assert stored == (tmp_path / "level5.gz").read_bytes() != (tmp_path / "level6.gz").read_bytes()
    metadata = result.asset_materializations_for_node("turnstile_weeks")
    gz = next(m for m in metadata if m.asset_key == dg.AssetKey("turnstile_csv_gz")).metadata
    assert gz["gzip_level"].value == 5 and gz["bytes_in"].value == len(published)
    table = local_lake.read_bytes(week_object_key(local_lake, "readings", WEEK))
    assert pq.read_metadata(io.BytesIO(table)).num_rows == 3000


def test_a_failed_gzip_names_both_files_and_keeps_its_errno(tmp_path: Path):
    from mta_assets.defs.turnstile.week import gzip_file

    source = tmp_path / "source.txt"
    source.write_bytes(b"C/A,UNIT\n")
    target = tmp_path / "gone" / "turnstile_240106.csv.gz"  # its folder was removed under it
    with pytest.raises(FileNotFoundError) as failed:
        gzip_file(source, target, 5)
    assert str(source) in str(failed.value) and str(target) in str(failed.value)
    assert failed.value.errno == 2
