"""Per-week numbers for Dagster's Plots tab, read from the warehouse after a build."""

from collections.abc import Callable
from pathlib import Path

from mta_assets.storage.duckdb_file import WarehouseBusy, lock_errors_as_busy, while_busy

_QUERY = """
select avg(entries_turnstile) filter (where turnstile_complete),
       avg(turnstile_over_official) filter (where turnstile_complete),
       sum(intervals_dropped) / nullif(sum(intervals), 0)
from system_daily
where date >= cast(? as date) and date < cast(? as date) + interval 7 day
"""


def week_metrics(
    database: Path, weeks: list[str], deadline_s: float,
    on_wait: Callable[[WarehouseBusy, float], None] | None = None,
) -> dict[str, dict[str, float]]:
    """week -> mean daily entries, turnstile over official, share of intervals dropped (complete days).

    Read once this run's dbt has closed the file, when another run's dbt may already have
    it (DuckDB has one writer, and even a reader needs the lock): waited for like a build,
    at most ``deadline_s``; ``WarehouseBusy`` after that.
    """
    import duckdb

    def read() -> dict[str, dict[str, float]]:
        metrics = {}
        with lock_errors_as_busy(database), duckdb.connect(str(database), read_only=True) as connection:
            for week in weeks:
                mean, ratio, dropped = connection.execute(_QUERY, [week, week]).fetchone()
                values = {"mean_daily_entries": mean, "turnstile_over_official": ratio, "intervals_dropped_share": dropped}
                metrics[week] = {name: round(float(value), 5) for name, value in values.items() if value is not None}
        return metrics

    return while_busy(read, database, deadline_s, on_wait)
