"""``GET /healthz``: whether the store answers and how fresh each source is (503 when it does not answer)."""

from __future__ import annotations

import flask

from dashboard.api.errors import register_error_handlers
from dashboard.context import current_context
from dashboard.health import check_health

bp = flask.Blueprint("health", __name__)
register_error_handlers(bp)


@bp.get("/healthz")
def healthz() -> tuple[flask.Response, int]:
    ctx = current_context()
    body, code = check_health(ctx.store, ctx.settings, now=ctx.now())
    response = flask.jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, code
