"""The kept value classes (``line_values``) and the list sorted by value read from them.

On the hand-made base of tests/test_subscriber_search.py: once the value pass has run, the list
sorted by value (whole, and by business or VIP segment) is the merge of the classes' index walks,
and it is the very list the live weighing gives, page by page, by cursor and by offset; lines
changed after the pass are weighed live until the next one, and the pass then stores them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import Batch
from dashboard.incidents.queue import refresh_queue
from dashboard.incidents.value import refresh_line_classes
from dashboard.ingest import Ingestor
from dashboard.kpis import Scoring, load_catalogue
from dashboard.store import line_values as value_classes
from dashboard.store.db import Store
from dashboard.store.schema import line_values
from dashboard.subscribers import search
from dashboard.subscribers.search import Filters, search_page
from tests.browser import fixed_clock
from tests.test_subscriber_search import NOW, VIEWER, seed_base

LATER = NOW + timedelta(minutes=10)  # after the passes at NOW and 6 minutes later
SEGMENTS = (None, "smb", "enterprise", "vip")


@pytest.fixture(scope="module")
def scoring() -> Scoring:
    return load_catalogue("kpi_definitions.yaml").scoring


@pytest.fixture
def base(store: Store) -> Store:
    seed_base(store)
    return store


def _pass(store: Store, now: datetime = NOW) -> int | None:
    with store.begin() as conn:
        return refresh_line_classes(conn, now=now)


def _walk(
    store: Store, scoring: Scoring, segment: str | None, *, limit: int, live: bool = False
) -> list[Any]:
    """Every (id, value) of the list sorted by value, page by page through the cursors."""
    out: list[Any] = []
    cursor: str | None = None
    with store.connect() as conn:
        while True:
            rows, cursor, _ = search_page(
                conn,
                None,
                Filters(segment=segment),
                principal=VIEWER,
                scoring=scoring,
                limit=limit,
                cursor=cursor,
                **({"offset": 0} if not live else {}),
            )
            out += [(r["id"], r["value"]) for r in rows]
            if cursor is None:
                return out


def _live(store: Store, scoring: Scoring, segment: str | None) -> list[Any]:
    """The list as the live weighing of every line gives it (the export's read)."""
    with store.connect() as conn:
        stmt = search._sections(
            conn, search.Query(text=""), Filters(segment=segment), "value", scoring, None
        )[0]
        return [(r[0], round(float(r[2]), 2)) for r in conn.execute(stmt)]


def _total(store: Store, scoring: Scoring) -> int | None:
    with store.connect() as conn:
        return search_page(conn, None, Filters(), principal=VIEWER, scoring=scoring, limit=5)[2]


def _served_by_classes(store: Store, scoring: Scoring, segment: str | None) -> bool:
    with store.connect() as conn:
        stmt = search._by_class(conn, Filters(segment=segment), scoring, None, 10, search._kept(conn))
    return stmt is not None and "line_values" in str(stmt)


def test_the_pass_keeps_every_line_in_its_class(base: Store, scoring: Scoring) -> None:
    assert not _served_by_classes(base, scoring, None)  # never built: the list weighs live
    assert _pass(base) is None  # the first pass builds every line's class
    assert _total(base, scoring) == 38  # counted by the pass, not by reading every line
    with base.connect() as conn:
        rows = {r.subscriber_id: (r.segment, r.vip, r.arpu) for r in conn.execute(select(line_values))}
    assert len(rows) == 38
    assert rows["PT1"] == ("consumer", True, 30.0)  # JOANA: a VIP consumer
    assert rows["UK1"] == ("enterprise", False, 40.0)
    assert rows["NL1"] == ("smb", False, 20.0)
    assert rows["L02"] == ("consumer", False, rows["L02"][2])  # CONS: a plain consumer account
    # The next pass reads again what was ingested in the few minutes before the last one (a batch
    # committed late is not missed), the one after it nothing.
    assert _pass(base, NOW + timedelta(hours=1)) == 38
    assert _pass(base, NOW + timedelta(hours=2)) == 0


@pytest.mark.parametrize("segment", SEGMENTS)
def test_the_classes_give_the_live_list_page_by_page(
    base: Store, scoring: Scoring, segment: str | None
) -> None:
    _pass(base)
    assert _served_by_classes(base, scoring, segment)
    live = _live(base, scoring, segment)
    assert live, segment
    assert _walk(base, scoring, segment, limit=4) == live
    assert _walk(base, scoring, segment, limit=1000) == live
    with base.connect() as conn:  # by offset, as the grid jumps
        by_offset = [
            (r["id"], r["value"])
            for start in range(0, len(live), 5)
            for r in search_page(
                conn, None, Filters(segment=segment), principal=VIEWER, scoring=scoring, limit=5, offset=start
            )[0]
        ]
    assert by_offset == live


def test_other_filters_and_searches_weigh_live(base: Store, scoring: Scoring) -> None:
    _pass(base)
    for f in (Filters(segment="consumer"), Filters(plan="Biz"), Filters(risk="high"), Filters(affected=True)):
        with base.connect() as conn:
            assert search._by_class(conn, f, scoring, None, 10, search._kept(conn)) is None, f


def test_lines_changed_after_the_pass_are_weighed_live(base: Store, scoring: Scoring) -> None:
    _pass(base)
    _pass(base, NOW + timedelta(minutes=6))  # past the overlap: the next pass reads only what is new
    ing = Ingestor(base, clock=fixed_clock(LATER))
    ing.ingest(
        "crm",
        [
            # A new VIP account, a consumer line moved to it, a new line, an ARPU raised to the top.
            Batch(
                kind="accounts", records=[{"id": "NEWV", "name": "New VIP", "segment": "smb", "vip": True}]
            ),
            Batch(
                kind="subscribers",
                records=[
                    {
                        "id": "L02",
                        "account_id": "NEWV",
                        "msisdn": "+351960000002",
                        "arpu": 10.0,
                        "plan": "Smart",
                    },
                    {"id": "N1", "account_id": "ENT", "msisdn": "+351960009999", "arpu": 90.0, "plan": "Biz"},
                    {
                        "id": "L04",
                        "account_id": "CONS",
                        "msisdn": "+351960000004",
                        "arpu": 70.0,
                        "plan": "Smart",
                    },
                ],
            ),
        ],
    )
    assert _served_by_classes(base, scoring, None)  # the kept classes plus three lines weighed live
    assert _total(base, scoring) == 39  # the pass's count and the one new line, N1
    for segment in SEGMENTS:
        live = _live(base, scoring, segment)
        assert _walk(base, scoring, segment, limit=3) == live, segment
    top = _walk(base, scoring, None, limit=3)[:3]
    assert top == [("N1", 135.0), ("L04", 70.0), ("L03", 62.0)]
    assert ("L02", 24.0) in _walk(base, scoring, "vip", limit=50)  # 10 x smb 1.2 x VIP 2
    # The next pass stores them; the list is unchanged.
    assert _pass(base, LATER + timedelta(minutes=1)) == 3
    with base.connect() as conn:
        kept = {r.subscriber_id: (r.segment, r.vip, r.arpu) for r in conn.execute(select(line_values))}
        assert value_classes.changed_since(conn, LATER, cap=10) == []
    assert kept["L02"] == ("smb", True, 10.0)
    assert kept["N1"] == ("enterprise", False, 90.0)
    assert _walk(base, scoring, None, limit=3)[:3] == top
    assert _total(base, scoring) == 39


def test_the_queue_refresh_runs_the_pass(base: Store, scoring: Scoring) -> None:
    refresh_queue(base, scoring, now=NOW, currency="EUR")
    assert _served_by_classes(base, scoring, None)
    with base.connect() as conn:
        assert conn.execute(select(line_values.c.subscriber_id)).scalars().all()
