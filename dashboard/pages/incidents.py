"""Incidents (/incidents): the NOC's working queue, ranked by value at risk, and one incident's story.

The grid re-reads the stored queue (``incident_queue``) on every refresh and updates its rows in
place (row id = incident id), so the operator's sort, filter, scroll and selection survive; SLA
clocks tick in the browser from their deadlines. Filters and the selected incident live in the
query string (``?severity=critical&state=open,resolved&id=INC-...``). Selecting a row opens the
detail: score and why, alarms, cells, the most out-of-band cells against their usual band, KPIs,
accounts, tickets, notes, actions, what the playbooks did about it (the outbox, addresses masked)
and the affected subscribers, paged by the server. An incident KPI anomalies opened with no alarm
(kind ``detected``) is marked "Detected — no alarm" in the grid and the detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import MATCH, Input, Output, State, ctx, dcc, html

from connectors.canonical import SEVERITIES
from dashboard import cache, guard, ids, readiness
from dashboard.cache import Cache
from dashboard.context import (
    current_actor,
    current_catalogue,
    current_principal,
    current_refresh_ms,
    current_scoring,
    current_settings,
    current_store,
    current_time,
)
from dashboard.figures import alarm_timeline_figure, cells_map_figure, kpi_impact_figure
from dashboard.incidents import actions, read
from dashboard.incidents.scoring import FACTORS, fmt_minutes
from dashboard.kpi_eval.bands import EntityBands, entity_bands
from dashboard.kpis import Catalogue, Scoring
from dashboard.pages import band_block, fmt_time, kpi_title, records, store_error
from dashboard.pages.actions import outbox_list
from dashboard.playbooks import read as outbox
from dashboard.store.db import Store
from dashboard.theme import grid_options

dash.register_page(
    __name__, access="read", path="/incidents", name="Incidents", title="Vantage · Incidents", order=1
)

ANY = "any"  # the selects' "no filter" value
UNASSIGNED = "-"  # the owner filter's "nobody", as read.queue and the API spell it
SEGMENT_FILTERS = ("consumer", "smb", "enterprise", "vip")
SEVERITY_FILTERS = tuple(s for s in SEVERITIES if s != "cleared")
QUEUE_STATES = ("open", "acknowledged", "resolved")
DEFAULT_STATES = ["open", "acknowledged"]
SUBSCRIBER_BLOCK = 100  # rows per server request of the affected-subscribers grid
QUEUE_LIMIT = 500
#: Affected cells the detail draws against their usual bands (the most out of band first).
BAND_CELLS = 2
#: The playbooks' actions the detail lists for one incident, newest first.
OUTBOX_SHOWN = 100
#: Affected accounts per page of the detail's grid: a 600-cell incident has thousands, and a grid
#: that grows to fit draws every row it holds (sorting still runs over all of them).
ACCOUNTS_PAGE = 25
#: The badge of an incident no alarm opened (KPI anomalies alone): the same words everywhere.
DETECTED_BADGE = "Detected — no alarm"

FACTOR_LABELS = {
    "severity": "Severity",
    "subscriber_value": "Subscriber value",
    "revenue_at_risk": "Revenue at risk",
    "sla_urgency": "SLA urgency",
    "sentiment": "Customer sentiment",
    "churn_risk": "Churn risk",
}

_RIGHT = {"type": "rightAligned"}


def _num(field: str, header: str, width: int, fmt: str = "vtCount", **extra: Any) -> dict[str, Any]:
    """A right-aligned numeric column shown through one of assets/dashAgGridFunctions.js' formatters."""
    return {
        "field": field,
        "headerName": header,
        "width": width,
        "valueFormatter": {"function": f"{fmt}(params.value)"},
        "type": "rightAligned",
        **extra,
    }


_SENTIMENT_CLASSES = {
    "vt-bad": "params.value != null && params.value <= -0.3",
    "vt-warn": "params.value != null && params.value < 0 && params.value > -0.3",
}
_CHURN_CLASSES = {"vt-bad": "params.value != null && params.value >= 0.25"}


def queue_columns(currency: str) -> list[dict[str, Any]]:
    """The queue grid's columns, sized to fit a 1600-pixel screen; money in the operator's ``currency``."""
    wrap = {"wrapText": True, "autoHeight": True, "cellClass": "vt-wrap"}
    text_filter = {"filter": "agTextColumnFilter"}
    return [
        {"field": "rank", "headerName": "#", "width": 64, "pinned": "left", "type": "rightAligned"},
        {"field": "severity", "headerName": "Severity", "width": 125, "cellRenderer": "VtSeverity"},
        {
            "field": "title",
            "headerName": "Incident",
            "flex": 2,
            "minWidth": 180,
            # A detected incident (KPI anomalies, no alarm) carries its badge before the title.
            "cellRenderer": "VtIncidentTitle",
            **wrap,
            **text_filter,
        },
        {
            "headerName": "Affected lines",
            "children": [
                _num("lines", "All", 80),
                _num("vip_lines", "VIP", 70),
                _num("enterprise_lines", "Ent.", 70),
            ],
        },
        _num("revenue_per_hour", f"{currency}/h at risk", 120),
        {
            "field": "sla_deadline",
            "headerName": "SLA",
            "width": 115,
            "cellRenderer": "VtCountdown",
            "headerTooltip": "Time to the earliest running SLA breach, counted down live",
        },
        _num("sentiment", "Sentiment", 100, "vtSigned", cellClassRules=_SENTIMENT_CLASSES),
        _num("churn_risk", "Churn risk", 100, "vtPercent", cellClassRules=_CHURN_CLASSES),
        {
            "field": "owner",
            "headerName": "Owner",
            "width": 115,
            "valueFormatter": {"function": "params.value || 'unassigned'"},
            "cellClassRules": {"vt-muted": "!params.value"},
            **text_filter,
        },
        {"field": "state", "headerName": "State", "width": 135},
        {"field": "reason", "headerName": "Why this rank", "flex": 3, "minWidth": 250, **wrap, **text_filter},
    ]


ACCOUNT_COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "Account", "flex": 2, "minWidth": 180, "tooltipField": "name"},
    {"field": "segment", "headerName": "Segment", "width": 115},
    {"field": "vip", "headerName": "VIP", "width": 75},
    _num("lines", "Lines", 85),
    _num("degraded_share", "Degraded", 110, "vtPercent"),
    {"field": "sla_deadline", "headerName": "SLA", "width": 150, "cellRenderer": "VtCountdown"},
    _num("penalty_per_hour", "Penalty / h", 125),
    _num("value", "Value", 100),
    {"field": "account_manager", "headerName": "Account manager", "width": 170},
]

