"""Subscriber 360 (/subscribers/<id>): one subscriber's whole story, masked until someone may see it.

The header names the line (masked MSISDN, plan, segment, VIP, account, churn risk) and holds every
personal field; tabs hold the overview (profile, churn drivers, the timeline), the network (serving
cells, each against its usual band, the KPIs the subscriber experienced, the incidents that hit it,
each linked), tickets with their notes, bills and revenue, and offers with the actions taken
(people's, from the audit log, and the playbooks', from the outbox: offers with their state,
apologies; addresses masked). Only the tab shown is built: ``?tab=network`` opens on it, and
choosing another tab rebuilds just the tab's body (never the header, so unmasked values stay) and
rewrites the URL in the browser without reloading. Ticket and note text is always a plain string
child, which React escapes: nothing a customer typed is ever rendered as HTML.

Personal fields arrive masked (dashboard.privacy decides). A role that may see them gets a "Show
personal data" button; its callback calls :func:`dashboard.privacy.unmask`, which writes the audit
record, and only then returns the clear values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode

import dash
import dash_bootstrap_components as dbc
import flask
import pandas as pd
from dash import ALL, Input, Output, State, dcc, html

from dashboard import guard, ids
from dashboard.context import (
    current_catalogue,
    current_kpi,
    current_principal,
    current_settings,
    current_store,
    current_time,
)
from dashboard.figures import (
    churn_drivers_figure,
    experienced_kpi_figure,
    revenue_figure,
    story_timeline_figure,
)
from dashboard.kpi_eval.bands import EntityBands, entity_bands
from dashboard.pages import band_block, fmt_time, kpi_title, records, store_error
from dashboard.pages.actions import outbox_list
from dashboard.playbooks import read as outbox
from dashboard.privacy import PermissionDenied, Principal, unmask
from dashboard.store.db import Store
from dashboard.subscribers.story import experienced_kpis, subscriber_story
from dashboard.subscribers.story_types import (
    Churn,
    KpiPoint,
    ServingCell,
    Story,
    StoryIncident,
    StoryTicket,
    TimelineEvent,
)


def _title(subscriber_id: str | None = None, **_: Any) -> str:
    return f"Vantage · Subscriber {unquote(subscriber_id)}" if subscriber_id else "Vantage · Subscriber"


dash.register_page(
    __name__,
    access="read",
    path_template="/subscribers/<subscriber_id>",
    name="Subscriber",
    title=_title,
    order=5,
)

#: Tabs in order: id (the ?tab= value) and label.
TABS = (
    ("overview", "Overview"),
    ("network", "Network & incidents"),
    ("tickets", "Tickets"),
    ("revenue", "Bills & revenue"),
    ("actions", "Offers & actions"),
)
DEFAULT_TAB = "overview"
#: Personal fields shown on the page, each in its own element the unmask callback fills.
PERSONAL = (
    ("msisdn", "MSISDN"),
    ("contact_name", "Contact"),
    ("contact_email", "Email"),
    ("contact_phone", "Phone"),
    ("contact_address", "Address"),
)
#: Words and a symbol per event kind, so the timeline reads without colour.
EVENT_WORDS: dict[str, tuple[str, str]] = {
    "activated": ("★", "Activated"),
    "incident": ("▲", "Incident"),
    "incident_resolved": ("✓", "Incident resolved"),
    "ticket": ("✉", "Ticket"),
    "ticket_note": ("✎", "Ticket note"),
    "ticket_resolved": ("✓", "Ticket resolved"),
    "bill": ("▤", "Bill"),
    "offer": ("◆", "Offer"),
    "churn": ("✖", "Churned"),
    "action": ("●", "Action"),
}
TIMELINE_SHOWN = 200
#: Serving cells drawn against their usual bands on the network tab (highest share first).
BAND_CELLS = 3
#: The playbooks' actions the actions tab lists for one line and its account, newest first.
OUTBOX_SHOWN = 100
HIGH_RISK = 0.25
MEDIUM_RISK = 0.10
SEARCH_PATH = "/subscribers"


def tab_from_query(tab: Any) -> str:
    """The tab a deep link asks for; anything unknown is the overview."""
    value = str(tab or "").strip().lower()
    return value if value in {t for t, _ in TABS} else DEFAULT_TAB


def read_story(store: Store, subscriber_id: str, principal: Principal, now: datetime) -> Story | None:
    """The story as the page shows it: the catalogue's quality KPIs, masked for ``principal``."""
    catalogue = current_catalogue() if flask.has_app_context() else None
    kpis = experienced_kpis(catalogue) if catalogue is not None else None
    with store.connect() as conn:
        return subscriber_story(conn, subscriber_id, principal, now=now, kpis=kpis)


