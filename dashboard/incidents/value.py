"""Value aggregates per cell, maintained as the customer base changes.

``cell_value`` holds, per cell and (segment, VIP), the lines it serves weighted by their traffic
share there, their ARPU, churn risk and ticket sentiment sums; ``cell_account_value`` the business,
VIP and SLA accounts per cell with their lines and account services. Ranking an incident then reads
a few rows per affected cell instead of its subscribers.

Each pass finds what changed since its watermark through the ``ingested_at`` (``scored_at`` for
signals) indexes and recomputes only the cells those rows touch, with the aggregation done in the
database; when much changed (a first load, an hourly re-score) it rebuilds everything in one
statement per table, which is cheaper than many small ones.

The same pass keeps every line's value class (:mod:`dashboard.store.line_values`, what the
subscriber list sorted by value walks) up to date from the subscribers and accounts ingested since.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
)

from connectors.canonical import SEGMENTS
from dashboard.incidents.measure import VALUE_FIELDS, CellRows, expand, positions
from dashboard.ingest.runner import load_state, save_state
from dashboard.kpis import segment_codes
from dashboard.store import line_values
from dashboard.store.db import chunks, read_frame
from dashboard.store.lines import served_cells
from dashboard.store.schema import (
    accounts,
    cell_account_value,
    cell_value,
    services,
    subscriber_cells,
    subscriber_signals,
    subscribers,
    topology_edges,
)

STATE_KEY = ("vantage", "value-aggregates")
OVERLAP = timedelta(minutes=5)
# Above this share of all cells touched, one full rebuild is cheaper than per-cell updates.
FULL_REBUILD_SHARE = 0.25
# Changed rows remembered between passes so the overlap is not handled twice.
MAX_REMEMBERED = 20_000
# Above this many changed lines, one rebuild of every line's value class is cheaper than updates.
LINE_CLASS_REBUILD = 100_000


@dataclass(frozen=True)
class ValueRefresh:
    cells: int  # cells recomputed
    full: bool
    watermark: datetime | None
    touched: frozenset[str] = frozenset()  # the cells recomputed, when not full
    # Their new rows: cell_value and cell_account_value (columns as the tables', no updated_at).
    rows: tuple[pd.DataFrame, pd.DataFrame] | None = None
    # This pass's id and the one before it: a reader that saw ``previous`` last knows that
    # ``touched`` is everything that changed since (see dashboard.incidents.queue).
    pass_id: str | None = None
    previous: str | None = None


def _cell_value_select(now: datetime) -> Any:
    ln = served_cells()
    s, a, g = subscribers, accounts, subscriber_signals
    share = ln.c.share
    segment = func.coalesce(a.c.segment, "consumer")
    vip = func.coalesce(a.c.vip, false())
    return (
        select(
            ln.c.cell_id,
            segment.label("segment"),
            vip.label("vip"),
            func.sum(share).label("lines"),
            func.sum(share * func.coalesce(s.c.arpu, 0.0)).label("arpu"),
            func.sum(share * func.coalesce(g.c.churn_risk, 0.0)).label("risk"),
            func.sum(share * func.coalesce(g.c.churn_risk, 0.0) * func.coalesce(s.c.arpu, 0.0)).label(
                "risk_arpu"
            ),
            func.sum(case((g.c.churn_risk.is_not(None), share), else_=0.0)).label("risk_lines"),
            func.sum(share * func.coalesce(g.c.sentiment_30d, 0.0)).label("sentiment"),
            func.sum(case((g.c.sentiment_30d.is_not(None), share), else_=0.0)).label("sentiment_lines"),
            func.sum(share * func.coalesce(g.c.negative_tickets_30d, 0)).label("negative_tickets"),
            literal(now).label("updated_at"),
        )
        .select_from(
            ln.join(s, and_(s.c.id == ln.c.subscriber_id, s.c.status != "churned"))
            .outerjoin(a, a.c.id == s.c.account_id)
            .outerjoin(g, g.c.subscriber_id == s.c.id)
        )
        .group_by(ln.c.cell_id, segment, vip)
    )


def _tracked_account() -> Any:
    a = accounts
    return or_(a.c.segment != "consumer", a.c.vip.is_(True), a.c.sla_restore_minutes.is_not(None))


def _cell_account_select(now: datetime) -> Any:
    ln = served_cells()
    s, a = subscribers, accounts
    by_lines = (
        select(
            ln.c.cell_id.label("cell_id"),
            s.c.account_id.label("account_id"),
            ln.c.share.label("lines"),
            (ln.c.share * func.coalesce(s.c.arpu, 0.0)).label("arpu"),
            literal(0).label("services"),
        )
        .select_from(
            ln.join(s, and_(s.c.id == ln.c.subscriber_id, s.c.status != "churned")).join(
                a, a.c.id == s.c.account_id
            )
        )
        .where(_tracked_account())
    )
    e, v = topology_edges, services
    by_services = (
        select(
            e.c.parent_id.label("cell_id"),
            v.c.account_id.label("account_id"),
            literal(0.0).label("lines"),
            literal(0.0).label("arpu"),
            literal(1).label("services"),
        )
        .select_from(e.join(v, v.c.id == e.c.child_id).join(accounts, accounts.c.id == v.c.account_id))
        .where(
            e.c.parent_type == "cell",
            e.c.child_type == "service",
            or_(v.c.status.is_(None), v.c.status != "terminated"),
            _tracked_account(),
        )
    )
    both = union_all(by_lines, by_services).subquery("both")
    return select(
        both.c.cell_id,
        both.c.account_id,
        func.sum(both.c.lines).label("lines"),
        func.sum(both.c.arpu).label("arpu"),
        func.sum(both.c.services).label("services"),
        literal(now).label("updated_at"),
    ).group_by(both.c.cell_id, both.c.account_id)


_VALUE_COLS = [c.name for c in cell_value.columns]
_ACCOUNT_COLS = [c.name for c in cell_account_value.columns]


def rebuild(conn: Connection, *, now: datetime) -> None:
    """Recompute every aggregate in the caller's transaction.

    Outside :func:`refresh_values`, so readers that follow the passes (the queue's memory, the kept
    lines) start over.
    """
    _rebuild(conn, now=now)
    state = load_state(conn, *STATE_KEY, for_update=True)
    if state.get("pass"):
        save_state(conn, *STATE_KEY, {**state, "pass": None}, now=now)


def _rebuild(conn: Connection, *, now: datetime) -> None:
    """Recompute every aggregate in SQL, one statement per table."""
    conn.execute(delete(cell_value))
    conn.execute(delete(cell_account_value))
    conn.execute(insert(cell_value).from_select(_VALUE_COLS, _cell_value_select(now)))
    conn.execute(insert(cell_account_value).from_select(_ACCOUNT_COLS, _cell_account_select(now)))
    if conn.dialect.name == "postgresql":
        # Fresh statistics after the bulk write (the planner must know these tables are large
        # before the per-cell updates that follow; autovacuum may be off or not yet round).
        conn.execute(text("ANALYZE cell_value"))
        conn.execute(text("ANALYZE cell_account_value"))


def _write_cells(
    conn: Connection, mirror: LineMirror, cells: list[str], now: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recompute the aggregates of ``cells`` from the mirrored lines and write them; returns the rows."""
    values: list[pd.DataFrame] = []
    accounts_on: list[pd.DataFrame] = []
    with _index_probes(conn, len(cells) <= PROBE_CELLS):
        for part in chunks(cells):
            served = read_frame(conn, _service_select(part))
            conn.execute(delete(cell_value).where(cell_value.c.cell_id.in_(part)))
            conn.execute(delete(cell_account_value).where(cell_account_value.c.cell_id.in_(part)))
            value_rows, account_rows = _aggregate(mirror.lines(part), served)
            values.append(value_rows)
            accounts_on.append(account_rows)
            if len(value_rows):
                conn.execute(insert(cell_value), value_rows.assign(updated_at=now).to_dict("records"))
            if len(account_rows):
                conn.execute(
                    insert(cell_account_value), account_rows.assign(updated_at=now).to_dict("records")
                )
    return pd.concat(values, ignore_index=True), pd.concat(accounts_on, ignore_index=True)


