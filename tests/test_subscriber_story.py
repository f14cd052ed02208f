"""The subscriber 360: the story of one line on a small hand-made operator, its page and its API.

The network: ran-1 (site Harbour, region North) serves c1, ran-2 (site Hill) serves c2, ran-3 (Hill)
serves c3. Line E0 of the enterprise account ENT sends 70% of its traffic on c1 and 30% on c2; its
three sister lines E1-E3 sit on c1; consumer line X0 (account CONS) sat on c2 and churned. ran-1
went down 10 minutes before ``NOW`` (critical), ran-3 20 minutes before (major): the first hits
E0, the second does not. By hand, E0's experienced availability in the 10:00 hour is c1's hourly
mean (100 + 80) / 2 = 90 and c2's 90, weighted by share: (0.7 x 90 + 0.3 x 90) / 1.0 = 90.0.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import ModuleType
from typing import Any

import dash
import plotly
import pytest
from dash import dcc, html
from sqlalchemy import func, insert, select

from connectors.base import Batch
from dashboard import ids
from dashboard.config import SecurityConfig, Settings
from dashboard.ingest import Ingestor
from dashboard.kpis import load_catalogue
from dashboard.privacy import Principal
from dashboard.store.db import Store
from dashboard.store.schema import audit, incident_cells, incident_queue, subscriber_signals
from dashboard.subscribers.story import subscriber_story
from tests import band_data
from tests.apps import api_client, new_app, request_as

NOW = datetime(2026, 3, 2, 12, 0)
VIEWER = Principal("vera", "viewer")
ANALYST = Principal("anna", "analyst")
SCRIPT = "<script>alert(1)</script><b>x</b>"


@dataclass(frozen=True)
class StoryExpected:
    """What :func:`seed_story` builds."""

    harbour: str  # the incident on ran-1 (hits E0 through c1)
    hill: str  # the incident on ran-3 (c3 only: does not hit E0)
    msisdn: str = "+351910000001"
    masked_msisdn: str = "+351 9*** ***001"
    contact_name: str = "Joana Silva"
    contact_email: str = "joana.silva@example.pt"
    contact_phone: str = "+351 912 345 678"
    contact_address: str = "Rua das Flores 12, Porto"
    consumer_name: str = "Rui Mendes"
    script: str = SCRIPT

    @property
    def clear_strings(self) -> tuple[str, ...]:
        return (
            self.msisdn,
            self.contact_name,
            self.contact_email,
            self.contact_phone,
            self.contact_address,
            "Joana",
            "joana.silva",
            "910000001",
            "912 345 678",
            "Flores",
        )


def rows(columns: str, *values: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Records from a header and tuples: ``rows("id name", ("a", "A"))``; None values are left out."""
    names = columns.split()
    return [{k: v for k, v in zip(names, vals, strict=True) if v is not None} for vals in values]


