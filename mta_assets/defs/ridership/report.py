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
    """A small PNG bar chart of system entries and exits per day, inline in markdown.

    Text is what costs time in matplotlib, so the chart has only day and million ticks;
    the legend and title are markdown around it.
    """
    # Imported here: matplotlib costs about half a second and only this step needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    days = sorted(by_day)
    positions = list(range(len(days)))
    entries = [by_day[day][0] / 1e6 for day in days]
    exits = [by_day[day][1] / 1e6 for day in days]
    top = max([*entries, *exits, 0.1])
    step = next(size for size in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if top / size <= 4)
    ticks = [step * n for n in range(int(top / step) + 2)]
    # A bare Figure on the Agg canvas: no pyplot state, no GUI backend, safe in threads.
    figure = Figure(figsize=(4.8, 1.8), dpi=72)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.08, 0.14, 0.91, 0.82))
    axes.bar([p - 0.2 for p in positions], entries, width=0.4, color="tab:blue")
    axes.bar([p + 0.2 for p in positions], exits, width=0.4, color="tab:orange")
    axes.set_xticks(positions, [f"{day:%a}" for day in days], fontsize=7)
    axes.set_yticks(ticks, [f"{tick:g}M" if tick else "0" for tick in ticks], fontsize=7)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    first, last = days[0], days[-1]
    return (
        f"![system entries and exits per day, week {week}](data:image/png;base64,{encoded})\n\n"
        f"System **entries (blue)** and **exits (orange)** per day, {first:%a %Y-%m-%d} to {last:%a %Y-%m-%d}; "
        "the first and last day are partial (README \"Ridership\": the midpoint rule)."
    )


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
