"""A week committed as a unit: readers follow its manifest, failures leave the previous week whole."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from mta_assets.defs.resources import Lake
from mta_assets.storage.commit import Source, SourceChanged, commit_week, current_week, manifest_key, week_key
from mta_assets.storage.lake import LakeError
from mta_assets.storage.locks import LeaseLost, WeekLocked, lock_key, week_lock
from mta_assets_tests.storage.gcs_proxy import GcsFaultProxy

WEEK = "2023-12-30"
GZ, TABLE = "turnstile_240106.csv.gz", "turnstile_240106.parquet"
REPO = Path(__file__).resolve().parents[2]


def week_files(folder: Path, version: str) -> dict[str, tuple[Path, str, str]]:
    """A gzip object and a table of one download, told apart by ``version``."""
    folder.mkdir(parents=True, exist_ok=True)
    gz, table = folder / GZ, folder / TABLE
    gz.write_bytes(f"gzip of download {version}".encode())
    table.write_bytes(f"table of download {version}".encode())
    return {"csv_gz": (gz, GZ, "application/gzip"), "readings": (table, TABLE, "application/vnd.apache.parquet")}


def commit(lake: Lake, files: dict, owner: str = "run A", wait_s: float = 5) -> object:
    return commit_week(lake, "turnstile", WEEK, files, owner=owner, wait_s=wait_s, metadata={"run_id": owner})


def read_week(lake: Lake) -> dict[str, bytes]:
    """What a reader sees of the week: each dataset's current bytes."""
    return {dataset: lake.read_bytes(week_key(lake, "turnstile", dataset, WEEK)) for dataset in ("csv_gz", "readings")}


def test_a_week_committed_twice_switches_all_its_objects_at_once(any_lake: Lake, tmp_path: Path):
    first = commit(any_lake, week_files(tmp_path / "a", "A"))
    second = commit(any_lake, week_files(tmp_path / "b", "B"), owner="run B")

    assert read_week(any_lake) == {"csv_gz": b"gzip of download B", "readings": b"table of download B"}
    manifest = current_week(any_lake, "turnstile", WEEK)
    assert manifest == second and manifest.generation != first.generation
    assert {entry.generation for entry in manifest.datasets.values()} == {second.generation}
    assert all(any_lake.stat(entry.key) is not None for entry in manifest.datasets.values())
    assert manifest.metadata == {"run_id": "run B"} and manifest.owner == "run B"
    # The generation just replaced stays for readers in flight; the next commit removes it.
    assert set(manifest.replaced.values()) == {entry.key for entry in first.datasets.values()}
    third = commit(any_lake, week_files(tmp_path / "c", "C"), owner="run C")
    kept = sorted(any_lake.list_keys("turnstile/csv_gz/") + any_lake.list_keys("turnstile/readings/"))
    assert kept == sorted([e.key for e in third.datasets.values()] + [e.key for e in second.datasets.values()])


def test_the_same_bytes_committed_again_change_nothing(any_lake: Lake, tmp_path: Path):
    commit(any_lake, week_files(tmp_path / "a", "A"))
    key = manifest_key(any_lake, "turnstile", WEEK)
    before = any_lake.read_bytes(key), sorted(any_lake.list_keys("turnstile/"))

    again = commit(any_lake, week_files(tmp_path / "b", "A"), owner="run B")

    assert again.unchanged and again.owner == "run A"
    assert (any_lake.read_bytes(key), sorted(any_lake.list_keys("turnstile/"))) == before


