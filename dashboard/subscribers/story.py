"""One subscriber's whole story for the 360 view and the API, read by indexed keys only.

:func:`subscriber_story` reads the profile and account, services, serving cells with the KPIs the
subscriber experienced (share-weighted per period, aggregated in the database from the raw samples
kept and, for older periods, from the cells' roll-ups), the incidents that hit those cells, tickets
with their notes, bills and usage, churn risk and drivers, offers, churn events and the actions
taken, and puts every dated event of them on one timeline. Every query is keyed by the subscriber
id, its account id, its cell ids or its ticket ids, so the cost depends on the subscriber's own
history, not on the size of the customer base.

Personal fields pass through :func:`dashboard.privacy.protect`: the story is always masked, for
every role; the clear values come only from :func:`dashboard.privacy.unmask`, which audits. Free
text (tickets' subjects and descriptions, their notes, churn reasons) is redacted for every role
by :func:`dashboard.privacy.redact_text`, with the names of the account's contact and holder:
people write phone numbers, emails and names into it. The timeline is built from the redacted parts.
Everything returned is JSON-ready: times are ISO 8601 UTC with a ``Z``, dates ``YYYY-MM-DD``,
text fields plain strings (never markup).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Select, Subquery, case, func, select

from dashboard.incidents.correlate import ENGINE_SOURCE
from dashboard.kpi_eval._sql import bucket, floor_time, sample_cell_rows, stored_rows
from dashboard.kpis import Catalogue, KpiDefinition
from dashboard.privacy import BUSINESS_SEGMENTS, Principal, people_named, protect, redact_optional
from dashboard.store.retention import rolled_up_to
from dashboard.store.schema import (
    accounts,
    audit,
    bills,
    cells,
    churn_events,
    incident_cells,
    incidents,
    kpi_rollups,
    kpi_samples,
    offer_events,
    regions,
    services,
    sites,
    subscriber_cells,
    subscriber_signals,
    subscribers,
    ticket_notes,
    ticket_status_changes,
    tickets,
    usage,
)
from dashboard.subscribers.story_types import (
    Account,
    Action,
    Bill,
    Churn,
    ChurnDriver,
    ChurnEvent,
    KpiPoint,
    Offer,
    Profile,
    Service,
    ServingCell,
    StatusChange,
    Story,
    StoryIncident,
    StoryParts,
    StoryTicket,
    TicketNote,
    TimelineEvent,
    UsageRow,
)

#: The most rows of each history list (tickets, bills, incidents, actions...) a story carries.
HISTORY_LIMIT = 100
#: Bills shown: two years of monthly bills.
BILLS_LIMIT = 24
#: Usage is summed per period and type over this many days before ``now``.
USAGE_DAYS = 400
#: Account types whose name is a company's, not a person's: only those names are in the story.


def incident_link(incident_id: str) -> str:
    """The Incidents page opened on one incident (a deep link that already works)."""
    return "/incidents?" + urlencode({"id": incident_id})


def account_link(account_id: str) -> str:
    """The subscriber search listing every line of one account."""
    return "/subscribers?" + urlencode({"account": account_id})


def subscriber_link(subscriber_id: str, **query: str) -> str:
    """The 360 view of one subscriber, ``?tab=...`` when given."""
    path = "/subscribers/" + quote(subscriber_id, safe="")
    return path + ("?" + urlencode(query) if query else "")


def experienced_kpis(catalogue: Catalogue) -> list[KpiDefinition]:
    """The KPIs a subscriber feels: the catalogue's measured technical KPIs that have thresholds (their
    definitions: the story reads each by its aggregate)."""
    return [
        k
        for k in catalogue.kpis
        if k.domain == "technical"
        and k.type != "derived"
        and (k.thresholds.warning is not None or k.thresholds.critical is not None)
    ]


def kpi_step_minutes(days: float) -> int:
    """Period the experienced KPIs are summed over: raw 15-min periods up to 2 days, hours up to a
    month, days beyond, so a chart carries at most about 750 points per KPI."""
    if days <= 2:
        return 15
    return 60 if days <= 31 else 1440


# --- JSON-ready values -------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _num(value: Any, digits: int = 4) -> float | None:
    if value is None:
        return None
    out = float(value)
    return None if math.isnan(out) else round(out, digits)


def _text(value: Any) -> str | None:
    """Stored text as a plain string: whatever it contains is shown as text, never parsed."""
    return None if value is None else str(value)


def _said(value: Any, names: Sequence[str]) -> str | None:
    """Free text people wrote, as a plain string with the personal data in it redacted."""
    return redact_optional(_text(value), names)


#: A row as the database returned it: its cells are whatever the driver read, checked where used.
Row = dict[str, Any]
M = TypeVar("M", bound=Mapping[str, Any])


def _rows(conn: Connection, stmt: Select[Any]) -> list[Row]:
    return [dict(r) for r in conn.execute(stmt).mappings()]


def _latest(rows: list[Row], key: str) -> Row | None:
    """Of one record kept by several sources, the one stored last."""
    if not rows:
        return None
    return max(rows, key=lambda r: (r.get(key) is not None, r.get(key) or datetime.min))


def _unique(rows: Iterable[M], key: str = "id") -> list[M]:
    """The first of the rows (or records) that share one ``key``, in order."""
    seen: set[Any] = set()
    out = []
    for r in rows:
        if r[key] not in seen:
            seen.add(r[key])
            out.append(r)
    return out


# --- The parts ---------------------------------------------------------------------------------


def _profile(conn: Connection, subscriber_id: str, now: datetime) -> Profile | None:
    s = subscribers
    row = _latest(
        _rows(
            conn,
            select(
                s.c.id,
                s.c.source,
                s.c.account_id,
                s.c.msisdn,
                s.c.plan,
                s.c.arpu,
                s.c.status,
                s.c.activated_at,
                s.c.home_cell_id,
                s.c.ingested_at,
            ).where(s.c.id == subscriber_id),
        ),
        "ingested_at",
    )
    if row is None:
        return None
    activated = row["activated_at"]
    tenure = (now - activated).days if activated is not None and activated <= now else None
    return {
        "id": row["id"],
        "source": row["source"],
        "account_id": row["account_id"],
        "msisdn": row["msisdn"],
        "plan": row["plan"],
        "arpu": _num(row["arpu"], 2),
        "status": row["status"],
        "activated_at": _iso(activated),
        "tenure_days": tenure,
        "home_cell_id": row["home_cell_id"],
    }


def _account(conn: Connection, account_id: str | None) -> tuple[Account | None, tuple[str, ...]]:
    """The account (personal fields still clear: the caller protects them) and the people its free
    text may name (:func:`dashboard.privacy.people_named`)."""
    if not account_id:
        return None, ()
    a = accounts
    row = _latest(
        _rows(
            conn,
            select(
                a.c.id,
                a.c.name,
                a.c.segment,
                a.c.vip,
                a.c.account_manager,
                a.c.sla_restore_minutes,
                a.c.penalty_per_hour,
                a.c.contract_end,
                a.c.contact_name,
                a.c.contact_email,
                a.c.contact_phone,
                a.c.contact_address,
                a.c.ingested_at,
            ).where(a.c.id == account_id),
        ),
        "ingested_at",
    )
    lines = conn.execute(
        select(func.count(func.distinct(subscribers.c.id))).where(subscribers.c.account_id == account_id)
    ).scalar()
    if row is None:
        unknown: Account = {
            "id": account_id,
            "name": None,
            "segment": None,
            "vip": None,
            "lines": int(lines or 0),
            "link": account_link(account_id),
        }
        return unknown, ()
    business = row["segment"] in BUSINESS_SEGMENTS
    known: Account = {
        "id": row["id"],
        # A consumer account is named after its holder: that name is the contact name, masked there.
        "name": row["name"] if business else None,
        "segment": row["segment"],
        "vip": bool(row["vip"]),
        "account_manager": row["account_manager"],
        "sla_restore_minutes": row["sla_restore_minutes"],
        "penalty_per_hour": _num(row["penalty_per_hour"], 2),
        "contract_end": _iso(row["contract_end"]),
        "contact_name": row["contact_name"],
        "contact_email": row["contact_email"],
        "contact_phone": row["contact_phone"],
        "contact_address": row["contact_address"],
        "lines": int(lines or 0),
        "link": account_link(row["id"]),
    }
    return known, people_named(row["name"], row["segment"], row["contact_name"])


def _services(conn: Connection, subscriber_id: str, account_id: str | None) -> list[Service]:
    sv = services
    cols = (sv.c.id, sv.c.name, sv.c.kind, sv.c.status)
    line = _rows(conn, select(*cols).where(sv.c.subscriber_id == subscriber_id).order_by(sv.c.name, sv.c.id))
    out = [_service(r, "line") for r in line]
    if account_id:
        # Services of the account as a whole (a private APN, a fixed link) reach every line.
        shared = _rows(
            conn,
            select(*cols)
            .where(sv.c.account_id == account_id, sv.c.subscriber_id.is_(None))
            .order_by(sv.c.name, sv.c.id)
            .limit(HISTORY_LIMIT),
        )
        out += [_service(r, "account") for r in shared]
    return _unique(out)


def _service(r: Row, level: Literal["line", "account"]) -> Service:
    return {"id": r["id"], "name": r["name"], "kind": r["kind"], "status": r["status"], "level": level}


def _serving_cells(subscriber_id: str) -> Subquery:
    """The subscriber's cells with their share of its traffic (one row per cell, whatever the source)."""
    sc = subscriber_cells
    return (
        select(sc.c.cell_id, func.max(sc.c.share).label("share"))
        .where(sc.c.subscriber_id == subscriber_id)
        .group_by(sc.c.cell_id)
        .subquery("serving")
    )


