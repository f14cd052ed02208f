"""TMF connectors end to end: loopback TMF APIs and pushed notifications into a real store."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import Connector, ConnectorContext, PushRequest, PushResponse
from connectors.tmf import (
    Tmf621Connector,
    Tmf629Connector,
    Tmf635Connector,
    Tmf638Connector,
    Tmf639Connector,
    Tmf642Connector,
    Tmf678Connector,
)
from dashboard.ingest import Ingestor
from dashboard.store import Store
from dashboard.store.schema import CANONICAL_KINDS, connector_state, quarantine
from tests.loopback import LoopbackServer, Request, Response
from tests.reference import ORIGINS, OWN, REFERENCE, Payloads, payloads

ALARMS = "/tmf-api/alarmManagement/v4/alarm"


# The payloads are the suite's own (tests/fixtures/tmf); the tests that read them run again on the
# TM Forum reference examples as a conformance run (tests/reference.py).
@dataclass(frozen=True)
class Expected:
    """What the tests expect of one set of TMF payloads (the files are named in tests/reference.py)."""

    alarm: dict[str, Any]  # the alarm's row
    cleared: dict[str, Any]  # the row of the second alarm of the clear task
    since: str  # the later alarmChangedTime of the two: the cursor after pulling them
    push: tuple[str, str, str]  # times of a create, an attribute change and a clear, after the raise
    cleared_at: datetime  # the last of them
    contained: str  # the numeric id of the resource the inventory resource "contains"
    service_resources: tuple[str, ...]  # the service's supportingResource ids
    ticket: dict[str, Any]  # the ticket's row
    ticket_note: str  # how its one note starts
    ticket_history: list[tuple[datetime, str]]  # its status changes, raw
    ticket_later: datetime  # a time after its lastUpdate
    customer: dict[str, Any]  # the customer's account row
    bill: dict[str, Any]  # the bill's row
    bill_day: str  # the day it counts for (it has an empty billingPeriod)
    usage: dict[str, Any]  # the usage row
    usage_day: str


EXPECTED = {
    OWN: Expected(
        alarm={
            "id": "31004417",
            "severity": "minor",
            "state": "updated",
            "ack_state": "acknowledged",
            "resource_id": "5204417",
            "probable_cause": "lossOfSignal",
            "raised_at": datetime(2025, 9, 14, 6, 12, 8, 410000),
            "changed_at": datetime(2025, 9, 14, 6, 19, 47, 305000),
            "cleared_at": None,
        },
        cleared={
            "id": "31004421",
            "state": "cleared",
            "severity": "cleared",
            "ack_state": "unacknowledged",
            "resource_id": "5203107",
            "cleared_at": datetime(2025, 9, 14, 6, 58, 26, 4000),
        },
        since="2025-09-14T06:41:03.559Z",
        push=("2025-09-14T06:12:08.900Z", "2025-09-14T06:30:00Z", "2025-09-14T06:58:26.004Z"),
        cleared_at=datetime(2025, 9, 14, 6, 58, 26, 4000),
        contained="5203107",
        service_resources=("CPE-FWA-220931", "IPPOOL-FWA-N2"),
        ticket={
            "status": "inprogress",
            "account_id": "ACC-20417",
            "channel": "Mobile App",
            "category": "Service Outage",
            "priority": "High",
            "created_at": datetime(2025, 9, 14, 7, 5, 12, 331000),
        },
        ticket_note="Customer restarted the router",
        ticket_history=[
            (datetime(2025, 9, 14, 7, 5, 12, 331000), "Acknowledged"),
            (datetime(2025, 9, 14, 8, 47, 55, 20000), "InProgress"),
        ],
        ticket_later=datetime(2025, 9, 15, 10),
        customer={
            "id": "ACC-20417",
            "segment": "smb",
            "vip": False,
            "account_manager": "Joana Reis",
            "contact_phone": "+351 22 555 0417",
            "contact_email": "contas@casaoliveira.example",
            "contact_address": "Rua do Heroismo 118, Loja B, 4300-259 Porto, Portugal",
        },
        bill={"id": "INV-2025-09-20417", "account_id": "BA-20417", "amount": 73.8, "currency": "EUR"},
        bill_day="2025-10-03",
        usage={
            "id": "USG-9f41c2e07d",
            "account_id": "ACC-20417",
            "subscriber_id": "SUB-912000417",
            "usage_type": "Voice",
            "quantity": 184.0,
            "unit": "seconds",
            "amount": 0.92,
            "currency": "EUR",
        },
        usage_day="2025-09-13",
    ),
    REFERENCE: Expected(
        alarm={
            "id": "8675309",
            "severity": "major",
            "state": "updated",
            "ack_state": "acknowledged",
            "resource_id": "93051825",
            "probable_cause": "rectifierLowVoltage",
            "raised_at": datetime(2019, 7, 3, 3, 32, 17, 235000),
            "changed_at": datetime(2019, 7, 3, 3, 32, 52, 744000),
            "cleared_at": None,
        },
        cleared={
            "id": "8675399",
            "state": "cleared",
            "severity": "cleared",
            "ack_state": "unacknowledged",
            "resource_id": "95830731",
            "cleared_at": datetime(2019, 7, 3, 3, 55, 45, 937000),
        },
        since="2019-07-03T03:42:12.861Z",
        push=("2019-07-03T03:32:17.300Z", "2019-07-03T03:40:00Z", "2019-07-03T03:55:45.937Z"),
        cleared_at=datetime(2019, 7, 3, 3, 55, 45, 937000),
        contained="44",
        service_resources=("6161", "7171"),
        ticket={
            "status": "pending",
            "account_id": "9176",
            "channel": "self service",
            "category": "Bill Dispute",
            "priority": "High",
            "created_at": datetime(2019, 5, 31, 7, 34, 45, 968000),
        },
        ticket_note="This is quite important",
        ticket_history=[(datetime(2019, 5, 31, 7, 34, 45, 968000), "Pending")],
        ticket_later=datetime(2019, 6, 1, 10),
        customer={
            "id": "1140",
            "segment": "consumer",
            "vip": False,
            "account_manager": None,
            "contact_phone": "01 09 75 83 51",
            "contact_email": None,
            "contact_address": "15 Rue des Canards, 75014 Paris, France",
        },
        bill={"id": "CB-123", "account_id": "A0815", "amount": 50.0, "currency": "EUR"},
        bill_day="2020-01-05",
        usage={
            "id": "93c2-683ea281566c",
            "account_id": "8185-b246a6746136",
            "subscriber_id": None,
            "usage_type": "Voicemail",
            "quantity": 12.0,
            "unit": "seconds",
            "amount": 0.0,
            "currency": "EUR",
        },
        usage_day="2020-11-20",
    ),
}


@dataclass(frozen=True)
class TmfSet:
    files: Payloads
    expect: Expected


@pytest.fixture(params=ORIGINS)
def tmf(request: pytest.FixtureRequest) -> TmfSet:
    """The suite's own TMF payloads, then (conformance) the TM Forum reference examples."""
    return TmfSet(payloads("tmf", request.param), EXPECTED[request.param])