def test_a_commit_carries_forward_only_objects_of_its_own_download(local_lake: Lake, tmp_path: Path):
    files = week_files(tmp_path / "a", "A")
    raw = tmp_path / "a" / "turnstile_240106.txt"
    raw.write_bytes(b"text of download A")
    first = commit_week(
        local_lake, "turnstile", WEEK, {**files, "raw": (raw, raw.name, "text/plain")}, owner="run A", wait_s=5,
        source=Source("a" * 64),
    )
    assert first.metadata == {"source_sha256": "a" * 64}
    only_gz = {"csv_gz": week_files(tmp_path / "b", "B")["csv_gz"]}

    with pytest.raises(SourceChanged) as refused:
        commit_week(local_lake, "turnstile", WEEK, only_gz, owner="run B", wait_s=5, source=Source("b" * 64))

    assert str(refused.value).startswith(f"week {WEEK}: csv_gz from a download with sha256 bbbbbbbbbbbb would be ")
    assert "beside raw, readings from another download (sha256 aaaaaaaaaaaa" in str(refused.value)
    assert current_week(local_lake, "turnstile", WEEK) == first
    # Rebuilt from the week's own gzip object: the same download, whatever the checksum says.
    table = {"readings": week_files(tmp_path / "c", "C")["readings"]}
    rebuilt = commit_week(
        local_lake, "turnstile", WEEK, table, owner="run C", wait_s=5,
        source=Source("", built_from=first.datasets["csv_gz"].key),
    )
    assert read_week(local_lake) == {"csv_gz": b"gzip of download A", "readings": b"table of download C"}
    # A new download of both: the raw text of the earlier one leaves the week rather than stopping it.
    both = commit_week(
        local_lake, "turnstile", WEEK, week_files(tmp_path / "d", "D"), owner="run D", wait_s=5,
        source=Source("d" * 64, droppable=frozenset({"raw"})),
    )
    assert set(both.datasets) == {"csv_gz", "readings"} and both.replaced["raw"] == rebuilt.datasets["raw"].key
    assert read_week(local_lake) == {"csv_gz": b"gzip of download D", "readings": b"table of download D"}


def test_a_week_from_before_manifests_is_read_and_migrated(local_lake: Lake, tmp_path: Path):
    legacy = {}
    for dataset, (path, name, content_type) in week_files(tmp_path / "old", "old").items():
        legacy[dataset] = local_lake.put_file(path, local_lake.key_for(dataset, WEEK, "", file_name=name), content_type).key
    assert legacy["readings"] == "turnstile/readings/2024/turnstile_240106.parquet"
    assert {d: week_key(local_lake, "turnstile", d, WEEK) for d in legacy} == legacy

    first = commit(local_lake, week_files(tmp_path / "a", "A"))
    assert first.replaced == legacy  # kept for readers in flight
    assert read_week(local_lake) == {"csv_gz": b"gzip of download A", "readings": b"table of download A"}
    commit(local_lake, week_files(tmp_path / "b", "B"))
    assert all(local_lake.stat(key) is None for key in legacy.values())


def test_a_full_disk_between_the_objects_keeps_the_previous_week_whole(local_lake: Lake, tmp_path: Path):
    """The table's folder cannot be written (a file stands where it should be created): the
    gzip object of the new download is uploaded, the table is not, and readers still get
    the previous week; the next run commits the week."""
    legacy = {}
    for dataset, (path, name, content_type) in week_files(tmp_path / "old", "old").items():
        legacy[dataset] = local_lake.put_file(path, local_lake.key_for(dataset, WEEK, "", file_name=name), content_type).key
    blocker = local_lake.root / "turnstile" / "readings" / WEEK[:4]
    blocker.write_bytes(b"")  # mkdir of the table's generation folder fails here

    with pytest.raises(LakeError, match="turnstile/readings/2023"):
        commit(local_lake, week_files(tmp_path / "a", "A"))

    assert current_week(local_lake, "turnstile", WEEK) is None
    assert read_week(local_lake) == {"csv_gz": b"gzip of download old", "readings": b"table of download old"}
    blocker.unlink()
    commit(local_lake, week_files(tmp_path / "b", "B"), owner="run B")
    assert read_week(local_lake) == {"csv_gz": b"gzip of download B", "readings": b"table of download B"}
    # The stray gzip upload of the failed run is gone: nothing points at it.
    assert len(local_lake.list_keys(f"turnstile/csv_gz/{WEEK[:4]}/")) == 1


