"""The shared cache on a real Redis: reads once per version, a writer's bump is seen at the next read,
many readers cost one store read, nothing personal or role-bound is cached, and no Redis at all
changes nothing but speed.

Tests needing Redis use ``$VANTAGE_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0) under a key
prefix of their own, removed afterwards; they are skipped, saying why, when it is unreachable.
"""

from __future__ import annotations

import importlib
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import event

from connectors.base import Batch
from dashboard import cache, incidents
from dashboard.app import refresh_strip
from dashboard.config import CacheConfig, ConnectorConfig, Settings, WallConfig, WallView
from dashboard.kpis import load_catalogue
from dashboard.store.db import Store
from dashboard.wall import wall_state
from tests.apps import client, context_for, new_app, request_as
from tests.browser import fixed_clock, seed_queue

REDIS_URL = os.environ.get("VANTAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NOW = datetime(2024, 5, 15, 12, 0, 0)
#: Personal data of tests.browser.seed_queue: a consumer holder's name and the lines' MSISDNs.
PERSONAL = ("Mendes", "351910000000", "351930000000", "35192000000")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own in a reachable Redis; every key under it removed afterwards."""
    client_ = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client_.ping()
    except redis.RedisError as err:
        pytest.skip(f"no Redis at {REDIS_URL} ({type(err).__name__}): set VANTAGE_TEST_REDIS_URL to one")
    name = f"vantage-test-{uuid.uuid4().hex[:10]}:"
    yield name
    for key in client_.scan_iter(match=name + "*"):
        client_.delete(key)


def _settings(store: Store, cache_config: CacheConfig | None = None) -> Settings:
    return Settings(
        database_url=store.url,
        currency="EUR",
        wall=WallConfig(top=8, playlist=[WallView(view="incidents", seconds=20)]),
        connectors=[ConnectorConfig(name="alarms", type="simulator", interval=60)],
        cache=cache_config or CacheConfig(),
    )


def _cached(store: Store, prefix: str) -> Settings:
    return _settings(store, CacheConfig(url=REDIS_URL, prefix=prefix))


@contextmanager
def counted(store: Store) -> Iterator[list[int]]:
    """Count the statements ``store`` sends inside the block (in the one-item list yielded)."""
    seen = [0]

    def one(*_args: Any) -> None:
        seen[0] += 1

    event.listen(store.engine, "before_cursor_execute", one)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", one)


def _new_alarm(store: Store, settings: Settings, alarm_id: str, resource: str) -> None:
    """An alarm written through the ingest path as the scheduler's connectors write it (bumping)."""
    ctx = context_for(store, settings, clock=fixed_clock(NOW))
    ingestor = cache.BumpingIngestor(ctx, clock=fixed_clock(NOW))
    record = {
        "id": alarm_id,
        "resource_id": resource,
        "severity": "critical",
        "state": "raised",
        "probable_cause": "powerProblem",
        "specific_problem": f"{resource} power",
        "service_affecting": True,
        "raised_at": NOW - timedelta(minutes=1),
        "changed_at": NOW - timedelta(minutes=1),
    }
    counts = ingestor.ingest("net", [Batch(kind="alarms", records=[record])])
    assert counts.upserted == 1


def _queue_job(store: Store, settings: Settings) -> Any:
    """The scheduler's incident-queue job, wrapped as dashboard.scheduler wraps it (bumping)."""
    ctx = context_for(store, settings, clock=fixed_clock(NOW))
    return cache.bumping_jobs(ctx, incidents.scheduled_jobs(ctx))["incident-queue"][1]


# --- versions ----------------------------------------------------------------------------------


def test_two_reads_with_no_change_cost_one_store_read_and_a_job_run_is_seen_at_the_next(
    store: Store, prefix: str
) -> None:
    seed_queue(store, NOW)
    settings = _cached(store, prefix)
    cat = load_catalogue(settings.kpi_definitions_path())
    shared = cache.shared(settings.cache)
    with counted(store) as first_cost:
        first = wall_state(store, settings, cat, now=NOW, have={}, cache=shared)
    with counted(store) as second_cost:
        second = wall_state(store, settings, cat, now=NOW, have=first["versions"], cache=shared)
    assert first_cost[0] > 0 and second_cost[0] == 0, (first_cost, second_cost)
    assert second["panels"] == {} and second["versions"] == first["versions"]
    assert [r["rank"] for r in first["panels"]["queue"]] == [1, 2]

    # A new alarm arrives (the ingest bumps) and the queue job runs (it bumps): the next read sees both.
    _new_alarm(store, settings, "P1", "ran-2")
    _queue_job(store, settings)()
    with counted(store) as third_cost:
        third = wall_state(store, settings, cat, now=NOW, have=first["versions"], cache=shared)
    assert third_cost[0] > 0
    sites = third["panels"].get("sites") or third["panels"]["sites_delta"]["set"]
    assert sites["S2"] == "critical"  # the new critical alarm on ran-2 (it was major)
    assert third["versions"]["queue"] != first["versions"]["queue"]
    # Without the cache, the store says the same.
    plain = wall_state(store, _settings(store), cat, now=NOW, have=first["versions"])
    assert plain["versions"] == third["versions"]


def test_a_cached_wall_answers_as_the_store_does_as_time_passes(store: Store, prefix: str) -> None:
    """Verdicts that move with time (alert window, sources' freshness) are taken at each request."""
    seed_queue(store, NOW)
    cached, plain = _cached(store, prefix), _settings(store)
    cat = load_catalogue(plain.kpi_definitions_path())
    shared = cache.shared(cached.cache)
    for minutes in (0, 15, 45, 120):
        at = NOW + timedelta(minutes=minutes)
        got = wall_state(store, cached, cat, now=at, have={}, cache=shared)
        want = wall_state(store, plain, cat, now=at, have={})
        assert got == want, minutes
    # An hour on, the alerts have left the window and the alarms source is stale, cache or not.
    assert got["panels"]["alerts"] == [] and got["stale"]["stale"] is True


def test_fifty_screens_on_two_workers_cost_one_store_read_per_change(store: Store, prefix: str) -> None:
    seed_queue(store, NOW)
    settings = _cached(store, prefix)
    cat = load_catalogue(settings.kpi_definitions_path())
    # Two workers: two Cache objects, each with its own Redis connections.
    workers = [cache.Cache(redis.Redis.from_url(REDIS_URL), prefix=prefix) for _ in range(2)]
    workers[0].bump(*cache.FAMILIES)  # every family changed: one screen alone reads it all again
    with counted(store) as one_screen:
        wall_state(store, settings, cat, now=NOW, have={}, cache=workers[0])
    workers[1].bump(*cache.FAMILIES)  # and again, now with fifty screens asking at once
    barrier = threading.Barrier(50)

    def screen(i: int) -> None:
        barrier.wait()
        wall_state(store, settings, cat, now=NOW, have={}, cache=workers[i % 2])

    with counted(store) as fifty:
        threads = [threading.Thread(target=screen, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # Every part is filled once, by one of the fifty, whatever the order they came in (the KPI
    # tiles' own check may spare a few statements the second time).
    assert 0 < fifty[0] <= one_screen[0], (fifty[0], one_screen[0])


def test_an_operator_action_is_on_every_screen_at_its_next_refresh(sqlite_store: Store, prefix: str) -> None:
    expected = seed_queue(sqlite_store, NOW)
    settings = _cached(sqlite_store, prefix)
    app = new_app(sqlite_store, settings, clock=fixed_clock(NOW))
    incidents_page = importlib.import_module("dashboard.pages.incidents")  # once an app registered it
    filters = incidents_page.filters_from_query({})
    shared = cache.shared(settings.cache)
    with request_as(app.server, "operator", user="ana"):
        rows, *_ = incidents_page.refresh_queue_view(sqlite_store, filters, NOW, cache=shared)
        assert [r["state"] for r in rows] == ["open", "open"]
        message, changed = incidents_page.run_action(
            sqlite_store, incidents_page.ids.INCIDENTS_ACK, expected.harbour, actor="ana", now=NOW
        )
        assert changed, message
        with counted(sqlite_store) as cost:
            rows, summary, *_ = incidents_page.refresh_queue_view(sqlite_store, filters, NOW, cache=shared)
    assert cost[0] > 0  # the action bumped the queue: read again
    assert {r["id"]: r["state"] for r in rows}[expected.harbour] == "acknowledged"
    assert rows[0]["age_min"] == 10 and "2 active incidents" in summary
    # Ages move with the clock even when the rows come from the cache.
    later, *_ = incidents_page.refresh_queue_view(
        sqlite_store, filters, NOW + timedelta(minutes=5), cache=shared
    )
    assert later[0]["age_min"] == 15


def test_the_strip_reads_once_per_change_and_says_now(sqlite_store: Store, prefix: str) -> None:
    seed_queue(sqlite_store, NOW)
    settings = _cached(sqlite_store, prefix)
    shared = cache.shared(settings.cache)
    refresh_strip(sqlite_store, "EUR", None, now=NOW, shared=shared)
    with counted(sqlite_store) as cost:
        _, cls, data = refresh_strip(
            sqlite_store, "EUR", None, now=NOW + timedelta(seconds=15), shared=shared
        )
    assert cost[0] == 0 and cls.endswith("--fresh") and data is not None
    assert data["as_of"] == (NOW + timedelta(seconds=15)).isoformat() and data["active_alarms"] == 2
    _new_alarm(sqlite_store, settings, "P1", "ran-1")
    _, _, data = refresh_strip(sqlite_store, "EUR", None, now=NOW + timedelta(seconds=30), shared=shared)
    assert data is not None and data["active_alarms"] == 3


# --- who sees what -----------------------------------------------------------------------------


def test_nothing_personal_is_cached_and_the_guard_still_decides(sqlite_store: Store, prefix: str) -> None:
    seed_queue(sqlite_store, NOW)
    settings = _cached(sqlite_store, prefix)
    app = new_app(sqlite_store, settings, clock=fixed_clock(NOW))
    admin, viewer = client(app, sqlite_store, "admin"), client(app, sqlite_store, "viewer")
    paths = ("/api/v1/wall", "/api/v1/incidents", "/api/v1/incidents?segment=vip&limit=5")
    warm = {p: admin.get(p) for p in paths}
    assert all(r.status_code == 200 for r in warm.values())
    values = [
        redis.Redis.from_url(REDIS_URL).get(key) or b""
        for key in redis.Redis.from_url(REDIS_URL).scan_iter(match=prefix + "c:*")
    ]
    assert len(values) >= 5  # the wall's parts and both queue reads are cached...
    text = b"".join(values).decode()
    assert not [p for p in PERSONAL if p in text]  # ...and no personal field is in any of them
    # A viewer reads what an admin reads (nothing in these depends on the role)...
    for p in paths:
        assert viewer.get(p).get_json() == warm[p].get_json()
    # ...and a warm cache lets no one past the guard: no credentials, a bad token.
    nobody = client(app, sqlite_store, None)
    assert {p: nobody.get(p).status_code for p in paths} == dict.fromkeys(paths, 401)
    forged = app.server.test_client()
    forged.environ_base["HTTP_AUTHORIZATION"] = "Bearer vt_" + "x" * 43
    assert forged.get("/api/v1/wall").status_code == 401


# --- without Redis -----------------------------------------------------------------------------


def test_the_product_works_the_same_with_redis_unreachable(sqlite_store: Store) -> None:
    seed_queue(sqlite_store, NOW)
    # Port 1 on loopback: nothing listens there, every connection is refused at once.
    gone = _settings(sqlite_store, CacheConfig(url="redis://127.0.0.1:1/0", prefix="vantage-gone:"))
    apps = {
        "none": new_app(sqlite_store, _settings(sqlite_store), clock=fixed_clock(NOW)),
        "gone": new_app(sqlite_store, gone, clock=fixed_clock(NOW)),
    }
    answers = {}
    for name, app in apps.items():
        c = client(app, sqlite_store, "viewer")
        answers[name] = {p: c.get(p) for p in ("/api/v1/wall", "/api/v1/incidents")}
    for p in ("/api/v1/wall", "/api/v1/incidents"):
        assert answers["none"][p].status_code == answers["gone"][p].status_code == 200
        assert answers["none"][p].get_json() == answers["gone"][p].get_json()
    assert cache.shared(gone.cache).versions() is None  # said unreachable, then left alone a while


def test_a_password_in_the_cache_url_belongs_in_the_environment() -> None:
    from dashboard.config import ConfigError, settings_from_mapping

    with pytest.raises(ConfigError, match="VANTAGE_CACHE_URL"):
        settings_from_mapping({"cache": {"url": "redis://:hunter2hunter2@cache:6379/0"}})
    found = settings_from_mapping(
        {"cache": {"url": "redis://cache:6379/0", "ttl": "2m"}},
        environ={"VANTAGE_CACHE_URL": "redis://:s3cret@cache:6379/1"},
    )
    assert found.cache.url == "redis://:s3cret@cache:6379/1" and found.cache.ttl_s == 120.0
    assert settings_from_mapping({}).cache.url is None  # off unless asked for