def seed_story(store: Store, now: datetime) -> StoryExpected:
    """The hand-made operator of this module, through the ingest path, relative to ``now``."""
    from dashboard.incidents.queue import refresh_queue

    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)  # 10:00 for NOW
    t1, ago = now - timedelta(minutes=5), lambda **kw: now - timedelta(**kw)
    cell = ("resource", "cell")
    raised = ("raised", "equipmentMalfunction", True)
    drivers = [
        {"feature": "tickets_30d", "value": 3, "impact": 0.12},
        {"feature": "dropped_calls_7d", "value": 4.5, "impact": 0.05},
    ]
    batches = [
        ("net", "regions", rows("id name", ("N", "North"))),
        ("net", "sites", rows("id region_id name lat lon",
                              ("S1", "N", "Harbour", 41.15, -8.61), ("S2", "N", "Hill", 41.18, -8.60))),
        ("net", "resources", rows("id site_id name kind", ("ran-1", "S1", "Harbour gNodeB", "ran"),
                                  ("ran-2", "S2", "Hill eNodeB", "ran"),
                                  ("ran-3", "S2", "Hill gNodeB", "ran"))),
        ("net", "cells", rows("id site_id name technology", ("c1", "S1", "Harbour-1", "5g"),
                              ("c2", "S2", "Hill-1", "4g"), ("c3", "S2", "Hill-2", "5g"))),
        ("net", "topology_edges", rows("parent_type child_type parent_id child_id", (*cell, "ran-1", "c1"),
                                       (*cell, "ran-2", "c2"), (*cell, "ran-3", "c3"))),
        ("crm", "accounts", rows(
            "id name segment vip account_manager sla_restore_minutes penalty_per_hour contact_name "
            "contact_email contact_phone contact_address",
            ("ENT", "Harbour Logistics", "enterprise", True, "Ana Costa", 30, 600.0, "Joana Silva",
             "joana.silva@example.pt", "+351 912 345 678", "Rua das Flores 12, Porto"),
            ("CONS", "Rui Mendes", "consumer", False, None, None, None, "Rui Mendes",
             "rui.mendes@example.net", None, None),
        )),
        ("crm", "subscribers", rows(
            "id account_id msisdn plan arpu status activated_at home_cell_id",
            ("E0", "ENT", "+351910000001", "Biz 50", 50.0, "active", datetime(2023, 1, 15), "c1"),
            *((f"E{i}", "ENT", f"+35191000000{i + 1}", "Biz 50", 50.0, "active", None, "c1")
              for i in (1, 2, 3)),
            ("X0", "CONS", "+447700900123", "Go 10", 10.0, "churned", None, "c2"),
        )),
        ("crm", "subscriber_cells", rows("subscriber_id cell_id share", ("E0", "c1", 0.7), ("E0", "c2", 0.3),
                                         ("E1", "c1", 1.0), ("E2", "c1", 1.0), ("E3", "c1", 1.0),
                                         ("X0", "c2", 1.0))),
        ("pm", "kpi_samples", rows(
            "entity_type kpi entity_id period_start value",
            ("cell", "availability_pct", "c1", hour, 100.0),  # the 10:00 hour: 153 / 1.7
            ("cell", "availability_pct", "c2", hour, 90.0),
            ("cell", "availability_pct", "c1", hour + timedelta(minutes=15), 80.0),
            ("cell", "availability_pct", "c1", hour + timedelta(hours=1), 100.0),  # 11:00: 100
            ("cell", "availability_pct", "c2", hour + timedelta(hours=1), 100.0),
            ("cell", "availability_pct", "c3", hour, 5.0),  # not E0's cell
            ("cell", "availability_pct", "c1", ago(days=40), 1.0),  # outside the 30 days
            ("cell", "traffic_gb", "c1", hour, 3.0),  # not a quality KPI of the catalogue
            *(("cell", "dl_throughput_mbps", c, hour + timedelta(minutes=m), v)
              for c, v in (("c1", 40.0), ("c2", 20.0), ("c3", 30.0)) for m in range(0, 120, 15)),
        )),
        ("fm", "alarms", rows(
            "id resource_id severity state probable_cause service_affecting specific_problem raised_at "
            "changed_at",
            ("A1", "ran-1", "critical", *raised, "ran-1 down", ago(minutes=10), ago(minutes=10)),
            ("A3", "ran-3", "major", *raised, "ran-3 down", ago(minutes=20), ago(minutes=20)),
        )),
    ]  # fmt: skip
    later = [
        ("care", "tickets", rows(
            "id subscriber_id account_id status channel subject description sentiment created_at "
            "updated_at resolved_at",
            ("T1", "E0", "ENT", "inprogress", "app", "<b>No signal</b>", SCRIPT, -0.6, t1, ago(minutes=3),
             None),
            ("T2", None, "ENT", "resolved", "email", "Invoice question", "Why is the February bill higher?",
             0.1, ago(days=20), ago(days=19), ago(days=19)),
            ("T3", "E1", "ENT", "new", None, "Not E0's", None, None, t1, t1, None),
        )),
        ("care", "ticket_notes", rows("id ticket_id author text created_at", ("N1", "T1", "Rita (care)",
                                      "Called back <i>customer</i>", ago(minutes=2)))),
        ("care", "ticket_status_changes", rows("ticket_id status changed_at", ("T1", "new", t1),
                                               ("T1", "inprogress", ago(minutes=3)))),
        ("bss", "bills", rows(
            "id account_id period_start period_end amount currency state issued_at",
            ("B1", "ENT", date(2026, 1, 1), date(2026, 1, 31), 1200.0, "EUR", "paid", datetime(2026, 2, 1)),
            ("B2", "ENT", date(2026, 2, 1), date(2026, 2, 28), 1250.5, "EUR", "issued", datetime(2026, 3, 1)),
            ("B9", "CONS", date(2026, 2, 1), date(2026, 2, 28), 10.0, "EUR", None, None),
        )),
        ("bss", "usage", rows(
            "id subscriber_id account_id period_start usage_type quantity unit amount currency",
            ("U1", "E0", "ENT", date(2026, 2, 1), "data", 12.5, "GB", 0.0, "EUR"),
            ("U2", "E0", "ENT", date(2026, 2, 1), "data", 2.5, "GB", 3.0, "EUR"),
            ("U3", "E0", "ENT", date(2026, 2, 1), "roaming", 40.0, "min", 4.5, "EUR"),
        )),
        ("crm", "offer_events", rows("id subscriber_id account_id offer outcome occurred_at",
                                     ("O1", "E0", "ENT", "Retention 20%", "offered", ago(days=1)),
                                     ("O2", "E0", "ENT", "Retention 20%", "accepted", ago(hours=12)))),
        ("crm", "churn_events", rows("id subscriber_id account_id occurred_at reason",
                                     ("CH1", "X0", "CONS", ago(days=3), "moved abroad"))),
    ]  # fmt: skip
    ing = Ingestor(store, clock=lambda: now)
    for source, kind, records in batches:
        counts = ing.ingest(source, [Batch(kind=kind, records=records)])
        assert counts.quarantined == 0, (kind, counts)
    refresh_queue(store, load_catalogue("kpi_definitions.yaml").scoring, now=now, currency="EUR")
    with store.connect() as conn:
        queued = {r.title: r.incident_id for r in conn.execute(select(incident_queue))}
    for source, kind, records in later:
        counts = ing.ingest(source, [Batch(kind=kind, records=records)])
        assert counts.quarantined == 0, (kind, counts)
    with store.begin() as conn:
        conn.execute(insert(subscriber_signals).values(
            subscriber_id="E0", source="vantage", account_id="ENT", churn_risk=0.42,
            churn_drivers=json.dumps(drivers), model_version=3, sentiment_30d=-0.25, tickets_30d=2,
            negative_tickets_30d=1, scored_at=ago(minutes=40),
        ))  # fmt: skip
        conn.execute(insert(audit).values(
            at=ago(hours=1), actor="ana", action="subscriber.offer", target_type="subscriber", target_id="E0",
            detail={"offer": "Retention 20%"},
        ))  # fmt: skip
    return StoryExpected(
        harbour=queued["ran-1 down at Harbour gNodeB"], hill=queued["ran-3 down at Hill gNodeB"]
    )


