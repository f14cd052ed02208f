"""Read queries the pages run against the store: SQLAlchemy Core, aggregated in the database.

Every function takes an open ``Connection`` and returns plain values or DataFrames; none caches,
so each page visit and each refresh sees the store as it is. Times are naive UTC, as stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Select, func, literal, or_, select

from dashboard.ingest.runner import PUSH_STREAM
from dashboard.store.schema import (
    alarms,
    bills,
    connector_runs,
    connector_state,
    incidents,
    quarantine,
    subscribers,
    tickets,
)

#: Incident states that are over; every other state counts as open.
CLOSED_INCIDENT_STATES = ("resolved", "closed", "merged")
#: Run statuses that delivered data: a partial run stored its good records.
SUCCESS_STATUSES = ("success", "partial")
SEVERITY_ORDER = ("critical", "major", "minor", "warning", "indeterminate")


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_bounds(now: datetime) -> tuple[date, date]:
    """First day of ``now``'s month and first day of the next month."""
    first = now.date().replace(day=1)
    nxt = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return first, nxt


def _frame(conn: Connection, stmt: Select[Any]) -> pd.DataFrame:
    result = conn.execute(stmt)
    return pd.DataFrame.from_records([tuple(r) for r in result.fetchall()], columns=list(result.keys()))


# --- Overview ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    """The headline numbers of the strip and the wall, read at ``as_of``."""

    active_alarms: int
    open_incidents: int
    tickets_today: int
    active_subscribers: int
    revenue_month: float
    currency: str
    as_of: datetime

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Overview:
        return cls(**{**data, "as_of": datetime.fromisoformat(data["as_of"])})


def overview(conn: Connection, *, now: datetime, currency: str) -> Overview:
    """The five headline numbers in one round trip.

    Revenue is what was billed in ``now``'s month: bills issued this month (or, when a source gives
    no issue time, whose period starts this month), in ``currency`` or none given; bills in other
    currencies are not converted, so not summed. Operators bill a month after it ends, so this is
    last month's usage billed now, not a forecast.
    """
    first, nxt = month_bounds(now)
    n_alarms = select(func.count()).select_from(alarms).where(alarms.c.state != "cleared")
    n_incidents = (
        select(func.count()).select_from(incidents).where(incidents.c.state.not_in(CLOSED_INCIDENT_STATES))
    )
    n_tickets = select(func.count()).select_from(tickets).where(tickets.c.created_at >= start_of_day(now))
    n_subscribers = select(func.count()).select_from(subscribers).where(subscribers.c.status == "active")
    billed = func.coalesce(bills.c.issued_at, bills.c.period_start)
    revenue = select(func.coalesce(func.sum(bills.c.amount), 0.0)).where(
        billed >= first,
        billed < nxt,
        or_(bills.c.currency.is_(None), bills.c.currency == currency),
    )
    row = conn.execute(
        select(
            n_alarms.scalar_subquery().label("alarms"),
            n_incidents.scalar_subquery().label("incidents"),
            n_tickets.scalar_subquery().label("tickets"),
            n_subscribers.scalar_subquery().label("subscribers"),
            revenue.scalar_subquery().label("revenue"),
        )
    ).one()
    return Overview(
        active_alarms=int(row.alarms),
        open_incidents=int(row.incidents),
        tickets_today=int(row.tickets),
        active_subscribers=int(row.subscribers),
        revenue_month=float(row.revenue),
        currency=currency,
        as_of=now,
    )


def active_alarms_by_severity(conn: Connection) -> dict[str, int]:
    """Count of alarms not cleared, per severity, every known severity present (0 if none)."""
    rows = conn.execute(
        select(alarms.c.severity, func.count().label("n"))
        .where(alarms.c.state != "cleared")
        .group_by(alarms.c.severity)
    ).all()
    found = {str(r.severity): int(r.n) for r in rows}
    out = {sev: found.pop(sev, 0) for sev in SEVERITY_ORDER}
    out.update(found)
    return out


# --- Incidents -----------------------------------------------------------------------------


# --- KPIs ----------------------------------------------------------------------------------


# --- Sources -------------------------------------------------------------------------------

PUSH_COLUMNS = [
    "last_push_at",
    "last_push_status",
    "push_requests",
    "push_records_in",
    "push_upserted",
    "push_quarantined",
]

RUN_SUMMARY_COLUMNS = [
    "connector",
    "last_run_id",
    "last_status",
    "last_started_at",
    "last_finished_at",
    "last_records_in",
    "last_upserted",
    "last_quarantined",
    "last_error",
    "last_retriable",
    "last_next_attempt_at",
    "last_success_at",
    "runs_24h",
    "records_in_24h",
    "upserted_24h",
    "quarantined_24h",
    *PUSH_COLUMNS,
]


def push_activity(conn: Connection) -> pd.DataFrame:
    """Per connector with listener endpoints: its last pushed event and cumulative push counts.

    The web process keeps these in ``connector_state`` under the stream ``push`` (see
    ``dashboard.push``); a connector that never received a push has no row.
    """
    rows = conn.execute(
        select(connector_state.c.connector, connector_state.c.state).where(
            connector_state.c.stream == PUSH_STREAM
        )
    ).all()
    out = []
    for name, state in rows:
        state = state or {}
        out.append(
            {
                "connector": name,
                "last_push_at": pd.Timestamp(state["last_event_at"]) if state.get("last_event_at") else None,
                "last_push_status": state.get("last_status"),
                "push_requests": int(state.get("requests", 0)),
                "push_records_in": int(state.get("records_in", 0)),
                "push_upserted": int(state.get("upserted", 0)),
                "push_quarantined": int(state.get("quarantined", 0)),
            }
        )
    return pd.DataFrame(out, columns=["connector", *PUSH_COLUMNS])


