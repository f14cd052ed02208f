"""The Actions page, and the playbooks' actions on the incident detail and the subscriber 360, on a
small hand-made outbox (rows inserted into ``actions`` directly, on tests/browser.py's queue).

By hand: six actions. An apology with a 250 credit to the consumer VIP account VIPC (contact Rita
Mendes) waits for approval; an offer by SMS to its line V0 was sent an hour ago (cost 4, promised
15); an email to the account manager failed; a ticket for the Harbour incident is queued; an SMS to
V1 (another line of VIPC) is uncertain; a consumer line of CONS was held out. The loopback SMS sink
received the offer to V0, and one message no action names.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import dash
import plotly
import pytest
from sqlalchemy import insert, select

from connectors.base import Batch
from dashboard import ids
from dashboard.guard import rules
from dashboard.ingest import Ingestor
from dashboard.playbooks import action_key
from dashboard.playbooks import read as outbox
from dashboard.store.db import Store
from dashboard.store.schema import actions, audit, loopback_messages
from tests.apps import client, new_app, request_as
from tests.browser import fixed_clock, seed_queue, settings_for

NOW = datetime(2026, 3, 2, 12, 0)
#: Personal data the outbox holds, which no page or API response may carry in clear.
CLEAR = (
    "rita.mendes@example.pt",
    "Rita Mendes",
    "351930000000",
    "+351 930 000 000",
    "ana.costa@operator.example",
    "bob@example.org",
    "Bob Unknown",
)


@dataclass(frozen=True)
class Outbox:
    """The ids of the hand-made actions."""

    incident: str
    awaiting: int
    sent_offer: int
    failed: int
    queued: int
    uncertain: int
    held_out: int
    offer_key: str


def _action(n: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trigger": "incident_opened",
        "action_type": "smtp",
        "attempts": 0,
        "created_at": NOW - timedelta(minutes=60 - n),
        "updated_at": NOW - timedelta(minutes=60 - n),
    }
    row |= values
    row["key"] = action_key(row["playbook"], row["step"], str(n), row["target"])
    return row


def seed_outbox(store: Store) -> Outbox:
    """The queue of tests/browser.py, VIPC's contact details, six actions and two received messages."""
    queue = seed_queue(store, NOW)
    vipc = {
        "id": "VIPC",
        "name": "R. Mendes",
        "segment": "consumer",
        "vip": True,
        "contact_name": "Rita Mendes",
        "contact_email": "rita.mendes@example.pt",
        "contact_phone": "+351 912 345 678",
    }
    Ingestor(store, clock=fixed_clock(NOW)).ingest("crm", [Batch(kind="accounts", records=[vipc])])
    rows = [
        _action(
            1,
            playbook="resolved-apology",
            step="apology-with-credit",
            trigger="incident_resolved",
            action="email",
            channel="email",
            incident_id=queue.harbour,
            account_id="VIPC",
            target="account:VIPC",
            party="account:VIPC",
            address="rita.mendes@example.pt",
            subject="Our apologies, Rita Mendes",
            body="Dear Rita Mendes,\nThe incident is resolved.",
            state="awaiting_approval",
            reason="needs a person's approval",
            cost=250.0,
            promised=250.0,
        ),
        _action(
            2,
            playbook="retention",
            step="offer",
            trigger="churn_risk_crossed",
            action="sms",
            action_type="sms_http",
            channel="sms",
            incident_id=queue.hill,
            account_id="VIPC",
            subscriber_id="V0",
            target="line:V0",
            party="line:V0",
            address="+351930000000",
            body="Hello Rita Mendes,\n20 GB for you.",
            state="sent",
            cost=4.0,
            promised=15.0,
            offer="data-boost-20gb",
            reference="sms-42",
            sent_at=NOW - timedelta(hours=1),
        ),
        _action(
            3,
            playbook="sla-breach-enterprise",
            step="tell-account-manager",
            action="email",
            channel="email",
            incident_id=queue.harbour,
            target="manager:Ana Costa",
            address="ana.costa@operator.example",
            state="failed",
            reason="SMTP 550 for ana.costa@operator.example",
        ),
        _action(
            4,
            playbook="sla-breach-enterprise",
            step="open-ticket",
            action="tickets",
            action_type="tmf621",
            channel="ticket",
            incident_id=queue.harbour,
            target=f"incident:{queue.harbour}",
            state="queued",
        ),
        _action(
            5,
            playbook="retention",
            step="offer",
            action="sms",
            action_type="sms_http",
            channel="sms",
            account_id="VIPC",
            subscriber_id="V1",
            target="line:V1",
            address="+351930000001",
            state="uncertain",
            reason="the delivering process stopped while sending",
            cost=4.0,
            promised=15.0,
            offer="data-boost-20gb",
        ),
        _action(
            6,
            playbook="retention",
            step="offer",
            action="sms",
            action_type="sms_http",
            channel="sms",
            account_id="CONS",
            subscriber_id="C01",
            target="line:C01",
            state="held_out",
            reason="in the randomised hold-out",
        ),
    ]
    with store.begin() as conn:
        made = [int(conn.execute(insert(actions).values(**row)).inserted_primary_key[0]) for row in rows]
        conn.execute(
            insert(loopback_messages),
            [
                {
                    "channel": "sms",
                    "received_at": NOW - timedelta(hours=1),
                    "to": "+351930000000",
                    "subject": None,
                    "body": "Hello Rita Mendes,\n20 GB for you.",
                    "reference": "sms-42",
                    "key": rows[1]["key"],
                },
                {
                    "channel": "email",
                    "received_at": NOW - timedelta(minutes=5),
                    "to": "bob@example.org",
                    "subject": "Hi Bob Unknown",
                    "body": "Dear Bob Unknown,\nnothing",
                    "reference": None,
                    "key": None,
                },
            ],
        )
    return Outbox(queue.harbour, *made, offer_key=rows[1]["key"])


