"""Linkage (/linkage): the 7-day network-average trend of a chosen KPI; ``?kpi=name`` deep-links."""

from __future__ import annotations

from datetime import timedelta

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from dashboard import ids, queries
from dashboard.figures import empty_figure, kpi_trend_figure
from dashboard.pages import coming, current_kpi, current_store, kpi_title, store_error, utcnow

dash.register_page(__name__, path="/linkage", name="Linkage", title="Vantage · Linkage", order=2)

TREND_DAYS = 7
NO_KPIS = "No KPI samples in the store yet"


def trend(kpi: str) -> go.Figure:
    """The figure for ``kpi`` over the last 7 days, read now, with its catalogue thresholds."""
    with current_store().connect() as conn:
        df = queries.kpi_network_trend(conn, kpi, since=utcnow() - timedelta(days=TREND_DAYS))
    definition = current_kpi(kpi)
    thresholds = {}
    if definition is not None:
        for level in ("warning", "critical"):
            t = getattr(definition.thresholds, level)
            if t is not None:
                thresholds[level] = t.value
    return kpi_trend_figure(df, kpi, title=kpi_title(kpi), thresholds=thresholds)


def layout(kpi: str = "", **_query: str) -> html.Div:
    try:
        with current_store().connect() as conn:
            names = queries.kpi_names(conn)
        chosen = kpi if kpi in names else (names[0] if names else "")
        figure = trend(chosen) if chosen else empty_figure(NO_KPIS)
    except Exception as err:
        return html.Div([html.H1("KPI linkage"), store_error(err)])
    controls = dbc.Row(
        dbc.Col(
            dbc.Select(
                id=ids.LINKAGE_KPI,
                options=[{"label": kpi_title(n), "value": n} for n in names],
                value=chosen,
                disabled=not names,
            ),
            md=4,
        ),
        className="mb-3",
    )
    return html.Div(
        [
            html.H1("KPI linkage"),
            controls,
            dcc.Graph(
                id=ids.LINKAGE_GRAPH, figure=figure, className="vt-graph", config={"displaylogo": False}
            ),
            coming(
                "which technical KPIs drive which business KPIs, by how much and with what confidence, "
                "from the definitions in kpi_definitions.yaml (Linkage issue)."
            ),
        ]
    )


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(
        Output(ids.LINKAGE_GRAPH, "figure"), Input(ids.LINKAGE_KPI, "value"), prevent_initial_call=True
    )
    def _choose(kpi: str | None) -> go.Figure:
        return trend(kpi) if kpi else empty_figure(NO_KPIS)
