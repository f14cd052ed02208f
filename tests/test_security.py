"""Who may see and do what, tried as an attacker on the loopback would: through real HTTP against the
running app, on both store backends.

Every surface declares a rule (the walk over the whole route and callback map); nobody gets in
without credentials; each role does exactly what the roles table says; sessions end when they
should; forged headers, cross-site requests and forged pushes are refused; the prefix-search
attack recovers nothing; what a viewer exports holds no clear personal data and no live formula.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import dash
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from dashboard import guard, ids
from dashboard.auth import keys, tokens, users
from dashboard.config import ConnectorConfig, Settings
from dashboard.guard import rules
from dashboard.guard import session as sessions
from dashboard.privacy import ROLES, Role
from dashboard.store.db import Store
from dashboard.store.schema import alarms, audit
from tests.apps import PASSWORDS, bearer, new_app, user
from tests.browser import QueueExpected, live_server, seed_queue

NOW = datetime(2026, 3, 2, 12, 0)
ORIGIN_HEADER = "Origin"
LISTENER_SECRET = "a-listener-secret-for-tests"


class Clock:
    """A clock the test moves: the app's sessions and tokens age with it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _settings(store: Store, **security: Any) -> Settings:
    return Settings(
        database_url=store.url,
        currency="EUR",
        security=security,
        connectors=[
            ConnectorConfig(
                name="tmf-alarms",
                type="tmf642",
                interval=300,
                options={"base_url": "http://127.0.0.1:9/tmf-api/alarmManagement/v4"},
            )
        ],
    )


@pytest.fixture
def served(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Store, QueueExpected, Clock]]:
    monkeypatch.setenv("VANTAGE_LISTENER_SECRET_TMF_ALARMS", LISTENER_SECRET)
    expected = seed_queue(store, NOW)
    clock = Clock(NOW)
    app = new_app(store, _settings(store), clock=clock)
    with live_server(app.server) as url:
        yield url, store, expected, clock


def _http(url: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=20, follow_redirects=False, **kwargs)


def _as(url: str, store: Store, role: Role) -> httpx.Client:
    return _http(url, headers={"Authorization": bearer(store, role)})


# --- every surface declares its rule ---------------------------------------------------------


