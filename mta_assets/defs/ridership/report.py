"""What a week's ridership materialization shows in the UI: a chart per day and the top stations."""

from __future__ import annotations

import base64
import datetime as dt
import math
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

TOP_STATIONS = 10
ENTRIES_COLOR, EXITS_COLOR = "#1f77b4", "#ff7f0e"  # the blue and orange the caption names
GRID_COLOR, AXIS_COLOR = "#e6e6e6", "#888888"
OFFICIAL_COLOR = "#555555"  # MTA's daily estimate: the grey line the caption names
TICK_STEPS = (100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000)


def day_chart_markdown(
    by_day: dict[dt.date, tuple[int, int]], week: str, official: dict[dt.date, int] | None = None
) -> str:
    """A small SVG bar chart of system entries and exits per day, inline in markdown.

    The SVG is written as text: no plotting library to import (matplotlib's import was
    half a second per run), text costs nothing, and the UI scales it crisply. The legend
    is the markdown caption under it.
    """
    days = sorted(by_day)
    official = {day: count for day, count in (official or {}).items() if day in by_day}
    svg = _day_chart_svg(by_day, f"System entries and exits per day, week {week}", official)
    encoded = base64.b64encode(svg.encode()).decode()
    span = f", {days[0]:%a %Y-%m-%d} to {days[-1]:%a %Y-%m-%d}" if days else ""
    caption = (
        f"![system entries and exits per day, week {week}](data:image/svg+xml;base64,{encoded})\n\n"
        f"System **entries (blue)** and **exits (orange)** per day{span}; "
        "the first and last day are partial (docs/data.md \"Ridership\": the midpoint rule)."
    )
    ratio = turnstile_over_official(by_day, official, week)
    if ratio is not None:
        # The figure a reader must not miss: after 2020 the turnstile registers undercount.
        caption += (
            f" **MTA's daily estimate (grey line)**: turnstile entries are **{ratio:.2f}** of it on the "
            "week's full days (docs/data.md \"Official ridership and the undercount\")."
        )
    return caption


def turnstile_over_official(
    by_day: dict[dt.date, tuple[int, int]], official: dict[dt.date, int] | None, week: str
) -> float | None:
    """Turnstile entries over MTA's daily estimate, summed over the week's full days (Saturday to Thursday)."""
    start = dt.date.fromisoformat(week)
    days = [start + dt.timedelta(days=n) for n in range(6)]
    pairs = [(by_day[day][0], official[day]) for day in days if day in by_day and (official or {}).get(day)]
    return sum(t for t, _ in pairs) / sum(o for _, o in pairs) if pairs else None


def _day_chart_svg(by_day: dict[dt.date, tuple[int, int]], title: str, official: dict[dt.date, int] | None = None) -> str:
    """Per day an entries and an exits bar side by side, over million ticks with grid lines;
    MTA's daily estimate as a grey line across the day's slot where it is known."""
    official = official or {}
    width, height = 480, 180
    left, right, top, bottom = 36, 6, 8, 20  # room for the ticks on the left and the day names below
    days = sorted(by_day)
    highest = max([*(count for day in days for count in by_day[day]), *official.values()], default=0)
    # The smallest step that needs at most 4 steps (5 ticks from "0"); at least one step,
    # so an empty or all-zero week still has a scale to divide by.
    step = next((size for size in TICK_STEPS if highest <= 4 * size), TICK_STEPS[-1])
    steps = max(1, math.ceil(highest / step))
    base, scale = height - bottom, (height - bottom - top) / (steps * step)
    slot = (width - left - right) / max(1, len(days))
    bar = 0.4 * slot
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10" fill="#333333">',
        f"<title>{escape(title)}</title>",
    ]
    for n in range(steps + 1):  # a grid line and a label per tick; dy centres the label on its line
        y = base - n * step * scale
        label = f"{n * step / 1e6:g}M" if n else "0"
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID_COLOR}"/>')
        parts.append(f'<text x="{left - 4}" y="{y:.1f}" dy="0.35em" text-anchor="end">{label}</text>')
    for index, day in enumerate(days):
        middle = left + (index + 0.5) * slot
        for x, count, color in ((middle - bar, by_day[day][0], ENTRIES_COLOR), (middle, by_day[day][1], EXITS_COLOR)):
            parts.append(
                f'<rect x="{x:.1f}" y="{base - count * scale:.1f}" width="{bar:.1f}" '
                f'height="{count * scale:.1f}" fill="{color}"/>'
            )
        parts.append(f'<text x="{middle:.1f}" y="{height - 6}" text-anchor="middle">{day:%a}</text>')
        if official.get(day):
            y = base - official[day] * scale
            parts.append(
                f'<line x1="{middle - 0.45 * slot:.1f}" y1="{y:.1f}" x2="{middle + 0.45 * slot:.1f}" y2="{y:.1f}" '
                f'stroke="{OFFICIAL_COLOR}" stroke-width="2"/>'
            )
    # The axes last, over the grid and the bars' feet.
    parts.append(f'<path d="M{left} {top}V{base}H{width - right}" fill="none" stroke="{AXIS_COLOR}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


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
