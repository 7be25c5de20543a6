import hashlib
import shutil
import threading
import time

import pytest

from mta_assets.defs.resources import MTASource
from mta_assets.storage.deadline import Deadline
from mta_assets.storage.errors import is_transient
from mta_assets.storage.http import (
    DownloadInterrupted,
    NotPublished,
    SourceError,
    SourceUnavailable,
    retrying_session,
)
from mta_assets_tests.samples import rebuild_full_week

WEEK = "2023-12-30"
NAME = "turnstile_240106.txt"


def source_for(mirror, **overrides) -> MTASource:
    settings = dict(base_url=mirror.url, retries=2, backoff_factor_s=0.0, read_timeout_s=2.0, connect_timeout_s=2.0)
    return MTASource(**{**settings, **overrides})


def test_real_week_is_stored_byte_identical_with_its_metadata(mirror, mirror_root, tmp_path):
    served = rebuild_full_week("240106.csv.gz", mirror_root)
    download = source_for(mirror).download(WEEK, tmp_path / "out")

    assert download.path.name == NAME
    assert download.path.read_bytes() == served.read_bytes()
    assert download.size == served.stat().st_size
    assert download.sha256 == hashlib.sha256(served.read_bytes()).hexdigest()
    assert download.lines == 250_816 + 1  # readings plus the header
    assert download.layout == "eleven_column"
    assert download.url == f"{mirror.url}/{NAME}"
    assert download.etag


def test_a_503_then_200_is_retried_and_succeeds(mirror, synthetic_week, tmp_path):
    served = synthetic_week(WEEK)
    mirror.inject(NAME, "503", "429")
    download = source_for(mirror).download(WEEK, tmp_path / "out")
    assert download.path.read_bytes() == served.read_bytes()
    assert [r for r in mirror.requests if r[0] == "GET"] == [("GET", f"/{NAME}")] * 3


