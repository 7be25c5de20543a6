"""The loopback mirror: content, caching headers, faults and outages, over real HTTP."""

from __future__ import annotations

import email.utils
import http.client
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from mta_devtools.mirror import MirrorServer

WEEK = "2023-12-30"
NAME = "turnstile_240106.txt"
# Tight enough to fail fast against a server that answers nothing.
TIMEOUT = (2.0, 5.0)


@pytest.fixture
def served(mirror, synthetic_week) -> tuple[MirrorServer, Path]:
    path = synthetic_week(WEEK, readings=3000)
    assert path.name == NAME
    return mirror, path


def test_get_serves_the_file_byte_identical_with_headers(served):
    mirror, path = served
    response = requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    stat = path.stat()
    assert response.headers["Content-Length"] == str(stat.st_size)
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["ETag"] == f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    assert email.utils.parsedate_to_datetime(response.headers["Last-Modified"]).timestamp() == int(stat.st_mtime)
    assert mirror.requests == [("GET", f"/{NAME}")]


def test_any_url_prefix_names_the_file_by_its_last_segment(served):
    mirror, path = served
    url = f"{mirror.url}/developers/data/nyct/turnstile/{NAME}"
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == path.read_bytes()


def test_head_sends_the_headers_without_a_body(served):
    mirror, path = served
    response = requests.head(f"{mirror.url}/{NAME}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(path.stat().st_size)
    assert mirror.requests == [("HEAD", f"/{NAME}")]


def test_conditional_requests_get_304_when_unchanged(served):
    mirror, path = served
    url = f"{mirror.url}/{NAME}"
    first = requests.get(url, timeout=TIMEOUT)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]

    unchanged = requests.get(url, headers={"If-None-Match": etag}, timeout=TIMEOUT)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == etag

    assert requests.get(url, headers={"If-Modified-Since": last_modified}, timeout=TIMEOUT).status_code == 304
    other_tag = requests.get(url, headers={"If-None-Match": '"other"'}, timeout=TIMEOUT)
    assert other_tag.status_code == 200
    assert other_tag.content == path.read_bytes()

    # A rewritten file has a new ETag, so the old one no longer matches.
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    changed = requests.get(url, headers={"If-None-Match": etag}, timeout=TIMEOUT)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_missing_file_is_404_with_an_html_page(mirror):
    response = requests.get(f"{mirror.url}/turnstile_990101.txt", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text and "Not Found" in response.text
    assert requests.head(f"{mirror.url}/turnstile_990101.txt", timeout=TIMEOUT).status_code == 404
    assert requests.get(f"{mirror.url}/", timeout=TIMEOUT).status_code == 404


def test_paths_outside_the_folder_are_refused(mirror, mirror_root):
    secret = mirror_root.parent / "secret.txt"
    secret.write_text("not for the mirror")
    connection = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=5)
    for path in ("/../secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/..", "/.hidden"):
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 404, path
        assert b"not for the mirror" not in body
    connection.close()


def test_503_then_the_file(served):
    mirror, path = served
    mirror.inject(NAME, "503")
    url = f"{mirror.url}/{NAME}"
    failed = requests.get(url, timeout=TIMEOUT)
    assert failed.status_code == 503
    assert "<html>" in failed.text
    assert requests.get(url, timeout=TIMEOUT).content == path.read_bytes()
    assert mirror.pending_faults(NAME) == []


def test_faults_are_consumed_in_order_and_only_for_their_file(served, synthetic_week):
    mirror, _ = served
    other = synthetic_week("2024-01-06", readings=50)
    mirror.inject(NAME, "500", "429")
    assert requests.get(f"{mirror.url}/{other.name}", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT).status_code == 500
    too_many = requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT)
    assert too_many.status_code == 429
    assert too_many.headers["Retry-After"] == "0"
    assert requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT).status_code == 200


def test_html_fault_is_a_200_maintenance_page(served):
    mirror, _ = served
    mirror.inject(NAME, "html")
    response = requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")


def test_truncate_promises_the_full_length_and_sends_half(served):
    mirror, path = served
    size = path.stat().st_size
    mirror.inject(NAME, "truncate", "truncate")
    connection = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=10)
    connection.request("GET", f"/{NAME}")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == str(size)
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == path.read_bytes()[: size // 2]
    connection.close()

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT)


def test_hang_outlasts_the_read_timeout_then_the_file_is_served(served):
    mirror, path = served
    mirror.inject(NAME, "hang:3")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{mirror.url}/{NAME}", timeout=(2.0, 0.5))
    assert requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT).content == path.read_bytes()


def test_reset_drops_the_connection_without_a_response(served):
    mirror, path = served
    mirror.inject(NAME, "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT)
    assert requests.get(f"{mirror.url}/{NAME}", timeout=TIMEOUT).content == path.read_bytes()
    assert [method for method, _ in mirror.requests] == ["GET", "GET"]


def test_unknown_faults_are_rejected(mirror):
    with pytest.raises(ValueError, match="unknown fault"):
        mirror.inject(NAME, "slow")
    with pytest.raises(ValueError, match="seconds"):
        mirror.inject(NAME, "hang:soon")
    assert mirror.pending_faults(NAME) == []


def test_down_refuses_connections_and_up_serves_again_on_the_same_port(served):
    mirror, path = served
    url = f"{mirror.url}/{NAME}"
    with requests.Session() as session:
        assert session.get(url, timeout=TIMEOUT).status_code == 200
        mirror.down()
        assert not mirror.is_up
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(url, timeout=TIMEOUT)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", mirror.port), timeout=2).close()
        mirror.up()
        assert mirror.url in url
        assert session.get(url, timeout=TIMEOUT).content == path.read_bytes()


def test_context_manager_starts_and_stops(tmp_path):
    (tmp_path / NAME).write_bytes(b"C/A,UNIT\n")
    with MirrorServer(tmp_path) as server:
        port = server.port
        assert port > 0
        assert server.url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{server.url}/{NAME}", timeout=TIMEOUT).content == b"C/A,UNIT\n"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(NotADirectoryError, match="does not exist"):
        MirrorServer(tmp_path / "absent").start()


def test_command_line_prints_the_url_and_stops_on_sigterm(mirror_root, synthetic_week):
    path = synthetic_week(WEEK, readings=100)
    process = subprocess.Popen(
        [sys.executable, "-m", "mta_devtools.mirror", str(mirror_root), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],  # the checkout: mta_devtools is not installed
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Serving 1 turnstile file(s) from ")
        variable, _, url = process.stdout.readline().strip().partition("=")
        assert variable == "MTA_SOURCE_URL"
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/{NAME}", timeout=TIMEOUT).content == path.read_bytes()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
