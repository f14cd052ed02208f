"""An incident detail's cells and KPI means: measured live, and kept by the queue refresh.

The detail of an incident of hundreds of cells reads its cells (with their sites and the lines
they serve) and the mean of two KPIs over them per period: thousands of rows, 100-200 ms at a
million lines. The queue refresh (:func:`dashboard.incidents.summary.refresh_summary`) measures
both with the functions here for the incidents whose inputs changed and keeps them
(``incident_detail_cells``, ``incident_detail_kpis``), each under a digest of what the detail can
read cheaply (``incident_detail_keys``):

- cells: the incident's ``incident_cells`` rows (cell, degraded share, basis, period measured).
  Their names, sites and lines are not in it: the refresh measures an incident's cells again when
  the value pass recomputed one of its cells' lines or a cell or site was ingested again, so those
  show at most one refresh later, as the accounts do;
- KPI means: the incident's opening and resolution times, its cells, the KPIs and the span before
  it, and, per KPI, the newest sample period, how many samples it holds, and the hour the kept raw
  samples begin (:mod:`dashboard.incidents.samples`): a new period, a late sample of the newest
  one, and a retention pass each change it. An active incident's kept means run to the refresh's
  time, so they stand only while no sample is newer than that.

The detail reads the kept rows while the digest matches and measures live otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import Connection, func, select

from dashboard.incidents import samples
from dashboard.kpis import Scoring
from dashboard.store.db import read_frame, read_frame_in
from dashboard.store.schema import (
    cell_value,
    cells,
    incident_cells,
    incident_detail_cells,
    incident_detail_keys,
    incident_detail_kpis,
    kpi_samples,
    sites,
)

#: How long before the incident opened its KPI means begin.
BEFORE = timedelta(hours=3)
#: The stored columns of a cell row, in the order the detail returns them.
CELL_COLUMNS = [
    "cell_id",
    "name",
    "technology",
    "site_id",
    "site",
    "lat",
    "lon",
    "degraded_share",
    "basis",
    "measured_period",
    "lines",
]
KPI_COLUMNS = ["period_start", "kpi", "value"]


def impact_kpis(scoring: Scoring) -> list[str]:
    """The KPIs whose means the detail shows: availability and throughput, as the rules name them."""
    return [scoring.impact.availability_kpi, scoring.impact.throughput_kpi]


def _digest(lines: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _iso(t: Any) -> str:
    return "" if t is None or pd.isna(t) else pd.Timestamp(t).isoformat()


# --- cells --------------------------------------------------------------------------------------


def cell_rows(conn: Connection, incident_id: str) -> list[tuple[Any, ...]]:
    """The incident's ``incident_cells`` rows (cell, share, basis, period measured) for :func:`cells_key`."""
    ic = incident_cells
    return [
        tuple(r)
        for r in conn.execute(
            select(ic.c.cell_id, ic.c.degraded_share, ic.c.basis, ic.c.measured_period).where(
                ic.c.incident_id == incident_id
            )
        ).all()
    ]


def cells_key(rows: Iterable[tuple[Any, ...]]) -> str:
    """A digest of an incident's (cell, degraded share, basis, period measured) rows, in any order."""
    return _digest(sorted(f"{c}\t{float(d)!r}\t{b}\t{_iso(p)}" for c, d, b, p in rows))


