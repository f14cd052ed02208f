"""A store that refuses connections or accepts and never answers: every API route and /healthz
answer JSON 503 within the connect timeout, never an HTML 500 and never a hang."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from dashboard.config import Settings
from dashboard.store import Store
from dashboard.store.db import CONNECT_TIMEOUT_S
from tests.apps import api_client
from tests.faults import closed_port, silent_server

ROUTES = ["/api/v1/incidents", "/api/v1/wall", "/api/v1/subscribers?q=351", "/api/v1/kpis", "/api/v1/linkage"]


def _check(url: str) -> None:
    store = Store(url)
    client = api_client(store, Settings(database_url=url, security={"anonymous_role": "viewer"}), role=None)
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


@pytest.mark.postgres
def test_a_request_waiting_on_a_held_lock_is_a_503_jobs_are_not_cut(pg_store: Store) -> None:
    """A store that holds a lock (or hangs mid-query): the request gives up at web.statement_timeout_s
    with a JSON 503; a job, outside any request, waits as long as it must."""
    settings = Settings.model_validate({"database_url": pg_store.url, "web": {"statement_timeout_s": 1}})
    client = api_client(pg_store, settings)
    assert client.get("/api/v1/incidents").status_code == 200
    with pg_store.engine.connect() as holder:
        holder.execute(text("LOCK TABLE incident_queue IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        resp = client.get("/api/v1/incidents")
        took = time.monotonic() - started
        assert resp.status_code == 503 and resp.is_json, resp.get_data(as_text=True)[:200]
        assert took < 4, took

        def release() -> None:
            time.sleep(2.5)
            holder.rollback()

        threading.Thread(target=release).start()
        started = time.monotonic()
        with pg_store.connect() as conn:  # a job: no request, no limit
            conn.execute(text("SELECT count(*) FROM incident_queue")).scalar_one()
        assert time.monotonic() - started > 2
    assert client.get("/api/v1/incidents").status_code == 200