def test_persistent_5xx_is_reported_as_unavailable(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK)
    mirror.inject(NAME, "503", "503", "503")
    with pytest.raises(SourceUnavailable, match=rf"week {WEEK}: .*{NAME} answered HTTP 503 after 2 retries"):
        source_for(mirror).download(WEEK, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_a_body_cut_short_fails_and_leaves_nothing(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK, readings=20_000)
    mirror.inject(NAME, "truncate")
    with pytest.raises(SourceError, match=rf"week {WEEK}: .*{NAME} body cut short"):
        source_for(mirror, retries=0).download(WEEK, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_an_html_page_served_with_200_is_refused(mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK)
    mirror.inject(NAME, "html")
    with pytest.raises(SourceError, match=rf"week {WEEK}: .*{NAME} is not a turnstile file: .*HTML"):
        source_for(mirror).download(WEEK, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_an_unknown_header_is_refused(mirror, mirror_root, tmp_path):
    (mirror_root / NAME).write_text("STATION,DAY,COUNT\nTIMES SQ,2023-12-30,5\n")
    with pytest.raises(SourceError, match=r"not a turnstile file: unknown row layout"):
        source_for(mirror).download(WEEK, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_404_says_not_published(mirror, tmp_path):
    with pytest.raises(NotPublished, match=rf"week {WEEK}: .*{NAME} is not published \(HTTP 404\)"):
        source_for(mirror).download(WEEK, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_unreachable_source_is_reported_as_unavailable(mirror, tmp_path):
    mirror.down()
    with pytest.raises(SourceUnavailable, match=rf"week {WEEK}: cannot fetch .*{NAME}"):
        source_for(mirror, retries=1).download(WEEK, tmp_path / "out")


def test_2010_wednesday_file_is_found_for_the_first_week(mirror, synthetic_week, mirror_root, tmp_path):
    # MTA's first file was named for Wednesday 2010-05-05; it is the file of the first week, 2010-04-24.
    saturday_named = synthetic_week("2010-04-24", readings=500)
    shutil.move(saturday_named, mirror_root / "turnstile_100505.txt")
    download = source_for(mirror).download("2010-04-24", tmp_path / "out")
    assert download.path.name == "turnstile_100505.txt"
    assert download.layout == "wide"


def test_probe_reports_validators_and_404(mirror, mirror_root, synthetic_week):
    synthetic_week(WEEK)
    remote = source_for(mirror).probe(WEEK)
    assert remote is not None
    assert remote.url == f"{mirror.url}/{NAME}"
    assert remote.size == (mirror_root / NAME).stat().st_size
    assert remote.validator == remote.etag
    assert source_for(mirror).probe("2024-01-06") is None


def test_retrying_session_retries_5xx_then_answers_and_counts_the_retries(mirror, synthetic_week):
    synthetic_week(WEEK)
    mirror.inject(NAME, "503", "429")
    with retrying_session(retries=3, backoff_factor_s=0.0, connect_timeout_s=1.0, read_timeout_s=1.0) as session:
        response = session.request("HEAD", f"{mirror.url}/{NAME}", Deadline(5))
    assert (response.status_code, response.retries_made) == (200, 2)
    assert [method for method, _ in mirror.requests] == ["HEAD"] * 3


def test_a_download_s_own_stop_ends_it_during_a_backoff_as_interrupted(mirror, synthetic_week, tmp_path):
    """The step's cancel (its Terminate) ends a download waiting out a 503's backoff, without another request."""
    synthetic_week(WEEK)
    mirror.inject(NAME, *["503"] * 10)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DownloadInterrupted, match=f"week {WEEK}: GET .*{NAME} stopped on request") as error:
        source_for(mirror, retries=10, backoff_factor_s=2.0, deadline_s=60.0).download(WEEK, tmp_path / "out", stop=stop)
    # The first backoff alone is 2 s or more (urllib3: 2 s x 2^n); the stop came at 0.5 s.
    assert time.monotonic() - started < 2.0
    assert error.value.permanent and not is_transient(error.value)
    assert len([r for r in mirror.requests if r[0] == "GET"]) <= 2
    assert not list((tmp_path / "out").iterdir())


def test_a_backoff_longer_than_the_deadline_is_not_slept(mirror, synthetic_week, tmp_path):
    # urllib3's Retry would wait 2, 4, 8 ... s between the 503s; the 3 s deadline ends it first.
    synthetic_week(WEEK)
    mirror.inject(NAME, *["503"] * 10)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=rf"{NAME} answered HTTP 503 after \d retries in \d s"):
        source_for(mirror, retries=10, backoff_factor_s=1.0, deadline_s=3.0).download(WEEK, tmp_path / "out")
    assert time.monotonic() - started < 3.0 + 3.0  # without the deadline: 2 + 4 + 8 ... s of backoff
    assert 2 <= len([r for r in mirror.requests if r[0] == "GET"]) <= 3


def test_transient_or_permanent_is_decided_by_the_exception_type():
    import smtplib

    import requests
    from google.api_core import exceptions as google_errors

    from mta_assets.storage.lake import LakeError
    from mta_assets.storage.locks import WeekLocked

    transient = [
        SourceUnavailable("week x: 503"), LakeError("gs://b/k: 503"), WeekLocked("week x: held"),
        requests.ConnectTimeout(), requests.ReadTimeout(), ConnectionResetError(), TimeoutError(),
        google_errors.ServiceUnavailable("down"), google_errors.TooManyRequests("slow down"),
        smtplib.SMTPServerDisconnected(),
    ]
    permanent = [
        NotPublished("week x: 404"), SourceError("week x: not a turnstile file"), LakeError("gs://b: no bucket", True),
        google_errors.NotFound("no bucket"), google_errors.Forbidden("no"), ValueError("bug"), KeyError("bug"),
        FileNotFoundError("/x"), smtplib.SMTPAuthenticationError(535, b"no"),
    ]
    assert [is_transient(exc) for exc in transient] == [True] * len(transient)
    assert [is_transient(exc) for exc in permanent] == [False] * len(permanent)
