"""Subscribers (/subscribers): find any line among millions and list them by value or churn risk.

The search box takes an MSISDN in any common format, a subscriber or account id, or the start of an
account name (:mod:`dashboard.subscribers.search`). The list is paged by the server: an infinite
AG Grid asks for blocks of rows as the analyst scrolls, and each block continues from the cursor
the previous one ended on (kept per search on the server), so a block deep in a million-line list
costs what the first one does. Each search gets a grid of its own (its id carries the search),
which starts a fresh row model. The search, filters and sort live in the query string
(``/subscribers?q=silva&segment=enterprise&risk=high&sort=risk``); each row links to the
subscriber's 360 view at ``/subscribers/<id>``. MSISDNs and holders' names are masked on the
server (:func:`dashboard.privacy.protect`), for every role.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import flask
from dash import MATCH, Input, Output, State, dcc, html

from dashboard import guard, ids
from dashboard.context import (
    current_principal,
    current_scoring,
    current_settings,
    current_store,
    current_time,
)
from dashboard.pages import store_error
from dashboard.privacy import Principal
from dashboard.store.db import Store
from dashboard.subscribers import search
from dashboard.subscribers.search import Filters
from dashboard.theme import grid_options

dash.register_page(
    __name__, access="read", path="/subscribers", name="Subscribers", title="Vantage · Subscribers", order=3
)

ANY = "any"  # the selects' "no filter" value
BLOCK = 100  # rows per server request of the grid
#: The page's CSV export stops here; GET /api/v1/subscribers.csv streams any length.
EXPORT_MAX_ROWS = 100_000
CURSORS_KEY = "VANTAGE_SUBSCRIBER_CURSORS"
FACETS_KEY = "VANTAGE_SUBSCRIBER_FACETS"
FACETS_TTL_S = 600.0
SORT_LABELS = {"value": "Value", "risk": "Churn risk"}
SEGMENT_LABELS = {"consumer": "Consumer", "smb": "SMB", "enterprise": "Enterprise", "vip": "VIP"}
RISK_LABELS = {"low": "Low (< 10%)", "medium": "Medium (10-30%)", "high": "High (≥ 30%)"}
SENTIMENT_LABELS = {"negative": "Negative", "neutral": "Neutral", "positive": "Positive"}

_CHURN_CLASSES = {"vt-bad": f"params.value != null && params.value >= {search.RISK_HIGH}"}
_SENTIMENT_CLASSES = {"vt-bad": f"params.value != null && params.value < {search.SENTIMENT_NEGATIVE}"}


def _num(field: str, header: str, width: int, fmt: str, **extra: Any) -> dict[str, Any]:
    return {
        "field": field,
        "headerName": header,
        "width": width,
        "valueFormatter": {"function": f"{fmt}(params.value)"},
        "type": "rightAligned",
        **extra,
    }


def columns(currency: str, sort: str) -> list[dict[str, Any]]:
    """The list's columns, sized for a 1600-pixel screen; the sorted one says so in its header."""
    arrow = " ▼"
    link = {"cellRenderer": "markdown"}
    return [
        {"field": "link", "headerName": "Subscriber", "width": 130, "pinned": "left", **link},
        {"field": "msisdn", "headerName": "MSISDN", "width": 160},
        {"field": "status", "headerName": "Status", "width": 95},
        {
            "field": "account_link",
            "headerName": "Account",
            "flex": 1,
            "minWidth": 180,
            "tooltipField": "account_id",
            "headerTooltip": "Click an account for all its lines",
            **link,
        },
        {"field": "segment", "headerName": "Segment", "width": 110},
        {"field": "vip", "headerName": "VIP", "width": 65},
        {"field": "plan", "headerName": "Plan", "width": 140, "tooltipField": "plan"},
        {"field": "region", "headerName": "Region", "width": 100},
        _num("arpu", "ARPU", 95, "vtMoney", headerTooltip=f"Revenue per month, {currency}"),
        _num("value", "Value" + (arrow if sort == "value" else ""), 100, "vtMoney",
             headerTooltip="ARPU weighted by segment and VIP (the incident queue's multipliers)"),
        _num("churn_risk", "Churn risk" + (arrow if sort == "risk" else ""), 120, "vtPercent",
             cellClassRules=_CHURN_CLASSES),
        _num("sentiment", "Sentiment", 105, "vtSigned", cellClassRules=_SENTIMENT_CLASSES,
             headerTooltip="Ticket sentiment over the last 30 days"),
        _num("open_incidents", "Incidents", 100, "vtCount",
             headerTooltip="Open incidents degrading its cells"),
    ]  # fmt: skip


