"""The dashboard's page: the system by day, one station's or complex's series, the top stations of a period."""

from __future__ import annotations

import datetime as dt

import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

from dashboard.data import Warehouse, WarehouseUnavailable

TURNSTILE, OFFICIAL = "#1f77b4", "#ff7f0e"
PARTIAL_DAY = "partial day (file boundary or missing week)"
PARTIAL = f"turnstile entries, {PARTIAL_DAY}"
# Said in the hover too: a partial day's count is what the loaded files hold of it, not the day's riders.
PARTIAL_HOVER = "partial day: %{y:,.0f}, only part of the day is in the loaded turnstile files<extra></extra>"


def create_app(warehouse: Warehouse) -> Dash:
    # Everything served by this process (serve_locally is Dash's default): no CDN, offline.
    app = Dash(__name__, title="NYC subway ridership", serve_locally=True)
    app.layout = lambda: _layout(warehouse)  # a function: every page load reads the warehouse anew

    @app.callback(Output("series-pick", "options"), Output("series-pick", "value"), Input("series-kind", "value"))
    def pick_options(kind: str):
        try:
            options = _options(warehouse, kind)
        except WarehouseUnavailable:
            return [], None
        return options, options[0]["value"] if options else None

    @app.callback(Output("series-chart", "figure"), Input("series-kind", "value"), Input("series-pick", "value"))
    def series(kind: str, picked: str | None):
        if not picked:
            return _figure("Pick a station or complex")
        try:
            return _series_figure(warehouse, kind, picked)
        except WarehouseUnavailable as error:
            return _figure(str(error))

    @app.callback(Output("top-table", "children"), Input("top-period", "start_date"), Input("top-period", "end_date"))
    def top(start: str | None, end: str | None):
        if not start or not end:
            return "Choose a period."
        try:
            rows = warehouse.top_stations(dt.date.fromisoformat(start[:10]), dt.date.fromisoformat(end[:10]))
        except WarehouseUnavailable as error:
            return str(error)
        header = html.Tr([html.Th("#"), html.Th("station"), html.Th("lines"), html.Th("entries")])
        body = [
            html.Tr([html.Td(rank), html.Td(row["station"]), html.Td(row["linename"]), html.Td(f"{row['entries']:,}")])
            for rank, row in enumerate(rows, start=1)
        ]
        return html.Table([header, *body], id="top-rows")

    return app


def _layout(warehouse: Warehouse) -> html.Div:
    try:
        system = warehouse.system()
        note = ""
    except WarehouseUnavailable as error:
        system, note = [], str(error)
    days = [row["date"] for row in system]
    return html.Div(
        [
            html.H1("NYC subway ridership"),
            html.P(note, id="status"),
            dcc.Graph(id="system-chart", figure=_system_figure(system)),
            html.P(
                "Turnstile entries (counted from MTA's turnstile registers) beside MTA's own daily subway "
                "estimate: after 2020 the registers count about half of the paid entries. Hollow points "
                "and hatched bars are partial days, not dips: a week's Friday ends in the next week's file, "
                "and a day next to a week not loaded lacks that week's part."
            ),
            html.H2("A station or a station complex by day"),
            dcc.RadioItems(
                id="series-kind",
                options=[{"label": "station", "value": "station"}, {"label": "station complex", "value": "complex"}],
                value="station",
                inline=True,
            ),
            dcc.Dropdown(id="series-pick", clearable=False, searchable=True),
            dcc.Graph(id="series-chart"),
            html.H2("Busiest stations of a period"),
            dcc.DatePickerRange(
                id="top-period",
                min_date_allowed=days[0] if days else None,
                max_date_allowed=days[-1] if days else None,
                start_date=days[0] if days else None,
                end_date=days[-1] if days else None,
            ),
            html.Div(id="top-table"),
        ],
        style={"fontFamily": "sans-serif", "margin": "1em 2em"},
    )


def _options(warehouse: Warehouse, kind: str) -> list[dict]:
    if kind == "complex":
        return [{"label": row["complex_name"], "value": row["complex_id"]} for row in warehouse.complexes()]
    return [
        {"label": f"{row['station']} ({row['linename']}, {row['unit']} {row['division']})", "value": row["station_id"]}
        for row in warehouse.stations()
    ]


def _figure(title: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=title, margin={"t": 50, "l": 60, "r": 20, "b": 40}, hovermode="x unified")
    return figure


def _system_figure(rows: list[dict]) -> go.Figure:
    figure = _figure("The whole system by day")
    # A partial day (a week's Friday ends in the next week's file; a day next to a week not
    # loaded lacks that week's part) is no dip in ridership: it gets its own hollow points,
    # and the line breaks there instead of running through it.
    figure.add_scatter(
        x=[r["date"] for r in rows], y=[r["entries_turnstile"] if r["turnstile_complete"] else None for r in rows],
        name="turnstile entries", line={"color": TURNSTILE},
    )
    partial = [r for r in rows if r["entries_turnstile"] is not None and not r["turnstile_complete"]]
    if partial:
        figure.add_scatter(
            x=[r["date"] for r in partial], y=[r["entries_turnstile"] for r in partial], name=PARTIAL,
            mode="markers", marker={"color": TURNSTILE, "symbol": "circle-open", "size": 9},
            hovertemplate=PARTIAL_HOVER,
        )
    official = [r for r in rows if r["entries_official"] is not None]
    if official:
        figure.add_scatter(
            x=[r["date"] for r in official], y=[r["entries_official"] for r in official], name="MTA's daily estimate",
            line={"color": OFFICIAL},
        )
    return figure


def _bars(figure: go.Figure, rows: list[dict], column: str, name: str, color: str) -> None:
    """The column's bars on whole days, and apart, hatched and named so, on partial days (see ``_system_figure``)."""
    whole = [r for r in rows if r[column] is not None and r["complete"]]
    partial = [r for r in rows if r[column] is not None and not r["complete"]]
    figure.add_bar(x=[r["date"] for r in whole], y=[r[column] for r in whole], name=name, marker={"color": color},
                   offsetgroup=column)
    if partial:  # the same slot of the day as the whole days' bars: one group per column
        figure.add_bar(
            x=[r["date"] for r in partial], y=[r[column] for r in partial], name=f"{name}, {PARTIAL_DAY}",
            marker={"color": color, "opacity": 0.45, "pattern": {"shape": "/"}}, offsetgroup=column,
            hovertemplate=PARTIAL_HOVER,
        )


def _series_figure(warehouse: Warehouse, kind: str, picked: str) -> go.Figure:
    if kind == "complex":
        rows = warehouse.complex_series(picked)
        figure = _figure(f"Complex {picked} by day")
        _bars(figure, rows, "entries_turnstile", "turnstile entries", TURNSTILE)
        figure.add_bar(x=[r["date"] for r in rows], y=[r["entries_official"] for r in rows], name="MTA hourly, summed",
                       marker={"color": OFFICIAL}, offsetgroup="entries_official")
        return figure
    rows = warehouse.station_series(picked)
    figure = _figure(f"{picked} by day")
    _bars(figure, rows, "entries", "entries", TURNSTILE)
    _bars(figure, rows, "exits", "exits", OFFICIAL)
    return figure
