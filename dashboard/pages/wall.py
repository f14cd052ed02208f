"""Wall (/): the NOC wall screen, large tiles readable from five metres, refreshed every 15 s."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html

from dashboard import ids, queries
from dashboard.pages import (
    coming,
    current_refresh_ms,
    current_settings,
    current_store,
    fmt_count,
    fmt_time,
    store_error,
    utcnow,
)

dash.register_page(__name__, path="/", name="Wall", title="Vantage · Wall", order=0)


def _tile(key: str, label: str, value: str, *, tone: str = "") -> dbc.Col:
    return dbc.Col(
        html.Div(
            [html.Div(value, className="vt-tile-value"), html.Div(label, className="vt-tile-label")],
            id={"type": ids.WALL_TILE, "metric": key},
            className=f"vt-tile {tone}".strip(),
        ),
        xs=6,
        md=4,
        xl=True,
    )


def wall_tiles(ov: queries.Overview, by_severity: dict[str, int]) -> list[Any]:
    """The headline row, the active alarms by severity and the time they were read."""
    headline = dbc.Row(
        [
            _tile("active_alarms", "Active alarms", fmt_count(ov.active_alarms)),
            _tile("open_incidents", "Open incidents", fmt_count(ov.open_incidents)),
            _tile("tickets_today", "Tickets today", fmt_count(ov.tickets_today)),
            _tile("active_subscribers", "Active subscribers", fmt_count(ov.active_subscribers)),
            _tile("revenue_month", f"Revenue this month, {ov.currency}", fmt_count(ov.revenue_month)),
        ],
        className="g-3 mb-3",
    )
    severities = dbc.Row(
        [
            _tile(
                f"severity_{sev}",
                sev.capitalize(),
                fmt_count(n),
                tone=f"vt-sev vt-sev-{sev}" + (" vt-sev-zero" if n == 0 else ""),
            )
            for sev, n in by_severity.items()
        ],
        className="g-3 mb-3",
    )
    return [
        html.H2("Active alarms by severity", className="vt-wall-heading"),
        severities,
        html.H2("Network and business", className="vt-wall-heading"),
        headline,
        html.Div(f"as of {fmt_time(ov.as_of, seconds=True)}", className="vt-wall-asof"),
    ]


def read_wall() -> list[Any]:
    """Read the store and render the tiles, or say plainly that it could not be read."""
    try:
        with current_store().connect() as conn:
            now = utcnow()
            ov = queries.overview(conn, now=now, currency=current_settings().currency)
            by_severity = queries.active_alarms_by_severity(conn)
    except Exception as err:
        return [store_error(err)]
    return wall_tiles(ov, by_severity)


def layout(**_query: str) -> html.Div:
    return html.Div(
        [
            dcc.Interval(id=ids.WALL_INTERVAL, interval=current_refresh_ms()),
            html.Div(read_wall(), id=ids.WALL_TILES, className="vt-wall"),
            coming(
                "the value-weighted incident queue on the wall (top incidents by revenue at risk, "
                "SLA clocks) and regional maps, from the Wall issue."
            ),
        ],
        className="vt-wall-page",
    )


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(
        Output(ids.WALL_TILES, "children"),
        Input(ids.WALL_INTERVAL, "n_intervals"),
        prevent_initial_call=True,
    )
    def _refresh(_n: int | None) -> list[Any]:
        return read_wall()