def _cells(conn: Connection, subscriber_id: str) -> list[ServingCell]:
    serving = _serving_cells(subscriber_id)
    rows = _rows(
        conn,
        select(
            serving.c.cell_id,
            serving.c.share,
            cells.c.name,
            cells.c.technology,
            cells.c.band,
            cells.c.site_id,
            sites.c.name.label("site"),
            sites.c.region_id,
            regions.c.name.label("region"),
        )
        .select_from(
            serving.outerjoin(cells, cells.c.id == serving.c.cell_id)
            .outerjoin(sites, sites.c.id == cells.c.site_id)
            .outerjoin(regions, regions.c.id == sites.c.region_id)
        )
        .order_by(serving.c.share.desc(), serving.c.cell_id),
    )
    return [
        {
            "cell_id": r["cell_id"],
            "share": _num(r["share"]),
            "name": r["name"],
            "technology": r["technology"],
            "band": r["band"],
            "site_id": r["site_id"],
            "site": r["site"],
            "region_id": r["region_id"],
            "region": r["region"],
        }
        for r in _unique(rows, "cell_id")
    ]


#: What :func:`subscriber_story` is asked to read: KPI names (each read as the mean of its samples)
#: or the catalogue's definitions (each read by its ``aggregate``), as :func:`experienced_kpis` gives.
KpiSelection = Sequence[str] | Sequence[KpiDefinition]


