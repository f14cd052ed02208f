"""VES 7 listener end to end: real HTTP posts on 127.0.0.1, the reference events, into a real store."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterable
from datetime import datetime
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
from tests.reference import shared_dir

# The reference payloads live in the shared folder ($VANTAGE_SHARED_DIR, else ../shared).
REF = shared_dir() / "reference" / "ves"


def ref(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((REF / name).read_text(encoding="utf-8"))
    return doc


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


def test_reference_fault_event_becomes_an_alarm(store: Store, http_server: LoopbackServer) -> None:
    listener = Listener(http_server, store, make())
    answer = listener.post(EVENT_ROUTE, ref("ves7_valid_30_1_1_event.json"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == ["fault0000245"]
    [alarm] = rows(store, alarms)
    assert alarm["id"] == "fault0000245" and alarm["source"] == "ves"
    assert alarm["severity"] == "critical" and alarm["state"] == "raised"
    assert alarm["resource_id"] == alarm["alarmed_object"] == "scfx0001vm002cap001"
    assert alarm["probable_cause"] == "PilotNumberPoolExhaustion"
    assert alarm["specific_problem"] == "Calls cannot complete - pilot numbers are unavailable"
    # 1413378172000000 epoch microseconds = 2014-10-15 13:02:52 UTC
    assert alarm["raised_at"] == alarm["changed_at"] == datetime(2014, 10, 15, 13, 2, 52)
    assert alarm["cleared_at"] is None
    assert count(store, quarantine) == 0


def test_reference_invalid_event_is_400_and_quarantined(
    sqlite_store: Store, http_server: LoopbackServer
) -> None:
    listener = Listener(http_server, sqlite_store, make())
    answer = listener.post(EVENT_ROUTE, ref("ves7_invalid_30_1_1_event.json"))
    assert answer.status_code == 400
    body = answer.json()
    text = body["requestError"]["serviceException"]["text"]
    assert "vesEventListenerVersion" in text and "30.0.1" in text
    assert body["rejected"] == [
        {"index": 0, "eventId": "fault0000245", "reason": body["rejected"][0]["reason"]}
    ]
    assert count(sqlite_store, alarms) == 0
    [q] = rows(sqlite_store, quarantine)
    assert q["connector"] == "ves" and q["record_id"] == "fault0000245" and q["kind"] == "alarms"
    assert "vesEventListenerVersion" in q["reason"]
    assert json.loads(q["raw"])["commonEventHeader"]["eventId"] == "fault0000245"


def test_batch_with_valid_and_invalid_events(store: Store, http_server: LoopbackServer) -> None:
    listener = Listener(http_server, store, make())
    batch = ref("ves7_batch_valid.json")
    millis = copy.deepcopy(batch["eventList"][0])
    millis["commonEventHeader"]["eventId"] = "fault-ms"
    millis["commonEventHeader"]["lastEpochMicrosec"] = 1413378172000  # milliseconds by mistake
    no_fields = copy.deepcopy(batch["eventList"][1])
    no_fields["commonEventHeader"]["eventId"] = "fault-nofields"
    del no_fields["faultFields"]
    batch["eventList"] = [batch["eventList"][0], millis, batch["eventList"][1], no_fields]

    answer = listener.post(BATCH_ROUTE, batch)
    assert answer.status_code == 400
    body = answer.json()
    assert body["accepted"] == ["fault0000250", "fault0000251"]
    assert [(r["index"], r["eventId"]) for r in body["rejected"]] == [(1, "fault-ms"), (3, "fault-nofields")]
    assert "epoch microseconds" in body["rejected"][0]["reason"]
    assert "faultFields" in body["rejected"][1]["reason"]
    assert sorted(a["id"] for a in rows(store, alarms)) == ["fault0000250", "fault0000251"]
    reasons = {q["record_id"]: q["reason"] for q in rows(store, quarantine)}
    assert set(reasons) == {"fault-ms", "fault-nofields"}
    assert "lastEpochMicrosec" in reasons["fault-ms"]

    # The sender resends the whole batch: nothing new stored, nothing duplicated.
    again = listener.post(BATCH_ROUTE, batch)
    assert again.status_code == 400
    assert listener.counts[-1].upserted == 0
    assert count(store, alarms) == 2


def test_replay_changes_nothing_and_normal_clears(sqlite_store: Store, http_server: LoopbackServer) -> None:
    listener = Listener(http_server, sqlite_store, make())
    raised = ref("ves7_valid_30_1_1_event.json")
    assert listener.post(EVENT_ROUTE, raised).status_code == 202
    assert listener.post(EVENT_ROUTE, raised).status_code == 202
    assert [c.upserted for c in listener.counts] == [1, 0]

    clear = copy.deepcopy(raised)
    clear["event"]["faultFields"]["eventSeverity"] = "NORMAL"
    clear["event"]["commonEventHeader"]["lastEpochMicrosec"] = 1413378472000000  # five minutes later
    clear["event"]["commonEventHeader"]["sequence"] = 2
    assert listener.post(EVENT_ROUTE, clear).status_code == 202
    # The raise arriving late again must not roll the cleared alarm back.
    assert listener.post(EVENT_ROUTE, raised).status_code == 202
    [alarm] = rows(sqlite_store, alarms)
    assert alarm["severity"] == "cleared" and alarm["state"] == "cleared"
    assert alarm["cleared_at"] == alarm["changed_at"] == datetime(2014, 10, 15, 13, 7, 52)
    assert alarm["raised_at"] == datetime(2014, 10, 15, 13, 2, 52)


def test_alarm_key_by_source_and_condition(sqlite_store: Store, http_server: LoopbackServer) -> None:
    listener = Listener(http_server, sqlite_store, make(alarm_key="source_condition"))
    assert listener.post(BATCH_ROUTE, ref("ves7_batch_valid.json")).status_code == 202
    assert sorted(a["id"] for a in rows(sqlite_store, alarms)) == [
        "scfx0001vm002cap001:PilotNumberPoolExhaustion",
        "scfx0001vm002cap001:RecordingServerUnreachable",
    ]


def test_measurement_event_becomes_kpi_samples(store: Store, http_server: LoopbackServer) -> None:
    connector = make(
        measurements=[
            {"field": "cpuUsageArray[all].percentUsage", "kpi": "cpu_pct"},
            {"field": "memoryUsageArray[RAM].memoryUsed", "kpi": "mem_used_mb", "scale": 1 / 1024},
            {"field": "additionalMeasurements[radio].prbUsage", "kpi": "prb_util_pct"},
            {"field": "meanRequestLatency", "kpi": "latency_ms"},  # absent: no sample, no error
        ],
        entities=[{"pattern": r"^(?P<id>bgtnj\d+)vmh", "entity_type": "site"}],
    )
    listener = Listener(http_server, store, connector)
    event = ref("measurement7x.json")
    event["event"]["measurementFields"]["additionalMeasurements"] = [
        {"name": "radio", "hashMap": {"prbUsage": "71.5"}}
    ]
    answer = listener.post(EVENT_ROUTE, event)
    assert answer.status_code == 202, answer.text
    got = {(r["entity_type"], r["entity_id"], r["kpi"]): r for r in rows(store, kpi_samples)}
    assert set(got) == {
        ("site", "bgtnj05", "cpu_pct"),
        ("site", "bgtnj05", "mem_used_mb"),
        ("site", "bgtnj05", "prb_util_pct"),
    }
    assert got[("site", "bgtnj05", "cpu_pct")]["value"] == pytest.approx(0.39)
    assert got[("site", "bgtnj05", "mem_used_mb")]["value"] == pytest.approx(353492 / 1024)
    assert got[("site", "bgtnj05", "prb_util_pct")]["value"] == pytest.approx(71.5)
    # startEpochMicrosec 1534868302434191 -> the period starts at 2018-08-21 16:18:22 UTC
    assert {r["period_start"] for r in got.values()} == {datetime(2018, 8, 21, 16, 18, 22)}


def test_measurement_value_that_is_not_a_number_is_rejected(
    sqlite_store: Store, http_server: LoopbackServer
) -> None:
    listener = Listener(
        http_server,
        sqlite_store,
        make(measurements=[{"field": "additionalMeasurements[radio].prbUsage", "kpi": "prb"}]),
    )
    event = ref("measurement7x.json")
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
    sqlite_store: Store, http_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VES_USER", "sender")
    monkeypatch.setenv("VES_PASSWORD", "pa55word")
    listener = Listener(http_server, sqlite_store, make(username_env="VES_USER", password_env="VES_PASSWORD"))
    event = ref("ves7_valid_30_1_1_event.json")
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
