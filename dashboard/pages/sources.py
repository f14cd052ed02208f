"""Sources (/sources): every connector's health and freshness, its recent runs and the quarantine.

A quarantined record is shown as its source sent it, with the personal data in it masked
(:func:`dashboard.privacy.redact_payload`): names and addresses under their keys, phone numbers and
emails anywhere, in the preview, the reason and the whole payload alike.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, ctx, html
from sqlalchemy import select

from dashboard import guard, health, ids, queries
from dashboard.config import Settings
from dashboard.context import (
    current_principal,
    current_refresh_ms,
    current_settings,
    current_store,
    current_time,
)
from dashboard.pages import fmt_time, records, store_error
from dashboard.privacy import redact_payload, redact_text
from dashboard.store.db import Store
from dashboard.store.schema import quarantine
from dashboard.theme import grid_options

dash.register_page(
    __name__, access="read", path="/sources", name="Sources", title="Vantage · Sources", order=4
)

QUARANTINE_PAGE_SIZE = 50
ANY = "any"  # the filters' "no filter" value
RUNS_SHOWN = 20

_STATE_CLASSES = {
    "vt-ok": f"params.value == '{health.HEALTHY}' || params.value == '{health.FRESH}'",
    "vt-warn": (
        f"params.value == '{health.RETRYING}' || params.value == '{health.STALE}' "
        f"|| params.value == '{health.RUNNING}'"
    ),
    "vt-bad": f"params.value == '{health.FAILING}'",
    "vt-muted": (
        f"params.value == '{health.NEVER_RUN}' || params.value == '{health.NEVER}' "
        f"|| params.value == '{health.UNKNOWN}'"
    ),
}
_RUN_STATUS_CLASSES = {
    "vt-ok": "params.value == 'success'",
    "vt-warn": "params.value == 'partial' || params.value == 'running'",
    "vt-bad": "params.value == 'failed'",
}

STATUS_COLUMNS: list[dict[str, Any]] = [
    {"field": "connector", "headerName": "Connector", "pinned": "left", "width": 170},
    {"field": "type", "headerName": "Type", "width": 150},
    {"field": "enabled", "headerName": "Enabled", "width": 105},
    {"field": "interval", "headerName": "Interval", "width": 105},
    {"field": "state", "headerName": "State", "width": 120, "cellClassRules": _STATE_CLASSES},
    {"field": "freshness", "headerName": "Freshness", "width": 120, "cellClassRules": _STATE_CLASSES},
    {"field": "last_success_at", "headerName": "Last success (UTC)", "width": 200},
    {"field": "next_attempt_at", "headerName": "Next attempt (UTC)", "width": 200},
    {"field": "last_error", "headerName": "Last error", "width": 340, "tooltipField": "last_error"},
    {
        "headerName": "Last run",
        "children": [
            {
                "field": "last_status",
                "headerName": "Status",
                "width": 110,
                "cellClassRules": _RUN_STATUS_CLASSES,
            },
            {"field": "last_started_at", "headerName": "Started (UTC)", "width": 200},
            {"field": "last_finished_at", "headerName": "Finished (UTC)", "width": 200},
            {"field": "last_records_in", "headerName": "In", "width": 90, "type": "rightAligned"},
            {"field": "last_upserted", "headerName": "Upserted", "width": 110, "type": "rightAligned"},
            {"field": "last_quarantined", "headerName": "Quarant.", "width": 110, "type": "rightAligned"},
        ],
    },
    {
        "headerName": "Last 24 h",
        "children": [
            {"field": "runs_24h", "headerName": "Runs", "width": 90, "type": "rightAligned"},
            {"field": "records_in_24h", "headerName": "In", "width": 100, "type": "rightAligned"},
            {"field": "upserted_24h", "headerName": "Upserted", "width": 110, "type": "rightAligned"},
            {"field": "quarantined_24h", "headerName": "Quarant.", "width": 110, "type": "rightAligned"},
        ],
    },
    {
        "headerName": "Pushed to listeners",
        "children": [
            {"field": "last_push_at", "headerName": "Last event (UTC)", "width": 200},
            {"field": "push_requests", "headerName": "Requests", "width": 110, "type": "rightAligned"},
            {"field": "push_records_in", "headerName": "In", "width": 100, "type": "rightAligned"},
            {"field": "push_upserted", "headerName": "Upserted", "width": 110, "type": "rightAligned"},
            {"field": "push_quarantined", "headerName": "Quarant.", "width": 110, "type": "rightAligned"},
        ],
    },
]

RUN_COLUMNS: list[dict[str, Any]] = [
    {"field": "id", "headerName": "Run", "width": 90},
    {"field": "status", "headerName": "Status", "width": 110, "cellClassRules": _RUN_STATUS_CLASSES},
    {"field": "started_at", "headerName": "Started (UTC)", "width": 200},
    {"field": "finished_at", "headerName": "Finished (UTC)", "width": 200},
    {"field": "records_in", "headerName": "In", "width": 100, "type": "rightAligned"},
    {"field": "upserted", "headerName": "Upserted", "width": 110, "type": "rightAligned"},
    {"field": "quarantined", "headerName": "Quarantined", "width": 120, "type": "rightAligned"},
    {"field": "next_attempt_at", "headerName": "Next attempt (UTC)", "width": 200},
    {"field": "error", "headerName": "Error", "flex": 1, "minWidth": 250, "tooltipField": "error"},
]

QUARANTINE_COLUMNS: list[dict[str, Any]] = [
    {"field": "received_at", "headerName": "Received (UTC)", "width": 200},
    {"field": "connector", "headerName": "Connector", "width": 150},
    {"field": "stream", "headerName": "Stream", "width": 130},
    {"field": "kind", "headerName": "Kind", "width": 130},
    {"field": "record_id", "headerName": "Record id", "width": 160},
    {"field": "reason", "headerName": "Reason", "flex": 2, "minWidth": 260, "tooltipField": "reason"},
    {
        "field": "raw_preview",
        "headerName": "Raw payload (click a row for all of it)",
        "flex": 2,
        "minWidth": 260,
    },
]


# --- Pure rendering ------------------------------------------------------------------------


def fmt_interval(seconds: float | None) -> str:
    """``90 s``, ``15 min``, ``2 h``, ``1.5 h``; an em dash when unknown."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def status_rows(statuses: pd.DataFrame) -> list[dict[str, Any]]:
    """Grid rows from ``health.source_statuses``: times as UTC text, interval in words."""
    rows = records(statuses.drop(columns=["interval_s"]))
    for row, interval in zip(rows, statuses["interval_s"].tolist(), strict=True):
        row["interval"] = fmt_interval(interval)
        row["enabled"] = ("yes" if row["enabled"] else "no") if row["configured"] else "—"
        row["type"] = row["type"] or "not configured"
        row["last_success_at"] = row["last_success_at"] or "never"
        row["last_push_at"] = row["last_push_at"] or "—"
    return rows