@pytest.fixture
def app(sqlite_store: Store) -> dash.Dash:
    return new_app(sqlite_store, settings_for(sqlite_store), clock=lambda: NOW)


@pytest.fixture
def seeded(sqlite_store: Store, app: dash.Dash) -> Outbox:
    return seed_outbox(sqlite_store)


def page(name: str = "actions") -> ModuleType:
    # Dash imports the page modules when an app is built; they cannot be imported before.
    return importlib.import_module(f"dashboard.pages.{name}")


def shipped(component: Any) -> str:
    """Everything a component tree sends to the browser, as JSON text."""
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)


def assert_masked(text: str) -> None:
    leaked = [c for c in CLEAR if c in text]
    assert leaked == [], leaked


def decide_buttons(text: str) -> list[dict[str, Any]]:
    found = []
    for part in text.split('"id": ')[1:]:
        if part.startswith("{") and ids.ACTIONS_DECIDE in part.split("}")[0]:
            found.append(json.loads(part.split("}")[0] + "}"))
    return found


# --- the outbox reads ------------------------------------------------------------------------


def test_the_summary_counts_states_channels_and_committed_money(sqlite_store: Store, seeded: Outbox) -> None:
    with sqlite_store.connect() as conn:
        summary = outbox.outbox_summary(conn, NOW.replace(hour=0))
        before = outbox.outbox_summary(conn, NOW)  # nothing sent since noon
    states = summary["states"]
    assert {s: n for s, n in states.items() if n} == {
        "awaiting_approval": 1,
        "sent": 1,
        "failed": 1,
        "queued": 1,
        "uncertain": 1,
        "held_out": 1,
    }
    assert summary["channels"] == {
        "email": {"awaiting_approval": 1, "failed": 1},
        "sms": {"sent": 1, "uncertain": 1, "held_out": 1},
        "ticket": {"queued": 1},
    }
    # Sent today: the offer (4 / 15); pending: the apology (250 / 250) and the ticket (no money).
    assert summary["sent_since"] == 1
    assert (summary["cost"], summary["promised"]) == (254.0, 265.0)
    assert (before["sent_since"], before["promised"]) == (0, 250.0)


