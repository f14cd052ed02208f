"""Actions (/actions): what the playbooks decided and what became of it.

A strip of figures (queued, awaiting approval, sent today, failed, uncertain, money promised), the
actions waiting for a person with Approve and Reject, the timeline of recent actions (filtered by
state, playbook and channel in the query string: ``?state=failed&playbook=resolved-apology``) with
Cancel and Resend where they apply, and what the built-in loopback sinks received. Every decision
goes through :func:`dashboard.playbooks.decide`, which audits it; its buttons exist only for roles
that may act (their callback's rule refuses the others anyway).

Addresses and message text arrive masked from :mod:`dashboard.playbooks.read`, for every role.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, ctx, dcc, html

from dashboard import guard, ids
from dashboard.context import (
    current_actor,
    current_principal,
    current_refresh_ms,
    current_settings,
    current_store,
    current_time,
)
from dashboard.pages import fmt_count, fmt_time, records, store_error
from dashboard.playbooks import TRANSITIONS, OutboxError, decide
from dashboard.playbooks import read as outbox
from dashboard.store.db import Store
from dashboard.store.schema import ACTION_STATES

dash.register_page(
    __name__, access="read", path="/actions", name="Actions", title="Vantage · Actions", order=8
)

ANY = "any"  # the selects' "no filter" value
PENDING_SHOWN = 100
TIMELINE_SHOWN = 200
LOOPBACK_SHOWN = 50
#: Action ids a button may carry (the column is a 64-bit integer at most).
MAX_ID = 2**63 - 1
#: The verbs of the pending table and of the timeline's rows.
PENDING_VERBS = ("approve", "reject")
ROW_VERBS = ("cancel", "resend")
VERB_LABELS = {"approve": "Approve", "reject": "Reject", "cancel": "Cancel", "resend": "Resend"}
VERB_DONE = {"approve": "approved", "reject": "rejected", "cancel": "cancelled", "resend": "resent"}
VERB_COLOURS = {"approve": "success", "reject": "danger", "cancel": "secondary", "resend": "warning"}
#: A mark per state, so it reads without colour.
STATE_MARKS = {
    "queued": "○",
    "sending": "◔",
    "sent": "✓",
    "failed": "▲",
    "awaiting_approval": "◆",
    "rejected": "✖",
    "cancelled": "✖",
    "suppressed": "⊘",
    "dry_run": "◌",
    "held_out": "◇",
    "uncertain": "?",
}


class Filters(NamedTuple):
    """The timeline's filters (None: any)."""

    state: str | None = None
    playbook: str | None = None
    channel: str | None = None


class OutboxView(NamedTuple):
    """What the page shows for one set of filters."""

    summary: dict[str, Any]
    pending: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    received: list[dict[str, Any]]
    facets: dict[str, list[str]]


# --- Filters ---------------------------------------------------------------------------------


def _choice(value: Any, most: int = 64) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    return None if not text or text == ANY or len(text) > most else text


def clean_filters(state: Any = None, playbook: Any = None, channel: Any = None) -> Filters:
    """The filters the controls (or a query string) hold; an unknown state is no filter."""
    chosen = _choice(state)
    return Filters(chosen if chosen in ACTION_STATES else None, _choice(playbook), _choice(channel, 16))


# --- Pure rendering --------------------------------------------------------------------------


def money(value: Any, currency: str) -> str:
    """``18.00 EUR``, or an em dash for nothing."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{float(value):,.2f} {currency}"


def _data(**values: str) -> dict[str, Any]:
    """``data-*`` attributes for a component (tests and scripts find rows by them)."""
    return {f"data-{k}": v for k, v in values.items()}


def state_badge(state: str, reason: str | None = None) -> html.Span:
    """The state as mark and word, with its reason beside it."""
    badge = html.Span(
        [html.Span(STATE_MARKS.get(state, "·"), className="vt-actstate-mark"), state.replace("_", " ")],
        className=f"vt-actstate vt-actstate-{state}",
    )
    if not reason:
        return badge
    return html.Span([badge, html.Span(reason, className="vt-meta vt-actstate-reason")])


def target_link(target: str | None) -> Any:
    """The action's target, linked to the incident, line or account it names."""
    kind, _, ident = (target or "").partition(":")
    if not ident:
        return target or "—"
    if kind == "incident":
        return dcc.Link(target, href="/incidents?" + urlencode({"id": ident}))
    if kind == "line":
        return dcc.Link(target, href="/subscribers/" + quote(ident, safe=""))
    if kind == "account":
        return dcc.Link(target, href="/subscribers?" + urlencode({"account": ident}))
    return target


