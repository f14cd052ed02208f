"""``GET /healthz``: whether the store answers and how fresh each source is (503 when it does not answer).

Anyone may ask (a load balancer has no login): without credentials the answer is the verdict alone,
``{"status": ...}`` with its status code; a user or token that may read gets the whole report. While
the store does not answer, a token or a login cannot be checked (they live in the store): such a
caller gets the verdict alone at once rather than a second wait on the store."""

from __future__ import annotations

import flask
from sqlalchemy.exc import SQLAlchemyError

from dashboard.api.errors import register_error_handlers
from dashboard.context import Context, current_context
from dashboard.guard import session
from dashboard.guard.rules import access
from dashboard.health import HEALTH_TIMEOUT_S, check_health
from dashboard.store.db import StoreError, statement_limit

bp = flask.Blueprint("health", __name__)
register_error_handlers(bp)


@bp.get("/healthz")
@access("public")
def healthz() -> tuple[flask.Response, int]:
    ctx = current_context()
    body, code = check_health(ctx.store, ctx.settings, now=ctx.now())
    if not _authenticated(ctx, store_down=code >= 500):
        # A load balancer needs only the verdict; which sources exist and how they fare is for users.
        body = {"status": body.get("status")}
    response = flask.jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, code


def _authenticated(ctx: Context, *, store_down: bool) -> bool:
    if store_down and session.reads_store():
        return False
    try:
        with statement_limit(HEALTH_TIMEOUT_S):
            principal = session.resolve(ctx)
    except (session.BadCredentials, SQLAlchemyError, StoreError):
        return False
    return principal is not None and principal.may("read")
