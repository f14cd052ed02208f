"""Who a request is: an API token, an authenticating proxy's headers, a session cookie, or nobody.

Sessions are Flask's signed cookies (HttpOnly, SameSite=Lax, Secure over HTTPS) holding the user,
the user's session epoch, when the session began and when the user last did something. Each request
re-reads the user, so a disabled user, a changed password or role (each bumps the epoch) ends every
session at once; a session also ends ``security.session_idle`` after the last user action and
``security.session_max`` after its login. A kiosk session (a wall screen, opened once with a
read-only API token) lives as long as its token and ends when the token is revoked.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard.auth import tokens
from dashboard.auth import users as users_
from dashboard.config import SecurityConfig
from dashboard.context import PRINCIPAL_KEY, Context
from dashboard.privacy import ROLE_PERMISSIONS, ROLES, Principal, Role

log = logging.getLogger(__name__)

COOKIE_NAME = "vantage_session"
#: The WSGI environ key holding the address of the peer that connected (before any proxy header).
PEER_KEY = "vantage.peer"
#: A user action moves the idle clock forward only when the last move is older than this, so the
#: cookie is not re-issued on every request.
ACTIVITY_GRANULARITY_S = 15.0
#: Requests that a page's timers make, not a person: they do not keep a session alive.
PASSIVE_HEADER = "X-Vantage-Passive"
#: After the store failed to give the session key, how long before it is asked again.
KEY_RETRY_S = 5.0


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions with the Secure flag decided per request (``cookie_secure``)."""

    def __init__(self, cookie_secure: str, key: Callable[[], str]) -> None:
        self.cookie_secure = cookie_secure
        self.key = key
        self.failed_at = -KEY_RETRY_S

    def open_session(self, app: flask.Flask, request: flask.Request) -> SecureCookieSession | None:
        # No cookie, nothing to verify: the key (read from the store) is not needed until a
        # session is saved, so a request without a session never waits for the store here.
        if request.cookies.get(self.get_cookie_name(app)) is None:
            return self.session_class()
        if self.get_signing_serializer(app) is None:
            # The cookie cannot be verified without the key: the request goes on without a
            # session (asked to log in), never as an error.
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: flask.Flask, session: Any, response: flask.Response) -> None:
        # Without the key the session is not saved: the page is served, and what needed the
        # session (the login form's token) is asked for again once the store gives the key.
        if session and self.should_set_cookie(app, session) and self.get_signing_serializer(app) is None:
            return
        super().save_session(app, session, response)

    def get_signing_serializer(self, app: flask.Flask) -> URLSafeTimedSerializer | None:
        # The signing key lives in the store (or the environment) and is read at the first request
        # that needs a session; while the store cannot answer, requests go without one (and the
        # store is not asked again for KEY_RETRY_S, so each request waits for it at most once).
        if not app.secret_key:
            if time.monotonic() - self.failed_at < KEY_RETRY_S:
                return None
            try:
                app.secret_key = self.key()
            except Exception as err:
                self.failed_at = time.monotonic()
                detail = f": {err}" if isinstance(err, ValueError) else ""
                log.warning("session key unavailable: %s%s", type(err).__name__, detail)
                return None
        return super().get_signing_serializer(app)

    def get_cookie_secure(self, app: flask.Flask) -> bool:
        if self.cookie_secure == "always":
            return True
        if self.cookie_secure == "never":
            return False
        return flask.request.is_secure if flask.has_request_context() else False


class TrustedProxies:
    """WSGI middleware: X-Forwarded-For/-Proto/-Host are applied only for requests from a trusted
    proxy, and stripped from every other request; the connecting peer is kept in ``PEER_KEY``."""

    FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                 "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")  # fmt: skip

    def __init__(self, app: Any, proxies: Iterable[str]) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self.proxied = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)

    def trusted(self, peer: str | None) -> bool:
        if not peer or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR")
        environ[PEER_KEY] = peer
        if self.trusted(peer):
            return self.proxied(environ, start_response)
        for key in self.FORWARDED:
            environ.pop(key, None)
        return self.app(environ, start_response)


def peer() -> str | None:
    """The address that connected to us (a proxy's, behind one)."""
    value = flask.request.environ.get(PEER_KEY, flask.request.remote_addr)
    return None if value is None else str(value)


