"""Single sign-on by OpenID Connect, over real HTTP: Vantage served on 127.0.0.1, a test provider
(tests/oidc_provider.py) on another port, and a cookie-keeping client following every redirect
between the two as a browser would."""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select

from connectors.base import utcnow
from dashboard.auth import users
from dashboard.config import Settings
from dashboard.guard.oidc import claim_values, map_role
from dashboard.store import Store
from dashboard.store.schema import audit
from tests.apps import new_app
from tests.browser import free_port, live_server
from tests.oidc_provider import Misbehaviour, OidcProvider, oidc_provider

CLIENT_ID = "vantage"
SECRET_ENV = "VANTAGE_TEST_OIDC_SECRET"
ROLE_MAP = {
    "vantage-viewers": "viewer",
    "vantage-ops": "operator",
    "vantage-analysts": "analyst",
    "vantage-admins": "admin",
}
#: Asks to see one (absent) subscriber unmasked: 403 for a role that may not unmask, 404 for one
#: that may (the subscriber does not exist), so the status tells the session's role apart.
UNMASK_PROBE = "/api/v1/subscribers/nobody?unmask=1"


@pytest.fixture
def secret() -> str:
    return f"oidc-secret-{secrets.token_hex(16)}"


@pytest.fixture
def provider(secret: str) -> Iterator[OidcProvider]:
    with oidc_provider(CLIENT_ID, secret) as p:
        yield p


@contextmanager
def vantage(
    store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str | None, **oidc: Any
) -> Iterator[str]:
    """Vantage on ``store`` signing in through ``provider``; yields its base URL."""
    if secret is None:
        monkeypatch.delenv(SECRET_ENV, raising=False)
    else:
        monkeypatch.setenv(SECRET_ENV, secret)
    config = {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        "role_claim": "groups",
        "role_map": ROLE_MAP,
        **oidc,
    }
    settings = Settings(database_url=store.url, security={"oidc": config})  # type: ignore[arg-type]
    with live_server(new_app(store, settings).server) as url:
        yield url


@contextmanager
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        yield client


def sign_in(client: httpx.Client, base: str, nxt: str = "/incidents") -> httpx.Response:
    return client.get(f"{base}/login/oidc", params={"next": nxt})


def signed_in(client: httpx.Client, base: str) -> bool:
    status = client.get(f"{base}/api/v1/incidents").status_code
    assert status in (200, 401)
    return status == 200


def may_unmask(client: httpx.Client, base: str) -> bool:
    status = client.get(base + UNMASK_PROBE).status_code
    assert status in (403, 404)
    return status == 404


