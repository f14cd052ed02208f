"""Subscriber search and the filtered list: what an analyst types, found by index over a million lines.

:func:`parse_query` reads the text as a person types it: a phone number in any common format (with
or without the country code, ``00``, spaces, dashes, dots, parentheses), a subscriber or account
id, or the start of an account name. :func:`search_page` returns one page of the matching
subscribers, filtered and sorted by value or churn risk, with keyset pagination (the cursor is the
last row's sort key and id, opaque to callers), each row passed through
:func:`dashboard.privacy.protect`. :func:`export_csv` streams the whole filtered list as CSV.

Personal fields are closed, not just hidden. The search reads two: the MSISDN and a consumer
account's name (its holder's; a business's name is not personal); contact names, emails, phones
and addresses are not searched at all (no index holds them). For a principal that may not
unmask (viewer, operator) they match only as a whole value: the MSISDN's full digits as stored
(``+351 912 345 678``, ``00351912345678`` and ``351912345678`` alike), the holder's whole name
(any case, accents and spacing). Were a part enough, a masked value could be read back one
character at a time, keeping the digit for which a line is still found. Ids, business names,
plans, regions and the rest keep their partial matching. Principals that may unmask keep partial
matching of personal fields too. Either way :func:`audit_search` writes one audit record per search
(or export) whose text was matched against a personal field: who, which fields, how, and the
length of the text, never the text. The list is sorted by value or churn risk and filtered by
segment, region, plan, risk, sentiment, incident and account id: none of them personal.

How each form stays an index lookup (``EXPLAIN`` checked at a million subscribers):

- MSISDN with its country code: a prefix of ``subscribers.msisdn_digits`` (whole: equal to it); a
  national number or its last digits: a prefix of ``subscribers.msisdn_rev`` (the digits reversed).
  Both keys are derived on ingest (:mod:`dashboard.ingest.derive`) by the functions used here on
  the text.
- Ids: equality and a prefix range on the primary key and ``subscribers.account_id``.
- Account names: a prefix of ``accounts.name_key`` (lower case, no accents; whole: equal to it).
- Prefixes are ranges (``col >= 'abc' AND col < 'abd'``) on SQLite, whose ``LIKE`` ignores the
  indexes, and ``LIKE 'abc%'`` on PostgreSQL, whose search-key indexes use ``text_pattern_ops``.
  User text is always a bound parameter, with ``LIKE`` wildcards escaped, so quotes, ``%``, ``_``
  and SQL or HTML fragments are only ever matched as the characters they are.

The forms are alternatives: their matches are united (``UNION``), each through its own index, and
only then joined to accounts and signals, filtered, sorted and cut to the page. Names match from
their start only: a word inside a name (``silva`` in ``Joana Silva``) has no index to use, and
looking for it read every account (at a million lines, 250-700 ms a search instead of 20-50 ms).

Without search text the list is ranked in the database: by churn risk a page walks the index on
the risk (milliseconds). By value, the whole list and its smb, enterprise and VIP segments merge one
walk per value class of the kept classes' index (``line_values``, :mod:`dashboard.store.line_values`:
within a class value order is ARPU order), each cut to the page, so a page reads about a page of
rows per class at any size of the base; the lines ingested since the queue refresh's value pass last
kept their classes (or whose account was) are weighed live beside them, so the list is never stale
(beyond ``FRESH_CAP`` of them, or before the first pass, every line is weighed live). At a million
lines (bench/reads.py, a 2-core machine under load) a page by value, first or later, took p50 / p95
55 / 87 ms on SQLite and 121 / 199 ms on PostgreSQL, against 6.0 / 13.2 s and 1.7 / 2.1 s when every
line was weighed. The whole list's count is the value pass's, plus the lines added since. Other filters,
and a search's matches, are weighed line by line (its account's multiplier, from the few weighted
accounts) and the top kept: half a second to a second for a million lines (bench/reads.py,
bench/subscribers.py).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    FromClause,
    Select,
    and_,
    func,
    insert,
    literal,
    or_,
    select,
    union,
    union_all,
)

from dashboard import sentiment
from dashboard.errors import VantageError
from dashboard.ingest.derive import name_key, phone_digits
from dashboard.ingest.runner import load_state
from dashboard.kpis import Scoring
from dashboard.privacy import BUSINESS_SEGMENTS, Principal, account_name, csv_safe_row, protect
from dashboard.store import line_values as value_classes
from dashboard.store.db import Store
from dashboard.store.schema import (
    accounts,
    audit,
    cells,
    incident_cells,
    incidents,
    line_values,
    regions,
    sites,
    subscriber_cells,
    subscriber_signals,
    subscribers,
)

Sort = Literal["value", "risk"]
SORTS: tuple[Sort, ...] = ("value", "risk")
#: Churn-risk bands: low below RISK_MEDIUM, medium from RISK_MEDIUM to below RISK_HIGH, high above.
RISK_MEDIUM = 0.1
RISK_HIGH = 0.3
RISK_BANDS = ("low", "medium", "high")
#: 30-day ticket sentiment bands (dashboard/sentiment.py's). Lines without tickets are in none.
SENTIMENT_NEGATIVE = sentiment.NEGATIVE_BELOW
SENTIMENT_POSITIVE = sentiment.POSITIVE_ABOVE
SENTIMENT_BANDS = sentiment.BANDS
#: The segment filter: an account segment, or ``vip`` for VIP accounts of any segment.
SEGMENT_FILTERS = ("consumer", "smb", "enterprise", "vip")
#: Incident states in which an incident still affects its subscribers.
OPEN_INCIDENT_STATES = ("open", "acknowledged")

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: Typed text beyond this many characters is ignored (no name, number or id is longer).
MAX_QUERY_LENGTH = 100
#: Phone-like text needs this many digits before it is matched against MSISDNs.
MIN_PHONE_DIGITS = 4
#: The first page counts the matches up to this many; beyond, the total is reported as unknown.
COUNT_CAP = 10_000
#: Rows per chunk of a CSV export.
EXPORT_CHUNK = 5_000
#: Segment filters the kept value classes serve by themselves (a consumer filter also needs the account).
CLASS_SEGMENTS = (None, "smb", "enterprise", "vip")
#: Lines changed since the value pass last ran that a list sorted by value weighs live, beside the
#: kept classes; beyond this many, every line is weighed live until the next pass.
FRESH_CAP = 5_000

#: The columns of each row, in the order exports write them.
ROW_FIELDS = (
    "id",
    "msisdn",
    "status",
    "account_id",
    "account_name",
    "segment",
    "vip",
    "plan",
    "arpu",
    "value",
    "region_id",
    "region",
    "churn_risk",
    "sentiment",
    "open_incidents",
)

_PHONE = re.compile(r"^[+(]*[\d\s().\-/+]+$")
_DIGIT = re.compile(r"\d")
_SPACES = re.compile(r"\s+")
_MAX_CHAR = "\U0010ffff"


class SearchError(VantageError, ValueError):
    """A filter, sort or cursor that cannot be used; the message says what was expected."""


# --- the query --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What typed text is matched as: each non-empty part is one alternative.

    ``partial`` says whether personal fields (the MSISDN, a holder's name) may be matched by part
    of their value (principals that may unmask) or only whole (everyone else).
    """

    text: str
    #: The MSISDN's digits (country code included) when the text looks like a number: what it
    #: starts with (partial) or is (whole).
    msisdn_prefix: str | None = None
    #: Reversed digits the MSISDN ends with (national numbers and last digits): partial only.
    msisdn_suffixes: tuple[str, ...] = ()
    #: Ids (subscriber and account) equal to, or starting with, one of these.
    ids: tuple[str, ...] = ()
    #: The text as ``accounts.name_key`` holds names: the start of a business's name, and a holder's
    #: name (the start of it, or all of it) when the text can be a person's name (no digit in it).
    name: str | None = None
    #: Whether the text can be a person's name, so it is matched against holders' names.
    holder_name: bool = False
    partial: bool = False

    @property
    def empty(self) -> bool:
        return not self.text


