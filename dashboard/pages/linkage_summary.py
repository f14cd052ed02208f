"""Executive summary (/linkage/summary): one printable page: KPI status, what drives it, what is at stake.

Read once when opened (no live refresh: it is meant for paper or a PDF); the navigation, overview
strip and buttons are hidden in print (assets/10-vantage.css, ``@media print``).
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import guard, ids
from dashboard.context import current_catalogue, current_settings, current_store, current_time
from dashboard.pages import fmt_time, store_error
from dashboard.pages.linkage import (
    STATUS_MARK,
    STRENGTH_WORD,
    filters_from_query,
    fmt_value,
    kpi_cards,
    links_frame,
    revenue_now,
    unit_text,
    view_scope,
)

dash.register_page(
    __name__,
    access="read",
    path="/linkage/summary",
    name="Executive summary",
    title="Vantage · Executive summary",
    order=9,
)

TOP_LINKS = 6


def summary_children(query: dict[str, Any]) -> list[Any]:
    filters = filters_from_query(query)
    scope = view_scope(filters["region"], filters["segment"])
    store, catalogue, currency = current_store(), current_catalogue(), current_settings().currency
    now = current_time()
    cards = kpi_cards(store, catalogue, scope)
    links, fallback = links_frame(store, scope)
    rar = revenue_now(cards)
    status_rows = [
        html.Tr(
            [
                html.Td(catalogue.get(str(c["name"])).label),
                html.Td(
                    fmt_value(c.get("value"), unit_text(catalogue.get(str(c["name"])).unit, currency)),
                    className="text-end",
                ),
                html.Td(STATUS_MARK.get(str(c.get("status")), str(c.get("status")))),
                html.Td(fmt_time(c.get("since")) if c.get("status") not in ("ok", None) else ""),
            ]
        )
        for c in cards
    ]
    strong = links[links["strength"].isin(["strong", "moderate"])] if not links.empty else links
    weak = links[~links["strength"].isin(["strong", "moderate"])] if not links.empty else links
    if not strong.empty:
        strong = strong.assign(_p=strong["p_value"].fillna(1.0)).sort_values("_p").head(TOP_LINKS)
    return [
        html.Div(
            [
                html.H1("Vantage executive summary"),
                html.P(f"Scope: {scope.label}. Generated {fmt_time(now)}. {scope.note} {fallback}".strip()),
                html.Button("Print", id=ids.SUMMARY_PRINT, className="btn btn-outline-light vt-noprint"),
            ],
            className="vt-summary-head",
        ),
        html.H2("At stake now"),
        html.P(
            "Revenue at risk on open incidents: "
            + ("no figure yet" if rar is None else f"{rar:,.0f} {currency} per hour")
            + ".",
            className="vt-summary-rar",
        ),
        html.H2("Headline KPIs"),
        dbc.Table(
            [
                html.Thead(html.Tr([html.Th("KPI"), html.Th("Now"), html.Th("Status"), html.Th("Since")])),
                html.Tbody(status_rows),
            ],
            size="sm",
            className="vt-summary-table",
        )
        if status_rows
        else html.P("No KPI values yet."),
        html.H2("What drives the business KPIs (measured)"),
        html.Ul([html.Li(str(r.sentence)) for r in strong.itertuples(index=False)])
        if not strong.empty
        else html.P("No link is supported by the data yet."),
        html.H2("Expected links the data do not support"),
        html.Ul(
            [
                html.Li(f"{r.sentence} — {STRENGTH_WORD.get(str(r.strength), str(r.strength))}")
                for r in weak.itertuples(index=False)
            ]
        )
        if not weak.empty
        else html.P("None: every measured link is supported."),
        html.P(
            "Effects are estimated across cells and days (30 days, cell and day fixed effects, traffic as a "
            "control), with 95% intervals; a link is weak when its interval includes no effect.",
            className="vt-count",
        ),
    ]


def layout(**query: str) -> html.Div:
    try:
        children = summary_children(dict(query))
    except Exception as err:
        return html.Div([html.H1("Executive summary"), store_error(err)])
    return html.Div(children, className="vt-summary")


def register_callbacks(app: dash.Dash) -> None:
    guard.clientside_callback(
        app,
        "function(n) { if (n) { window.print(); } return ''; }",
        dash.Output(ids.SUMMARY_PRINT, "title"),
        dash.Input(ids.SUMMARY_PRINT, "n_clicks"),
        prevent_initial_call=True,
    )