def _story(
    store: Store, subscriber_id: str = "E0", principal: Principal = VIEWER, **kw: Any
) -> dict[str, Any]:
    with store.connect() as conn:
        story = subscriber_story(conn, subscriber_id, principal, now=NOW, **kw)
    assert story is not None
    return story


def _unmask_rows(store: Store) -> int:
    with store.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(audit).where(audit.c.action == "subscriber.unmask")
            ).scalar()
            or 0
        )


@pytest.fixture
def seeded(store: Store) -> tuple[Store, StoryExpected]:
    return store, seed_story(store, NOW)


# --- The story -------------------------------------------------------------------------------------


def test_the_story_holds_profile_account_services_and_cells(seeded: tuple[Store, StoryExpected]) -> None:
    store, expected = seeded
    story = _story(store)
    assert json.loads(json.dumps(story)) == story  # JSON-ready as it is
    p = story["profile"]
    assert (p["id"], p["plan"], p["arpu"], p["status"]) == ("E0", "Biz 50", 50.0, "active")
    assert p["msisdn"] == expected.masked_msisdn
    assert (
        p["activated_at"] == "2023-01-15T00:00:00Z" and p["tenure_days"] == (NOW - datetime(2023, 1, 15)).days
    )
    acc = story["account"]
    assert (acc["id"], acc["name"], acc["segment"], acc["vip"], acc["account_manager"], acc["lines"]) == (
        "ENT",
        "Harbour Logistics",
        "enterprise",
        True,
        "Ana Costa",
        4,
    )
    assert acc["link"] == "/subscribers?account=ENT"
    assert acc["contact_name"] == "J*** S***" and acc["contact_email"] == "j***@example.pt"
    assert acc["contact_address"] == "***"
    assert [(c["cell_id"], c["share"], c["site"], c["region"]) for c in story["cells"]] == [
        ("c1", 0.7, "Harbour", "North"),
        ("c2", 0.3, "Hill", "North"),
    ]
    assert story["privacy"] == {"masked": True, "role": "viewer", "may_unmask": False}


