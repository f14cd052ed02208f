"""Subscriber search, the filtered list, its page, API and CSV export, on a small hand-made base.

By hand (see ``seed_base``): region North (site Harbour, cell c1) and South (site Hill, cell c2);
an open incident degrades c1, a resolved one c2. Accounts: ENT (enterprise), SMB, JOANA (a VIP
consumer, "Joana Silva"), and accounts whose names hold characters SQL and HTML give meaning to.
Lines: PT1 (+351 912 345 678, JOANA, on c1), UK1 (stored as 00447700900123, ENT), NL1 (stored
without a +), and L00..L29 for paging, with churn risk and sentiment on most. Values follow
``scoring:`` in kpi_definitions.yaml: ARPU x segment (consumer 1, smb 1.2, enterprise 1.5) x VIP 2.
"""

from __future__ import annotations

import importlib
import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import dash
import pandas as pd
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy import text as sql

from connectors.base import Batch
from dashboard.ingest import Ingestor
from dashboard.ingest.derive import derive_keys, msisdn_keys, name_key
from dashboard.kpis import Scoring, load_catalogue
from dashboard.privacy import Principal
from dashboard.store.db import Store
from dashboard.store.schema import accounts, incident_cells, subscriber_signals, subscribers
from dashboard.store.upsert import upsert
from dashboard.subscribers import search
from dashboard.subscribers.search import Filters, SearchError, filters_from, parse_query, search_page
from tests.apps import client as client_of
from tests.apps import new_app
from tests.browser import fixed_clock, settings_for, two_region_network
from tests.conftest import PG_URL, require_pg
from tests.reference import ORIGINS, OWN, REFERENCE, payloads

NOW = datetime(2026, 3, 2, 12, 0)
VIEWER = Principal(user="vera", role="viewer")
ANALYST = Principal(user="ana", role="analyst")
PT1_CLEAR = "+351912345678"
CLEAR_NUMBERS = ("351912345678", "912345678", "447700900123", "7700900123", "31612345001")


@pytest.fixture(scope="module")
def scoring() -> Scoring:
    return load_catalogue("kpi_definitions.yaml").scoring


def _line(i: int) -> dict[str, Any]:
    account = ("ENT", "SMB", "CONS", "VIPC")[i % 4]
    return {
        "id": f"L{i:02d}",
        "account_id": account,
        "msisdn": f"+35196000{i:04d}",
        "plan": "Biz" if account in ("ENT", "SMB") else "Smart",
        "arpu": float(10 + (i * 7) % 23),  # repeats, so values tie and ids break the ties
        "home_cell_id": "c1" if i % 3 == 0 else "c2",
        "status": "active",
    }


LINES = [_line(i) for i in range(30)]
#: Churn risk per line: None (never scored) for every fifth, so risk sorting has unscored lines.
RISK = {f"L{i:02d}": (None if i % 5 == 0 else round((i * 37 % 100) / 200, 3)) for i in range(30)}
RISK |= {"PT1": 0.42, "UK1": 0.05, "NL1": 0.2}
SENTIMENT = {"PT1": -0.6, "UK1": 0.5, "NL1": 0.0, "L01": -0.3, "L02": 0.3}


