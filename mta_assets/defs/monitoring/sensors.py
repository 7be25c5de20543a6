"""Failure and late-week monitoring: sensors that alert a person.

Failed runs -> ``mta_run_failure_alert_sensor`` (one alert per failed run). A blocking
asset check that fails at ERROR severity fails its step (Dagster raises
``DagsterAssetCheckFailedError`` after the step's events), so its run ends FAILURE and
this same sensor alerts, naming the failed checks read from the run's
``ASSET_CHECK_EVALUATION`` events. No second sensor is needed: a run cannot succeed
with a blocking ERROR check failed, and WARN-severity checks do not block.

Late week -> ``mta_late_week_sensor`` only, on its own 15-minute cadence. Lateness is not
a property of the week a run materializes, so it is never an asset check: a check on
``turnstile_readings`` would run inside every materialization and paint an unrelated
week red. The sensor asks about one specific partition, the newest week whose deadline
has passed (never after the declared last week, ``MTA_LAST_WEEK``), so backfilling older
weeks cannot make a missing week look fresh, and alerts once per late week (cursor).

Why a sensor and not Dagster's freshness features: ``FreshnessPolicy`` (preview in 1.13,
behind an instance flag) judges an asset by its latest materialization of any partition,
so a backfill of an old week would make a missing new week look fresh;
``build_time_partition_freshness_checks`` (superseded by it) is per partition but is an
asset check, runs when the asset's checks are selected in a run, takes only a cron
deadline, and alerts only through Dagster+. The sensor keeps the per-partition deadline,
the declared last week and our own alert delivery.
"""

import datetime as dt
import json
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg

from mta_assets.defs.monitoring.delivery import Alert, AlertDestinations
from mta_assets.defs.turnstile.partitions import LAST_WEEK
from mta_assets.mta import calendar as partitions
from mta_assets.settings import LAST_WEEK_ENV_VAR

ALERTS_RESOURCE_KEY = "mta_alerts"
READINGS_KEY = dg.AssetKey("turnstile_readings")
LATE_WEEK_SENSOR_NAME = "mta_late_week_sensor"
DEADLINE_ENV_VAR = "MTA_LATE_WEEK_DEADLINE"
DEFAULT_DEADLINE = "sunday 12:00"
NEW_YORK = ZoneInfo(partitions.TIMEZONE)

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
BACKFILL_TAG = "dagster/backfill"

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY_DEADLINE = re.compile(r"^\s*([a-z]+)\s+(\d{1,2}):(\d{2})\s*$", re.IGNORECASE)
_HOURS_DEADLINE = re.compile(r"^\s*\+?(\d+(?:\.\d+)?)\s*h(?:ours?)?\s*$", re.IGNORECASE)


# -- late week: pure logic ------------------------------------------------------