def test_a_consumer_accounts_name_is_its_holders_and_stays_out(seeded: tuple[Store, StoryExpected]) -> None:
    store, expected = seeded
    story = _story(store, "X0")
    assert story["account"]["name"] is None and story["account"]["contact_name"] == "R*** M***"
    assert expected.consumer_name not in json.dumps(story)
    assert [c["reason"] for c in story["churn_events"]] == ["moved abroad"]
    assert story["churn"] is None and story["incidents"] == []


def test_experienced_kpis_are_weighted_by_traffic_share_per_period(
    seeded: tuple[Store, StoryExpected],
) -> None:
    store, _ = seeded
    hourly = _story(store)["kpis"]
    assert hourly["step_minutes"] == 60
    availability = [
        (s["period_start"], s["value"], s["cells"])
        for s in hourly["series"]
        if s["kpi"] == "availability_pct"
    ]
    assert availability == [("2026-03-02T10:00:00Z", 90.0, 2), ("2026-03-02T11:00:00Z", 100.0, 2)]
    throughput = [
        (s["period_start"], s["value"]) for s in hourly["series"] if s["kpi"] == "dl_throughput_mbps"
    ]
    assert throughput == [
        ("2026-03-02T10:00:00Z", 34.0),
        ("2026-03-02T11:00:00Z", 34.0),
    ]  # 0.7 x 40 + 0.3 x 20
    assert {s["kpi"] for s in hourly["series"]} == {"availability_pct", "dl_throughput_mbps", "traffic_gb"}
    raw = _story(store, days=1, kpis=["availability_pct"])["kpis"]
    assert raw["step_minutes"] == 15
    assert [(s["period_start"], s["value"]) for s in raw["series"]] == [
        ("2026-03-02T10:00:00Z", 97.0),  # (0.7 x 100 + 0.3 x 90) / 1.0
        ("2026-03-02T10:15:00Z", 80.0),  # only c1 reported
        ("2026-03-02T11:00:00Z", 100.0),
    ]


def test_the_incident_that_hit_the_subscriber_is_listed_with_its_link(
    seeded: tuple[Store, StoryExpected],
) -> None:
    store, expected = seeded
    with store.connect() as conn:
        degraded = conn.execute(
            select(incident_cells.c.degraded_share).where(
                incident_cells.c.incident_id == expected.harbour, incident_cells.c.cell_id == "c1"
            )
        ).scalar_one()
    (inc,) = _story(store)["incidents"]
    assert inc["id"] == expected.harbour and inc["title"] == "ran-1 down at Harbour gNodeB"
    assert (inc["severity"], inc["state"], inc["cells"]) == ("critical", "open", ["c1"])
    assert inc["link"] == f"/incidents?id={expected.harbour}"
    assert inc["degraded_share"] == pytest.approx(degraded)
    assert inc["impact"] == pytest.approx(0.7 * degraded)
    assert inc["opened_at"] == "2026-03-02T11:50:00Z"


def test_tickets_come_with_notes_and_their_text_as_literal_strings(
    seeded: tuple[Store, StoryExpected],
) -> None:
    store, expected = seeded
    tickets = _story(store)["tickets"]
    assert [(t["id"], t["scope"]) for t in tickets] == [("T1", "line"), ("T2", "account")]  # T3 is E1's
    t1 = tickets[0]
    assert t1["description"] == expected.script and t1["subject"] == "<b>No signal</b>"
    assert (t1["channel"], t1["status"], t1["sentiment"]) == ("app", "inprogress", -0.6)
    assert [n["text"] for n in t1["notes"]] == ["Called back <i>customer</i>"]
    assert [c["status"] for c in t1["status_changes"]] == ["new", "inprogress"]


def test_bills_usage_churn_offers_and_actions(seeded: tuple[Store, StoryExpected]) -> None:
    store, _ = seeded
    story = _story(store)
    assert [(b["id"], b["period_start"], b["amount"]) for b in story["bills"]] == [
        ("B1", "2026-01-01", 1200.0),
        ("B2", "2026-02-01", 1250.5),
    ]
    assert [(u["usage_type"], u["quantity"], u["amount"]) for u in story["usage"]] == [
        ("data", 15.0, 3.0),  # two records of the period summed in the database
        ("roaming", 40.0, 4.5),
    ]
    churn = story["churn"]
    assert (churn["risk"], churn["model_version"], churn["tickets_30d"]) == (0.42, 3, 2)
    assert [(d["feature"], d["impact"]) for d in churn["drivers"]] == [
        ("tickets_30d", 0.12),
        ("dropped_calls_7d", 0.05),
    ]
    assert [(o["offer"], o["outcome"]) for o in story["offers"]] == [
        ("Retention 20%", "accepted"),
        ("Retention 20%", "offered"),
    ]
    assert story["churn_events"] == []
    assert [(a["action"], a["actor"]) for a in story["actions"]] == [("subscriber.offer", "ana")]