SUBSCRIBER_COLUMNS: list[dict[str, Any]] = [
    # Each id opens the subscriber's 360 view (/subscribers/<id>).
    {"field": "id", "headerName": "Subscriber", "width": 140, "cellRenderer": "VtSubscriberLink"},
    {"field": "msisdn", "headerName": "MSISDN", "width": 160, "sortable": False},
    {"field": "account", "headerName": "Account", "flex": 1, "minWidth": 160},
    {"field": "segment", "headerName": "Segment", "width": 120},
    {"field": "vip", "headerName": "VIP", "width": 75, "sortable": False},
    {"field": "plan", "headerName": "Plan", "width": 120},
    _num("arpu", "ARPU", 100, "vtMoney"),
    _num("share", "Traffic on affected cells", 130, "vtPercent"),
    _num("value", "Value at risk", 135, "vtMoney", sort="desc"),
    _num("churn_risk", "Churn risk", 115, "vtPercent", cellClassRules=_CHURN_CLASSES),
    _num("sentiment", "Sentiment", 115, "vtSigned", cellClassRules=_SENTIMENT_CLASSES),
]


# --- Filters and the query string ------------------------------------------------------------


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text in ("", ANY) else text


def filters_from_query(query: Mapping[str, Any]) -> dict[str, Any]:
    """The queue filters a query string asks for; unknown values fall back to no filter."""
    segment = (_clean(query.get("segment")) or "").lower()
    severity = (_clean(query.get("severity")) or "").lower()
    raw_states = query.get("state") or ""
    states = raw_states if isinstance(raw_states, list) else str(raw_states).split(",")
    chosen = [s for s in QUEUE_STATES if s in {str(x).strip().lower() for x in states}]
    return {
        "region": _clean(query.get("region")),
        "segment": segment if segment in SEGMENT_FILTERS else None,
        "severity": severity if severity in SEVERITY_FILTERS else None,
        "states": chosen or list(DEFAULT_STATES),
        "owner": _clean(query.get("owner")),
    }


def query_string(filters: Mapping[str, Any], selected: str | None = None) -> str:
    """``?severity=critical&id=INC-1``: what differs from the defaults, for a deep link."""
    params: dict[str, str] = {}
    for key in ("region", "segment", "severity", "owner"):
        if filters.get(key):
            params[key] = str(filters[key])
    states = [s for s in QUEUE_STATES if s in (filters.get("states") or [])]
    if states and states != DEFAULT_STATES:
        params["state"] = ",".join(states)
    if selected:
        params["id"] = selected
    return f"?{urlencode(params, safe=',')}" if params else ""


# --- The queue -------------------------------------------------------------------------------


def _nullable(values: pd.Series, digits: int | None = None) -> list[Any]:
    """Python floats with NaN as None (JSON has no NaN), optionally rounded."""
    s = pd.to_numeric(values, errors="coerce").astype(float)
    if digits is not None:
        s = s.round(digits)
    out: list[Any] = s.astype(object).where(s.notna(), None).tolist()
    return out


def _whole(values: pd.Series) -> list[int]:
    out: list[int] = pd.to_numeric(values, errors="coerce").fillna(0.0).round().astype(int).tolist()
    return out


def _text_or_none(values: pd.Series) -> list[str | None]:
    out: list[str | None] = values.astype(object).where(values.notna(), None).tolist()
    return out


def _iso(values: pd.Series) -> list[str | None]:
    """Times as ISO 8601 UTC with a ``Z``, which browsers parse as UTC."""
    ts = pd.to_datetime(values)
    return _text_or_none(ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(ts.notna()))