def decide_button(action_id: int, verb: str) -> dbc.Button:
    return dbc.Button(
        VERB_LABELS[verb],
        id={"type": ids.ACTIONS_DECIDE, "verb": verb, "action": action_id},
        color=VERB_COLOURS[verb],
        size="sm",
        className="vt-decide me-1",
    )


def row_verbs(state: str, offered: Sequence[str] = ROW_VERBS) -> list[str]:
    """The verbs of ``offered`` that apply to an action in ``state``."""
    return [v for v in offered if state in TRANSITIONS[v][0]]


def _money_cell(row: Mapping[str, Any], currency: str) -> html.Td:
    parts = []
    if row.get("promised") is not None:
        parts.append(f"promised {money(row['promised'], currency)}")
    if row.get("cost") is not None:
        parts.append(f"cost {money(row['cost'], currency)}")
    if row.get("offer"):
        parts.insert(0, str(row["offer"]))
    return html.Td(" · ".join(parts) or "—", className="vt-num")


def summary_items(summary: Mapping[str, Any], currency: str) -> list[html.Div]:
    """The strip: the figures that ask for attention, and the money the loop has committed."""
    states = summary["states"]
    figures = [
        ("queued", "Queued", fmt_count(states.get("queued", 0))),
        ("awaiting_approval", "Awaiting approval", fmt_count(states.get("awaiting_approval", 0))),
        ("sent_today", "Sent today", fmt_count(summary["sent_since"])),
        ("failed", "Failed", fmt_count(states.get("failed", 0))),
        ("uncertain", "Uncertain", fmt_count(states.get("uncertain", 0))),
        ("promised", "Money promised", money(summary["promised"], currency)),
    ]
    title = (
        f"Promised to customers and cost to the operator ({money(summary['cost'], currency)}) of what "
        "was sent today and of everything queued or awaiting approval"
    )
    return [
        html.Div(
            [html.Span(value, className="vt-strip-value"), html.Span(label, className="vt-strip-label")],
            className="vt-strip-item",
            title=title if key == "promised" else None,
            **_data(figure=key),
        )
        for key, label, value in figures
    ]


def pending_table(rows: Sequence[Mapping[str, Any]], may_act: bool, currency: str) -> Any:
    """The approvals waiting for a person, oldest first, with Approve and Reject for those who may act."""
    if not rows:
        return html.P("Nothing is waiting for an approval.", className="vt-muted")
    head = ["Decided (UTC)", "Playbook / step", "Target", "Channel", "To", "Subject", "Money", "Why"]
    body = []
    for r in rows:
        cells = [
            html.Td(fmt_time(r.get("created_at"))),
            html.Td([html.Strong(r["playbook"]), html.Span(r["step"], className="vt-meta")]),
            html.Td(target_link(r.get("target"))),
            html.Td(r.get("channel") or "—"),
            html.Td(r.get("address") or "—", className="vt-personal"),
            html.Td(r.get("subject") or "—"),
            _money_cell(r, currency),
            html.Td(r.get("reason") or "—"),
        ]
        if may_act:
            cells.append(
                html.Td([decide_button(int(r["id"]), v) for v in PENDING_VERBS], className="vt-nowrap")
            )
        body.append(html.Tr(cells, **_data(action=str(r["id"]))))
    header = html.Tr([html.Th(h) for h in head] + ([html.Th("Decide")] if may_act else []))
    return html.Table([html.Thead(header), html.Tbody(body)], className="table table-sm vt-table vt-outbox")