def preview(raw: str | None, limit: int = 160) -> str:
    """One line of a raw payload, cut to ``limit`` characters."""
    text = " ".join((raw or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_raw(raw: str) -> str:
    """A raw payload indented when it is JSON, as received otherwise."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return raw


def quarantine_rows(page: queries.QuarantinePage) -> list[dict[str, Any]]:
    """Grid rows of one quarantine page: the raw payload as a one-line preview; personal data in it
    and in the reason (which quotes the refused value) masked."""
    rows = records(page.rows)
    for row in rows:
        row["id"] = str(row["id"])  # grid row ids are strings
        row["raw_preview"] = preview(redact_payload(row.pop("raw") or "", row.get("kind")))
        row["reason"] = redact_text(row["reason"]) if row.get("reason") else row.get("reason")
    return rows


def quarantine_count(page: queries.QuarantinePage) -> str:
    if page.total == 0:
        return "No quarantined records match."
    first = page.offset + 1
    last = page.offset + len(page.rows)
    return f"{first:,} to {last:,} of {page.total:,} quarantined records, newest first"


def page_count(total: int, size: int = QUARANTINE_PAGE_SIZE) -> int:
    return max(1, math.ceil(total / size))


# --- Reads ---------------------------------------------------------------------------------


def read_statuses(store: Store, settings: Settings, now: datetime) -> pd.DataFrame:
    with store.connect() as conn:
        summaries = queries.run_summaries(conn, now=now)
    return health.source_statuses(settings.connectors, summaries, now)


def read_quarantine(
    store: Store,
    connector: str | None,
    kind: str | None,
    search: str | None,
    page: int,
    *,
    search_reasons: bool = False,
) -> queries.QuarantinePage:
    """A page of the quarantine; the search looks into reasons only for roles that may unmask
    (reasons can quote a refused value)."""
    with store.connect() as conn:
        return queries.quarantine_page(
            conn,
            connector=None if connector in (None, "", ANY) else connector,
            kind=None if kind in (None, "", ANY) else kind,
            search=search or None,
            offset=(max(page, 1) - 1) * QUARANTINE_PAGE_SIZE,
            limit=QUARANTINE_PAGE_SIZE,
            search_reasons=search_reasons,
        )


def read_runs(store: Store, connector: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return records(queries.recent_runs(conn, connector, limit=RUNS_SHOWN))


# --- Layout --------------------------------------------------------------------------------


def _runs_section(connectors: list[str], store: Store) -> dbc.Accordion | html.P:
    if not connectors:
        return html.P("No connector is configured and none has run yet.", className="text-secondary")
    items = [
        dbc.AccordionItem(
            dag.AgGrid(
                id={"type": ids.SOURCES_RUNS_GRID, "connector": name},
                columnDefs=RUN_COLUMNS,
                rowData=read_runs(store, name),
                defaultColDef={"resizable": True, "sortable": True},
                dashGridOptions=grid_options(domLayout="autoHeight", tooltipShowDelay=300),
                className="vt-grid",
            ),
            title=name,
            item_id=name,
        )
        for name in connectors
    ]
    return dbc.Accordion(items, start_collapsed=True, always_open=True, className="vt-runs")


def _quarantine_section(store: Store, connector: str, kind: str) -> html.Div:
    with store.connect() as conn:
        connectors, kinds = queries.quarantine_facets(conn)
    page = read_quarantine(store, connector, kind, None, 1)
    filters = dbc.Row(
        [
            dbc.Col(
                dbc.Select(
                    id=ids.SOURCES_Q_CONNECTOR,
                    options=[{"label": "All connectors", "value": ANY}]
                    + [{"label": c, "value": c} for c in connectors],
                    value=connector or ANY,
                ),
                md=3,
            ),
            dbc.Col(
                dbc.Select(
                    id=ids.SOURCES_Q_KIND,
                    options=[{"label": "All kinds", "value": ANY}]
                    + [{"label": k, "value": k} for k in kinds],
                    value=kind or ANY,
                ),
                md=3,
            ),
            dbc.Col(
                dbc.Input(
                    id=ids.SOURCES_Q_SEARCH,
                    placeholder="Search reason or record id",
                    type="search",
                    debounce=True,
                ),
                md=4,
            ),
        ],
        className="g-2 mb-2",
    )
    return html.Div(
        [
            filters,
            html.Div(quarantine_count(page), id=ids.SOURCES_Q_COUNT, className="vt-count mb-2"),
            dag.AgGrid(
                id=ids.SOURCES_Q_GRID,
                columnDefs=QUARANTINE_COLUMNS,
                rowData=quarantine_rows(page),
                getRowId="params.data.id",
                defaultColDef={"resizable": True},
                dashGridOptions=grid_options(domLayout="autoHeight", tooltipShowDelay=300),
                className="vt-grid",
            ),
            dbc.Pagination(
                id=ids.SOURCES_Q_PAGE,
                max_value=page_count(page.total),
                active_page=1,
                first_last=True,
                previous_next=True,
                fully_expanded=False,
                className="mt-2",
            ),
            html.Pre(
                "Click a row to see its whole raw payload.", id=ids.SOURCES_Q_DETAIL, className="vt-raw"
            ),
        ]
    )


def layout(connector: str = "", kind: str = "", **_query: str) -> html.Div:
    store, settings, now = current_store(), current_settings(), current_time()
    try:
        statuses = read_statuses(store, settings, now)
        runs = _runs_section(statuses["connector"].tolist(), store)
        quarantined = _quarantine_section(store, connector, kind)
    except Exception as err:
        return html.Div([html.H1("Sources"), store_error(err)])
    return html.Div(
        [
            dash.dcc.Interval(id=ids.SOURCES_INTERVAL, interval=current_refresh_ms()),
            html.H1("Sources"),
            html.P(
                [
                    "Fresh: last success within 2 intervals. Retrying: the last run failed with a "
                    "transient error. Failing: the last run failed and needs an operator. ",
                    html.Span(f"as of {fmt_time(now, seconds=True)}", id=ids.SOURCES_STATUS_AS_OF),
                ],
                className="text-secondary",
            ),
            dag.AgGrid(
                id=ids.SOURCES_STATUS_GRID,
                columnDefs=STATUS_COLUMNS,
                rowData=status_rows(statuses),
                getRowId="params.data.connector",
                defaultColDef={"resizable": True, "sortable": True},
                dashGridOptions=grid_options(domLayout="autoHeight", tooltipShowDelay=300),
                className="vt-grid",
            ),
            html.H2("Recent runs", className="mt-4"),
            runs,
            html.H2("Quarantined records", className="mt-4"),
            quarantined,
        ]
    )


# --- Callbacks -----------------------------------------------------------------------------


def register_callbacks(app: dash.Dash) -> None:
    @guard.callback(
        app,
        "read",
        Output(ids.SOURCES_STATUS_GRID, "rowData"),
        Output(ids.SOURCES_STATUS_AS_OF, "children"),
        Output({"type": ids.SOURCES_RUNS_GRID, "connector": ALL}, "rowData"),
        Input(ids.SOURCES_INTERVAL, "n_intervals"),
        State({"type": ids.SOURCES_RUNS_GRID, "connector": ALL}, "id"),
        prevent_initial_call=True,
    )
    def _refresh(_n: int | None, grids: list[dict[str, str]]) -> tuple[Any, str, list[Any]]:
        store, now = current_store(), current_time()
        try:
            rows = status_rows(read_statuses(store, current_settings(), now))
            runs = [read_runs(store, g["connector"]) for g in grids]
        except Exception:
            # Keep the rows on screen but say plainly they are no longer current.
            return dash.no_update, "STALE: the store could not be read", [dash.no_update] * len(grids)
        return rows, f"as of {fmt_time(now, seconds=True)}", runs

    @guard.callback(
        app,
        "read",
        Output(ids.SOURCES_Q_GRID, "rowData"),
        Output(ids.SOURCES_Q_COUNT, "children"),
        Output(ids.SOURCES_Q_PAGE, "max_value"),
        Output(ids.SOURCES_Q_PAGE, "active_page"),
        Input(ids.SOURCES_Q_CONNECTOR, "value"),
        Input(ids.SOURCES_Q_KIND, "value"),
        Input(ids.SOURCES_Q_SEARCH, "value"),
        Input(ids.SOURCES_Q_PAGE, "active_page"),
        prevent_initial_call=True,
    )
    def _quarantine(
        connector: str | None, kind: str | None, search: str | None, active: int | None
    ) -> tuple[list[dict[str, Any]], str, int, int]:
        page_no = (active or 1) if ctx.triggered_id == ids.SOURCES_Q_PAGE else 1
        page = read_quarantine(
            current_store(), connector, kind, search, page_no, search_reasons=current_principal().may_unmask
        )
        return quarantine_rows(page), quarantine_count(page), page_count(page.total), page_no

    @guard.callback(
        app,
        "read",
        Output(ids.SOURCES_Q_DETAIL, "children"),
        Input(ids.SOURCES_Q_GRID, "cellClicked"),
        prevent_initial_call=True,
    )
    def _detail(clicked: dict[str, Any] | None) -> str:
        return raw_detail(current_store(), clicked)


def raw_detail(store: Store, clicked: dict[str, Any] | None) -> str:
    """The whole raw payload of the clicked quarantine row, pretty-printed when it is JSON, with the
    personal data in it masked."""
    if not clicked or clicked.get("rowId") is None:
        return "Click a row to see its whole raw payload."
    row_id = int(clicked["rowId"])
    with store.connect() as conn:
        raw = queries.quarantined_raw(conn, row_id)
        kind = conn.execute(select(quarantine.c.kind).where(quarantine.c.id == row_id)).scalar()
    if raw is None:
        return "That record is no longer in quarantine."
    return redact_payload(pretty_raw(raw), kind)
