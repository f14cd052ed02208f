"""Personal data: the one place that decides who may see it, the masks, and audited unmasking."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from connectors.base import Batch
from dashboard.ingest import Ingestor
from dashboard.privacy import (
    PERMISSIONS,
    ROLES,
    PermissionDenied,
    Principal,
    mask_email,
    mask_msisdn,
    mask_name,
    protect,
    unmask,
)
from dashboard.store.db import Store
from dashboard.store.schema import audit

NOW = datetime(2026, 3, 2, 12, 0)


@pytest.mark.parametrize(
    ("given", "masked"),
    [
        ("+447700900123", "+44 7*** ***123"),
        ("+44 7700 900123", "+44 7*** ***123"),
        ("00351912345678", "+351 9*** ***678"),
        ("+15551234567", "+1 5*** ***567"),
        ("912345678", "9*** ***678"),
        ("123", "***"),
        (None, None),
    ],
)
def test_msisdn_mask_keeps_country_first_digit_and_last_three(given: str | None, masked: str | None) -> None:
    assert mask_msisdn(given) == masked


def test_name_and_email_masks() -> None:
    assert mask_name("Joana  Silva") == "J*** S***"
    assert mask_email("joana.silva@example.pt") == "j***@example.pt"
    assert mask_email("not an address") == "***"


def test_the_roles_table_says_what_each_role_may_do() -> None:
    may = {role: {p for p in PERMISSIONS if Principal("u", role).may(p)} for role in ROLES}
    assert may == {
        "viewer": {"read"},
        "operator": {"read", "act"},
        "analyst": {"read", "unmask"},
        "admin": {"read", "act", "unmask", "admin"},
    }
    assert Principal("a", "analyst").may_unmask and not Principal("o", "operator").may_unmask
    assert Principal("o", "operator").may_act and not Principal("v", "viewer").may_act


def test_protect_masks_for_every_role_unless_unmasking_was_granted() -> None:
    record = {"id": "S1", "msisdn": "+447700900123", "contact_name": "Ann Lee", "plan": "Max"}
    viewer, analyst = Principal("v", "viewer"), Principal("a", "analyst")
    assert protect(record, viewer) == {
        "id": "S1",
        "msisdn": "+44 7*** ***123",
        "contact_name": "A*** L***",
        "plan": "Max",
    }
    assert protect(record, analyst)["msisdn"] == "+44 7*** ***123"
    assert protect(record, viewer, unmasked=True)["msisdn"] == "+44 7*** ***123"
    assert protect(record, analyst, unmasked=True) == record


def test_unmasking_is_refused_or_audited(sqlite_store: Store) -> None:
    Ingestor(sqlite_store).ingest(
        "crm",
        [
            Batch(
                kind="accounts",
                records=[
                    {
                        "id": "A1",
                        "name": "Ann Lee",
                        "segment": "consumer",
                        "contact_name": "Ann Lee",
                        "contact_email": "ann@example.com",
                    }
                ],
            ),
            Batch(kind="subscribers", records=[{"id": "S1", "account_id": "A1", "msisdn": "+447700900123"}]),
        ],
    )
    with pytest.raises(PermissionDenied):
        unmask(sqlite_store, Principal("v", "viewer"), "S1", now=NOW)
    clear = unmask(sqlite_store, Principal("ana", "analyst"), "S1", now=NOW)
    assert clear["msisdn"] == "+447700900123" and clear["contact_email"] == "ann@example.com"
    with sqlite_store.connect() as conn:
        rows = conn.execute(select(audit)).fetchall()
    assert len(rows) == 1
    r = rows[0]
    assert (r.actor, r.action, r.target_type, r.target_id, r.at) == (
        "ana",
        "subscriber.unmask",
        "subscriber",
        "S1",
        NOW,
    )
    assert r.detail["fields"] == ["contact_email", "contact_name", "msisdn"]
    with pytest.raises(KeyError):
        unmask(sqlite_store, Principal("ana", "analyst"), "S404", now=NOW)