def test_the_timeline_filters_and_masks(sqlite_store: Store, seeded: Outbox) -> None:
    with sqlite_store.connect() as conn:
        every = outbox.action_timeline(conn)
        failed = outbox.action_timeline(conn, states=["failed"])
        incident = outbox.action_timeline(conn, incident_id=seeded.incident)
        line = outbox.action_timeline(conn, subscriber_id="V0", account_id="VIPC")
        account = outbox.action_timeline(conn, account_id="VIPC")
        pending = outbox.pending_approvals(conn, 10)
    assert every["id"].tolist() == [
        seeded.held_out,
        seeded.uncertain,
        seeded.queued,
        seeded.failed,
        seeded.sent_offer,
        seeded.awaiting,
    ]  # newest first
    assert failed["id"].tolist() == [seeded.failed]
    assert sorted(incident["id"]) == sorted([seeded.awaiting, seeded.failed, seeded.queued])
    # The line's own actions and its account's as a whole; not those of the account's other line.
    assert sorted(line["id"]) == sorted([seeded.sent_offer, seeded.awaiting])
    assert sorted(account["id"]) == sorted([seeded.sent_offer, seeded.awaiting, seeded.uncertain])
    assert pending["id"].tolist() == [seeded.awaiting]
    shown = every.set_index("id")
    assert shown.loc[seeded.awaiting, "address"] == "r***@example.pt"
    assert shown.loc[seeded.awaiting, "subject"] == "Our apologies, R*** M***"
    assert shown.loc[seeded.sent_offer, "address"] == "+351 9*** ***000"
    assert shown.loc[seeded.failed, "reason"] == "SMTP 550 for a***@operator.example"
    assert "body" not in every.columns and "key" not in every.columns
    assert_masked(every.to_json(date_format="iso"))


def test_what_the_sinks_received_is_masked_and_unlinked_text_withheld(
    sqlite_store: Store, seeded: Outbox
) -> None:
    with sqlite_store.connect() as conn:
        received = outbox.loopback_received(conn, 10)
    unlinked, offer = received.to_dict("records")
    assert (offer["to"], offer["first_line"], offer["action_id"]) == (
        "+351 9*** ***000",
        "Hello R*** M***,",
        seeded.sent_offer,
    )
    assert unlinked["to"] == "b***@example.org"
    assert unlinked["subject"] == unlinked["first_line"] == outbox.WITHHELD
    assert_masked(received.to_json(date_format="iso"))


# --- the page --------------------------------------------------------------------------------


def test_the_page_renders_for_a_viewer_masked_and_without_buttons(app: dash.Dash, seeded: Outbox) -> None:
    with request_as(app.server, "viewer"):
        layout = page().layout()
    text = shipped(layout)
    assert_masked(text)
    assert "r***@example.pt" in text and "+351 9*** ***000" in text and "Hello R*** M***," in text
    assert decide_buttons(text) == []
    assert "may look but not approve" in text
    strip = page().summary_items(outbox_summary(app, NOW.replace(hour=0)), "EUR")
    figures = {c.to_plotly_json()["props"]["data-figure"]: c.children[0].children for c in strip}
    assert figures == {
        "queued": "1",
        "awaiting_approval": "1",
        "sent_today": "1",
        "failed": "1",
        "uncertain": "1",
        "promised": "265.00 EUR",
    }


def outbox_summary(app: dash.Dash, since: datetime) -> dict[str, Any]:
    store = app.server.config["VANTAGE_CONTEXT"].store
    with store.connect() as conn:
        return outbox.outbox_summary(conn, since)


