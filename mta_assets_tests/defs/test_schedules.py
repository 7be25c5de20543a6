"""The weekly schedule: Saturdays at the configured New York hour, requesting the week just published."""

from __future__ import annotations

import datetime as dt
import importlib
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from mta_assets.defs.resources import build_resources
from mta_assets.defs.turnstile import schedules
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_assets.defs.turnstile.jobs import mta_turnstile_job
from mta_assets.mta.calendar import file_name_for_week

NEW_YORK = ZoneInfo("America/New_York")


def resolved(schedule) -> dg.ScheduleDefinition:
    """The schedule as the code location resolves it against the job's assets."""
    defs = dg.Definitions(
        assets=[turnstile_weeks],
        jobs=[mta_turnstile_job],
        schedules=[schedule],
        resources=build_resources(),
    )
    return defs.resolve_schedule_def(schedule.name)


def requested_weeks(schedule: dg.ScheduleDefinition, when: dt.datetime) -> list[str]:
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))
    return [request.partition_key for request in data.run_requests or []]


@pytest.fixture(scope="module")
def weekly() -> dg.ScheduleDefinition:
    return resolved(schedules.mta_weekly_schedule)


def test_fires_saturdays_at_nine_new_york_time_and_starts_stopped(weekly: dg.ScheduleDefinition) -> None:
    assert weekly.cron_schedule == "0 9 * * 6"
    assert weekly.execution_timezone == "America/New_York"
    assert weekly.job_name == "mta_turnstile_job"
    assert weekly.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize(
    ("tick", "week"),
    [
        # New Year: the week from Saturday 2023-12-30 is published on Saturday 2024-01-06.
        (dt.datetime(2024, 1, 6, 9, 0, tzinfo=NEW_YORK), "2023-12-30"),
        (dt.datetime(2023, 12, 30, 9, 0, tzinfo=NEW_YORK), "2023-12-23"),
        # DST begins Sunday 2024-03-10: the week holding it is published 2024-03-16 (EDT, UTC-4).
        (dt.datetime(2024, 3, 9, 9, 0, tzinfo=NEW_YORK), "2024-03-02"),
        (dt.datetime(2024, 3, 16, 9, 0, tzinfo=NEW_YORK), "2024-03-09"),
        # DST ends Sunday 2024-11-03: back to EST (UTC-5).
        (dt.datetime(2024, 11, 2, 9, 0, tzinfo=NEW_YORK), "2024-10-26"),
        (dt.datetime(2024, 11, 9, 9, 0, tzinfo=NEW_YORK), "2024-11-02"),
    ],
)
def test_requests_the_week_published_that_saturday(weekly: dg.ScheduleDefinition, tick: dt.datetime, week: str) -> None:
    assert tick.weekday() == 5
    assert requested_weeks(weekly, tick) == [week]
    assert file_name_for_week(week) == f"turnstile_{tick:%y%m%d}.txt"


def test_the_same_instant_in_utc_requests_the_same_week(weekly: dg.ScheduleDefinition) -> None:
    # 9:00 New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert requested_weeks(weekly, dt.datetime(2024, 1, 6, 14, 0, tzinfo=dt.timezone.utc)) == ["2023-12-30"]
    assert requested_weeks(weekly, dt.datetime(2024, 3, 16, 13, 0, tzinfo=dt.timezone.utc)) == ["2024-03-09"]


def test_run_requests_carry_the_partition_and_schedule_tags(weekly: dg.ScheduleDefinition) -> None:
    when = dt.datetime(2024, 1, 6, 9, 0, tzinfo=NEW_YORK)
    (request,) = weekly.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when)).run_requests
    assert request.partition_key == "2023-12-30"
    assert request.tags["dagster/partition"] == "2023-12-30"
    assert request.tags["dagster/schedule_name"] == "mta_weekly_schedule"


def test_hour_and_minute_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTA_SCHEDULE_HOUR", "14")
    monkeypatch.setenv("MTA_SCHEDULE_MINUTE", "30")
    try:
        configured = importlib.reload(schedules).mta_weekly_schedule
        schedule = resolved(configured)
        assert schedule.cron_schedule == "30 14 * * 6"
        assert schedule.execution_timezone == "America/New_York"
        # The day still decides the week: any hour of the publication Saturday requests the same week.
        assert requested_weeks(schedule, dt.datetime(2024, 1, 6, 14, 30, tzinfo=NEW_YORK)) == ["2023-12-30"]
    finally:
        monkeypatch.undo()
        importlib.reload(schedules)


@pytest.mark.parametrize(("name", "value"), [("MTA_SCHEDULE_HOUR", "24"), ("MTA_SCHEDULE_MINUTE", "half past")])
def test_bad_schedule_settings_are_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    try:
        with pytest.raises(ValueError, match=name):
            importlib.reload(schedules)
    finally:
        monkeypatch.undo()
        importlib.reload(schedules)
