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
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dashboard.store.schema import kpi_sample_hours

HOUR_S = 3600


def _hours(periods: Iterable[object]) -> list[datetime]:
    stamps = pd.to_datetime(pd.Series(list(periods)), format="mixed").dropna()
    return sorted({t.to_pydatetime() for t in stamps.dt.floor("h").unique()})


def mark_sample_hours(conn: Connection, periods: Iterable[object], *, now: datetime) -> int:
    """Mark the hours of ``periods`` (the samples' period starts) as written, in the caller's
    transaction; returns how many hours were marked."""
    hours = _hours(periods)
    if not hours:
        return 0
    rows = [{"hour": h, "ingested_at": now} for h in hours]
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(kpi_sample_hours).values(rows)
    # An update, not "do nothing": it locks an existing mark until this transaction commits.
    conn.execute(stmt.on_conflict_do_update(index_elements=["hour"], set_={"ingested_at": now}))
    return len(hours)


def take_sample_hours(conn: Connection) -> list[datetime]:
    """Delete every mark, in the caller's transaction, and return their hours (oldest first)."""
    t = kpi_sample_hours
    taken = conn.execute(delete(t).returning(t.c.hour)).scalars().all()
    return sorted(pd.Timestamp(h).to_pydatetime() for h in taken)


__all__ = ["mark_sample_hours", "take_sample_hours"]
