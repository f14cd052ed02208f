"""Delivering the outbox: claim due actions, send each through its action type, record the outcome.

Exactly once, and what that means per channel (docs/playbooks.md):

- A decision and its outbox row are one transaction, keyed by (playbook, step, subject, target): a
  decision is either recorded once or not at all.
- A delivery pass claims due rows first (``claimed_by``, committed), so two deliverers never take
  the same row: PostgreSQL's ``FOR UPDATE SKIP LOCKED`` on the claim, SQLite's single writer.
- Before a message goes out on a channel that cannot tell a repeat (plain SMTP), its row is marked
  ``sending`` and committed; then it is sent, then recorded ``sent`` with the receiver's reference.
  Channels that can tell a repeat skip the mark: every request carries the action's idempotency
  key, a TMF621 ticket is looked up by its key before it is created, an acknowledgement is
  idempotent by nature.
- A process killed mid-pass leaves claimed rows behind. Once their claim is older than the lease,
  the next pass releases the ones never attempted (still ``queued``) and looks at the one it was
  sending: that one becomes ``uncertain`` and is never sent again unless a person resends it from
  the Actions page. So no customer gets a message twice; at worst one message whose fate is unknown
  waits for a person, and everything else is delivered once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from connectors.actions import Action, Delivery, Message, build_action
from connectors.base import FatalError, RetriableError
from dashboard.config import ActionConfig, PlaybooksConfig
from dashboard.playbooks.decide import failpoint
from dashboard.store.db import Store
from dashboard.store.schema import actions, incidents

log = logging.getLogger(__name__)

#: Crash points of a delivery: ``claimed`` (after the claim is committed, before sending) and
#: ``sent`` (after the receiver accepted, before it is recorded); see :func:`failpoint`.
_failpoint = failpoint


@dataclass
class DeliveryPass:
    """What one delivery pass did."""

    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reclaimed: Counter[str] = field(default_factory=Counter)
    took_ms: float = 0.0
    per_channel: Counter[str] = field(default_factory=Counter)


class _Bucket:
    """A channel's rate limit within one process."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.next = 0.0

    def wait(self) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(now, self.next) + 1.0 / self.rate


