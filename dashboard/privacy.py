"""Who is asking, what they may see, and the masks personal data wears until they may see it.

This module is the one place that decides. A request's :class:`Principal` (a user and a role) is
established by the guard (dashboard/guard: a session, an API token or a trusted proxy's headers;
the web layer asks ``dashboard.context.current_principal``); what each role may do is the roles
table :data:`ROLE_PERMISSIONS`. Every
page callback and API response that carries personal data passes it through :func:`protect`,
which masks it server-side, so nothing unmasked reaches a browser that may not see it. A role that
may see personal data still sees it masked until it asks for one subscriber with :func:`unmask`,
which writes an audit record (who, when, which subscriber, which fields) in the same transaction
that reads the clear values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import insert, select

from dashboard.errors import VantageError
from dashboard.store.db import Store
from dashboard.store.schema import accounts, audit, subscribers

Role = Literal["viewer", "operator", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "analyst", "admin")

#: What a surface may ask of its caller (docs/security.md has the table):
#: read - see pages, the API and exports, personal data masked;
#: act - acknowledge, assign, note, run playbook actions;
#: unmask - see one subscriber's personal data in clear, each time audited, and search personal
#: fields by part of their value (audited too);
#: admin - users, tokens, settings and the audit log.
Permission = Literal["read", "act", "unmask", "admin"]
PERMISSIONS: tuple[Permission, ...] = ("read", "act", "unmask", "admin")

#: The roles table: what each role may do. Nothing is inherited implicitly; each row says it all.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "act"}),
    "analyst": frozenset({"read", "unmask"}),
    "admin": frozenset({"read", "act", "unmask", "admin"}),
}
#: Roles that may unmask one subscriber's personal data (each time audited).
UNMASKING_ROLES: frozenset[str] = frozenset(r for r, p in ROLE_PERMISSIONS.items() if "unmask" in p)

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
    """Who is asking: a user (or a service, for API tokens) and its role.

    ``via`` says how the request proved it: ``session`` (logged in), ``token`` (an API bearer
    token), ``proxy`` (an authenticating proxy's headers) or ``local`` (a command run on the host).
    """

    user: str
    role: Role
    via: str = "session"

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def may_unmask(self) -> bool:
        return self.may("unmask")

    @property
    def may_act(self) -> bool:
        return self.may("act")


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


# --- free text ---------------------------------------------------------------------------------

#: ISO dates and times: digit runs that are not phone numbers, matched first so they stay as written.
_DATE_TIME = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_EMAIL_RE = r"(?<![\w.+\-])[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+"
#: A phone-number-like run: digits with spaces, dashes, dots or parentheses between them, an optional
#: ``+`` or ``(`` first, not glued to a word before it (``A1234567`` is an id, not a number).
_PHONE_RE = r"(?<![\w+])(?:\(?\+|\+?\()?\d[\d ().\-]{5,}\d"
_FREE_TEXT = re.compile(f"(?P<email>{_EMAIL_RE})|(?P<date>{_DATE_TIME})|(?P<phone>{_PHONE_RE})")
_DECIMAL = re.compile(r"\d+\.\d+")
#: Digits a run needs to be taken for a phone number (shorter runs are counts, codes, amounts).
PHONE_MIN_DIGITS = 7
#: Words of a name shorter than this are masked only as part of the whole name (``da``, ``de``).
NAME_WORD_MIN = 3
_WORD = re.compile(r"\w[\w'\u2019\-]*\w|\w")


def _redact_match(m: re.Match[str]) -> str:
    found = m.group(0)
    if m.group("email"):
        return mask_email(found) or found
    if m.group("date"):
        return found
    if sum(c.isdigit() for c in found) < PHONE_MIN_DIGITS or _DECIMAL.fullmatch(found):
        return found
    # Parentheses around a country or area code say nothing the mask keeps.
    return mask_msisdn(found.replace("(", "").replace(")", "")) or found


def _names_pattern(names: Iterable[str | None]) -> re.Pattern[str] | None:
    """Each whole name, and each of its words of NAME_WORD_MIN letters or more, as whole words."""
    alternatives: set[str] = set()
    for name in names:
        words = _WORD.findall(name or "")
        if not words:
            continue
        alternatives.add(r"\s+".join(re.escape(w) for w in words))
        alternatives.update(re.escape(w) for w in words if len(w) >= NAME_WORD_MIN)
    if not alternatives:
        return None
    longest_first = sorted(alternatives, key=lambda a: (-len(a), a))
    return re.compile(r"(?<!\w)(?:" + "|".join(longest_first) + r")(?!\w)", re.IGNORECASE)


def redact_text(text: str, names: Iterable[str | None] = ()) -> str:
    """Free text (a ticket, a note, a raw payload) with the personal data in it masked.

    Email addresses, phone-number-like runs (PHONE_MIN_DIGITS digits or more, with an optional ``+``
    and spaces, dashes, dots or parentheses) and the given ``names`` (whole words, any case; each
    name whole and each of its longer words alone) wear the same masks as the fields
    (:func:`mask_email`, :func:`mask_msisdn`, :func:`mask_name`), so the text still reads:
    ``call Joana Silva on +351 912 345 678`` -> ``call J*** S*** on +351 9*** ***678``. ISO dates
    and times and plain decimals stay as written. It errs on hiding: a long order number is masked
    like a phone number.
    """
    out = _FREE_TEXT.sub(_redact_match, text)
    pattern = _names_pattern(names)
    if pattern is not None:
        out = pattern.sub(lambda m: mask_name(m.group(0)) or m.group(0), out)
    return out


def people_named(name: str | None, segment: str | None, contact_name: str | None) -> tuple[str, ...]:
    """The people an account's free text may name: its contact, and its holder when it is a
    consumer's (a consumer account is named after its holder; a business's name is not personal)."""
    holder = None if segment in BUSINESS_SEGMENTS else name
    return tuple(n for n in (contact_name, holder) if n)


def redact_optional(text: str | None, names: Iterable[str | None] = ()) -> str | None:
    """:func:`redact_text` of stored text that may be missing (None stays None)."""
    return None if text is None else redact_text(text, names)


#: Keys of a raw payload (JSON or JSON-like text) whose string values are a person's name or an
#: address, compared lower-case without ``_`` or ``-``. ``name`` itself may be a person's in any
#: record but those of the network kinds in NETWORK_KINDS (a consumer account is named after its
#: holder; a ticket's or a bill's related party is a person).
_NAME_KEYS = frozenset(
    {
        "contactname", "givenname", "familyname", "fullname", "firstname", "lastname", "middlename",
        "surname", "formattedname", "preferredgivenname", "holdername", "customername",
    }
)  # fmt: skip
_ADDRESS_KEYS = frozenset(
    {
        "address", "contactaddress", "street", "street1", "street2", "streetname", "streetnr",
        "postcode", "postalcode", "zip", "zipcode",
    }
)  # fmt: skip
NETWORK_KINDS = frozenset(
    {
        "regions", "sites", "cells", "resources", "topology_edges", "alarms", "incidents",
        "incident_alarms", "kpi_samples",
    }
)  # fmt: skip
_JSON_PAIR = re.compile(r'"(?P<key>[^"\\]{1,64})"\s*:\s*"(?P<value>(?:[^"\\]|\\.)*)"')


def redact_payload(raw: str, kind: str | None = None) -> str:
    """A raw source payload (as quarantined) with its personal data masked, JSON or not, whole or cut.

    String values under name keys (``contact_name``, ``givenName``...; ``name`` in records of any
    kind but NETWORK_KINDS, and when the kind is unknown) wear :func:`mask_name`, and those names
    are masked wherever else they appear; values under address keys are hidden whole; then
    :func:`redact_text` masks emails and phone numbers. Pairs are found in the text, so a payload
    cut short (a preview) is masked too.
    """
    names: list[str] = []

    def pair(m: re.Match[str]) -> str:
        key = re.sub(r"[_\-\s]", "", m.group("key").lower())
        value = m.group("value")
        if not value:
            return m.group(0)
        if key in _NAME_KEYS or (key == "name" and kind not in NETWORK_KINDS):
            names.append(value)
            masked = mask_name(value) or ""
        elif key in _ADDRESS_KEYS:
            masked = "***"
        else:
            return m.group(0)
        start, end = m.span("value")
        whole = m.group(0)
        return whole[: start - m.start()] + masked + whole[end - m.start() :]

    return redact_text(_JSON_PAIR.sub(pair, raw), names)


# --- exports -----------------------------------------------------------------------------------

#: First characters that make a spreadsheet read a cell as a formula (or a DDE call).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: An MSISDN as :func:`mask_msisdn` writes it: a sign, digits, spaces and stars, never a formula.
_MASKED_MSISDN = re.compile(r"\+\d{1,3} \d\*\*\* \*\*\*\d{3}")


def csv_safe(value: Any) -> Any:
    """A value for a CSV cell that a spreadsheet will show, never run.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with
    ``'``, which spreadsheets read as "this is text". Numbers stay numbers (a negative sentiment
    still sorts as one), and so does text that is a number as written, or a masked MSISDN
    (``+351 9*** ***678``): neither can call a function.
    """
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if _NUMBER.fullmatch(value) or _MASKED_MSISDN.fullmatch(value):
        return value
    return "'" + value


def csv_safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with every cell passed through :func:`csv_safe`."""
    return {k: csv_safe(v) for k, v in row.items()}
