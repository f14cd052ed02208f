"""Deciding: which playbooks fire on what the queue knows, whom each step addresses, and what it says.

One evaluation runs after each queue refresh, in one transaction: it reads the queue, the KPI
statuses and the lines whose churn risk crossed a band, expands each firing step to its targets,
renders its message, applies approvals, the hold-out and the contact policy, and inserts each
decision into the outbox (``actions``) keyed by (playbook, step, subject, target). The key is
unique, so whatever runs the evaluation again (the next refresh, a restarted process, a second
scheduler) inserts nothing it already decided. On PostgreSQL a transaction-scoped advisory lock
makes two schedulers take turns, so the contact policy counts what the other one decided.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from connectors.actions import get_action_class
from dashboard.config import ActionConfig
from dashboard.ingest.runner import load_state, save_state
from dashboard.kpis import evaluate_condition
from dashboard.playbooks.render import render, render_data
from dashboard.playbooks.spec import (
    CUSTOMER_TARGETS,
    Offer,
    Playbook,
    PlaybookFile,
    Step,
    compiled,
    condition_names,
)
from dashboard.playbooks.targets import (
    SEVERITY_RANK,
    account_rows,
    affected_lines,
    crossed_lines,
    exposed_lines,
    kpi_changes,
    queue_incidents,
)
from dashboard.store.schema import actions, contact_optouts, line_exposures

STATE_KEY = ("vantage", "playbooks")
FAILPOINT_ENV = "VANTAGE_FAILPOINT"
#: The advisory lock two schedulers' evaluations take turns on (PostgreSQL).
LOCK_ID = 0x56414E54_504C4159 & 0x7FFFFFFFFFFFFFFF
#: States that count as contacting a customer for the contact policy.
COUNTED_STATES = ("queued", "sending", "sent", "awaiting_approval", "uncertain")
#: Months of ARPU a kept line is worth, for an offer's expected value.
OFFER_HORIZON_MONTHS = 12.0


def action_key(playbook: str, step: str, subject: str, target: str) -> str:
    """The outbox key and idempotency key of one action: stable across runs and processes."""
    return hashlib.sha256(f"{playbook}\x1f{step}\x1f{subject}\x1f{target}".encode()).hexdigest()


def in_holdout(line_id: str, *, salt: str, share: float) -> bool:
    """Whether a line is in the randomised hold-out: a hash of (salt, line), uniform on [0, 1)."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{salt}\x1f{line_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def link_token(secret: str, key: str, verb: str) -> str:
    """The signature of an offer link (accept, opt out): HMAC-SHA256 of the action key and verb."""
    return hmac.new(secret.encode(), f"{verb}:{key}".encode(), hashlib.sha256).hexdigest()[:32]


def offer_link(loop: Loop, key: str, verb: str) -> str:
    """The signed link a customer follows to accept an offer or stop messages."""
    return f"{loop.public_url.rstrip('/')}/offers/{key}/{verb}?t={link_token(loop.secret, key, verb)}"


@dataclass
class Decision:
    """One row of the outbox, before it is inserted."""

    key: str
    playbook: str
    step: str
    trigger: str
    action: str
    action_type: str
    channel: str
    target: str
    state: str
    incident_id: str | None = None
    account_id: str | None = None
    subscriber_id: str | None = None
    party: str | None = None
    dedupe_group: str | None = None
    address: str | None = None
    subject: str | None = None
    body: str | None = None
    payload: dict[str, Any] | None = None
    reason: str | None = None
    cost: float | None = None
    promised: float | None = None
    offer: str | None = None
    expected_value: float | None = None
    not_before: datetime | None = None
    priority: float = 0.0
    dedupe_per_s: float | None = None
    region: str | None = None  # the incident's, for the customers' time zone in quiet hours

    def row(self, now: datetime) -> dict[str, Any]:
        return {
            "key": self.key,
            "playbook": self.playbook,
            "step": self.step,
            "trigger": self.trigger,
            "action": self.action,
            "action_type": self.action_type,
            "channel": self.channel,
            "incident_id": self.incident_id,
            "account_id": self.account_id,
            "subscriber_id": self.subscriber_id,
            "target": self.target[:192],
            "party": self.party,
            "dedupe_group": self.dedupe_group,
            "address": (self.address or None) and self.address[:256],
            "subject": (self.subject or None) and self.subject[:256],
            "body": self.body,
            "payload": self.payload,
            "state": self.state,
            "reason": self.reason,
            "cost": self.cost,
            "promised": self.promised,
            "offer": self.offer,
            "expected_value": self.expected_value,
            "not_before": self.not_before,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }


