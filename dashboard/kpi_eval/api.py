"""``GET /api/v1/kpis``: the KPI catalogue with each KPI's current value, status and recent values.

``?level=`` (network by default; cell, site, region, segment) and ``?entity=`` (required below the
network) choose whose values; a bad parameter answers 400 with what was expected. KPIs are
aggregates over lines, so no personal data is involved.
"""

from __future__ import annotations

from typing import Any

import flask

from dashboard.api import jsonable
from dashboard.config import Settings
from dashboard.kpi_eval import read
from dashboard.kpis import Catalogue, KpiDefinition
from dashboard.store.db import Store
from dashboard.store.schema import KPI_LEVELS, SEGMENTS


def _definition(k: KpiDefinition) -> dict[str, Any]:
    return {
        "name": k.name,
        "label": k.label,
        "unit": k.unit,
        "description": k.description,
        "domain": k.domain,
        "type": k.type,
        "formula": k.formula if k.type != "derived" else None,
        "expression": k.expression,
        "aggregate": k.aggregate if k.type == "simple" and k.source == "samples" else None,
        "grain_s": k.grain,
        "direction": k.direction,
        "no_data": k.no_data,
        "headline": k.headline,
        "step": k.step,
        "drives": [{"kpi": d.kpi, "direction": d.direction, "max_lag_s": d.max_lag_s} for d in k.drives],
    }


def _params(args: Any) -> tuple[str, str] | str:
    """(level, entity) or the error message."""
    level = (args.get("level") or "network").strip().lower()
    if level not in KPI_LEVELS:
        return f"level: expected one of {', '.join(KPI_LEVELS)}, got {level!r}"
    entity = (args.get("entity") or "").strip()
    if level == "network":
        if entity not in ("", "all"):
            return f"entity: the network level has one entity, 'all'; got {entity!r}"
        return level, "all"
    if not entity:
        return f"entity: required with level={level} (a {level} id)"
    if level == "segment" and entity not in SEGMENTS:
        return f"entity: expected a segment of {', '.join(SEGMENTS)}, got {entity!r}"
    if len(entity) > 128:
        return "entity: expected an id of at most 128 characters"
    return level, entity


def register_kpi_api(server: flask.Flask, store: Store, settings: Settings, catalogue: Catalogue) -> None:
    """Mount ``/api/v1/kpis`` on the Flask server."""

    @server.get("/api/v1/kpis")
    def _kpis() -> tuple[flask.Response, int]:
        parsed = _params(flask.request.args)
        if isinstance(parsed, str):
            return flask.jsonify({"error": parsed}), 400
        level, entity = parsed
        with store.connect() as conn:
            cards = {c["name"]: c for c in read.current(conn, catalogue, level=level, entity_id=entity)}
        items = []
        for k in catalogue.kpis:
            card = cards[k.name]
            items.append(
                _definition(k)
                | {
                    "thresholds": card["thresholds"],
                    "value": jsonable(card["value"]),
                    "status": card["status"],
                    "period_start": jsonable(card["period_start"]),
                    "since": jsonable(card["since"]),
                    "sparkline": [jsonable(v) for v in card["sparkline"]],
                }
            )
        body = {
            "level": level,
            "entity_id": entity,
            "currency": settings.currency,
            "count": len(items),
            "kpis": items,
        }
        return flask.jsonify(body), 200
