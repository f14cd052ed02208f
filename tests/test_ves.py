"""VES 7 listener end to end: real HTTP posts on 127.0.0.1, VES events, into a real store."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connectors.base import Batch, ConnectorContext, PushRequest, PushRoute
from connectors.ves import BATCH_ROUTE, EVENT_ROUTE, VesConnector, VesOptions
from dashboard.ingest.runner import Counts, Ingestor
from dashboard.push import handle_push
from dashboard.store import Store
from dashboard.store.schema import alarms, kpi_samples, quarantine
from tests.loopback import LoopbackServer, Request, Response
from tests.reference import ORIGINS, OWN, REFERENCE, Payloads, payloads, require_shared


# The events are the suite's own (tests/fixtures/ves); the tests that read them run again on the
# ONAP reference events as a conformance run (tests/reference.py).
@dataclass(frozen=True)
class Expected:
    """What the tests expect of one set of VES events (the files are named in tests/reference.py)."""

    fault: dict[str, Any]  # the alarm row of the fault event
    invalid_id: str  # the eventId of the invalid event ...
    invalid_version: str  # ... and its vesEventListenerVersion, which no listener speaks
    batch_ids: tuple[str, str]  # the eventIds of the batch's two faults
    batch_keys: tuple[str, str]  # the same alarms keyed by sourceName:alarmCondition
    site_rule: str  # sourceName -> site rule for the measurement event
    site: str  # the site it gives
    vm: str  # the memoryUsageArray item (by vmIdentifier) to read
    cpu_pct: float  # cpuUsageArray[all].percentUsage
    memory_used_kib: float
    period: datetime  # startEpochMicrosec, to the second


EXPECTED = {
    OWN: Expected(
        fault={
            "id": "fault-upf02-0000871",
            "source": "ves",
            "severity": "major",
            "state": "raised",
            "resource_id": "lis07upf02vm01",
            "alarmed_object": "lis07upf02vm01",
            "probable_cause": "N3PathFailure",
            "specific_problem": "GTP-U echo to gNB group lis07-n lost on N3",
            # 1757830323250000 epoch microseconds
            "raised_at": datetime(2025, 9, 14, 6, 12, 3, 250000),
            "changed_at": datetime(2025, 9, 14, 6, 12, 3, 250000),
            "cleared_at": None,
        },
        invalid_id="fault-upf02-0000874",
        invalid_version="30.2.1",
        batch_ids=("fault-vrtr05-0002210", "fault-vrtr05-0002211"),
        batch_keys=("prt04vrtr05vm01:BgpSessionDown", "prt04vrtr05vm01:InterfaceErrorsHigh"),
        site_rule=r"^(?P<id>lis\d+)upf",
        site="lis07",
        vm="lis07upf02vm03",
        cpu_pct=63.17,
        memory_used_kib=9830400,
        period=datetime(2025, 9, 14, 9, 2, 41),  # 1757840561118207
    ),
    REFERENCE: Expected(
        fault={
            "id": "fault0000245",
            "source": "ves",
            "severity": "critical",
            "state": "raised",
            "resource_id": "scfx0001vm002cap001",
            "alarmed_object": "scfx0001vm002cap001",
            "probable_cause": "PilotNumberPoolExhaustion",
            "specific_problem": "Calls cannot complete - pilot numbers are unavailable",
            # 1413378172000000 epoch microseconds = 2014-10-15 13:02:52 UTC
            "raised_at": datetime(2014, 10, 15, 13, 2, 52),
            "changed_at": datetime(2014, 10, 15, 13, 2, 52),
            "cleared_at": None,
        },
        invalid_id="fault0000245",
        invalid_version="30.0.1",
        batch_ids=("fault0000250", "fault0000251"),
        batch_keys=(
            "scfx0001vm002cap001:PilotNumberPoolExhaustion",
            "scfx0001vm002cap001:RecordingServerUnreachable",
        ),
        site_rule=r"^(?P<id>bgtnj\d+)vmh",
        site="bgtnj05",
        vm="RAM",
        cpu_pct=0.39,
        memory_used_kib=353492,
        period=datetime(2018, 8, 21, 16, 18, 22),  # 1534868302434191
    ),
}


@dataclass(frozen=True)
class VesSet:
    files: Payloads
    expect: Expected

    def event(self, role: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.files.json(role)
        return doc


@pytest.fixture(params=ORIGINS)
def ves(request: pytest.FixtureRequest) -> VesSet:
    """The suite's own VES events, then (conformance) the ONAP reference events."""
    return VesSet(payloads("ves", request.param), EXPECTED[request.param])