def queue_records(df: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    """JSON-ready grid rows from ``read.queue``: counts rounded, times ISO, missing as None."""
    if df.empty:
        return []
    opened = pd.to_datetime(df["opened_at"])
    region = df["region"].where(df["region"].notna(), df["region_id"]) if "region" in df else df["region_id"]
    rank = pd.to_numeric(df["rank"], errors="coerce")
    columns: dict[str, list[Any]] = {
        "id": df["incident_id"].astype(str).tolist(),
        "rank": rank.astype("Int64").astype(object).where(rank.notna(), None).tolist(),
        "score": _nullable(df["score"], 1),
        "severity": df["severity"].tolist(),
        "title": df["title"].tolist(),
        "region": _text_or_none(region),
        "lines": _whole(df["lines"]),
        "vip_lines": _whole(df["vip_lines"]),
        "enterprise_lines": _whole(df["enterprise_lines"]),
        "accounts": _whole(df["accounts"]),
        "revenue_per_hour": _nullable(df["revenue_at_risk_per_hour"], 2),
        "penalty_per_hour": _nullable(df["penalty_per_hour"], 2),
        "sla_deadline": _iso(df["sla_deadline"]),
        "sla_accounts": _whole(df["sla_accounts"]),
        "sla_breached": _whole(df["sla_breached"]),
        "sentiment": _nullable(df["sentiment"], 2),
        "churn_risk": _nullable(df["churn_risk"], 3),
        "owner": _text_or_none(df["owner"]),
        "state": df["state"].tolist(),
        "kind": _text_or_none(df["kind"]) if "kind" in df else [None] * len(df),
        "reason": df["reason"].tolist(),
        "opened_at": _iso(opened),
        "age_min": _whole((pd.Timestamp(now) - opened).dt.total_seconds() / 60.0),
    }
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def grid_rows(store: Store, filters: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The queue rows the grid shows for ``filters`` (as :func:`filters_from_query` returns), by rank."""
    with store.connect() as conn:
        df = read.queue(
            conn,
            states=filters.get("states") or list(DEFAULT_STATES),
            region=filters.get("region"),
            segment=filters.get("segment"),
            severity=filters.get("severity"),
            owner=filters.get("owner"),
            limit=QUEUE_LIMIT,
        )
    return queue_records(df, now)


def queue_summary(
    rows: list[dict[str, Any]], computed_at: datetime | None, *, filtered: bool, waiting: str | None = None
) -> str:
    """The line above the grid: how many incidents and when the queue was computed, or why it is
    empty (``waiting``: the preparation step a fresh store is at, before its first queue)."""
    if waiting is not None and not rows:
        return waiting
    if computed_at is None:
        return (
            "The queue has not been computed yet, or no incident is open: the scheduler ranks "
            "alarms into incidents every few seconds."
        )
    when = f"computed at {fmt_time(computed_at, seconds=True)}"
    if not rows:
        what = "No incidents match these filters" if filtered else "No incidents in the queue"
        return f"{what} — {when}."
    active = sum(1 for r in rows if r["rank"] is not None)
    breached = sum(1 for r in rows if r["sla_breached"])
    text = f"{active:,} active incident{'s' if active != 1 else ''}"
    if len(rows) > active:
        text += f" and {len(rows) - active:,} resolved"
    if breached:
        text += f", {breached:,} with an SLA breached"
    return f"{text}; queue {when}. Click a row for its detail."


def read_facets(store: Store) -> dict[str, list[Any]]:
    with store.connect() as conn:
        return read.queue_facets(conn)


def region_options(facets: Mapping[str, list[Any]]) -> list[dict[str, str]]:
    return [{"label": "All regions", "value": ANY}] + [
        {"label": str(name), "value": str(rid)} for rid, name in facets["regions"]
    ]


def owner_options(facets: Mapping[str, list[Any]], current: str | None = None) -> list[dict[str, str]]:
    owners = list(facets["owners"])
    if current and current not in (UNASSIGNED, *owners):
        owners.append(current)  # a deep link to an owner with nothing in the queue right now
    return [{"label": "Any owner", "value": ANY}, {"label": "Unassigned", "value": UNASSIGNED}] + [
        {"label": o, "value": o} for o in owners
    ]


# --- The detail ------------------------------------------------------------------------------


class Detail(NamedTuple):
    """Everything the detail panel shows about one incident.

    (A NamedTuple: Dash runs page modules before registering them, which dataclasses need.)
    """

    incident: dict[str, Any]
    alarms: pd.DataFrame
    cells: pd.DataFrame
    kpis: pd.DataFrame
    accounts: pd.DataFrame
    tickets: pd.DataFrame
    notes: pd.DataFrame
    subscribers: int
    bands: Sequence[EntityBands] = ()  # the most out-of-band affected cells against their usual bands


def read_detail(
    store: Store, incident_id: str, scoring: Scoring, now: datetime, catalogue: Catalogue | None = None
) -> Detail | None:
    """One incident's story; with ``catalogue``, its most out-of-band cells against their bands too."""
    kpis = [scoring.impact.availability_kpi, scoring.impact.throughput_kpi]
    with store.connect() as conn:
        inc = read.incident(conn, incident_id)
        if inc is None:
            return None
        given = read.facts(conn, inc)  # its times and cells, read once for every part below
        n_subs = read.count_affected_subscribers(conn, incident_id, given=given)
        cells = read.affected_cells(conn, incident_id, given=given)
        bands = (
            entity_bands(
                conn,
                catalogue,
                level="cell",
                entity_ids=[str(c) for c in cells["cell_id"]],
                now=now,
                most=BAND_CELLS,
            )
            if catalogue is not None and len(cells)
            else []
        )
        return Detail(
            incident=inc,
            alarms=read.alarm_timeline(conn, incident_id),
            cells=cells,
            kpis=read.kpi_impact(conn, incident_id, kpis, now=now, given=given),
            accounts=read.affected_accounts(conn, incident_id, scoring, now=now, given=given),
            tickets=read.related_tickets(conn, incident_id, given=given),
            notes=read.notes(conn, incident_id),
            subscribers=n_subs,
            bands=bands,
        )


def severity_badge(severity: str) -> html.Span:
    """Colour, symbol and word: readable without telling colours apart."""
    return html.Span(severity, className=f"vt-sevbadge vt-sevbadge-{severity}")


def detected_badge() -> html.Span:
    """The mark of an incident KPI anomalies opened with no alarm from the network."""
    return html.Span(
        DETECTED_BADGE,
        className="vt-detectedbadge",
        title="Opened by Vantage from KPIs outside their usual band; no network alarm explains it",
    )


def _ago(then: Any, now: datetime) -> str:
    if then is None or pd.isna(then):
        return ""
    minutes = (pd.Timestamp(now) - pd.Timestamp(then)).total_seconds() / 60.0
    return f" ({fmt_minutes(minutes)} ago)" if minutes >= 0 else ""


def _factor_input(name: str, factor: Mapping[str, Any], severity: str, currency: str) -> str:
    value = factor.get("input")
    if name == "severity":
        return severity
    if value is None:
        return {"sla_urgency": "no SLA clock running", "sentiment": "no recent tickets"}.get(
            name, "not scored"
        )
    if name == "subscriber_value":
        return f"{value:,.0f} {currency}/month, value-weighted"
    if name == "revenue_at_risk":
        return f"{value:,.0f} {currency}/h"
    if name == "sla_urgency":
        return f"breached {fmt_minutes(value)} ago" if value <= 0 else f"breach in {fmt_minutes(value)}"
    if name == "sentiment":
        return f"{value:+.2f}"
    return f"{value * 100:.0f}%"


def breakdown_table(breakdown: Mapping[str, Any], severity: str, currency: str) -> html.Table:
    """Points per factor out of its most, with the input that earned them."""
    factors = breakdown.get("factors", {})
    total_weight = sum(float(f.get("weight", 0.0)) for f in factors.values()) or 1.0
    rows = []
    for name in FACTORS:
        f = factors.get(name)
        if f is None:
            continue
        most = 100.0 * float(f["weight"]) / total_weight
        points = float(f["points"])
        rows.append(
            html.Tr(
                [
                    html.Td(FACTOR_LABELS.get(name, name)),
                    html.Td(_factor_input(name, f, severity, currency), className="vt-muted"),
                    html.Td(
                        dbc.Progress(value=points, max=most or 1.0, className="vt-points-bar"),
                        className="vt-points-cell",
                    ),
                    html.Td(f"{points:.1f} / {most:.0f}", className="vt-num"),
                ]
            )
        )
    head = html.Thead(html.Tr([html.Th("Factor"), html.Th("Input"), html.Th("Points"), html.Th("")]))
    return html.Table([head, html.Tbody(rows)], className="table table-sm vt-breakdown")


def detail_header(inc: Mapping[str, Any], currency: str, now: datetime) -> list[Any]:
    """Title, severity, state, owner, times, score with its breakdown, and the reason."""
    q = inc.get("queue") or {}
    rank = q.get("rank")
    score = q.get("score")
    facts = [
        ("Incident", inc["id"]),
        ("State", inc["state"]),
        ("Owner", inc.get("owner") or "unassigned"),
        ("Opened", fmt_time(inc["opened_at"]) + _ago(inc["opened_at"], now)),
        ("Acknowledged", fmt_time(inc.get("acked_at"))),
        ("Region", inc.get("region") or inc.get("region_id") or "—"),
        (
            "Root cause",
            f"{inc.get('root_resource_id') or '—'} ({inc.get('probable_cause') or 'cause unknown'})",
        ),
    ]
    if inc.get("resolved_at") is not None:
        facts.append(("Resolved", fmt_time(inc["resolved_at"])))
    rank_text = f"#{rank}" if rank is not None and not pd.isna(rank) else "unranked"
    score_text = f"score {score:.1f} / 100" if score is not None else "not scored yet"
    return [
        html.H2([html.Span(rank_text, className="vt-rank"), " ", inc["title"]], className="vt-detail-title"),
        html.Div(
            [
                detected_badge() if inc.get("kind") == "detected" else None,
                severity_badge(str(inc["severity"])),
                html.Span(inc["state"], className="vt-statebadge"),
                html.Span(score_text, className="vt-score"),
            ],
            className="vt-badges",
        ),
        html.P(q.get("reason") or "Not in the ranked queue.", className="vt-reason"),
        html.Dl([part for k, v in facts for part in (html.Dt(k), html.Dd(v))], className="vt-record"),
        breakdown_table(q["breakdown"], str(inc["severity"]), currency) if q.get("breakdown") else None,
    ]


def account_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Affected accounts for the grid; the SLA deadline only where the clock runs."""
    if df.empty:
        return []
    out = df.assign(
        sla_deadline=[
            iso if bool(running) else None
            for iso, running in zip(_iso(df["deadline"]), df["running"].tolist(), strict=True)
        ],
        vip=df["vip"].map({True: "yes", False: "no"}),
        id=df["account_id"].astype(str),
    )
    cols = [
        "id",
        "name",
        "segment",
        "vip",
        "lines",
        "degraded_share",
        "sla_deadline",
        "penalty_per_hour",
        "value",
        "account_manager",
    ]
    return records(out[[c for c in cols if c in out.columns]])


def ticket_list(df: pd.DataFrame) -> html.Ul | html.P:
    """Related tickets as plain text (never rendered as HTML), newest first."""
    if df.empty:
        return html.P("No tickets from affected customers since the incident opened.", className="vt-muted")
    items = []
    for t in records(df):
        sentiment = t.get("sentiment")
        meta = [t["created_at"] or "", t.get("channel") or "", t.get("status") or ""]
        if sentiment is not None:
            meta.append(f"sentiment {sentiment:+.2f}")
        who = t.get("account_id") or t.get("subscriber_id")
        if who:
            meta.append(str(who))
        items.append(
            html.Li(
                [
                    html.Div(
                        [
                            html.Strong(t.get("subject") or "(no subject)"),
                            html.Span(" · ".join(m for m in meta if m), className="vt-meta"),
                        ]
                    ),
                    html.P(t.get("description") or "", className="vt-text"),
                ]
            )
        )
    return html.Ul(items, className="vt-tickets")


def note_list(df: pd.DataFrame) -> html.Ul | html.P:
    if df.empty:
        return html.P("No notes yet.", className="vt-muted")
    return html.Ul(
        [
            html.Li(
                [
                    html.Div(
                        [html.Strong(n["author"]), html.Span(n["created_at"] or "", className="vt-meta")]
                    ),
                    html.P(n["text"], className="vt-text"),
                ]
            )
            for n in records(df)
        ],
        className="vt-notes",
    )


def subscribers_grid(incident_id: str) -> dag.AgGrid:
    """The affected subscribers of one incident, fetched a block at a time as the operator scrolls."""
    return dag.AgGrid(
        id={"type": ids.INCIDENTS_SUBSCRIBERS, "incident": incident_id},
        columnDefs=SUBSCRIBER_COLUMNS,
        rowModelType="infinite",
        getRowId="params.data.id",
        defaultColDef={"resizable": True, "sortable": True},
        dashGridOptions=grid_options(
            cacheBlockSize=SUBSCRIBER_BLOCK, maxBlocksInCache=20, infiniteInitialRowCount=1, rowBuffer=0
        ),
        className="vt-grid vt-subscribers-grid",
    )


def _card(title: str, body: Any) -> dbc.Card:
    return dbc.Card([dbc.CardHeader(title), dbc.CardBody(body)], className="vt-card h-100")


def _cell_heading(cells: pd.DataFrame, cell_id: str) -> str:
    """``c1 (Porto 1)``: the cell's name and site, its id when it has no name."""
    row = cells[cells["cell_id"].astype(str) == cell_id]
    if row.empty:
        return cell_id
    name, site = row.iloc[0].get("name"), row.iloc[0].get("site")
    label = str(name) if isinstance(name, str) and name else cell_id
    return f"{label} ({site})" if isinstance(site, str) and site else label


def bands_row(detail: Detail) -> list[Any]:
    """The most out-of-band affected cells, each with its verdicts in words and its last 24 hours
    against the usual band; a line that says why when there is nothing to draw."""
    if not detail.bands:
        why = (
            "No usual band learnt yet for the affected cells."
            if len(detail.cells)
            else "No affected cells measured yet."
        )
        return [html.P(why, className="vt-muted vt-bands-none")]
    out = sum(len(b.outside) for b in detail.bands)
    title = (
        f"Against their usual band, last 24 h: {out} KPI{'s' if out != 1 else ''} outside"
        if out
        else "Against their usual band, last 24 h: every KPI shown is within it"
    )
    width = 12 // len(detail.bands)
    return [
        html.H3(title, className="vt-subhead vt-bands-title"),
        dbc.Row(
            [
                dbc.Col(band_block(b, _cell_heading(detail.cells, b.entity_id)), lg=width)
                for b in detail.bands
            ],
            className="g-3 mb-3 vt-bands",
        ),
    ]


def accounts_block(accounts: list[dict[str, Any]]) -> Any:
    """The affected accounts' grid, by value; a page at a time beyond :data:`ACCOUNTS_PAGE` rows."""
    return (
        dag.AgGrid(
            columnDefs=ACCOUNT_COLUMNS,
            rowData=accounts,
            getRowId="params.data.id",
            defaultColDef={"resizable": True, "sortable": True},
            dashGridOptions=grid_options(
                domLayout="autoHeight",
                tooltipShowDelay=300,
                **(
                    {
                        "pagination": True,
                        "paginationPageSize": ACCOUNTS_PAGE,
                        "paginationPageSizeSelector": False,
                    }
                    if len(accounts) > ACCOUNTS_PAGE
                    else {}
                ),
            ),
            className="vt-grid vt-accounts-grid",
        )
        if accounts
        else html.P("No business, VIP or SLA account is affected.", className="vt-muted")
    )


def detail_body(detail: Detail, scoring: Scoring, now: datetime) -> list[Any]:
    """Alarms, cells against their usual bands, KPIs, accounts, tickets and notes of one incident."""
    inc = detail.incident
    panels = [
        (scoring.impact.availability_kpi, kpi_title(scoring.impact.availability_kpi)),
        (scoring.impact.throughput_kpi, kpi_title(scoring.impact.throughput_kpi)),
    ]
    accounts = account_rows(detail.accounts)
    return [
        dbc.Row(
            [
                dbc.Col(dcc.Graph(figure=alarm_timeline_figure(detail.alarms, now)), lg=6),
                dbc.Col(dcc.Graph(figure=cells_map_figure(detail.cells)), lg=6),
            ],
            className="g-3 mb-3",
        ),
        *bands_row(detail),
        dbc.Row(
            [
                dbc.Col(
                    dcc.Graph(
                        figure=kpi_impact_figure(
                            detail.kpis, inc["opened_at"], panels, resolved_at=inc.get("resolved_at")
                        )
                    ),
                    lg=6,
                ),
                dbc.Col(
                    _card(f"Affected accounts by value ({len(accounts)})", accounts_block(accounts)), lg=6
                ),
            ],
            className="g-3 mb-3",
        ),
        dbc.Row(
            [
                dbc.Col(_card(f"Related tickets ({len(detail.tickets)})", ticket_list(detail.tickets)), lg=6),
                dbc.Col(_card(f"Notes ({len(detail.notes)})", note_list(detail.notes)), lg=6),
            ],
            className="g-3 mb-3",
        ),
    ]


def read_outbox(store: Store, incident_id: str) -> list[dict[str, Any]]:
    """What the playbooks decided about this incident, newest first, addresses and text masked."""
    with store.connect() as conn:
        return records(outbox.action_timeline(conn, incident_id=incident_id, limit=OUTBOX_SHOWN))


def outbox_row(rows: Sequence[Mapping[str, Any]], currency: str) -> dbc.Row:
    """The "Playbook actions" section: each action's playbook and step, target, state and why, when."""
    more = " (the newest)" if len(rows) == OUTBOX_SHOWN else ""
    body = outbox_list(rows, currency, empty="No playbook has acted on this incident.")
    return dbc.Row(
        dbc.Col(_card(f"Playbook actions ({len(rows)}){more}", body)), className="g-3 mb-3 vt-incident-outbox"
    )


def render_detail(
    store: Store, incident_id: str | None, now: datetime
) -> tuple[str, list[Any], list[Any], list[Any], bool, str]:
    """The detail panel for ``incident_id``: its class, header, body, subscribers box,
    whether Acknowledge is disabled and the owner to prefill."""
    hidden: tuple[str, list[Any], list[Any], list[Any], bool, str] = (
        "vt-detail d-none",
        [],
        [],
        [],
        True,
        "",
    )
    if not incident_id:
        return hidden
    try:
        scoring = current_scoring()
        detail = read_detail(store, incident_id, scoring, now, current_catalogue())
        acted = read_outbox(store, incident_id) if detail is not None else []
    except Exception as err:
        return "vt-detail", [store_error(err)], [], [], True, ""
    if detail is None:
        msg = dbc.Alert(f"No incident {incident_id!r} (it may have closed or merged).", color="warning")
        return "vt-detail", [msg], [], [], True, ""
    inc = detail.incident
    currency = current_settings().currency
    subs = [
        html.P(
            f"{detail.subscribers:,} subscriber{'s' if detail.subscribers != 1 else ''} on affected cells, "
            "most valuable first (MSISDN masked). Click a header to sort on the server.",
            className="vt-count",
        ),
        subscribers_grid(inc["id"]) if detail.subscribers else None,
    ]
    closed = inc.get("acked_at") is not None or inc["state"] not in ("open", "acknowledged")
    return (
        "vt-detail",
        detail_header(inc, currency, now),
        [*detail_body(detail, scoring, now), outbox_row(acted, currency)],
        subs,
        closed or not current_principal().may_act,
        inc.get("owner") or "",
    )


# --- Actions and the drill-down -----------------------------------------------------------------


def run_action(
    store: Store,
    action: str | None,
    incident_id: str | None,
    *,
    owner: str | None = None,
    note: str | None = None,
    actor: str,
    now: datetime,
) -> tuple[dbc.Alert, bool]:
    """Apply one operator action; returns what to tell the operator and whether anything changed."""
    if not incident_id:
        return dbc.Alert("Select an incident first.", color="warning"), False
    try:
        if action == ids.INCIDENTS_ACK:
            done = actions.acknowledge(store, incident_id, actor=actor, now=now)
            msg = f"Acknowledged by {actor}." if done else "Already acknowledged; nothing changed."
        elif action == ids.INCIDENTS_ASSIGN:
            done = actions.assign(store, incident_id, owner, actor=actor, now=now)
            who = (owner or "").strip()
            msg = (f"Assigned to {who}." if who else "Owner cleared.") if done else "The owner is unchanged."
        elif action == ids.INCIDENTS_NOTE_ADD:
            actions.add_note(store, incident_id, note or "", actor=actor, now=now)
            done, msg = True, f"Note added by {actor}."
        else:
            return dbc.Alert(f"Unknown action {action!r}.", color="danger"), False
    except actions.ActionError as err:
        return dbc.Alert(str(err), color="danger", className="vt-action-error"), False
    except Exception as err:
        return store_error(err), False
    if done:  # every screen's queue (state, owner) shows it at its next refresh
        cache.shared(current_settings().cache).bump("queue")
    return dbc.Alert(msg, color="success" if done else "secondary", className="vt-action-ok"), done


def subscribers_block(
    store: Store, incident_id: str, scoring: Scoring, request: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One block of the infinite grid: rows ``startRow`` to ``endRow`` in the grid's sort order."""
    request = request or {}
    start = max(0, int(request.get("startRow") or 0))
    end = int(request.get("endRow") or start + SUBSCRIBER_BLOCK)
    sort, descending = "value", True
    for item in request.get("sortModel") or []:
        if item.get("colId") in read.SORTABLE:
            sort, descending = str(item["colId"]), item.get("sort") != "asc"
            break
    with store.connect() as conn:
        df, total = read.affected_subscribers(
            conn,
            incident_id,
            scoring,
            sort=sort,
            descending=descending,
            offset=start,
            limit=max(1, end - start),
        )
    rows = records(df.drop(columns=["degraded"], errors="ignore"))
    for row in rows:
        row["vip"] = "yes" if row.get("vip") else "no"
    return {"rowData": rows, "rowCount": total}


def subscribers_download(store: Store, incident_id: str, scoring: Scoring) -> dict[str, Any]:
    """Every affected subscriber of the incident as a CSV file for ``dcc.Download``."""
    with store.connect() as conn:
        csv = read.affected_subscribers_csv(conn, incident_id, scoring)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in incident_id)
    return {
        "content": csv,
        "filename": f"{safe}-affected-subscribers.csv",
        "type": "text/csv",
        "base64": False,
    }


# --- Layout ----------------------------------------------------------------------------------


def _controls(filters: Mapping[str, Any], facets: Mapping[str, list[Any]]) -> dbc.Row:
    def select(id_: str, options: list[dict[str, str]], value: Any, label: str) -> dbc.Col:
        return dbc.Col(
            [
                dbc.Label(label, html_for=id_, className="vt-filter-label"),
                dbc.Select(id=id_, options=options, value=value or ANY),
            ],
            xs=6,
            md=True,
        )

    segments = [{"label": "All segments", "value": ANY}] + [
        {"label": s.upper() if s in ("smb", "vip") else s.capitalize(), "value": s} for s in SEGMENT_FILTERS
    ]
    severities = [{"label": "All severities", "value": ANY}] + [
        {"label": s.capitalize(), "value": s} for s in SEVERITY_FILTERS
    ]
    return dbc.Row(
        [
            select(ids.INCIDENTS_REGION, region_options(facets), filters["region"], "Region"),
            select(ids.INCIDENTS_SEGMENT, segments, filters["segment"], "Segment"),
            select(ids.INCIDENTS_SEVERITY, severities, filters["severity"], "Severity"),
            select(ids.INCIDENTS_OWNER, owner_options(facets, filters["owner"]), filters["owner"], "Owner"),
            dbc.Col(
                [
                    dbc.Label("State", className="vt-filter-label"),
                    dbc.Checklist(
                        id=ids.INCIDENTS_STATE,
                        options=[{"label": s.capitalize(), "value": s} for s in QUEUE_STATES],
                        value=filters["states"],
                        inline=True,
                        className="vt-states",
                    ),
                ],
                xs=12,
                md="auto",
            ),
        ],
        className="g-3 mb-2 align-items-end vt-filters",
    )


def _actions_card(ack_disabled: bool, owner: str) -> dbc.Card:
    """Acknowledge, assign and note; shown disabled, with the reason, to roles that may not act
    (the callback's rule refuses them anyway)."""
    principal = current_principal()
    locked = not principal.may_act
    return dbc.Card(
        [
            dbc.CardHeader("Actions"),
            dbc.CardBody(
                [
                    dbc.Button(
                        "Acknowledge",
                        id=ids.INCIDENTS_ACK,
                        color="warning",
                        disabled=ack_disabled or locked,
                        className="mb-3 w-100",
                    ),
                    html.P(
                        f"Your role ({principal.role}) may look but not act on incidents.",
                        className="vt-muted",
                        hidden=not locked,
                    ),
                    dbc.Label("Owner", html_for=ids.INCIDENTS_OWNER_INPUT),
                    dbc.InputGroup(
                        [
                            dbc.Input(
                                id=ids.INCIDENTS_OWNER_INPUT,
                                value=owner,
                                placeholder="team or person",
                                maxLength=actions.MAX_OWNER,
                            ),
                            dbc.Button("Assign", id=ids.INCIDENTS_ASSIGN, color="primary", disabled=locked),
                        ],
                        className="mb-3",
                    ),
                    dbc.Label("Note", html_for=ids.INCIDENTS_NOTE_TEXT),
                    dbc.Textarea(
                        id=ids.INCIDENTS_NOTE_TEXT,
                        placeholder="What was done, who was called, the ETA…",
                        maxLength=actions.MAX_NOTE,
                        rows=3,
                        className="mb-2",
                    ),
                    dbc.Button(
                        "Add note",
                        id=ids.INCIDENTS_NOTE_ADD,
                        color="secondary",
                        className="mb-3",
                        disabled=locked,
                    ),
                    html.Div(id=ids.INCIDENTS_ACTION_RESULT, role="status"),
                ]
            ),
        ],
        className="vt-card vt-actions h-100",
    )


def _detail_panel(selected: str | None, now: datetime) -> html.Div:
    cls, header, body, subs, ack_disabled, owner = render_detail(current_store(), selected, now)
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    dbc.Button(
                                        "Close", id=ids.INCIDENTS_CLOSE, color="link", className="vt-close"
                                    ),
                                    html.Div(header, id=ids.INCIDENTS_DETAIL_HEADER),
                                ]
                            ),
                            className="vt-card h-100",
                        ),
                        lg=8,
                    ),
                    dbc.Col(_actions_card(ack_disabled, owner), lg=4),
                ],
                className="g-3 mb-3",
            ),
            html.Div(body, id=ids.INCIDENTS_DETAIL_BODY),
            dbc.Card(
                [
                    dbc.CardHeader(
                        [
                            html.Span("Affected subscribers"),
                            dbc.Button(
                                "Export CSV",
                                id=ids.INCIDENTS_EXPORT,
                                color="secondary",
                                size="sm",
                                className="vt-export",
                            ),
                        ]
                    ),
                    dbc.CardBody(html.Div(subs, id=ids.INCIDENTS_SUBSCRIBERS_BOX)),
                ],
                className="vt-card mb-3",
            ),
            dcc.Download(id=ids.INCIDENTS_DOWNLOAD),
        ],
        id=ids.INCIDENTS_DETAIL,
        className=cls,
    )


