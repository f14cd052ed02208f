"""``GET /api/v1/audit`` (a page of the audit log) and ``GET /api/v1/audit.csv`` (all of it), for admins.

Filters, shared by both: ``actor`` (a user name, exactly), ``action`` (an action or its family:
``login`` matches ``login`` and ``login.failed``), ``target`` (a target id, exactly), ``since`` and
``until`` (ISO 8601 times; without a zone they are UTC; ``since`` included, ``until`` not). The page
takes ``limit`` (1-1000, default 200) and ``before`` (the ``next`` of the previous page: records
older than it), and answers ``{"records": [...], "count": <records matching>, "next": <cursor or
null>}``, newest first. The CSV streams every matching record, newest first, with cells a
spreadsheet would run as formulas neutralised (:func:`dashboard.privacy.csv_safe`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import flask

from dashboard.api import params
from dashboard.api.encode import JSONObject, jsonable
from dashboard.auth import audit
from dashboard.context import current_context
from dashboard.guard.rules import access
from dashboard.privacy import csv_safe_row

bp = flask.Blueprint("audit", __name__)

DEFAULT_LIMIT = 200
MAX_LIMIT = audit.MAX_LIMIT
#: The largest record id a ``before`` cursor may name (the column is a 64-bit integer at most).
MAX_ID = 2**63 - 1
#: The longest time a filter takes (``2026-03-02T12:00:00.000000+01:00`` is 32 characters).
MAX_TIME_LENGTH = 40
#: The audit table's column widths: a longer filter value can match nothing.
MAX_NAME = 128
MAX_ACTION = 64
FIELDS = ("id", "at", "actor", "action", "target_type", "target_id", "detail")
TIME_EXPECTED = "an ISO 8601 date or time (2026-03-02 or 2026-03-02T12:00:00Z)"


def iso_time(args: params.Args, name: str) -> datetime | None:
    """An ISO 8601 date or time as the store keeps times: naive UTC (a time without a zone is UTC)."""
    raw = params.text(args, name, max_length=MAX_TIME_LENGTH)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # not a time, or one that leaves the calendar in UTC
        raise params.BadParameter(name, TIME_EXPECTED, raw) from None
    return value


def audit_filter(args: params.Args) -> audit.AuditFilter:
    """The filters of the request; BadParameter for one it cannot use (``until`` before ``since``)."""
    f = audit.AuditFilter(
        actor=params.text(args, "actor", max_length=MAX_NAME),
        action=params.text(args, "action", max_length=MAX_ACTION),
        target=params.text(args, "target", max_length=MAX_NAME),
        since=iso_time(args, "since"),
        until=iso_time(args, "until"),
    )
    if f.since is not None and f.until is not None and f.until <= f.since:
        raise params.BadParameter("until", "a time after since", args.get("until"))
    return f


def record_json(row: dict[str, Any]) -> JSONObject:
    """One audit record as the API returns it: times ISO UTC, the detail as stored (an object or null)."""
    return {field: jsonable(row.get(field)) for field in FIELDS}


def _csv_cells(row: dict[str, Any]) -> dict[str, Any]:
    cells = record_json(row)
    detail = cells["detail"]
    cells["detail"] = "" if detail is None else json.dumps(detail, ensure_ascii=False, sort_keys=True)
    return csv_safe_row(cells)


def iter_csv(rows: Iterator[dict[str, Any]], *, chunk: int = 1000) -> Iterator[str]:
    """``rows`` as CSV text: the header, then ``chunk`` rows at a time, every cell formula-safe."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    pending = 0
    for row in rows:
        writer.writerow(_csv_cells(row))
        pending += 1
        if pending >= chunk:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            pending = 0
    yield buf.getvalue()


@bp.get("/audit")
@access("admin")
def records() -> tuple[flask.Response, int]:
    args = flask.request.args
    f = audit_filter(args)
    limit = params.bounded_int(args, "limit", default=DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)
    # 0 stands for "no cursor": the first page. A cursor given must be a record id, 1 or more.
    before = params.bounded_int(args, "before", default=0, lo=1, hi=MAX_ID) or None
    with current_context().store.connect() as conn:
        rows = audit.read(conn, f, limit=limit, before_id=before)
        total = audit.count(conn, f)
        last = int(rows[-1]["id"]) if len(rows) == limit else None
        # A full page has a next one only if an older record matches: no cursor to an empty page.
        more = last is not None and bool(audit.read(conn, f, limit=1, before_id=last))
    body = {"records": [record_json(r) for r in rows], "count": total, "next": last if more else None}
    response = flask.jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 200


@bp.get("/audit.csv")
@access("admin")
def export() -> tuple[flask.Response, int]:
    f = audit_filter(flask.request.args)
    store = current_context().store

    def rows() -> Iterator[str]:
        with store.connect() as conn:
            yield from iter_csv(audit.iter_all(conn, f))

    response = flask.Response(flask.stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response, 200