def subset(row: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The columns of ``row`` that ``expected`` names, to compare with it."""
    return {k: row.get(k) for k in expected}


def make(cls: type[Connector], server: LoopbackServer, name: str = "tmf", **options: Any) -> Connector:
    opts = cls.Options.model_validate(
        {
            "base_url": server.url,
            "page_size": 2,
            "retry": {"attempts": 2, "backoff_initial_s": 0.0},
            **options,
        }
    )
    connector = cls(opts, ConnectorContext(name=name))
    connector.sleep = lambda _s: None  # type: ignore[attr-defined]
    return connector


def serve(server: LoopbackServer, path: str, items: list[Any]) -> None:
    """TMF offset/limit paging, ignoring any filter (as some servers do), so de-duplication is tested."""

    def handler(req: Request) -> Response:
        offset = int(req.query.get("offset", ["0"])[0])
        limit = int(req.query.get("limit", ["100"])[0])
        return Response(200, items[offset : offset + limit])

    server.route("GET", path, handler)


def table(store: Store, kind: str) -> list[dict[str, Any]]:
    t = CANONICAL_KINDS[kind]
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t))]


def by_id(store: Store, kind: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in table(store, kind)}


def quarantined(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(quarantine))]


def event(kind: str, alarm: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps(
        {"eventId": f"e-{kind}", "eventType": kind, "event": {"alarm": alarm}, **extra}
    ).encode()


def offline_alarms() -> Connector:
    """A TMF642 connector used only for its listeners (no source is called)."""
    options = Tmf642Connector.Options.model_validate({"base_url": "http://127.0.0.1:9"})
    return Tmf642Connector(options, ConnectorContext("tmf-alarms"))


def push(connector: Connector, path: str, body: bytes) -> PushResponse:
    route = next(r for r in connector.push_routes() if r.path == path)
    return route.handler(PushRequest(path=path, body=body, headers={"content-type": "application/json"}))


# --- TMF642 alarms ------------------------------------------------------------------------------


def alarms_to_pull(tmf: TmfSet) -> list[dict[str, Any]]:
    raised = tmf.files.json("alarm")
    cleared = tmf.files.json("clear_alarms")["clearedAlarm"][1]  # ackState "unacknowledged"
    numeric = copy.deepcopy(raised)
    numeric.update(
        id=4242,
        alarmedObject={"id": 77, "href": "/elsewhere/v9/resource/77"},
        ackState="UNacknowledged",
        perceivedSeverity="CRITICAL",
        serviceAffecting=True,
    )
    return [raised, cleared, numeric]


def test_alarm_pull_pages_maps_and_is_incremental(
    tmf: TmfSet, store: Store, http_server: LoopbackServer
) -> None:
    expect = tmf.expect
    serve(http_server, ALARMS, alarms_to_pull(tmf))
    connector = make(Tmf642Connector, http_server)
    first = Ingestor(store).run(connector)
    assert (first.status, first.upserted, first.quarantined) == ("success", 3, 0)
    alarms = by_id(store, "alarms")
    assert subset(alarms[expect.alarm["id"]], expect.alarm) == expect.alarm
    assert subset(alarms[expect.cleared["id"]], expect.cleared) == expect.cleared
    n = alarms["4242"]  # integer ids arrive as text; drifting enums are kept, normalised when known
    assert (n["resource_id"], n["severity"], n["ack_state"], n["service_affecting"]) == (
        "77",
        "critical",
        "unacknowledged",
        True,
    )
    assert [h.query["offset"] for h in http_server.hits("GET", ALARMS)] == [["0"], ["2"]]
    with store.connect() as conn:
        state = conn.execute(select(connector_state.c.state)).scalar_one()
    assert state["since"] == expect.since and state["ids_at_since"] == [expect.cleared["id"]]

    second = Ingestor(store).run(connector)  # the server ignores the filter: de-duplication still holds
    assert (second.status, second.records_in, second.upserted) == ("success", 0, 0)
    assert http_server.hits("GET", ALARMS)[-1].query["alarmChangedTime.gt"] == [expect.since]


def test_v5_and_base_path_override(http_server: LoopbackServer) -> None:
    serve(http_server, "/tmf-api/alarmManagement/v5/alarm", [])
    serve(http_server, "/oss/alarms/alarm", [])
    assert make(Tmf642Connector, http_server, version=5).check().ok
    assert make(Tmf642Connector, http_server, base_path="oss/alarms/").check().ok
    bad = make(Tmf642Connector, http_server, base_path="/nowhere").check()
    assert not bad.ok and "404" in bad.detail


def test_push_out_of_order_duplicates_and_replay(tmf: TmfSet, store: Store) -> None:
    expect = tmf.expect
    connector = offline_alarms()
    ingest = Ingestor(store)
    raised = tmf.files.json("alarm")
    raised.update(state="raised", alarmChangedTime=None)
    created, changed, cleared = expect.push
    create = event("AlarmCreateEvent", raised, timeOcurred=created)  # v4 spelling
    update = copy.deepcopy(raised)
    update.update(perceivedSeverity="critical", state="updated")
    change = event("AlarmAttributeValueChangeEvent", update, timeOccurred=changed)  # v5 spelling
    # A partial clear: id (as a number), state and times only; the rest comes from what the
    # listener already saw.
    clear = event(
        "AlarmStateChangeEvent",
        {
            "id": int(raised["id"]),
            "state": "cleared",
            "alarmClearedTime": cleared,
            "alarmChangedTime": cleared,
        },
    )
    order = [
        ("alarmCreateEvent", create),
        ("alarmStateChangeEvent", clear),
        ("alarmAttributeValueChangeEvent", change),
        ("alarmCreateEvent", create),
    ]
    for name, body in order:
        response = push(connector, f"/listener/{name}", body)
        assert response.status == 201
        ingest.ingest("tmf-alarms", response.batches, stream="push")
    row = by_id(store, "alarms")[raised["id"]]
    assert (row["state"], row["severity"], row["changed_at"]) == ("cleared", "cleared", expect.cleared_at)
    assert row["probable_cause"] == expect.alarm["probable_cause"]
    assert row["raised_at"] == expect.alarm["raised_at"]
    assert len(table(store, "alarms")) == 1

    replay = offline_alarms()  # a fresh process: nothing cached
    written = 0
    for name, body in order:
        written += ingest.ingest("tmf-alarms", push(replay, f"/listener/{name}", body).batches).upserted
    assert written == 0 and by_id(store, "alarms")[raised["id"]] == row

    # A clear for an alarm never seen still makes a (cleared) row.
    orphan = event(
        "AlarmDeleteEvent", {"id": "x-1", "perceivedSeverity": "minor"}, timeOcurred="2019-07-04T00:00:00Z"
    )
    ingest.ingest("tmf-alarms", push(connector, "/listener/alarmDeleteEvent", orphan).batches)
    got = by_id(store, "alarms")["x-1"]
    assert (got["state"], got["severity"], got["cleared_at"]) == ("cleared", "cleared", datetime(2019, 7, 4))


def test_push_malformed_and_unknown_values_are_quarantined(store: Store) -> None:
    connector = offline_alarms()
    ingest = Ingestor(store)
    bad_json = push(connector, "/listener/alarmCreateEvent", b'{"event": {"alarm": ')
    assert bad_json.status == 400 and "not valid JSON" in bad_json.body["reason"]
    no_alarm = push(connector, "/listener/alarmCreateEvent", b'{"event": {"troubleTicket": {}}}')
    assert no_alarm.status == 400 and "event.alarm" in no_alarm.body["reason"]
    bad_time = push(
        connector,
        "/listener/alarmCreateEvent",
        event("AlarmCreateEvent", {"id": "t", "alarmRaisedTime": "yesterday"}),
    )
    assert bad_time.status == 400 and "alarmRaisedTime" in bad_time.body["reason"]
    odd = push(
        connector,
        "/listener/alarmCreateEvent",
        event(
            "AlarmCreateEvent",
            {"id": "o", "perceivedSeverity": "apocalyptic", "alarmRaisedTime": "2019-07-03T03:32:17Z"},
        ),
    )
    assert odd.status == 201  # readable: the store's validation quarantines the unknown severity
    drift = push(
        connector,
        "/listener/alarmCreateEvent",
        event(
            "AlarmCreateEvent",
            {
                "id": "d",
                "perceivedSeverity": "Minor",
                "ackState": "halfAcknowledged",
                "state": "Raised",
                "alarmRaisedTime": "2019-07-03T03:32:17Z",
            },
        ),
    )
    for response in (bad_json, no_alarm, bad_time, odd, drift):
        ingest.ingest("tmf-alarms", response.batches)
    held = quarantined(store)
    assert len(held) == 4
    reasons = {q["record_id"] or q["reason"].split(":")[0] + str(i): q["reason"] for i, q in enumerate(held)}
    assert any("not valid JSON" in r for r in reasons.values())
    assert any("no event.alarm" in r for r in reasons.values())
    assert "severity" in reasons["o"] and "alarmRaisedTime" in reasons["t"]
    assert any(q["raw"] == '{"event": {"alarm": ' for q in quarantined(store))
    assert by_id(store, "alarms")["d"]["ack_state"] == "halfAcknowledged"  # lenient: kept as given


def test_hub_registration_and_removal(http_server: LoopbackServer) -> None:
    hub = "/tmf-api/alarmManagement/v4/hub"
    http_server.json_route(
        "POST", hub, {"id": 17, "callback": "https://vantage.example/push/tmf"}, status=201
    )
    http_server.route("DELETE", hub + "/17", lambda _r: Response(204))
    connector = make(
        Tmf642Connector,
        http_server,
        callback_url="https://vantage.example/push/tmf",
        hub_query="eventType=AlarmCreateEvent",
    )
    connector.start()
    assert http_server.hits("POST", hub)[0].json() == {
        "callback": "https://vantage.example/push/tmf",
        "query": "eventType=AlarmCreateEvent",
    }
    assert sorted(r.path for r in connector.push_routes()) == sorted(
        f"/listener/alarm{e}Event" for e in ("Create", "AttributeValueChange", "StateChange", "Delete")
    )
    connector.close()
    assert len(http_server.hits("DELETE", hub + "/17")) == 1


# --- TMF639 / TMF638 topology -----------------------------------------------------------------


def test_inventory_builds_resource_cell_service_topology(
    tmf: TmfSet, store: Store, http_server: LoopbackServer
) -> None:
    resource = tmf.files.json("resource")  # "contains" the router below
    router = tmf.expect.contained
    resources = [
        resource,
        {"id": int(router), "name": f"router-{router}", "category": "router", "place": {"id": "site-1"}},
        {
            "id": "C1",
            "name": "cell-1",
            "@type": "EUtranCell",
            "characteristic": [{"name": "technology", "value": "4G"}, {"name": "band", "value": "B20"}],
            "resourceRelationship": [{"relationshipType": "dependsOn", "resource": {"id": router}}],
        },
        {
            "id": "C2",
            "name": "cell-2",
            "resourceSpecification": {"name": "NRCellDU"},
            "resourceRelationship": [
                {"relationshipType": "isSupportedBy", "resource": {"href": f"/x/resource/{router}"}}
            ],
        },
        {"name": "no id"},
    ]
    serve(http_server, "/tmf-api/resourceInventoryManagement/v4/resource", resources)
    service = tmf.files.json("service")
    service["supportingResource"].append({"id": "C1", "@referredType": "EUtranCell"})
    serve(http_server, "/tmf-api/serviceInventory/v4/service", [service])
    r639 = Ingestor(store).run(make(Tmf639Connector, http_server, name="inv"))
    r638 = Ingestor(store).run(make(Tmf638Connector, http_server, name="svc"))
    assert (r639.status, r639.quarantined, r638.status) == ("partial", 1, "success")
    assert set(by_id(store, "cells")) == {"C1", "C2"}
    assert (by_id(store, "cells")["C1"]["technology"], by_id(store, "cells")["C1"]["band"]) == ("4g", "B20")
    assert by_id(store, "resources")[router]["site_id"] == "site-1"
    edges = {
        (e["parent_type"], e["parent_id"], e["child_type"], e["child_id"])
        for e in table(store, "topology_edges")
    }
    sid = service["id"]
    assert edges == {
        ("resource", resource["id"], "resource", router),  # the payload's resource "contains" it
        ("resource", router, "cell", "C1"),
        ("resource", router, "cell", "C2"),
        *(("resource", r, "service", sid) for r in tmf.expect.service_resources),
        ("cell", "C1", "service", sid),
    }
    assert "has no usable id" in quarantined(store)[0]["reason"]


def test_malformed_page_is_quarantined_not_dropped(
    tmf: TmfSet, store: Store, http_server: LoopbackServer
) -> None:
    broken = tmf.files.text("broken_resource")  # invalid JSON
    http_server.json_route("GET", "/tmf-api/resourceInventoryManagement/v4/resource", broken)
    summary = Ingestor(store).run(make(Tmf639Connector, http_server, name="inv"))
    assert (summary.status, summary.quarantined) == ("partial", 1)
    [q] = quarantined(store)
    assert "not valid JSON" in q["reason"] and q["raw"] == broken


# --- TMF621 tickets ------------------------------------------------------------------------------


def test_tickets_pull_and_push_with_notes_and_history(
    tmf: TmfSet, store: Store, http_server: LoopbackServer
) -> None:
    expect = tmf.expect
    ticket = tmf.files.json("trouble_ticket")
    ticket["id"] = 3180  # integer id
    serve(http_server, "/tmf-api/troubleTicket/v4/troubleTicket", [ticket])
    connector = make(Tmf621Connector, http_server, name="tt")
    assert Ingestor(store).run(connector).status == "success"
    row = by_id(store, "tickets")["3180"]
    assert subset(row, expect.ticket) == expect.ticket
    [note] = table(store, "ticket_notes")
    assert note["text"].startswith(expect.ticket_note)
    # Pushed: a status change to a value outside the enum, newer; then the older state replayed.
    at = expect.ticket_later.isoformat() + "Z"
    later = copy.deepcopy(ticket)
    later.update(
        status="Awaiting Parts",
        lastUpdate=at,
        statusChangeDate=at,
        note=[*ticket["note"], {"author": "NOC", "date": at, "text": "Card ordered"}],
    )
    body = json.dumps({"event": {"troubleTicket": later}, "timeOccurred": at}).encode()
    stale = json.dumps({"event": {"troubleTicket": ticket}, "timeOcurred": ticket["lastUpdate"]}).encode()
    for path, payload in (("StatusChange", body), ("AttributeValueChange", stale)):
        response = push(connector, f"/listener/troubleTicket{path}Event", payload)
        assert response.status == 201
        Ingestor(store).ingest("tt", response.batches)
    row = by_id(store, "tickets")["3180"]
    assert (row["status"], row["updated_at"]) == ("Awaiting Parts", expect.ticket_later)
    history = sorted((h["changed_at"], h["status"]) for h in table(store, "ticket_status_changes"))
    assert history == [*expect.ticket_history, (expect.ticket_later, "Awaiting Parts")]
    assert len(table(store, "ticket_notes")) == 2


# --- TMF629 / TMF678 / TMF635 -------------------------------------------------------------------


def test_customers_become_accounts(tmf: TmfSet, store: Store, http_server: LoopbackServer) -> None:
    customer = tmf.files.json("customer")
    big = copy.deepcopy(customer)
    big.update(
        id=2000,
        name="Big Corp",
        characteristic=[
            {"name": "segment", "value": "Corporate"},
            {"name": "VIP", "value": "true"},
            {"name": "penaltyPerHour", "value": "250"},
        ],
        relatedParty=[{"id": "am-7", "name": "Ann Manager", "role": "Account Manager"}],
        contactMedium=[{"mediumType": "Email", "characteristic": {"emailAddress": "noc@big.example"}}],
    )
    serve(http_server, "/tmf-api/customerManagement/v4/customer", [customer, big])
    assert Ingestor(store).run(make(Tmf629Connector, http_server, name="crm")).status == "success"
    accounts = by_id(store, "accounts")
    assert subset(accounts[tmf.expect.customer["id"]], tmf.expect.customer) == tmf.expect.customer
    b = accounts["2000"]
    assert (b["segment"], b["vip"], b["account_manager"], b["contact_email"], b["penalty_per_hour"]) == (
        "enterprise",
        True,
        "Ann Manager",
        "noc@big.example",
        250.0,
    )


def test_bills_and_usage_give_revenue_per_account_and_period(
    tmf: TmfSet, store: Store, http_server: LoopbackServer
) -> None:
    expect = tmf.expect
    bill = tmf.files.json("customer_bill")
    periodic = copy.deepcopy(bill)
    periodic.update(
        id="CB-124",
        billingPeriod={"startDateTime": "2020-01-01T00:00:00Z", "endDateTime": "2020-01-31T23:59:59Z"},
        taxIncludedAmount={"unit": "EUR", "value": "61.5"},
    )
    no_account = copy.deepcopy(bill)
    no_account.update(id="CB-125", billingAccount=None)
    serve(http_server, "/tmf-api/customerBillManagement/v4/customerBill", [bill, periodic, no_account])
    usage = tmf.files.json("usage")
    serve(http_server, "/tmf-api/usageManagement/v4/usage", [usage])
    bills_run = Ingestor(store).run(make(Tmf678Connector, http_server, name="bss"))
    usage_run = Ingestor(store).run(make(Tmf635Connector, http_server, name="usage"))
    assert (bills_run.status, bills_run.quarantined, usage_run.status) == ("partial", 1, "success")
    bills = by_id(store, "bills")
    assert subset(bills[bill["id"]], expect.bill) == expect.bill
    assert str(bills[bill["id"]]["period_start"])[:10] == expect.bill_day  # no billingPeriod: the bill date
    assert (str(bills["CB-124"]["period_end"])[:10], bills["CB-124"]["amount"]) == ("2020-01-31", 61.5)
    assert "billingAccount" in quarantined(store)[0]["reason"]
    u = by_id(store, "usage")[expect.usage["id"]]
    assert subset(u, expect.usage) == expect.usage
    assert str(u["period_start"])[:10] == expect.usage_day
    assert Ingestor(store).run(make(Tmf635Connector, http_server, name="usage")).upserted == 0  # replay


@pytest.mark.parametrize(
    "cls",
    [Tmf639Connector, Tmf638Connector, Tmf629Connector, Tmf678Connector, Tmf635Connector, Tmf621Connector],
)
def test_default_base_paths_follow_the_swagger(
    cls: type[Connector], tmf: TmfSet, http_server: LoopbackServer
) -> None:
    connector = make(cls, http_server)
    swagger = tmf.files.json(f"{cls.type}_swagger")
    assert connector.base_path == swagger["basePath"].rstrip("/")  # type: ignore[attr-defined]
    assert f"/{connector.resource}" in swagger["paths"]  # type: ignore[attr-defined]