def test_gcs_answering_insufficient_storage_for_the_table_keeps_the_previous_week(
    gcs_emulator, gcs_lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    commit(gcs_lake, week_files(tmp_path / "a", "A"))
    manifest_before = gcs_lake.read_bytes(manifest_key(gcs_lake, "turnstile", WEEK))
    with GcsFaultProxy(gcs_emulator.host, mode="full", full_match="/readings/") as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        with pytest.raises(LakeError, match="readings"):
            commit(gcs_lake.model_copy(), week_files(tmp_path / "b", "B"), owner="run B")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.host)
    lake = gcs_lake.model_copy()
    assert lake.read_bytes(manifest_key(lake, "turnstile", WEEK)) == manifest_before
    assert read_week(lake) == {"csv_gz": b"gzip of download A", "readings": b"table of download A"}
    assert len(lake.list_keys("turnstile/csv_gz/")) == 2  # the new gzip object went up, unseen
    commit(lake, week_files(tmp_path / "c", "C"), owner="run C")
    assert read_week(lake) == {"csv_gz": b"gzip of download C", "readings": b"table of download C"}


def kill_a_commit_in_a_child(lake: Lake, files: dict, marker: Path, *flags: str) -> None:
    """Commit ``files`` in a child process and kill it with SIGKILL where it pauses (``commit_in_child``)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "mta_assets_tests.storage.commit_in_child", lake.url, WEEK, str(marker), *flags,
         *(f"{dataset}={path}" for dataset, (path, _, _) in files.items())],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the child never uploaded"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)


def test_a_run_killed_between_the_objects_leaves_the_previous_week_and_no_lock(local_lake: Lake, tmp_path: Path):
    commit(local_lake, week_files(tmp_path / "a", "A"))
    kill_a_commit_in_a_child(local_lake, week_files(tmp_path / "b", "B"), tmp_path / "first-upload-done")

    assert read_week(local_lake) == {"csv_gz": b"gzip of download A", "readings": b"table of download A"}
    assert local_lake.read_bytes(lock_key(local_lake, WEEK)) is not None  # the dead run's lease
    started = time.monotonic()
    commit(local_lake, week_files(tmp_path / "c", "C"), owner="run C", wait_s=5)
    assert time.monotonic() - started < 5
    assert read_week(local_lake) == {"csv_gz": b"gzip of download C", "readings": b"table of download C"}


def test_a_run_killed_inside_an_upload_leaves_nothing_after_the_next_commits(local_lake: Lake, tmp_path: Path):
    """A kill -9 while a local lake's file is written leaves its partial file (never listed
    as an object): the next commit deletes it, and no commit leaves an emptied folder."""
    commit(local_lake, week_files(tmp_path / "a", "A"))
    kill_a_commit_in_a_child(local_lake, week_files(tmp_path / "b", "B"), tmp_path / "upload-started", "--inside")
    week_folders = {name: local_lake.root / "turnstile" / dataset / WEEK[:4] / WEEK
                    for dataset, name in (("csv_gz", GZ), ("readings", TABLE))}
    assert len(list(week_folders[GZ].glob(f"*/.{GZ}.*.part"))) == 1  # the killed run's gzip object, half written

    commit(local_lake, week_files(tmp_path / "c", "C"), owner="run C")
    last = commit(local_lake, week_files(tmp_path / "d", "D"), owner="run D")

    assert read_week(local_lake) == {"csv_gz": b"gzip of download D", "readings": b"table of download D"}
    kept = {last.generation, *(key.split("/")[-2] for key in last.replaced.values())}  # D's, and C's for readers
    for name, folder in week_folders.items():
        assert {path.name: [file.name for file in path.iterdir()] for path in folder.iterdir()} == {
            generation: [name] for generation in kept
        }


def other_hosts_lock(lake: Lake, expires_in: float) -> None:
    body = {"owner": "run X", "host": "another-pod", "pid": 1, "since": time.time() - 60,
            "expires": time.time() + expires_in}
    assert lake.replace_if(lock_key(lake, WEEK), json.dumps(body).encode(), None) is not None


def test_a_lock_left_by_a_crashed_run_on_another_host_is_taken_when_its_lease_ends(any_lake: Lake, tmp_path: Path):
    other_hosts_lock(any_lake, expires_in=-1)  # its holder stopped renewing a while ago
    started = time.monotonic()
    commit(any_lake, week_files(tmp_path / "a", "A"), wait_s=5)
    assert time.monotonic() - started < 5

    other_hosts_lock(any_lake, expires_in=1.5)  # crashed just now: blocks until its lease ends
    started = time.monotonic()
    commit(any_lake, week_files(tmp_path / "b", "B"), owner="run B", wait_s=10)
    assert 1.0 < time.monotonic() - started < 10
    assert any_lake.read_bytes(lock_key(any_lake, WEEK)) is None


def test_a_live_holder_renews_its_lease_and_is_waited_for(local_lake: Lake):
    held, released = threading.Event(), threading.Event()

    def hold() -> None:
        # Renewed every 0.5 s: run B's wait spans three leases, so B would take a lease that
        # was not renewed, and a renewal late by up to 1 s (a loaded machine) still holds.
        with week_lock(local_lake, WEEK, owner="run A", lease_s=1.5):
            held.set()
            released.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with pytest.raises(WeekLocked) as locked:
            with week_lock(local_lake, WEEK, owner="run B", wait_s=4.5, lease_s=1.5, poll_s=0.05):
                raise AssertionError("two holders of one week's lock")
        message = str(locked.value)
        assert f"week {WEEK}" in message and "run A" in message and socket.gethostname() in message
        assert lock_key(local_lake, WEEK) in message
    finally:
        released.set()
        holder.join()


def test_a_holder_that_lost_its_lease_does_not_commit(local_lake: Lake, tmp_path: Path):
    key = lock_key(local_lake, WEEK)
    with week_lock(local_lake, WEEK, owner="run A", lease_s=3) as lease:
        # Another run takes the lock over (as if run A had been paused past its lease).
        _, token = local_lake.read_versioned(key)
        assert local_lake.replace_if(key, b'{"owner": "run B", "expires": 1e12}', token) is not None
        # The next renewal (due after 1 s, later on a busy machine) finds the lock taken.
        give_up = time.monotonic() + 15
        with pytest.raises(LeaseLost, match=f"week {WEEK}"):
            while time.monotonic() < give_up:
                lease.check()
                time.sleep(0.1)
    assert local_lake.read_bytes(key) == b'{"owner": "run B", "expires": 1e12}'  # not released by run A


def test_a_new_generation_is_uploaded_without_asking_for_it_first(gcs_emulator, gcs_lake: Lake, tmp_path: Path, monkeypatch):
    """Its keys were never written: a lookup before each upload would only cost a request
    (on GCS, a round trip on the commit's path). An unchanged week still costs lookups, no upload."""
    with GcsFaultProxy(gcs_emulator.host, mode="forward") as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        lake = gcs_lake.model_copy()
        manifest = commit(lake, week_files(tmp_path / "a", "A"))
        new_keys = [urllib.parse.quote(entry.key, safe="") for entry in manifest.datasets.values()]
        for key in new_keys:
            touching = [(method, path) for method, path in proxy.requests if key in path or key in urllib.parse.unquote(path)]
            assert touching and touching[0][0] in ("POST", "PUT"), touching  # the upload comes first
        proxy.requests.clear()
        again = commit(lake, week_files(tmp_path / "b", "A"))
        assert again.unchanged and again.generation == manifest.generation
        # The lease is its only upload (a small one, multipart); no object goes up again.
        assert not [path for method, path in proxy.requests if "uploadType=resumable" in path]
    assert read_week(gcs_lake.model_copy()) == {"csv_gz": b"gzip of download A", "readings": b"table of download A"}