# --- The search in the URL and in the grid's id --------------------------------------------------


def search_from_query(query: Mapping[str, Any]) -> tuple[str, Filters, str]:
    """(text, filters, sort) a query string asks for; a value that makes no sense is no filter.
    ``?id=`` (the links of the page before the list) searches for that id."""
    text = search.parse_query(str(query.get("q") or query.get("id") or "")).text
    sort = str(query.get("sort") or "value").strip().lower()
    return text, search.filters_from(query), sort if sort in search.SORTS else "value"


def query_params(text: str, filters: Filters, sort: str) -> dict[str, str]:
    params = {"q": text} if text else {}
    params.update(filters.to_query())
    if sort != "value":
        params["sort"] = sort
    return params


def query_string(text: str, filters: Filters, sort: str) -> str:
    """``?q=silva&segment=enterprise``: what differs from the defaults, for a deep link."""
    params = query_params(text, filters, sort)
    return f"?{urlencode(params)}" if params else ""


def search_token(text: str, filters: Filters, sort: str) -> str:
    """The search as an opaque, id-safe token: the grid of that search carries it in its id."""
    raw = urlencode(query_params(text, filters, sort)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") or "all"


def search_from_token(token: str) -> tuple[str, Filters, str]:
    if token == "all":
        return "", Filters(), "value"
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "", Filters(), "value"
    return search_from_query(dict(parse_qsl(raw)))


def control_search(
    text: str | None,
    segment: str | None,
    region: str | None,
    plan: str | None,
    risk: str | None,
    sentiment: str | None,
    affected: list[str] | None,
    account: str | None,
    sort: str | None,
) -> tuple[str, Filters, str]:
    """The search the controls show, as :func:`search_from_query` would read it from a URL."""
    query = {
        "q": text,
        "segment": segment,
        "region": region,
        "plan": plan,
        "risk": risk,
        "sentiment": sentiment,
        "affected": "1" if affected else "",
        "account": account,
        "sort": sort,
    }
    return search_from_query(query)


# --- Blocks of rows --------------------------------------------------------------------------------


class CursorCache:
    """Where block ``startRow`` of a search starts: the cursor the block before it ended on.

    Bounded and shared by the requests of one process; a miss (another worker, an evicted entry,
    a jump far ahead) falls back to an offset, which is correct, only slower.
    """

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, token: str, start: int) -> str | None:
        with self._lock:
            cursor = self._items.get((token, start))
            if cursor is not None:
                self._items.move_to_end((token, start))
            return cursor

    def put(self, token: str, start: int, cursor: str) -> None:
        with self._lock:
            self._items[(token, start)] = cursor
            self._items.move_to_end((token, start))
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def current_cursors() -> CursorCache:
    """The cursor cache of the app serving this request."""
    cache: CursorCache = flask.current_app.config.setdefault(CURSORS_KEY, CursorCache())
    return cache


def current_facets(store: Store, now: float | None = None) -> dict[str, list[Any]]:
    """The regions and plans the filters offer, read at most every ``FACETS_TTL_S`` per process:
    the plans in use take a pass over every line (a second at a million on SQLite)."""
    now = time.monotonic() if now is None else now
    cached = flask.current_app.config.get(FACETS_KEY)
    if cached is not None and now - cached[0] < FACETS_TTL_S:
        return dict(cached[1])
    with store.connect() as conn:
        facets = search.facets(conn)
    flask.current_app.config[FACETS_KEY] = (now, facets)
    return facets