def _concrete(rule: str) -> str:
    """A path for a URL rule, its variables filled with something plausible."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: "x1" if m.group(1) != "path" else "incidents", rule)


def test_every_route_callback_and_page_declares_who_may_use_it(sqlite_store: Store) -> None:
    app = new_app(sqlite_store, _settings(sqlite_store))
    app.server.test_client().get("/wall")  # Dash adds its router callbacks at the first request
    undeclared = [
        r.rule for r in app.server.url_map.iter_rules() if rules.view_rule(app.server, r.endpoint) is None
    ]
    assert undeclared == []
    callback_rules = rules.callback_rules(app.server)
    missing = [k for k in app.callback_map if k not in callback_rules and k not in guard.FRAMEWORK_CALLBACKS]
    assert missing == []
    assert len(app.callback_map) > 20
    pages = [(p["path"], p.get("access")) for p in dash.page_registry.values()]
    assert pages and all(level in ("read", "act", "unmask", "admin") for _, level in pages), pages
    # The rules that change state or show clear data are the strict ones.
    by_output = {k: v for k, v in callback_rules.items()}
    assert [v for k, v in by_output.items() if f"{ids.INCIDENTS_ACTION_RESULT}.children" in k] == ["act"]
    assert [v for k, v in by_output.items() if f"{ids.SUBSCRIBER_UNMASK_RESULT}.children" in k] == ["unmask"]


def test_a_route_without_a_rule_is_refused(sqlite_store: Store) -> None:
    app = new_app(sqlite_store, _settings(sqlite_store))
    app.server.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    response = app.server.test_client().get(
        "/forgotten", headers={"Authorization": bearer(sqlite_store, "admin")}
    )
    assert response.status_code == 403 and "declares no access rule" in response.get_json()["error"]


def test_nobody_gets_in_without_credentials(served: tuple[str, Store, QueueExpected, Clock]) -> None:
    url, _store, _, _ = served
    app = dash.get_app()
    here = {ORIGIN_HEADER: url}
    with _http(url) as anonymous:
        for rule in app.server.url_map.iter_rules():
            level = rules.view_rule(app.server, rule.endpoint)
            path = _concrete(rule.rule)
            if level == "public" or rule.endpoint == rules.CALLBACK_ENDPOINT:
                continue
            method = "GET" if "GET" in rule.methods else "POST"  # type: ignore[operator]
            response = anonymous.request(method, path, headers=here, content=b"{}")
            if path.startswith("/push/"):
                response = anonymous.request(method, path, content=b"{}")  # a server sends no Origin
                assert response.status_code == 401, (path, response.status_code)
            elif rule.endpoint in guard.PAGE_ENDPOINTS:
                assert response.status_code == 302, (path, response.status_code)
                # "/" sends a TV to the wall, which asks for the login in turn.
                assert response.headers["location"].startswith("/login?next=" if path != "/" else "/wall")
            else:
                assert response.status_code == 401, (path, response.status_code, response.text[:200])
        for output in app.callback_map:
            response = anonymous.post("/_dash-update-component", json={"output": output}, headers=here)
            level = rules.callback_rule(app.server, output) or guard.FRAMEWORK_CALLBACKS.get(output)
            assert response.status_code == 401 or level == "client", (output, response.status_code)
        # What stays open: the login page, static files and the bare health verdict.
        assert anonymous.get("/login").status_code == 200
        assert anonymous.get("/healthz").json().keys() == {"status"}


# --- each role does what the roles table says -----------------------------------------------------


def _act_body(incident: str) -> dict[str, Any]:
    output = next(k for k in dash.get_app().callback_map if f"{ids.INCIDENTS_ACTION_RESULT}.children" in k)
    return {
        "output": output,
        "outputs": [
            {"id": ids.INCIDENTS_ACTION_RESULT, "property": "children"},
            {"id": ids.INCIDENTS_ACTED, "property": "data"},
            {"id": ids.INCIDENTS_NOTE_TEXT, "property": "value"},
        ],
        "inputs": [
            {"id": ids.INCIDENTS_ACK, "property": "n_clicks", "value": 1},
            {"id": ids.INCIDENTS_ASSIGN, "property": "n_clicks", "value": None},
            {"id": ids.INCIDENTS_NOTE_ADD, "property": "n_clicks", "value": None},
        ],
        "state": [
            {"id": ids.INCIDENTS_SELECTED, "property": "data", "value": incident},
            {"id": ids.INCIDENTS_OWNER_INPUT, "property": "value", "value": None},
            {"id": ids.INCIDENTS_NOTE_TEXT, "property": "value", "value": None},
            {"id": ids.INCIDENTS_ACTED, "property": "data", "value": 0},
        ],
        "changedPropIds": [f"{ids.INCIDENTS_ACK}.n_clicks"],
    }


def _subscriber(url: str, store: Store) -> str:
    with _as(url, store, "viewer") as viewer:
        return str(viewer.get("/api/v1/subscribers", params={"limit": 1}).json()["subscribers"][0]["id"])


def test_each_role_does_exactly_what_the_roles_table_says(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, expected, _ = served
    subscriber = _subscriber(url, store)
    outcome: dict[Role, dict[str, int]] = {}
    for role in ROLES:
        with _as(url, store, role) as client:
            outcome[role] = {
                "read": client.get("/api/v1/incidents").status_code,
                "act": client.post("/_dash-update-component", json=_act_body(expected.hill)).status_code,
                "unmask": client.get(f"/api/v1/subscribers/{subscriber}", params={"unmask": 1}).status_code,
            }
    assert outcome == {
        "viewer": {"read": 200, "act": 403, "unmask": 403},
        "operator": {"read": 200, "act": 200, "unmask": 403},
        "analyst": {"read": 200, "act": 403, "unmask": 200},
        "admin": {"read": 200, "act": 200, "unmask": 200},
    }
    with store.connect() as conn:
        acted = (
            conn.execute(select(audit.c.actor).where(audit.c.action == "incident.acknowledge"))
            .scalars()
            .all()
        )
        unmasked = (
            conn.execute(select(audit.c.actor).where(audit.c.action == "subscriber.unmask")).scalars().all()
        )
    assert sorted(acted) == ["tester-operator"]  # the admin's came second: the incident was acknowledged
    assert sorted(unmasked) == ["tester-admin", "tester-analyst"]  # once each


def test_tokens_expire_are_revoked_and_never_outrank_their_owner(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, _, clock = served
    owner = user(store, "viewer")
    with pytest.raises(users.UserError, match="may not have the role"):
        tokens.create(store, "too-strong", owner=owner, role="admin", days=1, now=NOW, actor="tests")
    token, text = tokens.create(store, "short", owner=owner, role="viewer", days=1, now=NOW, actor="tests")
    auth = {"Authorization": f"Bearer {text}"}
    with _http(url, headers=auth) as client:
        assert client.get("/api/v1/incidents").status_code == 200
        clock.at = NOW + timedelta(days=1, seconds=1)
        expired = client.get("/api/v1/incidents")
        assert expired.status_code == 401 and "invalid_token" in expired.headers["www-authenticate"]
        clock.at = NOW
        tokens.revoke(store, token.id, now=NOW, actor="tests")
        assert client.get("/api/v1/incidents").status_code == 401
        assert (
            _http(url, headers={"Authorization": "Bearer vt_forged"}).get("/api/v1/incidents").status_code
            == 401
        )
    _, text = tokens.create(
        store, "op", owner=user(store, "operator"), role="operator", days=1, now=NOW, actor="t"
    )
    users.set_disabled(store, "tester-operator", True, now=NOW, actor="tests")
    assert _http(url, headers={"Authorization": f"Bearer {text}"}).get("/api/v1/incidents").status_code == 401


# --- logins and sessions ----------------------------------------------------------------------


def _login(client: httpx.Client, url: str, name: str, password: str) -> httpx.Response:
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post(
        "/login",
        data={"username": name, "password": password, "csrf": csrf.group(1), "next": "/incidents"},
        headers={ORIGIN_HEADER: url},
    )


def test_a_session_is_a_hardened_cookie_that_ends_when_it_should(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, _, clock = served
    name = user(store, "operator", "olga")
    with _http(url) as browser:
        assert _login(browser, url, name, "wrong password!").status_code == 401
        ok = _login(browser, url, name, PASSWORDS[name])
        assert ok.status_code == 303 and ok.headers["location"] == "/incidents"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "vantage_session=" in cookie
        assert browser.get("/api/v1/incidents").status_code == 200
        # Timers do not keep a session alive; people do, until the absolute limit.
        clock.at = NOW + timedelta(minutes=29)
        assert browser.get("/api/v1/wall", headers={"X-Vantage-Passive": "1"}).status_code == 200
        clock.at = NOW + timedelta(minutes=31)
        assert browser.get("/api/v1/incidents").status_code == 401
        clock.at = NOW
        assert _login(browser, url, name, PASSWORDS[name]).status_code == 303
        for minutes in range(20, 12 * 60, 20):
            clock.at = NOW + timedelta(minutes=minutes)
            assert browser.get("/api/v1/incidents").status_code == 200, minutes
        clock.at = NOW + timedelta(hours=12, minutes=1)
        assert browser.get("/api/v1/incidents").status_code == 401
        # A new password ends every session at once.
        clock.at = NOW
        assert _login(browser, url, name, PASSWORDS[name]).status_code == 303
        users.set_password(store, name, "another long password", now=NOW, actor="tests")
        assert browser.get("/api/v1/incidents").status_code == 401
        # Logging out ends it too (and is audited).
        assert _login(browser, url, name, "another long password").status_code == 303
        assert browser.post("/logout", headers={ORIGIN_HEADER: url}).status_code == 303
        assert browser.get("/api/v1/incidents").status_code == 401
    with store.connect() as conn:
        actions = conn.execute(select(audit.c.action).where(audit.c.actor == name)).scalars().all()
    assert actions.count("login") == 4 and actions.count("login.failed") == 1 and "logout" in actions


def test_pages_answer_while_the_store_cannot_give_the_session_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh store whose first job holds SQLite's write lock cannot make the session key: the
    login page and the pages still answer (a login is asked for again), never with an error; once
    the store answers, logging in works."""
    locked = {"now": True}
    real = keys.session_key

    def session_key(s: Store, *, now: datetime) -> str:
        if locked["now"]:
            raise OperationalError("INSERT INTO app_secrets", {}, Exception("database is locked"))
        return real(s, now=now)

    monkeypatch.setattr(keys, "session_key", session_key)
    monkeypatch.setattr(sessions, "KEY_RETRY_S", 0.0)
    app = new_app(store, _settings(store), clock=Clock(NOW))
    name = user(store, "operator", "kim")
    with live_server(app.server) as url, _http(url) as browser:
        form = browser.get("/login")
        assert form.status_code == 200 and "set-cookie" not in form.headers
        refused = _login(browser, url, name, PASSWORDS[name])
        assert refused.status_code == 400 and "expired" in refused.text
        browser.cookies.set(sessions.COOKIE_NAME, "a cookie that cannot be checked now")
        page = browser.get("/incidents")
        assert page.status_code == 302 and page.headers["location"].startswith("/login")
        assert browser.get("/api/v1/incidents").status_code == 401
        locked["now"] = False
        browser.cookies.delete(sessions.COOKIE_NAME)
        ok = _login(browser, url, name, PASSWORDS[name])
        assert ok.status_code == 303 and ok.headers["location"] == "/incidents"
        assert browser.get("/api/v1/incidents").status_code == 200