def read_serving_bands(store: Store, story: Story, now: datetime) -> list[EntityBands]:
    """The line's serving cells (highest share first) against their usual bands: every KPI with an
    anomaly rule, its verdict and its last 24 hours. Cells are network data, not personal data."""
    cell_ids = [c["cell_id"] for c in story["cells"]]
    if not cell_ids or not flask.has_app_context():
        return []
    with store.connect() as conn:
        return entity_bands(
            conn,
            current_catalogue(),
            level="cell",
            entity_ids=cell_ids,
            now=now,
            most=BAND_CELLS,
            worst_first=False,
            only_outside=False,
        )


def read_outbox(store: Store, story: Story) -> list[dict[str, Any]]:
    """What the playbooks decided about this line, or about its account as a whole (an apology to
    the account), newest first, addresses and text masked."""
    account: Mapping[str, Any] = story["account"] or {}
    with store.connect() as conn:
        df = outbox.action_timeline(
            conn, subscriber_id=story["id"], account_id=account.get("id"), limit=OUTBOX_SHOWN
        )
    return records(df)


# --- Small pieces --------------------------------------------------------------------------------


def _dash(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _money(value: float | None, currency: str) -> str:
    return "—" if value is None else f"{value:,.2f} {currency}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _tenure(days: int | None) -> str:
    if days is None:
        return ""
    years, rest = divmod(days, 365)
    months = rest // 30
    return f" ({years} y {months} m)" if years else f" ({months} m {rest % 30} d)"


def risk_level(risk: float | None) -> str:
    if risk is None:
        return "unscored"
    return "high" if risk >= HIGH_RISK else "medium" if risk >= MEDIUM_RISK else "low"


def risk_badge(churn: Churn | None) -> html.Span:
    """Churn risk in figures and a word, coloured by level (never colour alone)."""
    risk = churn.get("risk") if churn else None
    level = risk_level(risk)
    text = "churn risk not scored" if risk is None else f"churn risk {risk * 100:.0f}% ({level})"
    return html.Span(text, className=f"vt-riskbadge vt-risk-{level}")


def personal(field: str, value: Any) -> html.Span:
    """One personal field, masked as it came; the unmask callback replaces it by id."""
    return html.Span(
        _dash(value), id={"type": ids.SUBSCRIBER_PERSONAL, "field": field}, className="vt-personal"
    )


def record(fields: Sequence[tuple[str, Any]]) -> html.Dl:
    return html.Dl([part for k, v in fields for part in (html.Dt(k), html.Dd(v))], className="vt-record")


def _card(title: Any, body: Any, *, cls: str = "") -> dbc.Card:
    return dbc.Card([dbc.CardHeader(title), dbc.CardBody(body)], className=f"vt-card h-100 {cls}".strip())


def _muted(text: str) -> html.P:
    return html.P(text, className="vt-muted")


def _severity(severity: str) -> html.Span:
    return html.Span(severity, className=f"vt-sevbadge vt-sevbadge-{severity}")


# --- The header and the overview -----------------------------------------------------------------


def header(story: Story, may_unmask: bool) -> html.Div:
    """Who this is at a glance: masked MSISDN, plan, status, segment, VIP, account, churn risk."""
    p = story["profile"]
    acc: Mapping[str, Any] = story["account"] or {}  # no account: every account field reads as absent
    badges: list[Any] = [
        html.Span(_dash(p.get("plan")), className="vt-statebadge", title="plan"),
        html.Span(_dash(p.get("status")), className="vt-statebadge", title="status"),
    ]
    if acc.get("segment"):
        badges.append(html.Span(str(acc["segment"]), className="vt-statebadge", title="segment"))
    if acc.get("vip"):
        badges.append(html.Span("VIP", className="vt-vipbadge"))
    badges.append(risk_badge(story["churn"]))
    if acc.get("id"):
        lines = acc.get("lines") or 0
        label = acc.get("name") or f"account {acc['id']}"
        badges.append(
            dcc.Link(
                f"{label}: {lines:,} line{'s' if lines != 1 else ''} →",
                href=acc["link"],
                className="vt-account-link",
            )
        )
    unmask_button = dbc.Button(
        "Show personal data",
        id=ids.SUBSCRIBER_UNMASK,
        color="warning",
        size="sm",
        className="vt-unmask" if may_unmask else "vt-unmask d-none",
        title="Shows this subscriber's MSISDN and contact details; every use is written to the audit log",
    )
    return html.Div(
        [
            html.H1(
                [
                    html.Span(f"Subscriber {story['id']}", className="vt-subscriber-id"),
                    personal("msisdn", p.get("msisdn")),
                ],
                className="vt-subscriber-title",
            ),
            html.Div(badges, className="vt-badges"),
            html.Dl(
                [
                    part
                    for f, label in PERSONAL
                    if f != "msisdn"
                    for part in (html.Dt(label), html.Dd(personal(f, acc.get(f))))
                ],
                className="vt-contacts",
            ),
            html.Div(
                [
                    unmask_button,
                    html.Div(
                        html.Span(
                            "Personal data is masked; showing it is written to the audit log."
                            if may_unmask
                            else "Personal data is masked for your role.",
                            className="vt-muted",
                        ),
                        id=ids.SUBSCRIBER_UNMASK_RESULT,
                        role="status",
                    ),
                ],
                className="vt-privacy",
            ),
        ],
        className="vt-subscriber-header",
    )


def profile_card(story: Story, currency: str) -> dbc.Card:
    p = story["profile"]
    acc: Mapping[str, Any] = story["account"] or {}
    sla = acc.get("sla_restore_minutes")
    account: Any = "—"
    if acc.get("id"):
        account = dcc.Link(f"{acc.get('name') or acc['id']} ({acc['id']})", href=acc["link"])
    fields: list[tuple[str, Any]] = [
        ("Subscriber id", p["id"]),
        ("Status", _dash(p.get("status"))),
        ("Plan", _dash(p.get("plan"))),
        ("ARPU", _money(p.get("arpu"), currency) + " / month" if p.get("arpu") is not None else "—"),
        ("Activated", fmt_time(p.get("activated_at")) + _tenure(p.get("tenure_days"))),
        ("Home cell", _dash(p.get("home_cell_id"))),
        ("Account", account),
        ("Segment", _dash(acc.get("segment"))),
        ("VIP", "yes" if acc.get("vip") else "no"),
        ("Account manager", _dash(acc.get("account_manager"))),
        ("Restore target", f"{sla} min" if sla else "—"),
        ("Contract end", _dash(acc.get("contract_end"))),
    ]
    services = story["services"]
    service_list: Any = (
        html.Ul(
            [
                html.Li(
                    [
                        html.Span(s["name"]),
                        html.Span(
                            _dash(s.get("kind"))
                            + (" · account-wide" if s["level"] == "account" else "")
                            + f" · {_dash(s.get('status'))}",
                            className="vt-meta",
                        ),
                    ]
                )
                for s in services
            ],
            className="vt-services",
        )
        if services
        else _muted("No services recorded.")
    )
    return _card("Profile", [record(fields), html.H3("Services", className="vt-subhead"), service_list])


def churn_card(story: Story) -> dbc.Card:
    churn = story["churn"]
    if churn is None:
        return _card("Churn risk", _muted("Not scored yet: the churn model scores active lines every hour."))
    sentiment = churn.get("sentiment_30d")
    facts = [
        ("Risk", risk_badge(churn)),
        ("Ticket sentiment, 30 days", "—" if sentiment is None else f"{sentiment:+.2f}"),
        ("Tickets, 30 days", f"{churn['tickets_30d']} ({churn['negative_tickets_30d']} negative)"),
        ("Model", f"version {churn['model_version']}" if churn.get("model_version") else "—"),
        ("Scored", fmt_time(churn.get("scored_at"))),
    ]
    drivers = pd.DataFrame(churn["drivers"], columns=["feature", "value", "impact"])
    return _card(
        "Churn risk and its drivers",
        [record(facts), dcc.Graph(figure=churn_drivers_figure(drivers), config={"displayModeBar": False})],
    )


def timeline_list(events: Sequence[TimelineEvent]) -> html.Ol | html.P:
    """The timeline as words with a symbol, newest first; incident events link to the incident."""
    if not events:
        return _muted("Nothing recorded for this subscriber yet.")
    items = []
    for e in list(reversed(events))[:TIMELINE_SHOWN]:
        icon, word = EVENT_WORDS.get(e["kind"], ("•", e["kind"]))
        title: Any = dcc.Link(e["title"], href=e["link"]) if e.get("link") else html.Span(e["title"])
        items.append(
            html.Li(
                [
                    html.Span(fmt_time(e["time"]), className="vt-tl-time"),
                    html.Span(
                        [html.Span(icon, className="vt-tl-icon"), word],
                        className=f"vt-tl-kind vt-tl-{e['kind']}",
                    ),
                    html.Span(
                        [title, html.Span(e.get("detail") or "", className="vt-meta")], className="vt-tl-what"
                    ),
                ],
                className="vt-tl-item",
            )
        )
    more = len(events) - TIMELINE_SHOWN
    note = [html.Li(f"… and {more} earlier events", className="vt-muted")] if more > 0 else []
    return html.Ol(items + note, className="vt-timeline", reversed=True)


def overview_tab(story: Story, currency: str, now: datetime) -> list[Any]:
    events = pd.DataFrame(story["timeline"], columns=["time", "kind", "title", "detail", "link"])
    start = pd.Timestamp(story["kpis"]["since"]).tz_localize(None).to_pydatetime()
    figure = story_timeline_figure(events, start=start, end=now + timedelta(hours=6))
    return [
        dbc.Row(
            [dbc.Col(profile_card(story, currency), lg=5), dbc.Col(churn_card(story), lg=7)],
            className="g-3 mb-3",
        ),
        dbc.Card(
            [
                dbc.CardHeader("Timeline: everything in order"),
                dbc.CardBody(
                    [
                        dcc.Graph(
                            id=ids.SUBSCRIBER_TIMELINE, figure=figure, config={"displayModeBar": False}
                        ),
                        html.P("Newest first:", className="vt-count"),
                        timeline_list(story["timeline"]),
                    ]
                ),
            ],
            className="vt-card mb-3",
        ),
    ]


# --- Network, tickets, revenue, actions ----------------------------------------------------------


def cells_table(cells: Sequence[ServingCell]) -> html.Table | html.P:
    if not cells:
        return _muted("No serving cells recorded for this subscriber.")
    head = html.Thead(
        html.Tr([html.Th(h) for h in ("Cell", "Site", "Region", "Technology", "Traffic share")])
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(
                        f"{c.get('name') or c['cell_id']} ({c['cell_id']})" if c.get("name") else c["cell_id"]
                    ),
                    html.Td(_dash(c.get("site"))),
                    html.Td(_dash(c.get("region"))),
                    html.Td(_dash(c.get("technology"))),
                    html.Td(_pct(c.get("share")), className="vt-num"),
                ]
            )
            for c in cells
        ]
    )
    return html.Table([head, body], className="table table-sm vt-table")


