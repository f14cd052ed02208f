"""The cells each active incident affects and how degraded each one is, from the topology and KPIs.

Affected cells are the cells below the resources of the incident's active alarms (below all its
alarms once none is active). A cell's degraded share is the larger of its unavailability and its
throughput shortfall against its own median before the incident; before its first sample after
the incident opened, the configured assumed share stands in. Shares are re-measured only when a
newer KPI period arrived, so a refresh costs the affected cells' latest samples, nothing more. A
baseline reaching back past the raw samples retention keeps is read from the cells' hourly
roll-ups there (:mod:`dashboard.incidents.samples`): the median of their hours' means.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, tuple_, update

from dashboard.incidents import samples
from dashboard.kpis import ImpactRules
from dashboard.store.db import chunks, read_frame
from dashboard.store.schema import cells, incident_cells, kpi_samples, topology_edges

PERIOD = timedelta(minutes=15)


def cells_below(
    conn: Connection,
    resource_ids: Iterable[str],
    *,
    max_depth: int = 8,
    memo: dict[str, set[str]] | None = None,
) -> dict[str, set[str]]:
    """resource id -> the cells below it (through resource -> resource -> cell edges); a cell id -> itself.

    ``memo``: answers of earlier calls on the same topology; only the resources missing from it are
    walked, and their answers are added to it.
    """
    if memo is not None:
        wanted = set(resource_ids)
        missing = wanted - memo.keys()
        if missing:
            memo.update(cells_below(conn, missing, max_depth=max_depth))
        return {r: memo[r] for r in wanted}
    roots = set(resource_ids)
    children: dict[str, set[tuple[str, str]]] = defaultdict(set)
    frontier, seen = set(roots), set(roots)
    for _ in range(max_depth):
        if not frontier:
            break
        nxt: set[str] = set()
        for part in chunks(sorted(frontier)):
            q = select(
                topology_edges.c.parent_id, topology_edges.c.child_type, topology_edges.c.child_id
            ).where(
                topology_edges.c.parent_type == "resource",
                topology_edges.c.child_type.in_(("resource", "cell")),
                topology_edges.c.parent_id.in_(part),
            )
            for parent, ctype, child in conn.execute(q):
                children[parent].add((ctype, child))
                if ctype == "resource" and child not in seen:
                    seen.add(child)
                    nxt.add(child)
        frontier = nxt
    done: dict[str, set[str]] = {}

    def down(r: str, depth: int = 0) -> set[str]:
        if r in done:
            return done[r]
        done[r] = set()  # cycle guard
        out: set[str] = set()
        for ctype, child in children.get(r, ()):
            if ctype == "cell":
                out.add(child)
            elif depth < max_depth:
                out |= down(child, depth + 1)
        done[r] = out
        return out

    out = {r: down(r) for r in roots}
    # A cell stands for itself (the resource of an alarm raised on a cell's own KPI anomaly).
    bare = sorted(r for r, found in out.items() if not found)
    for part in chunks(bare):
        for (cell_id,) in conn.execute(select(cells.c.id).where(cells.c.id.in_(part))):
            out[cell_id] = {cell_id}
    return out


def degraded_share(
    availability: pd.Series, throughput: pd.Series, baseline: pd.Series, *, min_share: float
) -> pd.Series:
    """max(1 - availability/100, 1 - throughput/baseline), clipped to 0..1; below min_share -> 0."""
    down = (1.0 - availability / 100.0).clip(0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        short = (1.0 - throughput / baseline.where(baseline > 0)).clip(0.0, 1.0)
    share = pd.concat([down, short], axis=1).max(axis=1, skipna=True)
    share = share.where(share >= min_share, 0.0)
    return share


def latest_period(conn: Connection, kpi: str) -> datetime | None:
    """The latest period with samples of ``kpi``."""
    return conn.execute(select(func.max(kpi_samples.c.period_start)).where(kpi_samples.c.kpi == kpi)).scalar()


def _samples(
    conn: Connection, cells: list[str], kpis: tuple[str, ...], lo: datetime, hi: datetime
) -> pd.DataFrame:
    """The cells' samples of ``kpis`` in [lo, hi): cell_id, kpi, period_start, value. Before the hour
    the kept raw samples begin, each quarter carries its hour's roll-up (a baseline measured late,
    for an incident older than the raw samples retention keeps)."""
    frames = []
    raw_from = samples.raw_samples_from(conn, kpis)
    raw_from = hi if raw_from is None else min(max(raw_from, lo), hi)
    if raw_from > lo:
        hours = samples.hourly_sums(conn, cells, kpis, lo, raw_from, per_cell=True)
        hours["value"] = hours["total"] / hours["weight"]
        frames.append(samples.quarters(hours, lo, raw_from)[["cell_id", "kpi", "period_start", "value"]])
    ks = kpi_samples
    for part in chunks(cells) if raw_from < hi else ():
        q = select(ks.c.entity_id, ks.c.kpi, ks.c.period_start, ks.c.value).where(
            ks.c.entity_type == "cell",
            ks.c.entity_id.in_(part),
            ks.c.kpi.in_(kpis),
            ks.c.period_start >= raw_from,
            ks.c.period_start < hi,
        )
        frames.append(read_frame(conn, q).set_axis(["cell_id", "kpi", "period_start", "value"], axis=1))
    frames = [f for f in frames if not f.empty]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["cell_id", "kpi", "period_start", "value"])
    )


def refresh_impact(
    conn: Connection,
    active: Mapping[str, tuple[datetime, set[str]]],
    rules: ImpactRules,
    *,
    now: datetime,
    below_memo: dict[str, set[str]] | None = None,
    changed: set[str] | None = None,
    latest: tuple[datetime | None] | None = None,
) -> int:
    """Bring ``incident_cells`` in line with the active incidents ``{id: (opened_at, alarm resources)}``.

    Returns the number of (incident, cell) shares measured in this pass. ``below_memo``: see
    :func:`cells_below`; ``changed`` receives the incidents whose cells or degraded shares changed;
    ``latest``: the latest availability period, when the caller read it already (in a 1-tuple).
    """
    ic = incident_cells
    changed = set() if changed is None else changed
    all_resources = {r for _, res in active.values() for r in res}
    below = cells_below(conn, all_resources, memo=below_memo)
    wanted = {(inc_id, cell) for inc_id, (_, res) in active.items() for r in res for cell in below.get(r, ())}
    # Only the active incidents' rows: those of resolved incidents stay as last measured, the
    # record of who an incident hit (a subscriber's story reads them).
    cols = ["incident_id", "cell_id", "degraded_share", "baseline_throughput", "measured_period"]
    parts = [
        read_frame(
            conn,
            select(
                ic.c.incident_id,
                ic.c.cell_id,
                ic.c.degraded_share,
                ic.c.baseline_throughput,
                ic.c.measured_period,
            ).where(ic.c.incident_id.in_(chunk)),
        )
        for chunk in chunks(sorted(active))
    ]
    stored = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    have = set(zip(stored["incident_id"].tolist(), stored["cell_id"].tolist(), strict=True))
    gone = sorted(have - wanted)
    changed.update(i for i, _ in gone)
    for part in chunks(gone):
        conn.execute(delete(ic).where(tuple_(ic.c.incident_id, ic.c.cell_id).in_(part)))
    new = sorted(wanted - have)
    changed.update(i for i, _ in new)
    if new:
        conn.execute(
            insert(ic),
            [
                {"incident_id": i, "cell_id": c, "degraded_share": rules.assumed_share, "basis": "assumed"}
                for i, c in new
            ],
        )
    period = latest_period(conn, rules.availability_kpi) if latest is None else latest[0]
    if period is None or not wanted:
        return 0
    # What needs measuring: pairs not yet measured at the latest period, whose incident had begun.
    pairs = pd.DataFrame(sorted(wanted), columns=["incident_id", "cell_id"])
    pairs = pairs.merge(stored, on=["incident_id", "cell_id"], how="left")
    pairs["opened_at"] = pairs["incident_id"].map({k: v[0] for k, v in active.items()})
    pairs = pairs[(pairs["measured_period"].isna() | (pairs["measured_period"] < period))]
    pairs = pairs[pairs["opened_at"] < period + PERIOD]
    if pairs.empty:
        return 0
    cells = sorted(pairs["cell_id"].unique())
    kpis = (rules.availability_kpi, rules.throughput_kpi)
    current = _samples(conn, cells, kpis, period, period + timedelta(seconds=1))
    cur = current.pivot_table(index="cell_id", columns="kpi", values="value", aggfunc="mean")
    # Baselines for pairs without one: the cell's median throughput over `baseline` before opening.
    need = pairs[pairs["baseline_throughput"].isna()]
    if not need.empty:
        span = timedelta(seconds=rules.baseline_s)
        lo, hi = need["opened_at"].min() - span, need["opened_at"].max()
        hist = _samples(conn, sorted(need["cell_id"].unique()), (rules.throughput_kpi,), lo, hi)
        if not hist.empty:
            m = need[["incident_id", "cell_id", "opened_at"]].merge(hist, on="cell_id")
            m = m[(m["period_start"] < m["opened_at"]) & (m["period_start"] >= m["opened_at"] - span)]
            med = m.groupby(["incident_id", "cell_id"])["value"].median()
            key = pd.MultiIndex.from_frame(pairs[["incident_id", "cell_id"]])
            fill = pd.Series(med.reindex(key).to_numpy(), index=pairs.index)
            pairs["baseline_throughput"] = pairs["baseline_throughput"].fillna(fill)
    avail = pairs["cell_id"].map(cur[rules.availability_kpi]) if rules.availability_kpi in cur else np.nan
    tput = pairs["cell_id"].map(cur[rules.throughput_kpi]) if rules.throughput_kpi in cur else np.nan
    pairs["availability"] = avail
    pairs["throughput"] = tput
    share = degraded_share(
        pairs["availability"].astype(float),
        pairs["throughput"].astype(float),
        pairs["baseline_throughput"].astype(float),
        min_share=rules.min_share,
    )
    measured = pairs["availability"].notna() | pairs["throughput"].notna()
    rows = []
    for r, s, ok in zip(pairs.itertuples(index=False), share, measured, strict=True):
        new_share = float(s) if ok else rules.assumed_share
        if pd.isna(r.degraded_share) or float(r.degraded_share) != new_share:
            changed.add(r.incident_id)
        rows.append(
            {
                "i": r.incident_id,
                "c": r.cell_id,
                "share": new_share,
                "basis": "kpi" if ok else "assumed",
                "baseline": None if pd.isna(r.baseline_throughput) else float(r.baseline_throughput),
                "period": period,
            }
        )
    conn.execute(
        update(ic)
        .where(and_(ic.c.incident_id == bindparam("i"), ic.c.cell_id == bindparam("c")))
        .values(
            degraded_share=bindparam("share"),
            basis=bindparam("basis"),
            baseline_throughput=bindparam("baseline"),
            measured_period=bindparam("period"),
        ),
        rows,
    )
    return len(rows)
