"""One queue refresh: correlate new alarms, update value aggregates and impact, rank, store the queue.

The ranked queue is written to ``incident_queue`` in one transaction, so the Incidents page, the
wall and ``/api/v1/incidents`` read a consistent snapshot with a single indexed query; the browser
counts SLA clocks down from the stored deadlines between refreshes.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import pandas as pd
from sqlalchemy import Connection, and_, delete, func, insert, select

from dashboard.incidents.correlate import ENGINE_SOURCE, CorrelationSummary, correlate
from dashboard.incidents.impact import refresh_impact
from dashboard.incidents.scoring import (
    ACTIVE,
    ClockSummary,
    clock_inputs,
    incident_metrics,
    rank_incidents,
    summarize_clocks,
)
from dashboard.incidents.value import ValueRefresh, refresh_values
from dashboard.ingest.runner import load_state, save_state
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
    topology_edges,
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
    cleared = rows["cleared_at"].isna().tolist()
    for inc_id, resource, obj, alarm_id, is_active in zip(
        rows["incident_id"].tolist(),
        rows["resource_id"].tolist(),
        rows["alarmed_object"].tolist(),
        rows["id"].tolist(),
        cleared,
        strict=True,
    ):
        res = resource or obj or f"alarm:{alarm_id}"
        every[inc_id].add(res)
        if is_active:
            active[inc_id].add(res)
    return {i: active.get(i) or every.get(i, set()) for i in ids}


def rank_from_store(
    conn: Connection,
    scoring: Scoring,
    *,
    now: datetime,
    currency: str,
    memory: QueueMemory | None = None,
    values: ValueRefresh | None = None,
) -> pd.DataFrame:
    """Measure impact and rank the queue incidents (no writes to the queue itself).

    With ``memory`` (valid for this store, see :func:`refresh_queue`) and the value pass that just ran,
    only the incidents whose cells, shares, cells' aggregates or opening time changed are measured
    again; the others keep their remembered metrics and SLA clock inputs. Without, all are measured.
    """
    incs = queue_incidents(conn)
    act = incs[incs["state"].isin(ACTIVE)]
    resources = _alarm_resources(conn, act["id"].tolist())
    opened = dict(zip(act["id"], act["opened_at"], strict=True))
    below = memory.below if memory is not None else None
    changed: set[str] = set()
    refresh_impact(
        conn,
        {i: (opened[i], resources.get(i, set())) for i in opened},
        scoring.impact,
        now=now,
        below_memo=below,
        changed=changed,
    )
    if memory is None or values is None or values.full or memory.metrics is None:
        if memory is not None:
            memory.inputs = CellInputs()
        metrics, clocks = _measure(conn, scoring, opened, None, memory.inputs if memory else CellInputs())
        if memory is not None:
            memory.metrics, memory.clocks, memory.opened = metrics, clocks, opened
            memory.last_redo = len(opened)
    else:
        assert memory.metrics is not None and memory.clocks is not None
        redo = changed | {i for i, t in opened.items() if memory.opened.get(i) != t}
        if values.touched:
            redo |= _incidents_on(conn, sorted(values.touched)) & opened.keys()
            memory.inputs.forget(values.touched)
        gone = memory.opened.keys() - opened.keys()
        drop = redo | gone
        metrics = memory.metrics[~memory.metrics.index.isin(drop)]
        clocks = memory.clocks.without(drop)
        if redo:
            new_metrics, new_clocks = _measure(conn, scoring, opened, sorted(redo), memory.inputs)
            metrics = _concat([metrics, new_metrics], metrics)
            clocks = ClockSummary.join([clocks, new_clocks])
        memory.metrics, memory.clocks, memory.opened = metrics, clocks, opened
        memory.last_redo = len(redo)
        memory.inputs.prune(gone)
    return rank_incidents(incs, metrics, clocks, scoring, now=now, currency=currency)


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame | None = None) -> pd.DataFrame:
    keep = [f for f in frames if not f.empty]
    if not keep:
        return (empty if empty is not None else frames[0]).iloc[0:0]
    return keep[0] if len(keep) == 1 else pd.concat(keep)


def _incidents_on(conn: Connection, cells: list[str]) -> set[str]:
    """Incidents with rows in ``incident_cells`` on any of ``cells``."""
    ic = incident_cells
    out: set[str] = set()
    for part in _chunks(cells):
        out.update(
            r[0] for r in conn.execute(select(ic.c.incident_id).where(ic.c.cell_id.in_(part)).distinct())
        )
    return out


_ACCOUNT_COLS = ["id", "name", "segment", "vip", "sla_restore_minutes", "penalty_per_hour"]


class CellInputs:
    """The aggregates (``cell_value``, ``cell_account_value`` and the accounts on them) of the cells
    of the active incidents, read once and kept: a refresh reads again only the cells whose
    aggregates the value pass recomputed and the cells it has not seen yet.
    """

    def __init__(self) -> None:
        self.values: pd.DataFrame | None = None
        self.acct_cells: pd.DataFrame | None = None
        self.accounts: pd.DataFrame | None = None
        self.known: set[str] = set()
        self.by_incident: dict[str, set[str]] = {}  # the cells each measured incident had

    def forget(self, cells: Iterable[str]) -> None:
        gone = self.known & set(cells)
        if gone and self.values is not None and self.acct_cells is not None:
            self.values = self.values[~self.values["cell_id"].isin(list(gone))]
            self.acct_cells = self.acct_cells[~self.acct_cells["cell_id"].isin(list(gone))]
            self.known -= gone

    def prune(self, incidents_gone: Iterable[str]) -> None:
        for i in incidents_gone:
            self.by_incident.pop(i, None)
        live: set[str] = set().union(*self.by_incident.values()) if self.by_incident else set()
        if len(self.known) > 2 * len(live) + 1000:
            self.forget(self.known - live)

    def load(self, conn: Connection, cells: list[str] | None, scope: Any = None) -> None:
        """Read the aggregates of ``cells`` (or of the cells ``scope`` selects), replacing any kept."""
        cav = cell_account_value
        acct_cols = select(cav.c.cell_id, cav.c.account_id, cav.c.lines, cav.c.arpu, cav.c.services)
        acc_cols = select(*[accounts.c[c] for c in _ACCOUNT_COLS])
        if cells is not None:
            self.forget(cells)
            values = _in_chunks(conn, select(cell_value), cell_value.c.cell_id, cells)
            acct_cells = _in_chunks(conn, acct_cols, cav.c.cell_id, cells)
            acc_ids = sorted(set(acct_cells["account_id"].tolist()))
            acc = _in_chunks(conn, acc_cols, accounts.c.id, acc_ids)
            self.known.update(cells)
        else:
            values = _frame(conn, select(cell_value).where(cell_value.c.cell_id.in_(scope)))
            acct_cells = _frame(conn, acct_cols.where(cav.c.cell_id.in_(scope)))
            acc = _frame(
                conn,
                acc_cols.where(accounts.c.id.in_(select(cav.c.account_id).where(cav.c.cell_id.in_(scope)))),
            )
            self.known.update(values["cell_id"].tolist())
            self.known.update(acct_cells["cell_id"].tolist())
        self.values = _concat([self.values, values]) if self.values is not None else values
        self.acct_cells = (
            _concat([self.acct_cells, acct_cells]) if self.acct_cells is not None else acct_cells
        )
        if self.accounts is not None and not acc.empty:
            old = self.accounts[~self.accounts["id"].isin(acc["id"].tolist())]
            acc = _concat([old, acc])
        elif self.accounts is not None:
            acc = self.accounts
        self.accounts = acc

    def frames(self, cells: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Value rows, account rows and accounts of ``cells``, each in one order (see _measure)."""
        assert self.values is not None and self.acct_cells is not None and self.accounts is not None
        values = self.values[self.values["cell_id"].isin(cells)]
        acct_cells = self.acct_cells[self.acct_cells["cell_id"].isin(cells)]
        acc = self.accounts[self.accounts["id"].isin(acct_cells["account_id"].unique())]
        return (
            values.sort_values(["cell_id", "segment", "vip"], kind="stable", ignore_index=True),
            acct_cells.sort_values(["cell_id", "account_id"], kind="stable", ignore_index=True),
            acc.sort_values("id", kind="stable", ignore_index=True).drop_duplicates("id"),
        )


