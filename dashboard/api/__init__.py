"""The JSON API: every route a Flask blueprint, one parameter module, one way to fail.

``/api/v1/incidents``, ``/api/v1/subscribers``, ``/api/v1/kpis``, ``/api/v1/linkage``,
``/api/v1/wall``, ``/api/v1/audit`` and ``/api/v1/actions`` are mounted under one parent blueprint
whose error handlers (dashboard/api/errors.py) answer every failure as JSON; ``/healthz`` stands
beside them. Routes read
the serving app's :class:`~dashboard.context.Context`; they never build a store or load settings
themselves.
"""

from __future__ import annotations

import flask

from dashboard.api import actions, audit, health, incidents, kpis, linkage, openapi, subscribers, wall
from dashboard.api.errors import api_not_found, register_error_handlers

PREFIX = "/api/v1"
#: Each route module's blueprint, mounted under PREFIX.
ROUTES = (incidents.bp, subscribers.bp, kpis.bp, linkage.bp, wall.bp, audit.bp, actions.bp, openapi.bp)


def register(server: flask.Flask) -> None:
    """Mount the API and /healthz on ``server`` (its Context must be installed: dashboard.context.install)."""
    api = flask.Blueprint("api", __name__, url_prefix=PREFIX)
    for bp in ROUTES:
        api.register_blueprint(bp)
    register_error_handlers(api)
    server.register_blueprint(api)
    server.register_blueprint(health.bp)
    api_not_found(server, PREFIX + "/")


__all__ = ["PREFIX", "ROUTES", "register"]