def test_the_timeline_puts_everything_in_order(seeded: tuple[Store, StoryExpected]) -> None:
    store, expected = seeded
    events = _story(store)["timeline"]
    times = [e["time"] for e in events]
    assert times == sorted(times)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "activated"
    assert set(kinds) == {
        "activated",
        "incident",
        "ticket",
        "ticket_note",
        "ticket_resolved",
        "bill",
        "offer",
        "action",
    }
    (incident,) = [e for e in events if e["kind"] == "incident"]
    assert incident["link"] == f"/incidents?id={expected.harbour}"
    recent = [(e["kind"], e["title"]) for e in events if e["time"] >= "2026-03-02T11:00:00Z"]
    assert recent == [
        ("action", "subscriber.offer"),
        ("incident", "ran-1 down at Harbour gNodeB"),
        ("ticket", "<b>No signal</b>"),
        ("ticket_note", "Note on <b>No signal</b>"),
    ]


def test_an_unknown_subscriber_has_no_story(seeded: tuple[Store, StoryExpected]) -> None:
    store, _ = seeded
    with store.connect() as conn:
        assert subscriber_story(conn, "nobody", VIEWER, now=NOW) is None


# --- The page --------------------------------------------------------------------------------------


def _settings(store: Store, role: str = "viewer") -> Settings:
    return Settings(
        database_url=store.url,
        currency="EUR",
        security=SecurityConfig(trust_headers=True, trusted_proxies=["127.0.0.1"]),
    )


@pytest.fixture
def page(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, Store, StoryExpected]]:
    """The page module in an app context (role from the request's trusted headers), clock at NOW."""
    expected = seed_story(sqlite_store, NOW)
    settings = _settings(sqlite_store)
    app = new_app(sqlite_store, settings, clock=lambda: NOW)
    module = importlib.import_module("dashboard.pages.subscriber")
    with app.server.app_context():
        yield module, sqlite_store, expected


def _as(role: str, user: str = "tester") -> Any:
    """A request context of ``user`` with ``role`` (as the trusted proxy would say)."""
    return request_as(dash.get_app().server, role, user)  # type: ignore[arg-type]


def _json(component: Any) -> str:
    """What Dash sends to the browser for a component tree or callback output."""
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)


def find(component: Any, kind: type | None = None) -> list[Any]:
    found: list[Any] = []
    if isinstance(component, list | tuple):
        for c in component:
            found += find(c, kind)
        return found
    if component is None or isinstance(component, str | int | float):
        return found
    if kind is None or isinstance(component, kind):
        found.append(component)
    return found + find(getattr(component, "children", None), kind)


def _text(component: Any) -> str:
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None)) if component is not None else ""


def _tabs(module: ModuleType, role: str) -> dict[str, Any]:
    """What reaches the browser for each tab: the page opened on it, and the tab callback's output."""
    with _as(role):
        views = {tab: module.layout(subscriber_id="E0", tab=tab) for tab, _ in module.TABS}
        switched = {
            tab: module.render_tab(module.current_store(), module.current_principal(), "E0", tab, NOW)
            for tab, _ in module.TABS
        }
    return views | {f"{tab} (switched)": body for tab, body in switched.items()}