def make(**options: Any) -> VesConnector:
    return VesConnector(VesOptions.model_validate(options), ConnectorContext("ves"))


class RecordingIngestor(Ingestor):
    """The real ingestor, keeping the counts of each push for the assertions."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.counts: list[Counts] = []

    def ingest(self, connector: str, batches: Iterable[Batch], *, stream: str = "push") -> Counts:
        counts = super().ingest(connector, batches, stream=stream)
        self.counts.append(counts)
        return counts


class Listener:
    """The connector's routes at /push/<name><path> on a real HTTP server, through dashboard.push."""

    def __init__(self, server: LoopbackServer, store: Store, connector: VesConnector) -> None:
        self.ingestor = RecordingIngestor(store)
        self.counts = self.ingestor.counts
        for route in connector.push_routes():
            server.route("POST", f"/push/{connector.name}{route.path}", self._handler(connector.name, route))
        self.base = f"{server.url}/push/{connector.name}"

    def _handler(self, name: str, route: PushRoute) -> Callable[[Request], Response]:
        def handle(req: Request) -> Response:
            push = PushRequest(path=route.path, body=req.body, headers=req.headers)
            answer = handle_push(self.ingestor, name, route, push)
            return Response(answer.status, answer.body)

        return handle

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(
            self.base + path,
            content=content,
            timeout=10,
            headers={"Content-Type": "application/json", **kw.pop("headers", {})},
            **kw,
        )


