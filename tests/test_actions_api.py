"""The outbox over HTTP: ``GET /api/v1/actions`` masked, ``POST /api/v1/actions/<id>/<verb>`` under
the ``act`` rule (404 unknown, 409 wrong state), and the customers' signed offer links, on the
hand-made outbox of tests/test_actions_page.py."""

from __future__ import annotations

from typing import Any

import dash
import pytest
from sqlalchemy import select

from dashboard.auth.keys import stored_secret
from dashboard.config import Settings
from dashboard.playbooks import LINK_SECRET, OFFER_SOURCE, link_token
from dashboard.store.db import Store
from dashboard.store.schema import actions, audit, contact_optouts, offer_events
from tests.apps import client, new_app
from tests.browser import settings_for
from tests.test_actions_page import NOW, Outbox, assert_masked, seed_outbox


@pytest.fixture
def app(sqlite_store: Store) -> dash.Dash:
    return new_app(sqlite_store, settings_for(sqlite_store), clock=lambda: NOW)


@pytest.fixture
def seeded(sqlite_store: Store, app: dash.Dash) -> Outbox:
    return seed_outbox(sqlite_store)


def _state(store: Store, action_id: int) -> str:
    with store.connect() as conn:
        return str(conn.execute(select(actions.c.state).where(actions.c.id == action_id)).scalar_one())


# --- GET /api/v1/actions -------------------------------------------------------------------------


def test_a_viewer_reads_the_timeline_masked_and_filtered(
    sqlite_store: Store, app: dash.Dash, seeded: Outbox
) -> None:
    viewer = client(app, sqlite_store, "viewer")
    every = viewer.get("/api/v1/actions")
    assert every.status_code == 200 and every.headers["cache-control"] == "no-store"
    body = every.get_json()
    assert body["count"] == 6 and body["currency"] == "EUR"
    assert_masked(every.get_data(as_text=True))
    apology = next(a for a in body["actions"] if a["id"] == seeded.awaiting)
    assert (apology["address"], apology["subject"], apology["promised"]) == (
        "r***@example.pt",
        "Our apologies, R*** M***",
        250.0,
    )
    assert apology["created_at"] == "2026-03-02T11:01:00Z" and "body" not in apology and "key" not in apology

    def found(**query: Any) -> list[int]:
        response = viewer.get("/api/v1/actions", query_string=query)
        assert response.status_code == 200, response.get_json()
        return sorted(a["id"] for a in response.get_json()["actions"])

    assert found(state="failed,uncertain") == sorted([seeded.failed, seeded.uncertain])
    assert found(incident=seeded.incident) == sorted([seeded.awaiting, seeded.failed, seeded.queued])
    assert found(subscriber="V0") == [seeded.sent_offer]
    assert found(playbook="retention", limit=1) == [seeded.held_out]  # the newest
    assert found(channel="ticket") == [seeded.queued]
    refused = viewer.get("/api/v1/actions", query_string={"state": "sent,lost"})
    assert refused.status_code == 400 and refused.get_json()["parameter"] == "state"
    assert viewer.get("/api/v1/actions", query_string={"limit": 0}).status_code == 400


# --- POST /api/v1/actions/<id>/<verb> -------------------------------------------------------------


def test_an_operator_approves_through_the_api_with_a_note(
    sqlite_store: Store, app: dash.Dash, seeded: Outbox
) -> None:
    operator = client(app, sqlite_store, "operator", "otto")
    done = operator.post(f"/api/v1/actions/{seeded.awaiting}/approve", json={"note": "credit agreed"})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert (body["id"], body["state"], body["action"]["state"]) == (seeded.awaiting, "queued", "queued")
    assert body["action"]["reason"] == "approved by otto: credit agreed"
    assert_masked(done.get_data(as_text=True))
    assert _state(sqlite_store, seeded.awaiting) == "queued"
    with sqlite_store.connect() as conn:
        trail = conn.execute(
            select(audit.c.actor, audit.c.target_id, audit.c.detail).where(audit.c.action == "action.approve")
        ).all()
    assert [(a, t, d["to"], d["note"]) for a, t, d in trail] == [
        ("otto", str(seeded.awaiting), "queued", "credit agreed")
    ]
    # Without a body too: cancelling the queued ticket.
    assert operator.post(f"/api/v1/actions/{seeded.queued}/cancel").status_code == 200
    assert _state(sqlite_store, seeded.queued) == "cancelled"


def test_a_viewer_and_an_analyst_may_not_change_the_outbox(
    sqlite_store: Store, app: dash.Dash, seeded: Outbox
) -> None:
    for role in ("viewer", "analyst"):
        refused = client(app, sqlite_store, role).post(f"/api/v1/actions/{seeded.awaiting}/approve")
        assert refused.status_code == 403, role
    anonymous = app.server.test_client().post(
        f"/api/v1/actions/{seeded.awaiting}/approve", headers={"Origin": "http://localhost"}
    )
    assert anonymous.status_code == 401
    assert _state(sqlite_store, seeded.awaiting) == "awaiting_approval"
    with sqlite_store.connect() as conn:
        assert conn.execute(select(audit.c.id).where(audit.c.action.like("action.%"))).first() is None