@dataclass
class Evaluation:
    """What one evaluation decided."""

    fired: int = 0
    decided: Counter[str] = field(default_factory=Counter)
    exposures: int = 0
    took_ms: float = 0.0

    @property
    def queued(self) -> int:
        return self.decided["queued"]


@dataclass(frozen=True)
class Loop:
    """The playbooks of one process with what they need to decide: built once, reused."""

    book: PlaybookFile
    actions: Mapping[str, ActionConfig]
    currency: str = "EUR"
    dry_run: bool = False
    public_url: str = "http://127.0.0.1:8050"
    secret: str = ""
    #: The restore target of an account without its own, by segment: the queue's SLA rule
    #: (kpi_definitions.yaml: scoring.sla.default_restore_minutes), so both see the same clocks.
    default_restore_minutes: Mapping[str, int] = field(default_factory=dict)

    def channel(self, action: str) -> tuple[str, str]:
        cfg = self.actions[action]
        return cfg.type, get_action_class(cfg.type).channel


# --- the evaluation -------------------------------------------------------------------------


def evaluate(conn: Connection, loop: Loop, *, now: datetime) -> Evaluation:
    """Decide every playbook once against the store as it is now; insert the new decisions."""
    t0 = time.perf_counter()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    state = load_state(conn, *STATE_KEY, for_update=True)
    incidents = queue_incidents(conn, now)
    by_id = {i["id"]: i for i in incidents}
    first_sev: dict[str, str] = {k: v for k, v in state.get("severity", {}).items() if k in by_id}
    peak: dict[str, str] = {k: v for k, v in state.get("peak", {}).items() if k in by_id}
    for inc in incidents:
        if inc["severity"] in SEVERITY_RANK:
            first_sev.setdefault(inc["id"], inc["severity"])
            if SEVERITY_RANK[inc["severity"]] > SEVERITY_RANK.get(peak.get(inc["id"], ""), 0):
                peak[inc["id"]] = inc["severity"]
        elif inc["id"] in peak:
            # A resolved incident's alarms read "cleared": it keeps the severity it had at its worst.
            inc["severity"] = peak[inc["id"]]
            inc["severity_rank"] = SEVERITY_RANK[peak[inc["id"]]]
    result = Evaluation()
    # incident -> the lines it hit when they were last recorded; recorded again when it grows.
    old_exposed = state.get("exposed", {})
    exposed = {k: v for k, v in (old_exposed.items() if isinstance(old_exposed, dict) else []) if k in by_id}
    # The lines each incident hits are kept while it is open: a retention playbook looks back at
    # them, and a resolved incident's steps reach them once its cells have left the queue.
    grown = [
        i for i in incidents if i["resolved_at"] is None and exposed.get(i["id"]) != round(i["lines"] or 0, 1)
    ]
    result.exposures = _record_exposures(conn, grown, now)
    exposed |= {i["id"]: round(i["lines"] or 0, 1) for i in grown}
    seen: dict[str, str] = state.get("seen", {})
    fresh_seen: dict[str, str] = {}
    candidates: list[Decision] = []
    for pb in loop.book.playbooks:
        if not pb.enabled:
            continue
        for subject, ctx, signature in _firing(conn, pb, incidents, first_sev, now):
            result.fired += 1
            mark = f"{pb.name}|{subject}"
            fresh_seen[mark] = signature
            if seen.get(mark) == signature:
                continue  # decided on exactly this picture before: nothing new can come of it
            candidates.extend(_expand(conn, loop, pb, subject, ctx, now))
    decisions = _new_only(conn, candidates)
    _apply_policy(conn, loop, decisions, now)
    if decisions:
        conn.execute(_insert_ignore(conn), [d.row(now) for d in decisions])
    result.decided.update(d.state for d in decisions)
    save_state(
        conn,
        *STATE_KEY,
        {"severity": first_sev, "peak": peak, "exposed": exposed, "seen": fresh_seen},
        now=now,
    )
    result.took_ms = (time.perf_counter() - t0) * 1000
    failpoint("decided")
    return result