def measure_cells(conn: Connection, incident_id: str) -> pd.DataFrame:
    """Cells the incident affects (the columns of :data:`CELL_COLUMNS`), with site coordinates,
    degraded share and lines served, the most degraded first."""
    ic = incident_cells
    # Lines per cell for this incident's cells only (not an aggregate of the whole table).
    lines = (
        select(cell_value.c.cell_id, func.sum(cell_value.c.lines).label("lines"))
        .where(cell_value.c.cell_id.in_(select(ic.c.cell_id).where(ic.c.incident_id == incident_id)))
        .group_by(cell_value.c.cell_id)
        .subquery()
    )
    df = read_frame(
        conn,
        select(
            ic.c.cell_id,
            cells.c.name,
            cells.c.technology,
            sites.c.id.label("site_id"),
            sites.c.name.label("site"),
            sites.c.lat,
            sites.c.lon,
            ic.c.degraded_share,
            ic.c.basis,
            ic.c.measured_period,
            func.coalesce(lines.c.lines, 0.0).label("lines"),
        )
        .select_from(
            ic.outerjoin(cells, cells.c.id == ic.c.cell_id)
            .outerjoin(sites, sites.c.id == cells.c.site_id)
            .outerjoin(lines, lines.c.cell_id == ic.c.cell_id)
        )
        .where(ic.c.incident_id == incident_id)
        .order_by(ic.c.degraded_share.desc(), ic.c.cell_id),
    )
    return _typed_cells(df.drop_duplicates("cell_id").reset_index(drop=True))


def _typed_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Cell rows with one set of types whether measured or kept, on either store."""
    out = df.copy()
    for col in ("lat", "lon", "degraded_share", "lines"):
        out[col] = pd.to_numeric(out[col]).astype(float)
    for col in ("cell_id", "name", "technology", "site_id", "site", "basis"):
        out[col] = [None if v is None or v != v else str(v) for v in out[col].tolist()]
    out["measured_period"] = pd.to_datetime(out["measured_period"]).astype("datetime64[ns]")
    return out[CELL_COLUMNS]


def kept_cells(conn: Connection, incident_id: str, key: str) -> pd.DataFrame | None:
    """The incident's kept cells while they were measured from the rows named by ``key``; None
    when missing or measured from others."""
    if _stored_key(conn, incident_id, "cells") != key:
        return None
    c = incident_detail_cells
    df = read_frame(
        conn,
        select(*(c.c[n] for n in CELL_COLUMNS)).where(c.c.incident_id == incident_id).order_by(c.c.position),
    )
    return _typed_cells(df)


# --- KPI means ----------------------------------------------------------------------------------


class Marks(NamedTuple):
    """What of the KPIs' samples changes their means: per KPI, the newest period and how many samples
    it holds; and the hour the kept raw samples begin (None: none kept)."""

    newest: tuple[datetime | None, ...]
    counts: tuple[int, ...]
    raw_from: datetime | None

    @property
    def latest(self) -> datetime | None:
        """The newest sample period of any of the KPIs (None: no sample)."""
        known = [t for t in self.newest if t is not None]
        return max(known) if known else None


def kpi_marks(conn: Connection, kpis: Sequence[str]) -> Marks:
    """The :class:`Marks` of ``kpis``: a few index probes per KPI, in one statement."""
    ks = kpi_samples
    newest = [select(func.max(ks.c.period_start)).where(ks.c.kpi == k).scalar_subquery() for k in kpis]
    counts = [
        select(func.count()).where(ks.c.kpi == k, ks.c.period_start == top).scalar_subquery()
        for k, top in zip(kpis, newest, strict=True)
    ]
    firsts = [select(func.min(ks.c.period_start)).where(ks.c.kpi == k).scalar_subquery() for k in kpis]
    row = conn.execute(select(*newest, *counts, *firsts)).one()
    n = len(kpis)
    kept = [t for t in map(samples.as_datetime, row[2 * n :]) if t is not None]
    return Marks(
        newest=tuple(samples.as_datetime(t) for t in row[:n]),
        counts=tuple(int(c or 0) for c in row[n : 2 * n]),
        raw_from=samples.floor_hour(min(kept)) if kept else None,
    )


def kpis_key(
    opened_at: datetime,
    resolved_at: datetime | None,
    cell_ids: Iterable[str],
    kpis: Sequence[str],
    before: timedelta,
    marks: Marks,
) -> str:
    """A digest of what an incident's KPI means are measured from (see the module's docstring)."""
    head = [
        _iso(opened_at),
        _iso(resolved_at),
        ",".join(kpis),
        str(before.total_seconds()),
        ",".join(map(_iso, marks.newest)),
        ",".join(map(str, marks.counts)),
        _iso(marks.raw_from),
    ]
    return _digest([*head, *sorted({str(c) for c in cell_ids})])


def kpi_span(opened_at: datetime, resolved_at: datetime | None, before: timedelta, now: datetime) -> datetime:
    """Where an incident's KPI means end: ``before`` after it was resolved, or ``now``."""
    return (resolved_at + before) if resolved_at is not None else now


