"""ONAP VES 7 event listener (``type: ves``): fault events into alarms, measurements into KPI samples.

Every event is validated with jsonschema against the connector's event schema
(``connectors/schemas/ves-event-7.json``, written after the Common Event Format 30.2.x: the header,
fault, heartbeat and measurement blocks field by field, types and enumerations, plus what mapping
needs: a non-blank eventId, epoch microseconds, the block a fault or measurement event maps from).
With ``schema_path`` the official Common Event Format schema is applied as well, so every other
domain's block is checked in full. A rejected event gets one reason: the path inside the event and
what the schema expected there.

Answers follow the VES listener API: 202 when every event was accepted; 400 with a
``requestError`` when any was not, listing which events were accepted and which were rejected
and why. Rejected events are quarantined; accepted ones are stored even when the batch that
carried them also held bad ones (a sender that resends the whole batch changes nothing: ingest
is an idempotent upsert).
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorOptions,
    FatalError,
    JSONDict,
    PushRequest,
    PushResponse,
    PushRoute,
    Reject,
    Stream,
    VantageError,
    read_json_document,
)
from connectors.canonical import check_entity_type
from connectors.jsonschemas import SchemaValidator
from connectors.options import EntityRule

#: The event schema every event is checked against (package data, written here after the Common
#: Event Format 30.2.x): header, fault, heartbeat and measurement blocks field by field.
BUILTIN_SCHEMA = "schemas/ves-event-7.json"
_PATH_PART = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?:\[(?P<sel>[^\]]+)\])?$")

EVENT_ROUTE = "/eventListener/v7"
BATCH_ROUTE = "/eventListener/v7/eventBatch"


# --- options -------------------------------------------------------------------------------


class MeasurementRule(BaseModel):
    """A measurement value -> a KPI.

    ``field`` is a dotted path into ``measurementFields``: ``meanRequestLatency``,
    ``additionalMeasurements[cellStats].rrcSuccess`` (a named hashMap, then its key) or
    ``cpuUsageArray[all].percentUsage`` (the array item whose ``name`` or ``*Identifier`` is ``all``).
    """

    model_config = ConfigDict(extra="forbid")

    field: str
    kpi: str
    scale: float = 1.0

    _parts: list[tuple[str, str | None]] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _parse(self) -> MeasurementRule:
        parts: list[tuple[str, str | None]] = []
        for piece in self.field.split("."):
            m = _PATH_PART.match(piece)
            if not m:
                raise ValueError(f"field {self.field!r}: cannot read {piece!r} (use name or name[selector])")
            parts.append((m.group("name"), m.group("sel")))
        self._parts = parts
        return self

    def lookup(self, fields: Mapping[str, Any]) -> Any:
        """The value at this rule's path, or None when the event does not carry it."""
        node: Any = fields
        for name, sel in self._parts:
            if isinstance(node, Mapping) and "hashMap" in node and name not in node:
                node = node["hashMap"]
            if not isinstance(node, Mapping) or name not in node:
                return None
            node = node[name]
            if sel is not None:
                node = _select(node, sel)
                if node is None:
                    return None
        if isinstance(node, Mapping) and "hashMap" in node:
            return None
        return node


def _select(items: Any, sel: str) -> Any:
    if not isinstance(items, list):
        return None
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if item.get("name") == sel:
            return item
        if any(k.endswith("Identifier") and v == sel for k, v in item.items()):
            return item
    return None


