"""A small but real OpenID Connect provider on 127.0.0.1 for the single sign-on tests.

It publishes a discovery document and a key set (an RSA key made per run), auto-approves its one
configured user at ``/authorize`` (recording the PKCE challenge, state and nonce it was sent), and at
``/token`` checks the client's id and secret, the code, the redirect URI and the PKCE verifier before
it issues an RS256-signed ID token. :class:`Misbehaviour` makes it lie in the ways a provider, or
someone pretending to be one, might: another audience or issuer, an expired token, another nonce, a
signature by a key it never published, an unsigned token, a refusal, a discovery document that fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import flask
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.browser import live_server

KID = "test-key-1"


@dataclass
class Misbehaviour:
    """What the provider gets wrong; everything right by default."""

    audience: str | None = None  # an ``aud`` other than the client id
    issuer: str | None = None  # an ``iss`` other than its own
    expired: bool = False  # ``exp`` ten minutes ago
    nonce: str | None = None  # a nonce other than the one it was sent
    bad_signature: bool = False  # signed by a key it never published, under the published key's id
    unsigned: bool = False  # ``alg: none``
    deny: bool = False  # /authorize answers error=access_denied
    discovery_down: bool = False  # the discovery document answers 503
    token_down: bool = False  # the token endpoint answers 503


@dataclass
class Grant:
    """A code handed out at /authorize, waiting to be exchanged."""

    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    user: str


@dataclass
class OidcProvider:
    client_id: str
    client_secret: str
    #: The user /authorize signs in, and the extra claims of their ID token (roles, groups...).
    user: str = "jane"
    claims: dict[str, Any] = field(default_factory=dict)
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)
    issuer: str = ""
    #: What /authorize was asked (its query), and what /token answered, in order.
    authorizations: list[dict[str, str]] = field(default_factory=list)
    token_answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig"})
    )
    _codes: dict[str, Grant] = field(default_factory=dict)

    def app(self) -> flask.Flask:
        app = flask.Flask("oidc_provider")
        app.add_url_rule("/.well-known/openid-configuration", view_func=self._discovery)
        app.add_url_rule("/jwks", view_func=self._jwks)
        app.add_url_rule("/authorize", view_func=self._authorize)
        app.add_url_rule("/token", view_func=self._token, methods=["POST"])
        return app

    def _discovery(self) -> Any:
        if self.misbehave.discovery_down:
            return flask.jsonify({"error": "temporarily_unavailable"}), 503
        return flask.jsonify(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "profile", "email"],
            }
        )

    def _jwks(self) -> Any:
        return flask.jsonify({"keys": [self.key.as_dict(private=False)]})

    def _authorize(self) -> Any:
        args = flask.request.args.to_dict()
        self.authorizations.append(args)
        redirect_uri = args.get("redirect_uri", "")
        if args.get("client_id") != self.client_id or not redirect_uri:
            return "unknown client or no redirect_uri", 400  # a real provider never redirects then
        if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
            return "PKCE with S256 is required", 400
        state = {"state": args["state"]} if "state" in args else {}
        if self.misbehave.deny:
            return flask.redirect(f"{redirect_uri}?{urlencode({'error': 'access_denied', **state})}")
        code = secrets.token_urlsafe(24)
        self._codes[code] = Grant(
            self.client_id, redirect_uri, args.get("nonce"), args["code_challenge"], self.user
        )
        return flask.redirect(f"{redirect_uri}?{urlencode({'code': code, **state})}")

    def _token(self) -> Any:
        status, body = self._exchange(flask.request)
        self.token_answers.append((status, body))
        return flask.jsonify(body), status

    def _exchange(self, request: flask.Request) -> tuple[int, dict[str, Any]]:
        if self.misbehave.token_down:
            return 503, {"error": "temporarily_unavailable"}
        form = request.form
        if request.authorization is not None:
            client_id, secret = request.authorization.username, request.authorization.password
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id != self.client_id or not hmac.compare_digest(secret or "", self.client_secret):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        grant = self._codes.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or grant.client_id != client_id:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier", "")
        if not verifier or s256(verifier) != grant.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant),
        }

    def id_token(self, grant: Grant) -> str:
        m = self.misbehave
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": m.issuer or self.issuer,
            "aud": m.audience or self.client_id,
            "azp": self.client_id,
            "sub": f"sub-{grant.user}",
            "iat": now - 900 if m.expired else now,
            "exp": now - 600 if m.expired else now + 300,
            "preferred_username": grant.user,
            **self.claims,
        }
        if grant.nonce is not None or m.nonce is not None:
            claims["nonce"] = m.nonce or grant.nonce
        if m.unsigned:
            return ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""])
        key = self.key
        if m.bad_signature:
            key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig"})
        return jwt.encode({"alg": "RS256", "kid": KID}, claims, key)


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


@contextmanager
def oidc_provider(client_id: str, client_secret: str) -> Iterator[OidcProvider]:
    """A provider serving on a free loopback port; its issuer is its base URL."""
    provider = OidcProvider(client_id=client_id, client_secret=client_secret)
    with live_server(provider.app()) as url:
        provider.issuer = url
        yield provider
