"""A store that refuses connections or accepts and never answers: every API route and /healthz
answer JSON 503 within the connect timeout, never an HTML 500 and never a hang."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from dashboard.config import Settings
from dashboard.store import Store
from dashboard.store.db import CLIENT_GRACE_S, CONNECT_TIMEOUT_S, DEADLINES, PING_LIMIT_S, statement_limit
from tests.apps import api_client
from tests.faults import TcpProxy, closed_port, silent_server

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


@pytest.mark.postgres
def test_a_stalled_path_to_the_store_is_a_503_after_the_limit_and_jobs_are_not_cut(pg_store: Store) -> None:
    """The network path stalls mid-request (the server's own timeout never arrives): the client cuts
    the connection at web.statement_timeout_s plus a grace and /healthz says "down" within its own
    limit; a job's statement on the same path, which has no limit, waits for the path to recover."""
    url = make_url(pg_store.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = Store(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        schema=pg_store.schema,
    )
    job_conn = proxied.engine.connect()
    try:
        settings = Settings.model_validate({"database_url": proxied.url, "web": {"statement_timeout_s": 1}})
        client = api_client(proxied, settings)
        assert client.get("/api/v1/incidents").status_code == 200
        job_conn.execute(text("SELECT 1"))
        cut_before = DEADLINES.cut
        with statement_limit(1.0), proxied.engine.connect() as conn:  # as a request's statement
            conn.execute(text("SELECT 1"))
            proxy.set("stall")
            started = time.monotonic()
            with pytest.raises(OperationalError):
                conn.execute(text("SELECT count(*) FROM incident_queue"))
            took = time.monotonic() - started
            assert 1 + CLIENT_GRACE_S - 0.5 < took < 1 + CLIENT_GRACE_S + 1, took
        assert DEADLINES.cut == cut_before + 1
        done = threading.Event()

        def job() -> None:
            job_conn.execute(text("SELECT count(*) FROM incident_queue")).scalar_one()
            done.set()

        threading.Thread(target=job, daemon=True).start()
        started = time.monotonic()
        resp = client.get("/api/v1/incidents")
        took = time.monotonic() - started
        assert resp.status_code == 503 and resp.is_json, resp.get_data(as_text=True)[:200]
        # at worst the pool's ping is cut, then its one reconnect times out (the cut above has
        # already invalidated the pool: then only the reconnect)
        assert took < PING_LIMIT_S + CLIENT_GRACE_S + CONNECT_TIMEOUT_S + 1.5, took

        started = time.monotonic()
        resp = client.get("/healthz")
        took = time.monotonic() - started
        assert resp.status_code == 503 and resp.get_json()["status"] == "down"
        assert took < CONNECT_TIMEOUT_S + 1.5, took  # the pool holds no connection now: a new one

        assert not done.is_set()
        proxy.set("pass")
        assert done.wait(10), "the job did not finish once the path recovered"
        assert client.get("/api/v1/incidents").status_code == 200

        # a pooled connection whose path stalls between requests: its liveness ping is cut sooner
        # than a statement would be
        cut_before = DEADLINES.cut
        proxy.set("stall")
        started = time.monotonic()
        resp = client.get("/api/v1/incidents")
        took = time.monotonic() - started
        assert resp.status_code == 503, resp.get_data(as_text=True)[:200]
        assert DEADLINES.cut == cut_before + 1
        assert took < PING_LIMIT_S + CLIENT_GRACE_S + CONNECT_TIMEOUT_S + 1.5, took
    finally:
        proxy.set("pass")  # a failed assertion above must not leave the job's connection stalled
        job_conn.close()
        proxy.close()
        proxied.dispose()