def rows(store: Store, table: Any) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def count(store: Store, table: Any) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_fault_event_becomes_an_alarm(ves: VesSet, store: Store, http_server: LoopbackServer) -> None:
    expect = ves.expect.fault
    listener = Listener(http_server, store, make())
    answer = listener.post(EVENT_ROUTE, ves.event("fault"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == [expect["id"]]
    [alarm] = rows(store, alarms)
    assert {k: alarm[k] for k in expect} == expect
    assert count(store, quarantine) == 0


def test_invalid_event_is_400_and_quarantined(
    ves: VesSet, sqlite_store: Store, http_server: LoopbackServer
) -> None:
    expect = ves.expect
    listener = Listener(http_server, sqlite_store, make())
    answer = listener.post(EVENT_ROUTE, ves.event("invalid_fault"))
    assert answer.status_code == 400
    body = answer.json()
    text = body["requestError"]["serviceException"]["text"]
    assert "vesEventListenerVersion" in text and expect.invalid_version in text
    assert body["rejected"] == [
        {"index": 0, "eventId": expect.invalid_id, "reason": body["rejected"][0]["reason"]}
    ]
    assert count(sqlite_store, alarms) == 0
    [q] = rows(sqlite_store, quarantine)
    assert q["connector"] == "ves" and q["record_id"] == expect.invalid_id and q["kind"] == "alarms"
    assert "vesEventListenerVersion" in q["reason"]
    assert json.loads(q["raw"])["commonEventHeader"]["eventId"] == expect.invalid_id


def test_batch_with_valid_and_invalid_events(ves: VesSet, store: Store, http_server: LoopbackServer) -> None:
    listener = Listener(http_server, store, make())
    batch = ves.event("fault_batch")
    millis = copy.deepcopy(batch["eventList"][0])
    millis["commonEventHeader"]["eventId"] = "fault-ms"
    millis["commonEventHeader"]["lastEpochMicrosec"] //= 1000  # milliseconds by mistake
    no_fields = copy.deepcopy(batch["eventList"][1])
    no_fields["commonEventHeader"]["eventId"] = "fault-nofields"
    del no_fields["faultFields"]
    batch["eventList"] = [batch["eventList"][0], millis, batch["eventList"][1], no_fields]

    answer = listener.post(BATCH_ROUTE, batch)
    assert answer.status_code == 400
    body = answer.json()
    assert body["accepted"] == list(ves.expect.batch_ids)
    assert [(r["index"], r["eventId"]) for r in body["rejected"]] == [(1, "fault-ms"), (3, "fault-nofields")]
    assert "epoch microseconds" in body["rejected"][0]["reason"]
    assert "faultFields" in body["rejected"][1]["reason"]
    assert sorted(a["id"] for a in rows(store, alarms)) == sorted(ves.expect.batch_ids)
    reasons = {q["record_id"]: q["reason"] for q in rows(store, quarantine)}
    assert set(reasons) == {"fault-ms", "fault-nofields"}
    assert "lastEpochMicrosec" in reasons["fault-ms"]

    # The sender resends the whole batch: nothing new stored, nothing duplicated.
    again = listener.post(BATCH_ROUTE, batch)
    assert again.status_code == 400
    assert listener.counts[-1].upserted == 0
    assert count(store, alarms) == 2


def test_replay_changes_nothing_and_normal_clears(
    ves: VesSet, sqlite_store: Store, http_server: LoopbackServer
) -> None:
    listener = Listener(http_server, sqlite_store, make())
    raised = ves.event("fault")
    assert listener.post(EVENT_ROUTE, raised).status_code == 202
    assert listener.post(EVENT_ROUTE, raised).status_code == 202
    assert [c.upserted for c in listener.counts] == [1, 0]

    clear = copy.deepcopy(raised)
    clear["event"]["faultFields"]["eventSeverity"] = "NORMAL"
    clear["event"]["commonEventHeader"]["lastEpochMicrosec"] += 300 * 10**6  # five minutes later
    clear["event"]["commonEventHeader"]["sequence"] = 2
    assert listener.post(EVENT_ROUTE, clear).status_code == 202
    # The raise arriving late again must not roll the cleared alarm back.
    assert listener.post(EVENT_ROUTE, raised).status_code == 202
    [alarm] = rows(sqlite_store, alarms)
    assert alarm["severity"] == "cleared" and alarm["state"] == "cleared"
    raised_at = ves.expect.fault["raised_at"]
    assert alarm["cleared_at"] == alarm["changed_at"] == raised_at + timedelta(minutes=5)
    assert alarm["raised_at"] == raised_at


def test_alarm_key_by_source_and_condition(
    ves: VesSet, sqlite_store: Store, http_server: LoopbackServer
) -> None:
    listener = Listener(http_server, sqlite_store, make(alarm_key="source_condition"))
    assert listener.post(BATCH_ROUTE, ves.event("fault_batch")).status_code == 202
    assert sorted(a["id"] for a in rows(sqlite_store, alarms)) == sorted(ves.expect.batch_keys)


def test_measurement_event_becomes_kpi_samples(
    ves: VesSet, store: Store, http_server: LoopbackServer
) -> None:
    expect = ves.expect
    connector = make(
        measurements=[
            {"field": "cpuUsageArray[all].percentUsage", "kpi": "cpu_pct"},
            {"field": f"memoryUsageArray[{expect.vm}].memoryUsed", "kpi": "mem_used_mb", "scale": 1 / 1024},
            {"field": "additionalMeasurements[radio].prbUsage", "kpi": "prb_util_pct"},
            {"field": "meanRequestLatency", "kpi": "latency_ms"},  # absent: no sample, no error
        ],
        entities=[{"pattern": expect.site_rule, "entity_type": "site"}],
    )
    listener = Listener(http_server, store, connector)
    event = ves.event("measurement")
    event["event"]["measurementFields"]["additionalMeasurements"] = [
        {"name": "radio", "hashMap": {"prbUsage": "71.5"}}
    ]
    answer = listener.post(EVENT_ROUTE, event)
    assert answer.status_code == 202, answer.text
    got = {(r["entity_type"], r["entity_id"], r["kpi"]): r for r in rows(store, kpi_samples)}
    site = expect.site
    assert set(got) == {
        ("site", site, "cpu_pct"),
        ("site", site, "mem_used_mb"),
        ("site", site, "prb_util_pct"),
    }
    assert got[("site", site, "cpu_pct")]["value"] == pytest.approx(expect.cpu_pct)
    assert got[("site", site, "mem_used_mb")]["value"] == pytest.approx(expect.memory_used_kib / 1024)
    assert got[("site", site, "prb_util_pct")]["value"] == pytest.approx(71.5)
    # The period starts at startEpochMicrosec, to the second.
    assert {r["period_start"] for r in got.values()} == {expect.period}


def test_measurement_value_that_is_not_a_number_is_rejected(
    ves: VesSet, sqlite_store: Store, http_server: LoopbackServer
) -> None:
    listener = Listener(
        http_server,
        sqlite_store,
        make(measurements=[{"field": "additionalMeasurements[radio].prbUsage", "kpi": "prb"}]),
    )
    event = ves.event("measurement")
    event["event"]["measurementFields"]["additionalMeasurements"] = [
        {"name": "radio", "hashMap": {"prbUsage": "n/a"}}
    ]
    answer = listener.post(EVENT_ROUTE, event)
    assert answer.status_code == 400
    [q] = rows(sqlite_store, quarantine)
    assert q["kind"] == "kpi_samples" and "prbUsage" in q["reason"] and "'n/a'" in q["reason"]
    assert count(sqlite_store, kpi_samples) == 0


@pytest.mark.parametrize(
    ("path", "body", "expect"),
    [
        (EVENT_ROUTE, b"{not json", "not valid JSON"),
        (EVENT_ROUTE, {"eventList": []}, "post eventList to"),
        (BATCH_ROUTE, {"eventList": []}, "non-empty array"),
        (EVENT_ROUTE, {"event": {"faultFields": {}}}, "commonEventHeader"),
    ],
)
def test_malformed_bodies_are_400_and_quarantined(
    sqlite_store: Store, http_server: LoopbackServer, path: str, body: Any, expect: str
) -> None:
    listener = Listener(http_server, sqlite_store, make())
    answer = listener.post(path, body)
    assert answer.status_code == 400
    assert expect in answer.json()["requestError"]["serviceException"]["text"]
    [q] = rows(sqlite_store, quarantine)
    assert expect in q["reason"]


def test_basic_auth_when_configured(
    ves: VesSet, sqlite_store: Store, http_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VES_USER", "sender")
    monkeypatch.setenv("VES_PASSWORD", "pa55word")
    listener = Listener(http_server, sqlite_store, make(username_env="VES_USER", password_env="VES_PASSWORD"))
    event = ves.event("fault")
    assert listener.post(EVENT_ROUTE, event).status_code == 401
    wrong = base64.b64encode(b"sender:guess").decode()
    assert listener.post(EVENT_ROUTE, event, headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    right = base64.b64encode(b"sender:pa55word").decode()
    assert listener.post(EVENT_ROUTE, event, headers={"Authorization": f"Basic {right}"}).status_code == 202
    assert count(sqlite_store, alarms) == 1


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="named group"):
        VesOptions.model_validate({"entities": [{"pattern": "cell-(\\d+)"}]})
    with pytest.raises(ValueError, match="name or name\\[selector\\]"):
        VesOptions.model_validate({"measurements": [{"field": "a..b", "kpi": "x"}]})
    with pytest.raises(ValueError, match="both"):
        VesOptions.model_validate({"username_env": "U"})
    assert make().streams() == []


# --- the official schema ---------------------------------------------------------------------------

#: A draft-04 schema in the shape of the Common Event Format (the official one is in the shared
#: reference set), stricter than the built-in one: it requires the header's reportingEntityId.
SMALL_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "properties": {"event": {"$ref": "#/definitions/event"}},
    "definitions": {
        "event": {
            "type": "object",
            "properties": {
                "commonEventHeader": {
                    "type": "object",
                    "properties": {
                        "nfVendorName": {"type": "string"},
                        "priority": {"type": "string", "enum": ["High", "Medium", "Normal", "Low"]},
                    },
                    "required": ["priority", "reportingEntityId"],
                }
            },
            "required": ["commonEventHeader"],
        }
    },
}


def _with_schema(path: str, ves: VesSet) -> tuple[VesConnector, dict[str, Any]]:
    return make(schema_path=path), ves.event("fault")


def _mapped(connector: VesConnector, event: dict[str, Any]) -> tuple[int, list[str]]:
    mapped = connector.mapper.map_events([event["event"]])
    return len(mapped.accepted), [r["reason"] for r in mapped.rejected]


def _schema_rejects_an_object_for_a_string(connector: VesConnector, event: dict[str, Any]) -> None:
    assert _mapped(connector, event) == (1, [])
    typed = json.loads(json.dumps(event))
    typed["event"]["commonEventHeader"]["nfVendorName"] = {"not": "a string"}  # an object for a string
    accepted, reasons = _mapped(connector, typed)
    assert accepted == 0 and "commonEventHeader.nfVendorName" in reasons[0], reasons


def test_events_are_checked_against_the_configured_schema(ves: VesSet, tmp_path: Path) -> None:
    path = tmp_path / "cef.json"
    path.write_text(json.dumps(SMALL_SCHEMA))
    event = ves.event("fault")
    event["event"]["commonEventHeader"]["reportingEntityId"] = "ems-1"
    connector = make(schema_path=str(path))
    _schema_rejects_an_object_for_a_string(connector, event)
    del event["event"]["commonEventHeader"]["reportingEntityId"]
    assert _mapped(make(), event) == (1, [])  # the built-in schema does not require it
    accepted, reasons = _mapped(connector, event)
    assert accepted == 0 and "reportingEntityId" in reasons[0] and "(VES schema)" in reasons[0]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("commonEventHeader", "nfVendorName", {"an": "object"}), "commonEventHeader.nfVendorName"),
        (("commonEventHeader", "sequence", "7"), "commonEventHeader.sequence"),
        (("commonEventHeader", "eventId", "   "), "commonEventHeader.eventId"),
        (("commonEventHeader", "reportingEntityName", None), "reportingEntityName"),
        (("commonEventHeader", "startEpochMicrosec", 1_700_000_000), "startEpochMicrosec"),
        (("faultFields", "vfStatus", "Sleeping"), "faultFields.vfStatus"),
        (("faultFields", "eventSeverity", "major"), "faultFields.eventSeverity"),
        (("faultFields", "alarmAdditionalInformation", {"k": 5}), "faultFields.alarmAdditionalInformation.k"),
        (("faultFields", "faultFieldsVersion", 4.0), "faultFields.faultFieldsVersion"),
        (("faultFields", "surprise", "x"), "faultFields"),
        ((None, "surpriseFields", {}), "event"),
    ],
)
def test_the_built_in_event_schema_refuses_what_the_standard_refuses(
    ves: VesSet, change: tuple[str | None, str, Any], where: str
) -> None:
    event = ves.event("fault")["event"]
    block, key, value = change
    target = event if block is None else event[block]
    if value is None:
        del target[key]
    else:
        target[key] = value
    mapped = make().mapper.map_events([event])
    assert mapped.accepted == [] and where in mapped.rejected[0]["reason"], mapped.rejected
    assert "(VES event)" in mapped.rejected[0]["reason"]


