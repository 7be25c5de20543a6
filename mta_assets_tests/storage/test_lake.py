import gzip
import shutil
import threading

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from mta_assets.defs.resources import Lake
from mta_assets.defs.turnstile.week import gzip_file
from mta_assets.storage.lake import LakeError, file_checksums, object_key
from mta_assets_tests.samples import rebuild_full_week
from mta_assets_tests.storage.gcs_proxy import GcsFaultProxy

WEEK = "2023-12-30"


def gcs_names(lake: Lake) -> list[str]:
    client = storage.Client(project="mta-test", credentials=AnonymousCredentials())
    return sorted(blob.name for blob in client.list_blobs(lake.bucket_name))


def test_object_keys_follow_the_documented_layout():
    assert object_key("csv_gz", WEEK, ".csv.gz") == "turnstile/csv_gz/2024/turnstile_240106.csv.gz"
    assert object_key("raw", "2023-12-23", ".txt", "dev") == "dev/turnstile/raw/2023/turnstile_231230.txt"
    assert Lake(url="gs://mta-lake/dev/").key_for("readings", WEEK, ".parquet") == (
        "dev/turnstile/readings/2024/turnstile_240106.parquet"
    )


def test_a_real_week_round_trips_through_the_lake(any_lake, tmp_path):
    served = rebuild_full_week("240106.csv.gz", tmp_path / "mirror")
    compressed = tmp_path / "turnstile_240106.csv.gz"
    gzip_file(served, compressed, 6)
    crc32c, md5 = file_checksums(compressed)
    key = any_lake.key_for("csv_gz", WEEK, ".csv.gz")

    stored = any_lake.put_file(compressed, key, "application/gzip")

    assert stored.uri == any_lake.uri_for(key)
    assert (stored.crc32c, stored.md5) == (crc32c, md5)
    assert any_lake.stat(key) == stored.__class__(uri=stored.uri, key=key, size=stored.size, crc32c=crc32c, md5=md5)
    assert gzip.decompress(any_lake.read_bytes(key)) == served.read_bytes()
    if any_lake.is_gcs:
        assert stored.chunks == -(-stored.size // any_lake.chunk_size_bytes) > 1
        assert gcs_names(any_lake) == [key]
    else:
        assert [p.name for p in (any_lake.root / key).parent.iterdir()] == ["turnstile_240106.csv.gz"]


def test_gzip_output_is_deterministic(tmp_path):
    source = tmp_path / "turnstile_240106.txt"
    source.write_bytes(b"C/A,UNIT\n" * 1000)
    gzip_file(source, tmp_path / "a.gz", 6)
    shutil.copy(source, tmp_path / "other-name.txt")
    gzip_file(tmp_path / "other-name.txt", tmp_path / "b.gz", 6)
    first = (tmp_path / "a.gz").read_bytes()
    assert first == (tmp_path / "b.gz").read_bytes()
    assert first[4:8] == b"\0\0\0\0"  # mtime 0
    assert first[3] & 0x08 == 0  # no FNAME field


def test_rewriting_a_week_gives_identical_object_bytes(any_lake, tmp_path):
    key = any_lake.key_for("raw", WEEK, ".txt")
    results, versions = [], []
    for attempt in range(2):
        path = tmp_path / f"copy{attempt}.txt"
        path.write_bytes(b"identical content\n" * 50_000)
        results.append(any_lake.put_file(path, key, "text/plain"))
        assert path.exists(), "the caller owns its staging: the source file is left in place"
        versions.append(stored_version(any_lake, key))
    assert results[0] == results[1] == any_lake.stat(key)
    assert (results[0].unchanged, results[1].unchanged) == (False, True)
    assert results[1].chunks == 0 and results[1].metadata()["already_stored"] is True
    assert versions[0] == versions[1], "an unchanged week is not written again"


def stored_version(lake: Lake, key: str):
    """GCS's generation of the object, or the local file's inode and mtime."""
    if lake.is_gcs:
        client = storage.Client(project="mta-test", credentials=AnonymousCredentials())
        return client.bucket(lake.bucket_name).get_blob(key).generation
    info = (lake.root / key).stat()
    return info.st_ino, info.st_mtime_ns


def test_a_changed_week_replaces_the_object(any_lake, tmp_path):
    key = any_lake.key_for("raw", WEEK, ".txt")
    for content in (b"first\n", b"second\n"):
        path = tmp_path / "week.txt"
        path.write_bytes(content)
        stored = any_lake.put_file(path, key, "text/plain")
        assert not stored.unchanged
    assert any_lake.read_bytes(key) == b"second\n"


def test_an_upload_interrupted_between_chunks_keeps_the_previous_object(own_gcs_emulator, tmp_path):
    own_gcs_emulator.create_bucket("mta-lake")
    lake = Lake(url="gs://mta-lake/dev", chunk_size_bytes=256 * 1024, retry_deadline_s=3)
    key = lake.key_for("raw", WEEK, ".txt")
    good = tmp_path / "good.txt"
    good.write_bytes(b"good version\n" * 100_000)
    good_bytes = good.read_bytes()
    previous = lake.put_file(good, key, "text/plain")

    replacement = tmp_path / "new.txt"
    replacement.write_bytes(b"new version!\n" * 100_000)

    def stop_emulator_after_first_chunk(chunk: int, sent: int, total: int) -> None:
        if chunk == 1:
            own_gcs_emulator.stop()

    with pytest.raises(LakeError, match=r"upload gs://mta-lake/dev/turnstile/raw/2024/turnstile_240106.txt: cannot reach GCS"):
        lake.put_file(replacement, key, "text/plain", on_chunk=stop_emulator_after_first_chunk)
    assert replacement.exists(), "a failed upload must not consume the local file"

    own_gcs_emulator.start()
    assert lake.stat(key) == previous
    assert gcs_names(lake) == [key]  # no partial object under any name
    client = storage.Client(project="mta-test", credentials=AnonymousCredentials())
    assert client.bucket("mta-lake").blob(key).download_as_bytes() == good_bytes


def test_a_missing_bucket_is_a_clear_error(gcs_emulator, tmp_path):
    lake = Lake(url="gs://no-such-bucket/dev", retry_deadline_s=3)
    path = tmp_path / "week.txt"
    path.write_text("x\n")
    with pytest.raises(LakeError, match=r"gs://no-such-bucket/dev/.*: bucket 'no-such-bucket' does not exist"):
        lake.put_file(path, lake.key_for("raw", WEEK, ".txt"), "text/plain")
    assert path.exists()


def test_an_unreachable_gcs_is_a_clear_error(gcs_emulator, monkeypatch, tmp_path):
    from mta_assets_tests.fixtures_gcs import free_port

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    lake = Lake(url="gs://mta-lake/dev", retry_deadline_s=2)
    path = tmp_path / "week.txt"
    path.write_text("x\n")
    with pytest.raises(LakeError, match=r"gs://mta-lake/dev/turnstile/raw/2024/turnstile_240106.txt: cannot reach GCS at http://127.0.0.1"):
        lake.put_file(path, lake.key_for("raw", WEEK, ".txt"), "text/plain")


def test_a_chunk_size_that_gcs_refuses_is_reported(gcs_lake, tmp_path):
    lake = gcs_lake.model_copy(update={"chunk_size_bytes": 1000})
    path = tmp_path / "week.txt"
    path.write_text("x\n")
    with pytest.raises(LakeError, match="not a positive multiple of 256 KiB"):
        lake.put_file(path, lake.key_for("raw", WEEK, ".txt"), "text/plain")


def test_local_lake_leaves_no_temporary_file_when_the_write_fails(local_lake, tmp_path):
    key = local_lake.key_for("raw", WEEK, ".txt")
    good = tmp_path / "good.txt"
    good.write_text("good\n")
    local_lake.put_file(good, key, "text/plain")
    missing = tmp_path / "vanished.txt"
    with pytest.raises((LakeError, FileNotFoundError)):
        local_lake.put_file(missing, key, "text/plain")
    folder = (local_lake.root / key).parent
    assert [p.name for p in folder.iterdir()] == ["turnstile_240106.txt"]
    assert (local_lake.root / key).read_text() == "good\n"


def test_fetch_gives_the_local_object_itself_or_a_verified_download(any_lake, tmp_path):
    key = any_lake.key_for("raw", WEEK, ".txt")
    path = tmp_path / "week.txt"
    path.write_bytes(b"abc\n" * 300_000)  # several chunks on GCS
    any_lake.put_file(path, key, "text/plain")

    fetched = any_lake.fetch(key, tmp_path / "fetched")
    assert fetched.read_bytes() == b"abc\n" * 300_000
    if any_lake.is_gcs:
        assert fetched.parent == tmp_path / "fetched" and fetched.name == "turnstile_240106.txt"
        assert [p.name for p in fetched.parent.iterdir()] == ["turnstile_240106.txt"]
    else:
        assert fetched == any_lake.root / key  # no copy on a local lake
    with pytest.raises(LakeError, match=r"turnstile_240107.txt:? .*does not exist") as missing:
        any_lake.fetch(any_lake.key("turnstile", "raw", "2024", "turnstile_240107.txt"), tmp_path / "fetched")
    assert missing.value.permanent
    assert "bucket" not in str(missing.value)  # the bucket is there: the object is what is missing


def test_keys_lists_deletes_and_small_objects(any_lake, tmp_path):
    prefix = "dev/" if any_lake.is_gcs else ""
    assert any_lake.key("quarantine", "2024/x.txt") == f"{prefix}quarantine/2024/x.txt"
    assert any_lake.key_for("raw", "2010-05-01", ".txt", file_name="turnstile_100505.txt") == (
        f"{prefix}turnstile/raw/2010/turnstile_100505.txt"
    )
    with pytest.raises(LakeError, match=r"may not contain"):
        any_lake.key("ridership", "..", "x")
    for name in ("a.txt", "b.txt"):
        path = tmp_path / name
        path.write_text(name)
        any_lake.put_file(path, any_lake.key("quarantine", "2024", name), "text/plain")
    assert any_lake.list_keys("quarantine/") == [any_lake.key("quarantine", "2024", n) for n in ("a.txt", "b.txt")]
    assert any_lake.list_keys("quarantine/2024/a") == [any_lake.key("quarantine", "2024", "a.txt")]
    assert any_lake.list_keys("ridership/") == []
    any_lake.delete(any_lake.key("quarantine", "2024", "a.txt"))
    any_lake.delete(any_lake.key("quarantine", "2024", "a.txt"))  # missing is fine
    assert any_lake.list_keys("quarantine/") == [any_lake.key("quarantine", "2024", "b.txt")]
    assert any_lake.read_bytes(any_lake.key("quarantine", "2024", "b.txt")) == b"b.txt"
    assert any_lake.read_bytes(any_lake.key("quarantine", "2024", "a.txt")) is None


def test_create_if_absent_lets_exactly_one_writer_win_on_a_local_lake(local_lake):
    check_one_writer_wins(local_lake)


def test_create_if_absent_on_gcs_is_a_generation_precondition(gcs_emulator, gcs_lake, monkeypatch):
    # The emulator ignores preconditions; the proxy answers 412 as GCS does, so this checks that
    # the request carries ifGenerationMatch=0 and that a refusal means "someone else holds it".
    with GcsFaultProxy(gcs_emulator.host, mode="precondition") as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        check_one_writer_wins(gcs_lake.model_copy())
        assert any("ifGenerationMatch=0" in path for method, path in proxy.requests if method == "POST")


def check_one_writer_wins(any_lake: Lake) -> None:
    key = any_lake.key("locks", "2023-12-30")
    outcomes: list[bool] = []

    def claim(owner: int) -> None:
        outcomes.append(any_lake.create_if_absent(key, f"run-{owner}".encode()))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, False, True]
    assert any_lake.read_bytes(key) in {f"run-{n}".encode() for n in range(4)}
    assert any_lake.create_if_absent(key, b"late") is False
    any_lake.delete(key)
    assert any_lake.create_if_absent(key, b"after release") is True