def _line_select(cells: list[str] | None = None, subscriber_ids: list[str] | None = None) -> Any:
    """The lines served by ``cells`` (all, or those of ``subscriber_ids``) with what the aggregates sum."""
    ln = served_cells(cells, subscribers=subscriber_ids)
    s, a, g = subscribers, accounts, subscriber_signals
    return select(
        ln.c.cell_id,
        ln.c.subscriber_id,
        ln.c.share,
        s.c.account_id,
        func.coalesce(a.c.segment, "consumer").label("segment"),
        func.coalesce(a.c.vip, false()).label("vip"),
        case((and_(a.c.id.is_not(None), _tracked_account()), 1), else_=0).label("tracked"),
        func.coalesce(s.c.arpu, 0.0).label("arpu"),
        g.c.churn_risk,
        g.c.sentiment_30d,
        func.coalesce(g.c.negative_tickets_30d, 0).label("negative_tickets"),
    ).select_from(
        ln.join(s, and_(s.c.id == ln.c.subscriber_id, s.c.status != "churned"))
        .outerjoin(a, a.c.id == s.c.account_id)
        .outerjoin(g, g.c.subscriber_id == s.c.id)
    )


def _service_select(cells: list[str]) -> Any:
    """The live account services of tracked accounts on ``cells`` (one row each)."""
    e, v = topology_edges, services
    return (
        select(e.c.parent_id.label("cell_id"), v.c.account_id, v.c.id.label("service_id"))
        .select_from(e.join(v, v.c.id == e.c.child_id).join(accounts, accounts.c.id == v.c.account_id))
        .where(
            e.c.parent_type == "cell",
            e.c.child_type == "service",
            e.c.parent_id.in_(cells),
            or_(v.c.status.is_(None), v.c.status != "terminated"),
            _tracked_account(),
        )
    )