def parse_query(text: str | None, *, partial: bool = False) -> Query:
    """Classify what was typed; empty text matches everything. ``partial``: personal fields may be
    matched by part of their value (pass ``principal.may_unmask``)."""
    clean = _SPACES.sub(" ", (text or "").strip())[:MAX_QUERY_LENGTH].strip()
    if not clean:
        return Query(text="", partial=partial)
    ids = tuple(dict.fromkeys((clean, clean.lower(), clean.upper())))  # ids are case-sensitive
    key = name_key(clean)
    prefix: str | None = None
    suffixes: tuple[str, ...] = ()
    if _PHONE.match(clean):
        digits = phone_digits(clean)
        if len(digits) >= MIN_PHONE_DIGITS:
            prefix = digits
            international = clean.lstrip("( ").startswith(("+", "00"))
            if not international:
                ends = [digits]
                if digits.startswith("0") and len(digits) > MIN_PHONE_DIGITS:
                    ends.append(digits[1:])  # a national trunk prefix: 0 before the subscriber number
                suffixes = tuple(d[::-1] for d in ends)
    return Query(
        text=clean,
        msisdn_prefix=prefix,
        msisdn_suffixes=suffixes,
        ids=ids,
        name=key or None,
        holder_name=bool(key) and not _DIGIT.search(key),
        partial=partial,
    )


#: Personal fields as a search's audit record names them.
SEARCHED_MSISDN = "msisdn"
SEARCHED_HOLDER_NAME = "holder_name"


def personal_fields(q: Query) -> tuple[str, ...]:
    """The personal fields the text of ``q`` is matched against (none: no audit record)."""
    fields: list[str] = []
    if q.msisdn_prefix:
        fields.append(SEARCHED_MSISDN)
    if q.name and q.holder_name:
        fields.append(SEARCHED_HOLDER_NAME)
    return tuple(fields)