def test_an_operator_sees_the_buttons_that_apply(app: dash.Dash, seeded: Outbox) -> None:
    with request_as(app.server, "operator"):
        text = shipped(page().layout())
    assert_masked(text)
    buttons = {(b["verb"], b["action"]) for b in decide_buttons(text)}
    assert buttons == {
        ("approve", seeded.awaiting),  # the pending table
        ("reject", seeded.awaiting),
        ("cancel", seeded.awaiting),  # the timeline
        ("cancel", seeded.queued),
        ("resend", seeded.failed),
        ("resend", seeded.uncertain),
    }


def test_the_timeline_filter_comes_from_the_query_string(app: dash.Dash, seeded: Outbox) -> None:
    module = page()
    with request_as(app.server, "viewer"):
        store = module.current_store()
        view = module.read_view(store, module.clean_filters("failed", "any", None), NOW)
        playbook = module.read_view(store, module.clean_filters(None, "retention", "sms"), NOW)
        unknown = module.clean_filters("<script>", "x" * 500, "")
    assert [r["id"] for r in view.timeline] == [seeded.failed]
    assert sorted(r["id"] for r in playbook.timeline) == sorted(
        [seeded.sent_offer, seeded.uncertain, seeded.held_out]
    )
    assert unknown == module.Filters(None, None, None)


def test_an_operator_approves_through_the_callback_function(
    sqlite_store: Store, app: dash.Dash, seeded: Outbox
) -> None:
    module = page()
    trigger = {"type": ids.ACTIONS_DECIDE, "verb": "approve", "action": seeded.awaiting}
    with request_as(app.server, "operator", user="olga"):
        message, acted = module.decide_outputs(sqlite_store, trigger, 1, 3, actor="olga", now=NOW)
        again, unchanged = module.decide_outputs(sqlite_store, trigger, 2, 4, actor="olga", now=NOW)
        drawn, nothing = module.decide_outputs(sqlite_store, trigger, None, 4, actor="olga", now=NOW)
    assert acted == 4 and "approved by olga: now queued" in message.children
    # Approving it twice is refused with the reason; a button drawn anew (no click) does nothing.
    assert unchanged is dash.no_update and "only awaiting_approval actions can be approved" in again.children
    assert drawn is nothing is dash.no_update
    with sqlite_store.connect() as conn:
        state, decided_by = conn.execute(
            select(actions.c.state, actions.c.decided_by).where(actions.c.id == seeded.awaiting)
        ).one()
        trail = conn.execute(
            select(audit.c.actor, audit.c.detail).where(audit.c.action == "action.approve")
        ).all()
    assert (state, decided_by) == ("queued", "olga")
    assert [(actor, detail["from"], detail["to"]) for actor, detail in trail] == [
        ("olga", "awaiting_approval", "queued")
    ]


def test_forged_button_ids_change_nothing(sqlite_store: Store, app: dash.Dash, seeded: Outbox) -> None:
    module = page()
    forged = [
        None,
        "x",
        {"type": ids.ACTIONS_DECIDE, "verb": "delete", "action": seeded.awaiting},
        {"type": ids.ACTIONS_DECIDE, "verb": "approve", "action": "1"},
        {"type": ids.ACTIONS_DECIDE, "verb": "approve", "action": True},
        {"type": ids.ACTIONS_DECIDE, "verb": "approve", "action": 10**30},
        {"type": "incidents-ack", "verb": "approve", "action": seeded.awaiting},
    ]
    for trigger in forged:
        assert module.decide_outputs(sqlite_store, trigger, 1, 0, actor="x", now=NOW) == (
            dash.no_update,
            dash.no_update,
        ), trigger


