"""Each fault of issue 12 against real servers on 127.0.0.1, with deadlines short enough for a test.

Source faults use the loopback mirror; lake faults use gcp-storage-emulator, stopped or
behind a small proxy that answers 503, stalls or flips a byte. Every test checks the
failure, its message (week, URL or object, cause), that nothing was left behind or
replaced, whether the error is permanent, and that a permanent one was attempted once.
Elapsed times are bounds on a deadline, asserted loosely: these are not speed tests.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from mta_assets.defs.resources import Lake, MTASource
from mta_devtools.mirror import MirrorServer
from mta_assets.settings import SettingError, redact, validate_environment, without_userinfo
from mta_assets.storage.deadline import clear_stop, request_stop
from mta_assets.storage.http import DownloadInterrupted, NotPublished, SourceError, SourceUnavailable
from mta_assets.storage.lake import LakeError
from mta_assets_tests.fixtures_gcs import free_port
from mta_assets_tests.storage.gcs_proxy import GcsFaultProxy

WEEK = "2023-12-30"
NAME = "turnstile_240106.txt"
PASSWORD = "S3cr|et pa55:w@rd"


def fast_source(mirror: MirrorServer, **overrides) -> MTASource:
    settings = dict(
        base_url=mirror.url, retries=3, backoff_factor_s=0.0, connect_timeout_s=1.0,
        read_timeout_s=0.5, deadline_s=3.0, min_bytes_per_s=0,
    )
    return MTASource(**{**settings, **overrides})


def gets(mirror: MirrorServer) -> list[str]:
    return [path for method, path in mirror.requests if method == "GET"]


# -- the source ----------------------------------------------------------------------------


def test_a_source_that_never_answers_fails_at_its_deadline(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK)
    mirror.inject(NAME, *["hang:30"] * 20)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=rf"week {WEEK}: cannot fetch .*{NAME}: no answer within the stall timeout of 0.5 s") as error:
        fast_source(mirror, deadline_s=2.0, retries=10).download(WEEK, tmp_path / "out")
    assert time.monotonic() - started < 2.0 + 0.5 + 3.0  # deadline + one stall timeout, and slack for a busy machine
    assert not error.value.permanent
    assert 2 <= len(gets(mirror)) <= 6, "urllib3 retried within the deadline, then stopped"
    assert not list((tmp_path / "out").iterdir())


def test_a_host_name_that_does_not_resolve_is_named_as_dns(tmp_path):
    # .invalid never resolves (RFC 6761): what the UI's Materialize meets on a machine offline.
    source = MTASource(base_url="http://web.mta.invalid/turnstile", retries=0, deadline_s=5)
    with pytest.raises(SourceUnavailable, match=rf"week {WEEK}: cannot fetch http://web.mta.invalid/turnstile/{NAME}: cannot resolve the host name 'web.mta.invalid' \(DNS\)") as error:
        source.download(WEEK, tmp_path / "out")
    assert not error.value.permanent


def test_a_body_that_stalls_midway_is_named_a_stall(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK, readings=20_000)
    mirror.inject(NAME, "stall:30")
    with pytest.raises(SourceUnavailable, match=rf"week {WEEK}: .*{NAME} stalled: no byte for 0.5 s .*after 65,536 of") as error:
        fast_source(mirror, retries=0).download(WEEK, tmp_path / "out")
    assert not error.value.permanent
    assert not list((tmp_path / "out").iterdir())


def test_a_trickling_source_is_stopped_by_the_throughput_floor(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK, readings=2_000)
    mirror.inject(NAME, "trickle:0.05")  # about 2 KB/s: never silent long enough for the stall timeout
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=rf"week {WEEK}: .*{NAME} too slow: .* below the minimum of 50,000 B/s") as error:
        fast_source(mirror, retries=0, read_timeout_s=1.0, deadline_s=60, min_bytes_per_s=50_000).download(
            WEEK, tmp_path / "out"
        )
    assert time.monotonic() - started < 5, "the floor is checked over each 1 s window, not at the 60 s deadline"
    assert not error.value.permanent
    assert not list((tmp_path / "out").iterdir())


def test_the_total_deadline_ends_a_slow_but_steady_download(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK, readings=2_000)
    mirror.inject(NAME, "trickle:0.05")
    with pytest.raises(SourceUnavailable, match=r"deadline of 1.5 s exceeded"):
        fast_source(mirror, retries=0, read_timeout_s=1.0, deadline_s=1.5).download(WEEK, tmp_path / "out")


def test_a_stop_request_ends_a_download_between_reads_and_is_not_retried(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK, readings=2_000)
    mirror.inject(NAME, "trickle:0.05")
    timer = threading.Timer(0.5, request_stop)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(DownloadInterrupted, match=rf"week {WEEK}: download of .*{NAME} stopped on request") as error:
            fast_source(mirror, retries=0, read_timeout_s=5.0, deadline_s=60).download(WEEK, tmp_path / "out")
    finally:
        timer.cancel()
        clear_stop()
    assert time.monotonic() - started < 3
    assert error.value.permanent, "an interrupted run must not become a step retry"
    assert not list((tmp_path / "out").iterdir())


def test_gzip_content_encoding_is_decoded_and_checked_against_the_compressed_length(mirror, synthetic_week, tmp_path):
    served = synthetic_week(WEEK)
    mirror.inject(NAME, "gzip")
    download = fast_source(mirror).download(WEEK, tmp_path / "out")
    assert download.path.read_bytes() == served.read_bytes()
    assert download.size == served.stat().st_size
    assert download.content_encoding == "gzip"
    assert download.length_stated


def test_an_undeclared_gzip_body_is_refused_by_name(mirror, mirror_root, synthetic_week, tmp_path):
    served = synthetic_week(WEEK)
    served.write_bytes(gzip.compress(served.read_bytes()))
    with pytest.raises(SourceError, match=rf"{NAME} is not a turnstile file: the body is gzip-compressed data") as error:
        fast_source(mirror).download(WEEK, tmp_path / "out")
    assert error.value.permanent
    assert len(gets(mirror)) == 1


def test_redirects_are_followed_and_the_final_url_is_recorded(mirror, synthetic_week, mirror_root, tmp_path):
    served = synthetic_week(WEEK)
    with MirrorServer(mirror_root, host="localhost") as other_host:
        mirror.inject(NAME, f"redirect:{other_host.url}/archive/{NAME}")
        download = fast_source(mirror).download(WEEK, tmp_path / "out")
    assert download.requested_url == f"{mirror.url}/{NAME}"
    assert download.url == f"{other_host.url}/archive/{NAME}"
    assert download.metadata()["url"] == download.url
    assert download.metadata()["requested_url"] == download.requested_url
    assert download.path.read_bytes() == served.read_bytes()


def test_credentials_are_not_sent_to_another_host_on_redirect(mirror, synthetic_week, mirror_root, tmp_path):
    synthetic_week(WEEK)
    mirror.require_auth("mta", PASSWORD)
    with MirrorServer(mirror_root, host="localhost") as other_host:
        other_host.require_auth("mta", PASSWORD)  # would accept them, if they were sent
        mirror.inject(NAME, f"redirect:{other_host.url}/{NAME}")
        with pytest.raises(SourceError, match=rf"{mirror.url}/{NAME} \(redirected to {other_host.url}/{NAME}\) refused access \(HTTP 401\)"):
            fast_source(mirror, user="mta", password=PASSWORD).download(WEEK, tmp_path / "out")


def test_a_redirect_loop_ends_at_the_limit_once(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK)
    mirror.inject(NAME, *["redirect"] * 10)
    with pytest.raises(SourceError, match=rf"week {WEEK}: .*{NAME} redirects more than 3 times \(last to .*/moved/") as error:
        fast_source(mirror, max_redirects=3).download(WEEK, tmp_path / "out")
    assert error.value.permanent
    assert len(gets(mirror)) == 4


def test_a_file_over_the_size_limit_is_refused_before_and_while_downloading(mirror, synthetic_week, tmp_path):
    served = synthetic_week(WEEK, readings=5_000)
    limit = served.stat().st_size // 2
    with pytest.raises(SourceError, match=rf"{NAME} is {served.stat().st_size:,} bytes, more than the limit of {limit:,} \(MTA_MAX_FILE_BYTES") as stated:
        fast_source(mirror, max_file_bytes=limit).download(WEEK, tmp_path / "out")
    mirror.inject(NAME, "nolength")
    with pytest.raises(SourceError, match=rf"{NAME} is larger than the limit of {limit:,} bytes .*download stopped") as streamed:
        fast_source(mirror, max_file_bytes=limit).download(WEEK, tmp_path / "out")
    assert stated.value.permanent and streamed.value.permanent
    assert len(gets(mirror)) == 2, "a permanent error is attempted once"
    assert not list((tmp_path / "out").iterdir())


def test_a_body_without_content_length_is_reported_as_unstated(mirror, synthetic_week, tmp_path):
    served = synthetic_week(WEEK)
    mirror.inject(NAME, "nolength")
    download = fast_source(mirror).download(WEEK, tmp_path / "out")
    assert download.path.read_bytes() == served.read_bytes()
    assert download.length_stated is False
    assert fast_source(mirror).download(WEEK, tmp_path / "again").length_stated is True


def test_404_is_permanent_and_attempted_once(mirror, tmp_path):
    with pytest.raises(NotPublished, match=rf"week {WEEK}: .*{NAME} is not published \(HTTP 404\)") as error:
        fast_source(mirror).download(WEEK, tmp_path / "out")
    assert error.value.permanent
    assert gets(mirror) == [f"/{NAME}"]


def test_a_future_week_and_a_key_that_is_not_a_saturday_fail_before_any_request(mirror, tmp_path):
    with pytest.raises(NotPublished, match=r"week 2099-01-03 is not published yet: turnstile_990110.txt appears on Saturday 2099-01-10") as future:
        fast_source(mirror).download("2099-01-03", tmp_path / "out")
    with pytest.raises(SourceError, match=r"week 2024-01-01: not a Saturday partition key: .*Monday") as monday:
        fast_source(mirror).download("2024-01-01", tmp_path / "out")
    assert future.value.permanent and monday.value.permanent
    assert mirror.requests == []


def test_a_retry_does_not_download_again_what_is_staged_whole(mirror, synthetic_week, tmp_path):
    served = synthetic_week(WEEK)
    first = fast_source(mirror).download(WEEK, tmp_path / "out")
    again = fast_source(mirror).download(WEEK, tmp_path / "out")
    assert (first.reused, again.reused) == (False, True)
    assert again.path == first.path and again.sha256 == first.sha256
    assert again.path.read_bytes() == served.read_bytes()
    served.write_bytes(served.read_bytes() + b"")  # same bytes, new mtime: a re-published file
    changed = fast_source(mirror).download(WEEK, tmp_path / "out")
    assert changed.reused is False


# -- credentials in the source URL -------------------------------------------------------------


def test_credentials_are_sent_as_basic_auth_and_never_shown(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK)
    mirror.require_auth("mta", PASSWORD)
    source = fast_source(mirror, user="mta", password=PASSWORD)
    download = source.download(WEEK, tmp_path / "out")
    shown = json.dumps({k: str(v) for k, v in download.metadata().items()}) + download.url + download.requested_url
    assert download.url == f"{mirror.url}/{NAME}"
    assert "pa55" not in shown and "mta:" not in shown
    assert source.probe(WEEK).url == f"{mirror.url}/{NAME}"
    assert PASSWORD not in repr(source) and PASSWORD not in repr(source.client)


def test_a_source_url_with_a_password_is_refused_without_showing_it(mirror, tmp_path):
    url = mirror.url.replace("http://", f"http://mta:{urllib.parse.quote(PASSWORD, safe='')}@")
    with pytest.raises(SettingError, match=r"set MTA_SOURCE_USER and MTA_SOURCE_PASSWORD instead") as error:
        fast_source(mirror, base_url=url).download(WEEK, tmp_path / "out")
    assert "pa55" not in str(error.value) and "S3cr" not in str(error.value)
    assert gets(mirror) == []


def test_a_refused_password_is_permanent_and_not_echoed(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK)
    mirror.require_auth("mta", PASSWORD)
    with pytest.raises(SourceError, match=rf"week {WEEK}: {mirror.url}/{NAME} refused access \(HTTP 401\); check MTA_SOURCE_USER") as error:
        fast_source(mirror, user="mta", password="wrong-Passw0rd").download(WEEK, tmp_path / "out")
    assert error.value.permanent
    assert "wrong-Passw0rd" not in str(error.value)
    assert len(gets(mirror)) == 1


def test_redact_removes_userinfo_and_encoded_secrets(monkeypatch):
    hook = "https://hooks.example.test/services/TOKEN|PIPE|SECRET"
    monkeypatch.setenv("MTA_ALERT_WEBHOOK_URL", hook)
    monkeypatch.setenv("MTA_ALERT_SMTP_PASSWORD", "smtp pass/word")
    monkeypatch.setenv("MTA_SOURCE_URL", "http://user:p%40ss%7Cw0rd@mirror.test/turnstile")
    texts = [
        "GET http://user:p%40ss%7Cw0rd@mirror.test/turnstile/x.txt failed",
        "retrying https://hooks.example.test/services/TOKEN%7CPIPE%7CSECRET (3 left)",
        "path /services/TOKEN%7cPIPE%7cSECRET",
        "login with smtp%20pass%2Fword refused",
        "the raw password p@ss|w0rd appeared",
        "nested ?next=http%3A%2F%2Fbob%3Ahunter22%40example.test%2F",
        "ftp://someone:else@files.test/x",
    ]
    cleaned = [redact(text) for text in texts]
    for secret in ("p%40ss", "p@ss|w0rd", "TOKEN", "SECRET", "smtp%20pass", "hunter22", "someone:else"):
        assert not any(secret.lower() in text.lower() for text in cleaned), (secret, cleaned)
    assert cleaned[0] == "GET http://[redacted]@mirror.test/turnstile/x.txt failed"
    assert without_userinfo("http://user:pw@mirror.test:81/t") == "http://mirror.test:81/t"


# -- the lake ----------------------------------------------------------------------------------


def week_file(tmp_path, content: bytes = b"new version\n" * 100_000):
    path = tmp_path / "week.txt"
    path.write_bytes(content)
    return path


@pytest.fixture
def stored_lake(gcs_emulator, gcs_bucket, tmp_path):
    """A bucket already holding the week's good object: (lake settings, key, good bytes)."""
    lake = Lake(url=f"gs://{gcs_bucket}/dev", chunk_size_bytes=256 * 1024, retry_deadline_s=2, request_timeout_s=1)
    key = lake.key_for("raw", WEEK, ".txt")
    good = tmp_path / "good.txt"
    good.write_bytes(b"good version\n" * 100_000)
    lake.put_file(good, key, "text/plain")
    return lake, key, good.read_bytes()


