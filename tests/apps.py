"""Apps for tests, built the way the product builds them: a Context on the test's store, settings,
catalogue and clock, then the app factory (or the API alone on a bare Flask server)."""

from __future__ import annotations

from typing import Any

import dash
import flask

from dashboard import api
from dashboard.app import create_app
from dashboard.config import Settings
from dashboard.context import REFRESH_MS, Clock, Context, install
from dashboard.kpis import Catalogue
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
) -> Any:
    """A test client of a bare Flask server with the JSON API and /healthz only (no Dash pages)."""
    server = flask.Flask(__name__)
    install(server, context_for(store, settings, clock=clock, catalogue=catalogue))
    api.register(server)
    return server.test_client()
