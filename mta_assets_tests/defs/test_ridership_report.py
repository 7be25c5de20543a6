"""The ridership week's chart, read back as a browser would: the SVG decoded from the markdown."""

import base64
import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from mta_assets.defs.ridership.report import ENTRIES_COLOR, EXITS_COLOR, day_chart_markdown

SVG = "{http://www.w3.org/2000/svg}"
WEEK = "2023-12-30"
SATURDAY = dt.date.fromisoformat(WEEK)
DAY_NAMES = ["Sat", "Sun", "Mon", "Tue", "Wed", "Thu", "Fri"]
# A real week's shape: quiet weekend, busy midweek, a partial Friday; Wednesday is the top.
ENTRIES = [2_100_000, 1_800_000, 2_300_000, 3_500_000, 3_700_000, 3_650_000, 1_200_000]
EXITS = [1_700_000, 1_500_000, 1_900_000, 2_900_000, 3_000_000, 2_950_000, 1_000_000]
CAPTION = (
    "System **entries (blue)** and **exits (orange)** per day, Sat 2023-12-30 to Fri 2024-01-05; "
    "the first and last day are partial (docs/data.md \"Ridership\": the midpoint rule)."
)


def week_of(entries: list[int], exits: list[int]) -> dict[dt.date, tuple[int, int]]:
    return {SATURDAY + dt.timedelta(days=n): pair for n, pair in enumerate(zip(entries, exits))}


def chart(by_day: dict[dt.date, tuple[int, int]], official=None) -> tuple[ET.Element, str]:
    """The chart's SVG element, parsed from the data URI, and the caption under it."""
    markdown = day_chart_markdown(by_day, WEEK, official)
    image = re.fullmatch(
        rf"!\[system entries and exits per day, week {WEEK}\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)\n\n(.*)",
        markdown,
        re.S,
    )
    assert image, markdown[:200]
    return ET.fromstring(base64.b64decode(image.group(1))), image.group(2)


def bars(svg: ET.Element, color: str) -> list[ET.Element]:
    return [rect for rect in svg.iter(f"{SVG}rect") if rect.get("fill") == color]


def labels(svg: ET.Element, anchor: str) -> list[str]:
    """Tick labels are right-aligned to the axis ("end"), day names centred under their bars."""
    return [text.text for text in svg.iter(f"{SVG}text") if text.get("text-anchor") == anchor]


def test_the_chart_draws_an_entries_and_an_exits_bar_per_day_in_day_order():
    svg, caption = chart(week_of(ENTRIES, EXITS))

    assert (svg.get("width"), svg.get("height")) == ("480", "180")
    assert svg.find(f"{SVG}title").text == f"System entries and exits per day, week {WEEK}"
    assert caption == CAPTION
    entries, exits = bars(svg, ENTRIES_COLOR), bars(svg, EXITS_COLOR)
    assert len(entries) == len(exits) == 7
    assert labels(svg, "middle") == DAY_NAMES
    # Each day's pair side by side, entries first, the days left to right.
    xs = [float(rect.get("x")) for pair in zip(entries, exits) for rect in pair]
    assert xs == sorted(xs)
    # Heights in proportion to the counts; the tallest bar is Wednesday's entries.
    heights = {color: [float(rect.get("height")) for rect in bars(svg, color)] for color in (ENTRIES_COLOR, EXITS_COLOR)}
    tallest = max(heights[ENTRIES_COLOR] + heights[EXITS_COLOR])
    assert heights[ENTRIES_COLOR].index(tallest) == ENTRIES.index(max(ENTRIES)) == 4
    assert max(heights[EXITS_COLOR]) == heights[EXITS_COLOR][EXITS.index(max(EXITS))]
    for counts, drawn in ((ENTRIES, heights[ENTRIES_COLOR]), (EXITS, heights[EXITS_COLOR])):
        assert [h / tallest for h in drawn] == pytest.approx([c / max(ENTRIES) for c in counts], abs=0.01)
    # Every bar stands on the axis.
    assert {round(float(r.get("y")) + float(r.get("height")), 1) for r in entries + exits} == {160.0}


@pytest.mark.parametrize(
    ("highest", "ticks"),
    [
        (3_700_000, ["0", "1M", "2M", "3M", "4M"]),
        (4_000_000, ["0", "1M", "2M", "3M", "4M"]),
        (4_000_001, ["0", "2M", "4M", "6M"]),
        (900_000, ["0", "0.5M", "1M"]),
        (350_000, ["0", "0.1M", "0.2M", "0.3M", "0.4M"]),
        (27_505, ["0", "0.1M"]),  # the synthetic weeks' size
        (45_000_000, ["0", "20M", "40M", "60M"]),
    ],
)
def test_the_million_ticks_take_a_nice_step_with_at_most_five_ticks_and_grid_lines(highest, ticks):
    svg, _ = chart(week_of([highest, 10], [5, 7]))

    assert labels(svg, "end") == ticks
    assert len(list(svg.iter(f"{SVG}line"))) == len(ticks)  # a grid line per tick
    # The top tick is at or above the highest bar.
    top_grid = min(float(line.get("y1")) for line in svg.iter(f"{SVG}line"))
    assert top_grid <= min(float(rect.get("y")) for rect in svg.iter(f"{SVG}rect"))


def test_the_same_week_gives_the_same_bytes_whatever_the_order_of_its_days():
    by_day = week_of(ENTRIES, EXITS)

    assert day_chart_markdown(by_day, WEEK) == day_chart_markdown(by_day, WEEK)
    assert day_chart_markdown(dict(reversed(by_day.items())), WEEK) == day_chart_markdown(by_day, WEEK)


def test_an_empty_week_and_an_all_zero_week_draw_an_axis_and_no_height():
    empty, caption = chart({})
    assert list(empty.iter(f"{SVG}rect")) == [] and labels(empty, "middle") == []
    assert labels(empty, "end") == ["0", "0.1M"]
    assert caption.startswith("System **entries (blue)** and **exits (orange)** per day; the first and last day")

    zero, caption = chart(week_of([0] * 7, [0] * 7))
    assert [rect.get("height") for rect in zero.iter(f"{SVG}rect")] == ["0.0"] * 14
    assert labels(zero, "middle") == DAY_NAMES and labels(zero, "end") == ["0", "0.1M"]
    assert caption == CAPTION


def test_mtas_daily_estimate_is_drawn_beside_the_turnstile_counts_and_the_ratio_stated():
    from mta_assets.defs.ridership.report import OFFICIAL_COLOR

    by_day = week_of(ENTRIES, EXITS)
    # MTA's estimate for the week's days (and one day outside it, which is not drawn).
    official = {day: 2 * entries for day, (entries, _) in by_day.items()}
    official[SATURDAY - dt.timedelta(days=1)] = 9_000_000
    svg, caption = chart(by_day, official)
    lines = [line for line in svg.iter(f"{SVG}line") if line.get("stroke") == OFFICIAL_COLOR]
    assert len(lines) == 7  # one per day of the week
    # Saturday to Thursday: the turnstile entries are exactly half of the estimate here.
    assert "turnstile entries are **0.50** of it" in caption and "MTA's daily estimate (grey line)" in caption
    _, without = chart(by_day)
    assert without == CAPTION  # no official data: no claim about it