def _names(kpis: KpiSelection | None) -> list[str] | None:
    return None if kpis is None else [k if isinstance(k, str) else k.name for k in kpis]


def _definitions(kpis: KpiSelection | None) -> list[KpiDefinition] | None:
    """The definitions when every KPI asked for comes with one (else the samples are read as means)."""
    if not kpis or any(isinstance(k, str) for k in kpis):
        return None
    return [k for k in kpis if not isinstance(k, str)]


def _rollup_grain(step: int) -> int:
    """The roll-ups a step reads where the raw samples are gone: hours, or days for a daily step."""
    return 86400 if step == 1440 else 3600


def _experienced_kpis(
    conn: Connection,
    subscriber_id: str,
    *,
    cell_ids: Sequence[str],
    since: datetime,
    until: datetime,
    step: int,
    kpis: KpiSelection | None,
) -> list[KpiPoint]:
    """Per KPI and period: the serving cells' values weighted by the share of the subscriber's
    traffic on each, ``sum(share * value) / sum(share)`` over the cells that reported.

    Hours and days of KPIs given as definitions come from the cells' roll-ups where those are final
    (before the roll-up pass's watermark) and from the raw samples after, which give the same
    values; quarter hours, and KPIs given by name or not at all, from the raw samples. The part of
    the window before the oldest raw sample read (retention dropped older days) comes from the
    cells' hourly roll-ups (daily ones for a daily step; at 15 minutes each quarter shows its hour).
    """
    grain = _rollup_grain(step)
    lo = floor_time(since, grain)
    final = rolled_up_to(conn) if step != 15 and _definitions(kpis) is not None else None
    raw_from = min(max(since, floor_time(final, grain)), until) if final is not None else since
    raw: Sequence[Any] = ()
    if raw_from < until:
        stmt = experienced_kpis_statement(
            conn, subscriber_id, cell_ids=cell_ids, since=raw_from, until=until, step=step, kpis=kpis
        )
        raw = conn.execute(stmt).all()
    hi = floor_time(min(_as_datetime(r[1]) for r in raw), grain) if raw else until
    names = _names(kpis) or sorted({r[0] for r in raw})
    older: Sequence[Any] = ()
    if hi > lo and names:
        rows = stored_rows(names, "cell", grain, lo, hi).where(kpi_rollups.c.entity_id.in_(list(cell_ids)))
        older = conn.execute(_share_weighted(rows.subquery("stored"), subscriber_id, kpis)).all()
        if step == 15:
            quarter = timedelta(minutes=15)
            older = [
                (kpi, _as_datetime(start) + q * quarter, value, n)
                for kpi, start, value, n in older
                for q in range(4)
            ]
    return [
        {"kpi": kpi, "period_start": _iso(start), "value": _num(value), "cells": int(n)}
        for kpi, start, value, n in sorted([*older, *raw], key=lambda r: (r[0], _as_datetime(r[1])))
    ]


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def experienced_kpis_statement(
    conn: Connection,
    subscriber_id: str,
    *,
    cell_ids: Sequence[str],
    since: datetime,
    until: datetime,
    step: int,
    kpis: KpiSelection | None,
) -> Select[Any]:
    """The aggregate query of :func:`_experienced_kpis` over the kept raw samples (public so
    benchmarks can EXPLAIN it): keyed by the subscriber's cells, so it reads only their samples in
    ``[since, until)``. Each cell's value in a period is its KPI's as the roll-ups keep it
    (dashboard/kpi_eval/_sql.py: ``sample_cell_rows``), so the roll-ups read for older periods
    give the same values."""
    grain = None if step == 15 else _rollup_grain(step)
    definitions = _definitions(kpis)
    if definitions is not None:
        rows = sample_cell_rows(
            definitions, grain_s=grain, lo=since, hi=until, dialect=conn.dialect.name, cell_ids=cell_ids
        )
    else:
        rows = _sample_means(conn, cell_ids, since=since, until=until, grain=grain, names=_names(kpis))
    return _share_weighted(rows.subquery("cellrows"), subscriber_id, kpis)


