"""Per-week numbers for Dagster's Plots tab, read from the warehouse after a build."""

from pathlib import Path

_QUERY = """
select avg(entries_turnstile) filter (where turnstile_complete),
       avg(turnstile_over_official) filter (where turnstile_complete),
       sum(intervals_dropped) / nullif(sum(intervals), 0)
from system_daily
where date >= cast(? as date) and date < cast(? as date) + interval 7 day
"""


def week_metrics(database: Path, weeks: list[str]) -> dict[str, dict[str, float]]:
    """week -> mean daily entries, turnstile over official, share of intervals dropped (complete days)."""
    import duckdb

    metrics = {}
    with duckdb.connect(str(database), read_only=True) as connection:
        for week in weeks:
            mean, ratio, dropped = connection.execute(_QUERY, [week, week]).fetchone()
            values = {"mean_daily_entries": mean, "turnstile_over_official": ratio, "intervals_dropped_share": dropped}
            metrics[week] = {name: round(float(value), 5) for name, value in values.items() if value is not None}
    return metrics
