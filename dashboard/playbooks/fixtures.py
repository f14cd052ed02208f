"""Scenario tests for playbooks (``vantage playbooks test FILE``): a small world in, decisions out.

A fixture file::

    playbooks: ../playbooks.yaml          # optional; default the configured playbooks file
    actions:                              # optional; default the settings' actions
      - {name: email, type: smtp, loopback: true}
    tests:
      - name: an enterprise SLA 20 minutes from breach opens one ticket
        now: 2026-01-05T10:00
        accounts:
          - {id: A1, segment: enterprise, vip: true, account_manager: Ana Costa,
             sla_restore_minutes: 60, penalty_per_hour: 500, contact_email: it@acme.example}
        lines:
          - {id: L1, account_id: A1, msisdn: "+351910000001", arpu: 80, cells: [C1], churn_risk: 0.1}
        incidents:
          - {id: I1, severity: critical, opened_at: 2026-01-05T09:40, cells: [C1],
             sla_deadline: 2026-01-05T10:20, sla_accounts: 1}
        history:                          # earlier contacts the policy counts
          - {party: "account:A1", channel: email, group: apology, at: 2026-01-05T08:00}
        optouts: [{party: "line:L1", channel: sms}]
        exposures: [{line: L1, incident: I1, risk_at_hit: 0.1}]
        expect:
          - {playbook: sla-breach-enterprise, step: open-ticket, state: queued, count: 1}
          - {playbook: resolved-apology, count: 0}

Each test builds its world in a fresh SQLite store and runs the same evaluation the scheduler runs
after a queue refresh; ``evaluate_twice`` (default true) runs it again and checks that the second
run decides nothing new. An expectation matches decisions by playbook, and optionally step, target
and state; ``count`` is exact when given, else at least one must match.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from dashboard.config import ActionConfig, ConfigError, read_yaml_mapping, validation_problems
from dashboard.playbooks.decide import Loop, evaluate
from dashboard.playbooks.spec import PlaybookFile, load_playbooks
from dashboard.store.db import Store
from dashboard.store.schema import (
    accounts,
    actions,
    contact_optouts,
    incident_cells,
    incident_queue,
    line_exposures,
    metadata,
    subscriber_cells,
    subscriber_signals,
    subscribers,
)

_SOURCE = "fixture"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expectation(_Strict):
    playbook: str
    step: str | None = None
    target: str | None = None
    state: str | None = None
    count: int | None = Field(default=None, ge=0)

    def describe(self) -> str:
        parts = [self.playbook] + [
            f"{k}={v}" for k, v in (("step", self.step), ("target", self.target), ("state", self.state)) if v
        ]
        return " ".join(parts)


class Scenario(_Strict):
    name: str
    now: datetime
    accounts: list[dict[str, Any]] = Field(default_factory=list)
    lines: list[dict[str, Any]] = Field(default_factory=list)
    incidents: list[dict[str, Any]] = Field(default_factory=list)
    history: list[dict[str, Any]] = Field(default_factory=list)
    optouts: list[dict[str, Any]] = Field(default_factory=list)
    exposures: list[dict[str, Any]] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)
    evaluate_twice: bool = True


class FixtureFile(_Strict):
    playbooks: str | None = None
    actions: list[ActionConfig] | None = None
    tests: list[Scenario] = Field(min_length=1)


@dataclass
class FixtureResult:
    file: str
    tests: int = 0
    checks: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def load_fixture_file(path: str | Path) -> FixtureFile:
    file = Path(path)
    raw = read_yaml_mapping(file, "playbook tests")
    try:
        return FixtureFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(str(file), validation_problems(err)) from None


_TIMES = ("opened_at", "resolved_at", "sla_deadline", "at", "hit_at", "activated_at")


def _times(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """YAML reads 2026-01-05T09:20 (no seconds) as text: every time field becomes a datetime."""
    out = []
    for item in items:
        item = dict(item)
        for k in _TIMES:
            if isinstance(item.get(k), str):
                item[k] = datetime.fromisoformat(item[k])
        out.append(item)
    return out


def build_world(store: Store, s: Scenario) -> None:
    """Write a scenario's accounts, lines, incidents, history, opt-outs and exposures into ``store``."""
    now = s.now
    s = s.model_copy(
        update={k: _times(getattr(s, k)) for k in ("accounts", "lines", "incidents", "history", "exposures")}
    )
    with store.begin() as conn:
        for a in s.accounts:
            conn.execute(
                insert(accounts).values(
                    source=_SOURCE,
                    name=a.get("name", a["id"]),
                    segment=a.get("segment", "consumer"),
                    vip=bool(a.get("vip", False)),
                    **{k: v for k, v in a.items() if k not in ("name", "segment", "vip")},
                )
            )
        for ln in s.lines:
            conn.execute(
                insert(subscribers).values(
                    id=ln["id"],
                    source=_SOURCE,
                    account_id=ln.get("account_id"),
                    msisdn=ln.get("msisdn"),
                    plan=ln.get("plan"),
                    arpu=ln.get("arpu"),
                    activated_at=ln.get("activated_at"),
                    status=ln.get("status", "active"),
                )
            )
            for cell in ln.get("cells", []):
                conn.execute(
                    insert(subscriber_cells).values(
                        source=_SOURCE, subscriber_id=ln["id"], cell_id=cell, share=1.0
                    )
                )
            if "churn_risk" in ln or "sentiment" in ln:
                conn.execute(
                    insert(subscriber_signals).values(
                        subscriber_id=ln["id"],
                        source=_SOURCE,
                        account_id=ln.get("account_id"),
                        churn_risk=ln.get("churn_risk"),
                        sentiment_30d=ln.get("sentiment"),
                        tickets_30d=0,
                        negative_tickets_30d=0,
                        scored_at=now,
                    )
                )
        for rank, inc in enumerate(s.incidents, start=1):
            resolved = inc.get("resolved_at")
            conn.execute(
                insert(incident_queue).values(
                    incident_id=inc["id"],
                    rank=None if resolved else rank,
                    score=float(inc.get("score", 100 - rank)),
                    severity=inc.get("severity", "major"),
                    state=inc.get("state", "resolved" if resolved else "open"),
                    title=inc.get("title", f"incident {inc['id']}"),
                    region_id=inc.get("region"),
                    opened_at=inc.get("opened_at", now),
                    resolved_at=resolved,
                    kind=inc.get("kind", "alarm"),
                    cells=len(inc.get("cells", [])),
                    lines=float(inc.get("lines", 0)),
                    consumer_lines=float(inc.get("consumer_lines", 0)),
                    smb_lines=float(inc.get("smb_lines", 0)),
                    enterprise_lines=float(inc.get("enterprise_lines", 0)),
                    vip_lines=float(inc.get("vip_lines", 0)),
                    accounts=int(inc.get("accounts", 0)),
                    value=float(inc.get("value", 0)),
                    revenue_at_risk_per_hour=float(inc.get("revenue_at_risk", 0)),
                    penalty_per_hour=float(inc.get("penalty_per_hour", 0)),
                    sla_accounts=int(inc.get("sla_accounts", 0)),
                    sla_breached=int(inc.get("sla_breached", 0)),
                    sla_deadline=inc.get("sla_deadline"),
                    sentiment=inc.get("sentiment"),
                    churn_risk=inc.get("churn_risk"),
                    breakdown="{}",
                    reason=inc.get("reason", f"#{rank}: fixture"),
                    computed_at=now,
                )
            )
            for cell in inc.get("cells", []):
                conn.execute(
                    insert(incident_cells).values(
                        incident_id=inc["id"], cell_id=cell, degraded_share=1.0, basis="assumed"
                    )
                )
        for i, h in enumerate(s.history):
            at = h.get("at", now)
            conn.execute(
                insert(actions).values(
                    key=f"history-{i}",
                    playbook=h.get("playbook", "earlier"),
                    step=h.get("step", "earlier"),
                    trigger="incident_opened",
                    action=h.get("action", h.get("channel", "email")),
                    action_type="smtp",
                    channel=h.get("channel", "email"),
                    target=h["party"],
                    party=h["party"],
                    dedupe_group=h.get("group"),
                    state=h.get("state", "sent"),
                    attempts=1,
                    created_at=at,
                    updated_at=at,
                )
            )
        for o in s.optouts:
            conn.execute(
                insert(contact_optouts).values(
                    party=o["party"], channel=o.get("channel", "*"), created_at=now, source="fixture"
                )
            )
        for e in s.exposures:
            conn.execute(
                insert(line_exposures).values(
                    subscriber_id=e["line"],
                    incident_id=e["incident"],
                    account_id=e.get("account_id"),
                    risk_at_hit=e.get("risk_at_hit"),
                    hit_at=e.get("hit_at", now),
                )
            )


