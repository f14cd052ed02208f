"""Whom a playbook step addresses: the incidents that fire it and the customers, lines and account
managers they hit, read from the store in bulk (one statement per kind per evaluation)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from dashboard.store.schema import (
    account_signals,
    accounts,
    alarms,
    audit,
    incident_alarms,
    incident_cells,
    incident_queue,
    kpi_status,
    line_exposures,
    subscriber_cells,
    subscriber_signals,
    subscribers,
)
from dashboard.store.schema import incidents as incidents_table

#: A line is hit by an incident when at least this share of its traffic is on a cell the incident
#: degrades by at least MIN_DEGRADED (incident_cells.degraded_share).
MIN_SHARE = 0.2
MIN_DEGRADED = 0.2
#: Resolved incidents stay this long in reach of incident_resolved playbooks.
RESOLVED_REACH_S = 86400.0
SEVERITY_RANK = {"warning": 1, "minor": 2, "major": 3, "critical": 4}
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def queue_incidents(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """The queue's incidents (open, acknowledged and recently resolved) as condition contexts."""
    q = incident_queue.c
    rows = conn.execute(select(incident_queue).order_by(q.rank.is_(None), q.rank)).mappings().all()
    out = []
    for r in rows:
        resolved = r["resolved_at"]
        if resolved is not None and (now - resolved).total_seconds() > RESOLVED_REACH_S:
            continue
        deadline = r["sla_deadline"]
        left = None if deadline is None else (deadline - now).total_seconds() / 60
        end = resolved or now
        if r["sla_breached"]:
            sla_state = "breached"
        elif deadline is not None:
            sla_state = "running"
        else:
            sla_state = "none"
        out.append(
            {
                "id": r["incident_id"],
                "title": r["title"],
                "severity": r["severity"],
                "severity_rank": SEVERITY_RANK.get(r["severity"], 0),
                "state": r["state"],
                "kind": r["kind"] or "alarm",
                "rank": r["rank"],
                "score": r["score"],
                "region": r["region_id"],
                "opened_at": r["opened_at"],
                "resolved_at": resolved,
                "duration_minutes": (end - r["opened_at"]).total_seconds() / 60,
                "lines": r["lines"],
                "consumer_lines": r["consumer_lines"],
                "smb_lines": r["smb_lines"],
                "enterprise_lines": r["enterprise_lines"],
                "vip_lines": r["vip_lines"],
                "accounts": r["accounts"],
                "value": r["value"],
                "revenue_at_risk": r["revenue_at_risk_per_hour"],
                "penalty_per_hour": r["penalty_per_hour"],
                "sla_accounts": r["sla_accounts"],
                "sla_breached": r["sla_breached"],
                "sla_deadline": deadline,
                "sla_minutes_left": left,
                "sla_state": sla_state,
                "sentiment": r["sentiment"],
                "churn_risk": r["churn_risk"],
                "reason": r["reason"],
                "owner": r["owner"],
            }
        )
    _upstream(conn, out)
    return out


#: Sources whose alarms are Vantage's own (correlation, detection): never acknowledged upstream.
_OWN_SOURCES = ("vantage", "vantage-detect")


def _upstream(conn: Connection, incidents: list[dict[str, Any]]) -> None:
    """Add to each incident its upstream alarms, its ticket and who acknowledged it in Vantage."""
    by_id = {i["id"]: i for i in incidents}
    for inc in incidents:
        inc.update(alarm_ids=[], upstream_alarms=0, ticket_id=None, acked_at=None, acked_by=None)
    ids = list(by_id)
    ia, al, inc_t, au = incident_alarms.c, alarms.c, incidents_table.c, audit.c
    for chunk in _chunks(ids):
        for r in conn.execute(
            select(ia.incident_id, al.id)
            .join(alarms, al.id == ia.alarm_id)
            .where(ia.incident_id.in_(chunk), al.source.not_in(_OWN_SOURCES))
            .order_by(ia.incident_id, al.id)
        ):
            by_id[r.incident_id]["alarm_ids"].append(r.id)
            by_id[r.incident_id]["upstream_alarms"] += 1
        for t in conn.execute(
            select(inc_t.id, inc_t.ticket_id, inc_t.acked_at).where(
                inc_t.id.in_(chunk), inc_t.source == "vantage"
            )
        ):
            by_id[t.id].update(ticket_id=t.ticket_id, acked_at=t.acked_at)
        acked = [i for i in chunk if by_id[i]["acked_at"] is not None]
        if acked:
            for who in conn.execute(
                select(au.target_id, au.actor)
                .where(
                    au.action == "incident.acknowledge", au.target_type == "incident", au.target_id.in_(acked)
                )
                .order_by(au.at)
            ):
                by_id[who.target_id]["acked_by"] = who.actor


def kpi_changes(conn: Connection, kpi: str, statuses: Sequence[str]) -> list[dict[str, Any]]:
    """The series of ``kpi`` whose current status is one of ``statuses``, as event contexts."""
    k = kpi_status.c
    rows = conn.execute(
        select(k.kpi, k.level, k.entity_id, k.status, k.value, k.since).where(
            k.kpi == kpi, k.status.in_(list(statuses))
        )
    ).all()
    return [
        {
            "id": f"kpi:{r.kpi}:{r.level}:{r.entity_id}:{r.since.isoformat() if r.since else ''}",
            "name": r.kpi,
            "status": r.status,
            "level": r.level,
            "entity": r.entity_id,
            "value": r.value,
            "since": r.since,
        }
        for r in rows
    ]