def failpoint(name: str) -> None:
    """Test hook: the process kills itself (SIGKILL) at the point ``$VANTAGE_FAILPOINT`` names, to
    prove a crash there loses nothing and sends nothing twice (``decided``: before the evaluation's
    transaction commits; ``claimed``, ``sent``: see dashboard/playbooks/deliver.py)."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _insert_ignore(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(actions).on_conflict_do_nothing(index_elements=["key"])


def _record_exposures(conn: Connection, new: Sequence[dict[str, Any]], now: datetime) -> int:
    """Remember the lines each newly seen open incident hits, with their churn risk now."""
    open_ids = [i["id"] for i in new if i["resolved_at"] is None]
    if not open_ids:
        return 0
    hits = affected_lines(conn, open_ids)
    rows = [
        {
            "subscriber_id": line["id"],
            "incident_id": inc,
            "account_id": line["account_id"],
            "risk_at_hit": line["churn_risk"],
            "hit_at": now,
        }
        for inc, lines in hits.items()
        for line in lines
    ]
    if rows:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(line_exposures).on_conflict_do_nothing(
            index_elements=["subscriber_id", "incident_id"]
        )
        for i in range(0, len(rows), 5000):
            conn.execute(stmt, rows[i : i + 5000])
    return len(rows)


def _signature(inc: Mapping[str, Any]) -> str:
    lines = round(inc["lines"] or 0, 1)
    return (
        f"{inc['state']}|{inc['severity']}|{inc['sla_state']}|{lines}|{inc['resolved_at']}|"
        f"{inc['acked_at']}|{inc['ticket_id']}"
    )


def _values(prefix: str, ctx: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in ctx.items() if not isinstance(v, dict | list)}


def _truth() -> dict[str, Any]:
    return {"true": True, "false": False}


def _firing(
    conn: Connection,
    pb: Playbook,
    incidents: Sequence[dict[str, Any]],
    first_sev: Mapping[str, str],
    now: datetime,
) -> Iterable[tuple[str, dict[str, Any], str]]:
    """(subject, context, signature) of every subject the playbook's trigger and condition fire for."""
    t = pb.trigger
    cond = compiled(pb.when, condition_names(None, t.event))
    if t.event == "kpi_status":
        for ev in kpi_changes(conn, t.kpi or "", t.to):
            ctx = {"kpi": ev}
            if cond is None or evaluate_condition(cond, {**_values("kpi", ev), **_truth()}):
                yield ev["id"], ctx, ev["status"]
        return
    if t.event == "churn_risk_crossed":
        since = now - timedelta(seconds=t.lookback_s)
        by_id = {i["id"]: i for i in incidents}
        crossed = crossed_lines(conn, t.band or 1.0, since)
        accounts_of = account_rows(conn, {ln["account_id"] for ln in crossed if ln["account_id"]})
        for line in crossed:
            inc = by_id.get(line["incident_id"], {"id": line["incident_id"]})
            ctx = {"incident": inc, "line": line, "customer": accounts_of.get(line["account_id"], {})}
            if cond is None or evaluate_condition(cond, {**_values("incident", inc), **_truth()}):
                yield f"{line['incident_id']}|line:{line['id']}", ctx, "crossed"
        return
    for inc in incidents:
        resolved = inc["resolved_at"] is not None
        if t.event == "incident_opened":
            fire = not resolved
        elif t.event == "incident_acknowledged":
            fire = inc["acked_at"] is not None
        elif t.event == "incident_resolved":
            fire = resolved
        elif t.event == "incident_escalated":
            was = SEVERITY_RANK.get(first_sev.get(inc["id"], inc["severity"]), 0)
            need = SEVERITY_RANK.get(t.severity, 0) if t.severity else was + 1
            fire = not resolved and inc["severity_rank"] > was and inc["severity_rank"] >= need
        elif t.event == "sla_within":
            left = inc["sla_minutes_left"]
            fire = (
                not resolved
                and not inc["sla_breached"]
                and left is not None
                and 0 < left <= (t.within_s or 0) / 60
            )
        else:  # sla_breached
            left = inc["sla_minutes_left"]
            fire = not resolved and (bool(inc["sla_breached"]) or (left is not None and left <= 0))
        if not fire:
            continue
        if cond is not None and not evaluate_condition(cond, {**_values("incident", inc), **_truth()}):
            continue
        yield inc["id"], {"incident": inc}, _signature(inc)


