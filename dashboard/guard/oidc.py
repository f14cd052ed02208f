"""Single sign-on by OpenID Connect: the authorization code flow with PKCE (S256), state and nonce.

``GET /login/oidc`` reads the provider's discovery document (``<issuer>/.well-known/openid-configuration``),
keeps the flow's state, nonce, PKCE verifier and the page to return to in the signed session cookie,
and sends the browser to the provider. ``GET /login/oidc/callback`` takes the code back, exchanges it
at the provider's token endpoint (authenticated with the client secret, read from the environment
variable ``security.oidc.client_secret_env`` when the app starts), checks the ID token's signature
against the provider's published keys and its issuer, audience, expiry and nonce, maps its role
claim to a Vantage role and starts a session.

Whatever goes wrong is an HTML page that says so, with a log line, and never a session: 400 for a
flow that did not start in this browser, 401 for a sign-in the provider refused or a token that is
not valid, 403 for a user who may not use Vantage (no mapped role, a local user of that name, a
disabled account), 502 when the provider cannot be reached or answers nonsense. The routes exist
only when ``security.oidc`` is set.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC
from typing import Any, cast
from urllib.parse import urlencode

import flask
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from flask.sessions import NullSession
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from markupsafe import escape
from sqlalchemy.exc import SQLAlchemyError

from dashboard.auth import users as users_
from dashboard.config import OidcConfig
from dashboard.context import Clock, Context, current_context
from dashboard.errors import VantageError
from dashboard.guard import login, session
from dashboard.guard.rules import access
from dashboard.privacy import ROLE_PERMISSIONS, ROLES, Role
from dashboard.store.db import StoreError

log = logging.getLogger(__name__)

bp = flask.Blueprint("oidc", __name__)

#: Flask ``extensions`` key of the serving app's :class:`Provider`.
EXTENSION = "vantage.oidc"
#: Session key of the sign-ins on their way through the provider: state -> what the callback needs.
SESSION_KEY = "oidc"
#: How long a sign-in may spend at the provider before its state is forgotten.
FLOW_TTL_S = 600.0
#: Sign-ins pending at once in one browser (several tabs); the oldest is forgotten beyond this.
MAX_PENDING = 3
#: The longest ``next`` kept across the round trip (the cookie has room for little more).
MAX_NEXT = 1024
#: The discovery document and the signing keys are read again after this long...
METADATA_TTL_S = 3600.0
#: ...and the keys sooner when a token names a key not among them (the provider rotated its
#: keys), at most once per this many seconds.
KEYS_RETRY_S = 30.0
#: Seconds to connect to, then to read from, the provider.
TIMEOUT_S = (5.0, 10.0)
#: Clock skew allowed between the provider and this server when checking exp and iat.
LEEWAY_S = 60
#: Signature algorithms an ID token may use: public-key ones only, never ``none`` nor an HMAC keyed
#: with the client secret, so only the provider's published keys can vouch for a token.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")

_UNREACHABLE = "The identity provider could not be reached or gave an answer that cannot be used; try again."
_INVALID_TOKEN = "The identity provider's answer could not be verified, so you were not signed in."


class SignInError(VantageError):
    """A single sign-on that cannot go on: ``status`` and ``message`` are for the page, ``reason`` for
    the log (it may name claims and endpoints, never a secret, code or token)."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = message
        self.reason = reason


def _unreachable(reason: str) -> SignInError:
    return SignInError(502, _UNREACHABLE, reason)


@dataclass(frozen=True)
class Flow:
    """One sign-in on its way through the provider, as the session cookie keeps it."""

    nonce: str
    verifier: str
    redirect_uri: str
    next: str
    expires: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.nonce,
            "v": self.verifier,
            "r": self.redirect_uri,
            "x": self.next,
            "e": self.expires,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Flow | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["n"]), str(data["v"]), str(data["r"]), str(data["x"]), float(data["e"]))
        except (KeyError, TypeError, ValueError):
            return None


