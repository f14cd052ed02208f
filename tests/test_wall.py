"""The wall's panels and their versions on both backends: only what changed is sent, staleness is said."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from connectors.base import RetriableError
from dashboard.config import ConnectorConfig, Settings, WallConfig, WallView
from dashboard.incidents import actions
from dashboard.ingest import Ingestor
from dashboard.kpi_eval.anomaly import refresh_anomalies
from dashboard.kpis import load_catalogue
from dashboard.store.db import Store
from dashboard.wall import parse_have, sites_panel, stale_verdict, wall_state
from tests import band_data
from tests.apps import client, new_app
from tests.browser import ListConnector, fixed_clock, seed_queue
from tests.test_app import _text

NOW = datetime(2024, 5, 15, 12, 0, 0)


def _settings(store: Store, top: int = 8) -> Settings:
    return Settings(
        database_url=store.url,
        currency="EUR",
        wall=WallConfig(top=top, playlist=[WallView(view="incidents", seconds=20)]),
        connectors=[
            ConnectorConfig(name="alarms", type="simulator", interval=60),
            ConnectorConfig(name="tickets", type="simulator", interval=300),
            ConnectorConfig(name="old", type="simulator", interval=60, enabled=False),
        ],
    )


def _catalogue(settings: Settings):  # type: ignore[no-untyped-def]
    return load_catalogue(settings.kpi_definitions_path())


def test_first_answer_has_every_panel_then_only_what_changed(store: Store) -> None:
    expected = seed_queue(store, NOW)
    settings = _settings(store)
    cat = _catalogue(settings)
    first = wall_state(store, settings, cat, now=NOW, have={})
    assert set(first["panels"]) == {"queue", "alerts", "sites", "site_map", "kpis", "money", "sources"}
    queue = first["panels"]["queue"]
    assert [(r["rank"], r["id"]) for r in queue] == [(1, expected.harbour), (2, expected.hill)]
    top = queue[0]
    assert top["severity"] == "critical" and top["ent"] == 5 and top["sla"] == "2024-05-15T12:20:00Z"
    assert top["reason"].startswith("#1: EUR 606/h at risk, SLA breach in 20 min")
    assert first["panels"]["money"] == {
        "rar": 628,
        "incidents": 2,
        "breached": 0,
        "detected": 0,
        "currency": "EUR",
    }
    # Both are news: the critical enterprise one and the major one with VIP lines (newest first).
    assert [a["id"] for a in first["panels"]["alerts"]] == [expected.harbour, expected.hill]
    # Each site with its region, for the outline and the name the screen draws around them.
    assert first["panels"]["site_map"] == [
        ["S1", "Harbour", 41.15, -8.61, "North"],
        ["S2", "Hill", 41.1, -8.55, "South"],
    ]
    assert first["preparing"] is None  # a store filled without a preparation has nothing to wait for
    assert first["panels"]["sites"] == {"S1": "critical", "S2": "major"}

    # Nothing changed: nothing but the versions and the verdict is sent.
    again = wall_state(store, settings, cat, now=NOW, have=first["versions"])
    assert again["panels"] == {} and again["versions"] == first["versions"]
    assert len(json.dumps(again)) < 600

    # An operator acknowledges the top incident: only the queue-shaped panels change.
    assert actions.acknowledge(store, expected.harbour, actor="noc", now=NOW)
    from dashboard.incidents.queue import refresh_queue

    refresh_queue(store, cat.scoring, now=NOW)
    after = wall_state(store, settings, cat, now=NOW, have=first["versions"])
    assert "queue" in after["panels"] and after["panels"]["queue"][0]["state"] == "acknowledged"
    assert not {"site_map", "sites", "kpis", "sources"} & set(after["panels"])

    # Later the alert window has passed: no more news, and the top can be cut to one row.
    have = {"site_map": first["versions"]["site_map"]}
    later = wall_state(store, _settings(store, top=1), cat, now=NOW + timedelta(hours=1), have=have)
    assert later["panels"]["alerts"] == [] and len(later["panels"]["queue"]) == 1
    assert "site_map" not in later["panels"]  # positions are sent again only when sites change


def test_sites_with_an_open_incident_but_no_alarm_show_as_impacted(store: Store) -> None:
    expected = seed_queue(store, NOW)
    settings = _settings(store)
    before = wall_state(store, settings, _catalogue(settings), now=NOW, have={})
    t = NOW + timedelta(minutes=1)
    Ingestor(store, clock=fixed_clock(t)).ingest(
        "net",
        [
            _alarm_clear("B1", "ran-2", NOW - timedelta(minutes=20), t),
        ],
    )
    with store.connect() as conn:
        sites = sites_panel(conn)
    assert sites["S1"] == "critical"
    # ran-2's alarm cleared, but its incident has not been re-correlated yet: still open, impacted.
    assert sites.get("S2") == "impacted", (sites, expected.hill)
    # A screen with the earlier sites gets only what changed, not every site again.
    after = wall_state(store, settings, _catalogue(settings), now=t, have=before["versions"])
    assert "sites" not in after["panels"]
    assert after["panels"]["sites_delta"] == {
        "base": before["versions"]["sites"],
        "set": {"S2": "impacted"},
        "clear": [],
    }
    # One it cannot place (an unknown version) gets the whole panel.
    lost = wall_state(store, settings, _catalogue(settings), now=t, have={"sites": "0123456789ab"})
    assert lost["panels"]["sites"] == {"S1": "critical", "S2": "impacted"}


def _alarm_clear(alarm_id: str, resource: str, raised: datetime, cleared: datetime) -> object:
    from connectors.base import Batch

    return Batch(
        kind="alarms",
        records=[
            {
                "id": alarm_id,
                "resource_id": resource,
                "severity": "major",
                "state": "cleared",
                "raised_at": raised,
                "changed_at": cleared,
                "cleared_at": cleared,
            }
        ],
    )


def test_a_late_or_failing_source_makes_the_wall_say_data_stale(store: Store) -> None:
    settings = _settings(store)
    # alarms: last success 10 minutes ago (interval 60 s: stale after 2 minutes), then failures.
    Ingestor(store, clock=fixed_clock(NOW - timedelta(minutes=10))).run(ListConnector("alarms", []))
    Ingestor(store, clock=fixed_clock(NOW - timedelta(minutes=1))).run(
        ListConnector("alarms", [], error=RetriableError("HTTP 503"))
    )
    # tickets: fine 2 minutes ago (interval 300 s).
    Ingestor(store, clock=fixed_clock(NOW - timedelta(minutes=2))).run(ListConnector("tickets", []))
    state = wall_state(store, settings, _catalogue(settings), now=NOW, have={})
    sources = {s["name"]: s for s in state["panels"]["sources"]}
    assert set(sources) == {"alarms", "tickets"}  # a disabled source is not the wall's concern
    assert sources["tickets"]["fresh"] is True
    assert sources["alarms"]["fresh"] is False and sources["alarms"]["stale_since"] == "2024-05-15T11:52:00Z"
    assert state["stale"] == {
        "stale": True,
        "since": "2024-05-15T11:52:00Z",
        "text": "alarms source retrying",
    }
    assert stale_verdict([s for s in state["panels"]["sources"] if s["fresh"]]) == {"stale": False}


def test_api_answers_with_changed_panels_and_503_when_the_store_is_unreadable(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed_queue(store, NOW)
    settings = _settings(store)
    http = client(new_app(store, settings), store)
    first = http.get("/api/v1/wall")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    body = first.get_json()
    have = ",".join(f"{k}:{v}" for k, v in body["versions"].items())
    again = http.get(f"/api/v1/wall?have={have}").get_json()
    assert set(again["panels"]) <= {"alerts", "queue", "money"}  # only what a clock can move
    broken = Store(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    anonymous = Settings(database_url=broken.url, security={"anonymous_role": "viewer"})
    bad = client(new_app(broken, anonymous), broken, None).get("/api/v1/wall")
    assert bad.status_code == 503 and "could not be read" in bad.get_json()["error"]
    broken.dispose()


def test_kpi_tiles_count_cells_outside_their_usual_band_and_money_counts_detected_incidents(
    store: Store,
) -> None:
    settings = _settings(store)
    cat = band_data.catalogue()
    band_data.degraded_silently(store, cat)
    http = client(new_app(store, settings, clock=lambda: band_data.NOW), store)
    body = http.get("/api/v1/wall").get_json()
    tiles = {t["name"]: t for t in body["panels"]["kpis"]}
    # C1 and its site S1 are anomalous in throughput and latency; KPIs without a rule have no count.
    assert tiles["dl_throughput_mbps"]["outside"] == {"cell": 1, "site": 1}
    assert tiles["latency_ms"]["outside"] == {"cell": 1, "site": 1}
    assert tiles["drop_call_rate_pct"]["outside"] == {"cell": 0, "site": 0}
    assert tiles["availability_pct"]["outside"] is None
    assert body["panels"]["money"]["detected"] == 1 and body["panels"]["money"]["incidents"] == 1
    assert [r["kind"] for r in body["panels"]["queue"]] == ["detected"]
    # C1 recovers: once the verdicts are normal again the screen is sent new tiles with no count.
    band_data.write_samples(store, band_data.sample_rows(band_data.NOW, band_data.NOW + 3 * band_data.Q))
    for k in (1, 2, 3):
        with store.begin() as conn:
            refresh_anomalies(conn, cat, now=band_data.NOW + k * band_data.Q)
    have = ",".join(f"{k}:{v}" for k, v in body["versions"].items())
    later = http.get(f"/api/v1/wall?have={have}").get_json()
    tiles = {t["name"]: t for t in later["panels"]["kpis"]}
    assert tiles["dl_throughput_mbps"]["outside"] == {"cell": 0, "site": 0}


def test_have_is_parsed_leniently() -> None:
    assert parse_have("queue:ab12,kpis:9f,bogus:1,sites:,money") == {"queue": "ab12", "kpis": "9f"}
    assert parse_have(None) == {}


def test_wall_page_carries_its_configuration_and_kiosk_flag(sqlite_store: Store) -> None:
    import importlib

    settings = _settings(sqlite_store)
    app = new_app(sqlite_store, settings)
    with app.server.app_context():
        wall = importlib.import_module("dashboard.pages.wall")
        root = wall.layout(kiosk="1").children
        cfg = json.loads(getattr(root, "data-config"))
        assert "vt-kiosk" in root.className and cfg["kiosk"] is True
        assert cfg["playlist"] == [{"view": "incidents", "label": "Incidents", "ms": 20000}]
        assert cfg["refreshMs"] == 10000 and cfg["reloadAfterMs"] == 86_400_000 and cfg["top"] == 8
        assert "vt-kiosk" not in wall.layout().children.className
        assert "needs JavaScript" in _text(root)
    http = client(app, sqlite_store)
    home = http.get("/?kiosk=1")
    assert home.status_code == 302 and home.headers["Location"].endswith("/wall?kiosk=1")
