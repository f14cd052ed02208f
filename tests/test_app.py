"""The app factory, the overview strip and /healthz, on a temporary store with hand-made data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dash
import pytest

from dashboard import queries
from dashboard.app import create_app, refresh_strip, strip_children
from dashboard.config import ConnectorConfig, SecurityConfig, Settings
from dashboard.context import CONTEXT_KEY
from dashboard.health import check_health
from dashboard.store.db import Store
from tests.apps import client as client_of
from tests.apps import new_app
from tests.browser import free_port, seed, settings_for

NOW = datetime(2024, 5, 15, 12, 0, 0)


def _unreachable_store() -> Store:
    # A PostgreSQL URL on a port nobody listens on: refused at once, never at import or build time.
    return Store(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")


def _text(component: Any) -> str:
    """All the text inside a Dash component tree."""
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


@pytest.fixture
def seeded(sqlite_store: Store) -> Store:
    seed(sqlite_store, NOW)
    return sqlite_store


def test_create_app_builds_without_touching_the_store() -> None:
    store = _unreachable_store()
    app = new_app(store, Settings(database_url=store.url))
    assert isinstance(app, dash.Dash)
    assert store._engine is None  # no engine was even created
    assert app.server.config[CONTEXT_KEY].store is store
    paths = sorted(p["path"] for p in dash.page_registry.values())
    assert paths == [
        "/access",
        "/actions",
        "/audit",
        "/incidents",
        "/linkage",
        "/linkage/summary",
        "/sources",
        "/subscribers",
        "/subscribers/none",
        "/wall",
    ]


def test_create_app_builds_its_store_from_settings(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    app = create_app(Settings(database_url=url))
    assert app.server.config[CONTEXT_KEY].store.url == url


def test_every_page_is_served(seeded: Store) -> None:
    app = new_app(seeded, settings_for(seeded))
    client = client_of(app, seeded)
    assert client.get("/").headers["Location"].endswith("/wall")  # the bare address is the wall
    for path in ("/wall", "/incidents", "/linkage", "/linkage/summary", "/subscribers?id=S1", "/sources"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"_dash-renderer" in response.data or b"dash-renderer" in response.data


def test_healthz_reports_each_source(seeded: Store) -> None:
    app = new_app(seeded, settings_for(seeded))
    response = client_of(app, seeded).get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    # beta (enabled) has never succeeded, so the whole is degraded though the store answers.
    assert body["status"] == "degraded"
    assert body["store"] == {"reachable": True, "dialect": "sqlite"}
    assert set(body["sources"]) == {"alpha", "beta", "gamma", "legacy"}
    assert body["sources"]["beta"]["fresh"] is False
    assert body["sources"]["beta"]["last_success"] is None
    assert body["sources"]["beta"]["interval_s"] == 300.0
    assert body["sources"]["legacy"]["interval_s"] is None
    assert body["time"].endswith("Z")


def test_healthz_is_ok_when_every_enabled_source_is_fresh(seeded: Store) -> None:
    settings = Settings(
        database_url=seeded.url, connectors=[ConnectorConfig(name="alpha", type="x", interval=60)]
    )
    body, code = check_health(seeded, settings, now=NOW)
    assert (body["status"], code) == ("ok", 200)
    assert body["sources"]["alpha"] == {
        "last_success": (NOW - timedelta(seconds=30)).isoformat() + "Z",
        "fresh": True,
        "interval_s": 60.0,
        "state": "healthy",
        "enabled": True,
        "last_push": None,
    }
    # Two intervals and one second later, alpha is stale and the service degraded.
    body, code = check_health(seeded, settings, now=NOW + timedelta(seconds=91))
    assert (body["status"], code, body["sources"]["alpha"]["fresh"]) == ("degraded", 200, False)


def test_healthz_is_503_when_the_store_is_unreachable() -> None:
    store = _unreachable_store()
    settings = Settings(
        database_url=store.url, connectors=[ConnectorConfig(name="alpha", type="x", interval=60)]
    )
    app = new_app(store, settings)
    response = app.server.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json() == {"status": "down"}  # anonymous: the verdict
    app = new_app(store, settings.model_copy(update={"security": SecurityConfig(anonymous_role="viewer")}))
    response = app.server.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "down"
    assert body["store"] == {"reachable": False, "dialect": "postgresql"}
    assert body["sources"]["alpha"]["fresh"] is False


def test_strip_shows_current_numbers_with_their_time(seeded: Store) -> None:
    children, cls, data = refresh_strip(seeded, "EUR", None, now=NOW)
    assert cls == "vt-strip vt-strip--fresh"
    assert data is not None and data["active_alarms"] == 3 and data["revenue_month"] == 300.5
    text = _text(children)
    assert "3 Active alarms" in text
    assert "300 EUR Revenue this month" in text
    assert "as of 2024-05-15 12:00:00 UTC" in text


def test_strip_goes_stale_when_the_store_fails(seeded: Store) -> None:
    _, _, last = refresh_strip(seeded, "EUR", None, now=NOW)
    children, cls, data = refresh_strip(_unreachable_store(), "EUR", last, now=NOW + timedelta(minutes=5))
    assert cls == "vt-strip vt-strip--stale"
    assert data == last  # the last good read is kept, not replaced
    text = _text(children)
    assert "STALE" in text and "last updated 2024-05-15 12:00:00 UTC" in text
    assert "as of" not in text


def test_strip_stale_before_any_good_read() -> None:
    children, cls, data = refresh_strip(_unreachable_store(), "EUR", None, now=NOW)
    assert (cls, data) == ("vt-strip vt-strip--stale", None)
    assert "never updated" in _text(children)
    assert _text(children).count("—") == 5


def test_overview_round_trips_through_the_browser_store() -> None:
    ov = queries.Overview(1, 2, 3, 4, 5.5, "EUR", NOW)
    assert queries.Overview.from_json(ov.to_json()) == ov
    assert "loading" in _text(strip_children(None, stale=False, last_ok=None))
