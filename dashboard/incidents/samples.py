"""Cells' KPI history for the incidents: the raw samples where retention keeps them, the hourly
roll-ups before.

Retention (dashboard/store/retention.py) drops raw sample days long before their roll-ups; an
incident's KPI means and a late-measured baseline still reach back past the oldest kept sample.
As the KPI pages do (``dashboard.kpi_eval.read``), a period before the hour the kept samples begin
is read from the cells' hourly roll-ups (``kpi_rollups``, level ``cell``), each hour shown in its
four quarters: a mean KPI's quarters show the hour's mean of samples, a traffic-weighted KPI's its
traffic-weighted mean, as the roll-up holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from dashboard.store.db import read_frame_in
from dashboard.store.schema import kpi_rollups, kpi_samples

QUARTER = timedelta(minutes=15)
HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1)


def floor_hour(t: datetime) -> datetime:
    """The start of the hour that holds ``t``."""
    return t - timedelta(seconds=(t - _EPOCH).total_seconds() % 3600)


def as_datetime(value: object) -> datetime | None:
    """A time a driver returned (a datetime, or ISO text from SQLite's aggregates) as a datetime."""
    return None if value is None else pd.Timestamp(value).to_pydatetime()


def raw_samples_from(conn: Connection, kpis: Sequence[str]) -> datetime | None:
    """The hour the kept raw samples of ``kpis`` begin (None when none are kept): one index probe per
    KPI (per partition on PostgreSQL)."""
    ks = kpi_samples
    firsts = [
        as_datetime(conn.execute(select(func.min(ks.c.period_start)).where(ks.c.kpi == k)).scalar())
        for k in kpis
    ]
    kept = [t for t in firsts if t is not None]
    return floor_hour(min(kept)) if kept else None


def hourly_sums(
    conn: Connection,
    cell_ids: Sequence[str],
    kpis: Sequence[str],
    lo: datetime,
    hi: datetime,
    *,
    per_cell: bool,
) -> pd.DataFrame:
    """The cells' hourly roll-ups of ``kpis`` for the hours that start in [floor_hour(lo), hi):
    period_start, kpi (and cell_id with ``per_cell``), total, weight; added over the cells otherwise.
    Read by the cells' ids, per chunk, so each cell's rows are read by key."""
    r = kpi_rollups
    keys = [r.c.period_start, r.c.series.label("kpi")]
    if per_cell:
        keys.append(r.c.entity_id.label("cell_id"))
    stmt = (
        select(*keys, func.sum(r.c.total).label("total"), func.sum(r.c.weight).label("weight"))
        .where(
            r.c.level == "cell",
            r.c.grain_s == 3600,
            r.c.series.in_(list(kpis)),
            r.c.period_start >= floor_hour(lo),
            r.c.period_start < hi,
        )
        .group_by(*keys)
    )
    rows = read_frame_in(conn, stmt, r.c.entity_id, sorted(set(cell_ids)))
    names = [k.name for k in keys]
    if rows.empty:
        return pd.DataFrame(columns=[*names, "total", "weight"])
    rows["period_start"] = pd.to_datetime(rows["period_start"])
    for col in ("total", "weight"):
        rows[col] = rows[col].astype(float)
    return rows.groupby(names, as_index=False, sort=True)[["total", "weight"]].sum()


def quarters(hours: pd.DataFrame, lo: datetime, hi: datetime) -> pd.DataFrame:
    """Hourly rows (period_start, value and any keys) as the four quarter-hour rows of each hour,
    each with the hour's value, keeping the quarters in [lo, hi)."""
    if hours.empty:
        return hours
    out = hours.merge(pd.DataFrame({"_q": np.arange(4)}), how="cross")
    out["period_start"] = out["period_start"] + out.pop("_q") * QUARTER
    keep = (out["period_start"] >= pd.Timestamp(lo)) & (out["period_start"] < pd.Timestamp(hi))
    return out[keep].reset_index(drop=True)
