"""Who is asking, what they may see, and the masks personal data wears until they may see it.

This module is the one place that decides. A request's :class:`Principal` comes from the settings
(``security.default_user`` / ``default_role``) or, when ``security.trust_headers`` is on because a
trusted proxy in front sets them, from the ``X-Vantage-User`` / ``X-Vantage-Role`` headers
(:func:`principal_from`; the web layer asks ``dashboard.context.current_principal``). Every
page callback and API response that carries personal data passes it through :func:`protect`,
which masks it server-side, so nothing unmasked reaches a browser that may not see it. A role that
may see personal data still sees it masked until it asks for one subscriber with :func:`unmask`,
which writes an audit record (who, when, which subscriber, which fields) in the same transaction
that reads the clear values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import insert, select

from dashboard.errors import VantageError
from dashboard.store.db import Store
from dashboard.store.schema import accounts, audit, subscribers

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
#: Roles that may unmask one subscriber's personal data (each time audited).
UNMASKING_ROLES: frozenset[str] = frozenset({"analyst", "admin"})

#: Personal fields as they appear in records the pages and API return, and how each is masked.
PERSONAL_FIELDS: dict[str, str] = {
    "msisdn": "msisdn",
    "contact_name": "name",
    "contact_email": "email",
    "contact_phone": "msisdn",
    "contact_address": "address",
}


#: A record with personal fields: :func:`protect` returns the same kind of record it was given.
R = TypeVar("R", bound=Mapping[str, Any])

#: Account segments whose name is a company's. A consumer account is named after its holder, so
#: its name is personal data too.
BUSINESS_SEGMENTS = ("smb", "enterprise")


class PermissionDenied(VantageError):
    """The principal's role does not allow what it asked for."""


@dataclass(frozen=True)
class Principal:
    user: str
    role: Role

    @property
    def may_unmask(self) -> bool:
        return self.role in UNMASKING_ROLES


def principal_from(security: Any, headers: Mapping[str, str] | None = None) -> Principal:
    """The principal of a request: trusted headers when the settings say so, else the defaults."""
    user, role = security.default_user, security.default_role
    if security.trust_headers and headers is not None:
        lower = {k.lower(): v for k, v in headers.items()}
        named = " ".join((lower.get(security.user_header.lower()) or "").split())
        user = named[:128] or security.default_user
        asked = (lower.get(security.role_header.lower()) or "").strip().lower()
        if asked in ROLES:
            role = asked
    return Principal(user=user, role=role)


# --- masks -------------------------------------------------------------------------------------

# E.164 country codes of one and two digits; every other code has three.
_CC1 = {"1", "7"}
_CC2 = {
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
}  # fmt: skip


def _country_code(digits: str) -> str:
    if digits[:1] in _CC1:
        return digits[:1]
    if digits[:2] in _CC2:
        return digits[:2]
    return digits[:3]


def mask_msisdn(value: str | None) -> str | None:
    """``+447700900123`` -> ``+44 7*** ***123``: the country, the first national digit, the last three."""
    if not value:
        return value
    digits = re.sub(r"\D", "", value)
    if len(digits) < 7:
        return "***"
    international = value.strip().startswith(("+", "00"))
    if value.strip().startswith("00"):
        digits = digits[2:]
    if international:
        cc = _country_code(digits)
        national = digits[len(cc) :]
        return f"+{cc} {national[:1]}*** ***{digits[-3:]}"
    return f"{digits[:1]}*** ***{digits[-3:]}"


def mask_name(value: str | None) -> str | None:
    """``Joana Silva`` -> ``J*** S***``."""
    if not value:
        return value
    return " ".join(f"{w[0]}***" for w in value.split() if w) or "***"


def mask_email(value: str | None) -> str | None:
    """``joana.silva@example.pt`` -> ``j***@example.pt``: the domain says who the provider is, not who."""
    if not value:
        return value
    local, at, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if at else "***"


def mask_address(value: str | None) -> str | None:
    """Addresses are hidden whole."""
    return "***" if value else value


_MASKS = {"msisdn": mask_msisdn, "name": mask_name, "email": mask_email, "address": mask_address}


def account_name(name: str | None, segment: str | None) -> str | None:
    """An account's name as it may be shown: a company's as is, a consumer's masked like a name."""
    return name if name is None or segment in BUSINESS_SEGMENTS else mask_name(name)


def mask_value(kind: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return _MASKS[kind](str(value))


def protect(record: R, principal: Principal, *, unmasked: bool = False) -> R:
    """A copy of ``record`` (a plain dict) with its personal fields masked, unless ``unmasked`` was
    granted by :func:`unmask` for this principal (it is refused for roles that may not unmask)."""
    out = dict(record)
    if unmasked and principal.may_unmask:
        return cast(R, out)
    for name, kind in PERSONAL_FIELDS.items():
        if name in out:
            out[name] = mask_value(kind, out[name])
    # The same keys, masked values still str or None: the copy is an R (records are plain dicts or
    # TypedDicts, both plain dicts at run time).
    return cast(R, out)


def unmask(store: Store, principal: Principal, subscriber_id: str, *, now: datetime) -> dict[str, Any]:
    """The subscriber's personal fields in clear, audited; PermissionDenied for roles that may not."""
    if not principal.may_unmask:
        raise PermissionDenied(f"role {principal.role!r} may not see personal data")
    with store.begin() as conn:
        row = conn.execute(
            select(
                subscribers.c.id,
                subscribers.c.msisdn,
                accounts.c.contact_name,
                accounts.c.contact_email,
                accounts.c.contact_phone,
                accounts.c.contact_address,
            )
            .select_from(subscribers.outerjoin(accounts, accounts.c.id == subscribers.c.account_id))
            .where(subscribers.c.id == subscriber_id)
            .limit(1)
        ).first()
        if row is None:
            raise KeyError(f"no subscriber {subscriber_id!r}")
        clear = {k: v for k, v in row._mapping.items() if k != "id"}
        conn.execute(
            insert(audit).values(
                at=now,
                actor=principal.user,
                action="subscriber.unmask",
                target_type="subscriber",
                target_id=subscriber_id,
                detail={
                    "role": principal.role,
                    "fields": sorted(k for k, v in clear.items() if v is not None),
                },
            )
        )
    return clear