@pytest.mark.postgres
def test_a_login_the_store_cannot_write_now_is_a_try_again_page(pg_store: Store) -> None:
    """A login writes (the attempt and its audit entry). While another transaction holds the users
    table against writes (as a fresh store's preparation holds SQLite's write lock), the login is a
    503 page that says to try again, within the request's time limit; then it goes through."""
    settings = _settings(pg_store).model_copy(
        update={"web": _settings(pg_store).web.model_copy(update={"statement_timeout_s": 1.0})}
    )
    app = new_app(pg_store, settings, clock=Clock(NOW))
    name = user(pg_store, "operator", "lee")
    with live_server(app.server) as url, _http(url) as browser:
        with pg_store.engine.connect() as holder:
            holder.execute(text("LOCK TABLE users IN SHARE MODE"))  # reads go on, writes wait
            started = time.monotonic()
            busy = _login(browser, url, name, PASSWORDS[name])
            assert busy.status_code == 503 and "try again" in busy.text, busy.text[:300]
            assert busy.headers["retry-after"] == "5"
            assert time.monotonic() - started < 6
            holder.rollback()
        ok = _login(browser, url, name, PASSWORDS[name])
        assert ok.status_code == 303 and ok.headers["location"] == "/incidents"


def test_repeated_wrong_passwords_lock_the_user_out(served: tuple[str, Store, QueueExpected, Clock]) -> None:
    url, store, _, clock = served
    name = user(store, "viewer", "vera")
    with _http(url) as browser:
        for _ in range(5):
            assert _login(browser, url, name, "not the password").status_code == 401
        locked = _login(browser, url, name, PASSWORDS[name])
        assert locked.status_code == 401 and "Wrong user name or password" in locked.text  # says no more
        clock.at = NOW + timedelta(minutes=16)
        assert _login(browser, url, name, PASSWORDS[name]).status_code == 303


