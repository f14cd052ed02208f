"""One queue refresh: correlate new alarms, update value aggregates and impact, rank, store the queue.

The ranked queue is written to ``incident_queue`` in one transaction, so the Incidents page, the
wall and ``/api/v1/incidents`` read a consistent snapshot with a single indexed query; the browser
counts SLA clocks down from the stored deadlines between refreshes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, insert, select

from dashboard.incidents.correlate import ENGINE_SOURCE, CorrelationSummary, correlate
from dashboard.incidents.impact import refresh_impact
from dashboard.incidents.scoring import ACTIVE, account_clocks, incident_metrics, rank_incidents
from dashboard.incidents.value import ValueRefresh, refresh_values
from dashboard.ingest.runner import save_state
from dashboard.kpis import Scoring
from dashboard.store.db import Store, read_frame
from dashboard.store.schema import (
    accounts,
    alarms,
    cell_account_value,
    cell_value,
    incident_alarms,
    incident_cells,
    incident_queue,
    incidents,
)

_CHUNK = 5_000
STATE_KEY = ("vantage", "queue")
QUEUE_STATES = ("open", "acknowledged", "resolved")


@dataclass(frozen=True)
class QueueRefresh:
    correlation: CorrelationSummary
    values: ValueRefresh
    measured: int
    queued: int
    active: int
    timings_ms: dict[str, float] = field(default_factory=dict)


def _utcnow() -> datetime:
    from dashboard.ingest.runner import utcnow

    return utcnow()


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    return read_frame(conn, stmt)


def _in_chunks(conn: Connection, stmt: Any, col: Any, values: list[str]) -> pd.DataFrame:
    frames = [_frame(conn, stmt.where(col.in_(part))) for part in _chunks(values)]
    if not frames:
        return _frame(conn, stmt.where(col.in_([])))
    return pd.concat(frames, ignore_index=True)


def queue_incidents(conn: Connection) -> pd.DataFrame:
    i = incidents
    return _frame(
        conn,
        select(
            i.c.id,
            i.c.severity,
            i.c.state,
            i.c.opened_at,
            i.c.resolved_at,
            i.c.title,
            i.c.region_id,
            i.c.owner,
        ).where(i.c.source == ENGINE_SOURCE, i.c.state.in_(QUEUE_STATES)),
    )


def _alarm_resources(conn: Connection, ids: list[str]) -> dict[str, set[str]]:
    """incident -> resources of its active alarms (of all its alarms when none is active)."""
    stmt = select(
        incident_alarms.c.incident_id,
        alarms.c.resource_id,
        alarms.c.alarmed_object,
        alarms.c.id,
        alarms.c.cleared_at,
    ).join(alarms, alarms.c.id == incident_alarms.c.alarm_id)
    rows = _in_chunks(
        conn, stmt.where(incident_alarms.c.source == ENGINE_SOURCE), incident_alarms.c.incident_id, ids
    )
    active: dict[str, set[str]] = defaultdict(set)
    every: dict[str, set[str]] = defaultdict(set)
    for r in rows.itertuples(index=False):
        res = r.resource_id or r.alarmed_object or f"alarm:{r.id}"
        every[r.incident_id].add(res)
        if r.cleared_at is None or pd.isna(r.cleared_at):
            active[r.incident_id].add(res)
    return {i: active.get(i) or every.get(i, set()) for i in ids}


def rank_from_store(conn: Connection, scoring: Scoring, *, now: datetime, currency: str) -> pd.DataFrame:
    """Measure impact and rank the queue incidents (no writes to the queue itself)."""
    incs = queue_incidents(conn)
    act = incs[incs["state"].isin(ACTIVE)]
    resources = _alarm_resources(conn, act["id"].tolist())
    opened = dict(zip(act["id"], act["opened_at"], strict=True))
    refresh_impact(conn, {i: (opened[i], resources.get(i, set())) for i in opened}, scoring.impact, now=now)
    ic = incident_cells
    cells = _in_chunks(
        conn, select(ic.c.incident_id, ic.c.cell_id, ic.c.degraded_share), ic.c.incident_id, list(opened)
    )
    cell_ids = sorted(cells["cell_id"].unique()) if not cells.empty else []
    values = _in_chunks(conn, select(cell_value), cell_value.c.cell_id, cell_ids)
    acct_cells = _in_chunks(
        conn,
        select(
            cell_account_value.c.cell_id,
            cell_account_value.c.account_id,
            cell_account_value.c.lines,
            cell_account_value.c.arpu,
            cell_account_value.c.services,
        ),
        cell_account_value.c.cell_id,
        cell_ids,
    )
    acc_ids = sorted(acct_cells["account_id"].unique()) if not acct_cells.empty else []
    acc = _in_chunks(
        conn,
        select(
            accounts.c.id,
            accounts.c.name,
            accounts.c.segment,
            accounts.c.vip,
            accounts.c.sla_restore_minutes,
            accounts.c.penalty_per_hour,
        ),
        accounts.c.id,
        acc_ids,
    ).drop_duplicates("id")
    metrics = incident_metrics(cells, values, scoring)
    clocks = account_clocks(cells, acct_cells, acc, opened, scoring, now=now)
    return rank_incidents(incs, metrics, clocks, scoring, now=now, currency=currency)


_QUEUE_COLS = [c.name for c in incident_queue.columns]


def _queue_rows(ranked: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    df = ranked.rename(columns={"id": "incident_id"}).copy()
    df["computed_at"] = now
    rows = []
    for rec in df.to_dict("records"):
        row = {c: rec.get(c) for c in _QUEUE_COLS}
        for k, v in row.items():
            if v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
                row[k] = None
            elif isinstance(v, pd.Timestamp):
                row[k] = v.to_pydatetime()
            elif hasattr(v, "item"):
                row[k] = v.item()
        row["rank"] = None if row["rank"] is None else int(row["rank"])
        rows.append(row)
    return rows


def _small_statements(conn: Connection) -> None:
    """PostgreSQL's JIT compiles for longer than these short statements run: off for this transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def refresh_queue(
    store: Store, scoring: Scoring, *, now: datetime | None = None, currency: str = "EUR"
) -> QueueRefresh:
    """Correlate, aggregate, measure, rank and store the queue; each step in its own transaction."""
    now = now or _utcnow()
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    with store.begin() as conn:
        _small_statements(conn)
        corr = correlate(conn, scoring.correlation, now=now)
    t["correlate_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    with store.begin() as conn:
        _small_statements(conn)
        vals = refresh_values(conn, now=now)
    t["values_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    with store.begin() as conn:
        _small_statements(conn)
        ranked = rank_from_store(conn, scoring, now=now, currency=currency)
        t["rank_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        conn.execute(delete(incident_queue))
        rows = _queue_rows(ranked, now)
        if rows:
            conn.execute(insert(incident_queue), rows)
        n_active = int(ranked["rank"].notna().sum()) if len(ranked) else 0
        # When the queue was last computed, also when it is empty (pages show it).
        save_state(
            conn,
            *STATE_KEY,
            {"computed_at": now.isoformat(), "queued": len(rows), "active": n_active},
            now=now,
        )
    t["write_ms"] = (time.perf_counter() - t0) * 1000
    return QueueRefresh(corr, vals, 0, len(ranked), n_active, t)