def test_the_page_shows_every_part_masked_for_a_viewer(page: tuple[ModuleType, Store, StoryExpected]) -> None:
    module, _, expected = page
    views = _tabs(module, "viewer")
    for name, view in views.items():
        sent = _json(view)
        for clear in expected.clear_strings:
            assert clear not in sent, (name, clear)
    overview = views["overview"]
    assert expected.masked_msisdn in _json(overview) and "J*** S***" in _text(overview)
    (button,) = [c for c in find(overview) if getattr(c, "id", None) == ids.SUBSCRIBER_UNMASK]
    assert "d-none" in button.className  # no button for a role that may not unmask
    text = " ".join(_text(v) for v in views.values())
    for part in ("Harbour Logistics", "Biz 50", "churn risk 42% (high)", "Harbour-1", "Retention 20%",
                 "subscriber.offer", "Ana Costa", "1,250.50 EUR"):  # fmt: skip
        assert part in text, part
    links = {c.href for v in views.values() for c in find(v, dcc.Link)}
    assert f"/incidents?id={expected.harbour}" in links and "/subscribers?account=ENT" in links
    graphs = {name: len(find(v, dcc.Graph)) for name, v in views.items() if "switched" not in name}
    assert graphs == {"overview": 2, "network": 1, "tickets": 0, "revenue": 1, "actions": 0}  # one tab built
    (kpi_graph,) = [
        g for g in find(views["network"], dcc.Graph) if getattr(g, "id", None) == ids.SUBSCRIBER_KPI_GRAPH
    ]
    critical = [a.text for a in kpi_graph.figure.layout.annotations if "critical" in (a.text or "")]
    assert critical == ["critical 95", "critical 3"]  # availability, then throughput
    assert _json(views["network"]).count(ids.SUBSCRIBER_KPI_GRAPH) == 1
    # Switching tabs in the browser builds the same content as opening the page on that tab.
    (body,) = [c for c in find(views["tickets"]) if getattr(c, "id", None) == ids.SUBSCRIBER_TAB_BODY]
    assert _text(views["tickets (switched)"]) == _text(body)


def test_ticket_text_is_a_plain_string_child_never_html(
    page: tuple[ModuleType, Store, StoryExpected],
) -> None:
    module, _, expected = page
    with _as("viewer"):
        view = module.layout(subscriber_id="E0", tab="tickets")
        overview = module.layout(subscriber_id="E0")
    (tabs,) = [c for c in find(view) if getattr(c, "id", None) == ids.SUBSCRIBER_TABS]
    assert tabs.active_tab == "tickets"
    texts = [p for p in find(view, html.P) if "vt-ticket-text" in (p.className or "")]
    assert [p.children for p in texts] == [expected.script, "Why is the February bill higher?"]
    assert "Called back <i>customer</i>" in _text(view)
    assert not find(view, dcc.Markdown) and not find(view, html.Iframe)
    assert "dangerouslySetInnerHTML" not in _json(view)
    # Plotly renders a few tags in hover labels: the timeline hands it the text with entities.
    (timeline,) = [g for g in find(overview, dcc.Graph) if getattr(g, "id", None) == ids.SUBSCRIBER_TIMELINE]
    hovers = [str(c) for trace in timeline.figure.data for c in trace.customdata]
    assert "&lt;b&gt;No signal&lt;/b&gt;<br>app · inprogress · sentiment -0.60" in hovers
    assert not any("<b>" in h or "<i>" in h for h in hovers)


def _band_graphs(component: Any) -> list[Any]:
    return [
        g
        for g in find(component, dcc.Graph)
        if any(getattr(t, "fill", None) == "tonexty" for t in (g.figure.data if g.figure else []))
    ]


def test_the_network_tab_shows_each_serving_cell_against_its_usual_band(sqlite_store: Store) -> None:
    """Line L1 of tests/band_data.py: 70% on C1 (degraded, no alarm), 30% on C3 (normal)."""
    cat = band_data.catalogue()
    band_data.degraded_silently(sqlite_store, cat)
    app = new_app(sqlite_store, _settings(sqlite_store), clock=lambda: band_data.NOW)
    module = importlib.import_module("dashboard.pages.subscriber")
    with request_as(app.server, "viewer"):
        view = module.layout(subscriber_id="L1", tab="network")
        switched = module.render_tab(
            module.current_store(), module.current_principal(), "L1", "network", band_data.NOW
        )
        overview = module.layout(subscriber_id="L1")
    text = _text(view)
    # Highest share first, each cell's verdict per KPI with a rule (in the catalogue's order).
    first, second = "c1 (Porto 1) · 70% of this line's traffic", "c3 (Porto 2) · 30% of this line's traffic"
    assert first in text and second in text and text.index(first) < text.index(second)
    assert "Downlink throughput 61% below usual since 01:00 UTC" in text
    assert "Latency 3.0x usual since 01:00 UTC" in text
    assert "Latency within its usual band" in text  # C3
    verdicts = [li for li in find(view, html.Li) if "vt-verdict " in (getattr(li, "className", "") or "")]
    assert [li.className.split()[-1] for li in verdicts[:4]] == [
        "vt-verdict-muted",  # dropped calls: no samples here
        "vt-verdict-bad",
        "vt-verdict-bad",
        "vt-verdict-muted",  # packet loss: no samples here
    ]
    assert len(verdicts) == 8  # 4 KPIs with a rule x 2 cells
    graphs = _band_graphs(view)
    assert len(graphs) == 2
    outside = [t for t in graphs[0].figure.data if t.name == "outside usual band"]
    assert [len(t.x) for t in outside] == [band_data.BAD_PERIODS] * 2
    assert not [t for t in graphs[1].figure.data if t.name == "outside usual band"]
    # The tab switched to in the browser shows the same; other tabs do not read bands at all.
    assert len(_band_graphs(switched)) == 2 and "c1 (Porto 1)" in _text(switched)
    assert not _band_graphs(overview)
    assert "351910000001" not in _json(view)  # the line's number stays masked