def test_a_wrong_state_is_409_and_an_unknown_action_404(
    sqlite_store: Store, app: dash.Dash, seeded: Outbox
) -> None:
    operator = client(app, sqlite_store, "operator")
    wrong = operator.post(f"/api/v1/actions/{seeded.sent_offer}/approve")
    assert wrong.status_code == 409
    assert wrong.get_json()["error"] == (
        f"action {seeded.sent_offer} is sent: only awaiting_approval actions can be approved"
    )
    assert operator.post(f"/api/v1/actions/{seeded.failed}/cancel").status_code == 409
    assert _state(sqlite_store, seeded.sent_offer) == "sent"
    for path in (
        "999999/approve",
        "0/approve",
        "abc/approve",
        f"{10**30}/approve",
        f"{seeded.awaiting}/delete",
    ):
        missing = operator.post(f"/api/v1/actions/{path}")
        assert missing.status_code == 404 and "error" in missing.get_json(), path
    for body in ({"note": 5}, {"note": "x" * 1001}, [1, 2]):
        bad = operator.post(f"/api/v1/actions/{seeded.awaiting}/approve", json=body)
        assert bad.status_code == 400, body
    assert _state(sqlite_store, seeded.awaiting) == "awaiting_approval"


# --- /offers/<key>/<verb> -------------------------------------------------------------------------


def _token(store: Store, key: str, verb: str) -> str:
    return link_token(stored_secret(store, LINK_SECRET, now=NOW), key, verb)


def test_an_offer_link_with_a_good_signature_records_the_acceptance(
    sqlite_store: Store, app: dash.Dash, seeded: Outbox
) -> None:
    customer = app.server.test_client()  # no login: customers have none
    key = seeded.offer_key
    bad = customer.get(f"/offers/{key}/accept", query_string={"t": "0" * 32})
    unknown = customer.get(
        f"/offers/{'f' * 64}/accept", query_string={"t": _token(sqlite_store, "f" * 64, "accept")}
    )
    garbled = customer.get("/offers/not-a-key/accept", query_string={"t": "x"})
    for refused in (bad, unknown, garbled, customer.get(f"/offers/{key}/accept")):
        assert refused.status_code == 404 and refused.mimetype == "text/html"
    # A wrong signature and a key that does not exist read the same.
    assert bad.get_data() == unknown.get_data() == garbled.get_data()
    with sqlite_store.connect() as conn:
        assert conn.execute(select(offer_events.c.id)).first() is None

    signed = {"t": _token(sqlite_store, key, "accept")}
    # Opening the link (a mail scanner, a preview, the customer) only asks; the button acts.
    asked = customer.get(f"/offers/{key}/accept", query_string=signed)
    assert asked.status_code == 200 and "Accept this offer?" in asked.get_data(as_text=True)
    assert '<form method="post">' in asked.get_data(as_text=True)
    with sqlite_store.connect() as conn:
        assert conn.execute(select(offer_events.c.id)).first() is None
    origin = {"Origin": "http://localhost"}
    forged = customer.post(
        f"/offers/{key}/accept", query_string=signed, headers={"Origin": "http://evil.example"}
    )
    assert forged.status_code == 403
    good = customer.post(f"/offers/{key}/accept", query_string=signed, headers=origin)
    assert good.status_code == 200 and "your offer is confirmed" in good.get_data(as_text=True)
    assert good.headers["cache-control"] == "no-store"
    again = customer.post(f"/offers/{key}/accept", query_string=signed, headers=origin)
    assert again.status_code == 200  # following it twice records it once
    with sqlite_store.connect() as conn:
        events = conn.execute(
            select(offer_events.c.subscriber_id, offer_events.c.offer, offer_events.c.outcome).where(
                offer_events.c.source == OFFER_SOURCE
            )
        ).all()
    assert events == [("V0", "data-boost-20gb", "accepted")]


def test_an_opt_out_link_stops_further_messages(sqlite_store: Store, app: dash.Dash, seeded: Outbox) -> None:
    customer = app.server.test_client()
    key = seeded.offer_key
    # The accept signature does not open the opt-out, nor the other way round.
    wrong = customer.get(f"/offers/{key}/optout", query_string={"t": _token(sqlite_store, key, "accept")})
    assert wrong.status_code == 404
    signed = {"t": _token(sqlite_store, key, "optout")}
    done = customer.post(f"/offers/{key}/optout", query_string=signed, headers={"Origin": "http://localhost"})
    assert done.status_code == 200 and "will not receive further messages" in done.get_data(as_text=True)
    with sqlite_store.connect() as conn:
        assert conn.execute(select(contact_optouts.c.party, contact_optouts.c.channel)).all() == [
            ("line:V0", "*")
        ]


def test_offer_links_are_rate_limited_per_client(sqlite_store: Store) -> None:
    settings = Settings(database_url=sqlite_store.url, security={"login_rate_limit": "3/minute"})
    app = new_app(sqlite_store, settings, clock=lambda: NOW)
    customer = app.server.test_client()
    codes = [
        customer.get(f"/offers/{'a' * 64}/accept", query_string={"t": "x"}).status_code for _ in range(4)
    ]
    assert codes == [404, 404, 404, 429]