def audit_search(
    store: Store,
    principal: Principal,
    query_text: str | None,
    *,
    now: datetime,
    export: bool = False,
) -> dict[str, Any] | None:
    """Write the audit record of one search request (or export) whose text reads a personal field.

    Call it once per request that starts a search: the first page (no cursor, no offset), not the
    pages after it; an export once, not per chunk. The record says who, with which role, which
    personal fields the text was matched against, whether by part of their value or whole, and how
    long the text was; never the text itself (the audit log would hold what it protects). Returns
    the record's detail, or None when the text reads no personal field and nothing was written.
    """
    q = parse_query(query_text, partial=principal.may_unmask)
    fields = personal_fields(q)
    if not fields:
        return None
    detail: dict[str, Any] = {
        "role": principal.role,
        "via": principal.via,
        "fields": list(fields),
        "match": "partial" if q.partial else "whole",
        "query_length": len(q.text),
    }
    with store.begin() as conn:
        conn.execute(
            insert(audit).values(
                at=now,
                actor=principal.user,
                action="subscriber.export" if export else "subscriber.search",
                target_type="subscriber",
                target_id=None,
                detail=detail,
            )
        )
    return detail


# --- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Filters of the list; None (or False) means no filter."""

    segment: str | None = None
    region: str | None = None  # region id or name
    plan: str | None = None
    risk: str | None = None
    sentiment: str | None = None
    affected: bool = False
    account: str | None = None

    @property
    def any(self) -> bool:
        return any(asdict(self).values())

    def to_query(self) -> dict[str, str]:
        """The filters as query-string parameters (only those set)."""
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is True:
                out[key] = "1"
            elif value:
                out[key] = str(value)
        return out


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _one_of(name: str, raw: Any, allowed: Sequence[str], strict: bool) -> str | None:
    value = str(raw).strip().lower() if raw is not None else ""
    if not value or value == "any":
        return None
    if value in allowed:
        return value
    if strict:
        raise SearchError(f"{name}: expected one of {', '.join(allowed)}, got {str(raw)[:40]!r}")
    return None


def _text(raw: Any) -> str | None:
    value = _SPACES.sub(" ", str(raw)).strip()[:128] if raw is not None else ""
    return value if value and value != "any" else None


def filters_from(args: Mapping[str, Any], *, strict: bool = False) -> Filters:
    """Filters from query-string parameters; ``strict`` raises SearchError on a bad value (the API),
    otherwise a bad value is no filter (a hand-edited deep link)."""
    raw_affected = str(args.get("affected") or "").strip().lower()
    if raw_affected not in _TRUE + _FALSE:
        if strict:
            raise SearchError(f"affected: expected true or false, got {raw_affected[:40]!r}")
        raw_affected = ""
    return Filters(
        segment=_one_of("segment", args.get("segment"), SEGMENT_FILTERS, strict),
        region=_text(args.get("region")),
        plan=_text(args.get("plan")),
        risk=_one_of("risk", args.get("risk"), RISK_BANDS, strict),
        sentiment=_one_of("sentiment", args.get("sentiment"), SENTIMENT_BANDS, strict),
        affected=raw_affected in _TRUE,
        account=_text(args.get("account")),
    )


# --- SQL pieces -------------------------------------------------------------------------------

s, a, g = subscribers, accounts, subscriber_signals


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _next_prefix(prefix: str) -> str | None:
    """The smallest string after every string starting with ``prefix`` (None: there is none)."""
    trimmed = prefix.rstrip(_MAX_CHAR)
    if not trimmed:
        return None
    return trimmed[:-1] + chr(ord(trimmed[-1]) + 1)


def _starts_with(col: Any, prefix: str, dialect: str, *, pattern_index: bool) -> ColumnElement[bool]:
    """``col`` starts with ``prefix``, written so the column's index is used.

    ``pattern_index``: PostgreSQL indexes the column with ``text_pattern_ops`` (the search keys),
    so ``LIKE 'x%'`` uses it. Other columns (ids) get a range of their index, re-checked with
    ``LIKE`` on PostgreSQL: the range is exact under a C collation (code-point order, as on the
    databases Vantage is tested on); under a linguistic one it could miss an id whose typed start
    ends in punctuation, never return one that does not start with it.
    """
    if dialect == "postgresql" and pattern_index:
        like: ColumnElement[bool] = col.like(_escape_like(prefix) + "%", escape="\\")
        return like
    upper = _next_prefix(prefix)
    bounds = [col >= prefix] + ([col < upper] if upper is not None else [])
    if dialect == "postgresql":
        bounds.append(col.like(_escape_like(prefix) + "%", escape="\\"))
    elif dialect != "sqlite":
        bounds = [col.like(_escape_like(prefix) + "%", escape="\\")]
    return and_(*bounds)


#: The subscriber columns sorting and filtering read: a search's matches carry them, so the list is
#: built from the matches without joining back to the million-line table.
_LINE_COLUMNS = ("id", "source", "account_id", "arpu", "plan", "home_cell_id")


