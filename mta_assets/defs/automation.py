"""When Dagster brings a downstream week up to date on its own: one condition for every weekly asset downstream of the lake.

Dagster's ``AutomationCondition.eager()`` acts on the latest time partition only; our
weeks change in any order (a backfill, a week rebuilt after its successor, a good week of
a range whose other week failed), so the same rule applies to every week here: a week is
requested when it is newly missing or one of its upstream weeks was updated, once none of
its upstream weeks is missing or in progress. The schedule, the sensor and backfills
select the whole lineage, so this only acts on what they did not reach (README "Automation").
"""

from __future__ import annotations

import dagster as dg


def weekly_eager(
    ignore_missing: dg.AssetSelection | None = None, ignore_updates: dg.AssetSelection | None = None
) -> dg.AutomationCondition:
    """``eager()`` for every week, not only the latest.

    ``ignore_missing``: upstream assets whose missing weeks do not hold a week back; the
    ridership of week W reads W-1's readings when they exist and does without them when not.
    ``ignore_updates``: unpartitioned upstream assets whose update must not request every
    week at once (the warehouse reads MTA's daily totals and the crosswalk in every run anyway).
    """
    deps_missing = dg.AutomationCondition.any_deps_missing()
    if ignore_missing is not None:
        deps_missing = deps_missing.ignore(ignore_missing)
    # Any upstream week updated, also by a run that materialized this asset for another week:
    # ``any_deps_updated()`` ignores updates from runs that targeted this asset at all, which
    # is exactly how week W-1's rebuild reaches week W.
    deps_updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    if ignore_updates is not None:
        deps_updated = deps_updated.ignore(ignore_updates)
    # An upstream week updated after this week's own update, both seen in the same tick
    # (week W built, then W-1, within one sensor interval): ``since_last_handled`` lets the
    # reset win there, since its parts carry no event times, so W would keep what it read
    # without W-1 for good. A ``since`` whose trigger and reset are single conditions
    # compares their event times, and the later one wins. True on that tick only, so a
    # week whose run then fails is not requested again and again.
    updated_after_own = (
        deps_updated.since(dg.AutomationCondition.newly_updated()) & deps_updated
    ).with_label("upstream updated after this week")
    return (
        ((dg.AutomationCondition.newly_missing() | deps_updated).since_last_handled() | updated_after_own)
        & ~deps_missing
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("weekly_eager")
