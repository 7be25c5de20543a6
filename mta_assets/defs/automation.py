"""The automation condition of the weekly assets downstream of the lake (ridership, warehouse)."""

from collections.abc import Sequence

import dagster as dg


def weekly_eager(optional_deps: Sequence[dg.AssetKey] = ()) -> dg.AutomationCondition:
    """``eager()`` for every weekly partition, not only the latest: a week written or replaced
    upstream, in any order, is brought up to date downstream without a manual step.

    ``optional_deps`` are upstream assets a week may lack for good (MTA's hourly ridership
    starts in 2020): their absence does not hold the week back.
    """
    condition = dg.AutomationCondition.eager().without(dg.AutomationCondition.in_latest_time_window())
    if optional_deps:
        condition = condition.replace(
            dg.AutomationCondition.any_deps_missing(),
            dg.AutomationCondition.any_deps_missing().ignore(dg.AssetSelection.assets(*optional_deps)),
        )
    return condition.with_label("weekly_eager")