class Provider:
    """The configured identity provider: its settings, the client secret, and the discovery document
    and signing keys it publishes (read when first needed and kept for ``METADATA_TTL_S``)."""

    def __init__(self, config: OidcConfig, secret: str | None, clock: Clock) -> None:
        self.config = config
        self._secret = secret
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    def __repr__(self) -> str:
        return f"Provider(issuer={self.config.issuer!r}, client_id={self.config.client_id!r})"

    def now(self) -> float:
        """Seconds since the epoch by the app's clock (naive UTC)."""
        return self._clock().replace(tzinfo=UTC).timestamp()

    def check_ready(self) -> None:
        if self._secret is None:
            raise SignInError(
                503,
                "Single sign-on is not fully set up on this server; ask an administrator.",
                f"the client secret's environment variable {self.config.client_secret_env} is not set",
            )

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document; its issuer must be the configured one."""
        now = self.now()
        with self._lock:
            if self._metadata is not None and now - self._metadata_at < METADATA_TTL_S:
                return self._metadata
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        found = _get_json(url, "the discovery document")
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(found.get(key), str) or not found[key]:
                raise _unreachable(f"the discovery document at {url} has no {key}")
        if str(found["issuer"]).rstrip("/") != self.config.issuer.rstrip("/"):
            raise _unreachable(
                f"the discovery document at {url} names the issuer {found['issuer']!r}, "
                f"not the configured {self.config.issuer!r}"
            )
        with self._lock:
            self._metadata, self._metadata_at = found, now
        return found

    def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys; ``refresh`` reads them again unless that was done just now."""
        now = self.now()
        with self._lock:
            cached, age = self._keys, now - self._keys_at
        if cached is not None and age < (KEYS_RETRY_S if refresh else METADATA_TTL_S):
            return cached
        data = _get_json(str(self.metadata()["jwks_uri"]), "the key set")
        try:
            keys = KeySet.import_key_set(cast(Any, data))
        except (JoseError, ValueError, KeyError, TypeError) as err:
            raise _unreachable(f"the provider's key set cannot be read: {type(err).__name__}") from None
        with self._lock:
            self._keys, self._keys_at = keys, now
        return keys

    def _client(self, redirect_uri: str, metadata: dict[str, Any]) -> Any:
        return OAuth2Session(
            client_id=self.config.client_id,
            client_secret=self._secret,
            token_endpoint_auth_method=_auth_method(metadata),
            scope=self.config.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            default_timeout=TIMEOUT_S,
        )

    def authorization_url(self, redirect_uri: str, *, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser: the authorization endpoint with the PKCE challenge of ``verifier``."""
        metadata = self.metadata()
        with self._client(redirect_uri, metadata) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
            )
        return str(url)

    def sign_in(self, code: str, flow: Flow) -> dict[str, Any]:
        """Exchange ``code`` at the token endpoint and return the verified ID token's claims."""
        metadata = self.metadata()
        try:
            with self._client(flow.redirect_uri, metadata) as client:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=flow.verifier,
                )
        except OAuthError as err:
            error = str(getattr(err, "error", "") or "")[:64]
            if error in ("invalid_client", "unauthorized_client"):
                raise _unreachable(
                    f"the token endpoint refused this client's credentials ({error})"
                ) from None
            message = "The identity provider did not confirm the sign-in; please sign in again."
            reason = f"the token endpoint refused the code ({error or 'no error code'})"
            raise SignInError(401, message, reason) from None
        except (requests.RequestException, ValueError) as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            detail = f"HTTP {status}" if status is not None else type(err).__name__
            raise _unreachable(f"the token endpoint could not be used: {detail}") from None
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(id_token, str):
            raise _unreachable("the token response carries no ID token (is 'openid' among the scopes?)")
        return self.verify(id_token, flow.nonce)

    def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature (by the provider's keys), issuer, audience,
        expiry, issue time and nonce are checked; SignInError (401) for any that fails."""
        metadata = self.metadata()
        registry = JWSRegistry(algorithms=_algorithms(metadata), strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, self.keys(), registry=registry)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, self.keys(refresh=True), registry=registry)
            claims = token.claims
            jwt.JWTClaimsRegistry(
                now=int(self.now()),
                leeway=LEEWAY_S,
                iss={"essential": True, "value": str(metadata["issuer"])},
                aud={"essential": True, "value": self.config.client_id},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError) as err:
            raise SignInError(401, _INVALID_TOKEN, f"the ID token is not valid: {err}") from None
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise SignInError(401, _INVALID_TOKEN, "the ID token's nonce is not the one this sign-in sent")
        audience, party = claims["aud"], claims.get("azp")
        if party is not None and party != self.config.client_id:
            raise SignInError(401, _INVALID_TOKEN, f"the ID token was issued to another party ({party!r})")
        if isinstance(audience, list) and len(audience) > 1 and party is None:
            raise SignInError(401, _INVALID_TOKEN, "the ID token has several audiences and no azp")
        return claims


def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        response = requests.get(
            url, timeout=TIMEOUT_S, allow_redirects=False, headers={"Accept": "application/json"}
        )
    except requests.RequestException as err:
        raise _unreachable(f"{what} at {url} could not be read: {type(err).__name__}") from None
    if response.status_code != 200:
        raise _unreachable(f"{what} at {url} answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _unreachable(f"{what} at {url} is not a JSON object")
    return body


def _auth_method(metadata: dict[str, Any]) -> str:
    """How this client proves itself at the token endpoint: HTTP Basic, the protocol's default,
    unless the provider offers only the secret in the form body."""
    offered = metadata.get("token_endpoint_auth_methods_supported")
    if isinstance(offered, list) and "client_secret_basic" not in offered and "client_secret_post" in offered:
        return "client_secret_post"
    return "client_secret_basic"


def _algorithms(metadata: dict[str, Any]) -> list[str]:
    offered = metadata.get("id_token_signing_alg_values_supported")
    if not isinstance(offered, list):
        return ["RS256"]  # every provider must support it
    chosen = [alg for alg in SIGNING_ALGORITHMS if alg in offered]
    if not chosen:
        raise _unreachable(f"the provider signs ID tokens with none of {', '.join(SIGNING_ALGORITHMS)}")
    return chosen


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """The strings of claim ``name`` (a string or a list of them). A dotted name that is not itself
    a claim walks nested objects, as providers nest roles (Keycloak: ``realm_access.roles``)."""
    value: Any = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def map_role(values: list[str], role_map: dict[str, Role], default: Role | None) -> Role | None:
    """The Vantage role of a user whose role claim holds ``values``: of the mapped ones, the role
    with the most permissions (between two with as many, the later in ``ROLES``); with none mapped,
    ``default`` (None refuses the user)."""
    mapped = {role_map[v] for v in values if v in role_map}
    if not mapped:
        return default
    return max(mapped, key=lambda role: (len(ROLE_PERMISSIONS[role]), ROLES.index(role)))


def user_name(claims: dict[str, Any], config: OidcConfig) -> str:
    """The user's name in Vantage: the ``user_claim`` claim, or the subject when it has none."""
    value = claims.get(config.user_claim)
    if not isinstance(value, str) or not value:
        value = str(claims["sub"])
    if not re.fullmatch(users_.NAME_PATTERN, value):
        raise SignInError(
            403,
            "Your user name at the identity provider cannot be used here "
            "(up to 128 letters, digits and . _ @ + - only); ask an administrator.",
            f"the user name {value[:128]!r} does not fit {users_.NAME_PATTERN}",
        )
    return value


# --- the routes ------------------------------------------------------------------------------


def register(server: flask.Flask, ctx: Context) -> None:
    """Mount the single sign-on routes on ``server`` when ``security.oidc`` is set; else do nothing."""
    config = ctx.settings.security.oidc
    if config is None:
        return
    secret = os.environ.get(config.client_secret_env) or None
    if secret is None:
        log.error(
            "security.oidc: the environment variable %s holding the client secret is not set; "
            "every single sign-on is refused until it is",
            config.client_secret_env,
        )
    server.extensions[EXTENSION] = Provider(config, secret, ctx.clock)
    server.register_blueprint(bp)


def _provider() -> Provider:
    provider: Provider = flask.current_app.extensions[EXTENSION]
    return provider


@bp.get("/login/oidc")
@access("public")
def start() -> ResponseReturnValue:
    """Send the browser to the provider, remembering this sign-in under a fresh state."""
    provider = _provider()
    nxt = login.safe_next(flask.request.args.get("next"))
    if len(nxt) > MAX_NEXT:
        nxt = "/"
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    redirect_uri = flask.url_for("oidc.callback", _external=True)
    try:
        provider.check_ready()
        if isinstance(flask.session, NullSession):
            raise SignInError(503, "Sign-in is unavailable for a moment; try again.", "no session key yet")
        url = provider.authorization_url(redirect_uri, state=state, nonce=nonce, verifier=verifier)
    except SignInError as err:
        return _refused(err, nxt)
    flow = Flow(nonce, verifier, redirect_uri, nxt, provider.now() + FLOW_TTL_S)
    _remember(state, flow, provider.now())
    return flask.redirect(url, code=302)


@bp.get("/login/oidc/callback")
@access("public")
def callback() -> ResponseReturnValue:
    """The provider's answer: check it, sign the user in, and go where the sign-in started."""
    ctx = current_context()
    provider = _provider()
    args = flask.request.args
    flow = _take(args.get("state", ""), provider.now())
    nxt = flow.next if flow is not None else "/"
    try:
        provider.check_ready()
        if flow is None:
            raise SignInError(
                400,
                "This sign-in did not start in this browser, or took too long; please sign in again.",
                "no sign-in pending in this session matches the state sent back",
            )
        error = args.get("error")
        if error:
            raise SignInError(
                401,
                f"The identity provider did not sign you in ({error[:64]}).",
                f"the provider answered error={error[:64]!r} ({args.get('error_description', '')[:200]!r})",
            )
        code = args.get("code")
        if not code:
            raise SignInError(400, "The identity provider sent no code; please sign in again.", "no code")
        claims = provider.sign_in(code, flow)
        config = provider.config
        name = user_name(claims, config)
        values = claim_values(claims, config.role_claim)
        role = map_role(values, config.role_map, config.default_role)
        if role is None:
            raise SignInError(
                403,
                "Your account has no role in Vantage; ask an administrator to grant you one.",
                f"{name!r} has no mapped value in the claim {config.role_claim!r} ({values[:20]!r})",
            )
        user = users_.sso_login(
            ctx.store, name, role, now=ctx.now(), issuer=str(claims["iss"]), client=session.client()
        )
    except SignInError as err:
        return _refused(err, nxt)
    except users_.UserError as err:
        message = "This account may not sign in by single sign-on; ask an administrator."
        return _refused(SignInError(403, message, str(err)), nxt)
    except (SQLAlchemyError, StoreError) as err:
        message = "The sign-in could not be recorded; try again in a minute."
        return _refused(
            SignInError(503, message, f"the store could not be written: {type(err).__name__}"), nxt
        )
    session.start(user, method="oidc", now=ctx.now().timestamp())
    log.info("oidc: %s signed in with role %s from %s", user.name, user.role, session.client() or "unknown")
    return flask.redirect(nxt, code=303)


def _remember(state: str, flow: Flow, now: float) -> None:
    """Keep ``flow`` under ``state`` in the session, with the other live ones (the newest few)."""
    pending = flask.session.get(SESSION_KEY)
    live = {
        key: value
        for key, value in (pending.items() if isinstance(pending, dict) else ())
        if (kept := Flow.from_dict(value)) is not None and kept.expires > now
    }
    live[state] = flow.as_dict()
    newest = sorted(live.items(), key=lambda item: float(item[1]["e"]))[-MAX_PENDING:]
    flask.session[SESSION_KEY] = dict(newest)


def _take(state: str, now: float) -> Flow | None:
    """The pending sign-in of ``state``, forgotten as it is taken (a state is good once); None for
    none, or one past its time."""
    pending = flask.session.get(SESSION_KEY)
    if not state or not isinstance(pending, dict) or state not in pending:
        return None
    rest = {key: value for key, value in pending.items() if key != state}
    if rest:
        flask.session[SESSION_KEY] = rest
    else:
        flask.session.pop(SESSION_KEY, None)
    flow = Flow.from_dict(pending[state])
    return flow if flow is not None and flow.expires > now else None


def _refused(err: SignInError, nxt: str) -> flask.Response:
    """The page of a sign-in that failed, and its log line."""
    level = logging.ERROR if err.status >= 500 else logging.WARNING
    log.log(
        level, "oidc: sign-in refused (%d) for %s: %s", err.status, session.client() or "unknown", err.reason
    )
    again = "/login?" + urlencode({"next": nxt})
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Single sign-on · Vantage</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/00-bootstrap-darkly.min.css">
<link rel="stylesheet" href="/assets/10-vantage.css"></head>
<body class="vt-login-body"><main class="vt-login">
<h1 class="vt-brand">Vantage</h1>
<div class="alert alert-danger" role="alert" id="vt-sso-error">{escape(err.message)}</div>
<p><a class="btn btn-primary w-100" href="{escape(again)}">Back to the log-in page</a></p>
</main></body></html>"""
    response = flask.Response(html, status=err.status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response
