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
from dashboard.incidents.impact import latest_period, refresh_impact
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
        alarms.c.cleared_at.is_(None).label("active"),  # a flag: no times to parse
    ).join(alarms, alarms.c.id == incident_alarms.c.alarm_id)
    # The active incidents' alarms through a join (no long list of ids as parameters).
    i = incidents
    rows = _frame(
        conn,
        stmt.join(i, and_(i.c.id == incident_alarms.c.incident_id, i.c.source == ENGINE_SOURCE)).where(
            incident_alarms.c.source == ENGINE_SOURCE, i.c.state.in_(ACTIVE)
        ),
    )
    rows = rows[rows["incident_id"].isin(ids)]
    active: dict[str, set[str]] = defaultdict(set)
    every: dict[str, set[str]] = defaultdict(set)
    cleared = [bool(v) for v in rows["active"].tolist()]
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
    return {inc: active.get(inc) or every.get(inc, set()) for inc in ids}


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
    keys = {i: (opened[i], frozenset(resources.get(i, ()))) for i in opened}
    latest = latest_period(conn, scoring.impact.availability_kpi)
    measure = keys
    if memory is not None and memory.impact_latest == latest and memory.impact_latest is not None:
        # Same topology and KPI period as the last pass, which brought every active incident's cells
        # and shares up to date: only incidents whose opening or alarm resources changed can differ.
        measure = {i: k for i, k in keys.items() if memory.impact_keys.get(i) != k}
    refresh_impact(
        conn,
        {i: (k[0], set(k[1])) for i, k in measure.items()},
        scoring.impact,
        now=now,
        below_memo=below,
        changed=changed,
        latest=(latest,),
    )
    if memory is not None:
        memory.impact_keys, memory.impact_latest = keys, latest
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
    of the active incidents, read once and kept per cell: a refresh reads again only the cells whose
    aggregates the value pass recomputed and the cells it has not seen yet, and gathers the rows of
    the cells it measures by key (no scans of everything kept).
    """

    def __init__(self) -> None:
        self.value_cols: list[str] = []
        self.acct_cols: list[str] = []
        self.account_cols: list[str] = list(_ACCOUNT_COLS)
        self.values: dict[str, list[tuple[Any, ...]]] = {}  # cell -> rows, by (segment, vip)
        self.acct_cells: dict[str, list[tuple[Any, ...]]] = {}  # cell -> rows, by account
        self.accounts: dict[str, tuple[Any, ...]] = {}  # account id -> row
        self.loaded = False
        self.known: set[str] = set()
        self.by_incident: dict[str, set[str]] = {}  # the cells each measured incident had

    def forget(self, cells: Iterable[str]) -> None:
        for c in self.known & set(cells):
            self.values.pop(c, None)
            self.acct_cells.pop(c, None)
            self.known.discard(c)

    def prune(self, incidents_gone: Iterable[str]) -> None:
        for i in incidents_gone:
            self.by_incident.pop(i, None)
        live: set[str] = set().union(*self.by_incident.values()) if self.by_incident else set()
        if len(self.known) > 2 * len(live) + 1000:
            self.forget(self.known - live)

    @staticmethod
    def _rows(df: pd.DataFrame, key: str, order: list[str]) -> dict[str, list[tuple[Any, ...]]]:
        df = df.sort_values([key, *order], kind="stable", ignore_index=True)
        out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in zip(*(df[c].tolist() for c in df.columns), strict=True):
            out[row[0]].append(row)
        return out

    def load(self, conn: Connection, cells: list[str] | None, scope: Any = None) -> None:
        """Read the aggregates of ``cells`` (or of the cells ``scope`` selects), replacing any kept."""
        cav = cell_account_value
        value_cols = select(cell_value)
        acct_cols = select(cav.c.cell_id, cav.c.account_id, cav.c.lines, cav.c.arpu, cav.c.services)
        acc_cols = select(*[accounts.c[c] for c in _ACCOUNT_COLS])
        if cells is not None:
            self.forget(cells)
            values = _in_chunks(conn, value_cols, cell_value.c.cell_id, cells)
            acct_cells = _in_chunks(conn, acct_cols, cav.c.cell_id, cells)
            acc_ids = sorted(set(acct_cells["account_id"].tolist()))
            acc = _in_chunks(conn, acc_cols, accounts.c.id, acc_ids)
            self.known.update(cells)
        else:
            values = _frame(conn, value_cols.where(cell_value.c.cell_id.in_(scope)))
            acct_cells = _frame(conn, acct_cols.where(cav.c.cell_id.in_(scope)))
            acc = _frame(
                conn,
                acc_cols.where(accounts.c.id.in_(select(cav.c.account_id).where(cav.c.cell_id.in_(scope)))),
            )
            self.known.update(values["cell_id"].tolist())
            self.known.update(acct_cells["cell_id"].tolist())
        # cell_id first, so each row's first value is its key.
        self.value_cols = ["cell_id", *[c for c in values.columns if c != "cell_id"]]
        self.acct_cols = list(acct_cells.columns)
        self.values.update(self._rows(values[self.value_cols], "cell_id", ["segment", "vip"]))
        self.acct_cells.update(self._rows(acct_cells, "cell_id", ["account_id"]))
        acc = acc[self.account_cols].sort_values("id", kind="stable").drop_duplicates("id")
        self.accounts.update(
            zip(acc["id"].tolist(), zip(*(acc[c].tolist() for c in acc.columns), strict=True), strict=True)
        )
        self.loaded = True

    def frames(self, cells: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Value rows, account rows and accounts of ``cells``, each in one order (see _measure)."""
        assert self.loaded
        cells = sorted(set(cells))
        values = [r for c in cells for r in self.values.get(c, ())]
        acct_cells = [r for c in cells for r in self.acct_cells.get(c, ())]
        ids = sorted({r[1] for r in acct_cells})
        acc = [self.accounts[i] for i in ids if i in self.accounts]
        return (
            pd.DataFrame.from_records(values, columns=self.value_cols),
            pd.DataFrame.from_records(acct_cells, columns=self.acct_cols),
            pd.DataFrame.from_records(acc, columns=self.account_cols),
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
    if missing or not inputs.loaded:
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
    ancestors: dict[str, frozenset[str]] = field(default_factory=dict)  # resource -> its ancestors
    # Active incident -> (opened_at, alarm resources) whose cells and shares the last pass brought up to
    # date at KPI period ``impact_latest`` (see rank_from_store).
    impact_keys: dict[str, tuple[Any, frozenset[str]]] = field(default_factory=dict)
    impact_latest: Any = None
    opened: dict[str, Any] = field(default_factory=dict)  # active incident -> opened_at measured with
    inputs: CellInputs = field(default_factory=lambda: CellInputs())  # the cells' aggregates
    metrics: pd.DataFrame | None = None  # incident_metrics of the active incidents
    clocks: ClockSummary | None = None  # summarize_clocks of the active incidents' clock_inputs
    last_redo: int = -1

    def clear_topology(self, topology: Any) -> None:
        """Forget what was derived from the topology (it changed: ``topology`` is its new mark)."""
        self.below.clear()
        self.ancestors.clear()
        self.impact_keys.clear()
        self.impact_latest = None
        self.topology = topology


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
    if values.dtype.kind == "f":
        return [None if v != v else v for v in out]
    if values.dtype.kind == "O":
        out = [
            None if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v) else v
            for v in out
        ]
        out = [
            v.to_pydatetime() if isinstance(v, pd.Timestamp) else v.item() if hasattr(v, "item") else v
            for v in out
        ]
    return out


