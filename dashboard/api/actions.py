"""The playbooks' outbox over HTTP: ``GET /api/v1/actions`` (the timeline), ``POST
/api/v1/actions/<id>/<verb>`` (approve, reject, cancel, resend), and the customers' signed links
``GET /offers/<key>/<verb>`` (accept an offer, stop messages).

The timeline is masked as the Actions page is (:mod:`dashboard.playbooks.read`: addresses and
message text, for every role). A change is made by :func:`dashboard.playbooks.decide`, which
audits it under the caller's name: 404 for an action that does not exist, 409 with the reason for
one whose state does not allow the change.

The offer links are for customers, who have no login: their rule is ``public``, and the signature
in ``?t=`` is what lets them in. Every invalid link (unknown key, wrong signature, an offer no
longer open) answers the same 404 page, so a link says nothing about keys it does not sign. They
are rate-limited per client address under the login form's limit (``security.login_rate_limit``).
"""

from __future__ import annotations

import logging
import re

import flask
from markupsafe import escape
from sqlalchemy.exc import SQLAlchemyError

from dashboard.api import params
from dashboard.api.encode import JSONObject, jsonable, records
from dashboard.auth.keys import stored_secret
from dashboard.context import current_actor, current_context
from dashboard.guard import limits, session
from dashboard.guard.rules import access
from dashboard.playbooks import LINK_SECRET, TRANSITIONS, OutboxError, check_link, decide, follow_link
from dashboard.playbooks import read as outbox
from dashboard.store.db import StoreError
from dashboard.store.schema import ACTION_STATES

log = logging.getLogger(__name__)

bp = flask.Blueprint("actions", __name__)

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_NOTE = 1000
#: The longest action id a path may carry (the column is a 64-bit integer at most).
MAX_ID = 2**63 - 1
VERBS = tuple(TRANSITIONS)
FIELDS = outbox.TIMELINE_COLUMNS


@bp.get("/actions")
@access("read")
def timeline() -> flask.Response:
    args = flask.request.args
    ctx = current_context()
    limit = params.bounded_int(args, "limit", default=DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)
    states = params.many_of(args, "state", ACTION_STATES)
    playbook = params.text(args, "playbook", max_length=64)
    channel = params.text(args, "channel", max_length=16)
    incident = params.text(args, "incident")
    subscriber = params.text(args, "subscriber")
    with ctx.store.connect() as conn:
        df = outbox.action_timeline(
            conn,
            incident_id=incident,
            subscriber_id=subscriber,
            states=states,
            playbook=playbook,
            channel=channel,
            limit=limit,
        )
    items: list[JSONObject] = records(df, FIELDS)
    return flask.jsonify({"currency": ctx.currency, "count": len(items), "actions": items})


def _action_id(text: str) -> int | None:
    if len(text) > 19 or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def _note() -> str | None:
    """The optional ``note`` of the request's JSON body; BadParameter for one that cannot be used."""
    if not flask.request.get_data(cache=True):
        return None
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict):
        raise params.BadParameter("body", 'a JSON object such as {"note": "..."}')
    note = body.get("note")
    if note is None:
        return None
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise params.BadParameter("note", f"text of at most {MAX_NOTE} characters", note)
    return note.strip() or None


@bp.post("/actions/<action_id>/<verb>")
@access("act")
def change(action_id: str, verb: str) -> tuple[flask.Response, int]:
    ctx = current_context()
    number = _action_id(action_id)
    if number is None:
        return flask.jsonify({"error": f"no action {action_id[:40]!r}"}), 404
    if verb not in VERBS:
        return flask.jsonify({"error": f"no change {verb[:40]!r}: expected one of {', '.join(VERBS)}"}), 404
    note = _note()
    try:
        state = decide(ctx.store, number, verb, actor=current_actor(), now=ctx.now(), note=note)
    except OutboxError as err:
        with ctx.store.connect() as conn:
            exists = outbox.action(conn, number) is not None
        return flask.jsonify({"error": str(err)}), 409 if exists else 404
    with ctx.store.connect() as conn:
        row = outbox.action(conn, number)
    shown = {k: jsonable(v) for k, v in (row or {}).items() if k in FIELDS}
    return flask.jsonify({"id": number, "state": state, "action": shown}), 200


# --- The customers' signed links -----------------------------------------------------------------

offers = flask.Blueprint("offers", __name__)

#: An action key: 64 hex digits (sha256).
_KEY = re.compile(r"^[0-9a-f]{64}$")
NOT_VALID = "This link is not valid. It may have been mistyped or may no longer be in use."


def _page(message: str, status: int, *, button: str | None = None) -> flask.Response:
    form = ""
    if button:
        # Posts back to this very URL (its signature in the query string); same origin by construction.
        label = escape(button)
        form = f'<form method="post"><button type="submit" class="btn btn-primary">{label}</button></form>'
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vantage</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<link rel="stylesheet" href="/assets/00-bootstrap-darkly.min.css">
<link rel="stylesheet" href="/assets/10-vantage.css"></head>
<body class="vt-login-body"><main class="vt-login vt-offer">
<p class="vt-offer-message">{escape(message)}</p>{form}</main></body></html>"""
    response = flask.Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


#: The button under each question.
BUTTONS = {"accept": "Yes, accept the offer", "optout": "Yes, stop the messages"}


@offers.route("/offers/<key>/<verb>", methods=["GET", "POST"])
@access("public")
def follow(key: str, verb: str) -> flask.Response:
    """GET asks (mail scanners and link previews open links too); POST, the customer's button, acts."""
    ctx = current_context()
    address = session.client() or "unknown"
    if not limits.hit("login", f"offer-link:{address}"):
        log.warning("offer links: rate limit reached for %s", address)
        return _page("Too many requests; wait a minute and try again.", 429)
    token = flask.request.args.get("t", "")
    if not _KEY.match(key) or verb not in ("accept", "optout") or len(token) > 128:
        return _page(NOT_VALID, 404)
    try:
        secret = stored_secret(ctx.store, LINK_SECRET, now=ctx.now())
        if flask.request.method == "GET":
            return _page(check_link(ctx.store, key, verb, token, secret=secret), 200, button=BUTTONS[verb])
        message = follow_link(ctx.store, key, verb, token, secret=secret, now=ctx.now())
    except OutboxError as err:
        # A wrong signature and an unknown key read the same; an offer no longer open is said so
        # only to whoever holds its signed link.
        return _page(NOT_VALID if "not valid" in str(err) else f"Sorry: {err}.", 404)
    except (SQLAlchemyError, StoreError) as err:
        log.warning("offer links: the store could not answer: %s", type(err).__name__)
        response = _page("We cannot answer just now; please try again in a few minutes.", 503)
        response.headers["Retry-After"] = "60"
        return response
    return _page(message, 200)