def _measure(
    conn: Connection, scoring: Scoring, opened: dict[str, Any], ids: list[str] | None, inputs: CellInputs
) -> tuple[pd.DataFrame, ClockSummary]:
    """Metrics and SLA clock summaries of the active incidents ``ids`` (all active ones when None).

    The incidents' cells come from ``incident_cells``; their aggregates from ``inputs``, which reads
    what it lacks: all at once through a join on ``incident_cells`` on the first pass (no long lists
    of cells or accounts as parameters), the few new or recomputed cells by id afterwards.
    """
    ic = incident_cells
    cols = select(ic.c.incident_id, ic.c.cell_id, ic.c.degraded_share)
    if ids is None:
        i = incidents
        scope = cols.join(
            i, and_(i.c.id == ic.c.incident_id, i.c.source == ENGINE_SOURCE, i.c.state.in_(ACTIVE))
        )
        cells = _frame(conn, scope)
        inputs.load(conn, None, scope.with_only_columns(ic.c.cell_id).scalar_subquery())
    else:
        cells = _in_chunks(conn, cols, ic.c.incident_id, ids)
    # Only incidents still active (an id may have left the queue since it was listed).
    cells = cells[cells["incident_id"].isin(list(opened))]
    # One order whatever the database returns, so sums come out the same to the last bit on the
    # full and the incremental path (and in every process).
    cells = cells.sort_values(["incident_id", "cell_id"], kind="stable", ignore_index=True)
    cell_ids = sorted(set(cells["cell_id"].tolist()))
    missing = sorted(set(cell_ids) - inputs.known)
    if missing or inputs.values is None:
        inputs.load(conn, missing, None)
    for inc_id, group in cells.groupby("incident_id")["cell_id"]:
        inputs.by_incident[str(inc_id)] = set(group.tolist())
    values, acct_cells, acc = inputs.frames(cell_ids)
    metrics = incident_metrics(cells, values, scoring)
    clocks = summarize_clocks(clock_inputs(cells, acct_cells, acc, opened, scoring))
    return metrics, clocks


