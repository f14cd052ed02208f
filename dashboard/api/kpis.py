"""``GET /api/v1/kpis``: the KPI catalogue with each KPI's current value, status and recent values.

``?level=`` (network by default; cell, site, region, segment) and ``?entity=`` (required below the
network) choose whose values. KPIs are aggregates over lines, so no personal data is involved.
"""

from __future__ import annotations

import flask

from connectors.canonical import SEGMENTS
from dashboard.api import params
from dashboard.api.encode import JSONObject, jsonable
from dashboard.context import current_context
from dashboard.guard.rules import access
from dashboard.kpi_eval import read
from dashboard.kpis import KpiDefinition
from dashboard.store.schema import KPI_LEVELS

bp = flask.Blueprint("kpis", __name__)


def definition(k: KpiDefinition) -> JSONObject:
    """What the catalogue says of one KPI."""
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


def _scope(args: params.Args) -> tuple[str, str]:
    level = params.one_of(args, "level", KPI_LEVELS, default="network") or "network"
    entity = params.text(args, "entity")
    if level == "network":
        if entity not in (None, "all"):
            raise params.BadParameter("entity", "'all' (the network level has one entity)", entity)
        return level, "all"
    if entity is None:
        raise params.BadParameter("entity", f"a {level} id (required with level={level})")
    if level == "segment" and entity not in SEGMENTS:
        raise params.BadParameter("entity", f"a segment of {', '.join(SEGMENTS)}", entity)
    return level, entity


@bp.get("/kpis")
@access("read")
def kpis() -> tuple[flask.Response, int]:
    ctx = current_context()
    level, entity = _scope(flask.request.args)
    with ctx.store.connect() as conn:
        cards = {c["name"]: c for c in read.current(conn, ctx.catalogue, level=level, entity_id=entity)}
    items = []
    for k in ctx.catalogue.kpis:
        card = cards[k.name]
        items.append(
            definition(k)
            | {
                "thresholds": card["thresholds"],
                "value": jsonable(card["value"]),
                "status": card["status"],
                "period_start": jsonable(card["period_start"]),
                "since": jsonable(card["since"]),
                "sparkline": [jsonable(v) for v in card["sparkline"]],
            }
        )
    body = {"level": level, "entity_id": entity, "currency": ctx.currency, "count": len(items), "kpis": items}
    return flask.jsonify(body), 200