def _hits(q: Query, dialect: str) -> Any:
    """Every subscriber a query form matches (as :data:`_LINE_COLUMNS`), each form through its index.

    Personal fields match by part of their value only when ``q.partial``; otherwise whole.
    """
    parts: list[Select[Any]] = []
    line = select(*(s.c[c] for c in _LINE_COLUMNS))
    if q.msisdn_prefix:
        if q.partial:
            number = _starts_with(s.c.msisdn_digits, q.msisdn_prefix, dialect, pattern_index=True)
        else:
            number = s.c.msisdn_digits == q.msisdn_prefix
        parts.append(line.where(number))
    if q.partial:
        for rev in q.msisdn_suffixes:
            parts.append(line.where(_starts_with(s.c.msisdn_rev, rev, dialect, pattern_index=True)))
    for text in q.ids:  # equal to, or starting with, the text: one range of the index each
        parts.append(line.where(_starts_with(s.c.id, text, dialect, pattern_index=False)))
        parts.append(line.where(_starts_with(s.c.account_id, text, dialect, pattern_index=False)))
    if q.name:
        starts = _starts_with(a.c.name_key, q.name, dialect, pattern_index=True)
        if q.partial and q.holder_name:
            named = select(a.c.id).where(starts)  # every account's name, by its start: one range
            parts.append(line.where(s.c.account_id.in_(named)))
        else:
            # The segment is checked on the rows the name's index found, never used to find them.
            segment = _unindexed(a.c.segment, dialect)
            business = select(a.c.id).where(starts, segment.in_(BUSINESS_SEGMENTS))
            parts.append(line.where(s.c.account_id.in_(business)))
            if q.holder_name:
                holders = select(a.c.id).where(a.c.name_key == q.name, segment.not_in(BUSINESS_SEGMENTS))
                parts.append(line.where(s.c.account_id.in_(holders)))
    return union(*parts).subquery("hits")


def _weighted(scoring: Scoring) -> Any:
    """The accounts whose lines are worth more (or less) than a consumer's: (id, segment, vip, mult).

    A few percent of the accounts: joining them costs a small hash table where joining every
    account costs one as large as the customer base (PostgreSQL: 0.4 s instead of 1.2 s to rank a
    million lines).
    """
    return (
        select(a.c.id, a.c.segment, a.c.vip, scoring.line_multiplier_sql(a.c.segment, a.c.vip).label("mult"))
        .where(or_(a.c.segment != "consumer", a.c.vip.is_(True)))
        .subquery("weighted")
    )


def value_expr(scoring: Scoring, lines: Any, weighted: Any) -> ColumnElement[float]:
    """A line's value (:meth:`Scoring.line_value`) in SQL; a line not in ``weighted`` is plain consumer."""
    plain = literal(scoring.line_multiplier("consumer", False), Float)
    return func.coalesce(lines.c.arpu, literal(0.0, Float)) * func.coalesce(weighted.c.mult, plain)


def _unindexed(col: Any, dialect: str) -> Any:
    """``col`` as an expression no index serves, on SQLite: without statistics its planner walks an
    index for any ``IN`` list, and for a region (a third of the lines) reads them at random, five
    times slower than reading the table through."""
    return col.concat("") if dialect == "sqlite" else col


def _open_cells() -> Select[Any]:
    """Cells degraded by an incident that is still open or acknowledged."""
    return (
        select(incident_cells.c.cell_id)
        .join(incidents, incidents.c.id == incident_cells.c.incident_id)
        .where(incidents.c.state.in_(OPEN_INCIDENT_STATES), incident_cells.c.degraded_share > 0)
    )


def _filter_conditions(
    f: Filters, lines: Any, weighted: Any, dialect: str
) -> tuple[list[ColumnElement[bool]], set[str]]:
    """SQL conditions of the filters, and what they need joined (accounts, weighted, signals)."""
    conds: list[ColumnElement[bool]] = []
    needs: set[str] = set()
    if f.segment == "consumer":
        conds.append(a.c.segment == "consumer")
        needs.add("accounts")
    elif f.segment == "vip":
        conds.append(weighted.c.vip.is_(True))  # every VIP account is weighted
        needs.add("weighted")
    elif f.segment:
        conds.append(weighted.c.segment == f.segment)
        needs.add("weighted")
    if f.account:
        conds.append(lines.c.account_id == f.account)
    if f.plan:
        conds.append(lines.c.plan == f.plan)
    if f.region:
        in_region = (
            select(cells.c.id)
            .join(sites, sites.c.id == cells.c.site_id)
            .where(
                or_(
                    sites.c.region_id == f.region,
                    sites.c.region_id.in_(select(regions.c.id).where(regions.c.name == f.region)),
                )
            )
        )
        conds.append(_unindexed(lines.c.home_cell_id, dialect).in_(in_region))
    if f.risk:
        needs.add("signals")
        risk = g.c.churn_risk
        conds.append(
            {
                "low": risk < RISK_MEDIUM,
                "medium": and_(risk >= RISK_MEDIUM, risk < RISK_HIGH),
                "high": risk >= RISK_HIGH,
            }[f.risk]
        )
    if f.sentiment:
        needs.add("signals")
        sent = g.c.sentiment_30d
        conds.append(
            {
                "negative": sent < SENTIMENT_NEGATIVE,
                "neutral": and_(sent >= SENTIMENT_NEGATIVE, sent <= SENTIMENT_POSITIVE),
                "positive": sent > SENTIMENT_POSITIVE,
            }[f.sentiment]
        )
    if f.affected:
        conds.append(
            lines.c.id.in_(
                select(subscriber_cells.c.subscriber_id).where(subscriber_cells.c.cell_id.in_(_open_cells()))
            )
        )
    return conds, needs


