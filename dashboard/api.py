"""The northbound JSON API, read-only for now: ``/api/v1/incidents`` and ``/api/v1/incidents/<id>``.

Parameters are validated and a bad one answers 400 with what was expected; times are ISO 8601 UTC
with a ``Z``; money is in the operator's currency, named in every response.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import flask
import pandas as pd

from dashboard.config import Settings
from dashboard.incidents import read
from dashboard.ingest.runner import utcnow
from dashboard.kpis import Scoring
from dashboard.store.db import Store
from dashboard.store.schema import INCIDENT_STATES, SEVERITIES

MAX_LIMIT = 1000
QUEUE_FIELDS = (
    "rank",
    "score",
    "severity",
    "state",
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


class BadRequest(ValueError):
    pass


def jsonable(v: Any) -> Any:
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp | datetime):
        return pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 4)
    if hasattr(v, "item"):
        return jsonable(v.item())
    return v


def records(df: pd.DataFrame, fields: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    cols = [c for c in (fields or tuple(df.columns)) if c in df.columns]
    return [
        {c: jsonable(v) for c, v in zip(cols, row, strict=True)} for row in df[cols].itertuples(index=False)
    ]


def _limit(args: Any, default: int = 100) -> int:
    raw = args.get("limit", str(default))
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {raw!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {value}")
    return value


def _states(args: Any) -> list[str] | None:
    raw = args.get("state")
    if not raw:
        return None
    states = [s.strip().lower() for s in raw.split(",") if s.strip()]
    bad = [s for s in states if s not in INCIDENT_STATES]
    if bad:
        raise BadRequest(
            f"state: expected one or more of {', '.join(INCIDENT_STATES)} (comma-separated), got {bad[0]!r}"
        )
    return states


def _queue_item(row: dict[str, Any], breakdown: str) -> dict[str, Any]:
    return row | {"breakdown": json.loads(breakdown)}


def register_api(server: flask.Flask, store: Store, settings: Settings, scoring: Scoring) -> None:
    """Mount the JSON routes on the Flask server."""

    @server.errorhandler(BadRequest)
    def _bad(err: BadRequest) -> tuple[flask.Response, int]:
        return flask.jsonify({"error": str(err)}), 400

    @server.get("/api/v1/incidents")
    def _incidents() -> flask.Response:
        args = flask.request.args
        limit = _limit(args)
        severity = (args.get("severity") or "").lower() or None
        if severity and severity not in SEVERITIES:
            raise BadRequest(f"severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
        segment = (args.get("segment") or "").lower() or None
        if segment and segment not in (*read.SEGMENT_COLUMNS, "vip"):
            raise BadRequest(f"segment: expected consumer, smb, enterprise or vip, got {segment!r}")
        with store.connect() as conn:
            df = read.queue(
                conn,
                states=_states(args),
                region=args.get("region") or None,
                segment=segment,
                severity=severity,
                owner=args.get("owner") or None,
                limit=limit,
            )
            computed = read.queue_computed_at(conn)
        items = [
            {"id": rid} | _queue_item(rec, bd)
            for rid, rec, bd in zip(
                df["incident_id"], records(df, QUEUE_FIELDS), df["breakdown"], strict=True
            )
        ]
        return flask.jsonify(
            {
                "computed_at": jsonable(computed),
                "currency": settings.currency,
                "count": len(items),
                "incidents": items,
            }
        )

    @server.get("/api/v1/incidents/<incident_id>")
    def _incident(incident_id: str) -> tuple[flask.Response, int]:
        now = utcnow()
        with store.connect() as conn:
            inc = read.incident(conn, incident_id)
            if inc is None:
                return flask.jsonify({"error": f"no incident {incident_id!r}"}), 404
            queue_row = inc.pop("queue")
            body: dict[str, Any] = {
                k: jsonable(v) for k, v in inc.items() if k not in ("source", "ingested_at")
            }
            body["currency"] = settings.currency
            if queue_row is not None:
                breakdown = queue_row.pop("breakdown")
                body["queue"] = {k: jsonable(v) for k, v in queue_row.items()} | {"breakdown": breakdown}
            else:
                body["queue"] = None
            body["alarms"] = records(read.alarm_timeline(conn, incident_id))
            cells = read.affected_cells(conn, incident_id)
            accounts = read.affected_accounts(conn, incident_id, scoring, now=now)
            n_subs = read.count_affected_subscribers(conn, incident_id)
            body["impact"] = {
                "cells": records(cells),
                "accounts": records(accounts.drop(columns=["incident_id"], errors="ignore")),
                "subscribers": n_subs,
            }
            body["notes"] = records(read.notes(conn, incident_id))
        return flask.jsonify(body), 200
