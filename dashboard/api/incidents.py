"""``GET /api/v1/incidents`` (the ranked queue) and ``GET /api/v1/incidents/<id>`` (one incident's impact).

Queue parameters: ``state`` (comma-separated incident states; every state by default),
``region``, ``segment`` (consumer, smb, enterprise, vip: incidents hitting such lines), ``severity``,
``owner`` and ``limit`` (1-1000, default 100). Money is in the operator's currency, named in every
response.
"""

from __future__ import annotations

import json
from typing import Any

import flask

from connectors.canonical import INCIDENT_STATES, SEVERITIES
from dashboard import cache
from dashboard.api import params
from dashboard.api.encode import JSONObject, jsonable, records
from dashboard.context import current_context
from dashboard.guard.rules import access
from dashboard.incidents import read
from dashboard.store.schema import INCIDENT_KINDS

bp = flask.Blueprint("incidents", __name__)

MAX_LIMIT = 1000
QUEUE_FIELDS = (
    "rank",
    "score",
    "severity",
    "state",
    "kind",
    "title",
    "region_id",
    "region",
    "owner",
    "opened_at",
    "resolved_at",
    "cells",
    "lines",
    "consumer_lines",
    "smb_lines",
    "enterprise_lines",
    "vip_lines",
    "accounts",
    "value",
    "revenue_at_risk_per_hour",
    "penalty_per_hour",
    "sla_accounts",
    "sla_breached",
    "sla_deadline",
    "sla_account_id",
    "sentiment",
    "churn_risk",
    "reason",
)


def queue_items(df: Any) -> list[JSONObject]:
    """The queue frame's rows as the API's incident objects (id first, breakdown parsed)."""
    return [
        {"id": rid} | rec | {"breakdown": json.loads(bd)}
        for rid, rec, bd in zip(df["incident_id"], records(df, QUEUE_FIELDS), df["breakdown"], strict=True)
    ]


@bp.get("/incidents")
@access("read")
def queue() -> flask.Response:
    args = flask.request.args
    ctx = current_context()
    limit = params.bounded_int(args, "limit", default=100, lo=1, hi=MAX_LIMIT)
    states = params.many_of(args, "state", INCIDENT_STATES)
    severity = params.one_of(args, "severity", SEVERITIES)
    kind = params.one_of(args, "kind", INCIDENT_KINDS)
    segment = params.one_of(args, "segment", (*read.SEGMENT_COLUMNS, "vip"))
    region = params.text(args, "region")
    owner = params.text(args, "owner")
    filters: dict[str, Any] = {
        "states": states,
        "region": region,
        "segment": segment,
        "severity": severity,
        "owner": owner,
        "kind": kind,
        "limit": limit,
    }

    def on_store() -> JSONObject:
        with ctx.store.connect() as conn:
            df = read.queue(conn, **filters)
            computed = read.queue_computed_at(conn)
        items = queue_items(df)
        return {
            "computed_at": jsonable(computed),
            "currency": ctx.currency,
            "count": len(items),
            "incidents": items,
        }

    # The same answer for every role that may read it: cached per filters and queue version.
    body = cache.of(ctx).read(
        "api-incidents", ("queue",), on_store, parts=(sorted(filters.items()), ctx.currency)
    )
    return flask.jsonify(body)


@bp.get("/incidents/<incident_id>")
@access("read")
def incident(incident_id: str) -> tuple[flask.Response, int]:
    ctx = current_context()
    now = ctx.now()
    with ctx.store.connect() as conn:
        inc = read.incident(conn, incident_id)
        if inc is None:
            return flask.jsonify({"error": f"no incident {incident_id[:128]!r}"}), 404
        given = read.facts(conn, inc)  # its times and cells, read once for the parts below
        queue_row = inc.pop("queue")
        body: JSONObject = {k: jsonable(v) for k, v in inc.items() if k not in ("source", "ingested_at")}
        body["currency"] = ctx.currency
        if queue_row is not None:
            breakdown = queue_row.pop("breakdown")
            body["queue"] = {k: jsonable(v) for k, v in queue_row.items()} | {"breakdown": breakdown}
        else:
            body["queue"] = None
        body["alarms"] = records(read.alarm_timeline(conn, incident_id))
        cells = read.affected_cells(conn, incident_id, given=given)
        accounts = read.affected_accounts(conn, incident_id, ctx.scoring, now=now, given=given)
        body["impact"] = {
            "cells": records(cells),
            "accounts": records(accounts.drop(columns=["incident_id"], errors="ignore")),
            "subscribers": read.count_affected_subscribers(conn, incident_id, given=given),
        }
        body["notes"] = records(read.notes(conn, incident_id))
    return flask.jsonify(body), 200