def _md(text: str) -> str:
    """Text shown literally by the grid's Markdown renderer (which never renders raw HTML)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!<>|~&" else ch for ch in text)


def grid_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Search rows for the grid: the id links to the 360 view, the account to all its lines."""
    out = []
    for row in rows:
        account = row.get("account_id")
        label = str(row.get("account_name") or account)
        out.append(
            row
            | {
                "link": f"[{_md(row['id'])}](/subscribers/{quote(row['id'], safe='')})",
                "account_link": f"[{_md(label)}](/subscribers?{urlencode({'account': account})})"
                if account
                else None,
                "vip": None if row.get("vip") is None else ("yes" if row["vip"] else "no"),
            }
        )
    return out


def count_text(total: int | None, text: str, filtered: bool, sort: str) -> str:
    """The line above the grid: how many match, in which order, or that none does."""
    order = "most valuable first" if sort == "value" else "highest churn risk first"
    if total is None:
        return (
            f"More than {search.COUNT_CAP:,} subscribers match; {order}. Scroll for more, or narrow it down."
        )
    if total == 0:
        what = f"No subscriber matches {text!r}" if text else "No subscriber matches"
        return f"{what}{' with these filters' if filtered else ''}."
    if not (text or filtered):
        return f"{total:,} subscriber{'s' if total != 1 else ''}; {order}."
    return f"{total:,} subscriber{'s match' if total != 1 else ' matches'}; {order}."


def grid_block(
    store: Store,
    token: str,
    request: Mapping[str, Any] | None,
    principal: Principal,
    scoring: Any,
    cursors: CursorCache,
) -> tuple[dict[str, Any], Any]:
    """Rows ``startRow`` to ``endRow`` of the search in ``token``, and the count line (first block)."""
    request = request or {}
    start = max(0, int(request.get("startRow") or 0))
    end = max(start + 1, int(request.get("endRow") or start + BLOCK))
    text, filters, sort = search_from_token(token)
    cursor = cursors.get(token, start) if start else None
    if start == 0:  # one audit record per search, not per block
        search.audit_search(store, principal, text, now=current_time())
    with store.connect() as conn:
        rows, next_cursor, total = search.search_page(
            conn,
            text,
            filters,
            principal=principal,
            scoring=scoring,
            sort=sort,
            limit=min(end - start, search.MAX_LIMIT),
            cursor=cursor,
            offset=0 if cursor else start,
        )
    if next_cursor is not None:
        cursors.put(token, start + len(rows), next_cursor)
    if total is not None:
        row_count = total
    elif next_cursor is None:
        row_count = start + len(rows)
    else:
        row_count = -1  # unknown: the grid keeps asking as the analyst scrolls
    message = count_text(total, text, filters.any, sort) if start == 0 else dash.no_update
    return {"rowData": grid_rows(rows), "rowCount": row_count}, message


def list_box(text: str, filters: Filters, sort: str, currency: str) -> list[Any]:
    """The count line and the grid of one search (a new search, a new grid and row model)."""
    token = search_token(text, filters, sort)
    return [
        html.P(
            "Searching…",
            id={"type": ids.SUBSCRIBERS_COUNT, "search": token},
            className="vt-count",
            role="status",
        ),
        dag.AgGrid(
            id={"type": ids.SUBSCRIBERS_GRID, "search": token},
            columnDefs=columns(currency, sort),
            rowModelType="infinite",
            defaultColDef={"resizable": True, "sortable": False},
            dashGridOptions=grid_options(
                cacheBlockSize=BLOCK,
                maxBlocksInCache=50,
                infiniteInitialRowCount=1,
                maxConcurrentDatasourceRequests=1,  # blocks in order, so each continues a cursor
                rowBuffer=0,
                tooltipShowDelay=300,
                localeText={"noRowsToShow": "No subscriber matches"},
            ),
            className="vt-grid vt-subscriber-list",
        ),
    ]