def test_custom_metadata_is_stored_on_gcs(gcs_lake, tmp_path):
    key = gcs_lake.key_for("raw", WEEK, ".txt")
    path = tmp_path / "week.txt"
    path.write_bytes(b"abc\n")
    gcs_lake.put_file(path, key, "text/plain", metadata={"source_url": "http://example.test/x", "week": WEEK})
    client = storage.Client(project="mta-test", credentials=AnonymousCredentials())
    assert client.bucket(gcs_lake.bucket_name).get_blob(key).metadata == {"source_url": "http://example.test/x", "week": WEEK}


def test_an_object_deleted_while_it_is_read_from_gcs_says_so_and_not_that_the_bucket_is_missing(gcs_lake, tmp_path):
    from mta_assets.storage.deadline import Deadline

    key = gcs_lake.key("turnstile", "readings", "2024", WEEK, "gen1", "turnstile_240113.parquet")
    path = tmp_path / "object.bin"
    path.write_bytes(b"x" * (3 * gcs_lake.chunk_size_bytes))
    gcs_lake.put_file(path, key, "application/octet-stream")

    class DeletedAfterTheFirstChunk(Deadline):
        # Another run's commit collects the generation while this reader is between chunks.
        def check(self, new_bytes: int = 0) -> None:
            if new_bytes:
                gcs_lake.delete(key)
            super().check(new_bytes)

    with pytest.raises(LakeError) as error:
        gcs_lake.client.store.fetch(key, tmp_path / "fetched", lambda size: DeletedAfterTheFirstChunk(60))
    message = str(error.value)
    assert f"read {gcs_lake.uri_for(key)}: the object was deleted while it was read" in message
    assert "bucket" not in message and error.value.permanent
    assert not any((tmp_path / "fetched").iterdir())  # no partial file left
