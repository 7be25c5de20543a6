"""Two small sensors that alert a person through ``delivery.AlertDestinations``.

- ``mta_run_failure_alert_sensor``: one alert per failed run of this code location. A
  blocking asset check that fails at ERROR severity fails its step, so its run fails and
  is alerted here too, naming the check.
- ``mta_late_week_sensor``: one alert per late week. Lateness is per partition: the newest
  week whose deadline (``MTA_LATE_WEEK_HOURS`` after its publication Saturday 00:00, New
  York wall time) has passed, never after ``MTA_LAST_WEEK``. Dagster's ``FreshnessPolicy``
  judges an asset by its latest materialization of any partition, so a backfill of an old
  week would make a missing new week look fresh; hence a sensor with a JSON cursor.
"""

import datetime as dt
import json
import os
from zoneinfo import ZoneInfo

import dagster as dg

from mta_assets.defs.monitoring.delivery import Alert, AlertDestinations
from mta_assets.defs.turnstile.partitions import LAST_WEEK
from mta_assets.mta import calendar
from mta_assets.settings import LAST_WEEK_ENV_VAR, float_from_env

ALERTS_RESOURCE_KEY = "mta_alerts"
READINGS_KEY = dg.AssetKey("turnstile_readings")
LATE_WEEK_SENSOR_NAME = "mta_late_week_sensor"
LATE_HOURS_ENV_VAR = "MTA_LATE_WEEK_HOURS"
DEFAULT_LATE_HOURS = 36.0  # Sunday 12:00 after the Saturday the file is published
NEW_YORK = ZoneInfo(calendar.TIMEZONE)


def late_hours_from_env(environ=None) -> float:
    return float_from_env(LATE_HOURS_ENV_VAR, DEFAULT_LATE_HOURS, 0.0, 24.0 * 28, environ=environ)


def week_deadline(week: str, hours: float) -> dt.datetime:
    """When the week's table must exist: ``hours`` of New York wall time after publication midnight."""
    midnight = dt.datetime.combine(calendar.publication_date(week), dt.time(), tzinfo=NEW_YORK)
    return midnight + dt.timedelta(hours=hours)  # same-zone arithmetic is wall-clock: DST keeps 12:00 at 12:00


def expected_week(
    now: dt.datetime, hours: float, last_week: str | None = None
) -> tuple[str | None, dt.datetime | None]:
    """The newest week whose deadline passed at ``now`` (never after ``last_week``), with that deadline."""
    week = calendar.latest_published_week(now)
    if week is not None and last_week is not None:
        week = min(week, last_week)
    while week is not None and week >= calendar.FIRST_WEEK:
        if (deadline := week_deadline(week, hours)) <= now:
            return week, deadline
        week = calendar.shift_week(week, -1)
    return None, None


def week_is_materialized(instance: dg.DagsterInstance, week: str) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=READINGS_KEY, asset_partitions=[week]), limit=1
    ).records
    return bool(records)


def late_week_alert(week: str, deadline: dt.datetime, hours: float, ui_url: str, last_week: str | None) -> Alert:
    lines = [
        f"Week: {week} (file {calendar.file_name_for_week(week)}, "
        f"published {calendar.publication_date(week):%a %Y-%m-%d})",
        f"Deadline: {deadline:%a %Y-%m-%d %H:%M %Z} ({hours:g} h after publication, {LATE_HOURS_ENV_VAR})",
        f"Sensor: {LATE_WEEK_SENSOR_NAME}",
        f"Asset: {ui_url.rstrip('/')}/assets/{READINGS_KEY.to_user_string()}",
    ]
    if last_week is None:
        # MTA's archive has no announced end: only a person can declare that it stopped.
        lines.append(f"If the source has stopped publishing, set {LAST_WEEK_ENV_VAR} to its last week.")
    return Alert(f"[mta_assets] Week {week} is late: turnstile_readings not materialized", "\n".join(lines))


def evaluate_late_week_tick(
    context: dg.SensorEvaluationContext, alerts: AlertDestinations, now: dt.datetime, hours: float,
    last_week: str | None = None,
) -> dg.SensorResult:
    """One tick at ``now``: alert once per late week (the cursor keeps the week alerted); no runs."""
    state = json.loads(context.cursor) if context.cursor else {}
    week, deadline = expected_week(now, hours, last_week)
    if week is None or deadline is None:
        message = "No week is due yet."
    elif week_is_materialized(context.instance, week):
        message = f"Week {week} is materialized."
        if week == last_week:
            message += f" It is the declared last week ({LAST_WEEK_ENV_VAR}); no later week is expected."
    elif state.get("alerted_week") == week:
        message = f"Week {week} is late; already alerted."
    else:
        delivery = alerts.send(late_week_alert(week, deadline, hours, alerts.ui_url, last_week), context.log)
        if delivery.any_delivered:
            state["alerted_week"] = week
            message = f"Week {week} is late; alerted via {', '.join(delivery.delivered)}."
        elif not delivery.configured:
            message = f"Week {week} is late; no alert destination configured."
        else:  # the cursor is not moved: the next tick tries again
            message = f"Week {week} is late; alert delivery failed ({', '.join(delivery.failed)}), will retry."
    return dg.SensorResult(skip_reason=dg.SkipReason(message), cursor=json.dumps(state, sort_keys=True))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dg.sensor(
    name=LATE_WEEK_SENSOR_NAME,
    minimum_interval_seconds=15 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Alerts once per late week ({LATE_HOURS_ENV_VAR}, never after {LAST_WEEK_ENV_VAR}); requests no runs.",
)
def mta_late_week_sensor(context: dg.SensorEvaluationContext, mta_alerts: AlertDestinations) -> dg.SensorResult:
    return evaluate_late_week_tick(context, mta_alerts, _now(), late_hours_from_env(), LAST_WEEK)