def _sample_means(
    conn: Connection,
    cell_ids: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    grain: int | None,
    names: Sequence[str] | None,
) -> Select[Any]:
    """Roll-up rows per cell of every KPI read as the mean of its samples: a sample weighs 1, as the
    roll-ups weigh the samples of every aggregate but ``traffic_weighted``."""
    ks = kpi_samples
    period = ks.c.period_start if grain is None else bucket(ks.c.period_start, grain, conn.dialect.name)
    stmt = (
        select(
            ks.c.kpi.label("series"),
            ks.c.entity_id,
            period.label("period_start"),
            func.sum(ks.c.value).label("total"),
            func.count().label("weight"),
            func.min(ks.c.value).label("low"),
            func.max(ks.c.value).label("high"),
        )
        .where(
            ks.c.entity_type == "cell",
            ks.c.entity_id.in_(list(cell_ids)),
            ks.c.period_start >= since,
            ks.c.period_start < until,
        )
        .group_by(ks.c.kpi, ks.c.entity_id, period)
    )
    return stmt if names is None else stmt.where(ks.c.kpi.in_(names))


def _share_weighted(rows: Subquery, subscriber_id: str, kpis: KpiSelection | None) -> Select[Any]:
    """Roll-up rows per cell (a subquery of ROLLUP_COLUMNS) as (kpi, period_start, value, cells):
    each cell's value by its KPI's aggregate, as dashboard/kpi_eval/read.py reads a roll-up row
    (sum: total; min: low; max: high; else total / weight), weighted by the subscriber's share."""
    serving = _serving_cells(subscriber_id)
    by_aggregate = {
        aggregate: [k.name for k in _definitions(kpis) or () if k.aggregate == aggregate]
        for aggregate in ("sum", "min", "max")
    }
    columns = {"sum": rows.c.total, "min": rows.c.low, "max": rows.c.high}
    whens = [(rows.c.series.in_(names), columns[a]) for a, names in by_aggregate.items() if names]
    mean = rows.c.total / func.nullif(rows.c.weight, 0)
    value: ColumnElement[Any] = case(*whens, else_=mean) if whens else mean
    weighted = func.sum(value * serving.c.share) / func.sum(serving.c.share)
    return (
        select(
            rows.c.series.label("kpi"),
            rows.c.period_start,
            weighted.label("value"),
            func.count(func.distinct(rows.c.entity_id)).label("cells"),
        )
        .select_from(rows.join(serving, serving.c.cell_id == rows.c.entity_id))
        .where(serving.c.share > 0, value.is_not(None))
        .group_by(rows.c.series, rows.c.period_start)
        .order_by(rows.c.series, rows.c.period_start)
    )


