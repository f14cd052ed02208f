"""Payloads checked against the standards' schemas, and payloads generated from them.

The TMF connectors check items against the API's swagger when ``swagger_path`` names it (a value
declared scalar that is not one is refused; container drift is noted and the record kept); the VES
listener checks every event against its built-in event schema, and the official one when configured.
Generated payloads (hypothesis-jsonschema, from the same schemas) go into every connector that speaks
them: whatever the schema admits is stored or quarantined with a reason, never a crash, never lost.
The own swagger fixtures run on a plain clone; the official documents run as conformance tests.
"""

from __future__ import annotations

import itertools
import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft4Validator
from sqlalchemy import delete, select

from connectors.base import Connector, ConnectorContext, PushRequest
from connectors.tmf import (
    Tmf621Connector,
    Tmf629Connector,
    Tmf635Connector,
    Tmf638Connector,
    Tmf639Connector,
    Tmf642Connector,
    Tmf678Connector,
)
from connectors.tmf._base import text_id
from connectors.tmf.swagger import lenient
from connectors.ves import BUILTIN_SCHEMA, EVENT_ROUTE, VesConnector, VesOptions
from dashboard.ingest import Ingestor
from dashboard.ingest.runner import fit
from dashboard.store import Store
from dashboard.store.schema import alarms, connector_state, quarantine
from tests.loopback import LoopbackServer, Response
from tests.reference import ORIGINS, OWN, REFERENCE, payloads, require_shared
from tests.test_fuzz_connectors import EXAMPLES, FUZZ
from tests.test_tmf import ALARMS, event, make, push, serve

