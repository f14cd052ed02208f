"""The login page, log-out, and the kiosk link that opens a wall with a read-only token.

The login page is plain server-rendered HTML (no script), so it works before anything else is
allowed. Its form carries the session's CSRF token and is rate-limited per client address; a wrong
name, a wrong password, a locked or a disabled account all get the same answer.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlencode

import flask
from flask.typing import ResponseReturnValue
from markupsafe import escape
from sqlalchemy.exc import SQLAlchemyError

from dashboard.auth import audit
from dashboard.auth import users as users_
from dashboard.context import current_context
from dashboard.guard import limits, session
from dashboard.guard.rules import access
from dashboard.store.db import StoreError

log = logging.getLogger(__name__)

bp = flask.Blueprint("auth", __name__)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


def _page(message: str | None = None, status: int = 200) -> flask.Response:
    ctx = current_context()
    nxt = safe_next(flask.request.values.get("next"))
    oidc = ctx.settings.security.oidc
    sso = (
        f'<p class="vt-login-sso"><a class="btn btn-outline-light w-100" '
        f'href="/login/oidc?{escape(urlencode({"next": nxt}))}">{escape(oidc.label)}</a></p>'
        if oidc is not None
        else ""
    )
    note = f'<div class="alert alert-danger" role="alert">{escape(message)}</div>' if message else ""
    ended = flask.g.get("vantage_session_ended")
    if ended and not message:
        note = '<div class="alert alert-info" role="status">Your session ended; please log in again.</div>'
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · Vantage</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/00-bootstrap-darkly.min.css">
<link rel="stylesheet" href="/assets/10-vantage.css"></head>
<body class="vt-login-body"><main class="vt-login">
<h1 class="vt-brand">Vantage</h1>{note}
<form method="post" action="/login" autocomplete="on">
<input type="hidden" name="csrf" value="{escape(session.csrf_token())}">
<input type="hidden" name="next" value="{escape(nxt)}">
<label class="form-label" for="vt-user">User name</label>
<input class="form-control" id="vt-user" name="username" autocomplete="username" required autofocus>
<label class="form-label mt-2" for="vt-password">Password</label>
<input class="form-control" id="vt-password" name="password" type="password"
 autocomplete="current-password" required>
<button class="btn btn-primary w-100 mt-3" id="vt-login-submit" type="submit">Log in</button>
</form>{sso}</main></body></html>"""
    response = flask.Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/login")
@access("public")
def login_form() -> flask.Response:
    return _page()


@bp.post("/login")
@access("public")
def login() -> ResponseReturnValue:
    ctx = current_context()
    sec = ctx.settings.security
    address = session.client() or "unknown"
    if not limits.hit("login", address):
        log.warning("login: rate limit reached for %s", address)
        return _page("Too many attempts; wait a minute and try again.", 429)
    sent = flask.request.form.get("csrf", "")
    if not sent or sent != flask.session.get("csrf"):
        return _page("The form had expired; please try again.", 400)
    name = flask.request.form.get("username", "")
    password = flask.request.form.get("password", "")
    try:
        result = users_.authenticate(
            ctx.store,
            name,
            password,
            now=ctx.now(),
            lockout_after=sec.lockout_after,
            lockout_for=timedelta(seconds=sec.lockout_for_s),
            client=address,
        )
    except (SQLAlchemyError, StoreError) as err:
        # A login writes (the attempt, its audit entry): a store that cannot take the write now
        # (down, or a fresh SQLite store whose preparation holds the write lock) is a "try again".
        log.warning("login for %r from %s: the store could not answer: %s", name[:128], address, err)
        page = _page("Vantage could not reach its store just now; please try again in a moment.", 503)
        page.headers["Retry-After"] = "5"
        return page
    if result.user is None:
        log.info("login refused for %r from %s: %s", name[:128], address, result.reason)
        return _page("Wrong user name or password, or the account is locked.", 401)
    session.start(result.user, method="password", now=ctx.now().timestamp())
    return flask.redirect(safe_next(flask.request.form.get("next")), code=303)


@bp.post("/logout")
@access("public")
def logout() -> ResponseReturnValue:
    ctx = current_context()
    name = flask.session.get("u")
    if isinstance(name, str):
        with ctx.store.begin() as conn:
            audit.record(conn, actor=name, action="logout", at=ctx.now(), target_type="user", target_id=name)
    session.end()
    return flask.redirect("/login", code=303)
