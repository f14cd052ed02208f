"""Every line's value class, kept so that a list sorted by value walks an index instead of weighing
a million lines.

A line is worth its ARPU x its account's multiplier (:meth:`dashboard.kpis.Scoring.line_value`), and
the multiplier depends only on the account's segment and VIP flag: a handful of classes.
``line_values`` holds each line's class and ARPU, indexed by (segment, vip, arpu descending, id,
source). Within one class, value order is ARPU order whatever the multipliers are, so the most
valuable lines of the whole base are the merge of the first rows of each class's index walk, and a
change of the multipliers in ``kpi_definitions.yaml`` needs no rebuild.

The queue refresh's value pass (:func:`dashboard.incidents.value.refresh_values`) keeps the table
up to date from the subscribers and accounts ingested since its last pass, and saves under
:data:`STATE_KEY` the newest ``ingested_at`` it has seen (``seen_at``) and how many lines the table
holds (``lines``). A reader weighs the lines ingested after that (or whose account was) live, and
takes every other line from the table; the whole list's length is ``lines`` plus the new ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, case, delete, false, func, insert, literal, or_, select, true

from connectors.canonical import SEGMENTS
from dashboard.store.db import chunks
from dashboard.store.schema import accounts, line_values, subscribers

#: Where the value pass keeps its progress (connector_state: connector, stream).
STATE_KEY = ("vantage", "line-values")
#: The classes a line can be in: every segment, VIP or not (an unknown segment counts as consumer).
CLASSES: tuple[tuple[str, bool], ...] = tuple((s, v) for s in SEGMENTS for v in (False, True))
COLUMNS = ("subscriber_id", "source", "segment", "vip", "arpu")


def _weighted_accounts() -> Any:
    """Accounts whose lines are not plain consumer lines (a few percent of them), one row per id:
    a line joins its account by id alone, as the value rule does."""
    a = accounts
    segment = case((a.c.segment.in_(SEGMENTS), a.c.segment), else_=literal("consumer"))
    return (
        select(
            a.c.id,
            func.max(segment).label("segment"),
            func.max(case((a.c.vip.is_(True), 1), else_=0)).label("vip"),
        )
        .where(or_(a.c.segment != "consumer", a.c.vip.is_(True)))
        .group_by(a.c.id)
        .subquery("weighted")
    )


def class_select(subscriber_ids: list[str] | None = None) -> Select[Any]:
    """``line_values`` rows of every line (or of ``subscriber_ids``), as the value rule classes them:
    a line without an account, or with a plain consumer one, is a consumer line, not VIP."""
    s, w = subscribers, _weighted_accounts()
    stmt = select(
        s.c.id,
        s.c.source,
        func.coalesce(w.c.segment, literal("consumer")).label("segment"),
        case((w.c.vip == 1, true()), else_=false()).label("vip"),
        func.coalesce(s.c.arpu, literal(0.0)).label("arpu"),
    ).select_from(s.outerjoin(w, w.c.id == s.c.account_id))
    if subscriber_ids is not None:
        stmt = stmt.where(s.c.id.in_(subscriber_ids))
    return stmt


def rebuild(conn: Connection) -> int:
    """Every line's class afresh, in one statement; returns how many lines there are."""
    conn.execute(delete(line_values))
    conn.execute(insert(line_values).from_select(list(COLUMNS), class_select()))
    return count(conn)


def count(conn: Connection) -> int:
    """How many lines have a class kept."""
    return int(conn.execute(select(func.count()).select_from(line_values)).scalar_one())


def update(conn: Connection, subscriber_ids: list[str]) -> int:
    """The classes of ``subscriber_ids`` afresh (a line no longer stored loses its row); returns by
    how many the lines kept grew."""
    grown = 0
    for part in chunks(sorted(set(subscriber_ids))):
        # Counted, not taken from the statements' row counts: a driver may not report them for an
        # INSERT from a SELECT (psycopg says -1).
        grown -= _kept(conn, part)
        conn.execute(delete(line_values).where(line_values.c.subscriber_id.in_(part)))
        conn.execute(insert(line_values).from_select(list(COLUMNS), class_select(part)))
        grown += _kept(conn, part)
    return grown


def _kept(conn: Connection, subscriber_ids: list[str]) -> int:
    stmt = (
        select(func.count()).select_from(line_values).where(line_values.c.subscriber_id.in_(subscriber_ids))
    )
    return int(conn.execute(stmt).scalar_one())


def new_lines(conn: Connection, subscriber_ids: list[str]) -> int:
    """How many of ``subscriber_ids`` have no class kept yet (lines added since the last pass)."""
    kept: set[str] = set()
    for part in chunks(sorted(set(subscriber_ids))):
        kept.update(
            conn.execute(
                select(line_values.c.subscriber_id).where(line_values.c.subscriber_id.in_(part))
            ).scalars()
        )
    return len(set(subscriber_ids) - kept)


def high_water(conn: Connection) -> datetime | None:
    """The newest ``ingested_at`` of the subscribers and accounts (each read from its index)."""
    row = conn.execute(
        select(
            select(func.max(subscribers.c.ingested_at)).scalar_subquery(),
            select(func.max(accounts.c.ingested_at)).scalar_subquery(),
        )
    ).one()
    found = [m for m in row if m is not None]
    return max(found) if found else None


def changed_since(conn: Connection, since: datetime, *, cap: int) -> list[str] | None:
    """Ids of the lines ingested after ``since`` or whose account was, each step through an index
    (the accounts first, then their lines by account: one statement joining them may be planned as
    a scan of every line); None when more than ``cap``."""
    s, a = subscribers, accounts
    found = set(conn.execute(select(s.c.id).where(s.c.ingested_at > since).limit(cap + 1)).scalars())
    owners = conn.execute(select(a.c.id).where(a.c.ingested_at > since).limit(cap + 1)).scalars().all()
    if len(found) > cap or len(owners) > cap:
        return None
    for part in chunks(sorted({str(o) for o in owners})):
        found.update(conn.execute(select(s.c.id).where(s.c.account_id.in_(part)).limit(cap + 1)).scalars())
        if len(found) > cap:
            return None
    return sorted(str(i) for i in found)