def test_state_changes_with_a_cookie_must_come_from_this_site(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, expected, _ = served
    name = user(store, "operator", "otto")
    with _http(url) as browser:
        assert _login(browser, url, name, PASSWORDS[name]).status_code == 303
        body = _act_body(expected.hill)
        for headers in ({}, {ORIGIN_HEADER: "http://evil.example"}, {"Referer": "http://evil.example/x"},
                        {ORIGIN_HEADER: url, "Sec-Fetch-Site": "cross-site"}):  # fmt: skip
            assert browser.post("/_dash-update-component", json=body, headers=headers).status_code == 403, (
                headers
            )
        # The login form itself: a cross-site post is refused before any password is checked.
        refused = browser.post(
            "/login", data={"username": name, "password": "x"}, headers={ORIGIN_HEADER: "http://evil.example"}
        )
        assert refused.status_code == 403
        assert (
            browser.post("/_dash-update-component", json=body, headers={ORIGIN_HEADER: url}).status_code
            == 200
        )


def test_role_headers_count_only_from_a_trusted_proxy(store: Store) -> None:
    seed_queue(store, NOW)
    forged = {"X-Vantage-User": "mallory", "X-Vantage-Role": "admin"}
    elsewhere = new_app(
        store, _settings(store, trust_headers=True, trusted_proxies=["10.0.0.1"]), clock=lambda: NOW
    )
    with live_server(elsewhere.server) as url:
        assert _http(url, headers=forged).get("/api/v1/incidents").status_code == 401
    proxied = new_app(
        store, _settings(store, trust_headers=True, trusted_proxies=["127.0.0.0/8"]), clock=lambda: NOW
    )
    with live_server(proxied.server) as url:
        assert _http(url, headers=forged).get("/api/v1/incidents").status_code == 200
    off = new_app(store, _settings(store, trusted_proxies=["127.0.0.0/8"]), clock=lambda: NOW)
    with live_server(off.server) as url:
        assert _http(url, headers=forged).get("/api/v1/incidents").status_code == 401


def test_a_wall_opened_once_with_a_read_only_token_runs_for_a_week(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, _, clock = served
    owner = user(store, "viewer", "noc-wall-3")
    token, text = tokens.create(store, "wall 3", owner=owner, role="viewer", days=30, now=NOW, actor="tests")
    with _http(url) as screen:
        opened = screen.get("/wall", params={"kiosk": 1, "access_token": text})
        assert (
            opened.status_code == 302 and opened.headers["location"] == "/wall?kiosk=1"
        )  # the token leaves the URL
        for hours in range(0, 7 * 24 + 1, 6):
            clock.at = NOW + timedelta(hours=hours)
            feed = screen.get("/api/v1/wall", headers={"X-Vantage-Passive": "1"})
            assert feed.status_code == 200, hours
        assert (
            screen.post(
                "/_dash-update-component", json=_act_body("x"), headers={ORIGIN_HEADER: url}
            ).status_code
            == 403
        )
        tokens.revoke(store, token.id, now=clock.at, actor="tests")
        assert screen.get("/api/v1/wall").status_code == 401


# --- machine senders ----------------------------------------------------------------------------


ALARM = json.dumps(
    {
        "eventType": "AlarmCreateEvent",
        "event": {
            "alarm": {
                "id": "forged-1",
                "perceivedSeverity": "critical",
                "state": "raised",
                "alarmRaisedTime": "2026-03-02T11:59:00Z",
                "alarmedObject": {"id": "ran-1"},
            }
        },
    }
).encode()
JSON = {"Content-Type": "application/json"}


def test_forged_pushes_are_refused_and_change_nothing(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, _, _ = served
    route = "/push/tmf-alarms/listener/alarmCreateEvent"
    with _http(url) as sender:
        # A page on another site posting "simple" text: refused for its origin, secret or not.
        page = {"Content-Type": "text/plain", ORIGIN_HEADER: "http://evil.example"}
        cross = sender.post(
            route, content=ALARM, headers={**page, "Authorization": f"Bearer {LISTENER_SECRET}"}
        )
        assert cross.status_code == 403
        assert (
            sender.post(route, content=ALARM, headers={"Content-Type": "application/json"}).status_code == 401
        )
        wrong = {"Content-Type": "application/json", "Authorization": "Bearer guessed"}
        assert sender.post(route, content=ALARM, headers=wrong).status_code == 401
        with store.connect() as conn:
            assert conn.execute(select(alarms.c.id).where(alarms.c.id == "forged-1")).first() is None
        # The source that knows the secret is heard, by header or as a hub callback's access_token.
        good = sender.post(
            route, content=ALARM, headers={**JSON, "Authorization": f"Bearer {LISTENER_SECRET}"}
        )
        assert good.status_code == 201, good.text
        assert sender.post(route, params={"access_token": LISTENER_SECRET}, content=ALARM,
                           headers={"Content-Type": "application/json"}).status_code == 201  # fmt: skip


def test_a_listener_with_no_secret_configured_refuses_everything(sqlite_store: Store) -> None:
    app = new_app(sqlite_store, _settings(sqlite_store), clock=lambda: NOW)
    client = app.server.test_client()
    response = client.post(
        "/push/tmf-alarms/listener/alarmCreateEvent", data=ALARM, content_type="application/json"
    )
    assert (
        response.status_code == 401 and "VANTAGE_LISTENER_SECRET_TMF_ALARMS" in response.get_json()["reason"]
    )


def test_the_hub_registration_carries_the_secret_the_listener_expects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connectors.tmf._base import with_access_token

    monkeypatch.setenv("VANTAGE_LISTENER_SECRET_TMF_ALARMS", LISTENER_SECRET)
    cfg = ConnectorConfig(name="tmf-alarms", type="tmf642", options={"base_url": "http://127.0.0.1:9/x",
                          "callback_url": "https://vantage.example/push/tmf-alarms?x=1"})  # fmt: skip
    assert cfg.build().context.listener_token == LISTENER_SECRET
    assert (
        with_access_token("https://v.example/push/a?x=1", "s")
        == "https://v.example/push/a?x=1&access_token=s"
    )


# --- personal data closed --------------------------------------------------------------------------


def test_prefix_searching_recovers_nothing_for_a_viewer(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, _, _ = served
    subscriber = _subscriber(url, store)
    with _as(url, store, "analyst") as analyst:
        clear = analyst.get(f"/api/v1/subscribers/{subscriber}", params={"unmask": 1}).json()
    msisdn = re.sub(r"\D", "", clear["profile"]["msisdn"])
    with _as(url, store, "viewer") as viewer:

        def found(q: str) -> bool:
            rows = viewer.get("/api/v1/subscribers", params={"q": q, "limit": 1000}).json()["subscribers"]
            return any(r["id"] == subscriber for r in rows)

        assert found("+" + msisdn)  # the whole number finds its line
        # The attack keeps the digit for which the subscriber is still returned: no true prefix
        # of the number may return it, so no digit is ever confirmed.
        confirmed = [k for k in range(3, len(msisdn)) if found("+" + msisdn[:k])]
        assert confirmed == []


def test_exports_hold_no_clear_personal_data_and_no_live_formula(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, _, _ = served
    with _as(url, store, "viewer") as viewer:
        exported = viewer.get("/api/v1/subscribers.csv")
    assert exported.status_code == 200 and exported.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows
    for row in rows:
        assert "*" in (row.get("msisdn") or "*")
        assert not any(str(v).startswith(("=", "+", "-", "@")) for v in row.values() if v and not _number(v))


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# --- hardening ------------------------------------------------------------------------------------


def test_responses_carry_the_security_headers_and_unknown_hosts_are_refused(
    served: tuple[str, Store, QueueExpected, Clock],
) -> None:
    url, store, _, _ = served
    with _as(url, store, "viewer") as client:
        page = client.get("/wall")
        api = client.get("/api/v1/incidents")
        static = client.get("/assets/10-vantage.css")
        foreign = client.get("/api/v1/incidents", headers={"Host": "attacker.example"})
    csp = page.headers["content-security-policy"]
    assert (
        "frame-ancestors 'none'" in csp and "script-src 'self' 'sha256-" in csp and "object-src 'none'" in csp
    )
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert api.headers["cache-control"] == "no-store" and page.headers["cache-control"] == "no-store"
    assert static.status_code == 200 and static.headers.get("cache-control") != "no-store"
    assert foreign.status_code == 400


# --- the commands ---------------------------------------------------------------------------------


def test_users_and_tokens_from_the_command_line(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard.cli import main

    db = ["--database-url", sqlite_store.url]
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main([*db, "users", "add", "ana", "--role", "operator", "--password-stdin"]) == 0
    assert main([*db, "users", "add", "bob", "--role", "viewer", "--generate"]) == 0
    shown = capsys.readouterr().out
    generated = shown.split("password (shown once):", 1)[1].split()[0]
    assert "a long enough password" not in shown
    assert users.authenticate(sqlite_store, "bob", generated, now=NOW, lockout_after=5,
                              lockout_for=timedelta(minutes=1)).reason == "ok"  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main([*db, "users", "add", "cid", "--role", "viewer", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    assert main([*db, "tokens", "add", "sync", "--user", "ana", "--role", "admin"]) == 2  # more than ana may
    assert main([*db, "tokens", "add", "sync", "--user", "ana", "--role", "operator", "--days", "7"]) == 0
    out = capsys.readouterr().out
    text = out.split("token (shown once):", 1)[1].split()[0]
    token_id = out.split()[1]
    assert tokens.verify(sqlite_store, text, now=datetime.now()) is not None
    assert main([*db, "tokens", "list"]) == 0 and "sync" in capsys.readouterr().out
    assert main([*db, "tokens", "revoke", token_id]) == 0
    assert tokens.verify(sqlite_store, text, now=datetime.now()) is None
    assert main([*db, "users", "disable", "bob"]) == 0
    assert main([*db, "users", "list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"bob\s+viewer\s+local\s+disabled", listed) and re.search(r"ana\s+operator", listed)
    with sqlite_store.connect() as conn:
        actions = conn.execute(select(audit.c.action).order_by(audit.c.id)).scalars().all()
    assert actions[:2] == ["user.add", "user.add"] and "token.revoke" in actions and "user.disable" in actions


def test_the_first_start_makes_admin_with_a_password_shown_once(sqlite_store: Store) -> None:
    assert (
        users.ensure_first_admin(sqlite_store, "a chosen admin password", now=NOW)
        == "a chosen admin password"
    )
    assert users.ensure_first_admin(sqlite_store, None, now=NOW) is None  # users exist: nothing more
    with sqlite_store.connect() as conn:
        assert [(u.name, u.role) for u in users.list_users(conn)] == [("admin", "admin")]


def test_the_first_start_makes_the_session_key_and_refuses_a_short_one(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vantage run` and `vantage serve` make the session key before any job holds the store (the
    web then only reads it); a $VANTAGE_SECRET_KEY too short stops them with what was expected."""
    from dashboard.cli.serve import first_admin
    from dashboard.store.schema import app_secrets
    from tests.apps import context_for

    monkeypatch.delenv(keys.SESSION_KEY_ENV, raising=False)
    monkeypatch.setenv("VANTAGE_ADMIN_PASSWORD", "a chosen admin password")
    ctx = context_for(sqlite_store)
    first_admin(ctx)
    with sqlite_store.connect() as conn:
        stored = conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == "session_key")).scalar()
    assert stored is not None and len(stored) == 64
    monkeypatch.setenv(keys.SESSION_KEY_ENV, "too short")
    with pytest.raises(SystemExit, match="VANTAGE_SECRET_KEY is too short: expected at least 32"):
        first_admin(ctx)
