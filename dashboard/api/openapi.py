"""``GET /api/v1/openapi.json``: the API described in OpenAPI 3.1, built from the same vocabularies
the routes check their parameters against, so the description cannot drift from them.

``tests/test_api_contract.py`` keeps it true: every route is described and every described route
exists, and a property-based run (schemathesis) sends generated requests to every operation and
checks each answer is not a 5xx and matches the described status codes and shapes.
"""

from __future__ import annotations

from typing import Any

import flask

from connectors.canonical import INCIDENT_STATES, SEVERITIES
from dashboard.api import actions as action_routes
from dashboard.api import audit as audit_routes
from dashboard.api import incidents as incident_routes
from dashboard.api import subscribers as subscriber_routes
from dashboard.context import current_catalogue
from dashboard.guard.rules import access
from dashboard.incidents import read
from dashboard.kpis import Catalogue
from dashboard.linkage.estimate import STRENGTHS
from dashboard.store.schema import ACTION_STATES, INCIDENT_KINDS, KPI_LEVELS
from dashboard.subscribers.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    RISK_BANDS,
    SEGMENT_FILTERS,
    SENTIMENT_BANDS,
    SORTS,
)

bp = flask.Blueprint("openapi", __name__)

JSON = "application/json"
OBJECT: dict[str, Any] = {"type": "object"}


def _query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
        "description": description,
    }


def _csv_of(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """A comma-separated list of known values, as the routes read ``state=open,acknowledged``."""
    alternatives = "|".join(values)
    return {"type": "string", "pattern": f"^({alternatives})(,({alternatives}))*$"}


def _ok(description: str, schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


ERRORS: dict[str, Any] = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "503": {"$ref": "#/components/responses/StoreUnavailable"},
}


def _operation(summary: str, parameters: list[dict[str, Any]], responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": parameters, "responses": {**responses, **ERRORS}}}


def _incident_schema() -> dict[str, Any]:
    fields: dict[str, Any] = {name: {} for name in incident_routes.QUEUE_FIELDS}
    fields |= {
        "id": {"type": "string"},
        "rank": {"type": ["integer", "number", "null"]},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "state": {"type": "string"},
        "kind": {"type": ["string", "null"], "enum": [*INCIDENT_KINDS, None]},
        "reason": {"type": ["string", "null"]},
    }
    return {"type": "object", "required": ["id", "severity", "state"], "properties": fields}


def _wall_panels_schema() -> dict[str, Any]:
    """The wall's panels that carry the usual-band figures: each KPI tile's count of cells and sites
    outside their usual band (null for a KPI without an anomaly rule), the detected incidents among
    the open ones, and each queue row's kind (the other panels are described in docs/dashboard.md)."""
    count = {"type": "integer", "minimum": 0}
    outside = {
        "type": ["object", "null"],
        "required": ["cell", "site"],
        "properties": {"cell": count, "site": count},
    }
    tile = {
        "type": "object",
        "required": ["name", "label", "unit", "value", "status", "spark", "outside"],
        "properties": {"name": {"type": "string"}, "status": {"type": "string"}, "outside": outside},
    }
    kind = {"type": ["string", "null"], "enum": [*INCIDENT_KINDS, None]}
    row = {
        "type": "object",
        "required": ["id", "kind"],
        "properties": {"id": {"type": "string"}, "kind": kind},
    }
    return {
        "type": "object",
        "properties": {
            "kpis": {"type": "array", "items": tile},
            "money": {
                "type": "object",
                "required": ["rar", "incidents", "breached", "detected", "currency"],
                "properties": {"incidents": count, "breached": count, "detected": count},
            },
            "queue": {"type": "array", "items": row},
            "alerts": {"type": "array", "items": row},
        },
    }


def _audit_filters() -> list[dict[str, Any]]:
    """The audit log's filters, shared by /api/v1/audit and its CSV export."""
    time = {"type": "string", "maxLength": audit_routes.MAX_TIME_LENGTH}
    return [
        _query("actor", {"type": "string", "maxLength": audit_routes.MAX_NAME}, "who acted (a user name)"),
        _query(
            "action",
            {"type": "string", "maxLength": audit_routes.MAX_ACTION},
            "an action or its family (login matches login and login.failed)",
        ),
        _query("target", {"type": "string", "maxLength": audit_routes.MAX_NAME}, "a target id"),
        _query("since", time, "from this ISO 8601 time, included (UTC without a zone)"),
        _query("until", time, "to this ISO 8601 time, excluded (UTC without a zone)"),
    ]


def _audit_record_schema() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "type": "object",
        "required": list(audit_routes.FIELDS),
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "target_type": nullable_text,
            "target_id": nullable_text,
            "detail": {"type": ["object", "null"]},
        },
    }


