"""Page queries on both backends, freshness rules, and each page's pure functions and layout."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from connectors.base import Batch
from dashboard import health, queries
from dashboard.config import ConnectorConfig
from dashboard.ingest import Ingestor
from dashboard.store.db import Store
from tests.apps import new_app, request_as
from tests.browser import seed, settings_for
from tests.test_app import _text

NOW = datetime(2024, 5, 15, 12, 0, 0)


@pytest.fixture
def seeded(store: Store) -> Store:
    """The hand-made operator on SQLite and on PostgreSQL."""
    seed(store, NOW)
    return store


@pytest.fixture
def app_ctx(sqlite_store: Store) -> Iterator[Store]:
    """A seeded SQLite store with an app context, so page layouts find their store."""
    seed(sqlite_store, NOW)
    app = new_app(sqlite_store, settings_for(sqlite_store))
    with request_as(app.server, "operator"):
        yield sqlite_store


def page(name: str) -> ModuleType:
    # Dash imports the page modules when an app is built; they cannot be imported before.
    return importlib.import_module(f"dashboard.pages.{name}")


# --- Queries (SQLite and PostgreSQL) -------------------------------------------------------


def test_overview_numbers(seeded: Store) -> None:
    with seeded.connect() as conn:
        ov = queries.overview(conn, now=NOW, currency="EUR")
    assert ov == queries.Overview(
        active_alarms=3,
        open_incidents=2,
        tickets_today=2,
        active_subscribers=2,
        revenue_month=300.5,
        currency="EUR",
        as_of=NOW,
    )


def test_overview_revenue_counts_only_the_asked_currency(seeded: Store) -> None:
    with seeded.connect() as conn:
        usd = queries.overview(conn, now=NOW, currency="USD")
        next_month = queries.overview(conn, now=NOW + timedelta(days=31), currency="EUR")
    assert usd.revenue_month == 999.0 + 200.0  # B3 in USD plus B2 without a currency
    assert next_month.revenue_month == 0.0
    assert next_month.tickets_today == 0


def test_alarms_by_severity(seeded: Store) -> None:
    with seeded.connect() as conn:
        counts = queries.active_alarms_by_severity(conn)
    assert counts == {"critical": 2, "major": 1, "minor": 0, "warning": 0, "indeterminate": 0}


def test_run_summaries(seeded: Store) -> None:
    with seeded.connect() as conn:
        df = queries.run_summaries(conn, now=NOW).set_index("connector")
    assert df.index.tolist() == ["alpha", "beta", "legacy"]
    alpha = df.loc["alpha"]
    assert (
        alpha["last_status"],
        alpha["last_records_in"],
        alpha["last_upserted"],
        alpha["last_quarantined"],
    ) == (
        "partial",
        3,
        1,
        2,
    )
    # The failed run two days ago is outside the last 24 h.
    assert (alpha["runs_24h"], alpha["records_in_24h"], alpha["quarantined_24h"]) == (1, 3, 2)
    assert pd.Timestamp(alpha["last_success_at"]) == pd.Timestamp(NOW - timedelta(seconds=30))
    beta = df.loc["beta"]
    assert beta["last_status"] == "failed" and bool(beta["last_retriable"]) is True
    assert "HTTP 503" in beta["last_error"]
    assert pd.isna(beta["last_success_at"])


def test_quarantine_page_filters_and_pages(seeded: Store) -> None:
    with seeded.connect() as conn:
        everything = queries.quarantine_page(conn)
        by_search = queries.quarantine_page(conn, search="MINIMUM", search_reasons=True)
        # Reasons may quote a refused value: a role that may not unmask searches record ids only.
        assert queries.quarantine_page(conn, search="MINIMUM").total == 0
        by_record = queries.quarantine_page(conn, search="row-7", raw_chars=20)
        none = queries.quarantine_page(conn, connector="beta")
        second = queries.quarantine_page(conn, offset=1, limit=1)
        connectors, kinds = queries.quarantine_facets(conn)
    assert everything.total == 2
    assert by_search.total == 1 and by_search.rows.iloc[0]["record_id"] == "S9"
    raw = by_record.rows.iloc[0]
    assert len(raw["raw"]) == 20 and raw["raw_length"] > 400
    assert none.total == 0 and none.rows.empty
    assert second.total == 2 and len(second.rows) == 1
    assert (connectors, kinds) == (["alpha"], ["subscribers"])


# --- Freshness (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_s", "expected"),
    [(0, "fresh"), (120, "fresh"), (121, "stale"), (86400, "stale")],
)
def test_freshness_is_two_intervals(age_s: int, expected: str) -> None:
    assert health.freshness(NOW - timedelta(seconds=age_s), 60.0, NOW) == expected


def test_freshness_without_success_or_interval() -> None:
    assert health.freshness(None, 60.0, NOW) == "never"
    assert health.freshness(NOW, None, NOW) == "unknown"


@pytest.mark.parametrize(
    ("status", "retriable", "expected"),
    [
        (None, None, "never run"),
        ("running", None, "running"),
        ("success", None, "healthy"),
        ("partial", None, "healthy"),
        ("failed", True, "retrying"),
        ("failed", False, "failing"),
        ("failed", None, "failing"),
    ],
)
def test_source_state(status: str | None, retriable: bool | None, expected: str) -> None:
    assert health.source_state(status, retriable) == expected


def test_source_statuses_on_hand_made_rows() -> None:
    connectors = [
        ConnectorConfig(name="a", type="t", interval=60),
        ConnectorConfig(name="b", type="t", interval=600),
        ConnectorConfig(name="c", type="t", interval=60),
    ]
    summaries = pd.DataFrame(
        [
            {"connector": "zzz", "last_status": "success", "last_success_at": NOW},
            {"connector": "a", "last_status": "success", "last_success_at": NOW - timedelta(minutes=3),
             "last_records_in": 5, "runs_24h": 4},
            {"connector": "b", "last_status": "failed", "last_retriable": True, "last_error": "timeout",
             "last_next_attempt_at": NOW + timedelta(minutes=1),
             "last_success_at": NOW - timedelta(minutes=5)},
        ],
        columns=queries.RUN_SUMMARY_COLUMNS,
    )  # fmt: skip
    df = health.source_statuses(connectors, summaries, NOW).set_index("connector")
    assert df.index.tolist() == ["a", "b", "c", "zzz"]  # configured order, then the unknown
    assert df.loc["a", ["state", "freshness", "last_records_in", "runs_24h"]].tolist() == [
        "healthy",
        "stale",
        5,
        4,
    ]
    assert df.loc["b", ["state", "freshness", "last_error"]].tolist() == ["retrying", "fresh", "timeout"]
    assert df.loc["b", "next_attempt_at"] == NOW + timedelta(minutes=1)
    assert df.loc["c", ["state", "freshness", "runs_24h"]].tolist() == ["never run", "never", 0]
    assert df.loc["zzz", ["configured", "enabled", "freshness"]].tolist() == [False, False, "unknown"]


def test_health_report_ignores_disabled_and_unconfigured_sources() -> None:
    connectors = [
        ConnectorConfig(name="a", type="t", interval=60),
        ConnectorConfig(name="off", type="t", enabled=False),
    ]
    summaries = pd.DataFrame(
        [{"connector": "a", "last_status": "success", "last_success_at": NOW},
         {"connector": "old", "last_status": "failed", "last_retriable": False}],
        columns=queries.RUN_SUMMARY_COLUMNS,
    )  # fmt: skip
    statuses = health.source_statuses(connectors, summaries, NOW)
    body, code = health.health_report(
        reachable=True, dialect="sqlite", statuses=statuses, connectors=connectors, now=NOW
    )
    assert (body["status"], code) == ("ok", 200)
    assert body["sources"]["off"]["fresh"] is False and body["sources"]["old"]["state"] == "failing"


# --- Pages ---------------------------------------------------------------------------------


def test_incidents_layout_reads_its_filters_from_the_query_string(app_ctx: Store) -> None:
    # The seeded store has incidents from a source but no ranked queue: the page says so.
    from dashboard import ids
    from tests.test_incidents_page import find

    layout = page("incidents").layout(severity="Critical", state="resolved,open", owner="-")
    values = {c.id: c.value for c in find(layout) if str(getattr(c, "id", "")).startswith("incidents-")
              and hasattr(c, "value")}  # fmt: skip
    assert values[ids.INCIDENTS_SEVERITY] == "critical"
    assert values[ids.INCIDENTS_STATE] == ["open", "resolved"]
    assert values[ids.INCIDENTS_OWNER] == "-" and values[ids.INCIDENTS_REGION] == "any"
    assert "The queue has not been computed yet" in _text(layout)


def test_sources_pure_functions(app_ctx: Store) -> None:
    sources = page("sources")
    assert [sources.fmt_interval(s) for s in (30, 60, 90, 3600, 5400, 86400, None)] == [
        "30 s", "1 min", "1.5 min", "1 h", "1.5 h", "1 d", "—",
    ]  # fmt: skip
    assert sources.preview("a\n  b " + "x" * 300, limit=10) == "a b xxxxx…"
    assert sources.pretty_raw('{"b":1,"a":2}') == '{\n  "a": 2,\n  "b": 1\n}'
    assert sources.pretty_raw("not json") == "not json"
    assert sources.page_count(0) == 1 and sources.page_count(50) == 1 and sources.page_count(51) == 2


def test_sources_status_rows_and_quarantine(app_ctx: Store) -> None:
    sources = page("sources")
    statuses = sources.read_statuses(app_ctx, settings_for(app_ctx), NOW)
    rows = {r["connector"]: r for r in sources.status_rows(statuses)}
    assert rows["alpha"]["interval"] == "1 min" and rows["alpha"]["freshness"] == "fresh"
    assert rows["beta"]["state"] == "retrying" and rows["beta"]["last_success_at"] == "never"
    assert rows["beta"]["next_attempt_at"] == "2024-05-15 11:56:00"
    assert rows["gamma"]["enabled"] == "no" and rows["gamma"]["state"] == "never run"
    assert rows["legacy"]["type"] == "not configured"
    qpage = sources.read_quarantine(app_ctx, "any", "any", None, 1)
    assert sources.quarantine_count(qpage) == "1 to 2 of 2 quarantined records, newest first"
    qrows = sources.quarantine_rows(qpage)
    assert all(isinstance(r["id"], str) for r in qrows)
    reject = next(r for r in qrows if r["record_id"] == "row-7")
    assert reject["raw_preview"].endswith("…") and len(reject["raw_preview"]) == 160
    detail = sources.raw_detail(app_ctx, {"rowId": reject["id"]})
    assert '"msisdn": "garbled"' in detail and "x" * 400 in detail
    assert "no longer" in sources.raw_detail(app_ctx, {"rowId": "99999"})
    layout_text = _text(sources.layout(connector="alpha"))
    assert "Quarantined records" in layout_text and "1 to 2 of 2" in layout_text


def test_pages_say_so_when_the_store_cannot_be_read(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: every table is missing
    app = new_app(store, settings_for(store))
    with request_as(app.server, "operator"):
        for name, kwargs in [
            ("incidents", {}),
            ("linkage", {}),
            ("sources", {}),
            ("subscribers", {"q": "S1"}),
        ]:
            assert "could not be read" in _text(page(name).layout(**kwargs)), name
    store.dispose()


def test_revenue_counts_what_was_billed_this_month(seeded: Store) -> None:
    """A bill for last month's usage issued this month is this month's revenue, not last month's."""
    month_start = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_period = (month_start - timedelta(days=1)).replace(day=1)
    Ingestor(seeded).ingest(
        "bss",
        [
            Batch(
                kind="bills",
                records=[
                    {
                        "id": "B9",
                        "account_id": "A1",
                        "period_start": last_period,
                        "period_end": month_start - timedelta(days=1),
                        "amount": 70.0,
                        "currency": "EUR",
                        "issued_at": month_start + timedelta(hours=2),
                    }
                ],
            )
        ],
    )
    with seeded.connect() as conn:
        now = queries.overview(conn, now=NOW, currency="EUR")
        before = queries.overview(conn, now=last_period + timedelta(days=3), currency="EUR")
    assert now.revenue_month == 300.5 + 70.0
    assert before.revenue_month == 50.0  # B4 only: B9 was not billed yet in its own period's month
