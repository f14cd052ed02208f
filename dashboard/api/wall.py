"""``GET /api/v1/wall?have=panel:version,...``: the NOC wall's panels that changed since the screen's.

dashboard/wall.py computes the panels (through the shared cache when there is one: fifty screens
cost one store read per change, dashboard/cache.py); a store that cannot be read answers 503 with
the reason, and the screen says DATA STALE rather than guess.
"""

from __future__ import annotations

import flask

from dashboard import cache
from dashboard.context import current_context
from dashboard.guard.rules import access
from dashboard.wall import parse_have, wall_state

bp = flask.Blueprint("wall", __name__)


@bp.get("/wall")
@access("read")
def wall() -> tuple[flask.Response, int]:
    ctx = current_context()
    have = parse_have(flask.request.args.get("have"))
    body = wall_state(ctx.store, ctx.settings, ctx.catalogue, now=ctx.now(), have=have, cache=cache.of(ctx))
    response = flask.jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 200