def _action_schema() -> dict[str, Any]:
    """One action of the outbox as the timeline shows it (address and text masked)."""
    text = {"type": ["string", "null"]}
    number = {"type": ["number", "null"]}
    fields: dict[str, Any] = {name: {} for name in action_routes.FIELDS}
    fields |= {
        "id": {"type": "integer"},
        "playbook": {"type": "string"},
        "step": {"type": "string"},
        "channel": {"type": "string"},
        "target": {"type": "string"},
        "state": {"type": "string", "enum": list(ACTION_STATES)},
        "address": text,
        "subject": text,
        "reason": text,
        "reference": text,
        "cost": number,
        "promised": number,
    }
    return {"type": "object", "required": ["id", "playbook", "step", "state"], "properties": fields}


def _action_paths() -> dict[str, Any]:
    """The outbox: its timeline, and the changes people make to one action."""
    change = {
        "post": {
            "summary": "Approve, reject, cancel or resend one action (audited under the caller's name)",
            "parameters": [
                _path("action_id", "an action id of the timeline"),
                {
                    "name": "verb",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": list(action_routes.VERBS)},
                    "description": "approve or reject (awaiting approval), cancel (queued or awaiting "
                    "approval), resend (failed or uncertain)",
                },
            ],
            "requestBody": {
                "required": False,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"note": {"type": "string", "maxLength": action_routes.MAX_NOTE}},
                        }
                    }
                },
            },
            "responses": {
                "200": _ok(
                    "The change was made: the action's new state and the action",
                    {
                        "type": "object",
                        "required": ["id", "state", "action"],
                        "properties": {
                            "id": {"type": "integer"},
                            "state": {"type": "string", "enum": list(ACTION_STATES)},
                            "action": _action_schema(),
                        },
                    },
                ),
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": {"$ref": "#/components/responses/Conflict"},
                **ERRORS,
            },
        }
    }
    timeline = _operation(
        "The playbooks' actions, newest first, addresses and message text masked",
        [
            _query("state", _csv_of(ACTION_STATES), "states, comma-separated (default: every state)"),
            _query("playbook", {"type": "string", "maxLength": 64}, "a playbook's name"),
            _query("channel", {"type": "string", "maxLength": 16}, "email, sms, ticket, alarm, chat..."),
            _query("incident", {"type": "string", "maxLength": 128}, "the incident an action is about"),
            _query("subscriber", {"type": "string", "maxLength": 128}, "the line an action is about"),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": action_routes.MAX_LIMIT},
                f"rows (default {action_routes.DEFAULT_LIMIT})",
            ),
        ],
        {
            "200": _ok(
                "Actions",
                {
                    "type": "object",
                    "required": ["actions", "count", "currency"],
                    "properties": {
                        "actions": {"type": "array", "items": _action_schema()},
                        "count": {"type": "integer"},
                        "currency": {"type": "string"},
                    },
                },
            )
        },
    )
    return {"/api/v1/actions": timeline, "/api/v1/actions/{action_id}/{verb}": change}