def test_deep_link_tabs_and_unknown_ids(page: tuple[ModuleType, Store, StoryExpected]) -> None:
    module, _, _ = page
    assert module.tab_from_query("network") == "network"
    assert module.tab_from_query("<script>") == "overview" and module.tab_from_query(None) == "overview"
    with _as("viewer"):
        missing = module.layout(subscriber_id="nobody")
        empty = module.layout()
    assert "No subscriber with id 'nobody'" in _text(missing)
    assert "/subscribers?q=nobody" in {c.href for c in find(missing, dcc.Link)}
    assert "No subscriber given" in _text(empty)


def test_the_page_and_unmask_say_so_when_the_store_cannot_be_read(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: every table is missing
    app = new_app(store, _settings(store, "analyst"))
    module = importlib.import_module("dashboard.pages.subscriber")
    with app.server.app_context(), request_as(app.server, "analyst"):
        assert "could not be read" in _text(module.layout(subscriber_id="E0"))
        values, message, _ = module.unmask_outputs(store, ANALYST, "E0", ["msisdn"], now=NOW)
    assert values == [dash.no_update] and "could not be read" in _text(message)


def test_unmask_for_an_analyst_returns_clear_values_and_writes_one_audit_row(
    page: tuple[ModuleType, Store, StoryExpected],
) -> None:
    module, store, expected = page
    fields = [f for f, _ in module.PERSONAL]
    with _as("analyst", "anna"):
        view = module.layout(subscriber_id="E0")
        (button,) = [c for c in find(view) if getattr(c, "id", None) == ids.SUBSCRIBER_UNMASK]
        assert "d-none" not in button.className
        for clear in expected.clear_strings:
            assert clear not in _json(view), clear  # masked until asked, for every role
        assert _unmask_rows(store) == 0
        values, message, disabled = module.unmask_outputs(
            store, module.current_principal(), "E0", fields, now=NOW
        )
    assert values == [
        expected.msisdn,
        expected.contact_name,
        expected.contact_email,
        expected.contact_phone,
        expected.contact_address,
    ]
    assert disabled is True and "shown to anna; this was written to the audit log" in _text(message)
    with store.connect() as conn:
        (row,) = conn.execute(select(audit).where(audit.c.action == "subscriber.unmask")).mappings().all()
    assert (row["actor"], row["target_type"], row["target_id"], row["at"]) == (
        "anna",
        "subscriber",
        "E0",
        NOW,
    )
    # The audit record shows in the subscriber's own story.
    assert ("subscriber.unmask", "anna") in [(a["action"], a["actor"]) for a in _story(store)["actions"]]


def test_unmask_for_a_viewer_refuses_and_sends_nothing_clear(
    page: tuple[ModuleType, Store, StoryExpected],
) -> None:
    module, store, expected = page
    fields = [f for f, _ in module.PERSONAL]
    with _as("viewer", "vera"):
        values, message, disabled = module.unmask_outputs(
            store, module.current_principal(), "E0", fields, now=NOW
        )
    assert values == [dash.no_update] * len(fields)
    assert "may not see personal data" in _text(message) and disabled is True
    sent = _json([values, message, disabled])
    for clear in expected.clear_strings:
        assert clear not in sent
    assert _unmask_rows(store) == 0


def test_the_unmask_callback_through_dash(page: tuple[ModuleType, Store, StoryExpected]) -> None:
    """The registered callback, as the browser calls it: outputs checked in the response body."""
    _, store, expected = page
    app = dash.get_app()
    client = app.server.test_client()
    client.get("/")  # Dash registers the page routes on the first request
    body = {
        "output": f'..{{"field":["ALL"],"type":"{ids.SUBSCRIBER_PERSONAL}"}}.children'
        f"...{ids.SUBSCRIBER_UNMASK_RESULT}.children...{ids.SUBSCRIBER_UNMASK}.disabled..",
        "outputs": [
            [
                {"id": {"type": ids.SUBSCRIBER_PERSONAL, "field": f}, "property": "children"}
                for f in ("msisdn", "contact_name")
            ],
            {"id": ids.SUBSCRIBER_UNMASK_RESULT, "property": "children"},
            {"id": ids.SUBSCRIBER_UNMASK, "property": "disabled"},
        ],
        "inputs": [{"id": ids.SUBSCRIBER_UNMASK, "property": "n_clicks", "value": 1}],
        "state": [
            {"id": ids.SUBSCRIBER_ID, "property": "data", "value": "E0"},
            [
                {
                    "id": {"type": ids.SUBSCRIBER_PERSONAL, "field": f},
                    "property": "id",
                    "value": {"type": ids.SUBSCRIBER_PERSONAL, "field": f},
                }
                for f in ("msisdn", "contact_name")
            ],
        ],
        "changedPropIds": [f"{ids.SUBSCRIBER_UNMASK}.n_clicks"],
    }
    viewer = client.post(
        "/_dash-update-component",
        json=body,
        headers={"X-Vantage-Role": "viewer", "X-Vantage-User": "vic", "Origin": "http://localhost"},
    )
    assert viewer.status_code == 403  # the callback's rule is "unmask": the guard refuses a viewer
    for clear in expected.clear_strings:
        assert clear not in viewer.get_data(as_text=True)
    assert _unmask_rows(store) == 0
    analyst = client.post(
        "/_dash-update-component",
        json=body,
        headers={"X-Vantage-Role": "analyst", "X-Vantage-User": "anna", "Origin": "http://localhost"},
    )
    assert analyst.status_code == 200
    assert expected.msisdn in analyst.get_data(as_text=True) and expected.contact_name in analyst.get_data(
        as_text=True
    )
    assert _unmask_rows(store) == 1


# --- The API ---------------------------------------------------------------------------------------


def _api_client(store: Store) -> Any:
    """The API on a bare Flask server, the clock at NOW, roles from trusted headers."""
    client = api_client(store, _settings(store), clock=lambda: NOW, role=None)
    client.environ_base.update(HTTP_X_VANTAGE_USER="tester", HTTP_X_VANTAGE_ROLE="viewer")
    return client


def test_api_returns_the_story_masked_and_404_for_unknown_ids(seeded: tuple[Store, StoryExpected]) -> None:
    store, expected = seeded
    client = _api_client(store)
    response = client.get("/api/v1/subscribers/E0")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == "E0" and body["currency"] == "EUR"
    assert body["profile"]["msisdn"] == expected.masked_msisdn
    assert [i["id"] for i in body["incidents"]] == [expected.harbour]
    assert body["tickets"][0]["description"] == expected.script
    # The catalogue's quality KPIs only (traffic_gb has no thresholds).
    assert {s["kpi"] for s in body["kpis"]["series"]} == {"availability_pct", "dl_throughput_mbps"}
    for clear in expected.clear_strings:
        assert clear not in response.get_data(as_text=True)
    missing = client.get("/api/v1/subscribers/nobody")
    assert missing.status_code == 404 and missing.get_json() == {"error": "no subscriber 'nobody'"}
    assert client.get("/api/v1/subscribers/E0?days=0").status_code == 400


def test_api_unmasks_only_for_roles_that_may_and_audits(seeded: tuple[Store, StoryExpected]) -> None:
    store, expected = seeded
    client = _api_client(store)
    refused = client.get(
        "/api/v1/subscribers/E0?unmask=1", headers={"X-Vantage-Role": "viewer", "X-Vantage-User": "vic"}
    )
    assert refused.status_code == 403 and expected.msisdn not in refused.get_data(as_text=True)
    assert _unmask_rows(store) == 0
    clear = client.get(
        "/api/v1/subscribers/E0?unmask=1", headers={"X-Vantage-Role": "analyst", "X-Vantage-User": "anna"}
    )
    assert clear.status_code == 200
    body = clear.get_json()
    assert body["profile"]["msisdn"] == expected.msisdn
    assert body["account"]["contact_email"] == expected.contact_email
    assert body["privacy"]["masked"] is False
    assert _unmask_rows(store) == 1
    masked = client.get(
        "/api/v1/subscribers/E0", headers={"X-Vantage-Role": "analyst", "X-Vantage-User": "anna"}
    )
    assert masked.get_json()["profile"]["msisdn"] == expected.masked_msisdn  # masked unless asked
    assert _unmask_rows(store) == 1