def affected_lines(conn: Connection, incident_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """incident id -> the lines it hits, each with its account, value and churn signals."""
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in incident_ids}
    ic, sc = incident_cells.c, subscriber_cells.c
    for chunk in _chunks(list(incident_ids)):
        hit = (
            select(ic.incident_id, sc.subscriber_id, func.max(sc.share).label("share"))
            .join(subscriber_cells, sc.cell_id == ic.cell_id)
            .where(ic.incident_id.in_(chunk), ic.degraded_share >= MIN_DEGRADED, sc.share >= MIN_SHARE)
            .group_by(ic.incident_id, sc.subscriber_id)
            .subquery()
        )
        s, sig = subscribers.c, subscriber_signals.c
        rows = conn.execute(
            select(
                hit.c.incident_id,
                hit.c.subscriber_id,
                s.account_id,
                s.msisdn,
                s.plan,
                s.arpu,
                s.activated_at,
                s.status,
                sig.churn_risk,
                sig.sentiment_30d,
            )
            .join(subscribers, s.id == hit.c.subscriber_id)
            .outerjoin(subscriber_signals, sig.subscriber_id == hit.c.subscriber_id)
        ).all()
        for r in rows:
            if r.status == "churned":
                continue
            out[r.incident_id].append(
                {
                    "id": r.subscriber_id,
                    "account_id": r.account_id,
                    "msisdn": r.msisdn,
                    "plan": r.plan,
                    "arpu": r.arpu,
                    "activated_at": r.activated_at,
                    "churn_risk": r.churn_risk,
                    "sentiment": r.sentiment_30d,
                }
            )
    return out


def exposed_lines(conn: Connection, incident_id: str) -> list[dict[str, Any]]:
    """The lines an incident hit while it was open (``line_exposures``), for once its cells are gone
    from the queue (a resolved incident), in the shape of :func:`affected_lines`."""
    e, s, sig = line_exposures.c, subscribers.c, subscriber_signals.c
    rows = conn.execute(
        select(
            e.subscriber_id,
            s.account_id,
            s.msisdn,
            s.plan,
            s.arpu,
            s.activated_at,
            s.status,
            sig.churn_risk,
            sig.sentiment_30d,
        )
        .join(subscribers, s.id == e.subscriber_id)
        .outerjoin(subscriber_signals, sig.subscriber_id == e.subscriber_id)
        .where(e.incident_id == incident_id)
    ).all()
    return [
        {
            "id": r.subscriber_id,
            "account_id": r.account_id,
            "msisdn": r.msisdn,
            "plan": r.plan,
            "arpu": r.arpu,
            "activated_at": r.activated_at,
            "churn_risk": r.churn_risk,
            "sentiment": r.sentiment_30d,
        }
        for r in rows
        if r.status != "churned"
    ]


def account_rows(conn: Connection, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """account id -> its fields and signals (contacts included: the caller masks nothing, it sends)."""
    ids = sorted(set(account_ids))
    a, sig = accounts.c, account_signals.c
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(
            select(
                a.id,
                a.name,
                a.segment,
                a.vip,
                a.account_manager,
                a.sla_restore_minutes,
                a.penalty_per_hour,
                a.contact_name,
                a.contact_email,
                a.contact_phone,
                sig.churn_risk_mean,
                sig.sentiment_30d,
            )
            .outerjoin(account_signals, sig.account_id == a.id)
            .where(a.id.in_(chunk))
        ).all()
        for r in rows:
            out[r.id] = {
                "id": r.id,
                "name": r.name,
                "segment": r.segment,
                "vip": bool(r.vip),
                "account_manager": r.account_manager,
                "sla_restore_minutes": r.sla_restore_minutes,
                "penalty_per_hour": r.penalty_per_hour,
                "contact_name": r.contact_name,
                "contact_email": r.contact_email,
                "contact_phone": r.contact_phone,
                "churn_risk": r.churn_risk_mean,
                "sentiment": r.sentiment_30d,
            }
    return out


def crossed_lines(conn: Connection, band: float, since: datetime) -> list[dict[str, Any]]:
    """Lines an incident hit since ``since`` whose churn risk was below ``band`` then and is at or
    above it now, with the incident that hit them (the latest, when several did)."""
    e, sig, s = line_exposures.c, subscriber_signals.c, subscribers.c
    rows = conn.execute(
        select(
            e.subscriber_id,
            e.incident_id,
            e.account_id,
            e.risk_at_hit,
            e.hit_at,
            sig.churn_risk,
            sig.sentiment_30d,
            s.msisdn,
            s.plan,
            s.arpu,
            s.activated_at,
            s.status,
        )
        .join(subscriber_signals, sig.subscriber_id == e.subscriber_id)
        .join(subscribers, s.id == e.subscriber_id)
        .where(
            e.hit_at >= since,
            sig.churn_risk >= band,
            and_(e.risk_at_hit.is_not(None), e.risk_at_hit < band),
        )
        .order_by(e.subscriber_id, e.hit_at.desc())
    ).all()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in rows:
        if r.subscriber_id in seen or r.status == "churned":
            continue
        seen.add(r.subscriber_id)
        out.append(
            {
                "id": r.subscriber_id,
                "incident_id": r.incident_id,
                "account_id": r.account_id,
                "risk_at_hit": r.risk_at_hit,
                "hit_at": r.hit_at,
                "churn_risk": r.churn_risk,
                "sentiment": r.sentiment_30d,
                "msisdn": r.msisdn,
                "plan": r.plan,
                "arpu": r.arpu,
                "activated_at": r.activated_at,
            }
        )
    return out