@dataclass(frozen=True)
class LateWeekDeadline:
    """When a week's table must exist, relative to its file's publication Saturday.

    Two spellings (New York time):
    - ``"<weekday> HH:MM"``: the first such moment on or after the publication Saturday
      00:00, e.g. ``"sunday 12:00"`` (the default) or ``"saturday 18:00"`` (same day);
    - ``"<N>h"``: N hours after the publication Saturday 00:00, e.g. ``"36h"``.
    """

    weekday: int | None = None  # Monday = 0, as datetime.weekday()
    time_of_day: dt.time | None = None
    hours_after_publication: float | None = None

    @classmethod
    def parse(cls, text: str) -> "LateWeekDeadline":
        if match := _HOURS_DEADLINE.match(text):
            return cls(hours_after_publication=float(match.group(1)))
        if match := _WEEKDAY_DEADLINE.match(text):
            day, hour, minute = match.group(1).lower(), int(match.group(2)), int(match.group(3))
            if day in _WEEKDAYS and hour < 24 and minute < 60:
                return cls(weekday=_WEEKDAYS.index(day), time_of_day=dt.time(hour, minute))
        raise ValueError(
            f"{DEADLINE_ENV_VAR}={text!r} is not a deadline: use '<weekday> HH:MM' "
            f"(e.g. '{DEFAULT_DEADLINE}') or '<hours>h' after publication (e.g. '36h'), New York time"
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "LateWeekDeadline":
        import os

        env = os.environ if environ is None else environ
        return cls.parse(env.get(DEADLINE_ENV_VAR) or DEFAULT_DEADLINE)

    def for_week(self, week: str) -> dt.datetime:
        """The deadline of a week's table, as an aware New York datetime."""
        published = partitions.publication_date(week)
        midnight = dt.datetime.combine(published, dt.time(), tzinfo=NEW_YORK)
        if self.hours_after_publication is not None:
            # Wall-clock arithmetic in UTC so a DST change does not shift the hour count.
            utc = midnight.astimezone(dt.timezone.utc) + dt.timedelta(hours=self.hours_after_publication)
            return utc.astimezone(NEW_YORK)
        days_ahead = ((self.weekday or 0) - published.weekday()) % 7
        day = published + dt.timedelta(days=days_ahead)
        return dt.datetime.combine(day, self.time_of_day or dt.time(), tzinfo=NEW_YORK)

    def __str__(self) -> str:
        if self.hours_after_publication is not None:
            return f"{self.hours_after_publication:g}h after publication ({partitions.TIMEZONE})"
        return f"{_WEEKDAYS[self.weekday or 0]} {self.time_of_day:%H:%M} ({partitions.TIMEZONE})"


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("monitoring times must be timezone-aware")
    return moment


def expected_week(
    now: dt.datetime, deadline: LateWeekDeadline, last_week: str | None = None
) -> tuple[str | None, dt.datetime | None]:
    """The newest week whose deadline has passed at ``now``, with that deadline.

    Before the newest published week's deadline, its predecessor is the one that must
    exist, so a Saturday morning does not forgive a week missing since last Sunday.
    With a declared ``last_week`` no later week is ever expected.
    """
    now = _aware(now)
    week = partitions.latest_published_week(now)
    if week is not None and last_week is not None:
        week = min(week, last_week)
    while week is not None and week >= partitions.FIRST_WEEK:
        deadline_time = deadline.for_week(week)
        if deadline_time <= now:
            return week, deadline_time
        week = (partitions.week_start(week) - dt.timedelta(days=7)).strftime(partitions.KEY_FORMAT)
    return None, None


def late_week_status(
    now: dt.datetime,
    materialized_at: dt.datetime | None,
    deadline: LateWeekDeadline,
    last_week: str | None = None,
) -> tuple[bool, str | None, dt.datetime | None]:
    """(is_late, week, deadline_time) for the newest week whose deadline passed at ``now``.

    ``materialized_at`` is when that week's ``turnstile_readings`` partition was last
    materialized, None if never. A week materialized after its deadline is no longer
    late: the alert is about missing data, not about a delay that has been repaired.
    """
    week, deadline_time = expected_week(now, deadline, last_week)
    if week is None:
        return False, None, None
    return materialized_at is None, week, deadline_time


def week_materialized_at(instance: dg.DagsterInstance, week: str) -> dt.datetime | None:
    """Time of the latest materialization of exactly this week's table partition."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=READINGS_KEY, asset_partitions=[week]), limit=1
    )
    if not result.records:
        return None
    return dt.datetime.fromtimestamp(result.records[0].timestamp, tz=dt.timezone.utc)


@dataclass(frozen=True)
class LateWeekReport:
    """What the late-week sensor found at one moment: the week due, and whether it is late."""

    week: str | None
    deadline_time: dt.datetime | None
    materialized_at: dt.datetime | None
    is_late: bool
    description: str


def late_week_report(
    instance: dg.DagsterInstance,
    now: dt.datetime,
    deadline: LateWeekDeadline,
    last_week: str | None = None,
) -> LateWeekReport:
    """Whether the week due at ``now`` has its table in ``instance``; tests call it at fixed times."""
    week, deadline_time = expected_week(now, deadline, last_week)
    materialized_at = week_materialized_at(instance, week) if week is not None else None
    is_late = week is not None and materialized_at is None
    if week is None:
        description = "No week is due yet."
    elif is_late:
        description = (
            f"Week {week} ({partitions.file_name_for_week(week)}) is not materialized; it was due "
            f"{deadline_time:%a %Y-%m-%d %H:%M %Z}."
        )
    else:
        description = f"Week {week} is materialized."
    if week is not None and week == last_week:
        description += f" It is the declared last week ({LAST_WEEK_ENV_VAR}); no later week is expected."
    return LateWeekReport(week, deadline_time, materialized_at, is_late, description)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- late week: sensor ----------------------------------------------------------


def _read_cursor(cursor: str | None) -> dict[str, str]:
    try:
        value = json.loads(cursor) if cursor else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def late_week_alert(
    week: str, deadline_time: dt.datetime, deadline: LateWeekDeadline, ui_url: str, last_week: str | None = None
) -> Alert:
    asset_url = f"{ui_url.rstrip('/')}/assets/{READINGS_KEY.to_user_string()}"
    lines = [
        f"Week: {week} (file {partitions.file_name_for_week(week)}, published "
        f"{partitions.publication_date(week):%a %Y-%m-%d})",
        f"Deadline: {deadline_time:%a %Y-%m-%d %H:%M %Z} (rule: {deadline})",
        f"Sensor: {LATE_WEEK_SENSOR_NAME}",
        f"Asset: {asset_url}",
    ]
    if last_week is None:
        # MTA's archive has no announced end: the likeliest cause of a late week is that
        # the source stopped publishing, which only a person can declare.
        lines.append(f"If the source has stopped publishing, set {LAST_WEEK_ENV_VAR} to its last week.")
    return Alert(
        subject=f"[mta_assets] Week {week} is late: turnstile_readings not materialized",
        body="\n".join(lines),
    )


def evaluate_late_week_tick(
    context: dg.SensorEvaluationContext,
    alerts: AlertDestinations,
    now: dt.datetime,
    deadline: LateWeekDeadline | None = None,
    last_week: str | None = None,
) -> dg.SensorResult:
    """One tick of ``mta_late_week_sensor`` at ``now`` (tests pass fixed times).

    The cursor remembers the last week alerted, so a late week alerts once; a week
    whose alert reached no destination is tried again next tick. The tick never
    requests a run and records nothing on the asset: its result is the alert and
    the tick's message in the sensor's history.
    """
    deadline = deadline or LateWeekDeadline.from_env()
    state = _read_cursor(context.cursor)
    state.pop("recorded", None)  # written by the former late-week check; nothing reads it now
    report = late_week_report(context.instance, now, deadline, last_week)
    week = report.week

    if not report.is_late or week is None or report.deadline_time is None:
        message = report.description
    elif state.get("alerted_week") == week:
        message = f"Week {week} is late; already alerted."
    else:
        alert = late_week_alert(week, report.deadline_time, deadline, alerts.ui_url, last_week)
        delivery = alerts.send(alert, context.log)
        if delivery.any_delivered:
            state["alerted_week"] = week
            message = f"Week {week} is late; alerted via {', '.join(delivery.delivered)}."
        elif not delivery.configured:
            message = f"Week {week} is late; no alert destination configured."
        else:
            message = f"Week {week} is late; alert delivery failed ({', '.join(delivery.failed)}), will retry."
    return dg.SensorResult(skip_reason=dg.SkipReason(message), cursor=json.dumps(state, sort_keys=True))


@dg.sensor(
    name=LATE_WEEK_SENSOR_NAME,
    minimum_interval_seconds=15 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Alerts once per late week: the newest week whose deadline passed "
        f"({DEADLINE_ENV_VAR}; never after {LAST_WEEK_ENV_VAR}) has no turnstile_readings "
        "materialization. Requests no runs and records nothing on the asset."
    ),
)
def mta_late_week_sensor(context: dg.SensorEvaluationContext, mta_alerts: AlertDestinations) -> dg.SensorResult:
    return evaluate_late_week_tick(context, mta_alerts, _now(), last_week=LAST_WEEK)


# -- failed runs ----------------------------------------------------------------


def weeks_of_run(tags: dict[str, str]) -> str:
    """The week(s) a run worked on, from Dagster's partition tags, in words."""
    if tags.get(PARTITION_TAG):
        return f"week {tags[PARTITION_TAG]}"
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return f"week {start}" if start == end else f"weeks {start} to {end}"
    return "no particular week"


def _first_line(error) -> str:
    """The innermost cause's first line: the user's exception, not Dagster's wrapper."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    if error is None:
        return "(no error recorded)"
    lines = [line.strip() for line in (error.message or "").splitlines() if line.strip()]
    first = lines[0] if lines else (error.cls_name or "error")
    # Drop the module path Python puts before the class name.
    head, sep, rest = first.partition(": ")
    if sep and "." in head and " " not in head:
        first = f"{head.rsplit('.', 1)[-1]}: {rest}"
    return first


def failed_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(check, description) of every blocking ERROR check that failed in the run."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    failed = []
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if (
            evaluation is not None
            and not evaluation.passed
            and evaluation.blocking
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            failed.append((name, (evaluation.description or "").splitlines()[0] if evaluation.description else ""))
    return failed


def run_asset_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    """Assets a run set out to materialize (its selection, else its planned materializations)."""
    if run.asset_selection:
        return set(run.asset_selection)
    planned = instance.get_records_for_run(
        run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return {
        record.event_log_entry.dagster_event.asset_key
        for record in planned
        if record.event_log_entry.dagster_event and record.event_log_entry.dagster_event.asset_key
    }


def run_label(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """The job's name, or for Dagster's hidden asset jobs (UI/CLI materializations) the assets."""
    if not run.job_name.startswith("__"):
        return run.job_name
    assets = sorted(key.to_user_string() for key in run_asset_keys(instance, run))
    return f"materialization of {', '.join(assets)}" if assets else "asset run"


def run_belongs_here(context: dg.RunStatusSensorContext) -> bool:
    """Whether a failed run is this code location's: one of its jobs, or its assets.

    The sensor watches every location because ``dagster asset materialize`` (CLI) runs
    carry no code location origin and would otherwise be missed; this keeps other
    locations' failures out. Without a repository (unit contexts) every run counts.
    """
    repository = context.repository_def
    run = context.dagster_run
    if repository is None:
        return True
    if not run.job_name.startswith("__"):
        return run.job_name in repository.job_names
    return bool(run_asset_keys(context.instance, run) & set(repository.assets_defs_by_key))


def run_failure_alert(context: dg.RunFailureSensorContext, ui_url: str) -> Alert:
    run = context.dagster_run
    weeks = weeks_of_run(dict(run.tags))
    step_failures = context.get_step_failure_events()
    checks = failed_blocking_checks(context.instance, run.run_id)

    label = run_label(context.instance, run)
    lines = [f"Job: {label}", f"Partition: {weeks}"]
    if run.tags.get(BACKFILL_TAG):
        lines.append(f"Backfill: {run.tags[BACKFILL_TAG]}")
    if step_failures:
        for event in step_failures:
            error = event.event_specific_data.error if event.event_specific_data else None
            lines.append(f"Failed step: {event.step_key}")
            lines.append(f"Error: {_first_line(error)}")
    else:
        failure_data = context.failure_event.event_specific_data
        error = getattr(failure_data, "error", None)
        lines.append(f"Error: {_first_line(error) if error else (context.failure_event.message or '').strip()}")
    for name, description in checks:
        lines.append(f"Blocking check failed: {name}" + (f" ({description})" if description else ""))
    lines.append(f"Run: {ui_url.rstrip('/')}/runs/{run.run_id}")

    if checks:
        what = f"blocking check {checks[0][0]}" + (f" and {len(checks) - 1} more" if len(checks) > 1 else "")
    elif step_failures:
        what = f"step {step_failures[0].step_key}" + (
            f" and {len(step_failures) - 1} more" if len(step_failures) > 1 else ""
        )
    else:
        what = "the run"
    return Alert(subject=f"[mta_assets] {label} failed for {weeks}: {what}", body="\n".join(lines))


@dg.run_failure_sensor(
    name="mta_run_failure_alert_sensor",
    monitor_all_code_locations=True,
    description=(
        "One alert per failed run of this code location (pipeline job, asset jobs of UI/CLI "
        "materializations and backfills), including runs stopped by a blocking asset check."
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def mta_run_failure_alert_sensor(context: dg.RunFailureSensorContext, mta_alerts: AlertDestinations) -> None:
    # Returning None lets the sensor handle several failed runs per tick; the run status
    # sensor's cursor moves past each run once this returns, so a run alerts once even
    # when delivery failed (that failure is logged instead).
    if not run_belongs_here(context):
        return None
    alert = run_failure_alert(context, mta_alerts.ui_url)
    report = mta_alerts.send(alert, context.log)
    if report.failed:
        context.log.error(
            "Failure alert for run %s reached %s; failed: %s",
            context.dagster_run.run_id,
            ", ".join(report.delivered) or "no destination",
            ", ".join(report.failed),
        )


alert_sensors = [mta_run_failure_alert_sensor, mta_late_week_sensor]
monitoring_resources = {ALERTS_RESOURCE_KEY: AlertDestinations.from_env()}
