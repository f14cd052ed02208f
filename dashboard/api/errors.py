"""How the JSON API fails: always JSON, 400 for a bad parameter, 503 when the store cannot answer.

Registered on the API's blueprints, so every route answers the same way: a parameter it cannot use
is a 400 naming it; a store that refuses connections, times out or is not migrated is a 503 (the
client may retry; nothing is guessed); an unknown route or method under ``/api/`` is a JSON 404/405;
anything else is a JSON 500 with the details in the log, never in the response.
"""

from __future__ import annotations

import logging

import flask
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from dashboard.api.params import BadParameter
from dashboard.kpi_eval import KpiReadError
from dashboard.store.db import StoreError
from dashboard.subscribers.search import SearchError

log = logging.getLogger(__name__)

#: Errors of the engines that mean "this input cannot be used", answered as 400.
INPUT_ERRORS = (BadParameter, SearchError, KpiReadError)
#: Errors that mean "the store cannot answer now", answered as 503.
STORE_ERRORS = (SQLAlchemyError, StoreError)


def _json(status: int, message: str, **extra: object) -> tuple[flask.Response, int]:
    return flask.jsonify({"error": message, **extra}), status


def bad_input(err: Exception) -> tuple[flask.Response, int]:
    if isinstance(err, BadParameter):
        return _json(400, str(err), parameter=err.name, expected=err.expected)
    return _json(400, str(err))


def store_unavailable(err: Exception) -> tuple[flask.Response, int]:
    log.warning("%s %s: the store could not answer: %s", flask.request.method, flask.request.path, err)
    response, status = _json(503, f"the store could not be read ({type(err).__name__}); try again")
    response.headers["Retry-After"] = "5"
    return response, status


def http_error(err: HTTPException) -> tuple[flask.Response, int]:
    return _json(err.code or 500, err.description or err.name)


def internal_error(err: Exception) -> tuple[flask.Response, int]:
    log.exception("%s %s failed", flask.request.method, flask.request.path)
    return _json(500, f"internal error ({type(err).__name__}); see the server log")


def register_error_handlers(target: flask.Blueprint | flask.Flask) -> None:
    """Answer every failure of ``target``'s routes as JSON."""
    target.register_error_handler(HTTPException, http_error)
    for bad in INPUT_ERRORS:
        target.register_error_handler(bad, bad_input)
    for failure in STORE_ERRORS:
        target.register_error_handler(failure, store_unavailable)
    target.register_error_handler(Exception, internal_error)


def api_not_found(server: flask.Flask, prefix: str) -> None:
    """Unknown routes and methods under ``prefix`` answer JSON (the pages keep Flask's own)."""

    def handler(err: HTTPException) -> tuple[flask.Response, int] | HTTPException:
        if flask.request.path.startswith(prefix):
            return http_error(err)
        return err

    server.register_error_handler(404, handler)
    server.register_error_handler(405, handler)