@dataclass
class QueueMemory:
    """What a refresh keeps for the next one on the same store (the incremental steady state).

    Valid while this process alone refreshes the queue: ``generation`` is the id this memory wrote
    with the queue last, and ``value_pass`` the value-aggregate pass it saw last; when the store says
    otherwise (another process refreshed, aggregates were rebuilt by hand), the memory starts over.
    """

    scoring: str
    generation: str | None = None
    value_pass: str | None = None
    topology: Any = None  # the topology's high-water mark ``below`` holds for
    below: dict[str, set[str]] = field(default_factory=dict)  # resource -> cells below it
    opened: dict[str, Any] = field(default_factory=dict)  # active incident -> opened_at measured with
    inputs: CellInputs = field(default_factory=lambda: CellInputs())  # the cells' aggregates
    metrics: pd.DataFrame | None = None  # incident_metrics of the active incidents
    clocks: ClockSummary | None = None  # summarize_clocks of the active incidents' clock_inputs
    last_redo: int = -1


_MEMORY: weakref.WeakKeyDictionary[Store, QueueMemory] = weakref.WeakKeyDictionary()


def forget(store: Store) -> None:
    """Drop what refreshes remembered for ``store``: the next refresh computes everything."""
    _MEMORY.pop(store, None)


_QUEUE_COLS = [c.name for c in incident_queue.columns]


def _plain(values: pd.Series) -> list[Any]:
    """A column as Python values for the driver: None for NaN/NaT, datetimes, ints, floats."""
    if values.dtype.kind == "M":
        return [None if v is pd.NaT else v.to_pydatetime() for v in values.tolist()]
    out = values.tolist()
    if values.dtype.kind in "fO":
        out = [
            None if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v) else v
            for v in out
        ]
        if values.dtype.kind == "O":
            out = [
                v.to_pydatetime() if isinstance(v, pd.Timestamp) else v.item() if hasattr(v, "item") else v
                for v in out
            ]
    return out


def _queue_rows(ranked: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    df = ranked.rename(columns={"id": "incident_id"})
    n = len(df)
    columns = {
        c: (_plain(df[c]) if c in df else [now if c == "computed_at" else None] * n) for c in _QUEUE_COLS
    }
    columns["rank"] = [None if v is None else int(cast(float, v)) for v in columns["rank"]]
    return [dict(zip(_QUEUE_COLS, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]


def _small_statements(conn: Connection) -> None:
    """PostgreSQL's JIT compiles for longer than these short statements run: off for this transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def refresh_queue(
    store: Store, scoring: Scoring, *, now: datetime | None = None, currency: str = "EUR"
) -> QueueRefresh:
    """Correlate, aggregate, measure, rank and store the queue; each step in its own transaction.

    The first refresh of a store in a process measures every active incident; later ones reuse what
    the previous refresh measured (:class:`QueueMemory`) and measure again only what changed. Any
    doubt (an error, another writer, other scoring rules) means starting over.
    """
    now = now or _utcnow()
    key = scoring.model_dump_json()
    memory = _MEMORY.pop(store, None)  # put back only once this refresh succeeded
    if memory is not None and memory.scoring != key:
        memory = None
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
    generation = uuid.uuid4().hex
    with store.begin() as conn:
        _small_statements(conn)
        state = load_state(conn, *STATE_KEY, for_update=True)
        topology = conn.execute(select(func.max(topology_edges.c.ingested_at))).scalar()
        if memory is not None and (
            memory.generation is None
            or state.get("generation") != memory.generation
            or vals.previous is None
            or vals.previous != memory.value_pass
        ):
            memory = None
        if memory is None:
            memory = QueueMemory(scoring=key)
        if memory.topology != topology:
            memory.below.clear()
            memory.topology = topology
        ranked = rank_from_store(conn, scoring, now=now, currency=currency, memory=memory, values=vals)
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
            {
                "computed_at": now.isoformat(),
                "queued": len(rows),
                "active": n_active,
                "generation": generation,
            },
            now=now,
        )
    t["write_ms"] = (time.perf_counter() - t0) * 1000
    memory.generation, memory.value_pass = generation, vals.pass_id
    _MEMORY[store] = memory
    return QueueRefresh(corr, vals, memory.last_redo, len(ranked), n_active, t)
