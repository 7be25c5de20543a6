"""What a week's ridership materialization shows in the UI: a chart per day and the top stations."""

from __future__ import annotations

import base64
import datetime as dt
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

TOP_STATIONS = 10


def day_chart_markdown(by_day: dict[dt.date, tuple[int, int]], week: str) -> str:
    """A small PNG bar chart of system entries and exits per day, inline in markdown."""
    # Imported here: matplotlib costs about half a second and only this step needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    days = sorted(by_day)
    labels = [f"{day:%a}\n{day:%m-%d}" for day in days]
    entries = [by_day[day][0] / 1e6 for day in days]
    exits = [by_day[day][1] / 1e6 for day in days]
    positions = list(range(len(days)))
    # A bare Figure on the Agg canvas: no pyplot state, no GUI backend, safe in threads.
    figure = Figure(figsize=(6.4, 2.4), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.08, 0.2, 0.9, 0.7))
    axes.bar([p - 0.2 for p in positions], entries, width=0.4, label="entries")
    axes.bar([p + 0.2 for p in positions], exits, width=0.4, label="exits")
    axes.set_xticks(positions, labels, fontsize=7)
    axes.set_ylabel("millions", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(f"System entries and exits per day, week {week} (first and last day partial)", fontsize=8)
    axes.legend(fontsize=7, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![system entries and exits per day, week {week}](data:image/png;base64,{encoded})"


def day_table_markdown(by_day: dict[dt.date, tuple[int, int]]) -> str:
    lines = ["| date | day | entries | exits |", "|---|---|---:|---:|"]
    lines += [f"| {day} | {day:%a} | {entries:,} | {exits:,} |" for day, (entries, exits) in sorted(by_day.items())]
    return "\n".join(lines)


def top_stations_markdown(daily_rows: pa.Table, limit: int = TOP_STATIONS) -> str:
    """The week's busiest stations by entries, as a markdown table."""
    keys = ["unit", "station", "linename"]
    totals = daily_rows.group_by(keys, use_threads=False).aggregate([("entries", "sum"), ("exits", "sum")])
    top = totals.sort_by([("entries_sum", "descending"), ("unit", "ascending")]).slice(0, limit).to_pylist()
    lines = ["| # | station | lines | unit | entries | exits |", "|---:|---|---|---|---:|---:|"]
    lines += [
        f"| {rank} | {row['station'] or '(none)'} | {row['linename'] or ''} | {row['unit']} | "
        f"{row['entries_sum']:,} | {row['exits_sum']:,} |"
        for rank, row in enumerate(top, start=1)
    ]
    return "\n".join(lines)