def seed_base(store: Store, now: datetime = NOW) -> None:
    ing = Ingestor(store, clock=fixed_clock(now))
    subs = [
        {"id": "PT1", "account_id": "JOANA", "msisdn": "+351 912 345 678", "arpu": 30.0, "plan": "Smart",
         "home_cell_id": "c1", "status": "active"},
        {"id": "UK1", "account_id": "ENT", "msisdn": "00447700900123", "arpu": 40.0, "plan": "Biz",
         "home_cell_id": "c2", "status": "active"},
        {"id": "NL1", "account_id": "SMB", "msisdn": "31612345001", "arpu": 20.0, "plan": "Biz",
         "home_cell_id": "c2", "status": "suspended"},
        {"id": "Q1", "account_id": "QUOTE", "msisdn": "+351930000001", "arpu": 5.0, "home_cell_id": "c2"},
        {"id": "P1", "account_id": "PCT", "msisdn": "+351930000002", "arpu": 5.0, "home_cell_id": "c2"},
        {"id": "U1", "account_id": "UND", "msisdn": "+351930000003", "arpu": 5.0, "home_cell_id": "c2"},
        {"id": "U2", "account_id": "UNDX", "msisdn": "+351930000004", "arpu": 5.0, "home_cell_id": "c2"},
        {"id": "H1", "account_id": "HTML", "msisdn": "+351930000005", "arpu": 5.0, "home_cell_id": "c2"},
        *LINES,
    ]  # fmt: skip
    named = [
        ("ENT", "Harbour Logistics SA", "enterprise", False),
        ("SMB", "Silva & Filhos Lda", "smb", False),
        ("JOANA", "Joana  Silva", "consumer", True),
        ("CONS", "Consumers", "consumer", False),
        ("VIPC", "R. Mendes", "consumer", True),
        ("QUOTE", 'O\'Brien "Pub" \\ Bar', "smb", False),
        ("PCT", "50% Off Store", "smb", False),
        ("UND", "Acme_1 Ltd", "smb", False),
        ("UNDX", "AcmeX1 Ltd", "smb", False),
        ("HTML", "<script>alert(1)</script> Ltd", "enterprise", False),
    ]
    ing.ingest(
        "crm",
        [
            *two_region_network(),
            Batch(
                kind="accounts",
                records=[{"id": i, "name": n, "segment": seg, "vip": vip} for i, n, seg, vip in named],
            ),
            Batch(kind="subscribers", records=subs),
            Batch(
                kind="subscriber_cells",
                records=[
                    {"subscriber_id": s["id"], "cell_id": s["home_cell_id"], "share": 1.0} for s in subs
                ],
            ),
            Batch(
                kind="incidents",
                records=[
                    {
                        "id": iid,
                        "title": title,
                        "severity": "critical",
                        "state": state,
                        "opened_at": now - timedelta(hours=1),
                        "changed_at": now,
                    }
                    for iid, title, state in [
                        ("I-OPEN", "c1 down", "open"),
                        ("I-DONE", "c2 down", "resolved"),
                    ]
                ],
            ),
        ],
    )
    signals = pd.DataFrame(
        {
            "subscriber_id": list(RISK),
            "source": "vantage",
            "churn_risk": [RISK[k] for k in RISK],
            "sentiment_30d": [SENTIMENT.get(k) for k in RISK],
            "tickets_30d": 0,
            "negative_tickets_30d": 0,
            "scored_at": now,
        }
    )
    with store.begin() as conn:
        upsert(conn, subscriber_signals, signals, now=now)
        upsert(
            conn,
            incident_cells,
            pd.DataFrame(
                {
                    "incident_id": ["I-OPEN", "I-DONE"],
                    "cell_id": ["c1", "c2"],
                    "degraded_share": [1.0, 1.0],
                    "basis": "assumed",
                }
            ),
            now=now,
        )


@pytest.fixture
def base(store: Store) -> Store:
    seed_base(store)
    return store


def find(
    store: Store, text: str | None, scoring: Scoring, principal: Principal = ANALYST, **filters: Any
) -> list[str]:
    """Ids of what ``principal`` finds: an analyst by default, who may match personal fields by part
    of their value (tests/test_personal_data.py holds what a viewer finds)."""
    with store.connect() as conn:
        rows, _, _ = search_page(
            conn, text, Filters(**filters), principal=principal, scoring=scoring, limit=1000
        )
    return [r["id"] for r in rows]


# --- the search keys ---------------------------------------------------------------------------


def test_keys_are_derived_on_ingest_without_enrichers(store: Store) -> None:
    ing = Ingestor(store, clock=fixed_clock(NOW))  # no enrichers at all
    ing.ingest(
        "crm",
        [
            Batch(kind="accounts", records=[{"id": "A", "name": "  Gonçalo   PIRES ", "segment": "smb"}]),
            Batch(
                kind="subscribers",
                records=[
                    {"id": "S", "msisdn": "+351 912-345.678", "status": "active"},
                    {"id": "T", "msisdn": None, "status": "active"},
                    {"id": "U", "msisdn": "(00 44) 7700 900123", "status": "active"},
                ],
            ),
        ],
    )
    ing.ingest("crm", [Batch(kind="subscribers", records=[{"id": "S", "msisdn": "+351 961 000 000"}])])
    with store.connect() as conn:
        keys = {r.id: (r.msisdn_digits, r.msisdn_rev) for r in conn.execute(select(subscribers))}
        name = conn.execute(select(accounts.c.name_key)).scalar_one()
    assert keys == {
        "S": ("351961000000", "000000169153"),  # re-derived when the number changed
        "T": (None, None),
        "U": ("447700900123", "321009007744"),
    }
    assert name == "goncalo pires" == name_key("Gonçalo Pires")


