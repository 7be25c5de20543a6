"""The file-arrival sensor: run a week as soon as MTA's file for it appears (or changes).

Every tick sends a HEAD request for a few expected files and requests a run of
``mta_turnstile_job`` for each week whose file is new or whose validator (ETag,
else Last-Modified, else size) changed since the sensor last saw it. The run key
is ``"{week}:{validator}"``: Dagster never launches two runs with the same key from
one sensor, so an unchanged file never runs twice even if the cursor is lost,
while a re-published, changed file gets a new key and a new run.

Which weeks a tick probes, given ``latest``, the newest week whose publication
Saturday has begun in New York:

* catch-up: the weeks after ``through`` (the newest week already examined) up to
  ``latest``, oldest first, at most ``MAX_CATCH_UP_WEEKS`` per tick; the next tick
  continues where this one stopped, so after an outage every week that appeared
  meanwhile is requested;
* recheck: the ``RECHECK_WEEKS`` newest weeks up to ``through``, whether seen or
  not, so a file published late (after its Saturday) or re-published is noticed.
  A week older than that which still answers 404 is reported and passed over:
  backfill it from the UI or CLI once it exists.

The first tick (no cursor) probes only the latest week and the one before: the
sensor watches for new files, it does not backfill 14 years of history.

The cursor is small JSON, ``{"through": week, "weeks": {week: validator}}``,
keeping the validators of the ``CURSOR_WEEKS`` newest seen weeks.

A tick never raises for the source: a 404 is "not published yet", an unreachable
source (``SourceUnavailable``) ends the tick with a ``SkipReason`` naming it, and
probes use short timeouts and one retry, within a time budget well under Dagster's
60 s sensor timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import dagster as dg

from mta_assets import settings
from mta_assets.defs.resources import MTASource
from mta_assets.defs.turnstile.jobs import mta_turnstile_job
from mta_assets.defs.turnstile.partitions import LAST_WEEK
from mta_assets.mta.calendar import FIRST_WEEK, latest_published_week, shift_week, weeks_between
from mta_assets.storage.http import RemoteFile, SourceUnavailable

MAX_CATCH_UP_WEEKS = 12
RECHECK_WEEKS = 3
CURSOR_WEEKS = 10
# Worst case per probe: 5 s to connect + 10 s to read, twice (one retry).
PROBE_CONNECT_TIMEOUT_S = 5.0
PROBE_READ_TIMEOUT_S = 10.0
PROBE_RETRIES = 1
# No new probe starts after this many seconds, so one slow probe still ends well under 60 s.
TICK_BUDGET_S = 20.0

VALIDATOR_TAG = "mta/source_validator"
URL_TAG = "mta/source_url"


# MTA_SENSOR_INTERVAL_S, at least 30 s (the settings model).
SENSOR_INTERVAL_S = settings.load().sensor_interval_s


def parse_cursor(cursor: str | None) -> tuple[str | None, dict[str, str]]:
    """(through, {week: validator}) from a cursor; an unreadable cursor counts as none."""
    if not cursor:
        return None, {}
    try:
        state = json.loads(cursor)
        weeks = {str(week): str(validator) for week, validator in state.get("weeks", {}).items()}
        through = state.get("through")
        return (str(through) if through else None), weeks
    except (ValueError, AttributeError, TypeError):
        return None, {}


def dump_cursor(through: str | None, weeks: dict[str, str]) -> str:
    newest = dict(sorted(weeks.items())[-CURSOR_WEEKS:])
    return json.dumps({"through": through, "weeks": newest}, sort_keys=True, separators=(",", ":"))


def probing_source(mta_source: MTASource) -> MTASource:
    """The same source (its URL, credentials and limits) with timeouts short enough for a sensor tick."""
    return mta_source.model_copy(
        update={
            "connect_timeout_s": min(mta_source.connect_timeout_s, PROBE_CONNECT_TIMEOUT_S),
            "read_timeout_s": min(mta_source.read_timeout_s, PROBE_READ_TIMEOUT_S),
            "retries": min(mta_source.retries, PROBE_RETRIES),
            "backoff_factor_s": min(mta_source.backoff_factor_s, 0.5),
        }
    )


def weeks_to_probe(through: str | None, latest: str) -> tuple[list[str], list[str]]:
    """(catch-up weeks, recheck weeks) for a tick; see the module docstring."""
    if through is None:
        return weeks_between(max(FIRST_WEEK, shift_week(latest, -1)), latest), []
    catch_up = weeks_between(shift_week(through, 1), latest)[:MAX_CATCH_UP_WEEKS]
    recent = max(FIRST_WEEK, shift_week(latest, -(RECHECK_WEEKS - 1)))
    recheck = weeks_between(recent, min(through, latest))
    return catch_up, recheck


def evaluate_file_arrival(
    context: dg.SensorEvaluationContext, mta_source: MTASource, now: dt.datetime
) -> dg.SensorResult:
    """One tick of ``mta_file_arrival_sensor`` as of ``now`` (injectable for tests)."""
    latest = latest_published_week(now)
    if latest is not None and LAST_WEEK is not None and latest > LAST_WEEK:
        latest = LAST_WEEK  # the source's declared last week: nothing after it is probed
    through, seen = parse_cursor(context.cursor)
    if latest is None:
        return dg.SensorResult(skip_reason=f"no week is published before {FIRST_WEEK}", cursor=context.cursor)
    catch_up, recheck = weeks_to_probe(through, latest)
    source = probing_source(mta_source)
    started = time.monotonic()

    run_requests: list[dg.RunRequest] = []
    not_published: list[tuple[str, str]] = []
    unchanged: list[str] = []
    outage: str | None = None
    out_of_time: str | None = None
    examined_through = through
    for week in recheck + catch_up:
        if time.monotonic() - started > TICK_BUDGET_S:
            out_of_time = week
            context.log.warning(f"tick time budget ({TICK_BUDGET_S:.0f} s) spent; week {week} and later wait for the next tick")
            break
        try:
            remote = source.probe(week)
        except SourceUnavailable as exc:
            outage = str(exc)
            context.log.warning(f"MTA source unavailable; stopping this tick: {outage}")
            break
        if week in catch_up:
            examined_through = week
        if remote is None:
            url = source.url_for(week)
            not_published.append((week, url))
            context.log.info(f"week {week}: {url} answered 404 (not published yet)")
            continue
        if seen.get(week) == remote.validator:
            unchanged.append(week)
            continue
        run_requests.append(_run_request(remote, previous=seen.get(week)))
        context.log.info(
            f"week {week}: {remote.url} {'changed' if week in seen else 'appeared'} "
            f"(validator {remote.validator}, {remote.size} bytes); requesting a run"
        )
        seen[week] = remote.validator

    oldest_rechecked = shift_week(latest, -(RECHECK_WEEKS - 1))
    for week, url in not_published:
        if week < oldest_rechecked:
            context.log.warning(
                f"week {week}: {url} is still not published; it is past the recheck window and "
                "will not be polled again (backfill it once MTA publishes it)"
            )
    cursor = dump_cursor(examined_through, seen)
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=cursor)
    return dg.SensorResult(skip_reason=_skip_message(not_published, unchanged, outage, out_of_time), cursor=cursor)


def _run_request(remote: RemoteFile, previous: str | None) -> dg.RunRequest:
    tags = {VALIDATOR_TAG: remote.validator, URL_TAG: remote.url}
    if previous is not None:
        tags["mta/previous_validator"] = previous
    return dg.RunRequest(run_key=f"{remote.week}:{remote.validator}", partition_key=remote.week, tags=tags)


def _skip_message(
    not_published: list[tuple[str, str]], unchanged: list[str], outage: str | None, out_of_time: str | None
) -> str:
    parts = []
    if outage:
        parts.append(f"MTA source unavailable, will retry next tick: {outage}")
    parts.extend(f"week {week}: {url} not published yet" for week, url in not_published)
    if unchanged:
        parts.append(f"unchanged since last seen: {', '.join(unchanged)}")
    if out_of_time:
        parts.append(f"tick time budget spent; continuing from week {out_of_time} next tick")
    return "; ".join(parts) or "nothing to probe"


@dg.sensor(
    job=mta_turnstile_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Requests a run for each week whose MTA file has appeared or changed (HEAD on the expected "
        "turnstile_YYMMDD.txt URL); run key = week:validator."
    ),
)
def mta_file_arrival_sensor(context: dg.SensorEvaluationContext, mta_source: MTASource) -> dg.SensorResult:
    return evaluate_file_arrival(context, mta_source, dt.datetime.now(dt.timezone.utc))