def run_summaries(conn: Connection, *, now: datetime) -> pd.DataFrame:
    """One row per connector seen in ``connector_runs`` or pushed to: last run, last success,
    last-24h totals and push activity."""
    r = connector_runs.c
    last_id = select(r.connector, func.max(r.id).label("last_run_id")).group_by(r.connector).subquery()
    last = _frame(
        conn,
        select(
            r.connector,
            r.id.label("last_run_id"),
            r.status.label("last_status"),
            r.started_at.label("last_started_at"),
            r.finished_at.label("last_finished_at"),
            r.records_in.label("last_records_in"),
            r.upserted.label("last_upserted"),
            r.quarantined.label("last_quarantined"),
            r.error.label("last_error"),
            r.retriable.label("last_retriable"),
            r.next_attempt_at.label("last_next_attempt_at"),
        ).join(last_id, last_id.c.last_run_id == r.id),
    )
    success = _frame(
        conn,
        select(r.connector, func.max(r.finished_at).label("last_success_at"))
        .where(r.status.in_(SUCCESS_STATUSES))
        .group_by(r.connector),
    )
    day = _frame(
        conn,
        select(
            r.connector,
            func.count().label("runs_24h"),
            func.coalesce(func.sum(r.records_in), 0).label("records_in_24h"),
            func.coalesce(func.sum(r.upserted), 0).label("upserted_24h"),
            func.coalesce(func.sum(r.quarantined), 0).label("quarantined_24h"),
        )
        .where(r.started_at >= now - timedelta(hours=24))
        .group_by(r.connector),
    )
    out = (
        last.merge(success, on="connector", how="left")
        .merge(day, on="connector", how="left")
        .merge(push_activity(conn), on="connector", how="outer")
    )
    for col in ("runs_24h", "records_in_24h", "upserted_24h", "quarantined_24h"):
        out[col] = out[col].fillna(0).astype(int)
    return out[RUN_SUMMARY_COLUMNS].sort_values("connector", ignore_index=True)


def recent_runs(conn: Connection, connector: str, *, limit: int = 20) -> pd.DataFrame:
    """The latest runs of one connector, newest first."""
    r = connector_runs.c
    return _frame(
        conn,
        select(
            r.id,
            r.status,
            r.started_at,
            r.finished_at,
            r.records_in,
            r.upserted,
            r.quarantined,
            r.error,
            r.retriable,
            r.next_attempt_at,
        )
        .where(r.connector == connector)
        .order_by(r.started_at.desc(), r.id.desc())
        .limit(limit),
    )


@dataclass(frozen=True)
class QuarantinePage:
    rows: pd.DataFrame
    total: int
    offset: int
    limit: int


def quarantine_facets(conn: Connection) -> tuple[list[str], list[str]]:
    """The connectors and record kinds present in quarantine, for the filters."""
    q = quarantine.c
    connectors = [
        str(c) for c in conn.execute(select(q.connector).distinct().order_by(q.connector)).scalars()
    ]
    kinds = [
        str(k)
        for k in conn.execute(select(q.kind).distinct().where(q.kind.is_not(None)).order_by(q.kind)).scalars()
    ]
    return connectors, kinds


def quarantine_page(
    conn: Connection,
    *,
    connector: str | None = None,
    kind: str | None = None,
    search: str | None = None,
    offset: int = 0,
    limit: int = 50,
    raw_chars: int = 2000,
    search_reasons: bool = False,
) -> QuarantinePage:
    """One page of quarantined records, newest first, filtered; ``raw`` cut to ``raw_chars``.

    ``search`` matches record ids; reasons (which may quote a refused value, a phone number say)
    only with ``search_reasons``, for roles that may see personal data: otherwise the search would
    tell a viewer what the redacted preview hides, a character at a time."""
    q = quarantine.c
    conds: list[Any] = []
    if connector:
        conds.append(q.connector == connector)
    if kind:
        conds.append(q.kind == kind)
    if search and search.strip():
        needle = (
            "%" + search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        by_id = func.lower(func.coalesce(q.record_id, literal(""))).like(needle, escape="\\")
        conds.append(or_(func.lower(q.reason).like(needle, escape="\\"), by_id) if search_reasons else by_id)
    total = int(conn.execute(select(func.count()).select_from(quarantine).where(*conds)).scalar_one())
    rows = _frame(
        conn,
        select(
            q.id,
            q.received_at,
            q.connector,
            q.stream,
            q.kind,
            q.record_id,
            q.reason,
            func.substr(q.raw, 1, raw_chars).label("raw"),
            func.length(q.raw).label("raw_length"),
            q.run_id,
        )
        .where(*conds)
        .order_by(q.received_at.desc(), q.id.desc())
        .offset(max(offset, 0))
        .limit(limit),
    )
    return QuarantinePage(rows=rows, total=total, offset=offset, limit=limit)


def quarantined_raw(conn: Connection, record_id: int) -> str | None:
    """The whole raw payload of one quarantined record."""
    value = conn.execute(select(quarantine.c.raw).where(quarantine.c.id == record_id)).scalar_one_or_none()
    return None if value is None else str(value)