@dataclass
class _Hit:
    """One incident's rows summed over the subscriber's cells it degraded."""

    row: Row
    cells: list[str] = field(default_factory=list)
    degraded_share: float = 0.0
    impact: float = 0.0


def _incidents(conn: Connection, shares: Mapping[str, float]) -> list[StoryIncident]:
    """Incidents of the correlation engine whose affected cells serve the subscriber, newest first.

    ``impact`` is the share of the subscriber's traffic degraded: sum over its cells of
    share x degraded share.
    """
    if not shares:
        return []
    ic, i = incident_cells, incidents
    rows = _rows(
        conn,
        select(
            ic.c.incident_id,
            ic.c.cell_id,
            ic.c.degraded_share,
            i.c.title,
            i.c.severity,
            i.c.state,
            i.c.opened_at,
            i.c.resolved_at,
            i.c.merged_into,
        )
        .select_from(ic.join(i, (i.c.id == ic.c.incident_id) & (i.c.source == ENGINE_SOURCE)))
        .where(ic.c.cell_id.in_(list(shares)))
        .order_by(i.c.opened_at.desc(), ic.c.incident_id),
    )
    found: dict[str, _Hit] = {}
    for r in rows:
        hit = found.setdefault(r["incident_id"], _Hit(r))
        degraded = float(r["degraded_share"] or 0.0)
        hit.cells.append(r["cell_id"])
        hit.degraded_share = max(hit.degraded_share, degraded)
        hit.impact += shares.get(r["cell_id"], 0.0) * degraded
    newest = sorted(found.values(), key=lambda h: (h.row["opened_at"], h.row["incident_id"]), reverse=True)
    return [
        {
            "id": h.row["incident_id"],
            "title": h.row["title"],
            "severity": h.row["severity"],
            "state": h.row["state"],
            "opened_at": _iso(h.row["opened_at"]),
            "resolved_at": _iso(h.row["resolved_at"]),
            "merged_into": h.row["merged_into"],
            "cells": sorted(set(h.cells)),
            "degraded_share": _num(h.degraded_share),
            "impact": _num(min(h.impact, 1.0)),
            "link": incident_link(h.row["incident_id"]),
        }
        for h in newest[:HISTORY_LIMIT]
    ]


def _tickets(
    conn: Connection, subscriber_id: str, account_id: str | None, names: Sequence[str]
) -> list[StoryTicket]:
    """The line's tickets and the account's tickets not about one line, newest first, with notes;
    their text redacted with ``names``."""
    t = tickets
    cols = (
        t.c.id,
        t.c.subject,
        t.c.description,
        t.c.channel,
        t.c.status,
        t.c.category,
        t.c.priority,
        t.c.sentiment,
        t.c.created_at,
        t.c.updated_at,
        t.c.resolved_at,
        t.c.incident_id,
    )
    newest = (t.c.created_at.desc(), t.c.id)
    found = [
        r | {"scope": "line"}
        for r in _rows(
            conn,
            select(*cols).where(t.c.subscriber_id == subscriber_id).order_by(*newest).limit(HISTORY_LIMIT),
        )
    ]
    if account_id:
        found += [
            r | {"scope": "account"}
            for r in _rows(
                conn,
                select(*cols)
                .where(t.c.account_id == account_id, t.c.subscriber_id.is_(None))
                .order_by(*newest)
                .limit(HISTORY_LIMIT),
            )
        ]
    found = sorted(_unique(found), key=lambda r: (r["created_at"], r["id"]), reverse=True)[:HISTORY_LIMIT]
    ids = [r["id"] for r in found]
    notes: dict[str, list[TicketNote]] = {i: [] for i in ids}
    changes: dict[str, list[StatusChange]] = {i: [] for i in ids}
    if ids:
        n = ticket_notes
        for r in _unique(
            _rows(
                conn,
                select(n.c.id, n.c.ticket_id, n.c.author, n.c.text, n.c.sentiment, n.c.created_at)
                .where(n.c.ticket_id.in_(ids))
                .order_by(n.c.created_at, n.c.id),
            )
        ):
            notes[r["ticket_id"]].append(
                {
                    "author": _text(r["author"]),
                    "text": _said(r["text"], names),
                    "sentiment": _num(r["sentiment"], 3),
                    "created_at": _iso(r["created_at"]),
                }
            )
        c = ticket_status_changes
        seen: set[tuple[Any, ...]] = set()
        for r in _rows(
            conn,
            select(c.c.ticket_id, c.c.status, c.c.changed_at)
            .where(c.c.ticket_id.in_(ids))
            .order_by(c.c.changed_at, c.c.status),
        ):
            key = (r["ticket_id"], r["status"], r["changed_at"])
            if key not in seen:
                seen.add(key)
                changes[r["ticket_id"]].append({"status": r["status"], "changed_at": _iso(r["changed_at"])})
    return [
        {
            "id": r["id"],
            "scope": r["scope"],
            "subject": _said(r["subject"], names),
            "description": _said(r["description"], names),
            "channel": r["channel"],
            "status": r["status"],
            "category": r["category"],
            "priority": r["priority"],
            "sentiment": _num(r["sentiment"], 3),
            "created_at": _iso(r["created_at"]),
            "updated_at": _iso(r["updated_at"]),
            "resolved_at": _iso(r["resolved_at"]),
            "incident_id": r["incident_id"],
            "incident_link": incident_link(r["incident_id"]) if r["incident_id"] else None,
            "notes": notes[r["id"]],
            "status_changes": changes[r["id"]],
        }
        for r in found
    ]