def measure_kpis(
    conn: Connection, cell_ids: Sequence[str], kpis: Sequence[str], lo: datetime, end: datetime, marks: Marks
) -> pd.DataFrame:
    """Mean of each KPI over the cells per period in [lo, end] (:data:`KPI_COLUMNS`, by period, then
    KPI): from the raw samples from the hour they begin, from the hourly roll-ups before."""
    ids = sorted({str(c) for c in cell_ids})
    raw_from = marks.raw_from if marks.raw_from is not None else end
    parts = []
    if raw_from > lo:
        hours = samples.hourly_sums(conn, ids, kpis, lo, raw_from, per_cell=False)
        hours["value"] = hours["total"] / hours["weight"]
        older = samples.quarters(hours, lo, raw_from)
        parts.append(older[older["period_start"] <= pd.Timestamp(end)][KPI_COLUMNS])
    if raw_from <= end:
        ks = kpi_samples
        # Sums and counts by the cells' ids (a list the planner sees, so each cell's samples are read
        # by key: joined, an incident of hundreds of cells was planned as a scan of every sample),
        # per chunk of ids, then the means.
        sums = read_frame_in(
            conn,
            select(
                ks.c.period_start,
                ks.c.kpi,
                func.sum(ks.c.value).label("total"),
                func.count(ks.c.value).label("n"),
            )
            .where(
                ks.c.entity_type == "cell",
                ks.c.kpi.in_(list(kpis)),
                ks.c.period_start >= max(lo, raw_from),
                ks.c.period_start <= end,
            )
            .group_by(ks.c.period_start, ks.c.kpi),
            ks.c.entity_id,
            ids,
        )
        if not sums.empty:
            means = sums.groupby(["period_start", "kpi"], as_index=False, sort=True)[["total", "n"]].sum()
            means["value"] = means["total"] / means["n"]
            parts.append(means[KPI_COLUMNS])
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=KPI_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    return _typed_kpis(out.sort_values(["period_start", "kpi"], kind="stable").reset_index(drop=True))


def _typed_kpis(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["period_start"] = pd.to_datetime(out["period_start"]).astype("datetime64[ns]")
    out["kpi"] = out["kpi"].astype(str).astype(object)
    out["value"] = out["value"].astype(float)
    return out[KPI_COLUMNS]


def kept_kpis(
    conn: Connection, incident_id: str, key: str, *, active: bool, marks: Marks, now: datetime
) -> pd.DataFrame | None:
    """The incident's kept KPI means while they were measured from what ``key`` names and, for an
    active incident, no sample is newer than the refresh that kept them or than ``now``; None
    otherwise."""
    k = incident_detail_keys
    stored = conn.execute(
        select(k.c.inputs_key, k.c.computed_at).where(k.c.incident_id == incident_id, k.c.part == "kpis")
    ).first()
    if stored is None or stored.inputs_key != key:
        return None
    kept_to = min(now, samples.as_datetime(stored.computed_at) or now)
    if active and (marks.latest is None or marks.latest > kept_to):
        return None
    m = incident_detail_kpis
    df = read_frame(
        conn,
        select(*(m.c[n] for n in KPI_COLUMNS)).where(m.c.incident_id == incident_id).order_by(m.c.position),
    )
    return _typed_kpis(df) if len(df) else pd.DataFrame(columns=KPI_COLUMNS)


def _stored_key(conn: Connection, incident_id: str, part: str) -> str | None:
    k = incident_detail_keys
    return conn.execute(
        select(k.c.inputs_key).where(k.c.incident_id == incident_id, k.c.part == part)
    ).scalar()
