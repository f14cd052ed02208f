"""The closed loop end to end: playbooks decide, the outbox delivers through real protocols on
127.0.0.1 (SMTP, an HTTP SMS gateway, TMF621), exactly once through crashes and second processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connectors.actions.loopback import LoopbackSinks
from dashboard.config import ConfigError, PlaybooksConfig
from dashboard.kpis import ExpressionError, evaluate_condition, parse_condition
from dashboard.playbooks import (
    Deliverer,
    Loop,
    OutboxError,
    decide,
    evaluate,
    follow_link,
    in_holdout,
    link_token,
    load_playbooks,
    measure_uplift,
    parse_playbooks,
)
from dashboard.playbooks.fixtures import build_world, load_fixture_file, run_playbook_tests
from dashboard.store.db import Store
from dashboard.store.schema import actions, audit, contact_optouts, offer_events
from tests.playbook_worker import ACTIONS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "playbooks.yaml"
NOW = datetime(2026, 1, 5, 10, 0)


def _book():  # type: ignore[no-untyped-def]
    return load_playbooks(ROOT / "playbooks.yaml", actions=ACTIONS)


def _loop(**kw) -> Loop:  # type: ignore[no-untyped-def]
    return Loop(
        book=kw.pop("book", None) or _book(), actions={a.name: a for a in ACTIONS}, secret="test", **kw
    )


def _scenario(name_part: str):  # type: ignore[no-untyped-def]
    for s in load_fixture_file(FIXTURES).tests:
        if name_part in s.name:
            return s
    raise KeyError(name_part)


@pytest.fixture
def sinks():  # type: ignore[no-untyped-def]
    with LoopbackSinks() as s:
        yield s


def _deliverer(store: Store, sinks: LoopbackSinks, now: datetime = NOW, **policy) -> Deliverer:  # type: ignore[no-untyped-def]
    return Deliverer(
        store, ACTIONS, PlaybooksConfig(**policy), clock=lambda: now, loopback_options=sinks.action_options()
    )


def _states(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        return {f"{r.playbook}/{r.step}/{r.target}": r.state for r in conn.execute(select(actions))}


# --- the language and the file -----------------------------------------------------------


def test_conditions_are_safe_and_missing_values_are_false() -> None:
    names = ["incident.severity", "customer.churn_risk", "customer.vip"]
    tree = parse_condition("incident.severity in ['critical', 'major'] and customer.churn_risk >= 0.3", names)
    assert evaluate_condition(tree, {"incident.severity": "major", "customer.churn_risk": 0.4}) is True
    assert evaluate_condition(tree, {"incident.severity": "major", "customer.churn_risk": None}) is False
    assert evaluate_condition("not customer.vip", {"customer.vip": False}) is True
    for bad, why in [
        ("__import__('os').system('id')", "Call"),
        ("incident.severity.__class__", None),
        ("incident.sevrity == 'x'", "did you mean 'incident.severity'"),
        ("[x for x in incident.severity]", "ListComp"),
        ("incident.severity ** 2", "Pow"),
    ]:
        with pytest.raises(ExpressionError) as err:
            parse_condition(bad, names)
        if why:
            assert why in str(err.value)


def test_a_bad_playbook_file_names_every_path() -> None:
    raw = {
        "playbooks": [
            {
                "name": "p",
                "trigger": {"event": "sla_within"},
                "when": "incident.sevrity == 'critical'",
                "steps": [
                    {"name": "s", "action": "fax", "target": "line", "body": "{{ unclosed"},
                    {"name": "s", "action": "email", "when": "customer.segment == 'x'"},
                ],
            },
            {"name": "q", "trigger": {"event": "nope"}, "steps": []},
        ]
    }
    with pytest.raises(ConfigError) as err:
        parse_playbooks(raw, file="pb.yaml", actions=ACTIONS)
    text = str(err.value)
    assert "pb.yaml: playbooks[1].trigger.event" in text
    assert "playbooks[1].steps" in text
    with pytest.raises(ConfigError) as err:
        parse_playbooks({"playbooks": raw["playbooks"][:1]}, file="pb.yaml", actions=ACTIONS)
    text = str(err.value)
    for path in [
        "playbooks[0].trigger.within",
        "playbooks[0].when",
        "playbooks[0].steps[0].action",
        "playbooks[0].steps[0].target",
        "playbooks[0].steps[0].body",
        "playbooks[0].steps[1].name",
        "playbooks[0].steps[1].when",
    ]:
        assert f"pb.yaml: {path}:" in text, path
    assert "no action named 'fax'" in text


def test_the_shipped_scenarios_pass_and_a_wrong_expectation_fails(tmp_path: Path) -> None:
    result = run_playbook_tests(FIXTURES)
    assert result.ok, result.failures
    assert result.tests >= 6
    wrong = tmp_path / "wrong.yaml"
    text = FIXTURES.read_text().replace("../../playbooks.yaml", str(ROOT / "playbooks.yaml"))
    wrong.write_text(
        text.replace(
            'target: "event:I1", state: queued, count: 1}', 'target: "event:I1", state: queued, count: 2}'
        )
    )
    result = run_playbook_tests(wrong)
    assert not result.ok and "expected 2 of [sla-breach-enterprise step=open-ticket" in result.failures[0]


def test_the_holdout_is_deterministic_and_near_its_share() -> None:
    ids = [f"L{i}" for i in range(20000)]
    held = [in_holdout(i, salt="s", share=0.2) for i in ids]
    assert held == [in_holdout(i, salt="s", share=0.2) for i in ids]
    assert 0.19 < sum(held) / len(held) < 0.21
    assert held != [in_holdout(i, salt="other", share=0.2) for i in ids]


# --- end to end through real protocols -------------------------------------------------


def test_an_sla_about_to_breach_acts_once_through_real_protocols(store: Store, sinks: LoopbackSinks) -> None:
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    loop = _loop()
    with store.begin() as conn:
        first = evaluate(conn, loop, now=NOW)
    assert first.decided["queued"] == 4  # one ticket, one manager e-mail, two apologies
    deliverer = _deliverer(store, sinks)
    assert deliverer.run_once().outcomes["sent"] == 4
    # The next refreshes, a restarted process and a second deliverer find nothing more to do.
    for _ in range(3):
        with store.begin() as conn:
            assert sum(evaluate(conn, _loop(), now=NOW + timedelta(minutes=1)).decided.values()) == 0
        assert _deliverer(store, sinks).run_once().claimed == 0
    tickets = sinks.received("ticket")
    mails = sinks.received("email")
    assert len(tickets) == 1 and tickets[0].subject.startswith("CRITICAL:")
    assert sorted(m.to for m in mails) == [
        "ana.costa@operator.example",
        "it@acme.example",
        "ops@beta.example",
    ]
    manager = next(m for m in mails if m.to == "ana.costa@operator.example")
    assert "2 of your accounts" in manager.subject and "Acme" in manager.body and "Beta" in manager.body
    with store.connect() as conn:
        row = conn.execute(select(actions).where(actions.c.step == "open-ticket")).mappings().one()
    assert row["state"] == "sent" and row["reference"] == tickets[0].reference
    assert sinks.ticket(row["reference"]) is not None
    # Every request carried the action's key.
    assert {m.key for m in mails} | {tickets[0].key} <= set(_keys(store))


def _keys(store: Store) -> list[str]:
    with store.connect() as conn:
        return [k for (k,) in conn.execute(select(actions.c.key))]


def test_dry_run_decides_and_sends_nothing(store: Store, sinks: LoopbackSinks) -> None:
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    with store.begin() as conn:
        result = evaluate(conn, _loop(dry_run=True), now=NOW)
    assert result.decided == {"dry_run": 4}
    assert _deliverer(store, sinks).run_once().claimed == 0
    assert sinks.received() == []


def test_approvals_hold_until_a_person_decides_and_are_audited(store: Store, sinks: LoopbackSinks) -> None:
    build_world(store, _scenario("credit above 200"))
    now = datetime(2026, 1, 5, 12, 0)
    with store.begin() as conn:
        evaluate(conn, _loop(), now=now)
    assert _deliverer(store, sinks, now).run_once().claimed == 0
    with store.connect() as conn:
        row = conn.execute(select(actions)).mappings().one()
    assert row["state"] == "awaiting_approval" and row["promised"] == 600.0  # 1.5 h over SLA x 400
    with pytest.raises(OutboxError, match="only uncertain or failed actions can be resent"):
        decide(store, row["id"], "resend", actor="ops", now=now)
    assert decide(store, row["id"], "approve", actor="ana", now=now, note="contract says so") == "queued"
    assert _deliverer(store, sinks, now).run_once().outcomes["sent"] == 1
    mail = sinks.received("email")[0]
    assert "600.00 EUR" in mail.body
    with store.connect() as conn:
        trail = conn.execute(select(audit.c.actor, audit.c.action, audit.c.detail)).all()
    assert [(t.actor, t.action) for t in trail] == [("ana", "action.approve")]
    assert trail[0].detail["note"] == "contract says so"


def test_quiet_hours_hold_a_message_until_morning(store: Store, sinks: LoopbackSinks) -> None:
    s = _scenario("credit above 200")
    late = datetime(2026, 1, 5, 22, 30)  # 22:30 in Lisbon (UTC+0 in January)
    build_world(store, s.model_copy(update={"now": late}))
    book = _book()
    book.playbook("resolved-apology").steps[0].approval = None
    with store.begin() as conn:
        evaluate(conn, _loop(book=book), now=late)
    with store.connect() as conn:
        row = conn.execute(select(actions)).mappings().one()
    assert row["state"] == "queued" and row["not_before"] == datetime(2026, 1, 6, 8, 0)
    assert _deliverer(store, sinks, late).run_once().claimed == 0
    assert _deliverer(store, sinks, datetime(2026, 1, 6, 8, 1)).run_once().outcomes["sent"] == 1


def test_quiet_hours_follow_the_region_s_time_zone(store: Store) -> None:
    s = _scenario("credit above 200")
    at = datetime(2026, 1, 5, 19, 30)  # 19:30 in Lisbon (UTC in January), 21:30 in Helsinki
    world = s.model_copy(update={"now": at, "incidents": [{**s.incidents[0], "region": "FI"}]})
    build_world(store, world)
    book = _book()
    book.playbook("resolved-apology").steps[0].approval = None
    book.contact_policy.regions = {"FI": "Europe/Helsinki"}
    with store.begin() as conn:
        evaluate(conn, _loop(book=book), now=at)
    with store.connect() as conn:
        row = conn.execute(select(actions)).mappings().one()
    assert row["not_before"] == datetime(2026, 1, 6, 6, 0)  # 08:00 in Helsinki (UTC+2)


def test_retries_back_off_and_permanent_failures_stop(store: Store, sinks: LoopbackSinks) -> None:
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    with store.begin() as conn:
        evaluate(conn, _loop(), now=NOW)
    sinks.fail_next("ticket", 503, times=3)  # the HTTP client's own three tries in the first pass
    sinks.fail_next("email", 550, times=1)
    first = _deliverer(store, sinks).run_once()
    assert first.outcomes["retrying"] == 1 and first.outcomes["failed"] == 1 and first.outcomes["sent"] == 2
    with store.connect() as conn:
        ticket = conn.execute(select(actions).where(actions.c.step == "open-ticket")).mappings().one()
    assert ticket["state"] == "queued" and ticket["next_attempt_at"] > NOW and "503" in ticket["reason"]
    later = _deliverer(store, sinks, NOW + timedelta(hours=1)).run_once()
    assert later.outcomes["sent"] == 1 and len(sinks.received("ticket")) == 1


# --- exactly once through crashes and second processes ----------------------------------


def _worker(store: Store, verb: str, sinks: LoopbackSinks, now: datetime, failpoint: str | None) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VANTAGE_FAILPOINT", None)
    if failpoint:
        env["VANTAGE_FAILPOINT"] = failpoint
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.playbook_worker",
            verb,
            store.url,
            store.schema or "",
            json.dumps(sinks.action_options()),
            now.isoformat(),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode


@pytest.mark.parametrize("failpoint", ["decided", "claimed", "sent:ticket", "sent:email"])
def test_a_process_killed_at_any_step_sends_nothing_twice(
    store: Store, sinks: LoopbackSinks, failpoint: str
) -> None:
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    killed = _worker(store, "evaluate", sinks, NOW, failpoint if failpoint == "decided" else None)
    if failpoint == "decided":
        assert killed == -9
        assert _keys(store) == []  # the decision died with its transaction: nothing half-written
        assert _worker(store, "evaluate", sinks, NOW, None) == 0
    assert len(_keys(store)) == 4
    rc = _worker(store, "deliver", sinks, NOW, failpoint if failpoint != "decided" else None)
    assert rc == (-9 if failpoint != "decided" else 0)
    # A restarted deliverer, after the dead one's lease ran out, and again later.
    for minutes in (5, 10):
        _deliverer(store, sinks, NOW + timedelta(minutes=minutes)).run_once()
    states = _states(store)
    per_key: dict[str, int] = {}
    for m in sinks.received():
        per_key[m.key or ""] = per_key.get(m.key or "", 0) + 1
    assert all(n == 1 for n in per_key.values()), per_key  # never a second message
    assert len(sinks.received("ticket")) == 1  # a ticket is looked up by its key before it is created
    if failpoint == "sent:email":
        # The e-mail that had reached its server when the process died is not sent again (SMTP
        # cannot tell a repeat): it waits for a person; everything else went once.
        assert sorted(states.values()) == ["sent", "sent", "sent", "uncertain"]
        assert len(sinks.received("email")) == 3
    else:
        assert sorted(states.values()) == ["sent"] * 4
        assert len(sinks.received()) == 4


def test_two_deliverers_at_once_send_each_action_once(store: Store, sinks: LoopbackSinks) -> None:
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    with store.begin() as conn:
        evaluate(conn, _loop(), now=NOW)
    # Many more queued actions, so the two overlap.
    with store.begin() as conn:
        template = dict(conn.execute(select(actions).where(actions.c.step == "apologise")).mappings().first())
        template.pop("id")
        rows = [
            {**template, "key": f"{i:064x}", "address": f"c{i}@example.net", "target": f"account:X{i}"}
            for i in range(150)
        ]
        conn.execute(actions.insert(), rows)
    errors: list[BaseException] = []

    def run(d: Deliverer) -> None:
        try:
            while d.run_once(limit=20).claimed:
                pass
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(_deliverer(store, sinks),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    keys = [m.key for m in sinks.received()]
    assert len(keys) == len(set(keys)) == 154


def test_two_schedulers_evaluating_at_once_decide_each_action_once(store: Store) -> None:
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(3):
                with store.begin() as conn:
                    evaluate(conn, _loop(), now=NOW)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if store.dialect == "sqlite":
        errors = [e for e in errors if "locked" not in str(e)]  # one writer: the loser retries next refresh
    assert not errors
    assert len(_keys(store)) == 4


# --- customers' links and the uplift ------------------------------------------------------


def test_offer_links_record_acceptance_and_opt_out(store: Store, sinks: LoopbackSinks) -> None:
    s = _scenario("churn risk crossed")
    build_world(store, s)
    with store.begin() as conn:
        evaluate(conn, _loop(), now=s.now)
    _deliverer(store, sinks, s.now).run_once()
    sms = sinks.received("sms")
    assert len(sms) == 1 and sms[0].to == "+351910000001"
    with store.connect() as conn:
        row = conn.execute(select(actions)).mappings().one()
    assert row["offer"] == "data-boost-20gb" and row["expected_value"] == pytest.approx(0.45 * 360 - 4)
    assert f"/offers/{row['key']}/accept?t={link_token('test', row['key'], 'accept')}" in sms[0].body
    with pytest.raises(OutboxError):
        follow_link(store, row["key"], "accept", "0" * 32, secret="test", now=s.now)
    for _ in range(2):
        follow_link(
            store, row["key"], "accept", link_token("test", row["key"], "accept"), secret="test", now=s.now
        )
    follow_link(
        store, row["key"], "optout", link_token("test", row["key"], "optout"), secret="test", now=s.now
    )
    with store.connect() as conn:
        assert conn.execute(select(offer_events.c.outcome, offer_events.c.subscriber_id)).all() == [
            ("accepted", "L1")
        ]
        assert conn.execute(select(contact_optouts.c.party, contact_optouts.c.channel)).all() == [
            ("line:L1", "*")
        ]


def test_a_held_out_line_is_recorded_once_per_dedupe_window(store: Store) -> None:
    """Crossing again after a second incident within the retention window records no second row
    for a held-out line, as it sends no second offer to a treated one."""
    from dashboard.store.schema import line_exposures

    s = _scenario("churn risk crossed")
    build_world(store, s)
    book = _book()
    book = book.model_copy(update={"holdout": book.holdout.model_copy(update={"share": 1.0})})
    with store.begin() as conn:
        evaluate(conn, _loop(book=book), now=s.now)
        conn.execute(
            line_exposures.insert().values(
                subscriber_id="L1", incident_id="I2", risk_at_hit=0.02, hit_at=s.now + timedelta(hours=1)
            )
        )
    with store.begin() as conn:
        evaluate(conn, _loop(book=book), now=s.now + timedelta(days=2))
    with store.connect() as conn:
        rows = conn.execute(
            select(actions.c.state, actions.c.reason)
            .where(actions.c.target == "line:L1")
            .order_by(actions.c.id)
        ).all()
    assert [r.state for r in rows] == ["held_out", "suppressed"]
    assert "one retention per customer" in (rows[1].reason or "")


def test_uplift_compares_treated_with_the_holdout(store: Store) -> None:
    from dashboard.store.schema import churn_events

    rows, churns = [], []
    base = datetime(2026, 1, 1)
    for i in range(400):
        held = i % 5 == 0
        rows.append(
            {
                "key": f"k{i}", "playbook": "retention-offer", "step": "offer",
                "trigger": "churn_risk_crossed",
                "action": "sms", "action_type": "sms_http", "channel": "sms", "target": f"line:L{i}",
                "subscriber_id": f"L{i}", "state": "held_out" if held else "sent", "offer": "o", "cost": 4.0,
                "attempts": 1, "created_at": base, "updated_at": base,
            }
        )  # fmt: skip
        if (held and i % 10 == 0) or (not held and i % 20 == 1):  # hold-out 40 of 80, treated 20 of 320
            churns.append(
                {
                    "id": f"c{i}",
                    "source": "t",
                    "subscriber_id": f"L{i}",
                    "occurred_at": base + timedelta(days=3),
                }
            )

    def accepted(line: str, offer: str, days: float) -> dict[str, object]:
        return {
            "id": f"a-{line}-{offer}-{days}", "source": "bss", "subscriber_id": line, "offer": offer,
            "outcome": "accepted", "occurred_at": base + timedelta(days=days),
        }  # fmt: skip

    events = [
        accepted("L1", "o", 2),  # the offer Vantage made, accepted: counts
        accepted("L2", "o", 2),
        accepted("L3", "operator-campaign", 2),  # the operator's own offer: does not
        accepted("L4", "o", -5),  # accepted before Vantage offered it: does not
        accepted("L6", "o", 45),  # after the window: does not
        accepted("L5", "o", 2),  # a hold-out line (never offered): does not
    ]
    with store.begin() as conn:
        conn.execute(actions.insert(), rows)
        conn.execute(churn_events.insert(), churns)
        conn.execute(offer_events.insert(), events)
    with store.connect() as conn:
        u = measure_uplift(conn, "retention-offer", window_days=30, now=base + timedelta(days=31))
    assert u.accepted == 2
    assert (u.treated, u.holdout) == (320, 80)
    assert u.holdout_churned == 40 and u.treated_churned == 20
    assert u.effect == pytest.approx(0.5 - 20 / 320)
    # Newcombe's hybrid score interval (his method 10) for 40/80 - 20/320.
    assert u.ci_low == pytest.approx(0.3258, abs=1e-3) and u.ci_high == pytest.approx(0.5467, abs=1e-3)


def test_an_action_row_update_cannot_claim_twice(store: Store, sinks: LoopbackSinks) -> None:
    """A claim only takes queued rows: a row another process claimed is left to it."""
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    with store.begin() as conn:
        evaluate(conn, _loop(), now=NOW)
        conn.execute(update(actions).values(state="sending", claimed_by="other", claimed_at=NOW))
    assert _deliverer(store, sinks).run_once().claimed == 0
    assert sinks.received() == []


def test_the_queue_job_queues_the_loop_s_actions_within_the_refresh_that_triggers_them(net: Store) -> None:
    """The real path: alarms in, the scheduler's queue job (refresh, then playbooks), delivery to
    the loopback sinks `vantage run` starts, and the simulated customers' side not involved."""
    from dashboard.config import Settings
    from dashboard.context import Context
    from dashboard.scheduler import LoopRuntime, builtin_jobs
    from tests.incident_net import T, alarm, catalogue, ingest

    ent = {"id": "ENT", "name": "Harbour Logistics", "segment": "enterprise", "vip": False}
    ent |= {"account_manager": "Ana Costa", "sla_restore_minutes": 30, "penalty_per_hour": 600.0}
    ingest(net, "accounts", [ent | {"contact_name": "Rui Lopes", "contact_email": "noc@harbour.example"}])
    settings = Settings.model_validate(
        {
            "playbooks": {"enabled": True, "loopback": True},
            "actions": [a.model_dump() for a in ACTIONS],
        }
    )
    now = T + timedelta(minutes=12)
    ctx = Context.build(settings, store=net, catalogue=catalogue(), clock=lambda: now)
    ingest(net, "alarms", [alarm("a1", "ran-1", T)])
    runtime = LoopRuntime(ctx)
    try:
        jobs = builtin_jobs(ctx, runtime.loop)
        jobs["incident-queue"][1]()
        states = _states(net)
        assert len(states) == 3
        assert {
            "sla-breach-enterprise/apologise/account:ENT",
            "sla-breach-enterprise/tell-account-manager/manager:Ana Costa",
        } < set(states)
        assert any(k.startswith("sla-breach-enterprise/open-ticket/event:") for k in states)
        assert set(states.values()) == {"queued"}
        jobs["playbooks-deliver"][1]()
        assert set(_states(net).values()) == {"sent"}
        sinks = runtime.sinks
        assert sinks is not None
        assert len(sinks.received("ticket")) == 1
        assert sorted(m.to for m in sinks.received("email")) == [
            "ana.costa@operator.example",
            "noc@harbour.example",
        ]
        jobs["incident-queue"][1]()  # the next refresh decides nothing new
        jobs["playbooks-deliver"][1]()
        assert len(sinks.received()) == 3
        # The ticket's id is written back on the incident; an operator's acknowledgement in
        # Vantage acknowledges the alarm upstream (TMF642), as that operator.
        from dashboard.incidents import acknowledge
        from dashboard.store.schema import incidents

        with net.connect() as conn:
            incident_id, ticket_id = conn.execute(
                select(incidents.c.id, incidents.c.ticket_id).where(incidents.c.source == "vantage")
            ).one()
        assert ticket_id == sinks.received("ticket")[0].reference
        acknowledge(net, incident_id, actor="marta", now=now)
        jobs["incident-queue"][1]()
        jobs["playbooks-deliver"][1]()
        acks = sinks.received("alarm")
        assert len(acks) == 1 and acks[0].data["ackUserId"] == "marta"
        assert acks[0].data["alarmPattern"] == [{"id": "a1"}]
        # Cleared: the ticket is resolved upstream (a PATCH of the same ticket). The customer had
        # its apology when the SLA clock ran low: the one after the restore is held back (one
        # apology per customer per day), recorded with its reason.
        now = T + timedelta(minutes=70)
        ingest(net, "alarms", [alarm("a1", "ran-1", T, cleared=T + timedelta(minutes=40))])
        jobs["incident-queue"][1]()
        jobs["playbooks-deliver"][1]()
        patches = [m for m in sinks.received("ticket") if m.data.get("status") == "resolved"]
        assert len(patches) == 1 and patches[0].reference == ticket_id
        assert [m.subject for m in sinks.received("email")].count("Our apologies: service restored") == 0
        with net.connect() as conn:
            held = (
                conn.execute(select(actions).where(actions.c.playbook == "resolved-apology")).mappings().one()
            )
        assert held["state"] == "suppressed" and "one apology per customer" in held["reason"]
        assert held["promised"] == 100.0  # the credit it would have carried: 10 min past SLA x 600/h
        from dashboard.store.schema import loopback_messages

        with net.connect() as conn:
            assert conn.execute(select(loopback_messages.c.channel)).scalars().all().count("email") == 2
    finally:
        runtime.close()


def test_a_pass_whose_claims_were_taken_over_sends_nothing_twice(store: Store, sinks: LoopbackSinks) -> None:
    """A slow pass outlives its lease; another deliverer takes its rows over and sends them; the
    slow one, resuming, must not send an e-mail again (a ticket is looked up by its key)."""
    build_world(store, _scenario("enterprise SLA 20 minutes"))
    with store.begin() as conn:
        evaluate(conn, _loop(), now=NOW)
    slow = _deliverer(store, sinks)
    rows = slow._claim(NOW, 100, "slow/1")
    assert len(rows) == 4
    assert _deliverer(store, sinks, NOW + timedelta(minutes=5)).run_once().outcomes["sent"] == 4
    outcomes = [slow._deliver(row, "slow/1") for row in rows]
    assert outcomes.count("lost claim") == 3  # the three e-mails
    keys = [m.key for m in sinks.received()]
    assert len(sinks.received("email")) == 3 and len(sinks.received("ticket")) == 1
    assert len(keys) == len(set(keys))
    assert set(_states(store).values()) == {"sent"}