@pytest.mark.conformance
def test_the_official_ves_7_schema_accepts_the_reference_events_and_refuses_the_rest() -> None:
    schema = require_shared("reference/ves/CommonEventFormat_30.2.1_ONAP.json")
    reference = payloads("ves", REFERENCE)
    connector = make(schema_path=str(schema))
    for role in ("fault", "measurement"):
        assert _mapped(connector, reference.json(role))[1] == [], role
    batch = reference.json("fault_batch")["eventList"]
    assert connector.mapper.map_events(batch).rejected == []
    _schema_rejects_an_object_for_a_string(connector, reference.json("fault"))
    outside = reference.json("fault")
    outside["event"]["faultFields"]["vfStatus"] = "Sleeping"  # outside the schema's enumeration
    assert "vfStatus" in _mapped(connector, outside)[1][0]


def test_a_schema_that_cannot_be_used_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        make(schema_path=str(tmp_path / "missing.json"))
    (tmp_path / "other.json").write_text('{"type": "object"}')
    with pytest.raises(ValueError, match="not a VES Common Event Format schema"):
        make(schema_path=str(tmp_path / "other.json"))
    (tmp_path / "broken.json").write_text('{"type": 5, "properties": {"event": {}}}')
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        make(schema_path=str(tmp_path / "broken.json"))