def _bills(conn: Connection, account_id: str | None) -> list[Bill]:
    if not account_id:
        return []
    b = bills
    rows = _rows(
        conn,
        select(b.c.id, b.c.period_start, b.c.period_end, b.c.amount, b.c.currency, b.c.state, b.c.issued_at)
        .where(b.c.account_id == account_id)
        .order_by(b.c.period_start.desc(), b.c.id)
        .limit(BILLS_LIMIT),
    )
    return [
        {
            "id": r["id"],
            "period_start": _iso(r["period_start"]),
            "period_end": _iso(r["period_end"]),
            "amount": _num(r["amount"], 2),
            "currency": r["currency"],
            "state": r["state"],
            "issued_at": _iso(r["issued_at"]),
        }
        for r in sorted(_unique(rows), key=lambda r: (r["period_start"], r["id"]))
    ]


def _usage(conn: Connection, subscriber_id: str, now: datetime) -> list[UsageRow]:
    """The line's usage summed per period and type (quantity in its unit, and what it was charged)."""
    u = usage
    rows = _rows(
        conn,
        select(
            u.c.period_start,
            u.c.usage_type,
            u.c.unit,
            u.c.currency,
            func.sum(u.c.quantity).label("quantity"),
            func.sum(u.c.amount).label("amount"),
        )
        .where(
            u.c.subscriber_id == subscriber_id, u.c.period_start >= (now - timedelta(days=USAGE_DAYS)).date()
        )
        .group_by(u.c.period_start, u.c.usage_type, u.c.unit, u.c.currency)
        .order_by(u.c.period_start, u.c.usage_type),
    )
    return [
        {
            "period_start": _iso(r["period_start"]),
            "usage_type": r["usage_type"],
            "unit": r["unit"],
            "currency": r["currency"],
            "quantity": _num(r["quantity"], 3),
            "amount": _num(r["amount"], 2),
        }
        for r in rows
    ]


def _drivers(text: str | None) -> list[ChurnDriver]:
    """Churn drivers stored as JSON text; anything unreadable is no drivers, never an error."""
    if not text:
        return []
    try:
        items = json.loads(text)
    except ValueError:
        return []
    out: list[ChurnDriver] = []
    for d in items if isinstance(items, list) else []:
        if isinstance(d, dict) and d.get("feature"):
            value = d.get("value")
            out.append(
                {
                    "feature": str(d["feature"]),
                    "value": value if isinstance(value, int | float | bool) or value is None else str(value),
                    "impact": _num(d.get("impact")) if isinstance(d.get("impact"), int | float) else None,
                }
            )
    return out


def _churn(conn: Connection, subscriber_id: str) -> Churn | None:
    s = subscriber_signals
    row = _latest(_rows(conn, select(s).where(s.c.subscriber_id == subscriber_id)), "scored_at")
    if row is None:
        return None
    return {
        "risk": _num(row["churn_risk"]),
        "drivers": _drivers(row["churn_drivers"]),
        "model_version": row["model_version"],
        "scored_at": _iso(row["scored_at"]),
        "sentiment_30d": _num(row["sentiment_30d"], 3),
        "tickets_30d": int(row["tickets_30d"] or 0),
        "negative_tickets_30d": int(row["negative_tickets_30d"] or 0),
    }


