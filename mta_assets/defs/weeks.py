"""What a step over a range of weeks records: each week's materializations and check results, on its own partition.

The one workaround for what Dagster lacks, shared by every weekly step. Dagster records a
ranged step's outputs as materialized for every week of the range and has no partial
success (dagster-io/dagster#17836), and a check result cannot name a partition
(``AssetCheckResult`` has no ``partition``). So:

- every check result is logged as an ``AssetCheckEvaluation`` on its week's partition, as
  soon as the week is done, in single weeks and ranges alike (the ridership step's once its
  weeks are settled: a week whose readings another run replaced meanwhile is computed again,
  and only the results recorded with it are logged);
- when every week succeeded, the step yields one ``MaterializeResult`` per asset and each
  week's own metadata is attached to its partition (``add_asset_metadata``);
- when some week was skipped (MTA's official data not published yet: not an error), the good
  weeks are logged as ``AssetMaterialization`` events and the step ends without outputs, so
  the skipped weeks stay missing (Dagster then skips this step's downstream steps in the run;
  automation brings them up to date);
- when some week failed, the good weeks are logged as ``AssetMaterialization`` events on
  their partitions and the step then fails naming each failed week and its cause. The
  failed weeks stay missing, so *Materialize -> missing* re-runs exactly them, and the
  good weeks' downstream assets follow through their automation condition
  (``defs/automation.py``), since Dagster skips the downstream steps of a failed step.

Once the source is found down (two weeks kept failing past their own transport retries, no
week committed in between), the weeks not yet started are failed without being tried
(``held_back``): each would wait out the same retries against the same outage (14 s a week
at the defaults: six minutes for a year, per attempt). One week failing so is not enough:
it may be that week's file alone (a 5xx on it, a stall), and the other weeks must still
get theirs. The held-back weeks are retryable, so the step's ``RetryPolicy``
(``WEEK_RETRY_POLICY``) tries them again after its delay, when the source may be back.

A step interrupted (Terminate) records the weeks it committed before the interrupt the
same way (``record_committed``): they are in the lake.

A retry of the step works on ``to_do`` only: the weeks an earlier attempt in the same run
neither committed nor failed for good. The committed ones were recorded on their partitions
when that attempt failed, and keep their objects; they are not downloaded and computed again.
A week that failed permanently (a page that is not a turnstile file, a failed blocking check)
fails once: the step is retried for its other weeks' transient failures, and trying that week
again would only fetch, quarantine and fail it again. Its failure is read back from the
run's own event log (the line ``failed`` logs for it, ``PERMANENT_FAILURE``), so the retry
reports it failed with its original cause without touching it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import dagster as dg

from mta_assets.storage.deadline import is_interrupt


def week_check_spec(
    name: str, asset: dg.AssetKey, description: str, blocking: bool, partitions_def: dg.PartitionsDefinition
) -> dg.AssetCheckSpec:
    """A check whose results ``WeekReport`` records week by week.

    Its blocking is the week's own: a week failing it is not committed (the steps' gate), and
    each evaluation says ``blocking``. The spec is not marked blocking for Dagster, whose
    blocking gates downstream steps on a yielded result: a ranged step yields none per week
    (#17836), so Dagster would only warn on every run that the check "emitted no result".
    """
    text = f"{description} Blocking: a week that fails it is not committed." if blocking else description
    return dg.AssetCheckSpec(name, asset=asset, description=text, partitions_def=partitions_def)


# The weekly download steps' retry policy: a transient failure (an outage of the source or
# the lake) retried twice, 10 s then about 20 s later.
WEEK_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
# Weeks whose source failed past its retries before the source counts as down.
SOURCE_DOWN_AFTER = 2
# How ``failed`` logs a permanent failure. A retry of the step reads these lines back from
# the run's event log: Dagster keeps no other per-week record of a failure (the step's
# Failure and its metadata are not in the retry event), and a line in the run's log is
# there for whichever process runs the retry. The progress part holds no parentheses.
PERMANENT_FAILURE = re.compile(r"week (?P<week>\S+) failed permanently \([^()]*\): (?P<cause>.*)", re.S)


class WeekReport:
    """Collects each week's outcome as the step goes, then records them the one way above."""

    def __init__(self, context: dg.AssetExecutionContext, weeks: Iterable[str]):
        self.context = context
        self.weeks = list(weeks)
        self.done: dict[str, Mapping[dg.AssetKey, Mapping[str, Any]]] = {}
        self.failures: dict[str, str] = {}
        self.skips: dict[str, str] = {}
        self.retryable: set[str] = set()
        # Weeks whose source failed past its retries, since the last week committed in this attempt.
        self.source_failed: list[str] = []
        self.held: list[str] = []  # weeks failed without being tried, once the source counts as down
        self.started = time.perf_counter()
        # Weeks an earlier attempt of this step committed and recorded (a retry; none in a first attempt).
        self.resumed = self._committed_earlier() if context.retry_number else {}
        self.done.update(self.resumed)
        if self.resumed:
            context.log.info(
                f"retry: {len(self.resumed)} week(s) committed by an earlier attempt are kept, not run again "
                f"({', '.join(sorted(self.resumed))})"
            )
        # Weeks that failed permanently in an earlier attempt: failed again, with that cause, untried.
        self.failed_before = self._failed_earlier() if context.retry_number else {}
        self.failures.update(self.failed_before)
        if self.failed_before:
            context.log.info(
                f"retry: {len(self.failed_before)} week(s) that failed permanently in an earlier attempt are not "
                f"tried again ({', '.join(sorted(self.failed_before))})"
            )

    @property
    def to_do(self) -> list[str]:
        """The weeks this attempt works on: all of them, but on a retry neither those already
        committed nor those that failed permanently."""
        return [week for week in self.weeks if week not in self.resumed and week not in self.failed_before]

    def _committed_earlier(self) -> dict[str, Mapping[dg.AssetKey, Mapping[str, Any]]]:
        """Each week whose every selected asset an earlier attempt in this run recorded, with that metadata."""
        keys = set(self.context.selected_asset_keys)
        found: dict[str, dict[dg.AssetKey, Mapping[str, Any]]] = {}
        records = self.context.instance.all_logs(self.context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        for record in records:
            event = record.dagster_event
            if event is not None and event.asset_key in keys and event.partition in self.weeks:
                found.setdefault(event.partition, {})[event.asset_key] = record.asset_materialization.metadata
        return {week: assets for week, assets in found.items() if set(assets) == keys}

    def _failed_earlier(self) -> dict[str, str]:
        """Each week of this step that an earlier attempt in this run logged as failed permanently, with its cause."""
        found: dict[str, str] = {}
        for record in self.context.instance.all_logs(self.context.run.run_id):
            # The step's own lines: a user log line has no Dagster event, and its step key is the op's name.
            if record.dagster_event is not None or record.step_key != self.context.op_def.name:
                continue
            match = PERMANENT_FAILURE.fullmatch(record.user_message)
            if match and match["week"] in self.weeks and match["week"] not in self.resumed:
                found[match["week"]] = match["cause"]
        return found

    def checks(self, week: str, results: Iterable[dg.AssetCheckResult], blocking: frozenset[str]) -> None:
        """Log the week's check results on its partition (the selected checks only)."""
        selected = self.context.selected_asset_check_keys
        for result in results:
            if dg.AssetCheckKey(result.asset_key, result.check_name) not in selected:
                continue
            self.context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=result.asset_key,
                    check_name=result.check_name,
                    passed=result.passed,
                    metadata=result.metadata,
                    severity=result.severity,
                    description=result.description,
                    partition=week,
                    blocking=result.check_name in blocking,
                )
            )

    def committed(self, week: str, metadata: Mapping[dg.AssetKey, Mapping[str, Any]], note: str = "") -> None:
        self.done[week] = metadata
        self.source_failed.clear()  # the source answered: an earlier failure was that week's own
        self.context.log.info(f"week {week} committed{note} ({self.progress()})")

    def failed(self, week: str, message: str, retryable: bool = False, source_down: bool = False) -> None:
        """A week that was not committed; ``source_down`` when its source kept failing past its retries."""
        self.failures[week] = message if week in message else f"week {week}: {message}"
        if retryable:
            self.retryable.add(week)
        if source_down:
            self.source_failed.append(week)
        if retryable:
            self.context.log.error(f"{self.failures[week]} ({self.progress()})")
        else:  # read back by a retry of the step (``_failed_earlier``)
            self.context.log.error(f"week {week} failed permanently ({self.progress()}): {self.failures[week]}")

    def held_back(self, week: str) -> bool:
        """Fail ``week`` without trying it once the source was found down in this attempt."""
        if len(self.source_failed) < SOURCE_DOWN_AFTER:
            return False
        seen = " and ".join(sorted(self.source_failed[:SOURCE_DOWN_AFTER]))
        if not self.held:
            self.context.log.warning(
                f"the source is down (weeks {seen} failed past their retries): the weeks not started yet are not "
                "tried in this attempt"
            )
        self.held.append(week)
        self.failures[week] = f"week {week}: not tried, the source was down (see weeks {seen})"
        self.retryable.add(week)
        return True

    def skipped(self, week: str, reason: str) -> None:
        """A week with nothing to do yet (not an error, no alert): it stays missing."""
        self.skips[week] = reason
        self.context.log.info(f"week {week} skipped: {reason}")

    def progress(self) -> str:
        finished, total = len(self.done) + len(self.failures), len(self.weeks)
        elapsed = time.perf_counter() - self.started
        # Weeks settled by an earlier attempt took no time in this one: the rate leaves them out.
        worked = finished - len(self.resumed) - len(self.failed_before)
        eta = elapsed / worked * (total - finished) if worked > 0 else 0.0
        return f"{finished} of {total} weeks, {len(self.failures)} failed, elapsed {elapsed:.0f} s, ETA {eta:.0f} s"

    def record_committed(self, keys: Iterable[dg.AssetKey]) -> None:
        """Each week committed in this attempt as materialization events on its partition, for a
        step that ends without outputs (some week failed or was skipped, or the run was interrupted)."""
        keys = list(keys)
        for week, assets in self.done.items():
            if week in self.resumed:
                continue  # recorded by the attempt that committed it
            for key in keys:
                self.context.log_event(dg.AssetMaterialization(asset_key=key, partition=week, metadata=assets[key]))

    @contextlib.contextmanager
    def recording_if_interrupted(self, keys: Iterable[dg.AssetKey]) -> Iterator[None]:
        """Around a step's loop over its weeks: an interrupt (Terminate) propagates once the
        weeks committed so far are recorded; their objects are in the lake."""
        try:
            yield
        except BaseException as exc:
            if is_interrupt(exc):
                self.record_committed(keys)
            raise

    def finish(self, keys: Iterable[dg.AssetKey], totals: Mapping[str, Any] | None = None) -> Iterator[dg.MaterializeResult]:
        """The step's results: materializations of every good week, then a failure naming the bad ones."""
        keys = list(keys)
        if totals:
            self.context.log.info(f"range totals: {dict(totals)}")
        if self.failures or self.skips:
            self.record_committed(keys)
        if self.skips and not self.failures:
            return  # no outputs: the skipped weeks stay missing (the outputs are skippable)
        if self.failures:
            failed = sorted(self.failures)
            raise dg.Failure(
                description=f"{len(failed)} of {len(self.weeks)} week(s) failed: "
                + "; ".join(self.failures[week] for week in failed),
                metadata={
                    "failed_weeks": dg.MetadataValue.json(failed),
                    "committed_weeks": dg.MetadataValue.json(sorted(self.done)),
                    **(totals or {}),
                },
                # Only a transient cause (a lake or source outage) is worth the step's retry.
                allow_retries=bool(self.retryable),
            )
        # Every week of the range gets a materialization from these results, the resumed ones
        # again: with the metadata they were committed with, so their row counts stay latest.
        for week, assets in self.done.items():
            for key in keys:
                self.context.add_asset_metadata(dict(assets[key]), asset_key=key, partition_key=week)
        for key in keys:
            yield dg.MaterializeResult(asset_key=key)