def document(catalogue: Catalogue) -> dict[str, Any]:
    """The OpenAPI 3.1 description of /api/v1 and /healthz."""
    kpi_names = [k.name for k in catalogue.kpis]
    paths = {
        "/api/v1/incidents": _operation(
            "The value-weighted incident queue, ranked, with the reason for each rank",
            [
                _query(
                    "limit", {"type": "integer", "minimum": 1, "maximum": incident_routes.MAX_LIMIT}, "rows"
                ),
                _query(
                    "state", _csv_of(INCIDENT_STATES), "states, comma-separated (default: open,acknowledged)"
                ),
                _query("severity", {"type": "string", "enum": list(SEVERITIES)}, "one severity"),
                _query(
                    "kind",
                    {"type": "string", "enum": list(INCIDENT_KINDS)},
                    "alarm (opened by alarms) or detected (by KPI anomalies no alarm explains)",
                ),
                _query("segment", {"type": "string", "enum": [*read.SEGMENT_COLUMNS, "vip"]}, "lines hit"),
                _query("region", {"type": "string", "maxLength": 128}, "a region id or name"),
                _query("owner", {"type": "string", "maxLength": 128}, "the assignee"),
            ],
            {
                "200": _ok(
                    "The queue",
                    {
                        "type": "object",
                        "required": ["incidents"],
                        "properties": {"incidents": {"type": "array", "items": _incident_schema()}},
                    },
                )
            },
        ),
        "/api/v1/incidents/{incident_id}": {
            **_operation(
                "One incident: its ranking, breakdown, accounts, affected subscribers and actions",
                [_path("incident_id", "an incident id of the queue")],
                {"200": _ok("The incident", OBJECT), "404": {"$ref": "#/components/responses/NotFound"}},
            )
        },
        "/api/v1/subscribers": _operation(
            "Subscriber search and filtered lists, most valuable first, personal data masked by role",
            [
                _query("q", {"type": "string", "maxLength": 256}, "a number (or its end), a name or an id"),
                _query(
                    "segment", {"type": "string", "enum": list(SEGMENT_FILTERS)}, "account segment or vip"
                ),
                _query("region", {"type": "string", "maxLength": 128}, "region id"),
                _query("plan", {"type": "string", "maxLength": 128}, "tariff plan"),
                _query("risk", {"type": "string", "enum": list(RISK_BANDS)}, "churn risk band"),
                _query(
                    "sentiment", {"type": "string", "enum": list(SENTIMENT_BANDS)}, "30-day sentiment band"
                ),
                _query("affected", {"type": "string", "enum": ["true", "false"]}, "hit by an open incident"),
                _query("account", {"type": "string", "maxLength": 128}, "account id"),
                _query("sort", {"type": "string", "enum": list(SORTS)}, "order"),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    f"rows (default {DEFAULT_LIMIT})",
                ),
                _query(
                    "cursor", {"type": "string", "maxLength": 512}, "the next_cursor of the previous page"
                ),
            ],
            {"200": _ok("A page of subscribers", OBJECT)},
        ),
        "/api/v1/subscribers.csv": _operation(
            "The whole filtered list as CSV, masked",
            [
                _query("q", {"type": "string", "maxLength": 256}, "as for /api/v1/subscribers"),
                _query(
                    "segment", {"type": "string", "enum": list(SEGMENT_FILTERS)}, "account segment or vip"
                ),
                _query("sort", {"type": "string", "enum": list(SORTS)}, "order"),
            ],
            {"200": _ok("CSV", {"type": "string"}, "text/csv")},
        ),
        "/api/v1/subscribers/{subscriber_id}": _operation(
            "One subscriber's whole story (360 view), masked by role",
            [
                _path("subscriber_id", "a subscriber id"),
                _query(
                    "days",
                    {"type": "integer", "minimum": 1, "maximum": subscriber_routes.MAX_DAYS},
                    "KPI window",
                ),
                _query(
                    "unmask", {"type": "string", "enum": ["true", "false", "1", "0"]}, "ask for clear values"
                ),
            ],
            {
                "200": _ok("The story", OBJECT),
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound"},
            },
        ),
        "/api/v1/kpis": _operation(
            "The catalogue's KPIs at one level and entity, with status and history",
            [
                _query(
                    "level", {"type": "string", "enum": list(KPI_LEVELS)}, "roll-up level (default network)"
                ),
                _query("entity", {"type": "string", "maxLength": 256}, "the entity at that level"),
            ],
            {"200": _ok("KPIs", OBJECT), "404": {"$ref": "#/components/responses/NotFound"}},
        ),
        "/api/v1/linkage": _operation(
            "Measured links between network and business KPIs",
            [
                _query("scope", {"type": "string", "maxLength": 160}, "all, region:<id> or segment:<name>"),
                _query("strength", _csv_of(STRENGTHS), "strengths, comma-separated"),
                _query("kpi", {"type": "string", "enum": kpi_names}, "a KPI as driver or target"),
                _query(
                    "evidence", {"type": "string", "enum": ["true", "false", "1", "0"]}, "add the evidence"
                ),
            ],
            {
                "200": _ok(
                    "Links",
                    {
                        "type": "object",
                        "required": ["links", "count"],
                        "properties": {
                            "links": {"type": "array", "items": OBJECT},
                            "count": {"type": "integer"},
                        },
                    },
                )
            },
        ),
        "/api/v1/wall": _operation(
            "The NOC wall's panels that changed since the versions the screen has",
            [_query("have", {"type": "string", "maxLength": 2048}, "panel:version,... the screen holds")],
            {
                "200": _ok(
                    "Changed panels",
                    {
                        "type": "object",
                        "required": ["now", "versions", "panels", "stale"],
                        "properties": {"panels": _wall_panels_schema()},
                    },
                )
            },
        ),
        "/api/v1/audit": _operation(
            "The audit log, newest first, a page at a time (admins only)",
            [
                *_audit_filters(),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": audit_routes.MAX_LIMIT},
                    f"records per page (default {audit_routes.DEFAULT_LIMIT})",
                ),
                _query(
                    "before",
                    {"type": "integer", "minimum": 1, "maximum": audit_routes.MAX_ID},
                    "the next of the previous page: records older than it",
                ),
            ],
            {
                "200": _ok(
                    "A page of records and how many match",
                    {
                        "type": "object",
                        "required": ["records", "count", "next"],
                        "properties": {
                            "records": {"type": "array", "items": _audit_record_schema()},
                            "count": {"type": "integer"},
                            "next": {"type": ["integer", "null"]},
                        },
                    },
                ),
                "403": {"$ref": "#/components/responses/Forbidden"},
            },
        ),
        "/api/v1/audit.csv": _operation(
            "Every matching audit record as CSV, newest first (admins only)",
            _audit_filters(),
            {
                "200": _ok("CSV", {"type": "string"}, "text/csv"),
                "403": {"$ref": "#/components/responses/Forbidden"},
            },
        ),
        **_action_paths(),
        "/healthz": {
            "get": {
                "summary": "Whether the store answers, how fresh each source is, the preparation",
                "parameters": [],
                "responses": {
                    "200": _ok(
                        "Up (ok or degraded)", {"type": "object", "required": ["status", "store", "sources"]}
                    ),
                    "503": _ok("The store does not answer", {"type": "object", "required": ["status"]}),
                },
            }
        },
    }
    error = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Vantage API",
            "version": "1",
            "description": "JSON API of the Vantage command centre: reads, and the changes people make "
            "to the playbooks' outbox (approve, reject, cancel, resend). Errors are JSON: 400 names "
            "the parameter and what was expected, 503 means the store cannot answer now (retry).",
        },
        "paths": paths,
        "components": {
            "responses": {
                "BadRequest": _ok("A parameter that cannot be used", error),
                "NotFound": _ok("No such resource", error),
                "Forbidden": _ok(
                    "The caller's role may not see or do this (clear personal data, the audit log, "
                    "changes to the outbox)",
                    error,
                ),
                "Conflict": _ok("The resource's state does not allow this change; the error says why", error),
                "StoreUnavailable": _ok("The store cannot answer now; see Retry-After", error),
            }
        },
    }


@bp.get("/openapi.json")
@access("public")
def openapi() -> flask.Response:
    return flask.jsonify(document(current_catalogue()))
