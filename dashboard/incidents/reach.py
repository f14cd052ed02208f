"""How many subscribers each incident reaches, counted by the queue refresh for the incident's detail.

An incident's detail says how many (not churned) subscribers its degraded cells serve. Counting
them is a distinct count over every line of those cells: tens of thousands of rows for an
incident that takes a transport link down, most of a second at a million lines. The queue
refresh counts them instead (:func:`refresh_reach`), in one statement for the incidents whose
degraded cells changed or whose cells' lines did since its last pass, and stores each count with
a digest of the cells it was counted for (``incident_reach``). The detail reads the row when the
digest still names the incident's degraded cells, and counts live otherwise
(:func:`dashboard.incidents.read.count_affected_subscribers`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, delete, func, insert, select

from dashboard.ingest.runner import load_state, save_state
from dashboard.store.db import chunks
from dashboard.store.schema import incident_cells, incident_reach, subscriber_cells, subscribers

STATE_KEY = ("vantage", "incident-reach")
#: The pass reads again what was ingested this long before its last one (a batch committed late).
OVERLAP = timedelta(minutes=5)
#: Above this many changed lines since the last pass, every incident is counted afresh.
RECOUNT_ALL = 100_000
#: Incidents counted per statement.
PER_STATEMENT = 200


def cells_key(cell_ids: Iterable[str]) -> str:
    """A digest of a set of cell ids: the same set gives the same key, in any order."""
    return hashlib.sha256("\n".join(sorted(set(cell_ids))).encode()).hexdigest()


def degraded_cells(conn: Connection, incident_id: str) -> list[str]:
    """The cells ``incident_id`` degrades (a share above 0), by the incident's key."""
    ic = incident_cells
    stmt = select(ic.c.cell_id).where(ic.c.incident_id == incident_id, ic.c.degraded_share > 0)
    return [str(c) for c in conn.execute(stmt).scalars()]


def _count_stmt(incident_ids: list[str]) -> Select[Any]:
    """Per incident, its degraded cells' distinct subscribers that are not churned."""
    ic, sc, s = incident_cells, subscriber_cells, subscribers
    return (
        select(ic.c.incident_id, func.count(func.distinct(s.c.id)))
        .select_from(
            ic.join(sc, sc.c.cell_id == ic.c.cell_id).join(
                s, and_(s.c.id == sc.c.subscriber_id, s.c.status != "churned")
            )
        )
        .where(ic.c.incident_id.in_(incident_ids), ic.c.degraded_share > 0)
        .group_by(ic.c.incident_id)
    )


def _touched_cells(conn: Connection, since: datetime) -> set[str] | None:
    """Cells whose lines changed since ``since`` (a line served or no longer served there, a line
    churned or back), each step through an ``ingested_at`` index; None when too much changed."""
    sc, s = subscriber_cells, subscribers
    served = conn.execute(
        select(sc.c.cell_id, sc.c.subscriber_id).where(sc.c.ingested_at > since).limit(RECOUNT_ALL + 1)
    ).all()
    lines = conn.execute(select(s.c.id).where(s.c.ingested_at > since).limit(RECOUNT_ALL + 1)).scalars().all()
    if len(served) > RECOUNT_ALL or len(lines) > RECOUNT_ALL:
        return None
    cells = {str(c) for c, _ in served}
    for part in chunks(sorted({str(i) for i in lines})):
        cells.update(
            str(c) for c in conn.execute(select(sc.c.cell_id).where(sc.c.subscriber_id.in_(part))).scalars()
        )
    return cells


def _high_water(conn: Connection) -> datetime | None:
    row = conn.execute(
        select(
            select(func.max(subscribers.c.ingested_at)).scalar_subquery(),
            select(func.max(subscriber_cells.c.ingested_at)).scalar_subquery(),
        )
    ).one()
    found = [m for m in row if m is not None]
    return max(found) if found else None


def refresh_reach(conn: Connection, *, now: datetime) -> int:
    """Count again, in the caller's transaction, the incidents whose degraded cells changed or whose
    cells' lines did since the last pass (every incident on the first); returns how many."""
    state = load_state(conn, *STATE_KEY, for_update=True)
    since = datetime.fromisoformat(state["changed_at"]) if state.get("changed_at") else None
    mark = _high_water(conn)
    ic = incident_cells
    current: dict[str, set[str]] = {}
    for iid, cid in conn.execute(select(ic.c.incident_id, ic.c.cell_id).where(ic.c.degraded_share > 0)):
        current.setdefault(str(iid), set()).add(str(cid))
    stored = dict(conn.execute(select(incident_reach.c.incident_id, incident_reach.c.cells_key)).all())
    touched = _touched_cells(conn, since) if since is not None else None
    stale = sorted(
        iid
        for iid, cells in current.items()
        if touched is None or stored.get(iid) != cells_key(cells) or not cells.isdisjoint(touched)
    )
    gone = sorted(set(stored) - set(current))
    for part in chunks(gone):
        conn.execute(delete(incident_reach).where(incident_reach.c.incident_id.in_(part)))
    for lo in range(0, len(stale), PER_STATEMENT):
        part = stale[lo : lo + PER_STATEMENT]
        counts: dict[str, int] = {str(i): int(n) for i, n in conn.execute(_count_stmt(part))}
        conn.execute(delete(incident_reach).where(incident_reach.c.incident_id.in_(part)))
        conn.execute(
            insert(incident_reach),
            [
                {
                    "incident_id": iid,
                    "subscribers": int(counts.get(iid, 0)),
                    "cells_key": cells_key(current[iid]),
                    "computed_at": now,
                }
                for iid in part
            ],
        )
    new_since = min(mark, now - OVERLAP) if mark is not None else since
    save_state(conn, *STATE_KEY, {"changed_at": new_since.isoformat() if new_since else None}, now=now)
    return len(stale)