@dataclass(frozen=True)
class _Plan:
    """What every query of one search shares: the lines (the subscribers table, or the matches of
    the typed text), the FROM with what is joined to them, the filters, and the weighted accounts
    (joined when ``value`` was asked for)."""

    lines: Any
    source: FromClause
    where: list[ColumnElement[bool]]
    weighted: Any


def _plan(
    conn: Connection,
    q: Query,
    f: Filters,
    scoring: Scoring,
    *,
    value: bool = False,
    signals: Literal["if_filtered", "outer", "scored"] = "if_filtered",
) -> _Plan:
    """``value``: join what the value needs. ``signals``: joined when a filter reads them; ``outer``:
    always; ``scored``: only lines with a churn risk, joined (not outer-joined) so a planner may
    walk the index on the risk to them."""
    lines: Any = s if q.empty else _hits(q, conn.dialect.name)
    weighted = _weighted(scoring)
    conds, needs = _filter_conditions(f, lines, weighted, conn.dialect.name)
    source: FromClause = lines
    if "accounts" in needs:
        source = source.outerjoin(a, a.c.id == lines.c.account_id)
    if value or "weighted" in needs:
        source = source.outerjoin(weighted, weighted.c.id == lines.c.account_id)
    if signals == "scored":
        source = source.join(g, g.c.subscriber_id == lines.c.id)
        conds.append(g.c.churn_risk.is_not(None))
    elif "signals" in needs or signals == "outer":
        source = source.outerjoin(g, g.c.subscriber_id == lines.c.id)
    return _Plan(lines=lines, source=source, where=conds, weighted=weighted)


# --- the cursor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the row with this sort key (None: unscored), id and source."""

    sort: str
    key: float | None
    id: str
    source: str
    fingerprint: int


def fingerprint(q: Query, f: Filters, sort: str) -> int:
    """A short check that a cursor is used with the search it came from."""
    return zlib.crc32(json.dumps([q.text, q.partial, asdict(f), sort], sort_keys=True).encode()) & 0xFFFF