def export_download(
    store: Store, text: str, filters: Filters, sort: str, principal: Principal, scoring: Any
) -> tuple[dict[str, Any], str]:
    """The filtered list (up to ``EXPORT_MAX_ROWS``) as a CSV file for ``dcc.Download``, and a note."""
    search.audit_search(store, principal, text, now=current_time(), export=True)
    with store.connect() as conn:
        csv_text = search.export_csv(
            conn, text, filters, principal, scoring, sort=sort, max_rows=EXPORT_MAX_ROWS + 1
        )
    lines = csv_text.count("\n") - 1
    note = f"Exported {lines:,} subscribers (masked)."
    if lines > EXPORT_MAX_ROWS:
        csv_text = csv_text[: csv_text.rstrip("\n").rfind("\n") + 1]
        note = (
            f"Exported the first {EXPORT_MAX_ROWS:,} subscribers (masked); narrow the filters, or stream the "
            f"whole list from /api/v1/subscribers.csv{query_string(text, filters, sort)}."
        )
    return {"content": csv_text, "filename": "subscribers.csv", "type": "text/csv", "base64": False}, note


# --- Layout ----------------------------------------------------------------------------------


def _select(id_: str, label: str, options: list[dict[str, str]], value: str | None) -> dbc.Col:
    return dbc.Col(
        [
            dbc.Label(label, html_for=id_, className="vt-filter-label"),
            dbc.Select(id=id_, options=options, value=value or ANY),
        ],
        xs=6,
        md=True,
    )


def _options(everything: str, labels: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"label": everything, "value": ANY}] + [{"label": v, "value": k} for k, v in labels.items()]


def controls(text: str, filters: Filters, sort: str, facets: Mapping[str, list[Any]]) -> html.Div:
    """The search box, the filters and the sort, set to the search of the URL."""
    regions = [{"label": "All regions", "value": ANY}] + [
        {"label": n, "value": i} for i, n in facets["regions"]
    ]
    region = filters.region
    names = {n: i for i, n in facets["regions"]}
    region = names.get(region or "", region)  # ?region= takes an id or a name; the select shows ids
    if region and region not in {i for i, _ in facets["regions"]}:
        regions.append({"label": region, "value": region})
    plans = [{"label": "All plans", "value": ANY}] + [{"label": p, "value": p} for p in facets["plans"]]
    if filters.plan and filters.plan not in facets["plans"]:
        plans.append({"label": filters.plan, "value": filters.plan})
    box = dbc.InputGroup(
        [
            dbc.InputGroupText("Search"),
            dbc.Input(
                id=ids.SUBSCRIBERS_QUERY,
                value=text,
                type="search",
                debounce=400,
                autocomplete="off",
                maxLength=search.MAX_QUERY_LENGTH,
                placeholder="MSISDN (any format), subscriber id, account id or account name",
            ),
        ],
        className="mb-3 vt-search",
    )
    account = dbc.Col(
        [
            dbc.Label("Account id", html_for=ids.SUBSCRIBERS_ACCOUNT, className="vt-filter-label"),
            dbc.Input(
                id=ids.SUBSCRIBERS_ACCOUNT, value=filters.account or "", debounce=True, placeholder="any"
            ),
        ],
        xs=6,
        md=True,
    )
    affected = dbc.Col(
        dbc.Checklist(
            id=ids.SUBSCRIBERS_AFFECTED,
            options=[{"label": "Affected by an open incident", "value": "1"}],
            value=["1"] if filters.affected else [],
            switch=True,
            className="vt-affected",
        ),
        xs=12,
        md="auto",
    )
    segments = _options("All segments", SEGMENT_LABELS)
    risks = _options("Any risk", RISK_LABELS)
    sentiments = _options("Any sentiment", SENTIMENT_LABELS)
    sorts = [{"label": v, "value": k} for k, v in SORT_LABELS.items()]
    filter_row = dbc.Row(
        [
            _select(ids.SUBSCRIBERS_SEGMENT, "Segment", segments, filters.segment),
            _select(ids.SUBSCRIBERS_REGION, "Region", regions, region),
            _select(ids.SUBSCRIBERS_PLAN, "Plan", plans, filters.plan),
            _select(ids.SUBSCRIBERS_RISK, "Churn risk", risks, filters.risk),
            _select(ids.SUBSCRIBERS_SENTIMENT, "Sentiment", sentiments, filters.sentiment),
            account,
            _select(ids.SUBSCRIBERS_SORT, "Sort by", sorts, sort),
            affected,
        ],
        className="g-3 mb-2 align-items-end vt-filters",
    )
    return html.Div([box, filter_row])