def _churn_events(conn: Connection, subscriber_id: str, names: Sequence[str]) -> list[ChurnEvent]:
    c = churn_events
    rows = _rows(
        conn,
        select(c.c.id, c.c.occurred_at, c.c.reason)
        .where(c.c.subscriber_id == subscriber_id)
        .order_by(c.c.occurred_at.desc(), c.c.id)
        .limit(HISTORY_LIMIT),
    )
    return [
        {"id": r["id"], "occurred_at": _iso(r["occurred_at"]), "reason": _said(r["reason"], names)}
        for r in _unique(rows)
    ]


def _offers(conn: Connection, subscriber_id: str) -> list[Offer]:
    o = offer_events
    rows = _rows(
        conn,
        select(o.c.id, o.c.offer, o.c.outcome, o.c.occurred_at)
        .where(o.c.subscriber_id == subscriber_id)
        .order_by(o.c.occurred_at.desc(), o.c.id)
        .limit(HISTORY_LIMIT),
    )
    return [
        {
            "id": r["id"],
            "offer": _text(r["offer"]),
            "outcome": r["outcome"],
            "occurred_at": _iso(r["occurred_at"]),
        }
        for r in _unique(rows)
    ]


def _actions(conn: Connection, subscriber_id: str) -> list[Action]:
    """What people did about this subscriber, from the audit log (unmasking included), newest first."""
    a = audit
    # The latest records by id, not by time: with an index on (target_type, target_id) the rows come
    # in id order straight from it; ordering by ``at`` would make SQLite walk ix_audit_at instead.
    rows = _rows(
        conn,
        select(a.c.id, a.c.at, a.c.actor, a.c.action, a.c.detail)
        .where(a.c.target_type == "subscriber", a.c.target_id == subscriber_id)
        .order_by(a.c.id.desc())
        .limit(HISTORY_LIMIT),
    )
    rows.sort(key=lambda r: (r["at"], r["id"]), reverse=True)
    return [
        {
            "id": r["id"],
            "at": _iso(r["at"]),
            "actor": _text(r["actor"]),
            "action": r["action"],
            "detail": json.loads(json.dumps(r["detail"], default=str)) if r["detail"] is not None else None,
        }
        for r in rows
    ]


# --- The timeline ------------------------------------------------------------------------------


def _event(
    time: str | None, kind: str, title: str, detail: str = "", link: str | None = None
) -> TimelineEvent | None:
    """The event, or None when it has no time: the timeline holds dated events only."""
    if not time:
        return None
    return {"time": time, "kind": kind, "title": title, "detail": detail, "link": link}


def _join(*parts: object) -> str:
    return " · ".join(str(p) for p in parts if p not in (None, ""))


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.0f}%"


def timeline(story: StoryParts) -> list[TimelineEvent]:
    """Every dated event of the story on one list, oldest first: time, kind, title, detail, link."""
    events: list[TimelineEvent | None] = []
    profile = story["profile"]
    if profile["activated_at"]:
        events.append(_event(profile["activated_at"], "activated", "Line activated", _join(profile["plan"])))
    for inc in story["incidents"]:
        detail = _join(
            inc["severity"],
            f"{len(inc['cells'])} of the subscriber's cells",
            f"{_pct(inc['impact'])} of its traffic degraded",
        )
        events.append(_event(inc["opened_at"], "incident", inc["title"], detail, inc["link"]))
        if inc["resolved_at"]:
            events.append(
                _event(
                    inc["resolved_at"],
                    "incident_resolved",
                    f"Resolved: {inc['title']}",
                    inc["state"],
                    inc["link"],
                )
            )
    for t in story["tickets"]:
        title = t["subject"] or "(no subject)"
        sentiment = None if t["sentiment"] is None else f"sentiment {t['sentiment']:+.2f}"
        events.append(
            _event(
                t["created_at"],
                "ticket",
                title,
                _join(t["channel"], t["status"], sentiment),
                t["incident_link"],
            )
        )
        for n in t["notes"]:
            events.append(
                _event(n["created_at"], "ticket_note", f"Note on {title}", _join(n["author"], n["text"]))
            )
        if t["resolved_at"]:
            events.append(
                _event(t["resolved_at"], "ticket_resolved", f"Ticket resolved: {title}", t["status"])
            )
    for b in story["bills"]:
        when = b["issued_at"] or (f"{b['period_end']}T00:00:00Z" if b["period_end"] else None)
        amount = _join(f"{b['amount']:,.2f}" if b["amount"] is not None else None, b["currency"])
        events.append(
            _event(when, "bill", f"Bill {b['period_start']} to {b['period_end']}", _join(amount, b["state"]))
        )
    for o in story["offers"]:
        events.append(_event(o["occurred_at"], "offer", f"Offer {o['offer']}", o["outcome"]))
    for c in story["churn_events"]:
        events.append(_event(c["occurred_at"], "churn", "Churned", _join(c["reason"])))
    for a in story["actions"]:
        events.append(_event(a["at"], "action", a["action"], _join(f"by {a['actor']}")))
    dated = [e for e in events if e is not None]
    return sorted(dated, key=lambda e: (e["time"], e["kind"], e["title"]))


