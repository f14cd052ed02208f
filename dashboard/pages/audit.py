"""Audit (/audit, admins only): the audit log, newest first, a page at a time, filtered by who acted,
which action (or family of actions), which target and when; and the same filters as a CSV export
(``/api/v1/audit.csv``).

The filters live in the query string (``?actor=ana&action=login&since=2026-03-01``), so a view of
the log can be linked. Times are UTC. Paging follows record ids (``dashboard.auth.audit.read``'s
``before_id``), so records written while someone reads do not shift the pages they turn through.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc, html

from dashboard import guard, ids
from dashboard.auth import audit
from dashboard.context import current_store
from dashboard.pages import store_error
from dashboard.store.db import Store
from dashboard.theme import grid_options

dash.register_page(__name__, access="admin", path="/audit", name="Audit", title="Vantage · Audit", order=6)

PAGE_SIZE = 100
ANY = "any"  # the action select's "no filter" value
EXPORT_PATH = "/api/v1/audit.csv"
#: The longest filter values: the audit table's column widths, and an ISO time with its zone.
MAX_NAME = 128
MAX_ACTION = 64
MAX_TIME = 40
#: Record ids a paging cursor may hold (the column is a 64-bit integer at most).
MAX_ID = 2**63 - 1

COLUMNS: list[dict[str, Any]] = [
    {"field": "at", "headerName": "At (UTC)", "width": 190, "pinned": "left"},
    {"field": "actor", "headerName": "Actor", "width": 170, "tooltipField": "actor"},
    {"field": "action", "headerName": "Action", "width": 170},
    {"field": "target_type", "headerName": "Target type", "width": 130},
    {"field": "target_id", "headerName": "Target", "width": 210, "tooltipField": "target_id"},
    {"field": "detail", "headerName": "Detail", "flex": 1, "minWidth": 280, "tooltipField": "detail"},
]


class Filters(NamedTuple):
    """The filters as typed (trimmed; None when empty), for the controls, the links and the read."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: str | None = None
    until: str | None = None


class BadFilter(ValueError):
    """A filter value that cannot be used; the message says which and why, for the count line."""


class AuditView(NamedTuple):
    """What the page shows for one set of filters and one page of the log."""

    rows: list[dict[str, Any]]
    summary: str
    paging: dict[str, Any]
    newer_disabled: bool
    older_disabled: bool
    export_href: str
    export_disabled: bool
    search: str


# --- Filters and links ------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    # Only text is a filter: anything else a request carries is no filter at all.
    text = value.strip() if isinstance(value, str) else ""
    return text or None


def clean_filters(
    actor: Any = None, action: Any = None, target: Any = None, since: Any = None, until: Any = None
) -> Filters:
    """The filters the controls (or a query string) hold; the action select's "any" is no filter."""
    chosen = _text(action)
    return Filters(_text(actor), None if chosen == ANY else chosen, _text(target), _text(since), _text(until))


