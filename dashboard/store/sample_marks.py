"""The hours the ingest path wrote KPI samples into, kept until the roll-up pass has read them.

``kpi_samples`` has no ingest time (adding one would widen the largest table by a column and an
index), so the ingest path marks, in the same transaction as the samples, each hour a batch wrote
into (``kpi_sample_hours``: a few rows a pass, whatever the number of cells), and the roll-up pass
takes the marks (deletes them and recomputes those hours) in its own transaction. A sample arriving
hours or days late is rolled up by the next pass, and a pass recomputes the hours that received
samples, not a fixed window before the newest one.

Why no sample is missed when an ingest and a pass overlap: a mark is written with ``ON CONFLICT DO
UPDATE``, which locks the hour's row until the ingest commits. A pass that deletes that row waits
for the lock, and its read of the samples, a later statement, sees the committed samples (READ
COMMITTED on PostgreSQL; SQLite has one writer at a time). An ingest that commits after the pass
read its hour leaves a mark the pass did not delete, for the next pass.

Each mark also keeps the earliest period written into its hour since it was last taken
(``first_period``). When every mark a pass takes lies after the newest period the passes before it
read, nothing they read has changed, and the pass adds the new periods' samples to the rows of
their hours and days instead of adding the hours up again (dashboard/kpi_eval/rollup.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, case, delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dashboard.store.schema import kpi_sample_hours


@dataclass(frozen=True)
class SampleMark:
    """An hour the ingest path wrote samples into, and the earliest period it wrote there."""

    hour: datetime
    #: None for a mark made before the store kept it (the hour is then added up again).
    first_period: datetime | None


def _first_periods(periods: Iterable[object]) -> dict[datetime, datetime]:
    """The earliest period of ``periods`` in each hour."""
    stamps = pd.to_datetime(pd.Series(list(periods)), format="mixed").dropna()
    if stamps.empty:
        return {}
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    first = stamps.groupby(stamps.dt.floor("h")).min()
    return {h.to_pydatetime(): t.to_pydatetime() for h, t in first.items()}


def mark_sample_hours(conn: Connection, periods: Iterable[object], *, now: datetime) -> int:
    """Mark the hours of ``periods`` (the samples' period starts) as written, in the caller's
    transaction; returns how many hours were marked. A mark keeps the earliest period written into
    its hour since it was last taken."""
    first = _first_periods(periods)
    if not first:
        return 0
    t = kpi_sample_hours
    rows = [{"hour": h, "ingested_at": now, "first_period": p} for h, p in sorted(first.items())]
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(t).values(rows)
    earliest = func.least if conn.dialect.name == "postgresql" else func.min
    # An unknown earliest period stays unknown (least() would drop the NULL).
    kept = case(
        (t.c.first_period.is_(None), None), else_=earliest(t.c.first_period, stmt.excluded.first_period)
    )
    # An update, not "do nothing": it locks an existing mark until this transaction commits.
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["hour"], set_={"ingested_at": now, "first_period": kept})
    )
    return len(first)


def take_sample_hours(conn: Connection) -> list[SampleMark]:
    """Delete every mark, in the caller's transaction, and return them (oldest hour first)."""
    t = kpi_sample_hours
    taken = conn.execute(delete(t).returning(t.c.hour, t.c.first_period)).all()
    marks = [
        SampleMark(pd.Timestamp(h).to_pydatetime(), None if p is None else pd.Timestamp(p).to_pydatetime())
        for h, p in taken
    ]
    return sorted(marks, key=lambda m: m.hour)


__all__ = ["SampleMark", "mark_sample_hours", "take_sample_hours"]
