"""The audit log: one record per thing a person or service did that someone may later ask about
(logins, failed logins, unmaskings, searches on personal fields, acknowledgements, token use), and
the filtered reads the Audit page, ``GET /api/v1/audit`` and its CSV export share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from dashboard.store.schema import audit

#: Rows per page of the audit log, at most.
MAX_LIMIT = 1000


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    at: datetime,
    target_type: str | None = None,
    target_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit record in the caller's transaction."""
    conn.execute(
        insert(audit).values(
            at=at,
            actor=actor[:128],
            action=action[:64],
            target_type=target_type,
            target_id=None if target_id is None else target_id[:128],
            detail=detail,
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log is filtered by; every field optional."""

    actor: str | None = None
    #: An action, or an action family: ``login`` matches ``login``, ``login.failed``...
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(stmt: Any, f: AuditFilter) -> Any:
    a = audit.c
    if f.actor:
        stmt = stmt.where(a.actor == f.actor)
    if f.action:
        stmt = stmt.where((a.action == f.action) | a.action.startswith(f"{f.action}.", autoescape=True))
    if f.target:
        stmt = stmt.where(a.target_id == f.target)
    if f.since is not None:
        stmt = stmt.where(a.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(a.at < f.until)
    return stmt


def _page(conn: Connection, f: AuditFilter, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    stmt = _where(select(audit), f)
    if before_id is not None:
        stmt = stmt.where(audit.c.id < before_id)
    return [dict(r) for r in conn.execute(stmt.order_by(audit.c.id.desc()).limit(limit)).mappings()]


def read(
    conn: Connection, f: AuditFilter, *, limit: int = 200, before_id: int | None = None
) -> list[dict[str, Any]]:
    """The newest records matching ``f``, newest first, at most ``MAX_LIMIT``; ``before_id`` pages back."""
    return _page(conn, f, max(1, min(limit, MAX_LIMIT)), before_id)


def count(conn: Connection, f: AuditFilter) -> int:
    return int(conn.execute(_where(select(func.count()).select_from(audit), f)).scalar_one())


def actions(conn: Connection) -> list[str]:
    """Every action the log holds, for the filter's choices."""
    return [r[0] for r in conn.execute(select(audit.c.action).distinct().order_by(audit.c.action))]


def iter_all(conn: Connection, f: AuditFilter, *, chunk: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching record, newest first, read ``chunk`` at a time (for exports)."""
    before: int | None = None
    while rows := _page(conn, f, chunk, before):
        yield from rows
        before = int(rows[-1]["id"])
