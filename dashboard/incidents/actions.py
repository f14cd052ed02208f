"""What an operator does to an incident: acknowledge, assign an owner, add a note; each one audited.

Each action updates the incident (and its queue row, so pages show it before the next refresh)
and writes an audit record in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from dashboard.errors import VantageError
from dashboard.incidents.correlate import ENGINE_SOURCE
from dashboard.store.db import Store
from dashboard.store.schema import audit, incident_notes, incident_queue, incidents

MAX_NOTE = 4_000
MAX_OWNER = 128


class ActionError(VantageError, ValueError):
    """An action that cannot be applied (unknown incident, empty note, closed incident...)."""


def _incident(conn: Connection, incident_id: str) -> Any:
    row = conn.execute(
        select(incidents.c.id, incidents.c.state, incidents.c.owner, incidents.c.acked_at)
        .where(incidents.c.id == incident_id, incidents.c.source == ENGINE_SOURCE)
        .with_for_update()
    ).first()
    if row is None:
        raise ActionError(f"no incident {incident_id!r}")
    return row


def _audit(
    conn: Connection, actor: str, action: str, incident_id: str, detail: dict[str, Any], now: datetime
) -> None:
    conn.execute(
        insert(audit).values(
            at=now, actor=actor, action=action, target_type="incident", target_id=incident_id, detail=detail
        )
    )


def _touch(conn: Connection, incident_id: str, now: datetime, **values: Any) -> None:
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id, incidents.c.source == ENGINE_SOURCE)
        .values(changed_at=now, **values)
    )
    queue_values = {k: v for k, v in values.items() if k in ("owner", "state")}
    if queue_values:
        conn.execute(
            update(incident_queue).where(incident_queue.c.incident_id == incident_id).values(**queue_values)
        )


def acknowledge(store: Store, incident_id: str, *, actor: str, now: datetime) -> bool:
    """Acknowledge an open incident; returns False when it already was (nothing written)."""
    with store.begin() as conn:
        row = _incident(conn, incident_id)
        if row.acked_at is not None:
            return False
        values: dict[str, Any] = {"acked_at": now}
        if row.state == "open":
            values["state"] = "acknowledged"
        _touch(conn, incident_id, now, **values)
        _audit(conn, actor, "incident.acknowledge", incident_id, {"state_before": row.state}, now)
    return True


def assign(store: Store, incident_id: str, owner: str | None, *, actor: str, now: datetime) -> bool:
    """Set (or clear, with None or blank) the owner; returns False when unchanged."""
    owner = (owner or "").strip() or None
    if owner is not None and len(owner) > MAX_OWNER:
        raise ActionError(f"an owner name has at most {MAX_OWNER} characters")
    with store.begin() as conn:
        row = _incident(conn, incident_id)
        if row.owner == owner:
            return False
        _touch(conn, incident_id, now, owner=owner)
        _audit(conn, actor, "incident.assign", incident_id, {"from": row.owner, "to": owner}, now)
    return True


def add_note(store: Store, incident_id: str, text: str, *, actor: str, now: datetime) -> int:
    """Add a note; returns its id."""
    text = (text or "").strip()
    if not text:
        raise ActionError("a note needs some text")
    if len(text) > MAX_NOTE:
        raise ActionError(f"a note has at most {MAX_NOTE:,} characters")
    with store.begin() as conn:
        _incident(conn, incident_id)
        result = conn.execute(
            insert(incident_notes).values(incident_id=incident_id, author=actor, text=text, created_at=now)
        )
        key = result.inserted_primary_key
        assert key is not None
        note_id = int(key[0])
        _audit(conn, actor, "incident.note", incident_id, {"note_id": note_id, "chars": len(text)}, now)
    return note_id