def layout(**query: str) -> html.Div:
    """The list for the search, filters and sort of the query string."""
    text, filters, sort = search_from_query(query)
    try:
        facets = current_facets(current_store())
    except Exception as err:
        return html.Div([html.H1("Subscribers"), store_error(err)])
    currency = current_settings().currency
    export = dbc.Row(
        [
            dbc.Col(
                dbc.Button("Export CSV", id=ids.SUBSCRIBERS_EXPORT, color="secondary", size="sm"),
                width="auto",
            ),
            dbc.Col(html.Span(id=ids.SUBSCRIBERS_EXPORT_NOTE, className="vt-muted", role="status")),
        ],
        className="g-2 mb-2 align-items-center",
    )
    return html.Div(
        [
            dcc.Location(id=ids.SUBSCRIBERS_URL, refresh=False),
            dcc.Download(id=ids.SUBSCRIBERS_DOWNLOAD),
            html.H1("Subscribers"),
            controls(text, filters, sort, facets),
            export,
            html.Div(list_box(text, filters, sort, currency), id=ids.SUBSCRIBERS_LIST),
        ],
        className="vt-subscribers",
    )


# --- Callbacks: each one unpacks its inputs and calls one of the functions above ------------------

_SEARCH_INPUTS = [
    Input(ids.SUBSCRIBERS_QUERY, "value"),
    Input(ids.SUBSCRIBERS_SEGMENT, "value"),
    Input(ids.SUBSCRIBERS_REGION, "value"),
    Input(ids.SUBSCRIBERS_PLAN, "value"),
    Input(ids.SUBSCRIBERS_RISK, "value"),
    Input(ids.SUBSCRIBERS_SENTIMENT, "value"),
    Input(ids.SUBSCRIBERS_AFFECTED, "value"),
    Input(ids.SUBSCRIBERS_ACCOUNT, "value"),
    Input(ids.SUBSCRIBERS_SORT, "value"),
]


def register_callbacks(app: dash.Dash) -> None:
    @guard.callback(
        app,
        "read",
        Output(ids.SUBSCRIBERS_LIST, "children"),
        Output(ids.SUBSCRIBERS_URL, "search"),
        *_SEARCH_INPUTS,
        prevent_initial_call=True,
    )
    def _search(*values: Any) -> tuple[list[Any], str]:
        text, filters, sort = control_search(*values)
        return list_box(text, filters, sort, current_settings().currency), query_string(text, filters, sort)

    @guard.callback(
        app,
        "read",
        Output({"type": ids.SUBSCRIBERS_GRID, "search": MATCH}, "getRowsResponse"),
        Output({"type": ids.SUBSCRIBERS_COUNT, "search": MATCH}, "children"),
        Input({"type": ids.SUBSCRIBERS_GRID, "search": MATCH}, "getRowsRequest"),
        State({"type": ids.SUBSCRIBERS_GRID, "search": MATCH}, "id"),
        prevent_initial_call=True,
    )
    def _rows(request: dict[str, Any] | None, grid_id: dict[str, str]) -> tuple[Any, Any]:
        if not request:
            return dash.no_update, dash.no_update
        try:
            return grid_block(
                current_store(),
                grid_id["search"],
                request,
                current_principal(),
                current_scoring(),
                current_cursors(),
            )
        except Exception as err:
            return {"rowData": [], "rowCount": 0}, store_error(err)

    @guard.callback(
        app,
        "read",
        Output(ids.SUBSCRIBERS_DOWNLOAD, "data"),
        Output(ids.SUBSCRIBERS_EXPORT_NOTE, "children"),
        Input(ids.SUBSCRIBERS_EXPORT, "n_clicks"),
        *[State(i.component_id, i.component_property) for i in _SEARCH_INPUTS],
        prevent_initial_call=True,
    )
    def _export(_n: int | None, *values: Any) -> tuple[Any, Any]:
        text, filters, sort = control_search(*values)
        return export_download(current_store(), text, filters, sort, current_principal(), current_scoring())
