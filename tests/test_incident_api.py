"""The incident API, operator actions and the affected-subscriber export.

The network is described in :mod:`tests.incident_net`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from dashboard.incidents import read
from dashboard.incidents.actions import ActionError, acknowledge, add_note, assign
from dashboard.incidents.queue import refresh_queue
from dashboard.store.db import Store
from dashboard.store.schema import audit, incident_queue
from tests.incident_net import T, alarm, engine_incidents, ingest, queue_rows, scoring, two_incidents

# --- API and actions -----------------------------------------------------------------------------


def test_api_serves_the_ranked_queue_and_one_incident(net: Store) -> None:
    from dashboard.config import Settings
    from tests.apps import client as client_of
    from tests.apps import new_app

    two_incidents(net)
    refresh_queue(net, scoring(), now=T, currency="EUR")
    app = new_app(net, Settings(database_url=net.url))
    client = client_of(app, net)
    body = client.get("/api/v1/incidents?limit=5&state=open").get_json()
    assert body["currency"] == "EUR" and body["count"] == 2
    top = body["incidents"][0]
    assert top["rank"] == 1 and top["reason"].startswith("#1: ") and top["region"] == "North"
    assert set(top["breakdown"]["factors"]) == {
        "severity",
        "subscriber_value",
        "revenue_at_risk",
        "sla_urgency",
        "sentiment",
        "churn_risk",
    }
    assert top["sla_deadline"] == "2026-03-02T12:10:00Z"
    assert client.get("/api/v1/incidents?region=R1").get_json()["count"] == 2
    assert client.get("/api/v1/incidents?region=South").get_json()["count"] == 0
    assert client.get("/api/v1/incidents?segment=enterprise").get_json()["count"] == 1
    bad = client.get("/api/v1/incidents?limit=zero")
    assert bad.status_code == 400 and "limit" in bad.get_json()["error"]
    assert client.get("/api/v1/incidents?state=sleeping").status_code == 400
    detail = client.get(f"/api/v1/incidents/{top['id']}").get_json()
    assert detail["queue"]["rank"] == 1 and detail["impact"]["subscribers"] == 5
    account = detail["impact"]["accounts"][0]
    assert (
        account["account_id"] == "ENT" and account["running"] is True and account["penalty_per_hour"] == 600.0
    )
    assert [a["id"] for a in detail["alarms"]] == ["A1"]
    assert client.get("/api/v1/incidents/INC-nope").status_code == 404
    net.dispose()


def test_actions_are_stored_and_audited_and_survive_correlation(net: Store) -> None:
    two_incidents(net)
    refresh_queue(net, scoring(), now=T, currency="EUR")
    inc_id = queue_rows(net).iloc[0]["incident_id"]
    assert acknowledge(net, inc_id, actor="noc-1", now=T)
    assert not acknowledge(net, inc_id, actor="noc-1", now=T)
    assert assign(net, inc_id, "RAN team", actor="noc-1", now=T)
    note = add_note(net, inc_id, "Field engineer dispatched, ETA 40 min", actor="noc-1", now=T)
    with pytest.raises(ActionError):
        add_note(net, inc_id, "   ", actor="noc-1", now=T)
    with pytest.raises(ActionError):
        acknowledge(net, "INC-unknown", actor="noc-1", now=T)
    # A later alarm on the same incident does not undo what operators did.
    ingest(net, "alarms", [alarm("A2", "ran-1", T + timedelta(minutes=1), severity="major")])
    refresh_queue(net, scoring(), now=T + timedelta(minutes=2), currency="EUR")
    row = engine_incidents(net).set_index("id").loc[inc_id]
    assert row["state"] == "acknowledged" and row["owner"] == "RAN team" and row["acked_at"] == T
    with net.connect() as conn:
        q = conn.execute(
            select(incident_queue.c.owner, incident_queue.c.state).where(
                incident_queue.c.incident_id == inc_id
            )
        ).one()
        actions = [
            r.action
            for r in conn.execute(select(audit).where(audit.c.target_id == inc_id).order_by(audit.c.id))
        ]
        notes = read.notes(conn, inc_id)
    assert tuple(q) == ("RAN team", "acknowledged")
    assert actions == ["incident.acknowledge", "incident.assign", "incident.note"]
    assert notes["id"].tolist() == [note] and notes["author"].tolist() == ["noc-1"]


def test_affected_subscribers_page_sorted_by_value_and_exported(net: Store) -> None:
    ingest(net, "alarms", [alarm("TX", "tx-1", T - timedelta(minutes=5))])
    refresh_queue(net, scoring(), now=T, currency="EUR")
    inc_id = queue_rows(net).iloc[0]["incident_id"]
    s = scoring()
    with net.connect() as conn:
        page, total = read.affected_subscribers(conn, inc_id, s, limit=10)
        last, _ = read.affected_subscribers(conn, inc_id, s, offset=500, limit=10)
        csv = read.affected_subscribers_csv(conn, inc_id, s)
    assert total == 505
    assert page["id"].tolist()[:5] == [f"E{i}" for i in range(5)]  # 50 x 1.5 beats 20
    assert page["value"].iloc[0] == pytest.approx(75.0)
    assert len(last) == 5
    assert page["msisdn"].iloc[0].endswith("000") and "35191" not in page["msisdn"].iloc[0]
    assert csv.count("\n") == 506 and "351910000000" not in csv