def timeline_table(rows: Sequence[Mapping[str, Any]], may_act: bool, currency: str) -> Any:
    """Recent actions, newest first: when, playbook and step, target, channel, state and why, money,
    the receiver's reference; Cancel or Resend where they apply, for those who may act."""
    if not rows:
        return html.P("No actions match.", className="vt-muted")
    head = ["When (UTC)", "Playbook / step", "Target", "Channel", "To", "State", "Money", "Reference"]
    body = []
    for r in rows:
        when = r.get("sent_at") or r.get("updated_at") or r.get("created_at")
        cells = [
            html.Td(fmt_time(when)),
            html.Td([html.Strong(r["playbook"]), html.Span(r["step"], className="vt-meta")]),
            html.Td(target_link(r.get("target"))),
            html.Td(r.get("channel") or "—"),
            html.Td(r.get("address") or "—", className="vt-personal"),
            html.Td(state_badge(r["state"], r.get("reason"))),
            _money_cell(r, currency),
            html.Td(r.get("reference") or "—"),
        ]
        if may_act:
            verbs = row_verbs(r["state"])
            cells.append(html.Td([decide_button(int(r["id"]), v) for v in verbs], className="vt-nowrap"))
        body.append(html.Tr(cells, **_data(action=str(r["id"]), state=r["state"])))
    header = html.Tr([html.Th(h) for h in head] + ([html.Th("")] if may_act else []))
    return html.Table([html.Thead(header), html.Tbody(body)], className="table table-sm vt-table vt-outbox")


