"""Incidents (/incidents): the open incidents, most severe first; ``?severity=critical`` filters."""

from __future__ import annotations

from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, html

from dashboard import ids, queries
from dashboard.pages import coming, current_store, records, store_error
from dashboard.store.schema import SEVERITIES
from dashboard.theme import grid_options

dash.register_page(__name__, path="/incidents", name="Incidents", title="Vantage · Incidents", order=1)

COLUMNS: list[dict[str, Any]] = [
    {"field": "title", "headerName": "Title", "flex": 3, "minWidth": 260},
    {
        "field": "severity",
        "headerName": "Severity",
        "width": 130,
        "cellClassRules": {f"vt-sevtext-{s}": f"params.value == '{s}'" for s in SEVERITIES},
    },
    {"field": "state", "headerName": "State", "width": 140},
    {"field": "opened_at", "headerName": "Opened (UTC)", "width": 210},
    {"field": "root_resource_id", "headerName": "Root resource", "flex": 1, "minWidth": 160},
    {"field": "owner", "headerName": "Owner", "width": 150},
    {"field": "source", "headerName": "Source", "width": 130},
]

ANY = "any"
SEVERITY_OPTIONS = [{"label": "All severities", "value": ANY}] + [
    {"label": s.capitalize(), "value": s} for s in SEVERITIES if s != "cleared"
]


def incident_rows(severity: str | None) -> tuple[list[dict[str, Any]], str]:
    """Rows for the grid and the line that counts them."""
    severity = None if severity in (None, "", ANY) else severity
    with current_store().connect() as conn:
        df = queries.open_incidents(conn, severity=severity)
    what = f"{severity} " if severity else ""
    return records(df), f"{len(df)} open {what}incident{'s' if len(df) != 1 else ''}"


def layout(severity: str = "", **_query: str) -> html.Div:
    severity = severity.lower() if severity.lower() in SEVERITIES else ANY
    try:
        rows, count = incident_rows(severity)
    except Exception as err:
        return html.Div([html.H1("Open incidents"), store_error(err)])
    controls = dbc.Row(
        [
            dbc.Col(
                dbc.Select(id=ids.INCIDENTS_SEVERITY, options=SEVERITY_OPTIONS, value=severity),
                width="auto",
            ),
            dbc.Col(html.Div(count, id=ids.INCIDENTS_COUNT, className="vt-count"), width="auto"),
        ],
        className="g-3 mb-3 align-items-center",
    )
    grid = dag.AgGrid(
        id=ids.INCIDENTS_GRID,
        columnDefs=COLUMNS,
        rowData=rows,
        defaultColDef={"sortable": True, "resizable": True, "filter": True},
        dashGridOptions=grid_options(pagination=True, paginationPageSize=50, domLayout="autoHeight"),
        className="vt-grid",
    )
    return html.Div(
        [
            html.H1("Open incidents"),
            controls,
            grid,
            coming(
                "the value-weighted queue: each incident ranked by severity, affected subscribers "
                "weighted by value, SLA time to breach and penalty at risk, with the reason for its rank "
                "(Incident queue issue)."
            ),
        ]
    )


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(
        Output(ids.INCIDENTS_GRID, "rowData"),
        Output(ids.INCIDENTS_COUNT, "children"),
        Input(ids.INCIDENTS_SEVERITY, "value"),
        prevent_initial_call=True,
    )
    def _filter(severity: str | None) -> tuple[list[dict[str, Any]], str]:
        return incident_rows(severity)