# --- The story ---------------------------------------------------------------------------------


def subscriber_story(
    conn: Connection,
    subscriber_id: str,
    principal: Principal,
    *,
    now: datetime,
    days: int = 30,
    kpis: KpiSelection | None = None,
) -> Story | None:
    """Everything known about one subscriber, masked for ``principal`` and its free text redacted
    (for every role: :func:`reveal` after an audited unmask restores the personal fields, not the
    text); None when there is none.

    ``days`` is the window of the experienced KPIs; ``kpis`` the KPIs to read, best as their
    definitions (:func:`experienced_kpis`), which read each by its aggregate; names read each as the
    mean of its samples, and None every KPI the cells report (and, before the oldest raw sample kept,
    the roll-ups of those only). Other history is the subscriber's whole, up to ``HISTORY_LIMIT``
    rows a list.
    """
    days = max(1, min(int(days), 366))
    profile = _profile(conn, subscriber_id, now)
    if profile is None:
        return None
    account, names = _account(conn, profile["account_id"])
    serving = _cells(conn, subscriber_id)
    shares = {c["cell_id"]: float(c["share"] or 0.0) for c in serving}
    step = kpi_step_minutes(days)
    since = now - timedelta(days=days)
    parts: StoryParts = {
        "id": profile["id"],
        "link": subscriber_link(profile["id"]),
        "as_of": _iso(now),
        "privacy": {"masked": True, "role": principal.role, "may_unmask": principal.may_unmask},
        "profile": protect(profile, principal),
        "account": protect(account, principal) if account is not None else None,
        "services": _services(conn, subscriber_id, profile["account_id"]),
        "cells": serving,
        "kpis": {
            "since": _iso(since),
            "until": _iso(now),
            "step_minutes": step,
            "series": _experienced_kpis(
                conn, subscriber_id, cell_ids=list(shares), since=since, until=now, step=step, kpis=kpis
            )
            if serving
            else [],
        },
        "incidents": _incidents(conn, shares),
        "tickets": _tickets(conn, subscriber_id, profile["account_id"], names),
        "bills": _bills(conn, profile["account_id"]),
        "usage": _usage(conn, subscriber_id, now),
        "churn": _churn(conn, subscriber_id),
        "churn_events": _churn_events(conn, subscriber_id, names),
        "offers": _offers(conn, subscriber_id),
        "actions": _actions(conn, subscriber_id),
    }
    return {**parts, "timeline": timeline(parts)}


def reveal(story: Story, clear: Mapping[str, Any]) -> Story:
    """The story with the clear values :func:`dashboard.privacy.unmask` gave in place of the masked ones."""
    out = story.copy()
    profile = story["profile"].copy()
    profile["msisdn"] = clear.get("msisdn")
    out["profile"] = profile
    account = story["account"]
    if account is not None:
        # Field by field, so each is checked against Account: a field added to PERSONAL_FIELDS in
        # dashboard.privacy stays masked until it is named here too. An account known only by its
        # lines gains the keys.
        revealed = account.copy()
        revealed["contact_name"] = clear.get("contact_name")
        revealed["contact_email"] = clear.get("contact_email")
        revealed["contact_phone"] = clear.get("contact_phone")
        revealed["contact_address"] = clear.get("contact_address")
        out["account"] = revealed
    privacy = story["privacy"].copy()
    privacy["masked"] = False
    out["privacy"] = privacy
    return out