#: Seven connectors, two documents each: a quarter of the examples per pair keeps the suite's time.
FUZZ_EACH = settings(FUZZ, max_examples=max(5, EXAMPLES // 4))

#: Each TMF connector, the role of its swagger in the payload sets, and the path its items are read from.
TMF = [
    (Tmf642Connector, "tmf642_swagger", ALARMS),
    (Tmf621Connector, "tmf621_swagger", "/tmf-api/troubleTicket/v4/troubleTicket"),
    (Tmf629Connector, "tmf629_swagger", "/tmf-api/customerManagement/v4/customer"),
    (Tmf678Connector, "tmf678_swagger", "/tmf-api/customerBillManagement/v4/customerBill"),
    (Tmf635Connector, "tmf635_swagger", "/tmf-api/usageManagement/v4/usage"),
    (Tmf639Connector, "tmf639_swagger", "/tmf-api/resourceInventoryManagement/v4/resource"),
    (Tmf638Connector, "tmf638_swagger", "/tmf-api/serviceInventory/v4/service"),
]


def _listener(swagger: str) -> Tmf642Connector:
    """A TMF642 connector used for its listeners only, checking against ``swagger``."""
    options = Tmf642Connector.Options.model_validate(
        {"base_url": "http://127.0.0.1:9", "swagger_path": swagger}
    )
    return Tmf642Connector(options, ConnectorContext("tmf-alarms"))


def _rows(store: Store, table: Any) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


# --- TMF items against the swagger ------------------------------------------------------------------


@pytest.mark.parametrize("origin", ORIGINS)
def test_an_item_that_breaks_the_swagger_is_refused_and_container_drift_is_kept(
    origin: str, sqlite_store: Store, http_server: LoopbackServer
) -> None:
    swagger = str(payloads("tmf", origin).path("tmf642_swagger"))
    base = payloads("tmf", OWN).json("alarm")

    def alarm(ident: Any, **changes: Any) -> dict[str, Any]:
        return {**base, "id": ident, **changes}

    items = [
        alarm("fits"),
        alarm("text-where-an-object-is", alarmDetails={"sctpAssoc": 3}),
        alarm("number-where-text-is", specificProblem=17),
        alarm("object-where-a-list-is", parentAlarm={"id": "31004421"}),  # as TMF642's own example
        alarm("severity-in-capitals", perceivedSeverity="MAJOR"),  # enumerations drift: kept
        alarm(4417),  # v4 types Alarm.id as integer, real servers send text: both are read
        alarm("null-for-absent", alarmDetails=None),
    ]
    serve(http_server, ALARMS, items)
    connector = make(Tmf642Connector, http_server, swagger_path=swagger, page_size=100)
    summary = Ingestor(sqlite_store).run(connector)
    assert summary.status == "partial", summary.error
    stored = {r["id"] for r in _rows(sqlite_store, alarms)}
    assert stored == {"fits", "object-where-a-list-is", "severity-in-capitals", "4417", "null-for-absent"}
    held = {q["record_id"]: q["reason"] for q in _rows(sqlite_store, quarantine)}
    assert set(held) == {"text-where-an-object-is", "number-where-text-is"}
    assert "alarmDetails" in held["text-where-an-object-is"] and "swagger" in held["text-where-an-object-is"]
    assert "specificProblem" in held["number-where-text-is"]
    assert summary.counts.adjusted >= 1  # the list that came as an object is noted
    # Without a swagger the same items are mapped as before: shape is not checked.
    plain = make(Tmf642Connector, http_server, page_size=100)
    assert {"swagger" in (r.reason or "") for b in plain.read(plain.stream, {}) for r in b.rejects} <= {False}


@pytest.mark.parametrize("origin", ORIGINS)
def test_a_notification_whose_resource_breaks_the_swagger_is_refused(
    origin: str, sqlite_store: Store
) -> None:
    connector = _listener(str(payloads("tmf", origin).path("tmf642_swagger")))
    base = payloads("tmf", OWN).json("alarm")
    broken = event("alarmCreateEvent", {**base, "state": ["raised"]})
    bad = push(connector, "/listener/alarmCreateEvent", broken)
    assert bad.status == 400 and "event.alarm.state" in bad.body["reason"]
    counts = Ingestor(sqlite_store).ingest(connector.name, bad.batches)
    assert counts.quarantined == 1
    good = push(connector, "/listener/alarmCreateEvent", event("alarmCreateEvent", base))
    assert good.status == 201


def test_a_swagger_that_cannot_be_used_stops_the_start(tmp_path: Any, http_server: LoopbackServer) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        make(Tmf642Connector, http_server, swagger_path=str(tmp_path / "missing.json"))
    (tmp_path / "tt.json").write_text(json.dumps({"swagger": "2.0", "definitions": {"TroubleTicket": {}}}))
    with pytest.raises(ValueError, match="defines no 'Alarm'"):
        make(Tmf642Connector, http_server, swagger_path=str(tmp_path / "tt.json"))


def test_leniency_is_what_the_docs_say() -> None:
    definition = {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "integer"},
            "count": {"type": "integer"},
            "state": {"type": "string", "enum": ["a"]},
            "at": {"type": "string", "format": "date-time"},
            "kind": {"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]},
        },
    }
    validator = Draft4Validator(lenient(definition))
    assert validator.is_valid({"id": "x-1", "state": "B", "at": "yesterday", "kind": "ab", "count": None})
    assert validator.is_valid({})
    assert not validator.is_valid({"count": "7"})  # only identifiers accept text for an integer
    assert not validator.is_valid({"state": {"a": 1}})


@pytest.mark.conformance
@pytest.mark.parametrize(("cls", "role", "path"), TMF, ids=[c.__name__ for c, _, _ in TMF])
def test_the_standards_examples_fit_their_swagger(
    cls: type[Connector], role: str, path: str, http_server: LoopbackServer
) -> None:
    reference = payloads("tmf", REFERENCE)
    connector = make(cls, http_server, swagger_path=str(reference.path(role)))
    example = {
        "tmf642_swagger": "alarm",
        "tmf621_swagger": "trouble_ticket",
        "tmf629_swagger": "customer",
        "tmf678_swagger": "customer_bill",
        "tmf635_swagger": "usage",
        "tmf639_swagger": "resource",
        "tmf638_swagger": "service",
    }[role]
    shape = connector.shape(reference.json(example))  # type: ignore[attr-defined]
    assert shape.refused is None
    # Two published examples disagree with their own swagger on a container: noted, kept.
    assert bool(shape.notes) == (role in {"tmf642_swagger", "tmf678_swagger"}), shape.notes


# --- generated from the schemas -----------------------------------------------------------------------


def _generated(document: dict[str, Any], definition: str) -> st.SearchStrategy[Any]:
    """Items the lenient form of ``definition`` admits (what a server may send and still be read).

    Several TMF definitions refer to themselves (a resource's relationships hold resources): the
    references are written out four levels deep and null below, which the lenient form admits.
    """
    definitions = lenient(document["definitions"])
    item = _inline({"$ref": f"#/definitions/{definition}"}, definitions, 4)
    return from_schema({"allOf": [item, {"type": "object"}]})


def _inline(node: Any, definitions: dict[str, Any], depth: int) -> Any:
    if isinstance(node, list):
        return [_inline(v, definitions, depth) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        if depth == 0:
            return {"type": "null"}
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        return _inline(target, definitions, depth - 1)
    return {k: _inline(v, definitions, depth) for k, v in node.items() if k != "description"}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@pytest.mark.slow
@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize(("cls", "role", "path"), TMF, ids=[c.__name__ for c, _, _ in TMF])
def test_every_item_the_swagger_admits_is_stored_or_quarantined(
    origin: str, cls: type[Connector], role: str, path: str, sqlite_store: Store, http_server: LoopbackServer
) -> None:
    swagger = payloads("tmf", origin).path(role)
    document = json.loads(swagger.read_text(encoding="utf-8"))
    served: list[Any] = []
    serve(http_server, path, served)
    connector = make(cls, http_server, swagger_path=str(swagger), page_size=100)
    ingestor = Ingestor(sqlite_store)
    fresh = itertools.count()

    @FUZZ_EACH
    @given(items=st.lists(_generated(document, connector.definition()), min_size=1, max_size=4))  # type: ignore[attr-defined]
    def run(items: list[Any]) -> None:
        for item in items:  # a new id each time: an id stored by an earlier example is not news
            if isinstance(item.get("id"), str):
                item["id"] = f"{item['id']}-{next(fresh)}"
        served[:] = items
        batches = list(connector.read(connector.streams()[0], {}))
        accounted = {_canonical(s) for b in batches for s in (b.sources or []) if s is not None} | {
            _canonical(r.raw) for b in batches for r in b.rejects
        }
        for item in items:
            assert _canonical(item) in accounted, f"lost: {_canonical(item)[:300]}"
        assert all(r.reason for b in batches for r in b.rejects)
        counts = ingestor.ingest(connector.name, batches)  # the store takes what was accepted
        assert counts.upserted + counts.quarantined >= 1

    run()


@pytest.mark.slow
@pytest.mark.parametrize("origin", ORIGINS)
def test_every_alarm_the_swagger_admits_is_stored_or_quarantined_through_the_store(
    origin: str, store: Store, http_server: LoopbackServer
) -> None:
    document = payloads("tmf", origin).json("tmf642_swagger")
    served: list[Any] = []
    http_server.route(
        "GET", ALARMS, lambda req: Response(200, served if req.query.get("offset") == ["0"] else [])
    )
    swagger = str(payloads("tmf", origin).path("tmf642_swagger"))
    connector = make(Tmf642Connector, http_server, swagger_path=swagger)
    listener = _listener(swagger)

    @FUZZ
    @given(items=st.lists(_generated(document, "Alarm"), min_size=1, max_size=3), data=st.data())
    def run(items: list[Any], data: st.DataObject) -> None:
        for i, item in enumerate(items):  # distinct ids where the item has one
            if isinstance(item.get("id"), str | int) and not isinstance(item.get("id"), bool):
                item["id"] = f"{item['id']}-{data.draw(st.integers(0, 10**9))}-{i}"
        served[:] = items
        with store.begin() as conn:
            conn.execute(delete(connector_state))
        summary = Ingestor(store).run(connector)
        assert summary.status in ("success", "partial"), summary.error
        with store.connect() as conn:
            stored = set(conn.execute(select(alarms.c.id)).scalars())
            found = conn.execute(select(quarantine.c.record_id, quarantine.c.reason))
            held = {r.record_id: r.reason for r in found}
        assert all(held.values())
        for item in items:
            ident = text_id(item.get("id"))
            if ident is not None:
                assert ident in stored or fit(ident, 256) in held, f"lost: {_canonical(item)[:300]}"
        # The same alarm as a notification: answered (never 5xx) and kept or quarantined.
        answer = push(listener, "/listener/alarmCreateEvent", event("alarmCreateEvent", items[0]))
        assert answer.status in (201, 400), answer.body
        counts = Ingestor(store).ingest(listener.name, answer.batches)
        assert counts.upserted + counts.quarantined >= 1

    run()


def _ves_schema() -> dict[str, Any]:
    return json.loads(resources.files("connectors").joinpath(BUILTIN_SCHEMA).read_text(encoding="utf-8"))


#: Measurement blocks whose items the built-in schema leaves open (any further numeric metric): the
#: official schema names each metric, so events compared with it leave these out.
_OPEN_BLOCKS = (
    "cpuUsageArray",
    "diskUsageArray",
    "filesystemUsageArray",
    "hugePagesArray",
    "machineCheckExceptionArray",
    "memoryUsageArray",
    "nicPerformanceArray",
    "processStatsArray",
    "additionalObjects",
    "ipmi",
)


def _ves_events(domain: str, *, closed: bool = False) -> st.SearchStrategy[Any]:
    """Events of ``domain`` that the built-in schema admits."""
    schema = _ves_schema()
    defs = schema["$defs"]
    block = f"{domain}Fields"
    if closed and domain == "measurement":
        defs = json.loads(json.dumps(defs))
        for name in _OPEN_BLOCKS:
            del defs["measurementFields"]["properties"][name]
    return from_schema(
        {
            "$defs": defs,
            "type": "object",
            "properties": {
                "commonEventHeader": {
                    "allOf": [
                        {"$ref": "#/$defs/commonEventHeader"},
                        {"properties": {"domain": {"const": domain}}},
                    ]
                },
                block: {"$ref": f"#/$defs/{block}"},
            },
            "required": ["commonEventHeader", block],
            "additionalProperties": False,
        }
    )


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["fault", "measurement", "heartbeat"])
def test_every_event_the_ves_schema_admits_is_accepted(domain: str, store: Store) -> None:
    options = VesOptions.model_validate(
        {
            "measurements": [
                {"field": "meanRequestLatency", "kpi": "latency_ms"},
                {"field": "additionalMeasurements[cellStats].prbUsage", "kpi": "prb_utilisation"},
            ]
        }
    )
    connector = VesConnector(options, ConnectorContext("ves"))
    (route,) = [r for r in connector.push_routes() if r.path == EVENT_ROUTE]
    ingestor = Ingestor(store)
    fresh = itertools.count()

    @FUZZ
    @given(event=_ves_events(domain))
    def run(event: dict[str, Any]) -> None:
        event["commonEventHeader"]["eventId"] += f"-{next(fresh)}"  # a replay would change nothing
        body = json.dumps({"event": event}).encode("utf-8", errors="surrogatepass")
        answer = route.handler(PushRequest(path=route.path, body=body, headers={}, query={}))
        answered = answer.body if isinstance(answer.body, dict) else {}
        reasons = [r["reason"] for r in answered.get("rejected", [])]
        # The schema admits it, so the listener does, unless a configured rule meets a value that
        # is not a number (hashMap values are text): then that event is refused with the rule's path.
        assert answer.status == 202 or all("prbUsage" in r for r in reasons), answer.body
        counts = ingestor.ingest("ves", answer.batches)
        if domain == "fault":
            assert counts.upserted + counts.quarantined == 1

    run()


@pytest.mark.conformance
@pytest.mark.slow
@pytest.mark.parametrize("domain", ["fault", "measurement", "heartbeat"])
def test_the_official_ves_schema_admits_every_event_the_built_in_one_admits(domain: str) -> None:
    official = json.loads(require_shared("reference/ves/CommonEventFormat_30.2.1_ONAP.json").read_text())
    validator = Draft4Validator(official)

    @FUZZ
    @given(event=_ves_events(domain, closed=True))
    def run(event: dict[str, Any]) -> None:
        errors = [e.message for e in validator.iter_errors({"event": event})]
        assert not errors, errors[:3]

    run()


@pytest.mark.conformance
@pytest.mark.slow
def test_the_built_in_ves_schema_refuses_what_the_official_one_refuses() -> None:
    from tests.test_fuzz_connectors import mutate

    official = Draft4Validator(
        json.loads(require_shared("reference/ves/CommonEventFormat_30.2.1_ONAP.json").read_text())
    )
    builtin = VesConnector(VesOptions.model_validate({}), ConnectorContext("ves")).mapper.schemas[0]
    found = payloads("ves", REFERENCE)
    seeds = [found.json("fault")["event"], found.json("measurement")["event"]]

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        event = mutate(data.draw(st.sampled_from(seeds)), data)
        fields = event.get("measurementFields") if isinstance(event, dict) else None
        if isinstance(fields, dict) and any(k in fields for k in _OPEN_BLOCKS):
            return  # the built-in schema leaves those items open on purpose
        if official.is_valid({"event": event}):
            return
        assert builtin.validator.problems(event), json.dumps(event, default=str)[:500]

    run()