def client() -> str | None:
    """The client's address as far as we trust it (the proxy's X-Forwarded-For when from a trusted proxy)."""
    return flask.request.remote_addr


def from_trusted_proxy(sec: SecurityConfig) -> bool:
    mw = flask.current_app.config.get("VANTAGE_PROXIES")
    return isinstance(mw, TrustedProxies) and mw.trusted(peer())


def csrf_token() -> str:
    """This session's token for forms that change state (the login and log-out forms)."""
    token = flask.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        flask.session["csrf"] = token
    return token


def start(user: users_.User, *, method: str, now: float, kiosk_token: str | None = None) -> None:
    """A new session for ``user`` (a fresh cookie, so no earlier session id survives a login)."""
    flask.session.clear()
    flask.session.permanent = True
    flask.session.update({"u": user.name, "e": user.session_epoch, "t0": now, "ts": now, "m": method})
    if kiosk_token is not None:
        flask.session["k"] = kiosk_token
    csrf_token()


def end() -> None:
    flask.session.clear()


def _bearer() -> str | None:
    header = flask.request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


class BadCredentials(Exception):
    """A credential was sent and is not valid (never fall back to another one)."""


def resolve(ctx: Context) -> Principal | None:
    """The principal of this request, or None for nobody; BadCredentials for a bad bearer token."""
    sec = ctx.settings.security
    now = ctx.now()
    bearer = _bearer()
    if bearer is not None:
        principal = tokens.verify(ctx.store, bearer, now=now, client=client())
        if principal is None:
            raise BadCredentials("the bearer token is unknown, expired or revoked")
        return principal
    if sec.trust_headers and from_trusted_proxy(sec):
        named = " ".join((flask.request.headers.get(sec.user_header) or "").split())[:128]
        if named:
            asked = (flask.request.headers.get(sec.role_header) or "").strip().lower()
            role: Role = asked if asked in ROLES else "viewer"
            return Principal(user=named, role=role, via="proxy")
    principal = _from_session(ctx, now.timestamp())
    if principal is not None:
        return principal
    if sec.anonymous_role is not None:
        return Principal(user="anonymous", role=sec.anonymous_role, via="anonymous")
    return None


def reads_store() -> bool:
    """Whether resolving this request's principal reads the store (a bearer token or a login session)."""
    return _bearer() is not None or isinstance(flask.session.get("u"), str)


def _from_session(ctx: Context, now: float) -> Principal | None:
    s = flask.session
    name = s.get("u")
    if not isinstance(name, str):
        return None
    sec = ctx.settings.security
    t0, ts = float(s.get("t0") or 0), float(s.get("ts") or 0)
    kiosk = s.get("k")
    with ctx.store.connect() as conn:
        user = users_.get(conn, name)
        token = None
        if isinstance(kiosk, str):
            token = tokens.get(conn, kiosk)
    reason = None
    if user is None or user.disabled or user.session_epoch != s.get("e"):
        reason = "user changed"
    elif kiosk is not None:
        if token is None or token.owner != name or token.state(ctx.now()) != "active":
            reason = "kiosk token no longer valid"
    elif now - t0 > sec.session_max_s:
        reason = "session too old"
    elif now - ts > sec.session_idle_s:
        reason = "idle"
    if reason is not None or user is None:
        log.info("session of %s ended: %s", name, reason)
        s.clear()
        flask.g.vantage_session_ended = reason
        return None
    if not passive() and now - ts >= ACTIVITY_GRANULARITY_S:
        s["ts"] = now
    role = user.role
    if token is not None and not ROLE_PERMISSIONS[user.role] <= ROLE_PERMISSIONS[token.role]:
        role = token.role
    return Principal(user=user.name, role=role, via="session")


def passive() -> bool:
    """Whether this request comes from a page's timer rather than from a person."""
    if flask.request.headers.get(PASSIVE_HEADER):
        return True
    if flask.request.path.endswith("/_dash-update-component"):
        body = flask.request.get_json(silent=True)
        changed = body.get("changedPropIds") if isinstance(body, dict) else None
        if isinstance(changed, list) and changed:
            return all(isinstance(c, str) and c.endswith(".n_intervals") for c in changed)
        # Dash's first calls after a page loads name no change: the page load counted already.
        return True
    return False


def current() -> Principal | None:
    principal = flask.g.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None