def encode_cursor(c: Cursor) -> str:
    raw = json.dumps([c.sort, c.key, c.id, c.source, c.fingerprint], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The cursor of an opaque token; SearchError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        sort, key, rid, src, fp = json.loads(raw)
        if (
            sort not in SORTS
            or not isinstance(rid, str)
            or not isinstance(src, str)
            or not isinstance(fp, int)
        ):
            raise ValueError
        if key is not None and (isinstance(key, bool) or not isinstance(key, int | float)):
            raise ValueError
        if key is not None and not math.isfinite(float(key)):  # NaN, or 10**400 (OverflowError)
            raise ValueError
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise SearchError("cursor: not a cursor returned by this API (start again without one)") from None
    return Cursor(sort=sort, key=None if key is None else float(key), id=rid, source=src, fingerprint=fp)


def _after(key_col: Any, c: Cursor, lines: FromClause) -> ColumnElement[bool]:
    """Rows after the cursor in (key descending, id, source) order, within its section."""
    later_id = or_(lines.c.id > c.id, and_(lines.c.id == c.id, lines.c.source > c.source))
    if c.key is None:
        return and_(key_col.is_(None), later_id)
    # ``key <= c.key`` alone lets the index on the key bound the scan.
    return and_(key_col <= c.key, or_(key_col < c.key, later_id))


# --- pages ------------------------------------------------------------------------------------


def _class_may_match(f: Filters, segment: str, vip: bool) -> bool:
    """Whether lines of the value class (segment, vip) can pass the segment filter."""
    if f.segment == "vip":
        return vip
    return f.segment is None or f.segment == segment


def _after_in_class(c: Cursor, mult: float) -> ColumnElement[bool]:
    """Rows of one value class (multiplier ``mult``) after the cursor in (value descending, id,
    source) order. The bound on the ARPU, a hair wider than the exact test, lets the index bound
    the walk; the exact test on the value follows it."""
    lv = line_values
    key = lv.c.arpu * literal(mult, Float)
    limit = float(c.key or 0.0) / mult
    later = or_(lv.c.subscriber_id > c.id, and_(lv.c.subscriber_id == c.id, lv.c.source > c.source))
    return and_(lv.c.arpu <= limit + abs(limit) * 1e-9 + 1e-9, key <= c.key, or_(key < c.key, later))


@dataclass(frozen=True)
class _Kept:
    """What the value pass left for a list without search text: how many lines it kept classes of
    (None: not counted), and the lines changed since, which the kept classes may not hold right."""

    lines: int | None
    fresh: list[str]


def _kept(conn: Connection) -> _Kept | None:
    """The kept classes' state, or None when they cannot serve: never built, or too much changed
    since the value pass last ran (the lines ingested, or whose account was, after it)."""
    state = load_state(conn, *value_classes.STATE_KEY)
    seen, lines = state.get("seen_at"), state.get("lines")
    if not seen:
        return None
    fresh = value_classes.changed_since(conn, datetime.fromisoformat(seen), cap=FRESH_CAP)
    return None if fresh is None else _Kept(lines=None if lines is None else int(lines), fresh=fresh)


def _by_class(
    conn: Connection, f: Filters, scoring: Scoring, cursor: Cursor | None, first: int, kept: _Kept | None
) -> Select[Any] | None:
    """The first ``first`` lines of the list by value, as a merge of one walk of the kept classes'
    index per value class (:mod:`dashboard.store.line_values`), each cut to ``first`` rows, and the
    lines changed since the value pass weighed live; None when the classes cannot serve.

    Within a class value order is ARPU order, so each walk reads about ``first`` rows: a page costs
    the same at any size of the base. The whole list and its business and VIP segments are served
    so (a segment filter picks classes); other filters weigh the lines that pass them, as before:
    walking the classes and checking each line against a narrow filter can read most of the base.
    """
    if f.any and (f.segment not in CLASS_SEGMENTS or replace(f, segment=None).any):
        return None
    mults = {cls: scoring.line_multiplier(*cls) for cls in value_classes.CLASSES}
    if min(mults.values()) <= 0 or (cursor is not None and cursor.key is None):
        return None  # a class worth nothing sorts by id, not by ARPU: weigh live
    if kept is None:
        return None
    fresh = kept.fresh
    lv = line_values
    parts: list[Any] = []
    for (segment, vip), mult in mults.items():
        if not _class_may_match(f, segment, vip):
            continue
        where = [lv.c.segment == segment, lv.c.vip.is_(vip)]
        if fresh:
            where.append(lv.c.subscriber_id.not_in(fresh))
        if cursor is not None:
            where.append(_after_in_class(cursor, mult))
        walk = (
            select(lv.c.subscriber_id.label("id"), lv.c.source, (lv.c.arpu * literal(mult, Float)).label("k"))
            .where(*where)
            .order_by(lv.c.arpu.desc(), lv.c.subscriber_id, lv.c.source)
            .limit(first)
        )
        parts.append(select(walk.subquery()))
    if fresh:
        plan = _plan(conn, Query(text=""), f, scoring, value=True)
        value = value_expr(scoring, s, plan.weighted)
        live = select(s.c.id, s.c.source, value.label("k")).select_from(plan.source)
        live = live.where(s.c.id.in_(fresh), *plan.where)
        if cursor is not None:
            live = live.where(_after(value, cursor, s))
        parts.append(live)
    merged = union_all(*parts).subquery("by_value")
    return select(merged.c.id, merged.c.source, merged.c.k).order_by(
        merged.c.k.desc(), merged.c.id, merged.c.source
    )


def _sections(
    conn: Connection,
    q: Query,
    f: Filters,
    sort: str,
    scoring: Scoring,
    cursor: Cursor | None,
    first: int | None = None,
    kept: _Kept | None = None,
) -> list[Select[Any]]:
    """Statements of (id, source, sort key) whose rows, one after the other, are the list after ``cursor``.

    By value: one; without search text and for the ``first`` rows only (a page, not an export), a
    merge of the kept value classes' index walks when they can serve (:func:`_by_class`). By churn
    risk: the scored lines, by the index on the risk, then the unscored ones by id (a sort key with
    NULLs in it would not use the index).
    """
    if sort == "value" and q.empty and first is not None:
        merged = _by_class(conn, f, scoring, cursor, first, kept)
        if merged is not None:
            return [merged]
    if sort == "value":
        plan = _plan(conn, q, f, scoring, value=True)
        ln = plan.lines
        value = value_expr(scoring, ln, plan.weighted)
        stmt = select(ln.c.id, ln.c.source, value.label("k")).select_from(plan.source).where(*plan.where)
        if cursor is not None:
            stmt = stmt.where(_after(value, cursor, ln))
        return [stmt.order_by(value.desc(), ln.c.id, ln.c.source)]
    risk = g.c.churn_risk
    out: list[Select[Any]] = []
    if cursor is None or cursor.key is not None:
        plan = _plan(conn, q, f, scoring, signals="scored")
        ln = plan.lines
        scored = select(ln.c.id, ln.c.source, risk.label("k")).select_from(plan.source).where(*plan.where)
        if cursor is not None:
            scored = scored.where(_after(risk, cursor, ln))
        out.append(scored.order_by(risk.desc(), ln.c.id, ln.c.source))
    plan = _plan(conn, q, f, scoring, signals="outer")
    ln = plan.lines
    unscored = (
        select(ln.c.id, ln.c.source, risk.label("k"))
        .select_from(plan.source)
        .where(*plan.where, risk.is_(None))
    )
    if cursor is not None and cursor.key is None:
        unscored = unscored.where(_after(risk, cursor, ln))
    out.append(unscored.order_by(ln.c.id, ln.c.source))
    return out


def _page_keys(conn: Connection, sections: Sequence[Select[Any]], limit: int, offset: int) -> list[Any]:
    """Up to ``limit`` (id, source, sort key) rows of the sections, after skipping ``offset``."""
    out: list[Any] = []
    for stmt in sections:
        rows = conn.execute(stmt.offset(offset).limit(limit - len(out))).all()
        if offset and not rows:
            # The skip goes past this section: skip the rest of it in the next one.
            n = conn.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
            offset = max(0, offset - int(n))
            continue
        offset = 0
        out.extend(rows)
        if len(out) >= limit:
            break
    return out


def _details(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Everything a row shows, for the page's lines (by id: a handful of index lookups)."""
    if not keys:
        return {}
    ids = sorted({k[0] for k in keys})
    stmt = (
        select(
            s.c.id,
            s.c.source,
            s.c.msisdn,
            s.c.status,
            s.c.plan,
            s.c.arpu,
            s.c.account_id,
            a.c.name.label("account_name"),
            a.c.segment,
            a.c.vip,
            g.c.churn_risk,
            g.c.sentiment_30d.label("sentiment"),
            sites.c.region_id,
            regions.c.name.label("region"),
        )
        .select_from(
            s.outerjoin(a, a.c.id == s.c.account_id)
            .outerjoin(g, g.c.subscriber_id == s.c.id)
            .outerjoin(cells, cells.c.id == s.c.home_cell_id)
            .outerjoin(sites, sites.c.id == cells.c.site_id)
            .outerjoin(regions, regions.c.id == sites.c.region_id)
        )
        .where(s.c.id.in_(ids))
    )
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in conn.execute(stmt).mappings():
        out.setdefault((r["id"], r["source"]), dict(r))  # the first of rows a duplicated id joins to
    # The incidents on the lines' cells (by the cell index), then which of those are open (by id):
    # joined in one query, a planner may walk every open incident for each cell instead.
    pairs = conn.execute(
        select(subscriber_cells.c.subscriber_id, incident_cells.c.incident_id)
        .join(incident_cells, incident_cells.c.cell_id == subscriber_cells.c.cell_id)
        .where(subscriber_cells.c.subscriber_id.in_(ids), incident_cells.c.degraded_share > 0)
    ).all()
    hit = sorted({p[1] for p in pairs})
    open_ids = (
        set(
            conn.execute(
                select(incidents.c.id).where(
                    incidents.c.id.in_(hit), incidents.c.state.in_(OPEN_INCIDENT_STATES)
                )
            ).scalars()
        )
        if hit
        else set()
    )
    per_line: dict[str, set[str]] = {}
    for sid, iid in pairs:
        if iid in open_ids:
            per_line.setdefault(sid, set()).add(iid)
    counts = {sid: len(found) for sid, found in per_line.items()}
    for row in out.values():
        row["open_incidents"] = int(counts.get(row["id"], 0))
    return out


def _row(d: Mapping[str, Any], scoring: Scoring, principal: Principal) -> dict[str, Any]:
    segment = d["segment"]
    name = account_name(d["account_name"], segment)
    risk, sentiment, arpu = d["churn_risk"], d["sentiment"], d["arpu"]
    row = {
        "id": d["id"],
        "msisdn": d["msisdn"],
        "status": d["status"],
        "account_id": d["account_id"],
        "account_name": name,
        "segment": segment,
        "vip": None if d["vip"] is None else bool(d["vip"]),
        "plan": d["plan"],
        "arpu": None if arpu is None else round(float(arpu), 2),
        "value": round(scoring.line_value(arpu, segment, d["vip"]), 2),
        "region_id": d["region_id"],
        "region": d["region"] or d["region_id"],
        "churn_risk": None if risk is None else round(float(risk), 4),
        "sentiment": None if sentiment is None else round(float(sentiment), 4),
        "open_incidents": d["open_incidents"],
    }
    return protect(row, principal)


def count_matches(
    conn: Connection,
    q: Query,
    f: Filters,
    scoring: Scoring,
    *,
    cap: int = COUNT_CAP,
    kept: _Kept | None = None,
) -> int | None:
    """How many subscribers match, or None when more than ``cap`` do (counting them all would cost
    as much as reading them). The whole base is the value pass's count of the lines it kept plus
    the lines added since (``kept``, read here when not given), which spares reading a million
    lines for a number."""
    if q.empty and not f.any:
        kept = kept if kept is not None else _kept(conn)
        if kept is not None and kept.lines is not None:
            return kept.lines + value_classes.new_lines(conn, kept.fresh)
        return int(conn.execute(select(func.count()).select_from(s)).scalar_one())
    plan = _plan(conn, q, f, scoring)
    capped = select(plan.lines.c.id).select_from(plan.source).where(*plan.where).limit(cap + 1).subquery()
    n = int(conn.execute(select(func.count()).select_from(capped)).scalar_one())
    return n if n <= cap else None


def search_page(
    conn: Connection,
    query_text: str | None,
    filters: Filters,
    *,
    principal: Principal,
    scoring: Scoring,
    sort: str = "value",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    offset: int = 0,
    with_total: bool = True,
) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """One page of the subscribers matching ``query_text`` and ``filters``, most valuable (or most at
    risk) first, ties by id: ``(rows, next_cursor, total)``.

    ``cursor`` continues after the previous page (its ``next_cursor``); ``offset`` skips rows
    instead, for a grid that jumps far ahead (slower: the skipped rows are read). ``total`` is
    counted on the first page only (``with_total``), and is None beyond ``COUNT_CAP``. Rows are
    masked for ``principal``, and personal fields match only whole unless it may unmask. The web
    layer calls :func:`audit_search` once for the request that asks for the first page.
    """
    if sort not in SORTS:
        raise SearchError(f"sort: expected one of {', '.join(SORTS)}, got {str(sort)[:40]!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit}")
    q = parse_query(query_text, partial=principal.may_unmask)
    fp = fingerprint(q, filters, sort)
    after = decode_cursor(cursor) if cursor else None
    if after is not None and (after.sort != sort or after.fingerprint != fp):
        raise SearchError("cursor: it belongs to another search, sort or filters (start again without one)")
    skip = max(0, offset)
    kept = _kept(conn) if q.empty and (sort == "value" or not filters.any) else None
    sections = _sections(conn, q, filters, sort, scoring, after, skip + limit + 1, kept)
    keys = _page_keys(conn, sections, limit + 1, skip)
    more = len(keys) > limit
    keys = keys[:limit]
    last = keys[-1] if keys else None
    lines = list(dict.fromkeys((k[0], k[1]) for k in keys))  # an account id held twice joins twice
    details = _details(conn, lines)
    rows = [_row(details[k], scoring, principal) for k in lines if k in details]
    next_cursor = None
    if more and last is not None:
        next_cursor = encode_cursor(
            Cursor(sort=sort, key=last[2], id=last[0], source=last[1], fingerprint=fp)
        )
    total = None
    if with_total and after is None and offset <= 0:
        total = len(rows) if not more else count_matches(conn, q, filters, scoring, kept=kept)
    return rows, next_cursor, total


# --- export -----------------------------------------------------------------------------------


def iter_csv(
    conn: Connection,
    query_text: str | None,
    filters: Filters,
    principal: Principal,
    scoring: Scoring,
    *,
    sort: str = "value",
    max_rows: int | None = None,
) -> Iterator[str]:
    """The filtered list as CSV text: the header, then ``EXPORT_CHUNK`` rows at a time, masked for
    ``principal`` and with cells a spreadsheet would run as formulas neutralised
    (:func:`dashboard.privacy.csv_safe`). One sorted read streamed from the database (not a query
    per chunk), so a whole million-line list is sorted once. Personal fields match as in
    :func:`search_page`; the web layer calls :func:`audit_search` (``export=True``) once per export.
    """
    if sort not in SORTS:
        raise SearchError(f"sort: expected one of {', '.join(SORTS)}, got {str(sort)[:40]!r}")
    q = parse_query(query_text, partial=principal.may_unmask)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    yield buf.getvalue()
    left = max_rows
    streaming = conn.execution_options(stream_results=True, yield_per=EXPORT_CHUNK)
    for stmt in _sections(conn, q, filters, sort, scoring, None):
        if left is not None and left <= 0:
            return
        result = streaming.execute(stmt if left is None else stmt.limit(left))
        for part in result.partitions():
            keys = list(dict.fromkeys((r[0], r[1]) for r in part))
            details = _details(conn, keys)
            buf.seek(0)
            buf.truncate()
            writer.writerows(csv_safe_row(_row(details[k], scoring, principal)) for k in keys if k in details)
            if left is not None:
                left -= len(keys)
            yield buf.getvalue()
        result.close()


def export_csv(
    conn: Connection,
    query_text: str | None,
    filters: Filters,
    principal: Principal,
    scoring: Scoring,
    *,
    sort: str = "value",
    max_rows: int | None = None,
) -> str:
    """The whole filtered list (or its first ``max_rows``) as one CSV text, masked for ``principal``."""
    return "".join(iter_csv(conn, query_text, filters, principal, scoring, sort=sort, max_rows=max_rows))


# --- facets -----------------------------------------------------------------------------------


def facets(conn: Connection) -> dict[str, list[Any]]:
    """What the filters offer: regions as (id, name) and the plans in use."""
    regs = conn.execute(
        select(regions.c.id, func.max(regions.c.name))
        .group_by(regions.c.id)
        .order_by(func.max(regions.c.name))
    ).all()
    plans = conn.execute(
        select(s.c.plan).where(s.c.plan.is_not(None)).distinct().order_by(s.c.plan)
    ).scalars()
    return {"regions": [(str(r[0]), str(r[1] or r[0])) for r in regs], "plans": [str(p) for p in plans]}