def _decide_body(app: dash.Dash, action_id: int, verb: str) -> dict[str, Any]:
    output = next(k for k in app.callback_map if f"{ids.ACTIONS_RESULT}.children" in k)
    button = {"action": action_id, "type": ids.ACTIONS_DECIDE, "verb": verb}
    return {
        "output": output,
        "outputs": [
            {"id": ids.ACTIONS_RESULT, "property": "children"},
            {"id": ids.ACTIONS_ACTED, "property": "data"},
        ],
        "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
        "state": [{"id": ids.ACTIONS_ACTED, "property": "data", "value": 0}],
        "changedPropIds": [json.dumps(button, separators=(",", ":")) + ".n_clicks"],
    }


def test_the_decision_callback_needs_act(sqlite_store: Store, app: dash.Dash, seeded: Outbox) -> None:
    route = "/_dash-update-component"
    body = _decide_body(app, seeded.queued, "cancel")
    assert client(app, sqlite_store, "viewer").post(route, json=body).status_code == 403
    assert client(app, sqlite_store, "analyst").post(route, json=body).status_code == 403
    done = client(app, sqlite_store, "operator").post(route, json=body)
    assert done.status_code == 200 and "cancelled by tester-operator" in done.get_data(as_text=True)
    with sqlite_store.connect() as conn:
        state = conn.execute(select(actions.c.state).where(actions.c.id == seeded.queued)).scalar()
    assert state == "cancelled"


def test_every_actions_surface_declares_its_rule(app: dash.Dash) -> None:
    by_output = rules.callback_rules(app.server)
    assert [v for k, v in by_output.items() if f"{ids.ACTIONS_RESULT}.children" in k] == ["act"]
    assert [v for k, v in by_output.items() if f"{ids.ACTIONS_TIMELINE}.children" in k] == ["read"]
    assert dash.page_registry["dashboard.pages.actions"]["access"] == "read"
    endpoints = {r.rule: r.endpoint for r in app.server.url_map.iter_rules()}
    assert rules.view_rule(app.server, endpoints["/offers/<key>/<verb>"]) == "public"
    assert rules.view_rule(app.server, endpoints["/api/v1/actions/<action_id>/<verb>"]) == "act"
    assert rules.view_rule(app.server, endpoints["/api/v1/actions"]) == "read"
    from dashboard.app import NAV

    assert ("Actions", "/actions", "read") in NAV


def test_the_page_says_so_when_the_store_cannot_be_read(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: every table is missing
    app = new_app(store, settings_for(store))
    with request_as(app.server, "operator"):
        assert "could not be read" in shipped(page().layout())
    store.dispose()


# --- the incident detail and the subscriber 360 ----------------------------------------------


def test_the_incident_detail_lists_its_actions_masked(app: dash.Dash, seeded: Outbox) -> None:
    incidents = page("incidents")
    with request_as(app.server, "viewer"):
        _, _, body, *_ = incidents.render_detail(incidents.current_store(), seeded.incident, NOW)
    text = shipped(body)
    assert_masked(text)
    assert "Playbook actions (3)" in text
    for shown in ("apology-with-credit", "tell-account-manager", "open-ticket", "r***@example.pt"):
        assert shown in text, shown
    assert "SMTP 550 for a***@operator.example" in text


def test_the_subscriber_360_lists_the_line_and_account_actions_masked(app: dash.Dash, seeded: Outbox) -> None:
    subscriber = page("subscriber")
    with request_as(app.server, "analyst"):
        principal = subscriber.current_principal()
        body = subscriber.render_tab(subscriber.current_store(), principal, "V0", "actions", NOW)
        overview = subscriber.render_tab(subscriber.current_store(), principal, "V0", "overview", NOW)
    text = shipped(body)
    assert_masked(text)
    assert "Playbook actions: offers, apologies, messages (2)" in text
    assert "data-boost-20gb" in text and "promised 15.00 EUR" in text and "apology-with-credit" in text
    assert f'"data-action": "{seeded.uncertain}"' not in text  # V1's offer is not V0's
    assert "Playbook actions" not in shipped(overview)