def incident_list(incidents: Sequence[StoryIncident]) -> html.Ul | html.P:
    """Incidents that hit the subscriber's cells, newest first, each opening the Incidents page."""
    if not incidents:
        return _muted("No incident has hit this subscriber's cells.")
    items = []
    for inc in incidents:
        when = f"opened {fmt_time(inc['opened_at'])}"
        if inc.get("resolved_at"):
            when += f", resolved {fmt_time(inc['resolved_at'])}"
        items.append(
            html.Li(
                [
                    html.Div(
                        [
                            _severity(str(inc["severity"])),
                            html.Span(str(inc["state"]), className="vt-statebadge"),
                            dcc.Link(inc["title"], href=inc["link"], className="vt-incident-link"),
                        ],
                        className="vt-badges",
                    ),
                    html.Div(
                        f"{when} · {len(inc['cells'])} of its cells ({', '.join(inc['cells'])}) · "
                        f"worst cell {_pct(inc['degraded_share'])} degraded · "
                        f"{_pct(inc['impact'])} of its traffic hit",
                        className="vt-meta",
                    ),
                ]
            )
        )
    return html.Ul(items, className="vt-incidents")


def kpi_panels(series: Sequence[KpiPoint]) -> list[tuple[str, str, dict[str, float]]]:
    """One (kpi, title, thresholds) per KPI in the story, in the catalogue's order."""
    present = list(dict.fromkeys(s["kpi"] for s in series))
    panels = []
    for name in present:
        kpi = current_kpi(name)
        thresholds: dict[str, float] = {}
        if kpi is not None:
            for level in ("warning", "critical"):
                t = getattr(kpi.thresholds, level)
                if t is not None:
                    thresholds[level] = t.value
        panels.append((name, kpi_title(name), thresholds))
    return panels