def loopback_panel(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """What the built-in sinks received (none: nothing, the panel is hidden)."""
    if not rows:
        return []
    body = [
        html.Tr(
            [
                html.Td(fmt_time(r.get("received_at"), seconds=True)),
                html.Td(r.get("channel") or "—"),
                html.Td(r.get("to") or "—", className="vt-personal"),
                html.Td(r.get("subject") or "—"),
                html.Td(r.get("first_line") or "—", className="vt-text"),
                html.Td(r.get("reference") or "—"),
            ]
        )
        for r in rows
    ]
    head = html.Tr(
        [html.Th(h) for h in ("Received (UTC)", "Channel", "To", "Subject", "First line", "Reference")]
    )
    return [
        dbc.CardHeader(f"Loopback sinks: the last {len(rows)} messages the built-in receivers got"),
        dbc.CardBody(
            html.Table([html.Thead(head), html.Tbody(body)], className="table table-sm vt-table vt-loopback")
        ),
    ]


def count_line(view: OutboxView, filters: Filters) -> str:
    shown = len(view.timeline)
    filtered = any(filters)
    if shown == 0:
        return "No actions match." if filtered else "No actions yet."
    most = f" (the {TIMELINE_SHOWN:,} newest)" if shown == TIMELINE_SHOWN else ""
    return f"{shown:,} action{'s' if shown != 1 else ''}{most}, newest first."


# --- Reads -----------------------------------------------------------------------------------


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: "today" of the strip."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def read_view(store: Store, filters: Filters, now: datetime) -> OutboxView:
    with store.connect() as conn:
        summary = outbox.outbox_summary(conn, day_start(now))
        pending = outbox.pending_approvals(conn, PENDING_SHOWN)
        timeline = outbox.action_timeline(
            conn,
            states=[filters.state] if filters.state else None,
            playbook=filters.playbook,
            channel=filters.channel,
            limit=TIMELINE_SHOWN,
        )
        received = outbox.loopback_received(conn, LOOPBACK_SHOWN)
        facets = outbox.facets(conn)
    return OutboxView(summary, records(pending), records(timeline), records(received), facets)


def view_outputs(view: OutboxView, filters: Filters, *, may_act: bool, currency: str) -> tuple[Any, ...]:
    """The strip, the pending table, the count line, the timeline, the loopback panel and its class."""
    panel = loopback_panel(view.received)
    return (
        summary_items(view.summary, currency),
        pending_table(view.pending, may_act, currency),
        count_line(view, filters),
        timeline_table(view.timeline, may_act, currency),
        panel,
        "vt-card mb-3" if panel else "vt-card mb-3 d-none",
    )


def refresh_view(
    store: Store, filters: Filters, now: datetime, *, may_act: bool, currency: str
) -> tuple[Any, ...]:
    """:func:`view_outputs`, or, when the store cannot be read, what is on screen kept and the count
    line saying it is no longer current."""
    try:
        view = read_view(store, filters, now)
    except Exception:
        stale = "STALE: the store could not be read"
        return dash.no_update, dash.no_update, stale, dash.no_update, dash.no_update, dash.no_update
    return view_outputs(view, filters, may_act=may_act, currency=currency)


# --- Decisions -------------------------------------------------------------------------------


def clicked(trigger: Any, value: Any) -> tuple[str, int] | None:
    """The verb and action of the button that was clicked, or None (a button drawn anew reports no
    click; a forged id names no verb or action)."""
    if not isinstance(trigger, Mapping) or trigger.get("type") != ids.ACTIONS_DECIDE or not value:
        return None
    verb, action_id = trigger.get("verb"), trigger.get("action")
    if verb not in TRANSITIONS or isinstance(action_id, bool) or not isinstance(action_id, int):
        return None
    return (verb, action_id) if 0 < action_id <= MAX_ID else None


def decide_outputs(
    store: Store, trigger: Any, value: Any, acted: Any, *, actor: str, now: datetime
) -> tuple[Any, Any]:
    """Apply the clicked button's verb; the message, and the bumped counter that re-reads the page."""
    chosen = clicked(trigger, value)
    if chosen is None:
        return dash.no_update, dash.no_update
    verb, action_id = chosen
    try:
        state = decide(store, action_id, verb, actor=actor, now=now)
    except OutboxError as err:
        return dbc.Alert(str(err), color="danger", className="vt-action-error"), dash.no_update
    except Exception as err:
        return store_error(err), dash.no_update
    done = f"Action {action_id} {VERB_DONE[verb]} by {actor}: now {state.replace('_', ' ')}."
    bumped = (acted if isinstance(acted, int) and not isinstance(acted, bool) else 0) + 1
    return dbc.Alert(done, color="success", className="vt-action-ok"), bumped


# --- Layout ----------------------------------------------------------------------------------


def _select(id_: str, label: str, options: list[dict[str, str]], value: str | None) -> dbc.Col:
    return dbc.Col(
        [
            dbc.Label(label, html_for=id_, className="vt-filter-label"),
            dbc.Select(id=id_, options=options, value=value or ANY),
        ],
        xs=12,
        md=True,
    )


def _controls(filters: Filters, facets: Mapping[str, list[str]]) -> dbc.Row:
    def options(every: str, values: Sequence[str], current: str | None) -> list[dict[str, str]]:
        known = list(values) + ([current] if current and current not in values else [])
        return [{"label": every, "value": ANY}] + [{"label": v.replace("_", " "), "value": v} for v in known]

    return dbc.Row(
        [
            _select(
                ids.ACTIONS_STATE,
                "State",
                options("Every state", ACTION_STATES, filters.state),
                filters.state,
            ),
            _select(
                ids.ACTIONS_PLAYBOOK,
                "Playbook",
                options("Every playbook", facets["playbooks"], filters.playbook),
                filters.playbook,
            ),
            _select(
                ids.ACTIONS_CHANNEL,
                "Channel",
                options("Every channel", facets["channels"], filters.channel),
                filters.channel,
            ),
        ],
        className="g-3 mb-2 align-items-end vt-filters",
    )


def layout(state: str = "", playbook: str = "", channel: str = "", **_query: str) -> html.Div:
    """The outbox now, the timeline filtered as the query string says."""
    filters = clean_filters(state, playbook, channel)
    principal, now = current_principal(), current_time()
    try:
        view = read_view(current_store(), filters, now)
    except Exception as err:
        return html.Div([html.H1("Actions"), store_error(err)])
    strip, pending, count, timeline, panel, panel_class = view_outputs(
        view, filters, may_act=principal.may_act, currency=current_settings().currency
    )
    locked = html.P(
        f"Your role ({principal.role}) may look but not approve, reject, cancel or resend actions.",
        className="vt-muted",
        hidden=principal.may_act,
    )
    return html.Div(
        [
            dcc.Interval(id=ids.ACTIONS_INTERVAL, interval=current_refresh_ms()),
            dcc.Store(id=ids.ACTIONS_ACTED, data=0),
            html.H1("Actions"),
            html.P(
                "What the playbooks decided and what became of it. Addresses and message text are "
                "masked; every approval, rejection, cancellation and resend is written to the audit log.",
                className="text-secondary",
            ),
            html.Div(strip, id=ids.ACTIONS_SUMMARY, className="vt-strip vt-outbox-strip mb-3"),
            dbc.Card(
                [
                    dbc.CardHeader("Awaiting approval"),
                    dbc.CardBody(
                        [
                            locked,
                            html.Div(id=ids.ACTIONS_RESULT, role="status"),
                            html.Div(pending, id=ids.ACTIONS_PENDING),
                        ]
                    ),
                ],
                className="vt-card mb-3",
            ),
            html.H2("Timeline", className="mt-2"),
            _controls(filters, view.facets),
            html.P(count, id=ids.ACTIONS_COUNT, className="vt-count"),
            html.Div(timeline, id=ids.ACTIONS_TIMELINE, className="mb-3"),
            dbc.Card(panel, id=ids.ACTIONS_LOOPBACK, className=panel_class),
        ]
    )


# --- Callbacks -------------------------------------------------------------------------------


def register_callbacks(app: dash.Dash) -> None:
    @guard.callback(
        app,
        "read",
        Output(ids.ACTIONS_SUMMARY, "children"),
        Output(ids.ACTIONS_PENDING, "children"),
        Output(ids.ACTIONS_COUNT, "children"),
        Output(ids.ACTIONS_TIMELINE, "children"),
        Output(ids.ACTIONS_LOOPBACK, "children"),
        Output(ids.ACTIONS_LOOPBACK, "className"),
        Input(ids.ACTIONS_INTERVAL, "n_intervals"),
        Input(ids.ACTIONS_ACTED, "data"),
        Input(ids.ACTIONS_STATE, "value"),
        Input(ids.ACTIONS_PLAYBOOK, "value"),
        Input(ids.ACTIONS_CHANNEL, "value"),
        prevent_initial_call=True,
    )
    def _refresh(_n: Any, _acted: Any, state: Any, playbook: Any, channel: Any) -> tuple[Any, ...]:
        return refresh_view(
            current_store(),
            clean_filters(state, playbook, channel),
            current_time(),
            may_act=current_principal().may_act,
            currency=current_settings().currency,
        )

    @guard.callback(
        app,
        "act",
        Output(ids.ACTIONS_RESULT, "children"),
        Output(ids.ACTIONS_ACTED, "data"),
        Input({"type": ids.ACTIONS_DECIDE, "verb": ALL, "action": ALL}, "n_clicks"),
        State(ids.ACTIONS_ACTED, "data"),
        prevent_initial_call=True,
    )
    def _decide(_clicks: Any, acted: Any) -> tuple[Any, Any]:
        value = ctx.triggered[0].get("value") if ctx.triggered else None
        return decide_outputs(
            current_store(), ctx.triggered_id, value, acted, actor=current_actor(), now=current_time()
        )


# --- The outbox of one incident or one line (the incident detail and the subscriber 360) ------


def outbox_list(rows: Sequence[Mapping[str, Any]], currency: str, *, empty: str) -> Any:
    """Actions as a compact list, newest first: playbook and step, target, state and why, when,
    and what was promised; addresses masked as they came."""
    if not rows:
        return html.P(empty, className="vt-muted")
    items = []
    for r in rows:
        when = r.get("sent_at") or r.get("updated_at") or r.get("created_at")
        meta = [fmt_time(when), r.get("channel") or ""]
        if r.get("address"):
            meta.append(f"to {r['address']}")
        if r.get("offer"):
            meta.append(f"offer {r['offer']}")
        if r.get("promised") is not None:
            meta.append(f"promised {money(r['promised'], currency)}")
        items.append(
            html.Li(
                [
                    html.Div(
                        [
                            html.Strong(f"{r['playbook']} / {r['step']}"),
                            html.Span(" · ".join(m for m in meta if m), className="vt-meta"),
                        ]
                    ),
                    html.Div([target_link(r.get("target")), " ", state_badge(r["state"], r.get("reason"))]),
                ],
                className="vt-outbox-item",
                **_data(action=str(r["id"]), state=r["state"]),
            )
        )
    return html.Ul(items, className="vt-notes vt-outbox-list")
