"""Apps for tests, built the way the product builds them: a Context on the test's store, settings,
catalogue and clock, then the app factory (or the API alone on a bare Flask server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dash
import flask

from connectors.base import utcnow
from dashboard import api, guard
from dashboard.app import create_app
from dashboard.auth import tokens, users
from dashboard.config import Settings
from dashboard.context import PRINCIPAL_KEY, REFRESH_MS, Clock, Context, install
from dashboard.kpis import Catalogue
from dashboard.privacy import Principal, Role
from dashboard.store.db import Store


def context_for(
    store: Store,
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    catalogue: Catalogue | None = None,
) -> Context:
    """A Context on ``store`` (settings default to the store's URL and nothing else)."""
    return Context.build(
        settings if settings is not None else Settings(database_url=store.url),
        store=store,
        catalogue=catalogue,
        clock=clock,
    )


def new_app(
    store: Store,
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    catalogue: Catalogue | None = None,
    refresh_ms: int = REFRESH_MS,
) -> dash.Dash:
    """The whole app (pages, API, push routes) on ``store``, as ``vantage run`` builds it."""
    return create_app(context_for(store, settings, clock=clock, catalogue=catalogue), refresh_ms=refresh_ms)


def api_client(
    store: Store,
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    catalogue: Catalogue | None = None,
    role: Role | None = "viewer",
) -> Any:
    """A test client of a bare Flask server with the JSON API and /healthz only (no Dash pages),
    guarded as the app is, sending an API token of a user with ``role`` (None: no credentials)."""
    server = flask.Flask(__name__)
    ctx = context_for(store, settings, clock=clock, catalogue=catalogue)
    install(server, ctx)
    api.register(server)
    guard.install(server, ctx)
    client = server.test_client()
    if role is not None:
        client.environ_base["HTTP_AUTHORIZATION"] = bearer(store, role)
    return client


@contextmanager
def request_as(server: flask.Flask, role: Role, user: str = "tester", **kwargs: Any) -> Iterator[None]:
    """A request context of ``server`` whose principal (as the guard would have set it) is ``user``
    with ``role``: for calling page functions and callbacks directly."""
    with server.test_request_context(**kwargs):
        setattr(flask.g, PRINCIPAL_KEY, Principal(user=user, role=role))
        yield


#: Passwords of the users tests make, by name (they are random per run).
PASSWORDS: dict[str, str] = {}


def user(store: Store, role: Role, name: str | None = None) -> str:
    """A user with ``role`` in ``store`` (made once), named ``tester-<role>`` unless named."""
    name = name or f"tester-{role}"
    with store.connect() as conn:
        existing = users.get(conn, name)
    if existing is None:
        PASSWORDS[name] = users.generate_password()
        users.add(store, name, role, PASSWORDS[name], now=utcnow(), actor="tests")
    return name


def bearer(store: Store, role: Role, name: str | None = None) -> str:
    """An ``Authorization`` header value: a fresh API token of a user with ``role``."""
    owner = user(store, role, name)
    _, text = tokens.create(store, "tests", owner=owner, role=role, days=1, now=utcnow(), actor="tests")
    return f"Bearer {text}"


def client(
    app: dash.Dash | flask.Flask, store: Store, role: Role | None = "viewer", name: str | None = None
) -> Any:
    """A test client of ``app`` sending a token of a user with ``role`` (None: no credentials)."""
    server = app.server if isinstance(app, dash.Dash) else app
    c = server.test_client()
    if role is not None:
        c.environ_base["HTTP_AUTHORIZATION"] = bearer(store, role, name)
    return c