def parse_time(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 date or time as the store keeps times, naive UTC (a time without a zone is UTC)."""
    if text is None:
        return None
    try:
        if len(text) > MAX_TIME:
            raise ValueError(text)
        value = datetime.fromisoformat(text)
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise BadFilter(f"{name}: expected a date or time such as 2026-03-02 or 2026-03-02 14:00") from None
    return value


def audit_filter(f: Filters) -> audit.AuditFilter:
    """The read's filter; BadFilter for a value that cannot be used."""
    limits = (("Actor", f.actor, MAX_NAME), ("Action", f.action, MAX_ACTION), ("Target", f.target, MAX_NAME))
    for label, value, most in limits:
        if value is not None and len(value) > most:
            raise BadFilter(f"{label}: at most {most} characters")
    since, until = parse_time("From", f.since), parse_time("To", f.until)
    if since is not None and until is not None and until <= since:
        raise BadFilter("To: must be after From")
    return audit.AuditFilter(actor=f.actor, action=f.action, target=f.target, since=since, until=until)


def query_string(f: Filters) -> str:
    """``?actor=ana&action=login``: the filters set, for a deep link and the export."""
    pairs = {k: v for k, v in f._asdict().items() if v}
    return f"?{urlencode(pairs)}" if pairs else ""


def export_href(f: Filters) -> str:
    return EXPORT_PATH + query_string(f)


def action_options(actions: Iterable[str], current: str | None = None) -> list[dict[str, str]]:
    """Each action the log holds, and each family above it (``login`` for ``login.failed``), in order.

    A family matches itself and every action under it (``dashboard.auth.audit.AuditFilter``), so it
    is offered as "login (all)"; ``current`` (from a deep link) is kept even if the log lacks it.
    """
    known = set(actions) | ({current} if current else set())
    families = {a.rsplit(".", i)[0] for a in known for i in range(1, a.count(".") + 1)}
    options = [{"label": "All actions", "value": ANY}]
    for name in sorted(known | families):
        has_children = any(a.startswith(f"{name}.") for a in known)
        options.append({"label": f"{name} (all)" if has_children else name, "value": name})
    return options


# --- The log ---------------------------------------------------------------------------------


def record_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Grid rows of audit records: the time as UTC text, the detail as compact JSON text."""
    out: list[dict[str, Any]] = []
    for row in rows:
        at = row.get("at")
        detail = row.get("detail")
        out.append(
            {
                "id": str(row["id"]),  # grid row ids are strings
                "at": at.strftime("%Y-%m-%d %H:%M:%S") if isinstance(at, datetime) else at,
                "actor": row.get("actor"),
                "action": row.get("action"),
                "target_type": row.get("target_type"),
                "target_id": row.get("target_id"),
                "detail": None
                if detail is None
                else json.dumps(detail, ensure_ascii=False, sort_keys=True, separators=(", ", ": ")),
            }
        )
    return out


def count_line(first: int, shown: int, total: int) -> str:
    """``Records 101 to 200 of 1,234, newest first.`` (``first`` counted from 1)."""
    if total == 0:
        return "No audit records match."
    if shown == 0:
        return f"No older records; {total:,} match in all."
    return f"Records {first:,} to {first + shown - 1:,} of {total:,}, newest first."


def _cursor(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def paging_pages(paging: Any) -> list[int | None]:
    """The cursors of the pages turned so far (the first None), from the paging store; a store a
    request forged or mangled starts again at the newest page."""
    pages = paging.get("pages") if isinstance(paging, dict) else None
    if not isinstance(pages, list) or not pages or pages[0] is not None:
        return [None]
    cursors = [_cursor(p) for p in pages[1:]]
    return [None] if None in cursors else [None, *cursors]


def turn(trigger: Any, paging: Any) -> list[int | None]:
    """The pages after a click: Older adds the next page, Newer goes back one, a filter starts over."""
    pages = paging_pages(paging)
    following = _cursor(paging.get("next")) if isinstance(paging, dict) else None
    if trigger == ids.AUDIT_OLDER and following is not None:
        return [*pages, following]
    if trigger == ids.AUDIT_NEWER and len(pages) > 1:
        return pages[:-1]
    if trigger in (ids.AUDIT_OLDER, ids.AUDIT_NEWER):
        return pages
    return [None]


def read_page(
    store: Store, f: audit.AuditFilter, before: int | None
) -> tuple[list[dict[str, Any]], int, int | None]:
    """One page of matching records older than ``before``, how many match in all, and the cursor of
    the next page (None when no older record matches)."""
    with store.connect() as conn:
        rows = audit.read(conn, f, limit=PAGE_SIZE, before_id=before)
        total = audit.count(conn, f)
        last = int(rows[-1]["id"]) if len(rows) == PAGE_SIZE else None
        more = last is not None and bool(audit.read(conn, f, limit=1, before_id=last))
    return rows, total, last if more else None


def audit_view(store: Store, filters: Filters, trigger: Any = None, paging: Any = None) -> AuditView:
    """Everything the page shows for ``filters`` after ``trigger`` (a pager button, or a filter)."""
    search = query_string(filters)
    try:
        f = audit_filter(filters)
    except BadFilter as err:
        return AuditView([], str(err), {"pages": [None], "next": None}, True, True, EXPORT_PATH, True, search)
    pages = turn(trigger, paging)
    rows, total, following = read_page(store, f, pages[-1])
    first = (len(pages) - 1) * PAGE_SIZE + 1
    return AuditView(
        rows=record_rows(rows),
        summary=count_line(first, len(rows), total),
        paging={"pages": pages, "next": following},
        newer_disabled=len(pages) == 1,
        older_disabled=following is None,
        export_href=export_href(filters),
        export_disabled=False,
        search=search,
    )


# --- Layout ----------------------------------------------------------------------------------


def _field(label: str, control: Any, **width: Any) -> dbc.Col:
    return dbc.Col([dbc.Label(label, html_for=control.id, className="vt-filter-label"), control], **width)


def _controls(filters: Filters, actions: list[str]) -> dbc.Row:
    def text(id_: str, value: str | None, placeholder: str, most: int) -> dbc.Input:
        return dbc.Input(
            id=id_, value=value or "", placeholder=placeholder, maxLength=most, type="search", debounce=True
        )

    when = "2026-03-02 or 2026-03-02 14:00"
    return dbc.Row(
        [
            _field("Actor", text(ids.AUDIT_ACTOR, filters.actor, "user name", MAX_NAME), xs=6, md=True),
            _field(
                "Action",
                dbc.Select(
                    id=ids.AUDIT_ACTION,
                    options=action_options(actions, filters.action),
                    value=filters.action or ANY,
                ),
                xs=6,
                md=True,
            ),
            _field(
                "Target",
                text(ids.AUDIT_TARGET, filters.target, "user, token or subscriber id", MAX_NAME),
                xs=6,
                md=True,
            ),
            _field("From (UTC)", text(ids.AUDIT_SINCE, filters.since, when, MAX_TIME), xs=6, md=True),
            _field("To (UTC)", text(ids.AUDIT_UNTIL, filters.until, when, MAX_TIME), xs=6, md=True),
        ],
        className="g-3 mb-2 align-items-end vt-filters",
    )


def layout(
    actor: str = "", action: str = "", target: str = "", since: str = "", until: str = "", **_query: str
) -> html.Div:
    """The log's newest page for the filters of the query string."""
    filters = clean_filters(actor, action, target, since, until)
    store = current_store()
    try:
        with store.connect() as conn:
            actions = audit.actions(conn)
        view = audit_view(store, filters)
    except Exception as err:
        return html.Div([html.H1("Audit log"), store_error(err)])
    pager = html.Div(
        [
            dbc.Button(
                "Newer", id=ids.AUDIT_NEWER, color="secondary", size="sm", disabled=view.newer_disabled
            ),
            dbc.Button(
                "Older",
                id=ids.AUDIT_OLDER,
                color="secondary",
                size="sm",
                disabled=view.older_disabled,
                className="ms-2",
            ),
        ],
        className="mt-2",
    )
    return html.Div(
        [
            dcc.Location(id=ids.AUDIT_URL, refresh=False),
            dcc.Store(id=ids.AUDIT_PAGING, data=view.paging),
            html.H1("Audit log"),
            html.P(
                "Who did what and when: logins, failed logins, unmaskings, searches on personal "
                "fields, incident actions, users and tokens. An action family (login) matches every "
                "action under it (login.failed).",
                className="text-secondary",
            ),
            _controls(filters, actions),
            dbc.Row(
                [
                    dbc.Col(html.P(view.summary, id=ids.AUDIT_COUNT, className="vt-count mb-2")),
                    dbc.Col(
                        dbc.Button(
                            "Export CSV",
                            id=ids.AUDIT_EXPORT,
                            href=view.export_href,
                            external_link=True,
                            disabled=view.export_disabled,
                            color="secondary",
                            size="sm",
                        ),
                        width="auto",
                    ),
                ],
                className="align-items-center",
            ),
            dag.AgGrid(
                id=ids.AUDIT_GRID,
                columnDefs=COLUMNS,
                rowData=view.rows,
                getRowId="params.data.id",
                defaultColDef={"resizable": True},
                dashGridOptions=grid_options(
                    domLayout="autoHeight",
                    tooltipShowDelay=300,
                    localeText={"noRowsToShow": "No audit records to show"},
                ),
                className="vt-grid",
            ),
            pager,
        ]
    )


# --- Callbacks -------------------------------------------------------------------------------


def register_callbacks(app: dash.Dash) -> None:
    @guard.callback(
        app,
        "admin",
        Output(ids.AUDIT_GRID, "rowData"),
        Output(ids.AUDIT_COUNT, "children"),
        Output(ids.AUDIT_PAGING, "data"),
        Output(ids.AUDIT_NEWER, "disabled"),
        Output(ids.AUDIT_OLDER, "disabled"),
        Output(ids.AUDIT_EXPORT, "href"),
        Output(ids.AUDIT_EXPORT, "disabled"),
        Output(ids.AUDIT_URL, "search"),
        Input(ids.AUDIT_ACTOR, "value"),
        Input(ids.AUDIT_ACTION, "value"),
        Input(ids.AUDIT_TARGET, "value"),
        Input(ids.AUDIT_SINCE, "value"),
        Input(ids.AUDIT_UNTIL, "value"),
        Input(ids.AUDIT_NEWER, "n_clicks"),
        Input(ids.AUDIT_OLDER, "n_clicks"),
        State(ids.AUDIT_PAGING, "data"),
        prevent_initial_call=True,
    )
    def _view(
        actor: Any,
        action: Any,
        target: Any,
        since: Any,
        until: Any,
        _newer: int | None,
        _older: int | None,
        paging: Any,
    ) -> tuple[Any, ...]:
        filters = clean_filters(actor, action, target, since, until)
        return refresh_view(current_store(), filters, ctx.triggered_id, paging)


def refresh_view(store: Store, filters: Filters, trigger: Any, paging: Any) -> tuple[Any, ...]:
    """The callback's outputs: :func:`audit_view`, or, when the store cannot be read, the rows on
    screen kept and the count line saying they are no longer current."""
    try:
        return tuple(audit_view(store, filters, trigger, paging))
    except Exception:
        stale = "STALE: the store could not be read"
        return (dash.no_update, stale, *([dash.no_update] * (len(AuditView._fields) - 2)))
