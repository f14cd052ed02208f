"""What the Actions page, the incident and subscriber views and the API read of the outbox: the
approvals waiting for a person, the timeline of actions, the outbox in figures, and what the
built-in loopback sinks received.

Every function takes a connection and returns plain frames or dicts. Personal data leaves masked,
for every role (the outbox has no audited way to unmask; a subscriber's clear details are on its
360 view): addresses wear the mask of their shape (:func:`shown_address`: an email's, an MSISDN's,
or hidden whole), and subjects, reasons and message bodies have the phone numbers, emails and the
names of the account they concern redacted (:func:`dashboard.privacy.redact_text`). A received
message that names no action of the outbox has no account to take names from: its subject and body
are withheld.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Select, and_, func, or_, select

from dashboard.privacy import mask_address, mask_email, mask_msisdn, people_named, redact_text
from dashboard.store.db import read_frame
from dashboard.store.schema import ACTION_STATES, accounts, actions, loopback_messages, subscribers

#: States still waiting to leave: what the loop has committed to but not yet sent.
PENDING_STATES = ("queued", "awaiting_approval")
#: States whose cost and promises count as committed (sent ones only since the summary's ``since``).
COMMITTED_STATES = ("sent", *PENDING_STATES)
#: The columns a timeline row carries (never the message body, its payload or its key).
TIMELINE_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "sent_at",
    "playbook",
    "step",
    "trigger",
    "action",
    "channel",
    "target",
    "incident_id",
    "account_id",
    "subscriber_id",
    "address",
    "subject",
    "state",
    "reason",
    "cost",
    "promised",
    "offer",
    "expected_value",
    "reference",
    "attempts",
    "not_before",
    "decided_by",
    "decided_at",
)
LOOPBACK_COLUMNS = ("id", "received_at", "channel", "to", "subject", "first_line", "reference", "action_id")
#: An MSISDN as written in an address: digits with an optional + and separators.
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]{7,}$")
#: Withheld text of a received message that cannot be tied to an account.
WITHHELD = "(withheld: not linked to an action)"


def shown_address(value: Any) -> str | None:
    """An address as it may be shown: an email or an MSISDN masked like the privacy module's fields,
    anything else (a URL, a handle) hidden whole."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    if "@" in text:
        return mask_email(text)
    if _PHONE_LIKE.match(text):
        return mask_msisdn(text)
    return mask_address(text)


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _redacted(value: Any, names: Iterable[str]) -> str | None:
    text = _text(value)
    return None if text is None else redact_text(text, names)


def first_line(body: Any) -> str | None:
    """The first line of a message with something on it."""
    text = _text(body)
    if text is None:
        return None
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# --- the shared shape of an outbox read ------------------------------------------------------


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _names(conn: Connection, df: pd.DataFrame) -> list[tuple[str, ...]]:
    """Per row of ``df`` (with ``account_id`` and ``subscriber_id``), the people free text about it
    may name: the contact and, for a consumer, the holder of the account it concerns (its own, else
    its line's), as every source that delivered that account has them."""
    accounts_of: dict[str, set[str]] = {}
    lines = sorted({str(s) for s in df["subscriber_id"].dropna()})
    for part in _chunks(lines):
        held = conn.execute(
            select(subscribers.c.id, subscribers.c.account_id).where(
                subscribers.c.id.in_(part), subscribers.c.account_id.is_not(None)
            )
        )
        for sid, aid in held:
            accounts_of.setdefault(sid, set()).add(aid)
    per_row: list[set[str]] = []
    for aid, sid in zip(df["account_id"].tolist(), df["subscriber_id"].tolist(), strict=True):
        if _text(aid) is not None:
            per_row.append({str(aid)})
        else:
            per_row.append(accounts_of.get(str(sid), set()) if _text(sid) is not None else set())
    people: dict[str, list[str]] = {}
    for part in _chunks(sorted(set().union(*per_row))):
        named = conn.execute(
            select(accounts.c.id, accounts.c.name, accounts.c.segment, accounts.c.contact_name).where(
                accounts.c.id.in_(part)
            )
        )
        for aid, name, segment, contact in named:
            people.setdefault(aid, []).extend(people_named(name, segment, contact))
    return [tuple(n for aid in sorted(ids) for n in people.get(aid, ())) for ids in per_row]


def _masked(conn: Connection, df: pd.DataFrame) -> pd.DataFrame:
    """The outbox rows as they may leave: address masked, subject and reason redacted."""
    if df.empty:
        return df
    names = _names(conn, df)
    out = df.copy()
    out["address"] = [shown_address(v) for v in out["address"].tolist()]
    out["subject"] = [_redacted(v, n) for v, n in zip(out["subject"].tolist(), names, strict=True)]
    out["reason"] = [_redacted(v, n) for v, n in zip(out["reason"].tolist(), names, strict=True)]
    return out


def _timeline_select() -> Select[Any]:
    return select(*(actions.c[name] for name in TIMELINE_COLUMNS))


# --- reads -------------------------------------------------------------------------------------


def pending_approvals(conn: Connection, limit: int = 200) -> pd.DataFrame:
    """Actions waiting for a person's approval, oldest first (the order they should be decided in)."""
    stmt = (
        _timeline_select()
        .where(actions.c.state == "awaiting_approval")
        .order_by(actions.c.created_at, actions.c.id)
        .limit(limit)
    )
    return _masked(conn, read_frame(conn, stmt))


