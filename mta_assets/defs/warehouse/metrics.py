"""Per-week numbers for Dagster's Plots tab, read from the warehouse after a build."""

from collections.abc import Callable
from pathlib import Path

from mta_assets.defs.ridership.checks import full_days
from mta_assets.storage.duckdb_file import WarehouseBusy, lock_errors_as_busy, while_busy

# Over the week's full days only, Saturday to Thursday, as ridership_daily's own figures: its
# Friday ends in the next week's file, so a Friday (and with it the week's mean) would change
# when that week lands, and a week's figures are recorded once, when the week is built. The
# ratio is a ratio of sums, as ridership_daily's; system_daily's own column is null on a
# Saturday whose week before is not loaded, so it is not used here.
_QUERY = """
select avg(entries_turnstile),
       sum(entries_turnstile) filter (where entries_official > 0)
         / nullif(sum(entries_official) filter (where entries_turnstile is not null and entries_official > 0), 0),
       sum(intervals_dropped) / nullif(sum(intervals), 0)
from system_daily
where date between cast(? as date) and cast(? as date)
"""


def week_metrics(
    database: Path, weeks: list[str], deadline_s: float,
    on_wait: Callable[[WarehouseBusy, float], None] | None = None,
) -> dict[str, dict[str, float | str]]:
    """week -> mean daily entries, turnstile over official, share of intervals dropped, and the days they cover.

    Over the week's full days, Saturday to Thursday (``full_days``), whatever its neighbours:
    a week built before or after the next one records the same figures.

    Read once this run's dbt has closed the file, when another run's dbt may already have
    it (DuckDB has one writer, and even a reader needs the lock): waited for like a build,
    at most ``deadline_s``; ``WarehouseBusy`` after that.
    """
    import duckdb

    def read() -> dict[str, dict[str, float | str]]:
        metrics: dict[str, dict[str, float | str]] = {}
        with lock_errors_as_busy(database), duckdb.connect(str(database), read_only=True) as connection:
            for week in weeks:
                first, last = full_days(week)
                mean, ratio, dropped = connection.execute(_QUERY, [first, last]).fetchone()
                values = {"mean_daily_entries": mean, "turnstile_over_official": ratio, "intervals_dropped_share": dropped}
                figures: dict[str, float | str] = {
                    name: round(float(value), 5) for name, value in values.items() if value is not None
                }
                if figures:
                    figures["figures_days"] = (
                        f"{first:%a %Y-%m-%d} to {last:%a %Y-%m-%d}, the week's full days "
                        "(its Friday ends in the next week's file)"
                    )
                metrics[week] = figures
        return metrics

    return while_busy(read, database, deadline_s, on_wait)