class VesOptions(ConnectorOptions):
    """Options of ``type: ves``."""

    #: Measurement values -> KPIs; values no rule names are not stored.
    measurements: list[MeasurementRule] = Field(default_factory=list)
    #: ``sourceName`` -> entity rules for KPI samples, first match wins.
    entities: list[EntityRule] = Field(default_factory=list)
    #: The entity a sourceName no rule matches becomes (its id is the whole sourceName).
    default_entity_type: str = "resource"
    #: Alarm id: the VES ``eventId`` (VES 7 keeps it across raise/update/clear), or
    #: ``sourceName:alarmCondition`` for senders that give every notification a new eventId.
    alarm_key: Literal["event_id", "source_condition"] = "event_id"
    #: Basic auth expected from senders: names environment variables holding user and password.
    username_env: str | None = None
    password_env: str | None = None
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: The VES Common Event Format JSON schema (a file path, e.g. ONAP's
    #: CommonEventFormat_30.2.1_ONAP.json): every event is validated against it before it is
    #: mapped, and an event it refuses is rejected with the schema's reason and the path inside the
    #: event. Read when the connector is built: a file that cannot be used stops it, naming the file.
    #: Unset: the built-in event schema alone (header, fault, heartbeat and measurement blocks).
    schema_path: str | None = None

    @model_validator(mode="after")
    def _auth_pair(self) -> VesOptions:
        if bool(self.username_env) != bool(self.password_env):
            raise ValueError("give both username_env and password_env, or neither")
        check_entity_type(self.default_entity_type, "default_entity_type")
        return self


# --- validation and mapping ----------------------------------------------------------------


class InvalidEvent(VantageError, ValueError):
    """An event that does not follow the Common Event Format; the message says where."""


class EventSchema:
    """A JSON schema checking one event at a time.

    The official Common Event Format schema describes a request body (``{"event": ...}``); the
    built-in one describes an event. Either way the reason names the path inside the event.
    """

    def __init__(self, schema: dict[str, Any], source: str, label: str) -> None:
        self.wrapped = "event" in schema.get("properties", {})
        if not self.wrapped and "commonEventHeader" not in schema.get("properties", {}):
            raise ValueError(f"{source}: not a VES Common Event Format schema (no 'event' property)")
        self.validator = SchemaValidator(schema, source)
        self.source = source
        self.label = label

    @classmethod
    def load(cls, path: str, label: str = "VES schema") -> EventSchema:
        return cls(read_json_document(path), path, label)

    @classmethod
    def builtin(cls) -> EventSchema:
        return _builtin_schema()

    def check(self, event: Any) -> None:
        """InvalidEvent naming where in the event the schema is broken, and how."""
        problems = self.validator.problems({"event": event} if self.wrapped else event)
        if not problems:
            return
        first = problems[0]
        path = first.path[1:] if self.wrapped else first.path
        where = ".".join(str(p) for p in path) or "event"
        message = first.message if len(first.message) <= 300 else first.message[:300] + "…"
        if first.description and first.keyword in {"minimum", "maximum", "exclusiveMaximum", "pattern"}:
            message = f"{message}: expected {first.description}"
        raise InvalidEvent(f"{where}: {message} ({self.label})")


@functools.cache
def _builtin_schema() -> EventSchema:
    text = resources.files("connectors").joinpath(BUILTIN_SCHEMA).read_text(encoding="utf-8")
    return EventSchema(json.loads(text), BUILTIN_SCHEMA, "VES event")


def event_times(header: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """The start and last times of a checked event's header."""
    return _epoch(header["startEpochMicrosec"]), _epoch(header["lastEpochMicrosec"])


def _epoch(v: float) -> datetime:
    return datetime.fromtimestamp(int(v) // 10**6, UTC).replace(tzinfo=None, microsecond=int(v) % 10**6)


@dataclass
class Mapped:
    """The records and rejects from one request, and what to tell the sender."""

    alarms: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: The event each alarm and sample came from, for quarantine (Batch.sources).
    alarm_events: list[Any] = field(default_factory=list)
    sample_events: list[Any] = field(default_factory=list)
    rejects: dict[str, list[Reject]] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0

    def reject(self, kind: str, index: int, event: Any, reason: str) -> None:
        event_id = _event_id(event)
        self.rejects.setdefault(kind, []).append(Reject(event, f"event {index}: {reason}", event_id))
        self.rejected.append({"index": index, "eventId": event_id, "reason": reason})

    def batches(self) -> list[Batch]:
        out: list[Batch] = []
        if self.alarms or self.rejects.get("alarms"):
            out.append(
                Batch("alarms", self.alarms, self.rejects.get("alarms", []), sources=self.alarm_events)
            )
        if self.samples or self.rejects.get("kpi_samples"):
            out.append(
                Batch(
                    "kpi_samples",
                    self.samples,
                    self.rejects.get("kpi_samples", []),
                    sources=self.sample_events,
                )
            )
        return out


def _event_id(event: Any) -> str | None:
    if isinstance(event, dict) and isinstance(event.get("commonEventHeader"), dict):
        v = event["commonEventHeader"].get("eventId")
        return str(v) if v is not None else None
    return None


def _kind_of(event: Any) -> str:
    header = event.get("commonEventHeader") if isinstance(event, dict) else None
    if isinstance(header, dict) and header.get("domain") == "measurement":
        return "kpi_samples"
    return "alarms"


class VesMapper:
    """Maps checked VES events to canonical records by the connector's options."""

    def __init__(self, opts: VesOptions) -> None:
        self.options = opts
        self._entities: dict[str, tuple[str, str]] = {}
        self.schemas = [EventSchema.builtin()]
        if opts.schema_path:
            self.schemas.append(EventSchema.load(opts.schema_path))

    def entity(self, source_name: str) -> tuple[str, str]:
        found = self._entities.get(source_name)
        if found is None:
            found = (self.options.default_entity_type, source_name)
            for rule in self.options.entities:
                ident = rule.match(source_name)
                if ident is not None:
                    found = (rule.entity_type, ident)
                    break
            if len(self._entities) < 100_000:
                self._entities[source_name] = found
        return found

    def map_events(self, events: list[Any]) -> Mapped:
        out = Mapped()
        for i, event in enumerate(events):
            try:
                for schema in self.schemas:
                    schema.check(event)
                header = event["commonEventHeader"]
                start, last = event_times(header)
                domain = header["domain"]
                if domain == "fault":
                    out.alarms.append(self.alarm(header, event["faultFields"], start, last))
                    out.alarm_events.append(event)
                elif domain == "measurement":
                    found = self.samples(header, event["measurementFields"], i, start)
                    out.samples.extend(found)
                    out.sample_events.extend([event] * len(found))
                else:
                    out.ignored += 1  # heartbeats and other domains: valid, nothing to store
            except InvalidEvent as err:
                out.reject(_kind_of(event), i, event, str(err))
                continue
            out.accepted.append(header["eventId"])
        return out

    def alarm(
        self, header: Mapping[str, Any], ff: Mapping[str, Any], start: datetime, last: datetime
    ) -> dict[str, Any]:
        sev = ff["eventSeverity"]
        cleared = sev == "NORMAL"
        key = (
            header["eventId"]
            if self.options.alarm_key == "event_id"
            else f"{header['sourceName']}:{ff['alarmCondition']}"
        )
        return {
            "id": key,
            "resource_id": header["sourceName"],
            "alarmed_object": header["sourceName"],
            "alarmed_object_type": ff.get("eventSourceType"),
            "severity": "cleared" if cleared else sev.lower(),
            "state": "cleared" if cleared else ("raised" if last == start else "updated"),
            "alarm_type": ff.get("eventCategory"),
            "probable_cause": ff["alarmCondition"],
            "specific_problem": ff["specificProblem"],
            "raised_at": start,
            "changed_at": last,
            "cleared_at": last if cleared else None,
        }

    def samples(
        self, header: Mapping[str, Any], mf: Mapping[str, Any], index: int, start: datetime
    ) -> list[dict[str, Any]]:
        etype, eid = self.entity(header["sourceName"])
        period = start.replace(microsecond=0)
        out: list[dict[str, Any]] = []
        for rule in self.options.measurements:
            raw = rule.lookup(mf)
            if raw is None:
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise InvalidEvent(f"measurementFields.{rule.field}: not a number: {raw!r}") from None
            if isinstance(raw, bool) or not math.isfinite(value):
                raise InvalidEvent(f"measurementFields.{rule.field}: expected a finite number, got {raw!r}")
            out.append(
                {
                    "entity_type": etype,
                    "entity_id": eid,
                    "kpi": rule.kpi,
                    "period_start": period,
                    "value": value * rule.scale,
                }
            )
        return out


# --- the connector -------------------------------------------------------------------------


def _error(text: str, mapped: Mapped | None = None, message_id: str = "SVC0002") -> JSONDict:
    """A VES ``requestError`` body, with which events were accepted and rejected when known."""
    body: JSONDict = {
        "requestError": {"serviceException": {"messageId": message_id, "text": text, "variables": []}}
    }
    if mapped is not None:
        body["accepted"] = mapped.accepted
        body["rejected"] = mapped.rejected
    return body


def _refused(status: int, reason: str, raw: Any, kind: str = "alarms") -> PushResponse:
    """A request refused whole: the answer says why and the body is quarantined with the reason."""
    return PushResponse(status, _error(reason), [Batch(kind, [], [Reject(raw, reason)])])


class VesConnector(Connector[VesOptions]):
    """A push-only listener: no streams to read, two routes a VES sender posts to."""

    type = "ves"
    Options = VesOptions

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        super().__init__(options, context)
        self.mapper = VesMapper(self.options)

    def streams(self) -> list[Stream]:
        return []

    def check(self) -> CheckResult:
        for var in (self.options.username_env, self.options.password_env):
            if var and not os.environ.get(var):
                return CheckResult(False, f"environment variable {var} is not set")
        return CheckResult(
            True,
            f"listening on {EVENT_ROUTE} and {BATCH_ROUTE}; "
            f"{len(self.options.measurements)} measurement rule(s)"
            + (f"; events checked against {self.options.schema_path}" if self.options.schema_path else ""),
        )

    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        raise FatalError("the VES connector only receives pushed events; it has no stream to read")

    def push_routes(self) -> list[PushRoute]:
        limit = self.options.max_body_bytes
        return [
            PushRoute(EVENT_ROUTE, self.handle_event, max_body_bytes=limit),
            PushRoute(BATCH_ROUTE, self.handle_batch, max_body_bytes=limit),
        ]

    def handle_event(self, request: PushRequest) -> PushResponse:
        return self._handle(request, "event")

    def handle_batch(self, request: PushRequest) -> PushResponse:
        return self._handle(request, "eventList")

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        if not self.options.username_env or not self.options.password_env:
            return True
        user, password = os.environ.get(self.options.username_env), os.environ.get(self.options.password_env)
        if not user or not password:
            return False  # misconfigured: refuse rather than accept anyone
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return hmac.compare_digest(given.encode(), expected.encode())

    def _handle(self, request: PushRequest, key: str) -> PushResponse:
        if not self._authorised(request.headers):
            return PushResponse(401, _error("Unauthorized", message_id="POL2000"))
        if len(request.body) > self.options.max_body_bytes:
            reason = f"body of {len(request.body)} bytes exceeds {self.options.max_body_bytes}"
            return _refused(413, reason, request.body[:65536])
        try:
            doc = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as err:
            return _refused(400, f"body is not valid JSON: {err}", request.body[:1_000_000])
        except RecursionError:
            return _refused(400, "body is nested too deeply to be an event", request.body[:65536])
        if not isinstance(doc, dict) or key not in doc:
            other, route = ("eventList", BATCH_ROUTE) if key == "event" else ("event", EVENT_ROUTE)
            hint = f" (post {other} to {route})" if isinstance(doc, dict) and other in doc else ""
            kind = _kind_of(doc.get("event")) if isinstance(doc, dict) else "alarms"
            return _refused(400, f"body must be an object with {key!r}{hint}", doc, kind)
        if key == "event":
            events = [doc["event"]]
        elif isinstance(doc["eventList"], list) and doc["eventList"]:
            events = doc["eventList"]
        else:
            return _refused(400, "eventList: expected a non-empty array", doc)
        mapped = self.mapper.map_events(events)
        batches = mapped.batches()
        if mapped.rejected:
            n = len(mapped.rejected)
            summary = "; ".join(
                f"event {r['index']} ({r['eventId'] or 'no eventId'}): {r['reason']}"
                for r in mapped.rejected[:20]
            )
            text = f"{n} of {len(events)} event(s) rejected: {summary}"
            return PushResponse(400, _error(text, mapped), batches)
        return PushResponse(
            202, {"accepted": mapped.accepted, "rejected": [], "ignored": mapped.ignored}, batches
        )
