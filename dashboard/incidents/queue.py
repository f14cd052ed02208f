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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Integer, and_, delete, func, insert, select

from dashboard import failpoints
from dashboard.incidents import measure
from dashboard.incidents.correlate import ENGINE_SOURCE, CorrelationSummary, correlate, left_by_pass
from dashboard.incidents.correlate import forget as forget_correlation
from dashboard.incidents.detect import DetectSummary, detect
from dashboard.incidents.impact import latest_period, refresh_impact
from dashboard.incidents.reach import refresh_reach
from dashboard.incidents.scoring import ACCOUNT_DTYPES, ACTIVE, VALUE_DTYPES, ClockSummary, rank_incidents
from dashboard.incidents.summary import refresh_summary
from dashboard.incidents.value import ValueRefresh, refresh_values
from dashboard.incidents.value import forget as forget_lines
from dashboard.ingest.runner import load_state, save_state
from dashboard.kpis import Scoring, segment_codes
from dashboard.store.db import IN_CHUNK, Store, read_frame, read_frame_in
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
    detected: DetectSummary | None = None


def _frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    return read_frame(conn, stmt)


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
            i.c.kind,
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
    timings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Measure impact and rank the queue incidents (no writes to the queue itself).

    With ``memory`` (valid for this store, see :func:`refresh_queue`) and the value pass that just ran,
    only the incidents whose cells, shares, cells' aggregates or opening time changed are read again;
    the others keep their remembered cells and shares, the cells their remembered aggregates. Every
    active incident is then measured from those arrays (:mod:`dashboard.incidents.measure`).
    """
    memory = memory if memory is not None else QueueMemory(scoring="")
    clock = _Stopwatch(timings)
    incs = queue_incidents(conn)
    act = incs[incs["state"].isin(ACTIVE)]
    resources = _alarm_resources(conn, act["id"].tolist())
    opened = dict(zip(act["id"], act["opened_at"], strict=True))
    changed: set[str] = set()
    keys = {i: (opened[i], frozenset(resources.get(i, ()))) for i in opened}
    latest = latest_period(conn, scoring.impact.availability_kpi)
    clock.lap("rank_incidents_ms")
    measure_now = keys
    if memory.impact_latest == latest and memory.impact_latest is not None:
        # Same topology and KPI period as the last pass, which brought every active incident's cells
        # and shares up to date: only incidents whose opening or alarm resources changed can differ.
        measure_now = {i: k for i, k in keys.items() if memory.impact_keys.get(i) != k}
    refresh_impact(
        conn,
        {i: (k[0], set(k[1])) for i, k in measure_now.items()},
        scoring.impact,
        now=now,
        below_memo=memory.below,
        changed=changed,
        latest=(latest,),
    )
    memory.impact_keys, memory.impact_latest = keys, latest
    clock.lap("rank_impact_ms")
    tables = memory.tables
    if values is None or values.full or memory.impact is None:
        # Everything afresh: the active incidents' cells through a join (no long list of ids), then
        # the aggregates of all those cells.
        tables = memory.tables = CellTables()
        memory.impact = {}
        redo = set(opened)
        cells = _active_cells(conn)
    else:
        redo = changed | {i for i, t in opened.items() if memory.opened.get(i) != t}
        redo |= opened.keys() - memory.impact.keys()
        if values.touched:
            touched = tables.positions(values.touched)
            redo |= memory.incidents_on(touched) & opened.keys()
            if values.rows is not None:
                # The value pass hands over the rows it wrote: no need to read them back.
                tables.set(conn, sorted(values.touched), *values.rows)
            else:
                tables.forget(touched)
        cells = read_frame_in(
            conn,
            select(incident_cells.c.incident_id, incident_cells.c.cell_id, incident_cells.c.degraded_share),
            incident_cells.c.incident_id,
            sorted(redo),
        )
    for gone in memory.impact.keys() - opened.keys():
        del memory.impact[gone]
    cells = cells[cells["incident_id"].isin(redo)]
    # One order whatever the database returns (incident, then cell id), so sums come out the same to
    # the last bit however the rows were gathered.
    cells = cells.sort_values(["incident_id", "cell_id"], kind="stable", ignore_index=True)
    pos = tables.positions(cells["cell_id"].tolist())
    share = cells["degraded_share"].to_numpy(dtype=float)
    bounds = np.flatnonzero(
        np.r_[True, cells["incident_id"].to_numpy()[1:] != cells["incident_id"].to_numpy()[:-1]]
    )
    ends = np.r_[bounds[1:], len(cells)]
    inc_col = cells["incident_id"].tolist()
    for i in redo:
        memory.impact[i] = (_EMPTY_POS, _EMPTY_SHARE)
    for b, e in zip(bounds.tolist(), ends.tolist(), strict=True):
        if b < len(inc_col):
            memory.impact[inc_col[b]] = (pos[b:e], share[b:e])
    missing = np.flatnonzero(~tables.known[: len(tables.cell_pos)])
    if len(missing):
        ids = list(tables.cell_pos)  # position -> id
        tables.load(conn, [ids[p] for p in missing.tolist()])
    memory.opened = opened
    memory.last_redo = len(redo)
    clock.lap("rank_gather_ms")
    metrics, summary = memory.measure(sorted(opened), opened, scoring)
    clock.lap("rank_measure_ms")
    ranked = rank_incidents(incs, metrics, summary, scoring, now=now, currency=currency)
    clock.lap("rank_score_ms")
    return ranked


class _Stopwatch:
    """Laps into ``timings`` (milliseconds by name), when given."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings, self.t = timings, time.perf_counter()

    def lap(self, name: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[name] = (now - self.t) * 1000
            self.t = now


_EMPTY_POS = np.zeros(0, dtype=np.int64)
_EMPTY_SHARE = np.zeros(0, dtype=float)


def _active_cells(conn: Connection) -> pd.DataFrame:
    """(incident_id, cell_id, degraded_share) of every active engine incident."""
    ic, i = incident_cells, incidents
    return _frame(
        conn,
        select(ic.c.incident_id, ic.c.cell_id, ic.c.degraded_share).join(
            i, and_(i.c.id == ic.c.incident_id, i.c.source == ENGINE_SOURCE, i.c.state.in_(ACTIVE))
        ),
    )


_ACCOUNT_COLS = ["id", "name", "segment", "vip", "sla_restore_minutes", "penalty_per_hour"]


class CellTables:
    """The aggregates of the active incidents' cells (``cell_value``, ``cell_account_value`` and the
    accounts on them), read once and kept as arrays by cell position: a refresh reads again only the
    cells whose aggregates the value pass recomputed and the cells it has not seen yet.
    """

    def __init__(self) -> None:
        self.cell_pos: dict[str, int] = {}
        self.known = np.zeros(0, dtype=bool)
        self.values = measure.CellRows(VALUE_DTYPES)
        self.accounts_on = measure.CellRows(ACCOUNT_DTYPES)
        self.account_pos: dict[str, int] = {}
        self._acc: dict[str, np.ndarray] = {
            "ids": np.empty(0, dtype=object),
            "names": np.empty(0, dtype=object),
            "segment": np.empty(0, dtype=np.int8),
            "vip": np.empty(0, dtype=bool),
            "restore": np.empty(0, dtype=float),
            "penalty": np.empty(0, dtype=float),
            "known": np.empty(0, dtype=bool),
        }

    def positions(self, cells: Iterable[str]) -> np.ndarray:
        """The positions of ``cells``, new ones given the next free positions."""
        out = measure.positions(self.cell_pos, cells)
        n = len(self.cell_pos)
        if n > len(self.known):
            self.known = np.concatenate(
                [self.known, np.zeros(max(n, 2 * len(self.known)) - len(self.known), dtype=bool)]
            )
        return out

    def forget(self, cells: np.ndarray) -> None:
        self.known[cells] = False

    def _account_positions(self, ids: list[str]) -> np.ndarray:
        out = measure.positions(self.account_pos, ids)
        n = len(self.account_pos)
        have = len(self._acc["ids"])
        if n > have:
            size = max(n, 2 * have, 256)
            for k, col in self._acc.items():
                grown = (
                    np.zeros(size, dtype=col.dtype)
                    if col.dtype != object
                    else np.full(size, None, dtype=object)
                )
                grown[:have] = col
                self._acc[k] = grown
        return out

    def load(self, conn: Connection, cells: list[str]) -> None:
        """Read the aggregates of ``cells``, replacing any kept."""
        cav = cell_account_value
        value_cols = select(
            cell_value.c.cell_id,
            cell_value.c.segment,
            cell_value.c.vip,
            *[cell_value.c[f] for f in measure.VALUE_FIELDS],
        )
        acct_cols = select(cav.c.cell_id, cav.c.account_id, cav.c.lines, cav.c.arpu, cav.c.services)
        if len(cells) > IN_CHUNK:
            # Many cells (a first pass): through the active incidents' cells, not long id lists.
            i, ic = incidents, incident_cells
            scope = (
                select(ic.c.cell_id)
                .join(i, and_(i.c.id == ic.c.incident_id, i.c.source == ENGINE_SOURCE, i.c.state.in_(ACTIVE)))
                .scalar_subquery()
            )
            vals = _frame(conn, value_cols.where(cell_value.c.cell_id.in_(scope)))
            accts = _frame(conn, acct_cols.where(cav.c.cell_id.in_(scope)))
            wanted = set(cells)
            vals = vals[vals["cell_id"].isin(wanted)]
            accts = accts[accts["cell_id"].isin(wanted)]
        else:
            vals = read_frame_in(conn, value_cols, cell_value.c.cell_id, cells)
            accts = read_frame_in(conn, acct_cols, cav.c.cell_id, cells)
        self.set(conn, cells, vals, accts)

    def set(self, conn: Connection, cells: list[str], vals: pd.DataFrame, accts: pd.DataFrame) -> None:
        """Keep ``vals`` and ``accts`` (rows of cell_value and cell_account_value) as the aggregates of
        ``cells``, reading the accounts on them."""
        at = self.positions(cells)
        vals = vals.assign(
            _cell=self.positions(vals["cell_id"].tolist()),
            segment=segment_codes(vals["segment"].tolist()),
        ).sort_values(["_cell", "segment", "vip"], kind="stable")
        self.values.replace(
            at, vals["_cell"].to_numpy(), {k: vals[k].to_numpy(dtype=t) for k, t in VALUE_DTYPES.items()}
        )
        accts = accts.sort_values(["cell_id", "account_id"], kind="stable")
        accts = accts.assign(
            _cell=self.positions(accts["cell_id"].tolist()),
            account=self._account_positions(accts["account_id"].tolist()),
        )
        accts = accts.sort_values("_cell", kind="stable")
        self.accounts_on.replace(
            at, accts["_cell"].to_numpy(), {k: accts[k].to_numpy(dtype=t) for k, t in ACCOUNT_DTYPES.items()}
        )
        ids = sorted(set(accts["account_id"].tolist()))
        acc = read_frame_in(conn, select(*[accounts.c[c] for c in _ACCOUNT_COLS]), accounts.c.id, ids)
        acc = acc.drop_duplicates("id")
        p = self._account_positions(acc["id"].tolist())
        a = self._acc
        a["ids"][p] = acc["id"].to_numpy(dtype=object)
        a["names"][p] = acc["name"].to_numpy(dtype=object)
        a["segment"][p] = segment_codes(acc["segment"].tolist())
        a["vip"][p] = acc["vip"].astype(object).fillna(False).astype(bool).to_numpy()
        a["restore"][p] = acc["sla_restore_minutes"].astype(float).to_numpy()
        a["penalty"][p] = acc["penalty_per_hour"].astype(float).to_numpy()
        a["known"][p] = True
        self.known[at] = True

    def accounts(self) -> measure.Accounts:
        n = len(self.account_pos)
        a = {k: v[:n] for k, v in self._acc.items()}
        return measure.Accounts(**a)


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
    tables: CellTables = field(default_factory=lambda: CellTables())  # the cells' aggregates
    # Active incident -> its cells' positions (by cell id) and degraded shares, as in incident_cells.
    impact: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    last_redo: int = -1
    _rows: measure.ImpactRows | None = None
    _ids: list[str] = field(default_factory=list)

    def clear_topology(self, topology: Any) -> None:
        """Forget what was derived from the topology (it changed: ``topology`` is its new mark)."""
        self.below.clear()
        self.ancestors.clear()
        self.impact_keys.clear()
        self.impact_latest = None
        self.topology = topology

    def incidents_on(self, cells: np.ndarray) -> set[str]:
        """Incidents of the last measurement with any of ``cells``."""
        if self._rows is None or not len(self._rows.cell):
            return set()
        flag = np.zeros(len(self.tables.known), dtype=bool)
        flag[cells] = True
        hit = np.unique(self._rows.inc[flag[self._rows.cell]])
        return {self._ids[k] for k in hit.tolist()}

    def measure(
        self, ids: list[str], opened: dict[str, Any], scoring: Scoring
    ) -> tuple[pd.DataFrame, ClockSummary]:
        """Metrics and SLA clock totals of the active incidents ``ids`` from the kept arrays."""
        assert self.impact is not None
        parts = [self.impact[i] for i in ids]
        lens = np.fromiter((len(p[0]) for p in parts), dtype=np.int64, count=len(parts))
        rows = measure.ImpactRows(
            inc=np.repeat(np.arange(len(ids)), lens),
            cell=np.concatenate([p[0] for p in parts]) if parts else _EMPTY_POS,
            share=np.concatenate([p[1] for p in parts]) if parts else _EMPTY_SHARE,
        )
        self._rows, self._ids = rows, ids
        n = len(ids)
        t = self.tables
        m = measure.metrics(n, rows, t.values, scoring)
        acc = t.accounts()
        when = pd.to_datetime(pd.Series([opened[i] for i in ids], dtype=object)).to_numpy(
            dtype="datetime64[ns]"
        )
        totals = measure.clock_totals(n, measure.clocks(rows, t.accounts_on, acc, when, scoring), acc)
        index = pd.Index(ids, name="incident_id", dtype=object)
        return pd.DataFrame(m, index=index), ClockSummary.of(np.asarray(ids, dtype=object), totals, acc.ids)


_MEMORY: weakref.WeakKeyDictionary[Store, QueueMemory] = weakref.WeakKeyDictionary()


def forget(store: Store) -> None:
    """Drop what refreshes remembered for ``store`` (the queue's memory, the incidents correlation
    left, the value pass's lines): the next refresh reads and computes everything."""
    _MEMORY.pop(store, None)
    forget_correlation(store.engine)
    forget_lines(store.engine)


_QUEUE_COLS = [c.name for c in incident_queue.columns]
_INT_COLS = [c.name for c in incident_queue.columns if isinstance(c.type, Integer)]


def _plain(values: pd.Series) -> list[Any]:
    """A column as Python values for the driver: None for NaN/NaT, datetimes, ints, floats."""
    if values.dtype.kind == "M":
        return [None if v is pd.NaT else v.to_pydatetime() for v in values.tolist()]
    out: list[Any] = values.tolist()
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
    for c in _INT_COLS:
        columns[c] = [None if v is None else int(cast(float, v)) for v in columns[c]]
    return columns


def _insert_queue(conn: Connection, columns: dict[str, list[Any]]) -> None:
    """Insert the rows in one executemany. On SQLite the values go to the driver as SQLAlchemy would
    bind them (its bind processors, applied per column), without building a parameter dict per row."""
    if not columns["incident_id"]:
        return
    stmt = insert(incident_queue)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        # COPY: one stream of rows, no statement per batch (psycopg adapts each value by its type).
        raw = cast(Any, conn.connection.driver_connection)
        names = ", ".join(f'"{c}"' for c in _QUEUE_COLS)
        with raw.cursor() as cur, cur.copy(f"COPY incident_queue ({names}) FROM STDIN") as copy:
            for row in zip(*columns.values(), strict=True):
                copy.write_row(row)
        return
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
    store: Store,
    scoring: Scoring,
    *,
    now: datetime,
    currency: str = "EUR",
    labels: Mapping[str, str] | None = None,
) -> QueueRefresh:
    """Detect, correlate, aggregate, measure, rank and store the queue; each step in its own transaction.

    Detection raises and clears Vantage's own alarms from the KPI anomaly verdicts (``labels``: KPI
    name -> label, for its sentences), so the correlation that follows sees them like any alarm.

    The first refresh of a store in a process measures every active incident; later ones reuse what
    the previous refresh measured (:class:`QueueMemory`) and measure again only what changed. Any
    doubt (an error, another writer, other scoring rules) means starting over.
    """
    key = scoring.model_dump_json()
    memory = _MEMORY.pop(store, None)  # put back only once this refresh succeeded
    if memory is not None and memory.scoring != key:
        memory = None
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    with store.begin() as conn:
        _small_statements(conn)
        detected = detect(conn, now=now, labels=labels)
    t["detect_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    with store.begin() as conn:
        _small_statements(conn)
        topology = conn.execute(select(func.max(topology_edges.c.ingested_at))).scalar()
        if memory is not None and memory.topology != topology:
            memory.clear_topology(topology)
        ancestors = memory.ancestors if memory is not None else None
        corr = correlate(conn, scoring.correlation, now=now, ancestors_memo=ancestors)
        keep_correlation = left_by_pass(conn)
    keep_correlation()
    failpoints.pause("queue:correlated")
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
        parts: dict[str, float] = {}
        ranked = rank_from_store(
            conn, scoring, now=now, currency=currency, memory=memory, values=vals, timings=parts
        )
        t["rank_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        conn.execute(delete(incident_queue))
        columns = _queue_columns(ranked, now)
        _insert_queue(conn, columns)
        refresh_reach(conn, now=now)
        t1 = time.perf_counter()
        refresh_summary(conn, scoring, now=now, values=vals)
        t["summary_ms"] = (time.perf_counter() - t1) * 1000
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
    t.update(parts)  # the rank step's parts
    memory.generation, memory.value_pass = generation, vals.pass_id
    _MEMORY[store] = memory
    return QueueRefresh(corr, vals, memory.last_redo, len(ranked), n_active, t, detected)
