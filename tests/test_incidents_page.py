"""The Incidents page on a small hand-made network (tests/browser.py ``seed_queue``): the queue rows,
filters and deep links, the detail, the actions and the affected-subscribers drill-down.

By hand: the Harbour incident (ran-1, 10 min old, critical) hits 5 enterprise lines of ENT, whose
30-min SLA clock breaches at 12:20 and costs 600/h; the Hill incident (ran-2, 20 min old, major)
hits 40 consumer lines and 2 VIP lines, no SLA. Harbour ranks first.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import dash
import pandas as pd
import pytest
from dash import dcc, html
from sqlalchemy import select

from dashboard import ids
from dashboard.context import current_actor, current_scoring
from dashboard.figures import alarm_timeline_figure, cells_map_figure, kpi_impact_figure
from dashboard.incidents import read
from dashboard.privacy import PermissionDenied
from dashboard.store.db import Store
from dashboard.store.schema import audit
from tests import band_data
from tests.apps import new_app, request_as
from tests.browser import QueueExpected, seed_queue, settings_for
from tests.test_app import _text

NOW = datetime(2026, 3, 2, 12, 0)


@pytest.fixture
def page(sqlite_store: Store) -> Iterator[ModuleType]:
    """The page module inside an app context on an empty store, its clock pinned to NOW."""
    app = new_app(sqlite_store, settings_for(sqlite_store), clock=lambda: NOW)
    module = importlib.import_module("dashboard.pages.incidents")
    with request_as(app.server, "operator"):
        yield module


@pytest.fixture
def queued(sqlite_store: Store, page: ModuleType) -> QueueExpected:
    return seed_queue(sqlite_store, NOW)


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


def _by_id(component: Any, id_: Any) -> Any:
    (match,) = find(component, None, id=id_)
    return match


# --- The queue -------------------------------------------------------------------------------------


def test_grid_rows_are_ranked_rounded_and_json_ready(page: ModuleType, queued: QueueExpected) -> None:
    rows = page.grid_rows(page.current_store(), page.filters_from_query({}), NOW)
    assert [r["id"] for r in rows] == [queued.harbour, queued.hill]
    assert [r["rank"] for r in rows] == [1, 2]
    harbour, hill = rows
    assert (harbour["lines"], harbour["enterprise_lines"], harbour["vip_lines"]) == (5, 5, 0)
    assert (hill["lines"], hill["enterprise_lines"], hill["vip_lines"]) == (42, 0, 2)
    # 5 x 50 / 730 service + 5 x 50 x 0.001 x 24 churn + 600 penalty per hour.
    assert harbour["revenue_per_hour"] == pytest.approx(5 * 50 / 730 + 5 * 50 * 0.001 * 24 + 600, abs=0.01)
    assert harbour["sla_deadline"] == "2026-03-02T12:20:00Z" and hill["sla_deadline"] is None
    assert harbour["age_min"] == 10 and hill["age_min"] == 20
    assert (harbour["region"], hill["region"]) == ("North", "South")
    assert harbour["owner"] is None and harbour["state"] == "open"
    assert harbour["reason"] == "#1: EUR 606/h at risk, SLA breach in 20 min, critical severity"
    text = json.dumps(rows, allow_nan=False)  # no NaN, no timestamps, no numpy scalars
    assert json.loads(text) == rows


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"severity": "critical"}, ["harbour"]),
        ({"severity": "MAJOR"}, ["hill"]),
        ({"region": "N"}, ["harbour"]),
        ({"region": "South"}, ["hill"]),  # by name too
        ({"segment": "enterprise"}, ["harbour"]),
        ({"segment": "vip"}, ["hill"]),
        ({"segment": "smb"}, []),
        ({"owner": "-"}, ["harbour", "hill"]),
        ({"owner": "RAN team"}, []),
        ({"state": "resolved"}, []),
        ({"segment": "nonsense", "severity": "nonsense"}, ["harbour", "hill"]),  # ignored
    ],
)
def test_grid_rows_filter(
    page: ModuleType, queued: QueueExpected, query: dict[str, str], expected: list[str]
) -> None:
    rows = page.grid_rows(page.current_store(), page.filters_from_query(query), NOW)
    assert [r["id"] for r in rows] == [getattr(queued, name) for name in expected]


def test_filters_round_trip_through_the_query_string(page: ModuleType) -> None:
    assert page.filters_from_query({}) == {
        "region": None,
        "segment": None,
        "severity": None,
        "states": ["open", "acknowledged"],
        "owner": None,
    }
    asked = {"severity": "Critical", "state": "resolved,open,bogus", "owner": "-", "region": "any"}
    filters = page.filters_from_query(asked)
    assert filters["states"] == ["open", "resolved"] and filters["region"] is None
    link = page.query_string(filters, "INC-1")
    assert link == "?severity=critical&owner=-&state=open,resolved&id=INC-1"
    assert page.query_string(page.filters_from_query({})) == ""
    # The controls read back exactly what the URL said.
    assert page.control_filters(None, None, "critical", ["open", "resolved"], "-") == filters


def test_the_summary_says_why_the_queue_is_empty(page: ModuleType, sqlite_store: Store) -> None:
    assert "has not been computed yet" in _text(page.layout())
    seed_queue(sqlite_store, NOW)
    text = _text(page.layout(segment="smb"))
    assert "No incidents match these filters — computed at 2026-03-02 12:00:00 UTC" in text
    assert "2 active incidents; queue computed at 2026-03-02 12:00:00 UTC" in _text(page.layout())


def test_refresh_reads_the_queue_and_keeps_unchanged_options(page: ModuleType, queued: QueueExpected) -> None:
    store = page.current_store()
    filters = page.control_filters("any", "any", "critical", ["open", "acknowledged"], "any")
    rows, summary, regions, owners = page.refresh_queue_view(store, filters, NOW)
    assert [r["id"] for r in rows] == [queued.harbour] and summary.startswith("1 active incident;")
    assert [o["label"] for o in regions] == ["All regions", "North", "South"]
    assert [o["value"] for o in owners] == ["any", "-"]
    again = page.refresh_queue_view(store, filters, NOW, regions_shown=regions, owners_shown=owners)
    assert again[2] is dash.no_update and again[3] is dash.no_update


def test_refresh_keeps_the_rows_when_the_store_fails(page: ModuleType, tmp_path: Any) -> None:
    broken = Store(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    rows, summary, *_ = page.refresh_queue_view(broken, page.filters_from_query({}), NOW)
    assert rows is dash.no_update and summary.startswith("STALE")
    broken.dispose()


# --- The detail ------------------------------------------------------------------------------------


def test_deep_link_selects_the_row_and_opens_the_detail(page: ModuleType, queued: QueueExpected) -> None:
    layout = page.layout(id=queued.harbour, severity="critical", region="North")
    assert _by_id(layout, ids.INCIDENTS_REGION).value == "N"  # a region named in the link is selected
    grid = _by_id(layout, ids.INCIDENTS_GRID)
    assert [r["id"] for r in grid.rowData] == [queued.harbour]
    assert grid.selectedRows == {"ids": [queued.harbour]} and grid.getRowId == "params.data.id"
    assert _by_id(layout, ids.INCIDENTS_SELECTED).data == queued.harbour
    detail = _by_id(layout, ids.INCIDENTS_DETAIL)
    assert "d-none" not in detail.className
    text = _text(detail)
    assert queued.harbour_title in text and "Opened 2026-03-02 11:50 UTC (10 min ago)" in text
    assert "#1: EUR 606/h at risk, SLA breach in 20 min, critical severity" in text
    assert "SLA urgency breach in 20 min" in text and "Owner unassigned" in text
    # The points of every factor add up to the score shown.
    q = page.read_detail(page.current_store(), queued.harbour, current_scoring(), NOW).incident["queue"]
    points = sum(f["points"] for f in q["breakdown"]["factors"].values())
    assert f"score {points:.1f} / 100" in text
    assert "5 subscribers on affected cells" in text
    (subs,) = find(detail, None, id={"type": ids.INCIDENTS_SUBSCRIBERS, "incident": queued.harbour})
    assert subs.rowModelType == "infinite"
    (accounts,) = [
        g for g in find(detail, type(grid)) if "penalty_per_hour" in (getattr(g, "rowData", None) or [{}])[0]
    ]
    assert accounts.rowData == [
        {
            "id": "ENT",
            "name": "Harbour Logistics",
            "segment": "enterprise",
            "vip": "no",
            "lines": 5.0,
            "degraded_share": 1.0,
            "sla_deadline": "2026-03-02T12:20:00Z",
            "penalty_per_hour": 600.0,
            "value": 375.0,
            "account_manager": "Ana Costa",
        }
    ]
    graphs = find(detail, dcc.Graph)
    assert len(graphs) == 3


def test_no_selection_hides_the_detail_and_an_unknown_id_says_so(
    page: ModuleType, queued: QueueExpected
) -> None:
    assert "d-none" in _by_id(page.layout(), ids.INCIDENTS_DETAIL).className
    cls, header, *_ = page.render_detail(page.current_store(), "INC-nope", NOW)
    assert "d-none" not in cls and "No incident 'INC-nope'" in _text(header)


def test_ticket_text_is_shown_as_text_never_as_html(page: ModuleType, queued: QueueExpected) -> None:
    _, _, body, *_ = page.render_detail(page.current_store(), queued.hill, NOW)
    (card,) = [c for c in find(body, html.Ul) if "vt-tickets" in (c.className or "")]
    (description,) = [p for p in find(card, html.P) if "<script>" in str(p.children)]
    assert description.children == queued.script_ticket  # a plain string child: React escapes it
    assert "<b>No signal</b>" in _text(card)
    assert not find(body, dcc.Markdown) and not find(body, html.Iframe)


def test_selection_follows_the_grid_and_close_clears_it(page: ModuleType) -> None:
    rows = [{"id": "INC-2", "title": "x"}]
    assert page.selection_change(ids.INCIDENTS_GRID, rows, "INC-1") == ("INC-2", dash.no_update)
    same = page.selection_change(ids.INCIDENTS_GRID, rows, "INC-2")
    assert same == (dash.no_update, dash.no_update)  # re-reported after a refresh: nothing to re-read
    assert page.selection_change(ids.INCIDENTS_GRID, [], "INC-2")[0] is dash.no_update
    assert page.selection_change(ids.INCIDENTS_GRID, {"ids": ["INC-3"]}, None)[0] == "INC-3"
    assert page.selection_change(ids.INCIDENTS_CLOSE, rows, "INC-2") == (None, True)


# --- Actions ----------------------------------------------------------------------------------------


def _audit(store: Store, incident_id: str) -> list[tuple[str, str]]:
    with store.connect() as conn:
        rows = conn.execute(select(audit.c.actor, audit.c.action).where(audit.c.target_id == incident_id))
        return [(r.actor, r.action) for r in rows]


def test_actions_are_audited_and_show_in_the_grid_and_detail(page: ModuleType, queued: QueueExpected) -> None:
    store, inc = page.current_store(), queued.harbour
    msg, acted, note_box = page.action_outputs(store, ids.INCIDENTS_ACK, inc, "", "", 0, actor="ana", now=NOW)
    assert "Acknowledged by ana." in _text(msg) and acted == 1 and note_box is dash.no_update
    msg, acted, _ = page.action_outputs(store, ids.INCIDENTS_ACK, inc, "", "", 1, actor="ana", now=NOW)
    assert "Already acknowledged" in _text(msg) and acted is dash.no_update
    msg, acted, _ = page.action_outputs(
        store, ids.INCIDENTS_ASSIGN, inc, " RAN team ", "", 1, actor="ana", now=NOW
    )
    assert "Assigned to RAN team." in _text(msg) and acted == 2
    msg, acted, note_box = page.action_outputs(
        store, ids.INCIDENTS_NOTE_ADD, inc, "", "Field engineer dispatched", 2, actor="ana", now=NOW
    )
    assert "Note added by ana." in _text(msg) and acted == 3 and note_box == ""
    assert _audit(store, inc) == [
        ("ana", "incident.acknowledge"),
        ("ana", "incident.assign"),
        ("ana", "incident.note"),
    ]
    # The grid row and the detail show what was done, before the next queue refresh.
    (row,) = page.grid_rows(store, page.filters_from_query({"owner": "RAN team"}), NOW)
    assert (row["id"], row["owner"], row["state"]) == (inc, "RAN team", "acknowledged")
    _, _, body, _, ack_disabled, owner = page.render_detail(store, inc, NOW)
    assert ack_disabled is True and owner == "RAN team"
    assert "Field engineer dispatched" in _text(body) and "Notes (1)" in _text(body)


def test_a_refused_action_says_why_and_writes_nothing(page: ModuleType, queued: QueueExpected) -> None:
    store = page.current_store()
    msg, acted, box = page.action_outputs(
        store, ids.INCIDENTS_NOTE_ADD, queued.hill, "", "   ", 0, actor="ana", now=NOW
    )
    assert "a note needs some text" in _text(msg) and acted is dash.no_update and box is dash.no_update
    msg, _, _ = page.action_outputs(
        store, ids.INCIDENTS_ASSIGN, queued.hill, "x" * 200, "", 0, actor="a", now=NOW
    )
    assert "at most 128 characters" in _text(msg)
    msg, _, _ = page.action_outputs(store, ids.INCIDENTS_ACK, None, "", "", 0, actor="ana", now=NOW)
    assert "Select an incident first." in _text(msg)
    msg, _, _ = page.action_outputs(store, ids.INCIDENTS_ACK, "INC-nope", "", "", 0, actor="ana", now=NOW)
    assert "no incident 'INC-nope'" in _text(msg)
    assert _audit(store, queued.hill) == []


def test_the_actor_is_the_principal_the_guard_established(sqlite_store: Store) -> None:
    app = new_app(sqlite_store, settings_for(sqlite_store))
    with request_as(app.server, "operator", "ana.costa"):
        assert current_actor() == "ana.costa"
    with app.server.test_request_context(headers={"X-Vantage-User": "eve"}), pytest.raises(PermissionDenied):
        current_actor()  # no guard passed this request: nobody may act through it
    with app.server.app_context(), pytest.raises(PermissionDenied):
        current_actor()


# --- Drill-down -------------------------------------------------------------------------------------


def test_affected_subscribers_come_a_block_at_a_time_in_the_grids_order(
    page: ModuleType, queued: QueueExpected
) -> None:
    store, scoring = page.current_store(), current_scoring()
    first = page.subscribers_block(
        store, queued.hill, scoring, {"startRow": 0, "endRow": 10, "sortModel": []}
    )
    assert first["rowCount"] == queued.hill_subscribers == 42 and len(first["rowData"]) == 10
    # VIP lines are worth twice as much: 30 x 2 = 60 beats 20.
    assert [r["id"] for r in first["rowData"][:3]] == ["V0", "V1", "C00"]
    assert first["rowData"][0]["value"] == pytest.approx(60.0)
    assert all("*** ***" in r["msisdn"] and not r["msisdn"].startswith("351") for r in first["rowData"])
    last = page.subscribers_block(store, queued.hill, scoring, {"startRow": 40, "endRow": 50})
    assert [r["id"] for r in last["rowData"]] == ["C38", "C39"]
    by_id = page.subscribers_block(
        store,
        queued.hill,
        scoring,
        {"startRow": 0, "endRow": 3, "sortModel": [{"colId": "id", "sort": "desc"}]},
    )
    assert [r["id"] for r in by_id["rowData"]] == ["V1", "V0", "C39"]
    cheapest = page.subscribers_block(
        store,
        queued.hill,
        scoring,
        {"startRow": 0, "endRow": 2, "sortModel": [{"colId": "value", "sort": "asc"}]},
    )
    assert [r["value"] for r in cheapest["rowData"]] == [20.0, 20.0]
    # A column the store cannot sort on falls back to value, most valuable first.
    unsortable = page.subscribers_block(
        store,
        queued.hill,
        scoring,
        {"startRow": 0, "endRow": 1, "sortModel": [{"colId": "msisdn", "sort": "asc"}]},
    )
    assert unsortable["rowData"][0]["id"] == "V0"
    json.dumps(first, allow_nan=False)


def test_export_is_every_affected_subscriber_masked(page: ModuleType, queued: QueueExpected) -> None:
    out = page.subscribers_download(page.current_store(), queued.hill, current_scoring())
    assert out["filename"] == f"{queued.hill}-affected-subscribers.csv" and out["type"] == "text/csv"
    csv = out["content"]
    assert csv.count("\n") == 43  # header + 42
    assert "35192000" not in csv and "35193000" not in csv


# --- Figures ----------------------------------------------------------------------------------------


def test_incident_figures_on_the_stored_incident(page: ModuleType, queued: QueueExpected) -> None:
    with page.current_store().connect() as conn:
        alarms = read.alarm_timeline(conn, queued.harbour)
        cells = read.affected_cells(conn, queued.harbour)
        kpis = read.kpi_impact(conn, queued.harbour, ["availability_pct", "dl_throughput_mbps"], now=NOW)
    timeline = alarm_timeline_figure(alarms, NOW)
    (bar,) = timeline.data
    assert list(bar.y) == ["ROOT ▶ Harbour gNodeB · A1"]
    assert list(bar.x) == [10 * 60 * 1000]  # raised 10 min ago, still active: a bar up to now
    site_map = cells_map_figure(cells)
    assert list(site_map.data[0].x) == [-8.61] and list(site_map.data[0].y) == [41.15]
    assert list(site_map.data[0].marker.color) == [1.0]
    assert [t.type for t in site_map.data] == ["scatter"]  # a plain lon/lat plane: no tiles to fetch
    impact = kpi_impact_figure(
        kpis, NOW - timedelta(minutes=10), [("availability_pct", "A"), ("dl_throughput_mbps", "T")]
    )
    assert [len(t.x) for t in impact.data] == [4, 4]
    assert len(impact.layout.shapes) == 2  # the incident start, on both panels


def test_figures_say_why_they_are_empty() -> None:
    empty_alarms = pd.DataFrame(
        columns=["id", "severity", "raised_at", "cleared_at", "resource", "resource_id", "root"]
    )
    assert "No alarms" in alarm_timeline_figure(empty_alarms, NOW).layout.annotations[0].text
    cells = pd.DataFrame(
        {"cell_id": ["c9"], "name": ["C9"], "site_id": ["S9"], "site": ["X"], "lat": [None], "lon": [None],
         "degraded_share": [1.0], "lines": [3.0]}
    )  # fmt: skip
    assert cells_map_figure(cells).layout.annotations[0].text == "No affected cell has site coordinates"
    no_kpis = pd.DataFrame(columns=["period_start", "kpi", "value"])
    assert "No KPI samples" in kpi_impact_figure(no_kpis, NOW, [("a", "A")]).layout.annotations[0].text


def test_the_site_map_sums_each_sites_cells_in_key_order() -> None:
    cells = pd.DataFrame(
        {
            "cell_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
            "name": ["North", None, "East", "West", None, "Far"],
            "site_id": ["S2", "S2", "S1", "S1", None, "S3"],
            "site": [None, "Quay", "Mill", "Mill", "Lone", None],
            "lat": [41.2, 41.2, 41.1, 41.1, 41.3, None],
            "lon": [-8.6, -8.6, -8.7, -8.7, -8.5, None],
            "degraded_share": [None, 0.4, 0.9, 0.2, None, 1.0],
            "lines": [10.0, None, 5.0, 7.0, 2.0, 9.0],
        }
    )
    (sites,) = cells_map_figure(cells).data
    # S1, S2, then the cell without a site id; S3 has no coordinates and is only counted.
    assert list(sites.x) == [-8.7, -8.6, -8.5] and list(sites.y) == [41.1, 41.2, 41.3]
    assert list(sites.text) == ["Mill", "Quay", "Lone"]  # a site's first name, not its first row's
    # A cell without a name by its id; a missing share or line count ignored, not a zero.
    assert [row[0] for row in sites.customdata] == ["East, West", "North, c2", "c5"]
    assert [row[2] for row in sites.customdata] == [12.0, 10.0, 2.0]
    assert [row[3] for row in sites.customdata] == [2, 2, 1]
    assert sites.customdata[1][1] == 0.4 and pd.isna(sites.customdata[2][1])
    assert list(sites.marker.color)[:2] == [0.9, 0.4]
    assert "1 cell without coordinates" in cells_map_figure(cells).layout.title.text
    assert sites.mode == "markers+text"
    many = pd.DataFrame(
        {"cell_id": [f"c{i}" for i in range(30)], "name": None, "site_id": [f"S{i}" for i in range(30)],
         "site": [f"Site {i}" for i in range(30)], "lat": [41.0 + i / 100 for i in range(30)], "lon": -8.6,
         "degraded_share": 1.0, "lines": 10.0}
    )  # fmt: skip
    (crowded,) = cells_map_figure(many).data
    assert crowded.mode == "markers" and len(crowded.text) == 30  # names on hover only


def test_a_long_list_of_accounts_is_paged_and_a_short_one_is_not(page: ModuleType) -> None:
    rows = [{"id": f"A{i}", "name": f"Account {i}", "value": float(100 - i)} for i in range(60)]
    long = page.accounts_block(rows)
    opts = long.dashGridOptions
    assert opts["pagination"] is True and opts["paginationPageSize"] == page.ACCOUNTS_PAGE
    assert len(long.rowData) == 60  # every account is there to sort and page through
    short = page.accounts_block(rows[: page.ACCOUNTS_PAGE])
    assert "pagination" not in short.dashGridOptions and short.dashGridOptions["domLayout"] == "autoHeight"
    assert "No business" in page.accounts_block([]).children


def test_grid_records_are_plain_json_values_whatever_the_column_type() -> None:
    from dashboard.pages import records

    when = pd.Timestamp("2026-03-01 12:30:05")
    df = pd.DataFrame(
        {
            "n": [1, 2],
            "x": [1.5, float("nan")],
            "ok": [True, False],
            "text": pd.array(["a", None], dtype="str"),
            "at": [when, pd.NaT],
            "at_tz": pd.to_datetime([when, pd.NaT]).tz_localize("UTC"),
            "count": pd.array([3, None], dtype="Int64"),
            "mixed": pd.Series([pd.Timestamp("2026-03-02"), None], dtype=object),
        }
    )
    assert records(df) == [
        {"n": 1, "x": 1.5, "ok": True, "text": "a", "at": "2026-03-01 12:30:05",
         "at_tz": "2026-03-01 12:30:05", "count": 3, "mixed": "2026-03-02 00:00:00"},
        {"n": 2, "x": None, "ok": False, "text": None, "at": None, "at_tz": None, "count": None,
         "mixed": None},
    ]  # fmt: skip
    out = records(df)
    assert [type(v) for v in out[0].values()] == [int, float, bool, str, str, str, int, str]
    json.dumps(out)  # every value JSON-safe
    assert records(df.iloc[0:0]) == []


# --- Detected incidents and the usual band -----------------------------------------------------------


def _band_graphs(component: Any) -> list[Any]:
    """The graphs that draw KPIs against their usual band (a shaded band trace)."""
    return [
        g
        for g in find(component, dcc.Graph)
        if any(getattr(t, "fill", None) == "tonexty" for t in (g.figure.data if g.figure else []))
    ]


def test_a_detected_incident_has_its_badge_and_its_cells_against_their_usual_band(
    sqlite_store: Store,
) -> None:
    cat = band_data.catalogue()
    detected = band_data.degraded_silently(sqlite_store, cat)
    app = new_app(sqlite_store, settings_for(sqlite_store), clock=lambda: band_data.NOW)
    page = importlib.import_module("dashboard.pages.incidents")
    with request_as(app.server, "viewer"):
        (row,) = page.grid_rows(sqlite_store, page.filters_from_query({}), band_data.NOW)
        _, header, body, *_ = page.render_detail(sqlite_store, detected.incident_id, band_data.NOW)
    # The grid row carries its kind, which the title column's renderer turns into the badge.
    assert row["kind"] == "detected" and row["reason"].startswith("#1: no alarm; ")
    (title,) = [c for c in page.queue_columns("EUR") if c.get("field") == "title"]
    assert title["cellRenderer"] == "VtIncidentTitle"
    (badge,) = find(header, html.Span, className="vt-detectedbadge")
    assert badge.children == "Detected — no alarm"
    # C1 against its usual band: the verdicts in words over a chart of each KPI shown.
    text = _text(body)
    assert "Against their usual band, last 24 h: 2 KPIs outside" in text
    assert "c1 (Porto 1)" in text
    assert "Downlink throughput 61% below usual since 01:00 UTC" in text
    assert "Latency 3.0x usual since 01:00 UTC" in text
    (graph,) = _band_graphs(body)  # only C1 is affected
    fig = graph.figure
    bands_drawn = [t for t in fig.data if t.fill == "tonexty"]
    # Throughput and latency; the headline dropped-call rate is named, but has no samples to draw.
    assert len(bands_drawn) == 2
    assert "Dropped call rate: no usual band yet" in text
    outside = [t for t in fig.data if t.name == "outside usual band"]
    assert [len(t.x) for t in outside] == [band_data.BAD_PERIODS] * 2
    assert [t.marker.symbol for t in outside] == [
        "triangle-down",
        "triangle-up",
    ]  # low throughput, high latency
    (tput,) = [t for t in fig.data if t.name == "Downlink throughput (Mbit/s)"]
    assert len(tput.x) == 96 and pd.Timestamp(tput.x[-1]) == pd.Timestamp(band_data.NOW)


def test_an_alarm_incident_has_no_badge_and_says_when_no_band_is_learnt(
    page: ModuleType, queued: QueueExpected
) -> None:
    _, header, body, *_ = page.render_detail(page.current_store(), queued.harbour, NOW)
    assert not find(header, html.Span, className="vt-detectedbadge")
    assert "No usual band learnt yet for the affected cells." in _text(body)
    assert not _band_graphs(body)
    rows = page.grid_rows(page.current_store(), page.filters_from_query({}), NOW)
    assert [r["kind"] for r in rows] == ["alarm", "alarm"]