_SUMS = list(VALUE_FIELDS)


def _aggregate(lines: pd.DataFrame, served: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``cell_value`` and ``cell_account_value`` rows of the lines and services read, as the full
    rebuild's statements compute them (sums in one order: cell, key, subscriber)."""
    lines = lines.assign(vip=lines["vip"].astype(bool)).sort_values(
        ["cell_id", "segment", "vip", "subscriber_id"], kind="stable", ignore_index=True
    )
    share = lines["share"].astype(float)
    arpu = lines["arpu"].astype(float)
    risk = lines["churn_risk"].astype(float)
    sentiment = lines["sentiment_30d"].astype(float)
    terms = pd.DataFrame(
        {
            "cell_id": lines["cell_id"],
            "segment": lines["segment"],
            "vip": lines["vip"],
            "lines": share,
            "arpu": share * arpu,
            "risk": share * risk.fillna(0.0),
            "risk_arpu": share * risk.fillna(0.0) * arpu,
            "risk_lines": share.where(risk.notna(), 0.0),
            "sentiment": share * sentiment.fillna(0.0),
            "sentiment_lines": share.where(sentiment.notna(), 0.0),
            "negative_tickets": share * lines["negative_tickets"].astype(float),
        }
    )
    values = terms.groupby(["cell_id", "segment", "vip"], sort=True)[_SUMS].sum().reset_index()
    tracked = lines[lines["tracked"].astype(int) == 1]
    by_lines = pd.DataFrame(
        {
            "cell_id": tracked["cell_id"],
            "account_id": tracked["account_id"],
            "lines": share[tracked.index],
            "arpu": (share * arpu)[tracked.index],
            "services": 0,
        }
    ).sort_values(["cell_id", "account_id"], kind="stable")
    by_services = served.assign(lines=0.0, arpu=0.0, services=1)[by_lines.columns]
    both = pd.concat([by_lines, by_services], ignore_index=True) if len(by_services) else by_lines
    accts = (
        both.groupby(["cell_id", "account_id"], sort=True)[["lines", "arpu", "services"]].sum().reset_index()
    )
    accts["services"] = accts["services"].astype(int)
    return values, accts


# PostgreSQL's planner underestimates the lines of a few cells and hashes whole tables (subscribers,
# signals) with parallel workers for them; up to this many cells, index probes are always cheaper.
PROBE_CELLS = 500
_PLANNER = ("enable_hashjoin", "enable_mergejoin", "max_parallel_workers_per_gather")


@contextmanager
def _index_probes(conn: Connection, wanted: bool) -> Iterator[None]:
    """On PostgreSQL (when ``wanted``), plan the statements inside with nested loops over indexes and
    no parallel workers; the settings before are restored after (all local to the transaction)."""
    if not wanted or conn.dialect.name != "postgresql":
        yield
        return
    before = conn.execute(select(*[func.current_setting(name) for name in _PLANNER])).one()
    conn.execute(
        select(*[func.set_config(name, "0" if name.startswith("max_") else "off", True) for name in _PLANNER])
    )
    yield  # after an error the transaction rolls back, and these settings with it
    conn.execute(
        select(*[func.set_config(name, value, True) for name, value in zip(_PLANNER, before, strict=True)])
    )


_LINE_FIELDS: dict[str, Any] = {
    "subscriber_id": np.dtype("S1"),  # UTF-8 bytes: no Python object per line
    "share": float,
    "account_id": np.dtype("S1"),  # b"" for none
    "segment": np.int8,  # position in SEGMENTS
    "vip": bool,
    "tracked": np.int8,
    "arpu": float,
    "churn_risk": float,
    "sentiment_30d": float,
    "negative_tickets": float,
}
_READ_ROWS = 200_000


class LineMirror:
    """The lines each cell serves, with what the aggregates sum (the rows of :func:`_line_select`),
    kept in the process that runs the value passes: a pass re-reads only the lines of the subscribers
    that changed and recomputes the touched cells from here, so its cost follows the changes, not the
    lines on the cells they touch. Valid while the passes run here one after another (``pass_id``:
    the pass it is current with); otherwise it is read afresh.
    """

    def __init__(self) -> None:
        self.cell_pos: dict[str, int] = {}
        self.rows = CellRows(_LINE_FIELDS)
        self.pass_id: str | None = None

    def _positions(self, cells: list[str]) -> np.ndarray:
        return positions(self.cell_pos, cells)

    @classmethod
    def read(cls, conn: Connection) -> LineMirror:
        """Every served line, read in slices straight into arrays."""
        mirror = cls()
        result = conn.execute(_line_select().execution_options(stream_results=True, yield_per=_READ_ROWS))
        columns = list(result.keys())
        cell_ids: list[str] = []
        parts: list[dict[str, np.ndarray]] = []
        for chunk in result.partitions(_READ_ROWS):
            values = dict(zip(columns, zip(*chunk, strict=True), strict=True))
            cell_ids.extend(values["cell_id"])
            parts.append(_arrays(values))
        cols = {k: np.concatenate([p[k] for p in parts]) for k in _LINE_FIELDS} if parts else _arrays({})
        mirror._set(sorted(set(cell_ids)), mirror._positions(cell_ids), cols)
        return mirror

    def _set(self, cells: list[str], row_cell: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        """The rows ``cols`` (on cells at ``row_cell``) become the rows of ``cells``, each cell's in one
        order: segment, VIP, subscriber."""
        order = np.lexsort((cols["subscriber_id"], cols["vip"], cols["segment"], row_cell))
        self.rows.replace(self._positions(cells), row_cell[order], {k: v[order] for k, v in cols.items()})

    def lines(self, cells: list[str]) -> pd.DataFrame:
        """The rows of ``cells`` as :func:`_line_select` returns them."""
        at = np.array([self.cell_pos[c] for c in cells if c in self.cell_pos], dtype=np.int64)
        self.rows.grow(len(self.cell_pos))
        rows, items = expand(at, self.rows.start, self.rows.count)
        cols = self.rows.take(items)
        cols |= {"subscriber_id": _decoded(cols["subscriber_id"]), "account_id": _decoded(cols["account_id"])}
        out = pd.DataFrame(cols)
        out["segment"] = np.array(SEGMENTS, dtype=object)[out["segment"].to_numpy()]
        out.insert(0, "cell_id", np.array(list(self.cell_pos), dtype=object)[at][rows])
        return out

    def update(self, conn: Connection, cells: set[str], subscriber_ids: set[str]) -> None:
        """Re-read the lines of ``subscriber_ids`` (all of them lie on ``cells``) into the cells."""
        parts = chunks(sorted(subscriber_ids))
        fresh = pd.concat(
            [read_frame(conn, _line_select(subscriber_ids=part)) for part in parts], ignore_index=True
        )
        fresh = fresh[fresh["cell_id"].isin(cells)]
        listed = sorted(cells)
        at = self._positions(listed)
        self.rows.grow(len(self.cell_pos))
        rows, items = expand(at, self.rows.start, self.rows.count)
        kept = self.rows.take(items)
        changed = np.array([s.encode() for s in subscriber_ids], dtype=bytes)
        keep = ~np.isin(kept["subscriber_id"], changed)
        new = _arrays({c: fresh[c].tolist() for c in fresh.columns})
        cols = {k: np.concatenate([kept[k][keep], new[k]]) for k in _LINE_FIELDS}
        row_cell = np.concatenate([at[rows][keep], self._positions(fresh["cell_id"].tolist())])
        self._set(listed, row_cell, cols)


def _arrays(values: dict[str, Any]) -> dict[str, np.ndarray]:
    """Columns of line rows (as :func:`_line_select` names them, lists of driver values) as kept:
    segments as codes, ids as UTF-8 byte strings (b"" for none) in one contiguous array each (a
    million lines kept as Python strings would cost far more), missing numbers as NaN."""
    out: dict[str, np.ndarray] = {}
    for name, kind in _LINE_FIELDS.items():
        col = values.get(name, ())
        if name == "segment":
            out[name] = segment_codes(col)
        elif np.dtype(kind).kind == "S":
            out[name] = np.array([b"" if v is None else str(v).encode() for v in col], dtype=bytes)
        else:
            out[name] = np.array(list(col), dtype=float).astype(kind)  # None -> NaN
    return out


def _decoded(values: np.ndarray) -> np.ndarray:
    """Byte-string ids back to Python strings (None for b"")."""
    return np.array([v.decode() if v else None for v in values.tolist()], dtype=object)


_MIRRORS: weakref.WeakKeyDictionary[Any, LineMirror] = weakref.WeakKeyDictionary()


def forget(engine: Any) -> None:
    """Read the lines afresh on the next pass on ``engine``."""
    _MIRRORS.pop(engine, None)


def _since(col: Any, since: datetime) -> Any:
    return col > since


def _ids(conn: Connection, stmt: Any) -> list[str]:
    return [r[0] for r in conn.execute(stmt) if r[0] is not None]


class _Changes:
    """Rows changed since the watermark, minus those a previous pass already handled.

    The watermark trails the clock (see OVERLAP), so a pass re-reads the rows of the last few
    minutes; the (table, key, version) triples handled last time are remembered and skipped, so a
    row costs one pass unless it is new or committed late.
    """

    def __init__(self, conn: Connection, since: datetime, seen: dict[str, str]) -> None:
        self.conn, self.since, self.seen = conn, since, seen
        self.handled: dict[str, str] = {}

    def keys(self, tag: str, key: Any, version: Any, *where: Any) -> list[str]:
        out = []
        for k, v in self.conn.execute(select(key, version).where(_since(version, self.since), *where)):
            if k is None:
                continue
            mark = f"{tag}:{k}"
            stamp = v.isoformat() if hasattr(v, "isoformat") else str(v)
            self.handled[mark] = stamp
            if self.seen.get(mark) != stamp:
                out.append(str(k))
        return out


def _touched_cells(conn: Connection, changes: _Changes, limit: int) -> tuple[set[str], set[str]] | None:
    """Cells whose aggregates the changes affect and the subscribers whose lines changed; None when
    more than ``limit`` cells.

    Each step reads changed keys through an index, then the cells they reach by key, so the cost
    follows the number of changes.
    """
    sc, e = subscriber_cells, topology_edges
    changed_subs = changes.keys("s", subscribers.c.id, subscribers.c.ingested_at)
    changed_subs += changes.keys("g", subscriber_signals.c.subscriber_id, subscriber_signals.c.scored_at)
    if len(changed_subs) > limit * 20:
        return None
    changed_accounts = changes.keys("a", accounts.c.id, accounts.c.ingested_at)
    served = changes.keys("c", sc.c.subscriber_id + "|" + sc.c.cell_id, sc.c.ingested_at)
    cells: set[str] = {k.split("|", 1)[1] for k in served}
    changed_subs += [k.split("|", 1)[0] for k in served]  # and the home cell they may leave
    cells.update(
        k.split("|", 1)[0]
        for k in changes.keys(
            "e", e.c.parent_id + "|" + e.c.child_id, e.c.ingested_at, e.c.child_type == "service"
        )
    )
    for part in chunks(sorted(set(changed_accounts))):
        changed_subs += _ids(conn, select(subscribers.c.id).where(subscribers.c.account_id.in_(part)))
    changed_services = changes.keys("v", services.c.id, services.c.ingested_at)
    for part in chunks(sorted(set(changed_accounts))):
        changed_services += _ids(conn, select(services.c.id).where(services.c.account_id.in_(part)))
    for part in chunks(sorted(set(changed_subs))):
        cells.update(_ids(conn, select(sc.c.cell_id).where(sc.c.subscriber_id.in_(part))))
        cells.update(_ids(conn, select(subscribers.c.home_cell_id).where(subscribers.c.id.in_(part))))
        if len(cells) > limit:
            return None
    for part in chunks(sorted(set(changed_services))):
        cells.update(
            _ids(conn, select(e.c.parent_id).where(e.c.child_id.in_(part), e.c.child_type == "service"))
        )
    return (cells, set(changed_subs)) if len(cells) <= limit else None


def _high_water(conn: Connection) -> datetime | None:
    cols = (
        subscribers.c.ingested_at,
        subscriber_cells.c.ingested_at,
        accounts.c.ingested_at,
        services.c.ingested_at,
        topology_edges.c.ingested_at,
        subscriber_signals.c.scored_at,
    )
    # One statement, each max read from its index.
    row = conn.execute(select(*[select(func.max(c)).scalar_subquery() for c in cols])).one()
    found = [m for m in row if m is not None]
    return max(found) if found else None


def refresh_values(conn: Connection, *, now: datetime, full: bool = False) -> ValueRefresh:
    """Bring the aggregates up to date with the customer base, in the caller's transaction."""
    state = load_state(conn, *STATE_KEY, for_update=True)
    since = datetime.fromisoformat(state["changed_at"]) if state.get("changed_at") else None
    mark = _high_water(conn)
    n_cells = int(state.get("cells") or 0)
    touched: set[str] | None = None
    changed_subs: set[str] = set()
    changes = _Changes(conn, since, dict(state.get("seen") or {})) if since is not None else None
    if not full and changes is not None and n_cells:
        found = _touched_cells(conn, changes, max(1000, int(n_cells * FULL_REBUILD_SHARE)))
        if found is not None:
            touched, changed_subs = found
    previous = state.get("pass")
    pass_id = uuid.uuid4().hex
    mirror = _MIRRORS.get(conn.engine)
    if mirror is None or previous is None or mirror.pass_id != previous:
        mirror = None  # another process or a rebuild by hand passed since: read the lines afresh
    if touched is None:
        _rebuild(conn, now=now)
        mirror = LineMirror.read(conn)
        count = conn.execute(select(func.count(func.distinct(cell_value.c.cell_id)))).scalar_one()
        result = ValueRefresh(cells=int(count), full=True, watermark=mark, pass_id=pass_id, previous=previous)
    else:
        if mirror is None:
            mirror = LineMirror.read(conn)
        elif changed_subs:
            mirror.update(conn, touched, changed_subs)
        rows = _write_cells(conn, mirror, sorted(touched), now) if touched else None
        result = ValueRefresh(
            rows=rows,
            cells=len(touched),
            full=False,
            watermark=mark,
            touched=frozenset(touched),
            pass_id=pass_id,
            previous=previous,
        )
    # The watermark trails `now` by OVERLAP: a batch whose ingest began earlier but committed after
    # this pass read is still seen by the next one (re-reading a row is harmless).
    new_mark = min(mark, now - OVERLAP) if mark is not None else since
    cells = result.cells if result.full else n_cells
    # Remember what this pass handled that the next one will read again (bounded: after a bulk
    # change the next pass simply re-reads).
    again = {}
    if changes is not None and new_mark is not None and touched is not None:
        floor = new_mark.isoformat()
        again = {k: v for k, v in changes.handled.items() if v > floor}
        if len(again) > MAX_REMEMBERED:
            again = {}
    state = {
        "changed_at": new_mark.isoformat() if new_mark else None,
        "cells": cells,
        "seen": again,
        "pass": pass_id,
    }
    save_state(conn, *STATE_KEY, state, now=now)
    mirror.pass_id = pass_id
    _MIRRORS[conn.engine] = mirror
    refresh_line_classes(conn, now=now)
    return result


def refresh_line_classes(conn: Connection, *, now: datetime) -> int | None:
    """Bring ``line_values`` up to date with the subscribers and accounts, in the caller's
    transaction: the lines ingested since the last pass (or whose account was), or all of them on
    the first pass and after a bulk change. Returns how many lines were updated (None: all).

    The next pass starts OVERLAP before the newest row seen, so a batch committed after this pass
    but stamped before it is still read; readers weigh live what was ingested after ``seen_at``.
    """
    state = load_state(conn, *line_values.STATE_KEY, for_update=True)
    since = datetime.fromisoformat(state["changed_at"]) if state.get("changed_at") else None
    mark = line_values.high_water(conn)
    changed = line_values.changed_since(conn, since, cap=LINE_CLASS_REBUILD) if since is not None else None
    if changed is None:
        lines = line_values.rebuild(conn)
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE line_values"))
    else:
        kept = state.get("lines")
        lines = int(kept) if kept is not None else line_values.count(conn)
        if changed:
            lines += line_values.update(conn, changed)
    new_since = min(mark, now - OVERLAP) if mark is not None else since
    save_state(
        conn,
        *line_values.STATE_KEY,
        {
            "changed_at": new_since.isoformat() if new_since else None,
            "seen_at": mark.isoformat() if mark else None,
            "lines": lines,
        },
        now=now,
    )
    return None if changed is None else len(changed)