def action_timeline(
    conn: Connection,
    *,
    incident_id: str | None = None,
    subscriber_id: str | None = None,
    account_id: str | None = None,
    states: Sequence[str] | None = None,
    playbook: str | None = None,
    channel: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """The outbox's actions, newest first, filtered.

    ``subscriber_id`` alone: the line's actions; ``account_id`` alone: every action about the
    account, its lines' included; both: the line's own and its account's as a whole (not those of
    the account's other lines).
    """
    stmt = _timeline_select()
    if incident_id is not None:
        stmt = stmt.where(actions.c.incident_id == incident_id)
    if subscriber_id is not None and account_id is not None:
        stmt = stmt.where(
            or_(
                actions.c.subscriber_id == subscriber_id,
                and_(actions.c.account_id == account_id, actions.c.subscriber_id.is_(None)),
            )
        )
    elif subscriber_id is not None:
        stmt = stmt.where(actions.c.subscriber_id == subscriber_id)
    elif account_id is not None:
        stmt = stmt.where(actions.c.account_id == account_id)
    if states:
        stmt = stmt.where(actions.c.state.in_(list(states)))
    if playbook is not None:
        stmt = stmt.where(actions.c.playbook == playbook)
    if channel is not None:
        stmt = stmt.where(actions.c.channel == channel)
    stmt = stmt.order_by(actions.c.created_at.desc(), actions.c.id.desc()).limit(limit)
    return _masked(conn, read_frame(conn, stmt))


def action(conn: Connection, action_id: int) -> dict[str, Any] | None:
    """One action as the timeline shows it, or None when there is no such action."""
    df = _masked(conn, read_frame(conn, _timeline_select().where(actions.c.id == action_id)))
    return None if df.empty else dict(df.iloc[0].to_dict())


def outbox_summary(conn: Connection, since: datetime) -> dict[str, Any]:
    """The outbox in figures.

    ``states``: actions per state (every state named, 0 when none); ``channels``: per channel,
    actions per state (the states it has); ``sent_since``: actions sent since ``since``;
    ``money``: per committed state, the sum of ``cost`` (to the operator) and ``promised`` (to the
    customer) of what was sent since ``since`` and of everything still queued or awaiting approval;
    ``cost`` and ``promised``: their totals.
    """
    a = actions.c
    states = dict.fromkeys(ACTION_STATES, 0)
    channels: dict[str, dict[str, int]] = {}
    for channel, state, n in conn.execute(
        select(a.channel, a.state, func.count()).group_by(a.channel, a.state)
    ):
        states[state] = states.get(state, 0) + int(n)
        channels.setdefault(channel, {})[state] = int(n)
    sent_since = int(
        conn.execute(select(func.count()).where(a.state == "sent", a.sent_at >= since)).scalar_one()
    )
    committed = or_(and_(a.state == "sent", a.sent_at >= since), a.state.in_(PENDING_STATES))
    money = {s: {"cost": 0.0, "promised": 0.0} for s in COMMITTED_STATES}
    rows = conn.execute(
        select(a.state, func.coalesce(func.sum(a.cost), 0.0), func.coalesce(func.sum(a.promised), 0.0))
        .where(committed)
        .group_by(a.state)
    )
    for state, cost, promised in rows:
        money[state] = {"cost": float(cost), "promised": float(promised)}
    return {
        "since": since,
        "states": states,
        "channels": {c: channels[c] for c in sorted(channels)},
        "sent_since": sent_since,
        "money": money,
        "cost": sum(m["cost"] for m in money.values()),
        "promised": sum(m["promised"] for m in money.values()),
    }


def facets(conn: Connection) -> dict[str, list[str]]:
    """The playbooks and channels the outbox holds, for filters."""
    return {
        "playbooks": list(
            conn.execute(select(actions.c.playbook).distinct().order_by(actions.c.playbook)).scalars()
        ),
        "channels": list(
            conn.execute(select(actions.c.channel).distinct().order_by(actions.c.channel)).scalars()
        ),
    }


def loopback_received(conn: Connection, limit: int = 50) -> pd.DataFrame:
    """What the built-in loopback sinks received, newest first: channel, to (masked), subject and
    the first line of the body (redacted; withheld when the message names no action), the
    receiver's reference and the action it delivered."""
    m = loopback_messages.c
    stmt = (
        select(
            m.id,
            m.received_at,
            m.channel,
            m.to,
            m.subject,
            m.body,
            m.reference,
            actions.c.id.label("action_id"),
            actions.c.account_id,
            actions.c.subscriber_id,
        )
        .select_from(loopback_messages.outerjoin(actions, actions.c.key == m.key))
        .order_by(m.received_at.desc(), m.id.desc())
        .limit(limit)
    )
    df = read_frame(conn, stmt)
    if df.empty:
        return df.assign(first_line=None)[list(LOOPBACK_COLUMNS)]
    names = _names(conn, df)
    linked = df["action_id"].notna().tolist()
    df["to"] = [shown_address(v) for v in df["to"].tolist()]
    df["subject"] = [
        _redacted(v, n) if ok else (WITHHELD if _text(v) else None)
        for v, n, ok in zip(df["subject"].tolist(), names, linked, strict=True)
    ]
    df["first_line"] = [
        _redacted(first_line(v), n) if ok else (WITHHELD if _text(v) else None)
        for v, n, ok in zip(df["body"].tolist(), names, linked, strict=True)
    ]
    df["action_id"] = pd.Series(
        [int(v) if ok else None for v, ok in zip(df["action_id"].tolist(), linked, strict=True)],
        index=df.index,
        dtype=object,
    )
    return df[list(LOOPBACK_COLUMNS)]