class Deliverer:
    """Delivers one store's outbox through the configured actions."""

    def __init__(
        self,
        store: Store,
        configs: list[ActionConfig],
        policy: PlaybooksConfig,
        *,
        clock: Callable[[], datetime],
        loopback_options: Mapping[str, Mapping[str, Any]] | None = None,
        environ: Mapping[str, str] | None = None,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.configs = {c.name: c for c in configs}
        self.policy = policy
        self.clock = clock
        self.loopback_options = dict(loopback_options or {})
        self.environ = environ
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._actions: dict[str, Action[Any]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def action(self, name: str) -> Action[Any]:
        with self._lock:
            if name not in self._actions:
                cfg = self.configs.get(name)
                if cfg is None:
                    raise FatalError(f"no action named {name!r} in the settings' actions")
                options = dict(cfg.options)
                if cfg.loopback:
                    if cfg.type not in self.loopback_options:
                        raise FatalError(
                            f"action {name!r} is set to loopback but the loopback sinks are not running"
                        )
                    options = {**self.loopback_options[cfg.type], **options}
                self._actions[name] = build_action(cfg.type, options, name=name, environ=self.environ)
                self._buckets[name] = _Bucket(cfg.rate_per_s)
            return self._actions[name]

    def close(self) -> None:
        with self._lock:
            for a in self._actions.values():
                try:
                    a.close()
                except Exception:  # closing must not hide why we stop
                    log.exception("closing action %s failed", a)
            self._actions.clear()

    # --- one pass ---

    def run_once(self, *, limit: int | None = None) -> DeliveryPass:
        t0 = time.perf_counter()
        result = DeliveryPass()
        now = self.clock()
        self._reclaim(now, result)
        token = f"{self.worker}/{uuid.uuid4().hex[:8]}"
        rows = self._claim(now, limit or self.policy.deliver_batch, token)
        result.claimed = len(rows)
        if rows:
            _failpoint("claimed")
        for i, row in enumerate(rows):
            if time.perf_counter() - t0 > self.policy.claim_lease_s / 2:
                # A pass never outlives its claims: what is left goes back to the queue for the
                # next pass, before another deliverer could take it for abandoned.
                result.outcomes["released"] += self._release([r["id"] for r in rows[i:]], token)
                break
            outcome = self._deliver(row, token)
            result.outcomes[outcome] += 1
            result.per_channel[row["channel"]] += 1
        result.took_ms = (time.perf_counter() - t0) * 1000
        return result

    def _release(self, ids: list[int], token: str) -> int:
        a = actions.c
        released = 0
        with self.store.begin() as conn:
            for i in range(0, len(ids), 1000):
                released += conn.execute(
                    update(actions)
                    .where(a.id.in_(ids[i : i + 1000]), a.claimed_by == token, a.state == "queued")
                    .values(claimed_by=None, claimed_at=None)
                ).rowcount
        return released

    def _claim(self, now: datetime, limit: int, token: str) -> list[dict[str, Any]]:
        """Claim due queued rows for this pass (``claimed_by``); they stay queued until sent."""
        a = actions.c
        due = (
            select(a.id)
            .where(
                a.state == "queued",
                a.claimed_by.is_(None),
                or_(a.next_attempt_at.is_(None), a.next_attempt_at <= now),
                or_(a.not_before.is_(None), a.not_before <= now),
            )
            .order_by(a.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.store.begin() as conn:
            ids = [r[0] for r in conn.execute(due)]
            if not ids:
                return []
            rows: list[dict[str, Any]] = []
            for i in range(0, len(ids), 1000):
                chunk = ids[i : i + 1000]
                conn.execute(
                    update(actions)
                    .where(a.id.in_(chunk), a.state == "queued", a.claimed_by.is_(None))
                    .values(claimed_by=token, claimed_at=now, attempts=a.attempts + 1, updated_at=now)
                )
                rows += [
                    dict(r)
                    for r in conn.execute(
                        select(actions).where(a.id.in_(chunk), a.claimed_by == token)
                    ).mappings()
                ]
        rows.sort(key=lambda r: r["id"])
        return rows

    def _message(self, row: Mapping[str, Any]) -> Message:
        return Message(
            key=row["key"],
            to=row["address"],
            subject=row["subject"],
            body=row["body"] or "",
            data=dict(row["payload"] or {}),
        )

    def _deliver(self, row: Mapping[str, Any], token: str) -> str:
        try:
            action = self.action(row["action"])
            message = self._message(row)
            if not action.idempotent(message) and not self._mark_sending(row, token):
                # The one window a crash could leave a doubt is marked before the receiver sees
                # it, so a restart knows this message may have gone. A row this pass no longer
                # holds (its claim was taken over) is not sent.
                return "lost claim"
            self._buckets[row["action"]].wait()
            delivery = action.send(message)
        except RetriableError as err:
            return self._retry_or_fail(row, token, err)
        except FatalError as err:
            return self._record(row, token, "failed", reason=str(err)[:500])
        except Exception as err:  # an action type's own bug fails this action, not the pass
            log.exception("action %s failed unexpectedly", row["action"])
            return self._record(row, token, "failed", reason=f"{type(err).__name__}: {err}"[:500])
        _failpoint("sent")
        _failpoint(f"sent:{row['channel']}")
        return self._record(row, token, "sent", delivery=delivery)

    def _mine(self, row: Mapping[str, Any], token: str) -> Any:
        a = actions.c
        return and_(a.id == row["id"], a.claimed_by == token, a.state.in_(("queued", "sending")))

    def _mark_sending(self, row: Mapping[str, Any], token: str) -> bool:
        """Mark the row being sent (and its claim fresh); False when this pass no longer holds it."""
        with self.store.begin() as conn:
            marked = conn.execute(
                update(actions)
                .where(self._mine(row, token), actions.c.state == "queued")
                .values(state="sending", claimed_at=self.clock())
            ).rowcount
        return bool(marked)

    def _retry_or_fail(self, row: Mapping[str, Any], token: str, err: Exception) -> str:
        attempts = int(row["attempts"] or 0) + 1
        if attempts >= self.policy.max_attempts:
            return self._record(
                row, token, "failed", reason=f"gave up after {attempts} attempts: {err}"[:500]
            )
        delay = min(self.policy.retry_initial_s * 2 ** (attempts - 1), self.policy.retry_max_s)
        retry_after = getattr(err, "retry_after_s", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        now = self.clock()
        with self.store.begin() as conn:
            conn.execute(
                update(actions)
                .where(self._mine(row, token))
                .values(
                    state="queued",
                    reason=f"attempt {attempts} failed, retrying: {err}"[:500],
                    next_attempt_at=now + timedelta(seconds=delay),
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                )
            )
        return "retrying"

    def _record(
        self,
        row: Mapping[str, Any],
        token: str,
        state: str,
        *,
        reason: str | None = None,
        delivery: Delivery | None = None,
    ) -> str:
        now = self.clock()
        values: dict[str, Any] = {"state": state, "updated_at": now, "reason": reason}
        if delivery is not None:
            values |= {
                "reference": (delivery.reference or None) and str(delivery.reference)[:256],
                "sent_at": now,
            }
        with self.store.begin() as conn:
            done = conn.execute(update(actions).where(self._mine(row, token)).values(**values)).rowcount
            if not done:
                log.warning(
                    "outbox: action %s was taken over before its outcome (%s) was recorded", row["id"], state
                )
            payload = row["payload"] or {}
            opened = row["channel"] == "ticket" and payload.get("operation", "create") == "create"
            if done and opened and delivery is not None and delivery.reference and row["incident_id"]:
                # The ticket opened for an incident is written back on it, for pages and for later
                # steps (an update when it is resolved).
                conn.execute(
                    update(incidents)
                    .where(incidents.c.id == row["incident_id"], incidents.c.ticket_id.is_(None))
                    .values(ticket_id=str(delivery.reference)[:128])
                )
        return state

    def _reclaim(self, now: datetime, result: DeliveryPass) -> None:
        """Rows a dead delivery left claimed: unsent ones go back to the queue; one it was sending
        is sent again where a repeat is harmless, else marked uncertain for a person to decide."""
        a = actions.c
        stale = now - timedelta(seconds=self.policy.claim_lease_s)
        with self.store.begin() as conn:
            rows = (
                conn.execute(
                    select(actions)
                    .where(
                        a.state.in_(("queued", "sending")),
                        a.claimed_by.is_not(None),
                        or_(a.claimed_at.is_(None), a.claimed_at < stale),
                    )
                    .with_for_update(skip_locked=True)
                )
                .mappings()
                .all()
            )
            for found in rows:
                row = dict(found)
                if row["state"] == "queued":
                    values = {"state": "queued"}  # claimed, never attempted: simply released
                else:
                    try:
                        idempotent = self.action(row["action"]).idempotent(self._message(row))
                    except Exception:  # an action that cannot be built cannot resend safely either
                        idempotent = False
                    if idempotent:
                        values = {
                            "state": "queued",
                            "reason": "resent with the same key after an interrupted delivery "
                            "(the receiver dedupes)",
                        }
                    else:
                        values = {
                            "state": "uncertain",
                            "reason": "the delivering process stopped while sending; this channel "
                            "cannot tell a repeat, so it is not sent again: check the receiver, then "
                            "resend or close it",
                        }
                conn.execute(
                    update(actions)
                    .where(
                        and_(a.id == row["id"], a.state == row["state"], a.claimed_by == row["claimed_by"])
                    )
                    .values(claimed_by=None, claimed_at=None, updated_at=now, **values)
                )
                result.reclaimed["released" if row["state"] == "queued" else values["state"]] += 1
