"""The audit log for admins: ``GET /api/v1/audit`` and its CSV export, the Audit page and the Access
page (users disabled and enabled, tokens revoked and made, each change audited with the admin as
the actor), and that no other role reaches any of them.

By hand: SEEDED holds seven records an hour apart from BASE (ids 1 to 7, oldest first); BULK adds
twenty by ``bot``, one a minute from BULK_AT (ids 8 to 27). Every request the test clients make
writes ``token.use`` records at CLOCK and ``user.add``/``token.create`` records at the real time,
so the tests that count records filter on the actor or on a window ending before CLOCK.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pytest
from sqlalchemy import insert, select

from dashboard import ids
from dashboard.auth import audit, tokens, users
from dashboard.context import current_actor, current_store, current_time
from dashboard.privacy import Role
from dashboard.store.db import Store
from dashboard.store.schema import audit as audit_table
from tests.apps import client, new_app, request_as, user
from tests.test_app import _text

BASE = datetime(2020, 1, 1, 12, 0)
BULK_AT = datetime(2020, 1, 1, 20, 0)
CLOCK = datetime(2020, 1, 2, 12, 0)
#: Before CLOCK, after every seeded record: ``until`` of the windows that hold only the seeded ones.
WINDOW_END = "2020-01-02T00:00:00"
FORMULA = ("=", "+", "-", "@", "\t", "\r")

#: (hours after BASE, actor, action, target type, target id, detail)
SEEDED: list[tuple[int, str, str, str | None, str | None, dict[str, Any] | None]] = [
    (0, "ana", "login", "user", "ana", {"method": "password"}),
    (1, "eve", "login.failed", "user", "eve", {"reason": "wrong_password"}),
    (2, "ana", "incident.acknowledge", "incident", "INC-1", None),
    (3, '=HYPERLINK("http://evil.example","x")', "login.failed", "user", "+SUM(A1)", {"note": "=1+1"}),
    (4, "boss", "user.disable", "user", "eve", None),
    (5, "ana", "subscriber.unmask", "subscriber", "@S1", {"fields": ["msisdn"]}),
    (6, "boss", "token.revoke", "token", "\tabc", None),
]
BULK = 20


def seed(store: Store) -> None:
    with store.begin() as conn:
        for hours, actor, action, target_type, target_id, detail in SEEDED:
            audit.record(
                conn,
                actor=actor,
                action=action,
                at=BASE + timedelta(hours=hours),
                target_type=target_type,
                target_id=target_id,
                detail=detail,
            )
        for i in range(BULK):
            audit.record(conn, actor="bot", action="wall.view", at=BULK_AT + timedelta(minutes=i))


@pytest.fixture
def app(store: Store) -> dash.Dash:
    """The whole app on a store holding SEEDED and BULK, its clock at CLOCK."""
    seed(store)
    return new_app(store, clock=lambda: CLOCK)


def _get(app: dash.Dash, store: Store, url: str, role: Role | None = "admin") -> Any:
    return client(app, store, role).get(url)


def _actions(body: dict[str, Any]) -> list[str]:
    return [r["action"] for r in body["records"]]


# --- GET /api/v1/audit -----------------------------------------------------------------------------


def test_an_admin_gets_the_records_newest_first_with_how_many_match(app: dash.Dash, store: Store) -> None:
    response = _get(app, store, f"/api/v1/audit?until={WINDOW_END}&limit=1000")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["count"] == len(SEEDED) + BULK and body["next"] is None
    records = body["records"]
    assert [r["id"] for r in records] == list(range(len(SEEDED) + BULK, 0, -1))
    assert [r["actor"] for r in records[:BULK]] == ["bot"] * BULK
    oldest = records[-1]
    assert oldest == {
        "id": 1,
        "at": "2020-01-01T12:00:00Z",
        "actor": "ana",
        "action": "login",
        "target_type": "user",
        "target_id": "ana",
        "detail": {"method": "password"},
    }
    # In JSON the values are as stored: only the CSV neutralises formulas.
    assert records[-4]["actor"].startswith("=HYPERLINK")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=ana", ["subscriber.unmask", "incident.acknowledge", "login"]),
        # An action family matches itself and every action under it; an action alone only itself.
        (f"action=login&until={WINDOW_END}", ["login.failed", "login.failed", "login"]),
        ("action=login.failed", ["login.failed", "login.failed"]),
        ("action=login.fail", []),
        ("target=eve", ["user.disable", "login.failed"]),
        # since included, until excluded.
        (
            "since=2020-01-01T14:00:00&until=2020-01-01T17:00:00",
            ["user.disable", "login.failed", "incident.acknowledge"],
        ),
        # A time with a zone is converted: 15:00+01:00 is 14:00 UTC.
        (
            "since=2020-01-01T15:00:00%2B01:00&until=2020-01-01T17:00:00Z",
            ["user.disable", "login.failed", "incident.acknowledge"],
        ),
        ("actor=ana&action=login&target=ana", ["login"]),
        ("actor=nobody", []),
    ],
)
def test_filters(app: dash.Dash, store: Store, query: str, expected: list[str]) -> None:
    body = _get(app, store, f"/api/v1/audit?{query}").get_json()
    assert _actions(body) == expected
    assert body["count"] == len(expected)


def test_the_next_cursor_pages_back_through_every_record_once(app: dash.Dash, store: Store) -> None:
    http = client(app, store, "admin")
    first = http.get("/api/v1/audit?actor=bot&limit=7").get_json()
    second = http.get(f"/api/v1/audit?actor=bot&limit=7&before={first['next']}").get_json()
    third = http.get(f"/api/v1/audit?actor=bot&limit=7&before={second['next']}").get_json()
    pages = [first, second, third]
    assert [len(p["records"]) for p in pages] == [7, 7, 6]
    assert [p["count"] for p in pages] == [BULK] * 3  # the total matching, on every page
    ids_seen = [r["id"] for p in pages for r in p["records"]]
    assert ids_seen == sorted(ids_seen, reverse=True) and len(set(ids_seen)) == BULK
    assert first["next"] == first["records"][-1]["id"] and third["next"] is None
    # A page that ends exactly at the last record says so: no cursor to an empty page.
    half = http.get("/api/v1/audit?actor=bot&limit=10").get_json()
    rest = http.get(f"/api/v1/audit?actor=bot&limit=10&before={half['next']}").get_json()
    assert len(rest["records"]) == 10 and rest["next"] is None
    assert http.get("/api/v1/audit?actor=bot&limit=20").get_json()["next"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("before=0", "before"),
        ("before=abc", "before"),
        ("before=99999999999999999999", "before"),
        ("since=yesterday", "since"),
        ("until=2020-13-01", "until"),
        ("since=0001-01-01T00:00:00%2B14:00", "since"),  # before year 1 in UTC
        ("since=2020-01-02&until=2020-01-01", "until"),
        ("since=2020-01-02&until=2020-01-02", "until"),
        (f"actor={'a' * 129}", "actor"),
        (f"action={'a' * 65}", "action"),
        (f"target={'a' * 129}", "target"),
    ],
)
def test_a_parameter_it_cannot_use_is_a_400_naming_it(
    app: dash.Dash, store: Store, query: str, parameter: str
) -> None:
    http = client(app, store, "admin")
    for route in ("/api/v1/audit", "/api/v1/audit.csv"):
        if route.endswith(".csv") and parameter in ("limit", "before"):
            continue  # the export takes no paging parameters
        response = http.get(f"{route}?{query}")
        assert response.status_code == 400, (route, query)
        body = response.get_json()
        assert body["parameter"] == parameter and body["error"].startswith(f"{parameter}: expected")


# --- GET /api/v1/audit.csv -------------------------------------------------------------------------


def _csv(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_csv_is_every_matching_record_and_an_attachment(app: dash.Dash, store: Store) -> None:
    http = client(app, store, "admin")
    response = http.get(f"/api/v1/audit.csv?until={WINDOW_END}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    rows = _csv(response)
    assert [int(r["id"]) for r in rows] == list(range(len(SEEDED) + BULK, 0, -1))
    assert list(rows[0]) == ["id", "at", "actor", "action", "target_type", "target_id", "detail"]
    assert rows[-1] | {"detail": json.loads(rows[-1]["detail"])} == {
        "id": "1",
        "at": "2020-01-01T12:00:00Z",
        "actor": "ana",
        "action": "login",
        "target_type": "user",
        "target_id": "ana",
        "detail": {"method": "password"},
    }
    # Filters apply as to the JSON, and without them it is the whole log.
    assert [r["action"] for r in _csv(http.get("/api/v1/audit.csv?actor=ana"))] == [
        "subscriber.unmask",
        "incident.acknowledge",
        "login",
    ]
    whole = _csv(http.get("/api/v1/audit.csv"))
    assert len(whole) == http.get("/api/v1/audit?limit=1000").get_json()["count"] > len(SEEDED) + BULK


def test_the_csv_neutralises_every_formula(app: dash.Dash, store: Store) -> None:
    rows = _csv(_get(app, store, f"/api/v1/audit.csv?until={WINDOW_END}"))
    by_id = {r["id"]: r for r in rows}
    assert by_id["4"]["actor"] == "'" + SEEDED[3][1]
    assert by_id["4"]["target_id"] == "'+SUM(A1)"
    assert by_id["6"]["target_id"] == "'@S1"
    assert by_id["7"]["target_id"] == "'\tabc"
    assert json.loads(by_id["4"]["detail"]) == {"note": "=1+1"}  # inside JSON text, not a cell's start
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(FORMULA), row


def test_the_csv_streams_an_export_larger_than_its_chunks(store: Store) -> None:
    at = datetime(2019, 6, 1)
    n = 2345
    with store.begin() as conn:
        conn.execute(
            insert(audit_table),
            [{"at": at, "actor": "-bulk", "action": "wall.view", "target_id": f"={i}"} for i in range(n)],
        )
    app = new_app(store, clock=lambda: CLOCK)
    rows = _csv(_get(app, store, "/api/v1/audit.csv?actor=-bulk"))
    assert len(rows) == n and len({r["id"] for r in rows}) == n
    assert {r["actor"] for r in rows} == {"'-bulk"}
    assert {r["target_id"] for r in rows} == {f"'={i}" for i in range(n)}


# --- Who may read it -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "analyst"])
def test_other_roles_are_refused(app: dash.Dash, store: Store, role: Role) -> None:
    for route in ("/api/v1/audit", "/api/v1/audit.csv"):
        response = _get(app, store, route, role)
        assert response.status_code == 403, route
        assert "records" not in response.get_data(as_text=True)
        assert "HYPERLINK" not in response.get_data(as_text=True)


def test_no_credentials_is_a_401(app: dash.Dash, store: Store) -> None:
    for route in ("/api/v1/audit", "/api/v1/audit.csv"):
        response = _get(app, store, route, None)
        assert response.status_code == 401, route
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- The Audit page --------------------------------------------------------------------------------


@pytest.fixture
def audit_page(app: dash.Dash) -> Iterator[ModuleType]:
    """The Audit page module inside a request of an admin, ``boss``."""
    with request_as(app.server, "admin", "boss"):
        yield importlib.import_module("dashboard.pages.audit")


def find(component: Any, kind: type | None = None, **props: Any) -> list[Any]:
    """Every component in the tree of type ``kind`` whose props equal ``props``."""
    found: list[Any] = []
    if isinstance(component, list | tuple):
        for c in component:
            found += find(c, kind, **props)
        return found
    if component is None or isinstance(component, str | int | float):
        return found
    if (kind is None or isinstance(component, kind)) and all(
        getattr(component, k, None) == v for k, v in props.items()
    ):
        found.append(component)
    return found + find(getattr(component, "children", None), kind, **props)


def _one(component: Any, id_: str) -> Any:
    (match,) = find(component, None, id=id_)
    return match


def test_the_page_shows_the_filtered_log_newest_first_with_its_export(audit_page: ModuleType) -> None:
    view = audit_page.layout(actor="ana", since="2020-01-01T13:00")
    grid = _one(view, ids.AUDIT_GRID)
    assert isinstance(grid, dag.AgGrid)
    assert [r["action"] for r in grid.rowData] == ["subscriber.unmask", "incident.acknowledge"]
    assert grid.rowData[0] == {
        "id": "6",
        "at": "2020-01-01 17:00:00",
        "actor": "ana",
        "action": "subscriber.unmask",
        "target_type": "subscriber",
        "target_id": "@S1",
        "detail": '{"fields": ["msisdn"]}',
    }
    assert _text(_one(view, ids.AUDIT_COUNT)) == "Records 1 to 2 of 2, newest first."
    export = _one(view, ids.AUDIT_EXPORT)
    assert export.href == "/api/v1/audit.csv?actor=ana&since=2020-01-01T13%3A00" and not export.disabled
    assert _one(view, ids.AUDIT_ACTOR).value == "ana"
    assert _one(view, ids.AUDIT_NEWER).disabled and _one(view, ids.AUDIT_OLDER).disabled


def test_the_action_filter_offers_each_action_and_family(audit_page: ModuleType) -> None:
    options = _one(audit_page.layout(), ids.AUDIT_ACTION).options
    values = [o["value"] for o in options]
    assert values[0] == audit_page.ANY
    for value in ("login", "login.failed", "incident", "incident.acknowledge", "user", "user.disable"):
        assert value in values
    labels = {o["value"]: o["label"] for o in options}
    assert labels["login"] == "login (all)" and labels["login.failed"] == "login.failed"
    assert audit_page.action_options(["a.b.c"]) == [
        {"label": "All actions", "value": "any"},
        {"label": "a (all)", "value": "a"},
        {"label": "a.b (all)", "value": "a.b"},
        {"label": "a.b.c", "value": "a.b.c"},
    ]
    # A deep link's action is kept even when the log holds none of it.
    assert {"label": "x.y", "value": "x.y"} in audit_page.action_options([], "x.y")


def test_the_pager_turns_back_and_forth_by_cursor(audit_page: ModuleType, store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(audit_table),
            [
                {"at": BULK_AT, "actor": "pager", "action": "wall.view"}
                for _ in range(2 * audit_page.PAGE_SIZE + 50)
            ],
        )
    filters = audit_page.clean_filters(actor="pager")
    first = audit_page.audit_view(store, filters)
    assert len(first.rows) == audit_page.PAGE_SIZE and first.newer_disabled and not first.older_disabled
    second = audit_page.audit_view(store, filters, ids.AUDIT_OLDER, first.paging)
    third = audit_page.audit_view(store, filters, ids.AUDIT_OLDER, second.paging)
    assert third.summary == "Records 201 to 250 of 250, newest first."
    assert len(third.rows) == 50 and third.older_disabled and not third.newer_disabled
    shown = [r["id"] for v in (first, second, third) for r in v.rows]
    assert len(set(shown)) == 250 and [int(i) for i in shown] == sorted((int(i) for i in shown), reverse=True)
    back = audit_page.audit_view(store, filters, ids.AUDIT_NEWER, third.paging)
    assert back.rows == second.rows and back.summary == "Records 101 to 200 of 250, newest first."
    # Older on the last page stays; a filter change starts again at the newest page.
    assert audit_page.audit_view(store, filters, ids.AUDIT_OLDER, third.paging).rows == third.rows
    assert audit_page.audit_view(store, filters, ids.AUDIT_ACTOR, third.paging).rows == first.rows
    # A forged paging store starts again at the newest page.
    for forged in ("x", {"pages": [1, 2]}, {"pages": [None, "a"]}, {"pages": [None, 10**30]}, None):
        assert audit_page.audit_view(store, filters, ids.AUDIT_NEWER, forged).rows == first.rows


def test_a_filter_it_cannot_use_says_which(audit_page: ModuleType) -> None:
    view = audit_page.audit_view(current_store(), audit_page.clean_filters(since="yesterday"))
    assert view.rows == [] and view.summary.startswith("From: expected") and view.export_disabled
    view = audit_page.audit_view(
        current_store(), audit_page.clean_filters(since="2020-01-02", until="2020-01-01")
    )
    assert view.summary == "To: must be after From"
    view = audit_page.audit_view(current_store(), audit_page.clean_filters(actor="x" * 200))
    assert view.summary == "Actor: at most 128 characters"
    # Values that are not text are no filter; "any" is no action filter.
    assert audit_page.clean_filters({"x": 1}, "any", 3, None, " 2020-01-01 ") == audit_page.Filters(
        until="2020-01-01"
    )


def test_the_refresh_keeps_the_rows_when_the_store_cannot_be_read(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: the audit table is missing
    app = new_app(store)
    module = importlib.import_module("dashboard.pages.audit")
    with request_as(app.server, "admin"):
        assert "could not be read" in _text(module.layout())
        out = module.refresh_view(store, module.Filters(), None, None)
    assert out[0] is dash.no_update and out[1] == "STALE: the store could not be read"


# --- The Access page -------------------------------------------------------------------------------


@pytest.fixture
def access_page(app: dash.Dash, store: Store) -> Iterator[ModuleType]:
    """The Access page module inside a request of the admin ``boss``; ``eve`` is an operator."""
    user(store, "admin", "boss")
    user(store, "operator", "eve")
    with request_as(app.server, "admin", "boss"):
        yield importlib.import_module("dashboard.pages.access")


def _audited(store: Store, action: str) -> list[tuple[str, str | None, datetime]]:
    """Who did ``action`` to which target, and when, since CLOCK (the pages act at CLOCK)."""
    with store.connect() as conn:
        rows = conn.execute(
            select(audit_table.c.actor, audit_table.c.target_id, audit_table.c.at)
            .where(audit_table.c.action == action, audit_table.c.at >= CLOCK)  # not SEEDED's
            .order_by(audit_table.c.id)
        ).all()
    return [(r.actor, r.target_id, r.at) for r in rows]


def _state(rows: list[dict[str, Any]], key: str, value: str) -> str:
    (row,) = [r for r in rows if r[key] == value]
    return str(row["state"])


def test_the_page_lists_users_and_tokens(access_page: ModuleType, store: Store) -> None:
    token, _ = tokens.create(
        store, "wall screen", owner="eve", role="viewer", days=30, now=CLOCK, actor="boss"
    )
    view = access_page.layout()
    users_grid = _one(view, ids.ACCESS_USERS_GRID)
    assert {"boss", "eve"} <= {r["name"] for r in users_grid.rowData}
    (eve,) = [r for r in users_grid.rowData if r["name"] == "eve"]
    assert eve == {
        "name": "eve",
        "role": "operator",
        "source": "local",
        "state": "active",
        "last_login": "never",
    }
    (row,) = [r for r in _one(view, ids.ACCESS_TOKENS_GRID).rowData if r["id"] == token.id]
    assert row == {
        "id": token.id,
        "name": "wall screen",
        "prefix": f"{token.prefix}…",
        "owner": "eve",
        "role": "viewer",
        "state": "active",
        "expires": "2020-02-01 12:00",
        "last_used": "never",
    }
    owners = [o["value"] for o in _one(view, ids.ACCESS_TOKEN_OWNER).options]
    assert "eve" in owners and "boss" in owners


def test_disabling_and_enabling_a_user_works_and_is_audited(access_page: ModuleType, store: Store) -> None:
    token, text = tokens.create(store, "eve's", owner="eve", role="operator", days=1, now=CLOCK, actor="boss")
    rows, message, changed, owners = access_page.user_action(
        current_store(), ids.ACCESS_DISABLE, [{"name": "eve"}], 3, actor=current_actor(), now=current_time()
    )
    assert _state(rows, "name", "eve") == "disabled" and "eve disabled" in _text(message)
    assert changed == 4 and "eve" not in [o["value"] for o in owners]
    assert _audited(store, "user.disable") == [("boss", "eve", CLOCK)]
    with store.connect() as conn:
        assert users.get(conn, "eve").disabled  # type: ignore[union-attr]
    assert tokens.verify(store, text, now=CLOCK) is None  # a disabled owner's tokens stop working
    # The tokens grid re-reads when a user changed, and says why the token no longer works.
    token_rows, token_message, created, _ = access_page.token_action(
        store, ids.ACCESS_CHANGED, None, (None, None, None, None), actor="boss", now=CLOCK
    )
    assert _state(token_rows, "id", token.id) == "owner disabled"
    assert token_message is dash.no_update and created is dash.no_update

    rows, message, _, owners = access_page.user_action(
        store, ids.ACCESS_ENABLE, {"ids": ["eve"]}, 4, actor="boss", now=CLOCK
    )
    assert _state(rows, "name", "eve") == "active" and "eve" in [o["value"] for o in owners]
    assert _audited(store, "user.enable") == [("boss", "eve", CLOCK)]


def test_a_user_action_that_cannot_be_done_says_why_and_changes_nothing(
    access_page: ModuleType, store: Store
) -> None:
    for selected, expected in (
        (None, "Select a user first."),
        ("garbage", "Select a user first."),
        ([{"name": "boss"}], "You may not disable yourself"),
        ([{"name": "nobody"}], "no user 'nobody'"),
    ):
        rows, message, changed, _ = access_page.user_action(
            store, ids.ACCESS_DISABLE, selected, 0, actor="boss", now=CLOCK
        )
        assert expected in _text(message) and isinstance(message, dbc.Alert)
        assert rows is dash.no_update and changed is dash.no_update
    assert _audited(store, "user.disable") == []


def test_revoking_a_token_works_and_is_audited(access_page: ModuleType, store: Store) -> None:
    token, text = tokens.create(store, "probe", owner="eve", role="viewer", days=1, now=CLOCK, actor="boss")
    rows, message, created, _ = access_page.token_action(
        current_store(),
        ids.ACCESS_REVOKE,
        [{"id": token.id}],
        (None, None, None, None),
        actor=current_actor(),
        now=current_time(),
    )
    assert _state(rows, "id", token.id) == "revoked" and "revoked" in _text(message)
    assert created is None  # any other action hides a token shown once
    assert tokens.verify(store, text, now=CLOCK) is None
    assert _audited(store, "token.revoke") == [("boss", token.id, CLOCK)]
    _, message, _, _ = access_page.token_action(
        store, ids.ACCESS_REVOKE, [], (None, None, None, None), actor="boss", now=CLOCK
    )
    assert "Select a token first." in _text(message)


def test_creating_a_token_shows_its_text_once_and_is_audited(access_page: ModuleType, store: Store) -> None:
    rows, message, created, name_box = access_page.token_action(
        store,
        ids.ACCESS_TOKEN_CREATE,
        None,
        ("wall screen", "eve", "viewer", 30),
        actor=current_actor(),
        now=CLOCK,
    )
    assert "Token created." in _text(message) and name_box == ""
    (code,) = [c for c in find(created) if type(c).__name__ == "Code"]
    principal = tokens.verify(store, code.children, now=CLOCK)
    assert principal is not None and (principal.user, principal.role) == ("eve", "viewer")
    (row,) = [r for r in rows if r["name"] == "wall screen"]
    assert row["owner"] == "eve" and row["state"] == "active" and row["expires"] == "2020-02-01 12:00"
    assert code.children not in json.dumps(rows)  # the grid never holds the text
    ((actor, target, _),) = _audited(store, "token.create")[-1:]
    assert (actor, target) == ("boss", row["id"])


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (("x", "eve", "admin", 30), "may not have the role 'admin'"),  # more than its owner's
        (("x", "eve", "viewer", 0), "valid for more than 0"),
        (("x", "eve", "viewer", "abc"), "days: expected a number"),
        (("x", "eve", "viewer", None), "days: expected a number"),
        (("x", "eve", "viewer", 10**400), "days: expected a number"),
        (("x", "nobody", "viewer", 30), "no active user 'nobody'"),
        (("   ", "eve", "viewer", 30), "a token needs a name"),
        (("x", "eve", "king", 30), "unknown role 'king'"),
        (({"x": 1}, ["eve"], 3, 30), "unknown role ''"),
    ],
)
def test_a_token_that_cannot_be_made_says_why(
    access_page: ModuleType, store: Store, form: tuple[Any, ...], expected: str
) -> None:
    before = _audited(store, "token.create")
    _, message, created, name_box = access_page.token_action(
        store, ids.ACCESS_TOKEN_CREATE, None, form, actor="boss", now=CLOCK
    )
    assert expected in _text(message) and created is None and name_box is dash.no_update
    assert _audited(store, "token.create") == before


def test_other_roles_see_no_audit_or_access_page(app: dash.Dash) -> None:
    for module in ("dashboard.pages.audit", "dashboard.pages.access"):
        page = dash.page_registry[module]
        assert page["access"] == "admin"
        for role in ("viewer", "operator", "analyst"):
            with request_as(app.server, role):
                refused = page["layout"]()
            assert "Not for your role" in _text(refused)
        with request_as(app.server, "admin"):
            assert "Not for your role" not in _text(page["layout"]())


# --- The callbacks as the browser calls them -------------------------------------------------------


def _callback(app: dash.Dash, output_id: str) -> tuple[str, dict[str, Any]]:
    """The key and spec of the callback with an output on ``output_id``."""
    (found,) = [(k, v) for k, v in app.callback_map.items() if f"{output_id}." in k]
    return found


def _request(key: str, spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The body Dash's renderer sends for the callback ``key``, the first input changed."""
    outputs = [
        {"id": part.rpartition(".")[0], "property": part.rpartition(".")[2]}
        for part in key.strip(".").split("...")
    ]

    def filled(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [dict(i, value=values.get(f"{i['id']}.{i['property']}")) for i in items]

    inputs = filled(spec["inputs"])
    return {
        "output": key,
        "outputs": outputs,
        "inputs": inputs,
        "state": filled(spec.get("state", [])),
        "changedPropIds": [next(f"{i['id']}.{i['property']}" for i in inputs if i["value"] is not None)],
    }


def test_an_admin_disables_a_user_through_the_callback_and_no_other_role_may(
    app: dash.Dash, store: Store
) -> None:
    user(store, "operator", "eve")
    key, spec = _callback(app, ids.ACCESS_USERS_RESULT)
    body = _request(
        key,
        spec,
        {f"{ids.ACCESS_DISABLE}.n_clicks": 1, f"{ids.ACCESS_USERS_GRID}.selectedRows": [{"name": "eve"}]},
    )
    for role in ("viewer", "operator", "analyst"):
        refused = client(app, store, role).post("/_dash-update-component", json=body)
        assert refused.status_code == 403, role
    with store.connect() as conn:
        assert not users.get(conn, "eve").disabled  # type: ignore[union-attr]
    assert _audited(store, "user.disable") == []

    done = client(app, store, "admin", "boss").post("/_dash-update-component", json=body)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "eve disabled" in done.get_data(as_text=True)
    assert _audited(store, "user.disable") == [("boss", "eve", CLOCK)]


def test_every_callback_of_both_pages_is_for_admins_only(app: dash.Dash, store: Store) -> None:
    mine = [
        (k, v)
        for k, v in app.callback_map.items()
        if any(f'"{p}-' in k or f".{p}-" in k or k.startswith(f"{p}-") for p in ("audit", "access"))
    ]
    assert len(mine) == 3
    operator = client(app, store, "operator")
    for key, spec in mine:
        first = spec["inputs"][0]
        body = _request(key, spec, {f"{first['id']}.{first['property']}": 1})
        assert operator.post("/_dash-update-component", json=body).status_code == 403, key
        assert client(app, store, "admin").post("/_dash-update-component", json=body).status_code in (
            200,
            204,
        )