def weeks_of_run(tags: dict[str, str]) -> str:
    """The week(s) a run worked on, from Dagster's partition tags, in words."""
    if tags.get("dagster/partition"):
        return f"week {tags['dagster/partition']}"
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start and end:
        return f"week {start}" if start == end else f"weeks {start} to {end}"
    return "no particular week"


def _first_line(error) -> str:
    """The innermost cause's first line, without the module path: the user's exception, not Dagster's wrapper."""
    while error is not None and error.cause is not None:
        error = error.cause
    lines = [line.strip() for line in (error.message if error else "").splitlines() if line.strip()]
    head, sep, rest = (lines[0] if lines else "(no error recorded)").partition(": ")
    return f"{head.rsplit('.', 1)[-1]}: {rest}" if sep and " " not in head else f"{head}{sep}{rest}"


def _events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list:
    records = instance.get_records_for_run(run_id=run_id, of_type=kind).records
    return [record.event_log_entry.dagster_event for record in records if record.event_log_entry.dagster_event]


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """'asset:check (first line of its description)' for each blocking ERROR check that failed."""
    failed = []
    for event in _events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        check = event.event_specific_data
        if not check.passed and check.blocking and check.severity == dg.AssetCheckSeverity.ERROR:
            why = (check.description or "").splitlines()[:1]
            failed.append(f"{check.asset_key.to_user_string()}:{check.check_name}" + (f" ({why[0]})" if why else ""))
    return failed


def _run_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    if run.asset_selection:
        return set(run.asset_selection)
    return {e.asset_key for e in _events(instance, run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)}


def run_failure_alert(context: dg.RunFailureSensorContext, ui_url: str) -> Alert | None:
    """The alert for a failed run, or None when the run is another code location's.

    The sensor watches every location because CLI runs carry no location origin.
    """
    run, instance, repository = context.dagster_run, context.instance, context.repository_def
    hidden_job = run.job_name.startswith("__")  # Dagster's asset jobs: UI and CLI materializations
    assets = _run_assets(instance, run) if hidden_job else set()
    if repository is not None:  # None in unit contexts: every run counts
        ours = assets & set(repository.assets_defs_by_key) if hidden_job else run.job_name in repository.job_names
        if not ours:
            return None
    names = sorted(key.to_user_string() for key in assets)
    job = f"materialization of {', '.join(names)}" if hidden_job else run.job_name
    weeks = weeks_of_run(dict(run.tags))
    steps = context.get_step_failure_events()
    checks = _failed_checks(instance, run.run_id)
    lines = [f"Job: {job}", f"Partition: {weeks}"]
    if run.tags.get("dagster/backfill"):
        lines.append(f"Backfill: {run.tags['dagster/backfill']}")
    for event in steps:
        lines += [f"Failed step: {event.step_key}", f"Error: {_first_line(event.event_specific_data.error)}"]
    if not steps:
        lines.append(f"Error: {_first_line(getattr(context.failure_event.event_specific_data, 'error', None))}")
    lines += [f"Blocking check failed: {check}" for check in checks]
    lines.append(f"Run: {ui_url.rstrip('/')}/runs/{run.run_id}")
    first, more = (f"blocking check {checks[0].split(' (')[0]}", len(checks) - 1) if checks else (
        (f"step {steps[0].step_key}", len(steps) - 1) if steps else ("the run", 0)
    )
    what = first + (f" and {more} more" if more else "")
    return Alert(f"[mta_assets] {job} failed for {weeks}: {what}", "\n".join(lines))


@dg.run_failure_sensor(
    name="mta_run_failure_alert_sensor",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per failed run of this code location, including runs stopped by a blocking check.",
)
def mta_run_failure_alert_sensor(context: dg.RunFailureSensorContext, mta_alerts: AlertDestinations) -> None:
    # The run status cursor moves past each run once this returns: a run alerts once,
    # and a delivery that failed is logged by send().
    alert = run_failure_alert(context, mta_alerts.ui_url)
    if alert is not None:
        mta_alerts.send(alert, context.log)


alert_sensors = [mta_run_failure_alert_sensor, mta_late_week_sensor]
monitoring_resources = {ALERTS_RESOURCE_KEY: AlertDestinations.from_env()}