def run_scenario(book: PlaybookFile, configs: list[ActionConfig], s: Scenario) -> list[str]:
    """The failures of one scenario (empty when it passes)."""
    failures: list[str] = []
    loop = Loop(book=book, actions={a.name: a for a in configs}, secret="fixture")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/fixture.db")
        try:
            metadata.create_all(store.engine)
            build_world(store, s)
            with store.begin() as conn:
                evaluate(conn, loop, now=s.now)
            with store.connect() as conn:
                decided = [
                    dict(r)
                    for r in conn.execute(
                        select(
                            actions.c.playbook,
                            actions.c.step,
                            actions.c.target,
                            actions.c.state,
                            actions.c.reason,
                        ).where(~actions.c.key.startswith("history-"))
                    ).mappings()
                ]
            for exp in s.expect:
                found = [
                    d
                    for d in decided
                    if d["playbook"] == exp.playbook
                    and (exp.step is None or d["step"] == exp.step)
                    and (exp.target is None or d["target"] == exp.target)
                    and (exp.state is None or d["state"] == exp.state)
                ]
                if (exp.count is None and not found) or (exp.count is not None and len(found) != exp.count):
                    want = "at least 1" if exp.count is None else str(exp.count)
                    got = json.dumps(
                        [
                            f"{d['playbook']}/{d['step']} {d['target']} {d['state']}"
                            + (f" ({d['reason']})" if d["reason"] else "")
                            for d in decided
                        ]
                    )
                    failures.append(
                        f"{s.name}: expected {want} of [{exp.describe()}], found {len(found)}; decided: {got}"
                    )
            if s.evaluate_twice:
                with store.begin() as conn:
                    again = evaluate(conn, loop, now=s.now)
                if sum(again.decided.values()):
                    failures.append(
                        f"{s.name}: evaluating again decided {dict(again.decided)} (must decide nothing new)"
                    )
        finally:
            store.dispose()
    return failures


def run_playbook_tests(
    path: str | Path, *, book: PlaybookFile | None = None, actions_cfg: list[ActionConfig] | None = None
) -> FixtureResult:
    """Run every scenario of a fixture file against ``book`` (or the file's own playbooks)."""
    fixture = load_fixture_file(path)
    configs = fixture.actions if fixture.actions is not None else (actions_cfg or [])
    if fixture.playbooks is not None:
        book = load_playbooks(Path(path).resolve().parent / fixture.playbooks, actions=configs)
    if book is None:
        raise ConfigError(str(path), [("playbooks", "no playbooks file given here or in the settings")])
    result = FixtureResult(file=str(path))
    for s in fixture.tests:
        result.tests += 1
        result.checks += len(s.expect)
        try:
            result.failures += run_scenario(book, configs, s)
        except (ValueError, KeyError, TypeError, SQLAlchemyError) as err:
            result.failures.append(
                f"{s.name}: the scenario's world is not valid: {type(err).__name__}: {err}"[:600]
            )
    return result