# --- steps and their targets ----------------------------------------------------------------


def _customer_sla(
    account: dict[str, Any], inc: Mapping[str, Any], now: datetime, defaults: Mapping[str, int]
) -> dict[str, Any]:
    minutes = account.get("sla_restore_minutes")
    if minutes is None:
        minutes = defaults.get(account.get("segment") or "")
    opened = inc.get("opened_at")
    if minutes is None or opened is None:
        return {
            **account,
            "sla_state": "none",
            "sla_minutes_left": None,
            "sla_deadline": None,
            "hours_over_sla": 0.0,
            "penalty_due": 0.0,
        }
    deadline = opened + timedelta(minutes=float(minutes))
    end = inc.get("resolved_at") or now
    left = (deadline - now).total_seconds() / 60
    sla_state = "breached" if end > deadline else ("met" if inc.get("resolved_at") else "running")
    hours_over = max(0.0, (end - deadline).total_seconds() / 3600)
    return {
        **account,
        "sla_state": sla_state,
        "sla_minutes_left": left,
        "sla_deadline": deadline,
        "hours_over_sla": hours_over,
        "penalty_due": round(hours_over * float(account.get("penalty_per_hour") or 0.0), 2),
    }


def _targets(
    conn: Connection, loop: Loop, step: Step, subject: str, ctx: dict[str, Any], now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """(target name, template context) for each target of ``step`` on ``subject``."""
    inc = ctx.get("incident", {})
    if step.target == "incident":
        return [(f"event:{subject}", dict(ctx))]
    if step.target == "line":
        line = dict(ctx["line"])
        acc = ctx.get("customer") or {}  # read with every crossed line's, in one statement
        return [(f"line:{line['id']}", {**ctx, "line": _line_fields(line, acc, now), "customer": acc})]
    memo: dict[str, Any] = ctx.setdefault("_memo", {})  # one read per incident, whatever the steps
    if "lines" not in memo:
        memo["lines"] = affected_lines(conn, [inc["id"]]).get(inc["id"], []) or exposed_lines(conn, inc["id"])
        memo["accounts"] = account_rows(conn, {ln["account_id"] for ln in memo["lines"] if ln["account_id"]})
    lines, accs = memo["lines"], memo["accounts"]
    if step.target == "lines":
        lines = sorted(lines, key=lambda ln: -(ln["arpu"] or 0.0))
        return [
            (
                f"line:{ln['id']}",
                {
                    **ctx,
                    "line": _line_fields(ln, accs.get(ln["account_id"], {}), now),
                    "customer": accs.get(ln["account_id"], {}),
                },
            )
            for ln in lines
        ]
    per_account: dict[str, int] = Counter(ln["account_id"] for ln in lines if ln["account_id"])
    chosen = []
    for acc_id, n in per_account.items():
        found = accs.get(acc_id)
        if found is None:
            continue
        acc = found
        acc = {**_customer_sla(acc, inc, now, loop.default_restore_minutes), "lines": n}
        if step.target == "sla_accounts" and acc["sla_deadline"] is None:
            continue
        if step.target in ("business_accounts", "account_managers") and acc["segment"] not in (
            "smb",
            "enterprise",
        ):
            continue
        chosen.append(acc)
    chosen.sort(key=lambda a: (not a["vip"], a["segment"] != "enterprise", -a["lines"]))
    if step.target == "account_managers":
        by_manager: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for acc in chosen:
            if acc.get("account_manager"):
                by_manager[acc["account_manager"]].append(acc)
        return [
            (
                f"manager:{name}",
                {
                    **ctx,
                    "manager": {
                        "name": name,
                        "accounts": accs_of,
                        "address": loop.book.account_managers.address(name),
                    },
                    "customer": accs_of[0],
                },
            )
            for name, accs_of in sorted(by_manager.items())
        ]
    return [(f"account:{acc['id']}", {**ctx, "customer": acc}) for acc in chosen]


def _line_fields(line: Mapping[str, Any], acc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    activated = line.get("activated_at")
    return {
        **line,
        "segment": acc.get("segment"),
        "vip": bool(acc.get("vip")),
        "tenure_days": None if activated is None else (now - activated).days,
    }


def _address(loop: Loop, step: Step, channel: str, tctx: Mapping[str, Any]) -> str | None:
    if step.to is not None:
        return render(step.to, dict(tctx)) or None
    if step.target == "account_managers":
        return str(tctx["manager"]["address"] or "") or None if channel == "email" else None
    if step.target in ("lines", "line") and channel == "sms":
        return str(tctx["line"].get("msisdn") or "") or None
    customer = tctx.get("customer") or {}
    if channel == "email":
        return customer.get("contact_email")
    if channel == "sms":
        return customer.get("contact_phone")
    return None


def _condition_values(tctx: Mapping[str, Any]) -> dict[str, Any]:
    values = _truth()
    for prefix in ("incident", "customer", "line", "kpi", "offer"):
        part = tctx.get(prefix)
        if isinstance(part, Mapping):
            values.update(_values(prefix, part))
    values["credit"] = tctx.get("credit")
    return values


def _best_offer(
    loop: Loop, tctx: Mapping[str, Any], values: Mapping[str, Any], now: datetime
) -> tuple[Offer, float] | None:
    """The eligible offer with the highest expected value saved: risk x remaining value - cost."""
    line = tctx["line"]
    risk = float(line.get("churn_risk") or 0.0)
    remaining = float(line.get("arpu") or 0.0) * OFFER_HORIZON_MONTHS
    best: tuple[Offer, float] | None = None
    for offer in loop.book.offers:
        if offer.value_cap is not None and remaining > offer.value_cap:
            continue
        cond = compiled(offer.when, condition_names("line", "churn_risk_crossed"))
        if cond is not None and not evaluate_condition(cond, values):
            continue
        ev = risk * remaining - offer.cost
        if ev > 0 and (best is None or ev > best[1]):
            best = (offer, ev)
    return best


def _expand(
    conn: Connection, loop: Loop, pb: Playbook, subject: str, ctx: dict[str, Any], now: datetime
) -> list[Decision]:
    out: list[Decision] = []
    base = {
        "currency": loop.currency,
        "now": now,
        "language": loop.book.default_language,
        "playbook": pb.name,
    }
    inc = ctx.get("incident") or {}
    for step in pb.steps:
        action_type, channel = loop.channel(step.action)
        names = condition_names(step.target, pb.trigger.event)
        cond = compiled(step.when, names)
        approval = compiled(step.approval.when, names) if step.approval else None
        targets = _targets(conn, loop, step, subject, ctx, now)
        for n, (target, tctx) in enumerate(targets):
            tctx = {**base, **{k: v for k, v in tctx.items() if k != "_memo"}}
            key = action_key(pb.name, step.name, subject, target)
            tctx["credit"] = None
            if step.credit is not None:
                try:
                    tctx["credit"] = round(float(render(step.credit, tctx) or 0.0), 2)
                except Exception:  # not a number: no credit, and the message says none
                    tctx["credit"] = None
            values = _condition_values(tctx)
            if cond is not None and not evaluate_condition(cond, values):
                continue
            customer = tctx.get("customer") or {}
            line = tctx.get("line") or {}
            d = Decision(
                key=key,
                playbook=pb.name,
                step=step.name,
                trigger=pb.trigger.event,
                action=step.action,
                action_type=action_type,
                channel=channel,
                target=target,
                state="queued",
                incident_id=inc.get("id") if "kpi" not in ctx else None,
                account_id=customer.get("id") or line.get("account_id"),
                subscriber_id=line.get("id"),
                dedupe_group=step.dedupe.group if step.dedupe else None,
                dedupe_per_s=step.dedupe.per_s if step.dedupe else None,
                priority=float(inc.get("score") or 0.0),
                region=inc.get("region"),
            )
            if step.target in CUSTOMER_TARGETS:
                d.party = (
                    f"line:{line['id']}"
                    if step.target in ("lines", "line")
                    else f"account:{customer.get('id')}"
                )
            if step.offer:
                best = _best_offer(loop, tctx, values, now)
                if best is None:
                    continue  # no offer is worth its cost for this line
                offer, ev = best
                d.offer, d.cost, d.promised, d.expected_value = (
                    offer.name,
                    offer.cost,
                    offer.value,
                    round(ev, 2),
                )
                tctx["offer"] = {
                    "name": offer.name,
                    "label": offer.label,
                    "cost": offer.cost,
                    "value": offer.value,
                    "expected_value": round(ev, 2),
                    "valid_until": now + timedelta(seconds=offer.valid_s),
                    "accept_url": offer_link(loop, key, "accept"),
                    "optout_url": offer_link(loop, key, "optout"),
                }
                values = _condition_values(tctx)
            if tctx["credit"]:
                d.promised = (d.promised or 0.0) + tctx["credit"]
                d.cost = (d.cost or 0.0) + tctx["credit"]
            try:
                d.address = _address(loop, step, channel, tctx)
                d.subject = render(step.subject, tctx)
                d.body = render(step.body, tctx)
                payload: dict[str, Any] = render_data(step.data, tctx)
            except Exception as err:  # a template that fails for one customer must not stop the rest
                d.state, d.reason = "failed", f"template: {type(err).__name__}: {err}"[:500]
                out.append(d)
                continue
            if d.offer:
                payload["metadata"] = {"kind": "offer", "offer": d.offer, "subscriber_id": d.subscriber_id}
                payload["headers"] = {**(payload.get("headers") or {}), "X-Vantage-Offer": d.offer}
            elif d.dedupe_group:
                payload["metadata"] = {
                    "kind": d.dedupe_group,
                    "subscriber_id": d.subscriber_id,
                    "account_id": d.account_id,
                }
                payload["headers"] = {**(payload.get("headers") or {}), "X-Vantage-Kind": d.dedupe_group}
            d.payload = payload or None
            if channel in ("email", "sms") and not d.address:
                d.state, d.reason = "failed", f"no {channel} address for {target}"
            elif pb.dry_run or loop.dry_run:
                d.state, d.reason = "dry_run", "dry run: decided, not sent"
            elif (
                d.offer
                and d.subscriber_id
                and in_holdout(d.subscriber_id, salt=loop.book.holdout.salt, share=loop.book.holdout.share)
            ):
                d.state, d.reason = (
                    "held_out",
                    "randomised hold-out: nothing sent, so the offer's effect can be measured",
                )
            elif approval is not None and evaluate_condition(approval, values):
                d.state, d.reason = "awaiting_approval", "needs a person's approval"
            if step.target == "lines" and n >= step.max_targets and d.state == "queued":
                d.state, d.reason = "suppressed", f"beyond the step's {step.max_targets} lines"
            out.append(d)
    return out


def _new_only(conn: Connection, candidates: list[Decision]) -> list[Decision]:
    """Drop candidates already in the outbox (and repeats within the list)."""
    unique: dict[str, Decision] = {}
    for d in candidates:
        unique.setdefault(d.key, d)
    keys = list(unique)
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        for (k,) in conn.execute(select(actions.c.key).where(actions.c.key.in_(chunk))):
            unique.pop(k, None)
    return sorted(unique.values(), key=lambda d: -d.priority)


# --- the contact policy ---------------------------------------------------------------------


def _apply_policy(conn: Connection, loop: Loop, decisions: list[Decision], now: datetime) -> None:
    """Suppress or defer what the contact policy forbids, counting what is already in the outbox."""
    policy = loop.book.contact_policy
    # A held-out line is recorded once per dedupe window, as a treated one would be contacted once:
    # the hold-out arm counts lines, and its rows should read like the treated arm's.
    subject_to = [d for d in decisions if d.party and d.state in ("queued", "awaiting_approval", "held_out")]
    if not subject_to:
        return
    windows = [policy.overall.per_s, *(c.per_s for c in policy.channels.values())]
    windows += [d.dedupe_per_s for d in subject_to if d.dedupe_per_s]
    since = now - timedelta(seconds=max(windows))
    parties = sorted({d.party for d in subject_to if d.party})
    #: Per party: (channel, dedupe group, when, whether it reached or will reach the customer).
    history: dict[str, list[tuple[str, str | None, datetime, bool]]] = defaultdict(list)
    optouts: set[tuple[str, str]] = set()
    a, o = actions.c, contact_optouts.c
    for i in range(0, len(parties), 500):
        chunk = parties[i : i + 500]
        for r in conn.execute(
            select(a.party, a.channel, a.dedupe_group, a.created_at, a.state).where(
                a.party.in_(chunk), a.created_at >= since, a.state.in_((*COUNTED_STATES, "held_out"))
            )
        ):
            history[r.party].append((r.channel, r.dedupe_group, r.created_at, r.state != "held_out"))
        optouts |= {
            (r.party, r.channel) for r in conn.execute(select(o.party, o.channel).where(o.party.in_(chunk)))
        }
    for d in subject_to:
        party = d.party or ""
        held_out = d.state == "held_out"
        if not held_out and ((party, d.channel) in optouts or (party, "*") in optouts):
            d.state, d.reason = "suppressed", f"the customer opted out of {d.channel}"
            continue
        past = history[party]
        if d.dedupe_group and d.dedupe_per_s:
            limit = now - timedelta(seconds=d.dedupe_per_s)
            earlier = [t for _, g, t, _ in past if g == d.dedupe_group and t >= limit]
            if earlier:
                d.state, d.reason = (
                    "suppressed",
                    f"one {d.dedupe_group} per customer: already at {min(earlier):%d %b %H:%M} UTC",
                )
                continue
        if held_out:  # nothing is sent: no contact limit or quiet hours apply
            past.append((d.channel, d.dedupe_group, now, False))
            continue
        sent = [(ch, t) for ch, _, t, reached in past if reached]
        ch_limit = policy.channels.get(d.channel)
        if ch_limit is not None:
            n = sum(1 for ch, t in sent if ch == d.channel and t >= now - timedelta(seconds=ch_limit.per_s))
            if n >= ch_limit.max:
                d.state, d.reason = (
                    "suppressed",
                    f"contact policy: at most {ch_limit.max} {d.channel} per {_span(ch_limit.per_s)}",
                )
                continue
        n = sum(1 for _, t in sent if t >= now - timedelta(seconds=policy.overall.per_s))
        if n >= policy.overall.max:
            d.state, d.reason = (
                "suppressed",
                f"contact policy: at most {policy.overall.max} messages per {_span(policy.overall.per_s)}",
            )
            continue
        past.append((d.channel, d.dedupe_group, now, True))
        if policy.quiet_hours is not None and d.state == "queued":
            tz = policy.regions.get(d.region or "", policy.timezone)
            d.not_before = _after_quiet_hours(now, policy.quiet_hours.start, policy.quiet_hours.end, tz)
            if d.not_before is not None:
                d.reason = f"quiet hours: held until {d.not_before:%d %b %H:%M} UTC"


def _span(seconds: float) -> str:
    if seconds % 86400 == 0:
        days = int(seconds // 86400)
        return "day" if days == 1 else f"{days} days"
    return f"{seconds / 3600:g} h"


def _after_quiet_hours(now: datetime, start: Any, end: Any, tz_name: str) -> datetime | None:
    """None outside quiet hours; else when they end, as naive UTC."""
    tz = ZoneInfo(tz_name)
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    t = local.time()
    quiet = (start <= t < end) if start < end else (t >= start or t < end)
    if not quiet:
        return None
    end_local = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if end_local <= local:
        end_local += timedelta(days=1)
    return end_local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def sent_counts(conn: Connection) -> dict[str, int]:
    """Actions per state, for pages and health."""
    return {
        s: int(n) for s, n in conn.execute(select(actions.c.state, func.count()).group_by(actions.c.state))
    }