def test_key_derivation_is_vectorised_and_leaves_other_kinds_alone() -> None:
    digits, rev = msisdn_keys(pd.Series(["+31 6-1234", "", None, "n/a", "0044 20"], dtype=object))
    assert digits.tolist() == ["3161234", None, None, None, "4420"]
    assert rev.tolist() == ["4321613", None, None, None, "0244"]
    alarms = pd.DataFrame({"id": ["a"]})
    assert derive_keys("alarms", alarms) is alarms


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_at_0003(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    """A store migrated only up to the revision before the search keys."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'old.db'}")
        store.upgrade("0003")
        yield store
        store.dispose()
        return
    require_pg()
    schema = f"vt_{uuid.uuid4().hex[:12]}"
    store = Store(PG_URL, schema=schema)
    store.upgrade("0003")
    try:
        yield store
    finally:
        store.dispose()
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_migration_backfills_the_keys_of_stored_rows(store_at_0003: Store) -> None:
    with store_at_0003.begin() as conn:
        conn.execute(
            sql(
                "INSERT INTO accounts (id, source, name, segment, vip) VALUES "
                "('A1', 'crm', 'Ana  Sá', 'consumer', false), ('A2', 'crm', 'Big Co', 'smb', false)"
            )
        )
        conn.execute(
            sql(
                "INSERT INTO subscribers (id, source, msisdn, status) VALUES "
                "('S1', 'crm', '+351 912 345 678', 'active'), ('S2', 'crm', NULL, 'active')"
            )
        )
    store_at_0003.upgrade()
    with store_at_0003.connect() as conn:
        subs = {r.id: (r.msisdn_digits, r.msisdn_rev) for r in conn.execute(select(subscribers))}
        names = dict(conn.execute(select(accounts.c.id, accounts.c.name_key)).all())
    assert subs == {"S1": ("351912345678", "876543219153"), "S2": (None, None)}
    assert names == {"A1": "ana sa", "A2": "big co"}


# --- parsing -----------------------------------------------------------------------------------


def test_parse_query_classifies_what_was_typed() -> None:
    intl = parse_query("  +351 (912) 345-678 ")
    assert (intl.msisdn_prefix, intl.msisdn_suffixes) == ("351912345678", ())  # a + says: country first
    assert parse_query("00351912345678").msisdn_prefix == "351912345678"
    national = parse_query("912.345.678")
    assert (national.msisdn_prefix, national.msisdn_suffixes) == ("912345678", ("876543219",))
    trunk = parse_query("07700 900123")
    assert trunk.msisdn_suffixes == ("32100900770", "3210090077")  # with and without the trunk 0
    assert parse_query("123").msisdn_prefix is None  # too few digits for a number
    name = parse_query("Joana  SILVA")
    assert (name.msisdn_prefix, name.name, name.ids) == (
        None,
        "joana silva",
        ("Joana SILVA", "joana silva", "JOANA SILVA"),
    )
    assert parse_query("   ").empty and parse_query(None).empty
    assert len(parse_query("x" * 500).text) == search.MAX_QUERY_LENGTH


def test_filters_from_the_query_string() -> None:
    f = filters_from(
        {"segment": "VIP", "risk": "high", "affected": "true", "region": " North ", "plan": "any"}
    )
    assert f == Filters(segment="vip", risk="high", affected=True, region="North")
    assert f.to_query() == {"segment": "vip", "region": "North", "risk": "high", "affected": "1"}
    assert filters_from({"segment": "gold", "affected": "maybe"}) == Filters()  # a bad deep link: ignored
    with pytest.raises(SearchError, match="segment: expected one of consumer, smb, enterprise, vip"):
        filters_from({"segment": "gold"}, strict=True)
    with pytest.raises(SearchError, match="affected"):
        filters_from({"affected": "maybe"}, strict=True)
    with pytest.raises(SearchError, match="sentiment"):
        filters_from({"sentiment": "angry"}, strict=True)


# --- every form finds the subscriber (for a role that may unmask) --------------------------------


PT1_FORMS = [
    "+351 912 345 678",
    "+351912345678",
    "+351-912-345-678",
    "(+351) 912.345.678",
    "00351912345678",
    "00 351 912 345 678",
    "351912345678",
    "912345678",
    "912 345 678",
    "912-345-678",
    "5678",
    "345 678",
    "PT1",
    "pt1",
    "JOANA",
    "joa",
    "joana s",
    "JOANA  SIL",
    "joana silva",
]


@pytest.mark.parametrize("form", PT1_FORMS)
def test_every_search_form_finds_the_subscriber(base: Store, scoring: Scoring, form: str) -> None:
    assert "PT1" in find(base, form, scoring)


def test_numbers_stored_in_other_formats_are_found(base: Store, scoring: Scoring) -> None:
    assert find(base, "+44 7700 900123", scoring) == ["UK1"]  # stored as 00447700900123
    assert find(base, "07700 900123", scoring) == ["UK1"]  # national, with the trunk 0
    assert find(base, "+31 6 1234 5001", scoring) == ["NL1"]  # stored without a +
    assert find(base, "612345001", scoring) == ["NL1"]


def test_partial_matches_find_every_match(base: Store, scoring: Scoring) -> None:
    lines = [f"L{i:02d}" for i in range(30)]
    assert sorted(find(base, "+351 96000", scoring)) == lines  # a number prefix
    assert sorted(find(base, "L0", scoring)) == [f"L0{i}" for i in range(10)]  # an id prefix
    assert set(find(base, "harbour", scoring)) == {"UK1"} | {x for x in lines if int(x[1:]) % 4 == 0}
    assert set(find(base, "ENT", scoring)) == set(find(base, "harbour", scoring))  # an account id
    # Names match from their start (a word inside a name would need every account read: too slow).
    assert set(find(base, "silva", scoring)) == {"NL1"} | {x for x in lines if int(x[1:]) % 4 == 1}


# --- hostile text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("' OR 1=1 --", []),
        ("'; DROP TABLE subscribers; --", []),
        ("%", []),
        ("_", []),
        ("%%%", []),
        ('"', []),
        ("\\", []),
        ("<script>", ["H1"]),  # literally the start of that account's name
        ("<script>alert(1)</script>", ["H1"]),
        ("o'brien", ["Q1"]),
        ('o\'brien "pub" \\', ["Q1"]),
        ("50%", ["P1"]),
        ("acme_", ["U1"]),  # not AcmeX1: the _ is a character, not a wildcard
        ("acme", ["U1", "U2"]),
    ],
)
def test_hostile_text_is_matched_literally(
    base: Store, scoring: Scoring, text: str, expected: list[str]
) -> None:
    assert sorted(find(base, text, scoring)) == expected
    with base.connect() as conn:
        assert conn.execute(select(subscribers.c.id)).all()  # the table is still there


# --- paging ------------------------------------------------------------------------------------


def _expected_order(rows: list[dict[str, Any]], sort: str) -> list[str]:
    if sort == "value":
        return [r["id"] for r in sorted(rows, key=lambda r: (-r["value"], r["id"]))]
    scored = sorted(
        (r for r in rows if r["churn_risk"] is not None), key=lambda r: (-r["churn_risk"], r["id"])
    )
    return [r["id"] for r in scored] + sorted(r["id"] for r in rows if r["churn_risk"] is None)


@pytest.mark.parametrize("sort", ["value", "risk"])
def test_cursors_return_every_row_once_in_order(base: Store, scoring: Scoring, sort: str) -> None:
    with base.connect() as conn:
        everything, _, total = search_page(
            conn, "", Filters(), principal=VIEWER, scoring=scoring, sort=sort, limit=1000
        )
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            rows, cursor, page_total = search_page(
                conn, "", Filters(), principal=VIEWER, scoring=scoring, sort=sort, limit=7, cursor=cursor
            )
            if pages == 0:
                assert page_total == total == len(everything) == 38
            else:
                assert page_total is None  # counted on the first page only
            seen += [r["id"] for r in rows]
            pages += 1
            if cursor is None:
                break
        by_offset = [
            r["id"]
            for start in range(0, 38, 9)
            for r in search_page(
                conn, "", Filters(), principal=VIEWER, scoring=scoring, sort=sort, limit=9, offset=start
            )[0]
        ]
    assert pages == 6
    assert seen == by_offset == _expected_order(everything, sort)
    assert len(set(seen)) == 38


def test_most_valuable_first_by_the_scoring_rules(base: Store, scoring: Scoring) -> None:
    with base.connect() as conn:
        rows, _, _ = search_page(conn, "", Filters(), principal=VIEWER, scoring=scoring, limit=5)
    # L03: 31 x VIP 2 = 62; PT1: 30 x VIP 2 = 60 ties UK1: 40 x enterprise 1.5 = 60 (by id);
    # L19: 28 x VIP 2 = 56; L15: 23 x VIP 2 = 46.
    assert [(r["id"], r["value"]) for r in rows] == [
        ("L03", 62.0),
        ("PT1", 60.0),
        ("UK1", 60.0),
        ("L19", 56.0),
        ("L15", 46.0),
    ]


def test_a_cursor_from_another_search_is_refused(base: Store, scoring: Scoring) -> None:
    with base.connect() as conn:
        _, cursor, _ = search_page(conn, "", Filters(), principal=VIEWER, scoring=scoring, limit=5)
        assert cursor is not None
        with pytest.raises(SearchError, match="another search"):
            search_page(conn, "L", Filters(), principal=VIEWER, scoring=scoring, limit=5, cursor=cursor)
        with pytest.raises(SearchError, match="another search"):
            search_page(conn, "", Filters(), principal=VIEWER, scoring=scoring, sort="risk", cursor=cursor)
        for bad in ("nonsense", "e30", "W10", "!!!"):
            with pytest.raises(SearchError, match="cursor"):
                search_page(conn, "", Filters(), principal=VIEWER, scoring=scoring, cursor=bad)
        with pytest.raises(SearchError, match="sort"):
            search_page(conn, "", Filters(), principal=VIEWER, scoring=scoring, sort="name")
        with pytest.raises(SearchError, match="limit"):
            search_page(conn, "", Filters(), principal=VIEWER, scoring=scoring, limit=0)


# --- filters -----------------------------------------------------------------------------------


def test_filters(base: Store, scoring: Scoring) -> None:
    lines = {f"L{i:02d}": i for i in range(30)}
    ent = {"UK1"} | {k for k, i in lines.items() if i % 4 == 0}
    assert set(find(base, "", scoring, segment="enterprise")) == ent | {"H1"}
    assert set(find(base, "", scoring, segment="vip")) == {"PT1"} | {
        k for k, i in lines.items() if i % 4 == 3
    }
    assert set(find(base, "", scoring, account="ENT")) == ent
    north = {"PT1"} | {k for k, i in lines.items() if i % 3 == 0}
    assert set(find(base, "", scoring, region="N")) == north
    assert set(find(base, "", scoring, region="North")) == north  # by name too
    assert set(find(base, "", scoring, affected=True)) == north  # the open incident's cell c1
    assert set(find(base, "", scoring, plan="Biz")) == {"UK1", "NL1"} | {
        k for k, i in lines.items() if i % 4 in (0, 1)
    }
    risk = {k: v for k, v in RISK.items() if v is not None}
    assert set(find(base, "", scoring, risk="high")) == {k for k, v in risk.items() if v >= 0.3}
    assert set(find(base, "", scoring, risk="medium")) == {k for k, v in risk.items() if 0.1 <= v < 0.3}
    assert set(find(base, "", scoring, risk="low")) == {k for k, v in risk.items() if v < 0.1}
    assert set(find(base, "", scoring, sentiment="negative")) == {"PT1", "L01"}
    assert set(find(base, "", scoring, sentiment="neutral")) == {"NL1"}
    assert set(find(base, "", scoring, sentiment="positive")) == {"UK1", "L02"}
    assert find(base, "joana", scoring, segment="enterprise") == []  # search and filters together
    assert find(base, "", scoring, region="Nowhere") == []


def test_rows_carry_what_the_list_shows(base: Store, scoring: Scoring) -> None:
    with base.connect() as conn:
        rows, _, total = search_page(conn, "PT1", Filters(), principal=ANALYST, scoring=scoring)
    assert total == 1
    (row,) = rows
    assert row == {
        "id": "PT1",
        "msisdn": "+351 9*** ***678",  # masked for every role in lists; unmasking is per subscriber
        "status": "active",
        "account_id": "JOANA",
        "account_name": "J*** S***",  # a consumer account is named after its holder
        "segment": "consumer",
        "vip": True,
        "plan": "Smart",
        "arpu": 30.0,
        "value": 60.0,
        "region_id": "N",
        "region": "North",
        "churn_risk": 0.42,
        "sentiment": -0.6,
        "open_incidents": 1,  # I-OPEN on c1; I-DONE is resolved
    }


# --- export ------------------------------------------------------------------------------------


def test_export_is_the_whole_filtered_list_masked(base: Store, scoring: Scoring, monkeypatch: Any) -> None:
    monkeypatch.setattr(search, "EXPORT_CHUNK", 4)  # several chunks
    with base.connect() as conn:
        csv_text = search.export_csv(conn, "", Filters(region="N"), VIEWER, scoring)
        firsts = search.export_csv(conn, "", Filters(), VIEWER, scoring, sort="risk", max_rows=5)
        listed, _, _ = search_page(
            conn, "", Filters(region="N"), principal=VIEWER, scoring=scoring, limit=100
        )
    df = pd.read_csv(io.StringIO(csv_text), dtype=str, keep_default_na=False)
    assert list(df.columns) == list(search.ROW_FIELDS)
    assert df["id"].tolist() == [r["id"] for r in listed]
    assert not any(n in csv_text for n in CLEAR_NUMBERS)
    assert df.loc[df["id"] == "PT1", "msisdn"].item() == "+351 9*** ***678"
    assert len(firsts.strip().splitlines()) == 6  # the header and five rows


def test_export_quotes_what_a_spreadsheet_would_run(sqlite_store: Store, scoring: Scoring) -> None:
    Ingestor(sqlite_store).ingest(
        "crm",
        [
            Batch(kind="accounts", records=[{"id": "X", "name": '=HYPERLINK("x")', "segment": "smb"}]),
            Batch(kind="subscribers", records=[{"id": "S", "account_id": "X", "status": "active"}]),
        ],
    )
    with sqlite_store.connect() as conn:
        out = search.export_csv(conn, "", Filters(), VIEWER, scoring)
    assert "'=HYPERLINK" in out and ",=HYPERLINK" not in out


# --- the page ----------------------------------------------------------------------------------


@pytest.fixture
def page(sqlite_store: Store) -> Iterator[ModuleType]:
    """The page module in an app context on the hand-made base (SQLite)."""
    seed_base(sqlite_store)
    app = new_app(sqlite_store, settings_for(sqlite_store))
    with app.server.app_context():
        yield importlib.import_module("dashboard.pages.subscribers")


def _find(component: Any, predicate: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(component, list | tuple):
        for c in component:
            found += _find(c, predicate)
        return found
    if component is None or isinstance(component, str | int | float):
        return found
    if predicate(component):
        found.append(component)
    return found + _find(getattr(component, "children", None), predicate)


def _by_id(component: Any, id_: str) -> Any:
    (found,) = _find(component, lambda c: getattr(c, "id", None) == id_)
    return found


def test_the_deep_link_reopens_the_search(page: ModuleType) -> None:
    layout = page.layout(q="silva", segment="smb", region="North", risk="high", affected="1", sort="risk")
    assert _by_id(layout, "subscribers-query").value == "silva"
    assert _by_id(layout, "subscribers-segment").value == "smb"
    assert _by_id(layout, "subscribers-region").value == "N"  # a name in the URL, the id in the select
    assert _by_id(layout, "subscribers-risk").value == "high"
    assert _by_id(layout, "subscribers-affected").value == ["1"]
    assert _by_id(layout, "subscribers-sort").value == "risk"
    (grid,) = _find(layout, lambda c: isinstance(getattr(c, "id", None), dict))[1:2]
    text, filters, sort = page.search_from_token(grid.id["search"])
    assert (text, filters, sort) == (
        "silva",
        Filters(segment="smb", region="North", risk="high", affected=True),
        "risk",
    )
    assert page.query_string(text, filters, sort) == (
        "?q=silva&segment=smb&region=North&risk=high&affected=1&sort=risk"
    )
    assert _by_id(page.layout(id="PT1"), "subscribers-query").value == "PT1"  # the older ?id= links
    bad = page.layout(segment="gold", sort="name", affected="perhaps")  # a hand-edited link
    assert _by_id(bad, "subscribers-segment").value == "any"
    assert _by_id(bad, "subscribers-sort").value == "value"


def test_the_controls_give_the_url_and_a_fresh_grid(page: ModuleType) -> None:
    text, filters, sort = page.control_search(
        " 912 345 ", "any", "S", "any", "low", "any", ["1"], "", "value"
    )
    assert (text, filters, sort) == ("912 345", Filters(region="S", risk="low", affected=True), "value")
    assert page.query_string(text, filters, sort) == "?q=912+345&region=S&risk=low&affected=1"
    one = page.list_box(text, filters, sort, "EUR")[1].id
    other = page.list_box(text, Filters(region="S"), sort, "EUR")[1].id
    assert one["type"] == "subscribers-grid" and one != other  # a new search, a new row model


def test_grid_blocks_page_through_the_list_with_cursors(
    page: ModuleType, sqlite_store: Store, scoring: Scoring
) -> None:
    token = page.search_token("", Filters(), "value")
    cache = page.CursorCache()
    first, count = page.grid_block(sqlite_store, token, {"startRow": 0, "endRow": 10}, VIEWER, scoring, cache)
    second, more = page.grid_block(
        sqlite_store, token, {"startRow": 10, "endRow": 20}, VIEWER, scoring, cache
    )
    assert first["rowCount"] == 38 and count == "38 subscribers; most valuable first."
    assert more is dash.no_update and cache.get(token, 10) is not None and cache.get(token, 20) is not None
    cold, _ = page.grid_block(
        sqlite_store, token, {"startRow": 10, "endRow": 20}, VIEWER, scoring, page.CursorCache()
    )
    assert [r["id"] for r in second["rowData"]] == [r["id"] for r in cold["rowData"]]  # offset fallback
    row = first["rowData"][0]
    assert (
        row["link"] == "[L03](/subscribers/L03)"
        and row["account_link"]
        == "[R\\*\\*\\* M\\*\\*\\*](/subscribers?account=VIPC)"  # a holder's name, masked
    )
    found, _ = block(page, sqlite_store, scoring, "<script>", VIEWER)
    assert found["rowData"][0]["account_name"] == "<script>alert(1)</script> Ltd"  # data, shown as text
    assert found["rowData"][0]["account_link"] == (
        "[\\<script\\>alert\\(1\\)\\</script\\> Ltd](/subscribers?account=HTML)"
    )
    none, note = block(page, sqlite_store, scoring, "nobody", VIEWER)
    assert none == {"rowData": [], "rowCount": 0} and note == "No subscriber matches 'nobody'."


def block(page: ModuleType, store: Store, scoring: Scoring, typed: str, principal: Principal) -> Any:
    """The first block the grid of a search for ``typed`` gets, and its count line."""
    token = page.search_token(typed, Filters(), "value")
    return page.grid_block(
        store, token, {"startRow": 0, "endRow": 100}, principal, scoring, page.CursorCache()
    )


def test_markdown_links_show_ids_literally(page: ModuleType) -> None:
    (row,) = page.grid_rows([{"id": "a](javascript:x)*", "account_id": None, "vip": None}])
    assert row["link"] == "[a\\]\\(javascript:x\\)\\*](/subscribers/a%5D%28javascript%3Ax%29%2A)"
    assert row["account_link"] is None


def test_no_clear_msisdn_reaches_the_browser(page: ModuleType, sqlite_store: Store, scoring: Scoring) -> None:
    """What the grid callback sends, for a viewer and for an analyst, searching by the number itself
    (a viewer only whole, with its country code: a national number is the end of one)."""
    for principal, forms in (
        (VIEWER, ("+351 912 345 678", "", "447700900123")),
        (ANALYST, ("+351 912 345 678", "912345678", "", "447700900123")),
    ):
        for typed in forms:
            response, count = block(page, sqlite_store, scoring, typed, principal)
            sent = json.dumps([response, count])
            assert response["rowData"], typed
            assert not any(n in sent for n in CLEAR_NUMBERS), (principal, typed)
    csv_file, note = page.export_download(sqlite_store, "", Filters(), "value", VIEWER, scoring)
    assert not any(n in csv_file["content"] for n in CLEAR_NUMBERS)
    assert note == "Exported 38 subscribers (masked)."


def test_the_page_export_stops_at_its_limit(
    page: ModuleType, sqlite_store: Store, scoring: Scoring, monkeypatch: Any
) -> None:
    monkeypatch.setattr(page, "EXPORT_MAX_ROWS", 5)
    csv_file, note = page.export_download(sqlite_store, "", Filters(region="N"), "value", VIEWER, scoring)
    assert len(csv_file["content"].splitlines()) == 6
    assert note.startswith("Exported the first 5 subscribers") and "/api/v1/subscribers.csv?region=N" in note


# --- the API -----------------------------------------------------------------------------------


@pytest.fixture
def client(base: Store) -> Any:
    settings = settings_for(base)
    return client_of(new_app(base, settings), base)


def test_api_searches_pages_and_masks(client: Any) -> None:
    response = client.get("/api/v1/subscribers?q=%2B351%20912%20345%20678")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["count"], body["total"], body["next_cursor"]) == (1, 1, None)
    assert body["subscribers"][0]["msisdn"] == "+351 9*** ***678"
    assert not any(n in response.get_data(as_text=True) for n in CLEAR_NUMBERS)
    seen: list[str] = []
    url = "/api/v1/subscribers?limit=15&sort=risk&region=S"
    while url:
        page_body = client.get(url).get_json()
        seen += [r["id"] for r in page_body["subscribers"]]
        cursor = page_body["next_cursor"]
        url = f"/api/v1/subscribers?limit=15&sort=risk&region=S&cursor={cursor}" if cursor else ""
    assert len(seen) == len(set(seen)) == 38 - 11  # every line but North's PT1 and ten L lines
    # VIP lines on c1, which the open incident degrades: PT1 and VIPC's L03, L15, L27.
    assert client.get("/api/v1/subscribers?segment=vip&affected=true").get_json()["total"] == 4


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit: expected an integer from 1 to 1000, got 0"),
        ("limit=lots", "limit: expected an integer from 1 to 1000, got 'lots'"),
        ("segment=gold", "segment: expected one of consumer, smb, enterprise, vip, got 'gold'"),
        ("risk=extreme", "risk: expected one of low, medium, high"),
        ("sentiment=angry", "sentiment: expected one of negative, neutral, positive"),
        ("affected=perhaps", "affected: expected true or false"),
        ("sort=name", "sort: expected one of value, risk"),
        ("cursor=nonsense", "cursor: not a cursor returned by this API"),
    ],
)
def test_api_says_what_was_wrong(client: Any, query: str, message: str) -> None:
    response = client.get(f"/api/v1/subscribers?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(message)


def test_api_treats_hostile_text_as_text(client: Any) -> None:
    for text in ("' OR 1=1 --", "%", "_", "\\", "<script>alert(1)</script>", '"'):
        response = client.get("/api/v1/subscribers", query_string={"q": text})
        assert response.status_code == 200, text
        assert all(r["id"] == "H1" for r in response.get_json()["subscribers"]), text


def test_api_csv_streams_the_whole_list_masked(client: Any) -> None:
    response = client.get("/api/v1/subscribers.csv?region=N&sort=risk")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.splitlines()[0] == ",".join(search.ROW_FIELDS) and len(text.splitlines()) == 12
    assert not any(n in text for n in CLEAR_NUMBERS)
    assert client.get("/api/v1/subscribers.csv?risk=extreme").status_code == 400


# --- connectors: the address the search list never shows ----------------------------------------


POSTAL_ADDRESS = {
    OWN: "Rua do Heroismo 118, Loja B, 4300-259 Porto, Portugal",
    REFERENCE: "15 Rue des Canards, 75014 Paris, France",
}


@pytest.mark.parametrize("origin", ORIGINS)
def test_tmf629_postal_address_becomes_the_contact_address(origin: str) -> None:
    from connectors.tmf.customer import _postal_address

    customer = payloads("tmf", origin).json("customer")
    medium = next(m for m in customer["contactMedium"] if "city" in m["characteristic"])
    assert _postal_address(medium["characteristic"]) == POSTAL_ADDRESS[origin]
    assert _postal_address({"city": " Porto ", "street1": "Rua Augusta 1"}) == "Rua Augusta 1, Porto"
    assert _postal_address({"contactType": "home"}) is None


def test_filter_options_are_read_once_in_a_while(page: ModuleType, sqlite_store: Store) -> None:
    first = page.current_facets(sqlite_store, now=1000.0)
    assert first == {"regions": [("N", "North"), ("S", "South")], "plans": ["Biz", "Smart"]}
    Ingestor(sqlite_store).ingest("crm", [Batch(kind="subscribers", records=[{"id": "X", "plan": "Gold"}])])
    assert page.current_facets(sqlite_store, now=1000.0 + page.FACETS_TTL_S - 1) == first
    assert "Gold" in page.current_facets(sqlite_store, now=1000.0 + page.FACETS_TTL_S)["plans"]
