"""Subscribers (/subscribers): find a subscriber by id or MSISDN; ``?id=...`` deep-links."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, html

from dashboard import ids, queries
from dashboard.pages import coming, current_store, fmt_time, store_error

dash.register_page(__name__, path="/subscribers", name="Subscribers", title="Vantage · Subscribers", order=3)


def mask_msisdn(msisdn: str | None) -> str:
    """All but the last three digits hidden: personal data stays masked until roles exist."""
    if not msisdn:
        return "—"
    keep = 3 if len(msisdn) > 3 else 0
    return "•" * (len(msisdn) - keep) + msisdn[len(msisdn) - keep :]


def _value(v: Any) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "—"
    return str(v)


def subscriber_card(row: dict[str, Any]) -> dbc.Card:
    """One subscriber's record as a card of labelled fields."""
    arpu = row.get("arpu")
    fields = [
        ("Subscriber id", _value(row["id"])),
        ("Source", _value(row["source"])),
        ("MSISDN", mask_msisdn(row.get("msisdn"))),
        ("Status", _value(row.get("status"))),
        ("Plan", _value(row.get("plan"))),
        ("ARPU", "—" if arpu is None or pd.isna(arpu) else f"{float(arpu):,.2f}"),
        ("Activated", fmt_time(row.get("activated_at"))),
        ("Home cell", _value(row.get("home_cell_id"))),
        ("Account", f"{_value(row.get('account_name'))} ({_value(row.get('account_id'))})"),
        ("Segment", _value(row.get("segment"))),
        ("VIP", "yes" if row.get("vip") is True else "no" if row.get("vip") is False else "—"),
    ]
    return dbc.Card(
        dbc.CardBody(
            html.Dl(
                [part for label, value in fields for part in (html.Dt(label), html.Dd(value))],
                className="vt-record",
            )
        ),
        className="vt-subscriber mb-3",
    )


def search_result(text: str | None) -> list[Any]:
    """Cards for the subscribers matching ``text`` (exact id or MSISDN first, then prefixes)."""
    q = (text or "").strip()
    if not q:
        return [html.P("Type a subscriber id or an MSISDN.", className="text-secondary")]
    try:
        with current_store().connect() as conn:
            df = queries.find_subscribers(conn, q)
    except Exception as err:
        return [store_error(err)]
    if df.empty:
        return [html.P(f"No subscriber with id or MSISDN {q!r}.", className="vt-none")]
    note = [] if len(df) == 1 else [html.P(f"{len(df)} matches", className="vt-count")]
    return note + [subscriber_card(row) for row in df.to_dict("records")]


def layout(id: str = "", q: str = "", **_query: str) -> html.Div:
    text = id or q
    search = dbc.InputGroup(
        [
            dbc.InputGroupText("Subscriber id or MSISDN"),
            dbc.Input(id=ids.SUBSCRIBERS_QUERY, value=text, debounce=True, type="search", autocomplete="off"),
        ],
        className="mb-3 vt-search",
    )
    return html.Div(
        [
            html.H1("Subscribers"),
            search,
            html.Div(search_result(text), id=ids.SUBSCRIBERS_RESULT),
            coming(
                "the subscriber's whole story: services, experienced KPIs, incidents, tickets and their "
                "sentiment, bills, churn risk and offers, with masking by role (Subscriber issue)."
            ),
        ]
    )


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(
        Output(ids.SUBSCRIBERS_RESULT, "children"),
        Input(ids.SUBSCRIBERS_QUERY, "value"),
        prevent_initial_call=True,
    )
    def _search(text: str | None) -> list[Any]:
        return search_result(text)