def _band_heading(story: Story, cell_id: str) -> str:
    """``C1 (Harbour) · 62% of this line's traffic``."""
    for c in story["cells"]:
        if c["cell_id"] == cell_id:
            name = c.get("name") or cell_id
            place = f" ({c['site']})" if c.get("site") else ""
            return f"{name}{place} · {_pct(c.get('share'))} of this line's traffic"
    return cell_id


def serving_bands_row(story: Story, bands: Sequence[EntityBands]) -> list[Any]:
    """Each serving cell's verdict per KPI in words, over its last 24 hours against the usual band."""
    if not story["cells"]:
        return []
    if not bands:
        return [_muted("No usual band learnt yet for this subscriber's cells.")]
    width = max(4, 12 // len(bands))
    return [
        html.H3("Serving cells against their usual band, last 24 h (UTC)", className="vt-subhead"),
        dbc.Row(
            [
                dbc.Col(band_block(b, _band_heading(story, b.entity_id), panel_height=90), lg=width)
                for b in bands
            ],
            className="g-3 mb-3 vt-bands",
        ),
    ]


def network_tab(story: Story, bands: Sequence[EntityBands] = ()) -> list[Any]:
    series = story["kpis"]["series"]
    df = pd.DataFrame(series, columns=["kpi", "period_start", "value", "cells"])
    step = {15: "15 minutes", 60: "hour", 1440: "day"}.get(story["kpis"]["step_minutes"], "period")
    return [
        dbc.Row(
            [
                dbc.Col(_card(f"Serving cells ({len(story['cells'])})", cells_table(story["cells"])), lg=5),
                dbc.Col(
                    _card(
                        f"Incidents that hit this subscriber ({len(story['incidents'])})",
                        incident_list(story["incidents"]),
                    ),
                    lg=7,
                ),
            ],
            className="g-3 mb-3",
        ),
        *serving_bands_row(story, bands),
        dcc.Graph(
            id=ids.SUBSCRIBER_KPI_GRAPH, figure=experienced_kpi_figure(df, kpi_panels(series), step=step)
        ),
    ]


def ticket_list(tickets: Sequence[StoryTicket]) -> html.Ul | html.P:
    """Tickets with their notes, newest first; every text is a plain string child (never HTML)."""
    if not tickets:
        return _muted("No tickets from this subscriber or its account.")
    items = []
    for t in tickets:
        meta = [fmt_time(t["created_at"]), t.get("channel"), t.get("status"), t.get("category")]
        if t.get("sentiment") is not None:
            meta.append(f"sentiment {t['sentiment']:+.2f}")
        if t["scope"] == "account":
            meta.append("about the account")
        parts: list[Any] = [
            html.Div(
                [
                    html.Strong(t.get("subject") or "(no subject)", className="vt-ticket-subject"),
                    html.Span(" · ".join(str(m) for m in meta if m), className="vt-meta"),
                ]
            ),
            html.P(t.get("description") or "", className="vt-text vt-ticket-text"),
        ]
        if t.get("incident_link"):
            parts.append(dcc.Link(f"linked incident {t['incident_id']}", href=t["incident_link"]))
        if t["status_changes"]:
            steps = " → ".join(f"{c['status']} ({fmt_time(c['changed_at'])})" for c in t["status_changes"])
            parts.append(html.Div(steps, className="vt-meta vt-ticket-steps"))
        if t["notes"]:
            parts.append(
                html.Ul(
                    [
                        html.Li(
                            [
                                html.Div(
                                    [
                                        html.Strong(_dash(n.get("author"))),
                                        html.Span(fmt_time(n["created_at"]), className="vt-meta"),
                                    ]
                                ),
                                html.P(n.get("text") or "", className="vt-text"),
                            ]
                        )
                        for n in t["notes"]
                    ],
                    className="vt-ticket-notes",
                )
            )
        items.append(html.Li(parts, className="vt-ticket"))
    return html.Ul(items, className="vt-tickets vt-tickets--full")


def revenue_tab(story: Story, currency: str) -> list[Any]:
    bills = pd.DataFrame(
        story["bills"], columns=["id", "period_start", "period_end", "amount", "currency", "state"]
    )
    usage = pd.DataFrame(story["usage"], columns=["period_start", "usage_type", "unit", "quantity", "amount"])
    bill_rows = [
        html.Tr(
            [
                html.Td(f"{b['period_start']} to {b['period_end']}"),
                html.Td(_dash(b.get("state"))),
                html.Td(_money(b["amount"], b.get("currency") or currency), className="vt-num"),
            ]
        )
        for b in reversed(story["bills"])
    ]
    usage_rows = [
        html.Tr(
            [
                html.Td(_dash(u["period_start"])),
                html.Td(u["usage_type"]),
                html.Td(f"{u['quantity']:,.2f} {u.get('unit') or ''}".strip(), className="vt-num"),
                html.Td(_money(u.get("amount"), u.get("currency") or currency), className="vt-num"),
            ]
        )
        for u in reversed(story["usage"])
    ]
    bill_table: Any = (
        html.Table(
            [
                html.Thead(html.Tr([html.Th("Period"), html.Th("State"), html.Th("Amount")])),
                html.Tbody(bill_rows),
            ],
            className="table table-sm vt-table",
        )
        if bill_rows
        else _muted("No bills for this account.")
    )
    usage_table: Any = (
        html.Table(
            [
                html.Thead(
                    html.Tr([html.Th("Period"), html.Th("Type"), html.Th("Quantity"), html.Th("Charged")])
                ),
                html.Tbody(usage_rows),
            ],
            className="table table-sm vt-table",
        )
        if usage_rows
        else _muted("No usage recorded for this line.")
    )
    arpu = story["profile"].get("arpu")
    return [
        html.P(f"ARPU of this line: {_money(arpu, currency)} per month.", className="vt-count"),
        dcc.Graph(figure=revenue_figure(bills, usage, currency)),
        dbc.Row(
            [
                dbc.Col(_card("Account bills", bill_table), lg=6),
                dbc.Col(_card("This line's usage", usage_table), lg=6),
            ],
            className="g-3 mb-3",
        ),
    ]


def actions_tab(story: Story, acted: Sequence[Mapping[str, Any]] = (), currency: str = "") -> list[Any]:
    offers: Any = (
        html.Ul(
            [
                html.Li(
                    [
                        html.Strong(o["offer"]),
                        html.Span(f"{o['outcome']} · {fmt_time(o['occurred_at'])}", className="vt-meta"),
                    ]
                )
                for o in story["offers"]
            ],
            className="vt-notes",
        )
        if story["offers"]
        else _muted("No offers made to this subscriber.")
    )
    churned: Any = (
        html.Ul(
            [
                html.Li(
                    [
                        html.Strong("Churned"),
                        html.Span(
                            f"{fmt_time(c['occurred_at'])} · {_dash(c.get('reason'))}", className="vt-meta"
                        ),
                    ]
                )
                for c in story["churn_events"]
            ],
            className="vt-notes",
        )
        if story["churn_events"]
        else _muted("No churn recorded.")
    )
    actions: Any = (
        html.Ul(
            [
                html.Li(
                    [
                        html.Strong(a["action"]),
                        html.Span(f"by {a['actor']} · {fmt_time(a['at'])}", className="vt-meta"),
                    ]
                )
                for a in story["actions"]
            ],
            className="vt-notes",
        )
        if story["actions"]
        else _muted("No actions recorded on this subscriber.")
    )
    return [
        dbc.Row(
            [
                dbc.Col(_card("Offers", offers), lg=4),
                dbc.Col(_card("Churn", churned), lg=4),
                dbc.Col(_card("Actions taken (audit log)", actions), lg=4),
            ],
            className="g-3 mb-3",
        ),
        _card(
            f"Playbook actions: offers, apologies, messages ({len(acted)})",
            outbox_list(acted, currency, empty="No playbook has acted on this line or its account."),
            cls="vt-subscriber-outbox mb-3",
        ),
    ]


# --- Layout --------------------------------------------------------------------------------------


def _controls_placeholder() -> html.Div:
    """The ids the callbacks listen to, on pages without a subscriber (so every layout has them)."""
    return html.Div(
        [
            dbc.Button(id=ids.SUBSCRIBER_UNMASK, className="d-none", disabled=True),
            html.Div(id=ids.SUBSCRIBER_UNMASK_RESULT),
            dbc.Tabs(id=ids.SUBSCRIBER_TABS, className="d-none"),
            html.Div(id=ids.SUBSCRIBER_TAB_BODY),
        ],
        className="d-none",
    )


def not_found(subscriber_id: str) -> list[Any]:
    back = SEARCH_PATH + "?" + urlencode({"q": subscriber_id})
    return [
        html.H1("Subscriber not found"),
        dbc.Alert(
            [
                html.Span(f"No subscriber with id {subscriber_id!r}. "),
                dcc.Link("Search subscribers", href=back, className="alert-link"),
                html.Span(" by id, MSISDN or account."),
            ],
            color="warning",
            className="vt-not-found",
        ),
        _controls_placeholder(),
    ]


def tab_body(
    story: Story,
    tab: str,
    *,
    currency: str,
    now: datetime,
    bands: Sequence[EntityBands] = (),
    acted: Sequence[Mapping[str, Any]] = (),
) -> list[Any]:
    """The content of one tab; only the tab shown is built (each is a figure or two of work).
    ``bands``: the serving cells against their usual bands (:func:`read_serving_bands`), for the
    network tab; ``acted``: the playbooks' actions (:func:`read_outbox`), for the actions tab."""
    if tab == "network":
        return network_tab(story, bands)
    if tab == "tickets":
        return [_card(f"Tickets ({len(story['tickets'])}), newest first", ticket_list(story["tickets"]))]
    if tab == "revenue":
        return revenue_tab(story, currency)
    if tab == "actions":
        return actions_tab(story, acted, currency)
    return overview_tab(story, currency, now)


def story_view(
    story: Story,
    *,
    tab: str,
    may_unmask: bool,
    currency: str,
    now: datetime,
    bands: Sequence[EntityBands] = (),
    acted: Sequence[Mapping[str, Any]] = (),
) -> list[Any]:
    """The whole page for one story: the header (with every personal field), the tabs, the tab shown."""
    return [
        header(story, may_unmask),
        dbc.Tabs(
            [dbc.Tab(label=label, tab_id=t) for t, label in TABS],
            id=ids.SUBSCRIBER_TABS,
            active_tab=tab,
            className="vt-tabs",
        ),
        html.Div(
            tab_body(story, tab, currency=currency, now=now, bands=bands, acted=acted),
            id=ids.SUBSCRIBER_TAB_BODY,
            className="vt-tab-body",
        ),
    ]


def render_tab(
    store: Store, principal: Principal, subscriber_id: str | None, tab: str, now: datetime
) -> list[Any]:
    """A tab chosen after the page loaded: the story read again (masked), that tab built."""
    if not subscriber_id:
        return []
    shown = tab_from_query(tab)
    try:
        story = read_story(store, subscriber_id, principal, now)
        bands = read_serving_bands(store, story, now) if story is not None and shown == "network" else []
        acted = read_outbox(store, story) if story is not None and shown == "actions" else []
    except Exception as err:
        return [store_error(err)]
    if story is None:
        return [dbc.Alert(f"No subscriber {subscriber_id!r} any more.", color="warning")]
    return tab_body(story, shown, currency=current_settings().currency, now=now, bands=bands, acted=acted)


def layout(subscriber_id: str | None = None, tab: str | None = None, **_query: str) -> html.Div:
    """The 360 view of ``subscriber_id`` (from the path), on the tab the query string names."""
    sid = unquote(subscriber_id or "").strip()
    head = [dcc.Store(id=ids.SUBSCRIBER_ID, data=sid or None), dcc.Store(id=ids.SUBSCRIBER_TAB_SYNC)]
    if not sid:
        return html.Div(
            [*head, html.H1("Subscriber"), _muted("No subscriber given."), _controls_placeholder()]
        )
    principal, now = current_principal(), current_time()
    shown = tab_from_query(tab)
    try:
        story = read_story(current_store(), sid, principal, now)
        bands = (
            read_serving_bands(current_store(), story, now)
            if story is not None and shown == "network"
            else []
        )
        acted = read_outbox(current_store(), story) if story is not None and shown == "actions" else []
    except Exception as err:
        return html.Div([*head, html.H1(f"Subscriber {sid}"), store_error(err), _controls_placeholder()])
    if story is None:
        return html.Div([*head, *not_found(sid)])
    view = story_view(
        story,
        tab=shown,
        may_unmask=principal.may_unmask,
        currency=current_settings().currency,
        now=now,
        bands=bands,
        acted=acted,
    )
    return html.Div([*head, *view], className="vt-subscriber-page")


# --- Callbacks -----------------------------------------------------------------------------------


def unmask_outputs(
    store: Store, principal: Principal, subscriber_id: str | None, fields: Sequence[str], *, now: datetime
) -> tuple[list[Any], Any, Any]:
    """The personal fields in clear (after :func:`unmask` wrote its audit record), a message, and
    whether the button is now disabled; a refusal changes no field and says why."""
    unchanged = [dash.no_update] * len(fields)
    if not subscriber_id:
        return unchanged, dbc.Alert("No subscriber on this page.", color="warning"), dash.no_update
    try:
        clear = unmask(store, principal, subscriber_id, now=now)
    except PermissionDenied:
        msg = f"Your role ({principal.role}) may not see personal data; it stays masked."
        return unchanged, dbc.Alert(msg, color="danger", className="vt-unmask-refused"), True
    except KeyError:
        return unchanged, dbc.Alert(f"No subscriber {subscriber_id!r}.", color="warning"), True
    except Exception as err:
        return unchanged, store_error(err), dash.no_update
    values = [_dash(clear.get(f)) for f in fields]
    msg = f"Personal data shown to {principal.user}; this was written to the audit log."
    return values, dbc.Alert(msg, color="secondary", className="vt-unmask-ok"), True


#: Rewrites ?tab= in the address bar when the tab changes, without reloading the page
#: (replaceState fires no navigation event, so the page is not rebuilt).
TAB_TO_URL = """
function(tab) {
    if (!tab) { return window.dash_clientside.no_update; }
    var params = new URLSearchParams(window.location.search);
    if (tab === "overview") { params.delete("tab"); } else { params.set("tab", tab); }
    var query = params.toString();
    var url = window.location.pathname + (query ? "?" + query : "");
    window.history.replaceState(window.history.state, "", url);
    return tab;
}
"""


def register_callbacks(app: dash.Dash) -> None:
    guard.clientside_callback(
        app,
        TAB_TO_URL,
        Output(ids.SUBSCRIBER_TAB_SYNC, "data"),
        Input(ids.SUBSCRIBER_TABS, "active_tab"),
        prevent_initial_call=True,
    )

    @guard.callback(
        app,
        "read",
        Output(ids.SUBSCRIBER_TAB_BODY, "children"),
        Input(ids.SUBSCRIBER_TABS, "active_tab"),
        State(ids.SUBSCRIBER_ID, "data"),
        prevent_initial_call=True,
    )
    def _tab(tab: str | None, subscriber_id: str | None) -> list[Any]:
        return render_tab(
            current_store(), current_principal(), subscriber_id, tab or DEFAULT_TAB, current_time()
        )

    @guard.callback(
        app,
        "unmask",
        Output({"type": ids.SUBSCRIBER_PERSONAL, "field": ALL}, "children"),
        Output(ids.SUBSCRIBER_UNMASK_RESULT, "children"),
        Output(ids.SUBSCRIBER_UNMASK, "disabled"),
        Input(ids.SUBSCRIBER_UNMASK, "n_clicks"),
        State(ids.SUBSCRIBER_ID, "data"),
        State({"type": ids.SUBSCRIBER_PERSONAL, "field": ALL}, "id"),
        prevent_initial_call=True,
    )
    def _unmask(
        _n: int | None, subscriber_id: str | None, field_ids: list[dict[str, str]]
    ) -> tuple[Any, ...]:
        fields = [f["field"] for f in field_ids]
        return unmask_outputs(current_store(), current_principal(), subscriber_id, fields, now=current_time())
