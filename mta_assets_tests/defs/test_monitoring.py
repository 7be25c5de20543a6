"""Failure and late-week alerts end to end: real runs in a test instance, real receivers."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from mta_assets.defs.monitoring import sensors as monitoring_sensors
from mta_assets.defs.monitoring.sensors import (
    ALERTS_RESOURCE_KEY,
    DEFAULT_LATE_HOURS,
    LATE_WEEK_SENSOR_NAME,
    alert_sensors,
    evaluate_late_week_tick,
    expected_week,
    late_hours_from_env,
    monitoring_resources,
    mta_late_week_sensor,
    mta_run_failure_alert_sensor,
    week_deadline,
    week_is_materialized,
    weeks_of_run,
)
from mta_assets.settings import SettingError
from mta_assets.defs.turnstile.partitions import build_weekly_partitions, weekly_partitions
from mta_assets.mta import calendar as partitions
from mta_assets.settings import last_week_from_env
from mta_assets_tests.fixtures_alerts import (
    SMTP_PASSWORD,
    WEBHOOK_TOKEN,
    destinations,
    smtp_receiver,
    webhook_receiver,
)

NEW_YORK = ZoneInfo("America/New_York")
WEEK = "2024-01-06"  # file turnstile_240113.txt, published Saturday 2024-01-13
HOURS = DEFAULT_LATE_HOURS  # Sunday 12:00 New York after the publication Saturday
WEBHOOK = "json://127.0.0.1"


def new_york(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NEW_YORK)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


# -- assets standing in for the pipeline's ---------------------------------------


@dg.asset(name="turnstile_readings", partitions_def=weekly_partitions)
def readings_that_explode(context: dg.AssetExecutionContext) -> None:
    raise ValueError(f"turnstile_240113.txt has no readings for week {context.partition_key}\nsecond line")


@dg.asset(
    name="turnstile_readings",
    partitions_def=weekly_partitions,
    check_specs=[dg.AssetCheckSpec("rows_in_week_window", asset="turnstile_readings", blocking=True)],
)
def readings_with_rows_outside_the_week(context: dg.AssetExecutionContext):
    yield dg.Output(None)
    yield dg.AssetCheckResult(
        check_name="rows_in_week_window",
        passed=False,
        description="12 readings fall outside the week\nmore detail",
    )


@dg.asset(partitions_def=weekly_partitions, deps=["turnstile_readings"])
def downstream_of_readings() -> None:
    pass


@dg.asset(name="turnstile_readings", partitions_def=weekly_partitions)
def readings_that_work() -> None:
    pass


def materialize_readings(instance, week: str) -> None:
    result = dg.materialize([readings_that_work], instance=instance, partition_key=week)
    assert result.success


def sensor_tick(sensor, instance, resource, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={ALERTS_RESOURCE_KEY: resource}
    )
    return sensor.evaluate_tick(context)


def secrets_in_event_log(instance) -> list[str]:
    """Every stored event (messages, metadata, errors) and run config that holds a secret."""
    leaks = []
    for run in instance.get_runs():
        if WEBHOOK_TOKEN in repr(run.run_config) or SMTP_PASSWORD in repr(run.run_config):
            leaks.append(f"run config of {run.run_id}")
        for entry in instance.all_logs(run.run_id):
            text = repr(entry)
            if WEBHOOK_TOKEN in text or SMTP_PASSWORD in text:
                leaks.append(text[:200])
    return leaks


# -- failed runs ------------------------------------------------------------------


def test_failed_run_alerts_exactly_once_with_week_step_error_and_link(instance, alert_env, sensor_log):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp))
        # The first tick only places the cursor after existing failures.
        first = sensor_tick(mta_run_failure_alert_sensor, instance, resource)
        result = dg.materialize(
            [readings_that_explode], instance=instance, partition_key=WEEK, raise_on_error=False
        )
        assert not result.success
        run_id = result.run_id

        second = sensor_tick(mta_run_failure_alert_sensor, instance, resource, first.cursor)
        third = sensor_tick(mta_run_failure_alert_sensor, instance, resource, second.cursor)

    assert len(hook.requests) == 1
    text = hook.requests[0]["json"]["text"]
    assert text.splitlines() == [
        f"[mta_assets] materialization of turnstile_readings failed for week {WEEK}: step turnstile_readings",
        "Job: materialization of turnstile_readings",
        f"Partition: week {WEEK}",
        "Failed step: turnstile_readings",
        f"Error: ValueError: turnstile_240113.txt has no readings for week {WEEK}",
        f"Run: http://dagster.test:3000/runs/{run_id}",
    ]
    assert len(smtp.messages) == 2  # one per recipient
    assert {m["Subject"] for m in smtp.messages} == {text.splitlines()[0]}
    assert all(f"http://dagster.test:3000/runs/{run_id}" in m.get_content() for m in smtp.messages)
    assert [r.run_status for r in second.dagster_run_reactions] == [dg.DagsterRunStatus.FAILURE]
    assert third.dagster_run_reactions == []

    assert secrets_in_event_log(instance) == []
    logged = sensor_log()
    assert f"Alert delivered to {WEBHOOK}" in logged
    assert WEBHOOK_TOKEN not in logged and SMTP_PASSWORD not in logged


def test_failed_blocking_check_alerts_with_the_check_name(instance, alert_env):
    with webhook_receiver() as hook:
        resource = alert_env(destinations(hook))
        first = sensor_tick(mta_run_failure_alert_sensor, instance, resource)
        result = dg.materialize(
            [readings_with_rows_outside_the_week, downstream_of_readings],
            instance=instance,
            partition_key=WEEK,
            raise_on_error=False,
        )
        second = sensor_tick(mta_run_failure_alert_sensor, instance, resource, first.cursor)
        sensor_tick(mta_run_failure_alert_sensor, instance, resource, second.cursor)

    # Dagster fails the step whose blocking check failed, so the run fails and the
    # downstream asset is not materialized: the run failure sensor sees it.
    assert not result.success
    assert result.get_asset_check_evaluations()[0].passed is False
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == [
        "turnstile_readings"
    ]
    assert len(hook.requests) == 1
    lines = hook.requests[0]["json"]["text"].splitlines()
    assert lines[0] == (
        "[mta_assets] materialization of downstream_of_readings, turnstile_readings failed for week "
        f"{WEEK}: blocking check turnstile_readings:rows_in_week_window"
    )
    assert "Failed step: turnstile_readings" in lines
    assert "Error: DagsterAssetCheckFailedError: 1 blocking asset check failed with ERROR severity:" in lines
    assert "Blocking check failed: turnstile_readings:rows_in_week_window (12 readings fall outside the week)" in lines
    assert lines[-1] == f"Run: http://dagster.test:3000/runs/{result.run_id}"


def test_hanging_receiver_does_not_stop_the_tick_and_the_run_is_not_alerted_twice(
    instance, alert_env, sensor_log
):
    with webhook_receiver(hang=True) as hook:
        resource = alert_env(destinations(hook, MTA_ALERT_TIMEOUT_SECONDS="0.3", MTA_ALERT_ATTEMPTS="1"))
        first = sensor_tick(mta_run_failure_alert_sensor, instance, resource)
        dg.materialize([readings_that_explode], instance=instance, partition_key=WEEK, raise_on_error=False)
        second = sensor_tick(mta_run_failure_alert_sensor, instance, resource, first.cursor)
        third = sensor_tick(mta_run_failure_alert_sensor, instance, resource, second.cursor)
    assert len(hook.requests) == 1
    assert len(second.dagster_run_reactions) == 1 and third.dagster_run_reactions == []
    logged = sensor_log()
    assert f"Alert to {WEBHOOK} not delivered after 1 attempt(s)" in logged
    assert WEBHOOK_TOKEN not in logged


def test_failing_receiver_is_retried_and_logged(instance, alert_env, sensor_log):
    with webhook_receiver(status=500) as hook:
        resource = alert_env(destinations(hook, MTA_ALERT_ATTEMPTS="2"))
        first = sensor_tick(mta_run_failure_alert_sensor, instance, resource)
        dg.materialize([readings_that_explode], instance=instance, partition_key=WEEK, raise_on_error=False)
        second = sensor_tick(mta_run_failure_alert_sensor, instance, resource, first.cursor)
        sensor_tick(mta_run_failure_alert_sensor, instance, resource, second.cursor)
    assert len(hook.requests) == 2
    assert f"Alert to {WEBHOOK} not delivered after 2 attempt(s): Failed to send JSON POST notification: Internal server error., error=500." in sensor_log()


def test_no_destination_logs_once_per_tick_and_sends_nothing(instance, alert_env, sensor_log):
    resource = alert_env(destinations())
    first = sensor_tick(mta_run_failure_alert_sensor, instance, resource)
    for _ in range(2):
        dg.materialize([readings_that_explode], instance=instance, partition_key=WEEK, raise_on_error=False)
    second = sensor_tick(mta_run_failure_alert_sensor, instance, resource, first.cursor)
    assert len(second.dagster_run_reactions) == 2
    assert sensor_log().count("No alert destination configured") == 1


@dg.asset
def another_projects_asset() -> None:
    raise RuntimeError("not ours")


def test_only_this_code_locations_failures_alert(instance, alert_env):
    definitions = dg.Definitions(
        assets=[readings_that_work],
        sensors=[mta_run_failure_alert_sensor],
        resources=monitoring_resources,
    )
    with webhook_receiver() as hook:
        resource = alert_env(destinations(hook))

        def tick(cursor=None):
            context = dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                definitions=definitions,
                resources={ALERTS_RESOURCE_KEY: resource},
            )
            return mta_run_failure_alert_sensor.evaluate_tick(context)

        first = tick()
        # Like `dagster asset materialize` from the CLI: a run with no code location origin.
        dg.materialize([another_projects_asset], instance=instance, raise_on_error=False)
        ours = dg.materialize([readings_that_explode], instance=instance, partition_key=WEEK, raise_on_error=False)
        second = tick(first.cursor)
        tick(second.cursor)
    assert len(second.dagster_run_reactions) == 2
    assert len(hook.requests) == 1
    assert f"/runs/{ours.run_id}" in hook.requests[0]["json"]["text"]


def test_weeks_of_run_reads_single_and_range_tags():
    assert weeks_of_run({"dagster/partition": WEEK}) == f"week {WEEK}"
    assert (
        weeks_of_run(
            {"dagster/asset_partition_range_start": "2023-12-30", "dagster/asset_partition_range_end": WEEK}
        )
        == f"weeks 2023-12-30 to {WEEK}"
    )
    assert weeks_of_run({}) == "no particular week"


# -- late weeks: pure logic -------------------------------------------------------


def test_week_deadline_is_hours_of_new_york_wall_time_after_publication(monkeypatch):
    assert week_deadline(WEEK, HOURS) == new_york(2024, 1, 14, 12, 0)
    assert week_deadline(WEEK, 18.5) == new_york(2024, 1, 13, 18, 30)
    assert week_deadline(WEEK, 48) == new_york(2024, 1, 15, 0, 0)
    # 2024-03-09 is the publication Saturday; clocks go forward on Sunday 2024-03-10: still 12:00.
    assert week_deadline("2024-03-02", HOURS) == new_york(2024, 3, 10, 12, 0)
    assert week_deadline("2024-03-02", HOURS).utcoffset() == dt.timedelta(hours=-4)
    monkeypatch.delenv("MTA_LATE_WEEK_HOURS", raising=False)
    assert late_hours_from_env() == 36.0
    monkeypatch.setenv("MTA_LATE_WEEK_HOURS", "57")
    assert late_hours_from_env() == 57.0
    monkeypatch.setenv("MTA_LATE_WEEK_HOURS", "sunday 12:00")
    with pytest.raises(SettingError, match=r"MTA_LATE_WEEK_HOURS='sunday 12:00' is not a number"):
        late_hours_from_env()


def test_expected_week_before_and_after_the_deadline():
    before, after = new_york(2024, 1, 14, 11, 59), new_york(2024, 1, 14, 12, 1)
    # Before this week's deadline the previous week is the one that must exist.
    assert expected_week(before, HOURS) == ("2023-12-30", new_york(2024, 1, 7, 12))
    assert expected_week(after, HOURS) == (WEEK, new_york(2024, 1, 14, 12))
    # Saturday morning of the next publication: still week WEEK that is due.
    assert expected_week(new_york(2024, 1, 20, 8, 0), HOURS) == (WEEK, new_york(2024, 1, 14, 12))
    assert expected_week(dt.datetime(2010, 5, 2, tzinfo=dt.timezone.utc), HOURS) == (None, None)


def test_only_the_due_weeks_own_materialization_counts(instance):
    materialize_readings(instance, "2023-12-30")
    # Backfilling older weeks is newer activity on the asset but not the week that is due.
    for older in ["2023-12-16", "2023-12-23"]:
        materialize_readings(instance, older)
    assert week_is_materialized(instance, "2023-12-30") and not week_is_materialized(instance, WEEK)
    materialize_readings(instance, WEEK)
    assert week_is_materialized(instance, WEEK)


def test_no_run_judges_lateness():
    """Materializing a week records that week's own checks only: lateness is the sensor's."""
    from mta_assets.definitions import defs

    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert check_names, "the week checks disappeared"
    assert not {name for name in check_names if "late" in name or "on_time" in name}
    sensor_names = {sensor.name for sensor in defs.sensors}
    assert LATE_WEEK_SENSOR_NAME in sensor_names


# -- late weeks: the declared last week --------------------------------------------

LAST_WEEK = "2024-02-10"  # turnstile_240217.txt, the newest real sample
# A frozen "now", long after MTA's turnstile files stopped.
LONG_AFTER = new_york(2026, 11, 30, 9, 0)


def test_declared_last_week_ends_the_partitions():
    declared = build_weekly_partitions(LAST_WEEK)
    keys = declared.get_partition_keys(current_time=LONG_AFTER)
    assert keys[0] == partitions.FIRST_WEEK and keys[-1] == LAST_WEEK
    # Before the last week is published the clock still decides.
    assert declared.get_partition_keys(current_time=new_york(2024, 1, 10))[-1] == "2023-12-30"
    open_ended = build_weekly_partitions(None)
    assert open_ended.end is None
    assert open_ended.get_partition_keys(current_time=LONG_AFTER)[-1] == "2026-11-21"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-02-11", "MTA_LAST_WEEK=2024-02-11 is a Sunday; weeks are keyed by the Saturday they begin "
         "(the week holding 2024-02-11 is 2024-02-10)"),
        ("20240210", "MTA_LAST_WEEK='20240210' is not a date"),
        ("2009-12-26", "MTA_LAST_WEEK=2009-12-26 is before the first week, 2010-04-24"),
    ],
)
def test_last_week_setting_is_validated(monkeypatch, value, message):
    monkeypatch.setenv("MTA_LAST_WEEK", value)
    with pytest.raises(ValueError) as raised:
        last_week_from_env()
    assert str(raised.value).startswith(message)


def test_last_week_setting_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("MTA_LAST_WEEK", raising=False)
    assert last_week_from_env() is None
    monkeypatch.setenv("MTA_LAST_WEEK", f" {LAST_WEEK} ")
    assert last_week_from_env() == LAST_WEEK


# -- late weeks: the sensor --------------------------------------------------------


def late_tick(instance, resource, now, cursor=None, last_week=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={ALERTS_RESOURCE_KEY: resource})
    with context:
        return evaluate_late_week_tick(context, context.resources.mta_alerts, now, HOURS, last_week)


def test_late_week_alerts_once_per_week(instance, alert_env, sensor_log):
    after = new_york(2024, 1, 14, 12, 1)
    materialize_readings(instance, "2023-12-30")
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp))
        before_tick = late_tick(instance, resource, new_york(2024, 1, 14, 11, 59))
        late = late_tick(instance, resource, after, before_tick.cursor)
        again = late_tick(instance, resource, after + dt.timedelta(minutes=15), late.cursor)
        materialize_readings(instance, "2023-12-23")  # a backfill changes nothing
        after_backfill = late_tick(instance, resource, after + dt.timedelta(minutes=30), again.cursor)
        next_week = late_tick(instance, resource, new_york(2024, 1, 21, 12, 1), after_backfill.cursor)

    assert before_tick.skip_reason.skip_message == "Week 2023-12-30 is materialized."
    assert again.skip_reason.skip_message == f"Week {WEEK} is late; already alerted."
    assert after_backfill.skip_reason.skip_message == f"Week {WEEK} is late; already alerted."
    # The sensor only alerts: no runs, nothing recorded on the asset.
    for result in (before_tick, late, again, after_backfill, next_week):
        assert result.run_requests in (None, []) and result.asset_events == []
    assert instance.get_runs_count() == 2  # the two materialize_readings calls

    texts = [request["json"]["text"] for request in hook.requests]
    assert len(texts) == 2
    assert texts[0].splitlines() == [
        f"[mta_assets] Week {WEEK} is late: turnstile_readings not materialized",
        f"Week: {WEEK} (file turnstile_240113.txt, published Sat 2024-01-13)",
        "Deadline: Sun 2024-01-14 12:00 EST (36 h after publication, MTA_LATE_WEEK_HOURS)",
        f"Sensor: {LATE_WEEK_SENSOR_NAME}",
        "Asset: http://dagster.test:3000/assets/turnstile_readings",
        "If the source has stopped publishing, set MTA_LAST_WEEK to its last week.",
    ]
    assert texts[1].startswith("[mta_assets] Week 2024-01-13 is late")
    assert [m["Subject"] for m in smtp.messages] == [t.splitlines()[0] for t in texts for _ in range(2)]
    assert json.loads(next_week.cursor)["alerted_week"] == "2024-01-13"
    logged = sensor_log()
    assert WEBHOOK_TOKEN not in logged and SMTP_PASSWORD not in logged
    assert secrets_in_event_log(instance) == []


def test_without_a_declared_last_week_every_week_after_the_archive_is_late(instance, alert_env):
    materialize_readings(instance, LAST_WEEK)
    with webhook_receiver() as hook:
        resource = alert_env(destinations(hook))
        first = late_tick(instance, resource, LONG_AFTER)
        week_later = late_tick(instance, resource, LONG_AFTER + dt.timedelta(days=7), first.cursor)
    assert first.skip_reason.skip_message == "Week 2026-11-21 is late; alerted via json://127.0.0.1."
    assert week_later.skip_reason.skip_message == "Week 2026-11-28 is late; alerted via json://127.0.0.1."
    assert len(hook.requests) == 2


def test_with_a_declared_last_week_nothing_after_it_is_late(instance, alert_env):
    with webhook_receiver() as hook:
        resource = alert_env(destinations(hook))
        # The last week itself is still due: missing, it alerts once, however long after.
        missing = late_tick(instance, resource, LONG_AFTER, last_week=LAST_WEEK)
        still_missing = late_tick(
            instance, resource, LONG_AFTER + dt.timedelta(days=60), missing.cursor, last_week=LAST_WEEK
        )
        materialize_readings(instance, LAST_WEEK)
        done = late_tick(instance, resource, LONG_AFTER + dt.timedelta(days=90), still_missing.cursor, LAST_WEEK)

    assert missing.skip_reason.skip_message == f"Week {LAST_WEEK} is late; alerted via json://127.0.0.1."
    assert still_missing.skip_reason.skip_message == f"Week {LAST_WEEK} is late; already alerted."
    assert done.skip_reason.skip_message == (
        f"Week {LAST_WEEK} is materialized. It is the declared last week (MTA_LAST_WEEK); "
        "no later week is expected."
    )
    assert len(hook.requests) == 1
    lines = hook.requests[0]["json"]["text"].splitlines()
    assert lines[0] == f"[mta_assets] Week {LAST_WEEK} is late: turnstile_readings not materialized"
    assert not any("MTA_LAST_WEEK" in line for line in lines)  # it is declared already
    # Before the last week is due, the clock decides as without a declaration.
    assert expected_week(new_york(2024, 1, 14, 12, 1), HOURS, LAST_WEEK)[0] == WEEK
    assert expected_week(LONG_AFTER, HOURS, LAST_WEEK) == (LAST_WEEK, new_york(2024, 2, 18, 12))


def test_late_week_alert_is_retried_next_tick_when_no_destination_took_it(instance, alert_env):
    after = new_york(2024, 1, 14, 12, 1)
    with webhook_receiver(status=500) as broken:
        failed = late_tick(instance, alert_env(destinations(broken, MTA_ALERT_ATTEMPTS="1")), after)
    assert failed.skip_reason.skip_message == f"Week {WEEK} is late; alert delivery failed (json://127.0.0.1), will retry."
    with webhook_receiver() as hook:
        retried = late_tick(instance, alert_env(destinations(hook)), after, failed.cursor)
    assert len(hook.requests) == 1
    assert json.loads(retried.cursor)["alerted_week"] == WEEK


@pytest.mark.parametrize("declared", [None, LAST_WEEK])
def test_late_week_sensor_definition_on_a_frozen_clock(instance, alert_env, monkeypatch, declared):
    # The definition reads the clock and the declared last week when it ticks; freeze both.
    monkeypatch.setattr(monitoring_sensors, "_now", lambda: LONG_AFTER)
    monkeypatch.setattr(monitoring_sensors, "LAST_WEEK", declared)
    materialize_readings(instance, LAST_WEEK)
    with webhook_receiver() as hook:
        resource = alert_env(destinations(hook))
        first = sensor_tick(mta_late_week_sensor, instance, resource)
        second = sensor_tick(mta_late_week_sensor, instance, resource, first.cursor)
    if declared is None:
        assert len(hook.requests) == 1
        assert hook.requests[0]["json"]["text"].startswith("[mta_assets] Week 2026-11-21 is late")
        assert second.skip_message == "Week 2026-11-21 is late; already alerted."
    else:
        assert hook.requests == []
        assert first.skip_message.startswith(f"Week {LAST_WEEK} is materialized.")
    assert first.run_requests == [] and second.run_requests == []


def test_exports_for_definitions():
    assert {s.name for s in alert_sensors} == {"mta_run_failure_alert_sensor", LATE_WEEK_SENSOR_NAME}
    assert mta_late_week_sensor.minimum_interval_seconds == 15 * 60
    assert mta_late_week_sensor.required_resource_keys == {ALERTS_RESOURCE_KEY}
    assert mta_run_failure_alert_sensor.required_resource_keys == {ALERTS_RESOURCE_KEY}
    dg.Definitions.validate_loadable(
        dg.Definitions(assets=[readings_that_work], sensors=alert_sensors, resources=monitoring_resources)
    )