def layout(**query: str) -> html.Div:
    """The queue with the filters of the query string; ``?id=INC-...`` opens that incident."""
    filters = filters_from_query(query)
    selected = (query.get("id") or "").strip() or None
    store, now = current_store(), current_time()
    try:
        facets = read_facets(store)
        # ?region= takes an id or a name (as the API does); the select shows ids.
        names = {str(name): str(rid) for rid, name in facets["regions"]}
        filters["region"] = names.get(filters["region"] or "", filters["region"])
        rows = grid_rows(store, filters, now)
        with store.connect() as conn:
            computed = read.queue_computed_at(conn)
            waiting = readiness.waiting(conn, "incidents", now)
    except Exception as err:
        return html.Div([html.H1("Incident queue"), store_error(err)])
    currency = current_settings().currency
    grid = dag.AgGrid(
        id=ids.INCIDENTS_GRID,
        columnDefs=queue_columns(currency),
        rowData=rows,
        getRowId="params.data.id",
        selectedRows={"ids": [selected]} if selected else [],
        defaultColDef={"resizable": True, "sortable": True, "wrapHeaderText": True, "autoHeaderHeight": True},
        rowClassRules={"vt-row-breached": "params.data && params.data.sla_breached > 0"},
        dashGridOptions=grid_options(
            rowSelection={"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
            tooltipShowDelay=300,
            animateRows=False,
            localeText={"noRowsToShow": "No incidents to show"},
        ),
        className="vt-grid vt-queue-grid",
    )
    filtered = any(filters[k] for k in ("region", "segment", "severity", "owner"))
    return html.Div(
        [
            dcc.Location(id=ids.INCIDENTS_URL, refresh=False),
            dcc.Interval(id=ids.INCIDENTS_INTERVAL, interval=current_refresh_ms()),
            dcc.Store(id=ids.INCIDENTS_SELECTED, data=selected),
            dcc.Store(id=ids.INCIDENTS_ACTED, data=0),
            html.H1("Incident queue"),
            _controls(filters, facets),
            html.P(
                queue_summary(rows, computed, filtered=filtered, waiting=waiting),
                id=ids.INCIDENTS_SUMMARY,
                className="vt-count",
            ),
            grid,
            _detail_panel(selected, now),
        ]
    )


# --- Callbacks: each one unpacks its inputs and calls one of these ------------------------------


def control_filters(
    region: str | None, segment: str | None, severity: str | None, states: list[str] | None, owner: str | None
) -> dict[str, Any]:
    """The filters the controls show, as :func:`filters_from_query` would read them from a URL."""
    query = {
        "region": region,
        "segment": segment,
        "severity": severity,
        "state": states or [],
        "owner": owner,
    }
    return filters_from_query(query)


def refresh_queue_view(
    store: Store,
    filters: dict[str, Any],
    now: datetime,
    *,
    regions_shown: list[dict[str, str]] | None = None,
    owners_shown: list[dict[str, str]] | None = None,
    cache: Cache | None = None,
) -> tuple[Any, str, Any, Any]:
    """Grid rows, the summary line and the region and owner options (no_update when unchanged).

    The queue, its facets and when it was computed are read once per queue version and filters
    through the shared ``cache`` (every NOC screen asks the same); the ages are taken now. When the
    store cannot be read the rows stay on screen and the summary says they are stale.
    """
    try:
        if cache is None:
            view = queue_view(store, filters)
        else:
            view = cache.read(
                "incidents-queue", ("queue",), lambda: queue_view(store, filters), parts=(filters,)
            )
        rows = with_ages(view["rows"], now)
        waiting = None
        if not rows:  # only an empty queue says what the preparation is at
            with store.connect() as conn:
                waiting = readiness.waiting(conn, "incidents", now)
    except Exception:
        return dash.no_update, "STALE: the store could not be read", dash.no_update, dash.no_update
    facets = view["facets"]
    computed = datetime.fromisoformat(view["computed"]) if view["computed"] else None
    regions, owners = region_options(facets), owner_options(facets, filters["owner"])
    filtered = any(filters[k] for k in ("region", "segment", "severity", "owner"))
    return (
        rows,
        queue_summary(rows, computed, filtered=filtered, waiting=waiting),
        dash.no_update if regions == regions_shown else regions,
        dash.no_update if owners == owners_shown else owners,
    )


def queue_view(store: Store, filters: dict[str, Any]) -> dict[str, Any]:
    """What the grid's refresh reads (JSON-ready): the rows (ages left to :func:`with_ages`), the
    filters' facets and when the queue was computed (ISO, or None)."""
    with store.connect() as conn:
        computed = read.queue_computed_at(conn)
    return {
        # Any time will do for the ages here: with_ages takes them again when the rows are shown.
        "rows": grid_rows(store, filters, computed or datetime(2000, 1, 1)),
        "facets": read_facets(store),
        "computed": computed.isoformat() if computed else None,
    }


def with_ages(rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """``rows`` with each incident's age in minutes at ``now`` (as :func:`queue_records` counts it)."""
    if not rows:
        return rows
    opened = pd.to_datetime(pd.Series([r["opened_at"] for r in rows]), utc=True).dt.tz_localize(None)
    ages = _whole((pd.Timestamp(now) - opened).dt.total_seconds() / 60.0)
    return [r | {"age_min": age} for r, age in zip(rows, ages, strict=True)]


def selected_incident(selected_rows: Any) -> str | None:
    """The incident id of the grid's selection (rows or ``{"ids": [...]}``), None when empty."""
    if isinstance(selected_rows, dict):
        chosen = selected_rows.get("ids") or []
        return str(chosen[0]) if chosen else None
    if selected_rows:
        first = selected_rows[0]
        return str(first.get("id")) if isinstance(first, dict) and first.get("id") else None
    return None


def selection_change(trigger: Any, selected_rows: Any, current: str | None) -> tuple[Any, Any]:
    """The incident to show and whether to clear the grid's selection.

    Close hides the detail; an empty selection (a filter hid the row) keeps it; re-selecting the
    shown incident (the grid re-reports it after each refresh) changes nothing.
    """
    if trigger == ids.INCIDENTS_CLOSE:
        return None, True
    chosen = selected_incident(selected_rows)
    return (dash.no_update if chosen in (None, current) else chosen), dash.no_update


def action_outputs(
    store: Store,
    trigger: Any,
    selected: str | None,
    owner: str | None,
    note: str | None,
    acted: int | None,
    *,
    actor: str,
    now: datetime,
) -> tuple[Any, Any, Any]:
    """The message, the bumped action counter (re-reads the detail and the grid) and the note box."""
    action = str(trigger) if trigger else None
    message, changed = run_action(store, action, selected, owner=owner, note=note, actor=actor, now=now)
    if not changed:
        return message, dash.no_update, dash.no_update
    cleared = "" if action == ids.INCIDENTS_NOTE_ADD else dash.no_update
    return message, (acted or 0) + 1, cleared


_FILTER_INPUTS = [
    Input(ids.INCIDENTS_REGION, "value"),
    Input(ids.INCIDENTS_SEGMENT, "value"),
    Input(ids.INCIDENTS_SEVERITY, "value"),
    Input(ids.INCIDENTS_STATE, "value"),
    Input(ids.INCIDENTS_OWNER, "value"),
]


def register_callbacks(app: dash.Dash) -> None:
    @guard.callback(
        app,
        "read",
        Output(ids.INCIDENTS_GRID, "rowData"),
        Output(ids.INCIDENTS_SUMMARY, "children"),
        Output(ids.INCIDENTS_REGION, "options"),
        Output(ids.INCIDENTS_OWNER, "options"),
        Input(ids.INCIDENTS_INTERVAL, "n_intervals"),
        *_FILTER_INPUTS,
        Input(ids.INCIDENTS_ACTED, "data"),
        State(ids.INCIDENTS_REGION, "options"),
        State(ids.INCIDENTS_OWNER, "options"),
        prevent_initial_call=True,
    )
    def _refresh(
        _n: int | None,
        region: str | None,
        segment: str | None,
        severity: str | None,
        states: list[str] | None,
        owner: str | None,
        _acted: int | None,
        regions_shown: list[dict[str, str]] | None,
        owners_shown: list[dict[str, str]] | None,
    ) -> tuple[Any, str, Any, Any]:
        filters = control_filters(region, segment, severity, states, owner)
        return refresh_queue_view(
            current_store(),
            filters,
            current_time(),
            regions_shown=regions_shown,
            owners_shown=owners_shown,
            cache=cache.shared(current_settings().cache),
        )

    @guard.callback(
        app,
        "read",
        Output(ids.INCIDENTS_URL, "search"),
        *_FILTER_INPUTS,
        Input(ids.INCIDENTS_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def _deep_link(
        region: str | None,
        segment: str | None,
        severity: str | None,
        states: list[str] | None,
        owner: str | None,
        selected: str | None,
    ) -> str:
        return query_string(control_filters(region, segment, severity, states, owner), selected)

    @guard.callback(
        app,
        "read",
        Output(ids.INCIDENTS_SELECTED, "data"),
        Output(ids.INCIDENTS_GRID, "deselectAll"),
        Input(ids.INCIDENTS_GRID, "selectedRows"),
        Input(ids.INCIDENTS_CLOSE, "n_clicks"),
        State(ids.INCIDENTS_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def _select(selected_rows: Any, _close: int | None, current: str | None) -> tuple[Any, Any]:
        return selection_change(ctx.triggered_id, selected_rows, current)

    @guard.callback(
        app,
        "read",
        Output(ids.INCIDENTS_DETAIL, "className"),
        Output(ids.INCIDENTS_DETAIL_HEADER, "children"),
        Output(ids.INCIDENTS_DETAIL_BODY, "children"),
        Output(ids.INCIDENTS_SUBSCRIBERS_BOX, "children"),
        Output(ids.INCIDENTS_ACK, "disabled"),
        Output(ids.INCIDENTS_OWNER_INPUT, "value"),
        Input(ids.INCIDENTS_SELECTED, "data"),
        Input(ids.INCIDENTS_ACTED, "data"),
        prevent_initial_call=True,
    )
    def _detail(selected: str | None, _acted: int | None) -> tuple[Any, ...]:
        return render_detail(current_store(), selected, current_time())

    @guard.callback(
        app,
        "act",
        Output(ids.INCIDENTS_ACTION_RESULT, "children"),
        Output(ids.INCIDENTS_ACTED, "data"),
        Output(ids.INCIDENTS_NOTE_TEXT, "value"),
        Input(ids.INCIDENTS_ACK, "n_clicks"),
        Input(ids.INCIDENTS_ASSIGN, "n_clicks"),
        Input(ids.INCIDENTS_NOTE_ADD, "n_clicks"),
        State(ids.INCIDENTS_SELECTED, "data"),
        State(ids.INCIDENTS_OWNER_INPUT, "value"),
        State(ids.INCIDENTS_NOTE_TEXT, "value"),
        State(ids.INCIDENTS_ACTED, "data"),
        prevent_initial_call=True,
    )
    def _act(
        _ack: int | None,
        _assign: int | None,
        _note: int | None,
        selected: str | None,
        owner: str | None,
        note: str | None,
        acted: int | None,
    ) -> tuple[Any, Any, Any]:
        return action_outputs(
            current_store(),
            ctx.triggered_id,
            selected,
            owner,
            note,
            acted,
            actor=current_actor(),
            now=current_time(),
        )

    @guard.callback(
        app,
        "read",
        Output({"type": ids.INCIDENTS_SUBSCRIBERS, "incident": MATCH}, "getRowsResponse"),
        Input({"type": ids.INCIDENTS_SUBSCRIBERS, "incident": MATCH}, "getRowsRequest"),
        State({"type": ids.INCIDENTS_SUBSCRIBERS, "incident": MATCH}, "id"),
        prevent_initial_call=True,
    )
    def _subscribers(request: dict[str, Any] | None, grid_id: dict[str, str]) -> Any:
        if not request:
            return dash.no_update
        return subscribers_block(current_store(), grid_id["incident"], current_scoring(), request)

    @guard.callback(
        app,
        "read",
        Output(ids.INCIDENTS_DOWNLOAD, "data"),
        Input(ids.INCIDENTS_EXPORT, "n_clicks"),
        State(ids.INCIDENTS_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def _export(_n: int | None, selected: str | None) -> Any:
        if not selected or not isinstance(selected, str):
            return dash.no_update
        return subscribers_download(current_store(), selected, current_scoring())
