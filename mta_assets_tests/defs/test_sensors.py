"""The file-arrival sensor against a loopback mirror, at fixed evaluation times."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from mta_assets.defs.resources import MTASource
from mta_assets.defs.turnstile import sensors
from mta_assets.defs.turnstile.sensors import (
    evaluate_file_arrival,
    mta_file_arrival_sensor,
    probing_source,
)
from mta_devtools.mirror import MirrorServer
from mta_devtools.synthetic import consecutive_weeks
from mta_assets.mta.calendar import file_name_for_week, latest_published_week

NEW_YORK = ZoneInfo("America/New_York")
# Saturday afternoon: the week 2023-12-30 (turnstile_240106.txt) is the latest published.
NOW = dt.datetime(2024, 1, 6, 15, 0, tzinfo=NEW_YORK)
READINGS = 200


def source_for(mirror: MirrorServer) -> MTASource:
    return MTASource(base_url=mirror.url, retries=0, backoff_factor_s=0)


def tick(mirror: MirrorServer, cursor: str | None, now: dt.datetime = NOW) -> dg.SensorResult:
    source = source_for(mirror)
    context = dg.build_sensor_context(cursor=cursor, resources={"mta_source": source})
    return evaluate_file_arrival(context, source, now)


def weeks_requested(result: dg.SensorResult) -> list[str]:
    return [request.partition_key for request in result.run_requests or []]


def skip_message(result: dg.SensorResult) -> str:
    assert not result.run_requests
    assert result.skip_reason is not None
    return result.skip_reason.skip_message


def probed_files(mirror: MirrorServer) -> list[str]:
    return [path.rsplit("/", 1)[-1] for _, path in mirror.requests]


def test_a_new_file_gives_exactly_one_run_request_for_its_week(mirror: MirrorServer, synthetic_week) -> None:
    synthetic_week("2023-12-30", readings=READINGS)

    result = tick(mirror, cursor=None)

    # First tick: the latest week and the one before, nothing older, by HEAD only.
    assert sorted(probed_files(mirror)) == ["turnstile_231230.txt", "turnstile_240106.txt"]
    assert {method for method, _ in mirror.requests} == {"HEAD"}
    (request,) = result.run_requests
    validator = source_for(mirror).probe("2023-12-30").validator
    assert request.partition_key == "2023-12-30"
    assert request.run_key == f"2023-12-30:{validator}"
    assert request.tags[sensors.VALIDATOR_TAG] == validator
    assert request.tags[sensors.URL_TAG] == f"{mirror.url}/turnstile_240106.txt"
    assert json.loads(result.cursor) == {"through": "2023-12-30", "weeks": {"2023-12-30": validator}}


def test_the_same_file_on_the_next_tick_requests_nothing(mirror: MirrorServer, synthetic_week) -> None:
    synthetic_week("2023-12-23", readings=READINGS)
    synthetic_week("2023-12-30", readings=READINGS)
    first = tick(mirror, cursor=None)
    assert weeks_requested(first) == ["2023-12-23", "2023-12-30"]

    second = tick(mirror, cursor=first.cursor, now=NOW + dt.timedelta(minutes=15))

    assert "unchanged since last seen: 2023-12-23, 2023-12-30" in skip_message(second)
    assert json.loads(second.cursor)["weeks"] == json.loads(first.cursor)["weeks"]


def test_a_republished_changed_file_gives_one_new_request(mirror: MirrorServer, synthetic_week) -> None:
    path = synthetic_week("2023-12-30", readings=READINGS)
    first = tick(mirror, cursor=None)
    (original,) = first.run_requests

    synthetic_week("2023-12-30", readings=READINGS + 50, seed=1)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later Last-Modified, surely
    second = tick(mirror, cursor=first.cursor)
    third = tick(mirror, cursor=second.cursor)

    (republished,) = second.run_requests
    assert republished.partition_key == "2023-12-30"
    assert republished.run_key != original.run_key
    assert republished.run_key == f"2023-12-30:{source_for(mirror).probe('2023-12-30').validator}"
    assert republished.tags["mta/previous_validator"] == original.tags[sensors.VALIDATOR_TAG]
    assert "unchanged since last seen: 2023-12-30" in skip_message(third)


def test_a_missing_file_is_a_skip_naming_week_and_url(mirror: MirrorServer, synthetic_week) -> None:
    first = tick(mirror, cursor=None)

    message = skip_message(first)
    assert f"week 2023-12-30: {mirror.url}/turnstile_240106.txt not published yet" in message
    assert f"week 2023-12-23: {mirror.url}/turnstile_231230.txt not published yet" in message

    synthetic_week("2023-12-30", readings=READINGS)
    second = tick(mirror, cursor=first.cursor, now=NOW + dt.timedelta(hours=1))
    assert weeks_requested(second) == ["2023-12-30"]


def test_a_source_outage_is_a_skip_naming_it_and_the_next_tick_catches_up(
    mirror: MirrorServer, synthetic_week
) -> None:
    synthetic_week("2023-12-30", readings=READINGS)
    mirror.down()

    during = tick(mirror, cursor=None)

    message = skip_message(during)
    assert message.startswith("MTA source unavailable, will retry next tick: ")
    assert mirror.url in message
    assert json.loads(during.cursor) == {"through": None, "weeks": {}}

    mirror.up()
    after = tick(mirror, cursor=during.cursor)
    assert weeks_requested(after) == ["2023-12-30"]


def test_an_outage_mid_tick_keeps_what_was_found(mirror: MirrorServer, synthetic_week) -> None:
    for week in ("2023-12-23", "2023-12-30"):
        synthetic_week(week, readings=READINGS)
    mirror.inject("turnstile_240106.txt", "503")  # the second probe of the tick; retries are off

    during = tick(mirror, cursor=None)
    after = tick(mirror, cursor=during.cursor)

    assert weeks_requested(during) == ["2023-12-23"]
    assert json.loads(during.cursor)["through"] == "2023-12-23"
    assert weeks_requested(after) == ["2023-12-30"]


def test_catch_up_after_several_weeks_appear_at_once(mirror: MirrorServer, synthetic_week) -> None:
    synthetic_week("2023-12-02", readings=READINGS)
    before = tick(mirror, cursor=None, now=dt.datetime(2023, 12, 9, 12, 0, tzinfo=NEW_YORK))
    assert weeks_requested(before) == ["2023-12-02"]

    appeared = ["2023-12-09", "2023-12-16", "2023-12-23", "2023-12-30"]
    for week in appeared:
        synthetic_week(week, readings=READINGS)
    after = tick(mirror, cursor=before.cursor)

    assert weeks_requested(after) == appeared
    assert len({request.run_key for request in after.run_requests}) == 4


def test_a_long_outage_is_caught_up_in_bounded_ticks(mirror: MirrorServer, synthetic_week) -> None:
    weeks = consecutive_weeks("2023-09-23", 15)
    assert weeks[-1] == "2023-12-30"
    never_published = "2023-10-14"
    for week in weeks:
        if week != never_published:
            synthetic_week(week, readings=READINGS)
    cursor = json.dumps({"through": "2023-09-16", "weeks": {}})

    first = tick(mirror, cursor)
    mirror.clear_requests()
    second = tick(mirror, first.cursor)
    third = tick(mirror, second.cursor)

    assert weeks_requested(first) == [w for w in weeks[: sensors.MAX_CATCH_UP_WEEKS] if w != never_published]
    assert weeks_requested(second) == weeks[sensors.MAX_CATCH_UP_WEEKS :]
    assert "unchanged since last seen: 2023-12-16, 2023-12-23, 2023-12-30" in skip_message(third)
    # A week still missing long after its publication day is passed over, not polled forever.
    assert file_name_for_week(never_published) not in probed_files(mirror)
    assert sorted(json.loads(third.cursor)["weeks"]) == weeks[-sensors.CURSOR_WEEKS :]


def test_a_file_posted_before_its_publication_day_is_not_requested(mirror: MirrorServer, synthetic_week) -> None:
    synthetic_week("2023-12-23", readings=READINGS)
    synthetic_week("2023-12-30", readings=READINGS)  # due Saturday 2024-01-06
    friday_night = dt.datetime(2024, 1, 5, 23, 59, tzinfo=NEW_YORK)

    result = tick(mirror, cursor=None, now=friday_night)

    assert weeks_requested(result) == ["2023-12-23"]
    assert "turnstile_240106.txt" not in probed_files(mirror)


def test_a_late_file_within_the_recheck_window_is_still_requested(mirror: MirrorServer, synthetic_week) -> None:
    first = tick(mirror, cursor=None)
    assert "not published yet" in skip_message(first)

    synthetic_week("2023-12-23", readings=READINGS)  # published two weeks late
    later = tick(mirror, cursor=first.cursor, now=NOW + dt.timedelta(days=7))

    assert weeks_requested(later) == ["2023-12-23"]


def test_an_unreadable_cursor_is_treated_as_a_first_tick(mirror: MirrorServer, synthetic_week) -> None:
    synthetic_week("2023-12-30", readings=READINGS)

    result = tick(mirror, cursor="not json")

    assert weeks_requested(result) == ["2023-12-30"]


def test_probes_use_short_timeouts_and_one_retry() -> None:
    configured = MTASource(base_url="http://mirror.example/turnstile", read_timeout_s=120, retries=4)

    probing = probing_source(configured)

    assert probing.base_url == "http://mirror.example/turnstile"
    assert (probing.connect_timeout_s, probing.read_timeout_s, probing.retries) == (5.0, 10.0, 1)


def test_probes_keep_the_sources_credentials_and_limits(mirror: MirrorServer, synthetic_week) -> None:
    synthetic_week("2023-12-30", readings=READINGS)
    mirror.require_auth("mta", "Pa55|w0rd")
    source = MTASource(base_url=mirror.url, user="mta", password="Pa55|w0rd", retries=0, max_file_bytes=1 << 30, probe_deadline_s=7)
    assert (probing_source(source).user, probing_source(source).max_file_bytes, probing_source(source).probe_deadline_s) == (
        "mta", 1 << 30, 7
    )
    context = dg.build_sensor_context(cursor=None, resources={"mta_source": source})

    result = evaluate_file_arrival(context, source, NOW)

    assert weeks_requested(result) == ["2023-12-30"]  # not "MTA source unavailable": the probe sent the credentials


def test_the_sensor_definition_uses_its_resource_and_the_clock(mirror: MirrorServer, synthetic_week) -> None:
    latest = latest_published_week()
    following = consecutive_weeks(latest, 2)[1]
    # Both, so the test holds even if New York's Saturday midnight passes while it runs.
    synthetic_week(latest, readings=READINGS)
    synthetic_week(following, readings=READINGS)
    context = dg.build_sensor_context(resources={"mta_source": MTASource(base_url=mirror.url)})

    result = mta_file_arrival_sensor(context)

    requested = weeks_requested(result)
    assert latest in requested
    assert set(requested) <= {latest, following}
    assert mta_file_arrival_sensor.job_name == "mta_turnstile_job"
    assert mta_file_arrival_sensor.minimum_interval_seconds == 15 * 60
    assert mta_file_arrival_sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTA_SENSOR_INTERVAL_S", "120")
    try:
        assert importlib.reload(sensors).mta_file_arrival_sensor.minimum_interval_seconds == 120
        monkeypatch.setenv("MTA_SENSOR_INTERVAL_S", "5")
        with pytest.raises(ValueError, match="MTA_SENSOR_INTERVAL_S=5"):
            importlib.reload(sensors)
    finally:
        monkeypatch.undo()
        importlib.reload(sensors)