def emulator_bytes(bucket: str, key: str, emulator) -> bytes:
    """The object as the emulator itself holds it (not through the proxy)."""
    client = storage.Client(
        project="mta-test", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator.host}
    )
    return client.bucket(bucket).blob(key).download_as_bytes()


def test_a_stopped_gcs_fails_within_its_deadline(gcs_emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    lake = Lake(url="gs://mta-lake/dev", retry_deadline_s=2, request_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(LakeError, match=r"gs://mta-lake/dev/turnstile/raw/2024/turnstile_240106.txt: cannot reach GCS at http://127.0.0.1:\d+ within the retry deadline of 2 s") as error:
        lake.put_file(week_file(tmp_path), lake.key_for("raw", WEEK, ".txt"), "text/plain")
    assert time.monotonic() - started < 2 + 1 + 3
    assert not error.value.permanent


@pytest.mark.parametrize("mode", ["503", "stall"])
def test_gcs_answering_503_or_stalling_fails_within_its_deadline_and_keeps_the_object(stored_lake, gcs_emulator, monkeypatch, tmp_path, mode):
    lake, key, good = stored_lake
    with GcsFaultProxy(gcs_emulator.host, mode=mode) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        started = time.monotonic()
        with pytest.raises(LakeError, match=rf"gs://{lake.bucket_name}/{key}: " + ("GCS at .* answered HTTP 503" if mode == "503" else "cannot reach GCS")) as error:
            lake.model_copy().put_file(week_file(tmp_path), key, "text/plain")
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 1 + 4, f"{elapsed:.1f} s"
    assert not error.value.permanent
    assert emulator_bytes(lake.bucket_name, key, gcs_emulator) == good


def test_a_byte_flipped_in_an_upload_chunk_is_named_a_checksum_mismatch(stored_lake, gcs_emulator, monkeypatch, tmp_path):
    lake, key, good = stored_lake
    with GcsFaultProxy(gcs_emulator.host, mode="flip") as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        with pytest.raises(LakeError, match=rf"upload gs://{lake.bucket_name}/{key}: checksum mismatch: GCS refused") as error:
            lake.model_copy().put_file(week_file(tmp_path), key, "text/plain")
    assert not error.value.permanent, "a byte flipped in transit may not flip again"
    assert emulator_bytes(lake.bucket_name, key, gcs_emulator) == good


def test_a_missing_bucket_is_permanent_and_found_before_any_download(gcs_emulator):
    lake = Lake(url="gs://no-such-bucket-x1/dev", retry_deadline_s=2, request_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(LakeError, match=r"bucket 'no-such-bucket-x1' does not exist") as error:
        lake.check()
    assert error.value.permanent
    assert time.monotonic() - started < 5


def test_a_refused_token_is_named_as_such_and_permanent(monkeypatch, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    refused: list[str] = []

    class TokenEndpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            refused.append(self.path)
            body = b'{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token_uri = f"http://127.0.0.1:{server.server_address[1]}/token"
    key = {
        "type": "service_account", "project_id": "mta-test", "private_key_id": "0" * 40,
        "private_key": key_pem.decode(), "client_email": "fake@mta-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri,
    }
    lake = Lake(
        url="gs://mta-lake/dev", gcp_credentials=base64.b64encode(json.dumps(key).encode()).decode(),
        retry_deadline_s=2, request_timeout_s=1,
    )
    try:
        with pytest.raises(LakeError, match=rf"gs://mta-lake/dev/.*: the token endpoint {token_uri} refused the credentials") as error:
            lake.put_file(week_file(tmp_path), lake.key_for("raw", WEEK, ".txt"), "text/plain")
    finally:
        server.shutdown()
        server.server_close()
    assert error.value.permanent
    assert refused, "the token endpoint was asked"
    assert key_pem.decode().splitlines()[1] not in str(error.value)


# -- settings checked up front -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MTA_LAKE_URL", "gs://", r"MTA_LAKE_URL='gs://' names no bucket: use gs://BUCKET\[/PREFIX\]"),
        ("MTA_LAKE_URL", "gs://bucket/../x", r"MTA_LAKE_URL='gs://bucket/../x': the prefix may not contain '..'"),
        ("MTA_LAKE_URL", "gs://Bad_Bucket!/x", r"MTA_LAKE_URL=.*is not a bucket name"),
        ("MTA_LAKE_URL", "s3://bucket/x", r"MTA_LAKE_URL=.*only gs://BUCKET\[/PREFIX\] or a local folder"),
        ("MTA_UPLOAD_CHUNK_BYTES", "1000000", r"MTA_UPLOAD_CHUNK_BYTES=1000000: chunk size is not a positive multiple of 256 KiB"),
        ("MTA_UPLOAD_CHUNK_BYTES", "8M", r"MTA_UPLOAD_CHUNK_BYTES='8M' is not a whole number"),
        ("MTA_SOURCE_URL", "web.mta.info/turnstile", r"MTA_SOURCE_URL='web.mta.info/turnstile' is not an http\(s\) URL: use http\(s\)://HOST"),
        ("MTA_SOURCE_DEADLINE_S", "soon", r"MTA_SOURCE_DEADLINE_S='soon' is not a number \(allowed: >= 0.1\)"),
        ("MTA_LAKE_TIMEOUT_S", "0", r"MTA_LAKE_TIMEOUT_S=0 is outside >= 0.1"),
        ("MTA_ALERT_WEBHOOK_URL", "hooks.slack.com/x", r"MTA_ALERT_WEBHOOK_URL is not an http\(s\) URL \(value not shown"),
        ("MTA_MAX_FILE_BYTES", "2e8", r"MTA_MAX_FILE_BYTES='2e8' is not a whole number"),
        ("MTA_SOURCE_URL", "http://host:port/x", r"MTA_SOURCE_URL: the URL has an invalid port"),
    ],
)
def test_a_bad_setting_stops_the_code_location_naming_the_variable(monkeypatch, name, value, message):
    from mta_assets.defs.resources import build_resources

    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=message):
        validate_environment()
    with pytest.raises(SettingError, match=message):
        build_resources()


def test_an_unusable_staging_folder_and_an_unwritable_lake_are_named(monkeypatch, tmp_path):
    from mta_assets.settings import staging_root

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MTA_STAGING_DIR", str(blocker / "staging"))
    with pytest.raises(SettingError, match=r"MTA_STAGING_DIR='.*a-file/staging' is not a writable folder"):
        staging_root()
    monkeypatch.setenv("MTA_STAGING_DIR", str(blocker))
    with pytest.raises(SettingError, match=r"MTA_STAGING_DIR=.*is a file, not a folder"):
        validate_environment()
    lake = Lake(url=str(blocker / "lake"))
    with pytest.raises(LakeError, match=r"local lake .*a-file/lake: MTA_LAKE_URL='.*' is not a writable folder") as error:
        lake.check()
    assert error.value.permanent