def logins(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        rows = conn.execute(select(audit.c.actor, audit.c.detail).where(audit.c.action == "login"))
        return [dict(r) for r in rows.mappings()]


def stored_user(store: Store, name: str) -> users.User | None:
    with store.connect() as conn:
        return users.get(conn, name)


def to_callback(client: httpx.Client, base: str, nxt: str = "/") -> str:
    """Start a sign-in and go through the provider, stopping at the callback URL it sends back."""
    start = client.get(f"{base}/login/oidc", params={"next": nxt}, follow_redirects=False)
    assert start.status_code == 302
    back = client.get(start.headers["Location"], follow_redirects=False)
    assert back.status_code == 302
    location = back.headers["Location"]
    assert location.startswith(f"{base}/login/oidc/callback?")
    return str(location)


# --- signing in ------------------------------------------------------------------------------


def test_a_user_signs_in_and_lands_on_next_with_the_role_of_the_claim(
    store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    provider.claims = {"groups": ["vantage-ops", "printers"]}
    with vantage(store, provider, monkeypatch, secret) as base, browser() as client:
        assert not signed_in(client, base)
        page = client.get(f"{base}/login")
        assert 'href="/login/oidc?next=%2F"' in page.text  # the login page offers single sign-on

        landed = sign_in(client, base, "/incidents?severity=critical")

        assert landed.status_code == 200
        assert str(landed.url) == f"{base}/incidents?severity=critical"
        hops = [str(r.url) for r in landed.history]
        assert hops[0].startswith(f"{base}/login/oidc?")
        assert hops[1].startswith(f"{provider.issuer}/authorize?")
        assert hops[2].startswith(f"{base}/login/oidc/callback?")
        assert signed_in(client, base)
        assert not may_unmask(client, base)  # an operator may not

    asked = provider.authorizations[-1]
    assert asked["response_type"] == "code" and asked["client_id"] == CLIENT_ID
    assert asked["redirect_uri"] == f"{base}/login/oidc/callback"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    assert asked["scope"].split() == ["openid", "profile", "email"]
    assert [status for status, _ in provider.token_answers] == [200]  # client, code and verifier held

    user = stored_user(store, "jane")
    assert user is not None and (user.source, user.role) == ("oidc", "operator")
    [login] = logins(store)
    assert login["actor"] == "jane"
    assert login["detail"]["method"] == "oidc"
    assert login["detail"]["role"] == "operator"
    assert login["detail"]["issuer"] == provider.issuer


def test_the_role_follows_the_provider_at_each_sign_in(
    sqlite_store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    with vantage(sqlite_store, provider, monkeypatch, secret) as base:
        provider.claims = {"groups": ["vantage-viewers"]}
        with browser() as client:
            sign_in(client, base)
            assert signed_in(client, base) and not may_unmask(client, base)
        provider.claims = {"groups": ["vantage-admins"]}
        with browser() as client:
            sign_in(client, base)
            assert signed_in(client, base) and may_unmask(client, base)
    user = stored_user(sqlite_store, "jane")
    assert user is not None and user.role == "admin"
    assert [r["detail"]["role"] for r in logins(sqlite_store)] == ["viewer", "admin"]


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (["vantage-viewers", "vantage-admins", "vantage-ops"], "admin"),
        (["vantage-viewers", "vantage-analysts", "printers"], "analyst"),
        (["vantage-analysts", "vantage-ops"], "analyst"),  # as many rights each: the later in ROLES
        ("vantage-ops", "operator"),  # a claim may be a single string
    ],
)
def test_several_mapped_values_give_the_role_with_the_most_rights(
    sqlite_store: Store,
    provider: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
    secret: str,
    groups: Any,
    role: str,
) -> None:
    provider.claims = {"groups": groups}
    with vantage(sqlite_store, provider, monkeypatch, secret) as base, browser() as client:
        sign_in(client, base)
        assert signed_in(client, base)
        assert may_unmask(client, base) == (role in ("analyst", "admin"))
    user = stored_user(sqlite_store, "jane")
    assert user is not None and user.role == role


def test_unmapped_values_get_the_default_role(
    sqlite_store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    provider.claims = {"groups": ["printers"]}
    with (
        vantage(sqlite_store, provider, monkeypatch, secret, default_role="viewer") as base,
        browser() as client,
    ):
        landed = sign_in(client, base)
        assert landed.status_code == 200 and str(landed.url) == f"{base}/incidents"
        assert signed_in(client, base) and not may_unmask(client, base)
    [login] = logins(sqlite_store)
    assert login["detail"]["role"] == "viewer"


def test_unmapped_values_without_a_default_role_are_refused(
    store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    provider.claims = {"groups": ["printers"]}
    with vantage(store, provider, monkeypatch, secret) as base, browser() as client:
        page = sign_in(client, base)
        assert page.status_code == 403
        assert "no role in Vantage" in page.text
        assert not signed_in(client, base)
    assert stored_user(store, "jane") is None
    assert logins(store) == []


def test_a_nested_role_claim_and_the_subject_as_name(
    sqlite_store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    """Keycloak's realm roles sit in ``realm_access.roles``; with no ``user_claim`` claim the
    subject names the user."""
    provider.claims = {"realm_access": {"roles": ["offline_access", "vantage-analysts"]}}
    with (
        vantage(
            sqlite_store, provider, monkeypatch, secret, role_claim="realm_access.roles", user_claim="email"
        ) as base,
        browser() as client,
    ):
        sign_in(client, base)
        assert signed_in(client, base) and may_unmask(client, base)
    user = stored_user(sqlite_store, "sub-jane")
    assert user is not None and user.role == "analyst"


def test_the_claim_rules_on_their_own() -> None:
    claims = {"roles": "a", "groups": ["a", 3, "b"], "x": {"y": ["c"]}, "x.y": "literal"}
    assert claim_values(claims, "roles") == ["a"]
    assert claim_values(claims, "groups") == ["a", "b"]  # non-strings ignored
    assert claim_values(claims, "x.y") == ["literal"]  # a claim of that very name comes first
    assert claim_values({"x": {"y": ["c"]}}, "x.y") == ["c"]
    assert claim_values(claims, "missing") == []
    role_map: dict[str, Any] = {"a": "viewer", "b": "operator", "c": "admin"}
    assert map_role(["a", "b"], role_map, None) == "operator"
    assert map_role(["z"], role_map, "viewer") == "viewer"
    assert map_role([], role_map, None) is None


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("misbehaviour", "logged"),
    [
        (Misbehaviour(audience="someone-else"), "Invalid claim: 'aud'"),
        (Misbehaviour(issuer="http://127.0.0.1:1/elsewhere"), "Invalid claim: 'iss'"),
        (Misbehaviour(expired=True), "expired"),
        (Misbehaviour(nonce="not-the-nonce-sent"), "nonce"),
        (Misbehaviour(bad_signature=True), "bad_signature"),
        (Misbehaviour(unsigned=True), "'none' is not"),
        (Misbehaviour(deny=True), "error='access_denied'"),
    ],
    ids=["audience", "issuer", "expired", "nonce", "signature", "unsigned", "denied"],
)
def test_a_misbehaving_provider_gives_a_401_page_and_no_session(
    sqlite_store: Store,
    provider: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
    secret: str,
    caplog: pytest.LogCaptureFixture,
    misbehaviour: Misbehaviour,
    logged: str,
) -> None:
    provider.claims = {"groups": ["vantage-admins"]}
    provider.misbehave = misbehaviour
    caplog.set_level(logging.INFO, logger="dashboard.guard.oidc")
    with vantage(sqlite_store, provider, monkeypatch, secret) as base, browser() as client:
        page = sign_in(client, base)
        assert page.status_code == 401
        assert page.headers["Content-Type"].startswith("text/html")
        assert 'href="/login?next=%2Fincidents"' in page.text
        assert not signed_in(client, base)
    refusals = [r.getMessage() for r in caplog.records if "sign-in refused (401)" in r.getMessage()]
    assert len(refusals) == 1 and logged in refusals[0], refusals
    assert stored_user(sqlite_store, "jane") is None
    assert logins(sqlite_store) == []


def test_a_callback_that_did_not_start_in_this_browser_is_refused(
    sqlite_store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    provider.claims = {"groups": ["vantage-admins"]}
    with vantage(sqlite_store, provider, monkeypatch, secret) as base:
        with browser() as victim:
            page = victim.get(f"{base}/login/oidc/callback?code=anything&state=anything")
            assert page.status_code == 400 and "did not start in this browser" in page.text

        # Someone else's callback (login CSRF): the state is not pending in this browser.
        with browser() as attacker:
            callback = to_callback(attacker, base)
        with browser() as victim:
            assert victim.get(callback).status_code == 400
            assert not signed_in(victim, base)
        assert provider.token_answers == []  # the code was never exchanged

        # A state changed on the way back, then a callback used twice.
        with browser() as client:
            callback = to_callback(client, base)
            query = parse_qs(urlsplit(callback).query)
            forged = f"{base}/login/oidc/callback?" + urlencode({"code": query["code"][0], "state": "forged"})
            assert client.get(forged).status_code == 400
            assert not signed_in(client, base)

        with browser() as client:
            callback = to_callback(client, base)
            assert client.get(callback).status_code == 200
            assert signed_in(client, base)
            assert client.get(callback).status_code == 400  # a state is good once
    assert len(logins(sqlite_store)) == 1


def test_a_provider_that_cannot_be_reached_gives_a_502_page(
    sqlite_store: Store,
    provider: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
    secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dashboard.guard.oidc")
    provider.claims = {"groups": ["vantage-admins"]}
    with vantage(sqlite_store, provider, monkeypatch, secret) as base:
        provider.misbehave = Misbehaviour(discovery_down=True)
        with browser() as client:
            page = sign_in(client, base)
            assert page.status_code == 502 and "could not be reached" in page.text
            assert str(page.url).startswith(base)  # never sent to the provider
            assert not signed_in(client, base)

        provider.misbehave = Misbehaviour(token_down=True)
        with browser() as client:
            assert sign_in(client, base).status_code == 502
            assert not signed_in(client, base)

    nowhere = provider.issuer
    provider.issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with vantage(sqlite_store, provider, monkeypatch, secret) as base, browser() as client:
        assert sign_in(client, base).status_code == 502
        assert not signed_in(client, base)
    provider.issuer = nowhere
    messages = [r.getMessage() for r in caplog.records if "sign-in refused (502)" in r.getMessage()]
    assert len(messages) == 3
    assert "answered HTTP 503" in messages[0] and "HTTP 503" in messages[1]
    assert "could not be read: ConnectionError" in messages[2]
    assert logins(sqlite_store) == []


def test_a_local_user_cannot_be_taken_over(
    store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    users.add(store, "jane", "viewer", users.generate_password(), now=utcnow(), actor="tests")
    provider.claims = {"groups": ["vantage-admins"]}
    with vantage(store, provider, monkeypatch, secret) as base, browser() as client:
        page = sign_in(client, base)
        assert page.status_code == 403 and "may not sign in by single sign-on" in page.text
        assert not signed_in(client, base)
    user = stored_user(store, "jane")
    assert user is not None and (user.source, user.role) == ("local", "viewer")
    assert logins(store) == []


def test_a_disabled_sso_user_is_refused(
    sqlite_store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    provider.claims = {"groups": ["vantage-admins"]}
    with vantage(sqlite_store, provider, monkeypatch, secret) as base:
        with browser() as client:
            sign_in(client, base)
            assert signed_in(client, base)
            users.set_disabled(sqlite_store, "jane", True, now=utcnow(), actor="tests")
            assert not signed_in(client, base)  # the session ends at once
        with browser() as client:
            assert sign_in(client, base).status_code == 403
            assert not signed_in(client, base)


def test_next_is_a_path_on_this_server(
    sqlite_store: Store, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    provider.claims = {"groups": ["vantage-viewers"]}
    with vantage(sqlite_store, provider, monkeypatch, secret) as base, browser() as client:
        landed = sign_in(client, base, "https://elsewhere.example/phish")
        [callback] = [r for r in landed.history if r.url.path == "/login/oidc/callback"]
        assert callback.headers["Location"] == "/"
        assert str(landed.url).startswith(f"{base}/") and signed_in(client, base)


# --- the secret ------------------------------------------------------------------------------


def test_the_client_secret_never_reaches_the_logs(
    sqlite_store: Store,
    provider: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
    secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider.claims = {"groups": ["vantage-viewers"]}
    pages = []
    with vantage(sqlite_store, provider, monkeypatch, secret) as base:
        with browser() as client:
            pages.append(sign_in(client, base).text)
            assert signed_in(client, base)
        provider.client_secret = "the-provider-expects-another"
        with browser() as client:
            refused = sign_in(client, base)
            assert refused.status_code == 502
            pages.append(refused.text)
            assert not signed_in(client, base)
    assert "refused this client's credentials (invalid_client)" in caplog.text  # the logs were seen
    basic = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    for text in [caplog.text, *pages]:
        assert secret not in text and basic not in text


def test_without_the_secret_every_sign_in_is_refused(
    sqlite_store: Store,
    provider: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dashboard.guard.oidc")
    with vantage(sqlite_store, provider, monkeypatch, None) as base, browser() as client:
        page = sign_in(client, base)
        assert page.status_code == 503 and "not fully set up" in page.text
        assert not signed_in(client, base)
    assert f"{SECRET_ENV} holding the client secret is not set" in caplog.text
    assert provider.authorizations == []


def test_without_oidc_settings_there_are_no_sso_routes(sqlite_store: Store) -> None:
    server = new_app(sqlite_store, Settings(database_url=sqlite_store.url)).server
    assert not [r.rule for r in server.url_map.iter_rules() if r.rule.startswith("/login/oidc")]
    assert "/login/oidc" not in server.test_client().get("/login").get_data(as_text=True)