def _queue_columns(ranked: pd.DataFrame, now: datetime) -> dict[str, list[Any]]:
    """The ``incident_queue`` columns of the ranked incidents, as Python values for the driver."""
    df = ranked.rename(columns={"id": "incident_id"})
    n = len(df)
    columns = {
        c: (_plain(df[c]) if c in df else [now if c == "computed_at" else None] * n) for c in _QUEUE_COLS
    }
    columns["rank"] = [None if v is None else int(cast(float, v)) for v in columns["rank"]]
    return columns


def _insert_queue(conn: Connection, columns: dict[str, list[Any]]) -> None:
    """Insert the rows in one executemany. On SQLite the values go to the driver as SQLAlchemy would
    bind them (its bind processors, applied per column), without building a parameter dict per row."""
    if not columns["incident_id"]:
        return
    stmt = insert(incident_queue)
    if conn.dialect.name != "sqlite":
        rows = [dict(zip(_QUEUE_COLS, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]
        conn.execute(stmt, rows)
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=_QUEUE_COLS)
    order = list(compiled.positiontup or [])
    assert sorted(order) == sorted(_QUEUE_COLS), order
    values = []
    for name in order:
        impl = incident_queue.c[name].type.dialect_impl(conn.dialect)
        proc = impl.bind_processor(conn.dialect)
        col = columns[name]
        values.append([None if v is None else proc(v) for v in col] if proc is not None else col)
    conn.exec_driver_sql(compiled.string, list(zip(*values, strict=True)))


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
        topology = conn.execute(select(func.max(topology_edges.c.ingested_at))).scalar()
        if memory is not None and memory.topology != topology:
            memory.clear_topology(topology)
        ancestors = memory.ancestors if memory is not None else None
        corr = correlate(conn, scoring.correlation, now=now, ancestors_memo=ancestors)
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
            # What depends on the topology alone stays good.
            memory = QueueMemory(
                scoring=key, topology=memory.topology, below=memory.below, ancestors=memory.ancestors
            )
        if memory is None:
            memory = QueueMemory(scoring=key)
        if memory.topology != topology:
            memory.clear_topology(topology)
        ranked = rank_from_store(conn, scoring, now=now, currency=currency, memory=memory, values=vals)
        t["rank_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        conn.execute(delete(incident_queue))
        columns = _queue_columns(ranked, now)
        _insert_queue(conn, columns)
        n_active = int(ranked["rank"].notna().sum()) if len(ranked) else 0
        # When the queue was last computed, also when it is empty (pages show it).
        save_state(
            conn,
            *STATE_KEY,
            {
                "computed_at": now.isoformat(),
                "queued": len(ranked),
                "active": n_active,
                "generation": generation,
            },
            now=now,
        )
    t["write_ms"] = (time.perf_counter() - t0) * 1000
    memory.generation, memory.value_pass = generation, vals.pass_id
    _MEMORY[store] = memory
    return QueueRefresh(corr, vals, memory.last_redo, len(ranked), n_active, t)
