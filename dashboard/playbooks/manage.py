"""What people do to the outbox: approve, reject, cancel, resend; and what customers do through
their signed links: accept an offer, opt out. Each change is audited in the same transaction."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from dashboard.errors import VantageError
from dashboard.store.db import Store
from dashboard.store.schema import actions, audit, contact_optouts, offer_events

#: The source of the offer events Vantage records itself (an accept link followed).
OFFER_SOURCE = "vantage-playbooks"

#: verb -> (states it applies to, the state it leaves)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "approve": (("awaiting_approval",), "queued"),
    "reject": (("awaiting_approval",), "rejected"),
    "cancel": (("queued", "awaiting_approval"), "cancelled"),
    "resend": (("uncertain", "failed"), "queued"),
}


_DONE = {"approve": "approved", "reject": "rejected", "cancel": "cancelled", "resend": "resent"}


class OutboxError(VantageError, ValueError):
    """An outbox change that cannot be made (unknown action, wrong state, bad link)."""


def _row(conn: Connection, action_id: int) -> Any:
    row = conn.execute(select(actions).where(actions.c.id == action_id).with_for_update()).mappings().first()
    if row is None:
        raise OutboxError(f"no action {action_id}")
    return row


def decide(
    store: Store, action_id: int, verb: str, *, actor: str, now: datetime, note: str | None = None
) -> str:
    """Apply ``verb`` (approve, reject, cancel, resend) to one action; returns its new state."""
    if verb not in TRANSITIONS:
        raise OutboxError(f"unknown change {verb!r}: expected one of {', '.join(TRANSITIONS)}")
    allowed, new_state = TRANSITIONS[verb]
    with store.begin() as conn:
        row = _row(conn, action_id)
        if row["state"] not in allowed:
            which = " or ".join(allowed)
            raise OutboxError(
                f"action {action_id} is {row['state']}: only {which} actions can be {_DONE[verb]}"
            )
        reason = f"{_DONE[verb]} by {actor}" + (f": {note[:300]}" if note else "")
        values: dict[str, Any] = {
            "state": new_state,
            "decided_by": actor,
            "decided_at": now,
            "updated_at": now,
            "reason": reason,
        }
        if verb == "resend":
            values |= {"next_attempt_at": None, "attempts": 0}
        conn.execute(
            update(actions).where(actions.c.id == action_id, actions.c.state == row["state"]).values(**values)
        )
        conn.execute(
            insert(audit).values(
                at=now,
                actor=actor,
                action=f"action.{verb}",
                target_type="action",
                target_id=str(action_id),
                detail={
                    "playbook": row["playbook"],
                    "step": row["step"],
                    "from": row["state"],
                    "to": new_state,
                    "note": note,
                },
            )
        )
    return new_state


def _by_key(conn: Connection, key: str) -> Any:
    row = conn.execute(select(actions).where(actions.c.key == key)).mappings().first()
    if row is None:
        raise OutboxError("this link is not valid")
    return row


#: What a customer is asked before a link acts: a link only reads on GET (mail scanners and link
#: previews open links), and acts when the customer presses the button (a POST).
QUESTIONS = {
    "accept": "Accept this offer?",
    "optout": "Stop receiving messages from us about service incidents and offers?",
}


def check_link(store: Store, key: str, verb: str, token: str, *, secret: str) -> str:
    """The question to ask before a signed link acts; OutboxError when the link is not valid."""
    from dashboard.playbooks.decide import link_token

    if verb not in QUESTIONS or not hmac.compare_digest(link_token(secret, key, verb), token or ""):
        raise OutboxError("this link is not valid")
    with store.connect() as conn:
        row = _by_key(conn, key)
    if verb == "accept" and (not row["offer"] or row["state"] != "sent"):
        raise OutboxError("this offer is not available")
    return QUESTIONS[verb]


def follow_link(store: Store, key: str, verb: str, token: str, *, secret: str, now: datetime) -> str:
    """A customer followed a signed link: ``accept`` records the offer accepted, ``optout`` stops
    every further message to them. Returns what to tell them."""
    from dashboard.playbooks.decide import link_token

    if verb not in ("accept", "optout") or not hmac.compare_digest(
        link_token(secret, key, verb), token or ""
    ):
        raise OutboxError("this link is not valid")
    with store.begin() as conn:
        row = _by_key(conn, key)
        party = row["party"]
        if verb == "optout":
            if party:
                exists = conn.execute(
                    select(contact_optouts.c.party).where(
                        contact_optouts.c.party == party, contact_optouts.c.channel == "*"
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        insert(contact_optouts).values(
                            party=party, channel="*", created_at=now, source="link"
                        )
                    )
            return "You will not receive further messages from us about service incidents or offers."
        if not row["offer"] or row["state"] != "sent":
            raise OutboxError("this offer is not available")
        event_id = f"accept-{key[:40]}"
        exists = conn.execute(
            select(offer_events.c.id).where(
                offer_events.c.id == event_id, offer_events.c.source == OFFER_SOURCE
            )
        ).first()
        if exists is None:
            conn.execute(
                insert(offer_events).values(
                    id=event_id,
                    source=OFFER_SOURCE,
                    subscriber_id=row["subscriber_id"],
                    account_id=row["account_id"],
                    offer=row["offer"],
                    outcome="accepted",
                    occurred_at=now,
                    ingested_at=now,
                )
            )
    return "Thank you: your offer is confirmed."


def opt_out(store: Store, party: str, channel: str, *, actor: str, now: datetime) -> None:
    """Record that a customer (``account:<id>`` or ``line:<id>``) is not to be contacted on ``channel``."""
    with store.begin() as conn:
        exists = conn.execute(
            select(contact_optouts.c.party).where(
                contact_optouts.c.party == party, contact_optouts.c.channel == channel
            )
        ).first()
        if exists is None:
            conn.execute(
                insert(contact_optouts).values(
                    party=party, channel=channel, created_at=now, source=actor[:64]
                )
            )
            conn.execute(
                insert(audit).values(
                    at=now,
                    actor=actor,
                    action="contact.optout",
                    target_type="party",
                    target_id=party,
                    detail={"channel": channel},
                )
            )
