"""The guard: every request is checked against the rule of the surface it asks for.

:func:`install` puts it in front of the whole app. For each request, in order: the Host must be one
the settings allow; the credentials (API token, trusted proxy headers, session cookie) give the
principal or nobody; the surface's declared rule (dashboard/guard/rules.py) decides: nobody gets
401 (pages redirect to the login page), a role without the permission gets 403, a surface with no
rule is refused. A request that changes state with a cookie must come from this site's own pages
(strict Origin check). Responses carry the security headers (dashboard/guard/headers.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import dash
import flask
from sqlalchemy.exc import SQLAlchemyError

from dashboard import ids
from dashboard.auth import keys, tokens
from dashboard.auth import users as users_
from dashboard.context import PRINCIPAL_KEY, Context
from dashboard.guard import headers, limits, login, oidc, session
from dashboard.guard.rules import (
    ACCESS_LEVELS,
    CALLBACK_ENDPOINT,
    Access,
    access,
    callback,
    callback_rule,
    clientside_callback,
    view_rule,
)
from dashboard.privacy import Principal
from dashboard.store.db import StoreError

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGE_ENDPOINTS = frozenset({"/", "/<path:path>"})
#: Dash's router callbacks (registered at the first request): the page content follows each
#: page's own rule, the title callback runs in the browser.
FRAMEWORK_CALLBACKS: dict[str, Access] = {
    ".._pages_content.children..._pages_store.data..": "read",
    "_pages_dummy.children": "client",
}

__all__ = [
    "ACCESS_LEVELS",
    "Access",
    "access",
    "callback",
    "clientside_callback",
    "current_principal",
    "install",
]


def install(app: dash.Dash | flask.Flask, ctx: Context) -> None:
    """Guard every route of ``app`` (a Dash app, or a bare Flask server with the API)."""
    server = app.server if isinstance(app, dash.Dash) else app
    sec = ctx.settings.security
    server.config.update(
        SESSION_COOKIE_NAME=session.COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=int(sec.session_max_s),
    )
    server.session_interface = session.SessionInterface(
        sec.cookie_secure, lambda: keys.session_key(ctx.store, now=ctx.now())
    )
    proxies = session.TrustedProxies(server.wsgi_app, sec.trusted_proxies)
    server.wsgi_app = proxies  # type: ignore[method-assign]
    server.config["VANTAGE_PROXIES"] = proxies
    server.config[limits.LIMITER_KEY] = limits.Limits(sec)
    server.register_blueprint(login.bp)
    oidc.register(server, ctx)
    allowed = headers.allowed_hosts(ctx.settings)

    def _guard() -> Any:
        if not headers.host_allowed(allowed):
            return _json({"error": "this server does not answer to that host name"}, 400)
        return check(server, ctx)

    server.before_request(_guard)

    headers.install(server, ctx, script_hashes=_hashes(app) if isinstance(app, dash.Dash) else None)


def _hashes(app: dash.Dash) -> Callable[[], list[str]]:
    return lambda: list(app.csp_hashes())


def check(server: flask.Flask, ctx: Context) -> Any:
    """The guard's decision for this request: None to let it through, else the refusal."""
    request = flask.request
    endpoint = request.url_rule.endpoint if request.url_rule is not None else None
    if endpoint is None:
        return None  # no route: Flask answers 404 (the API answers it as JSON)
    rule = view_rule(server, endpoint)
    if endpoint == CALLBACK_ENDPOINT and request.method == "POST":
        body = request.get_json(silent=True)
        output = body.get("output") if isinstance(body, dict) else None
        rule = (
            (callback_rule(server, output) or FRAMEWORK_CALLBACKS.get(output))
            if isinstance(output, str)
            else None
        )
        if rule is None and isinstance(output, str):
            log.error("callback %s declares no access rule: refused", output[:200])
    if rule is None:
        log.error("route %s declares no access rule: refused", endpoint)
        return _json({"error": "this surface declares no access rule"}, 403)
    if rule == "push":
        return None  # the listener authenticates its sender (dashboard/push.py)
    if request.method not in SAFE_METHODS and "Authorization" not in request.headers and not same_origin():
        return _json({"error": "cross-site request refused"}, 403)
    if rule == "public":
        return None
    try:
        principal = session.resolve(ctx)
    except (SQLAlchemyError, StoreError) as err:
        log.warning("guard: the store could not answer: %s", type(err).__name__)
        response, code = _json({"error": "the store could not be read; try again"}, 503)
        response.headers["Retry-After"] = "5"
        return response, code
    except session.BadCredentials as err:
        response, code = _json({"error": str(err)}, 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="vantage", error="invalid_token"'
        return response, code
    if principal is None and endpoint in PAGE_ENDPOINTS and request.method in ("GET", "HEAD"):
        kiosk = kiosk_login(ctx)
        if kiosk is not None:
            return kiosk
        return flask.redirect("/login?" + urlencode({"next": request.full_path.rstrip("?")}), code=302)
    if principal is None:
        response, code = _json({"error": "authentication required"}, 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="vantage"'
        return response, code
    if rule != "client" and not principal.may(rule):
        return _json({"error": f"role {principal.role!r} may not do this ({rule})"}, 403)
    if searches_people(endpoint) and not limits.hit("search", f"{principal.via}:{principal.user}"):
        log.warning("search rate limit reached by %s", principal.user)
        return limits.too_many("searches")
    flask.g.setdefault(PRINCIPAL_KEY, principal)
    return None


#: Callbacks that run a subscriber search or export (their output names one of these ids).
SEARCH_OUTPUTS = (f"{ids.SUBSCRIBERS_LIST}.children", f"{ids.SUBSCRIBERS_DOWNLOAD}.data")
SEARCH_ENDPOINTS = frozenset({"api.subscribers.search", "api.subscribers.export"})


def searches_people(endpoint: str) -> bool:
    """Whether this request searches subscribers by what was typed: rate-limited per principal, so
    no one can walk the search space (each result still masks what the role may not see)."""
    request = flask.request
    if endpoint in SEARCH_ENDPOINTS:
        return bool(request.args.get("q", "").strip())
    if endpoint == CALLBACK_ENDPOINT:
        body = request.get_json(silent=True)
        output = body.get("output") if isinstance(body, dict) else None
        return isinstance(output, str) and any(o in output for o in SEARCH_OUTPUTS)
    return False


def same_origin() -> bool:
    """Whether a state-changing request comes from this site: its Origin (or, lacking one, its
    Referer) names this very scheme, host and port; a browser's cross-site Sec-Fetch-Site is refused."""
    request = flask.request
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return False
    here = f"{request.scheme}://{request.host}"
    origin = request.headers.get("Origin")
    if origin:
        return origin == here
    referer = request.headers.get("Referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" == here
    return False


def kiosk_login(ctx: Context) -> Any:
    """A page opened with ``?access_token=<API token>`` (a wall screen set up once) starts a session
    bound to that token, then reloads without the token in the address."""
    token_text = flask.request.args.get("access_token")
    if not token_text:
        return None
    principal = tokens.verify(ctx.store, token_text, now=ctx.now(), client=session.client())
    if principal is None:
        return None
    with ctx.store.connect() as conn:
        user = users_.get(conn, principal.user)
        token = tokens.find(conn, token_text)
    if user is None or token is None:
        return None
    session.start(user, method="kiosk", now=ctx.now().timestamp(), kiosk_token=token.id)
    args = {k: v for k, v in flask.request.args.items() if k != "access_token"}
    return flask.redirect(flask.request.path + (f"?{urlencode(args)}" if args else ""), code=302)


def current_principal() -> Principal | None:
    return session.current()


def _json(body: dict[str, Any], code: int) -> tuple[flask.Response, int]:
    response = flask.jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, code
