"""A store that refuses connections or accepts and never answers: every API route and /healthz
answer JSON 503 within the connect timeout, never an HTML 500 and never a hang."""

from __future__ import annotations

import time

import pytest

from dashboard.config import Settings
from dashboard.store import Store
from dashboard.store.db import CONNECT_TIMEOUT_S
from tests.apps import api_client
from tests.faults import closed_port, silent_server

ROUTES = ["/api/v1/incidents", "/api/v1/wall", "/api/v1/subscribers?q=351", "/api/v1/kpis", "/api/v1/linkage"]


def _check(url: str) -> None:
    store = Store(url)
    client = api_client(store, Settings(database_url=url))
    try:
        for route in [*ROUTES, "/healthz"]:
            started = time.monotonic()
            resp = client.get(route)
            took = time.monotonic() - started
            assert resp.status_code == 503, (route, resp.status_code, resp.get_data(as_text=True)[:200])
            assert resp.is_json, route
            assert took < CONNECT_TIMEOUT_S + 2, (route, took)
    finally:
        store.dispose()


def test_a_store_that_refuses_connections_is_a_json_503_everywhere() -> None:
    _check(f"postgresql+psycopg://vantage@127.0.0.1:{closed_port()}/vantage")


@pytest.mark.slow
def test_a_store_that_never_answers_is_a_json_503_within_the_timeout() -> None:
    with silent_server() as port:
        _check(f"postgresql+psycopg://vantage@127.0.0.1:{port}/vantage")
