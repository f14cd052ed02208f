"""Security headers on every response, the Host allowlist, and no caching of personal data.

Flask-Talisman sets the Content Security Policy (scripts and styles from this server only; the
Dash renderer's inline bootstrap script allowed by its hash), ``frame-ancestors 'none'`` with
X-Frame-Options, nosniff, a same-origin referrer policy, and HSTS on HTTPS. Every response that is
not a static file carries ``Cache-Control: no-store``: pages, callbacks, the API and exports hold
data a shared machine's cache must not keep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
from flask_talisman import Talisman
from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from dashboard.config import Settings
from dashboard.context import Context

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Endpoints whose responses may be cached (static files, fingerprinted by Dash).
CACHEABLE = frozenset(
    {
        "static",
        "_dash_assets.static",
        "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>",
        "/_favicon.ico",
    }
)

CSP: dict[str, Any] = {
    "default-src": "'self'",
    "script-src": ["'self'"],
    # Plotly and the grid set styles at run time.
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "font-src": ["'self'", "data:"],
    "connect-src": "'self'",
    "worker-src": ["'self'", "blob:"],
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host names the server answers to: the settings' list, else loopback and web.host."""
    hosts = list(settings.security.allowed_hosts)
    if not hosts:
        hosts = list(LOOPBACK)
        if settings.web.host not in ("0.0.0.0", "::", ""):
            hosts.append(settings.web.host)
    return hosts


def host_allowed(hosts: list[str]) -> bool:
    try:
        get_host(flask.request.environ, trusted_hosts=hosts)
    except SecurityError:
        return False
    return True


def policy(script_hashes: list[str]) -> str:
    """The Content-Security-Policy header value, with the inline scripts' hashes allowed."""
    csp = dict(CSP)
    csp["script-src"] = ["'self'", *script_hashes]
    return "; ".join(f"{k} {v if isinstance(v, str) else ' '.join(v)}" for k, v in csp.items())


def install(
    server: flask.Flask, ctx: Context, *, script_hashes: Callable[[], list[str]] | None = None
) -> None:
    """Security headers on every response of ``server``; ``script_hashes`` gives the CSP hashes of
    the inline scripts (a Dash app's, which exist only once its first request has set it up)."""
    Talisman(
        server,
        force_https=False,  # TLS ends at the proxy in front, or the loopback serves plain HTTP
        strict_transport_security=True,  # sent on HTTPS requests only
        session_cookie_secure=False,  # decided per request (security.cookie_secure)
        session_cookie_http_only=True,
        frame_options="DENY",
        content_security_policy=None,  # set below: the inline scripts' hashes are known late
        referrer_policy="same-origin",
        x_content_type_options=True,
    )
    cached: dict[str, str] = {}

    @server.after_request
    def _headers(response: flask.Response) -> flask.Response:
        rule = flask.request.url_rule
        if rule is None or rule.endpoint not in CACHEABLE:
            response.headers["Cache-Control"] = "no-store"
        if "value" not in cached:
            hashes = script_hashes() if script_hashes is not None else []
            value = policy(hashes)
            if script_hashes is None or hashes:
                cached["value"] = value
        response.headers["Content-Security-Policy"] = cached.get("value") or policy([])
        return response
