"""Subscribers as JSON, masked by role: the search, its CSV export and one subscriber's story.

``GET /api/v1/subscribers``: ``q`` (an MSISDN in any common format, a subscriber or account id, the
start of an account name; for roles that may not unmask, an MSISDN or a holder's name only whole,
see :mod:`dashboard.subscribers.search`), ``segment`` (consumer, smb, enterprise, vip), ``region``
(id or name), ``plan``, ``risk`` (low, medium, high), ``sentiment`` (negative, neutral,
positive), ``affected`` (true: on a cell an open incident degrades), ``account`` (an account's
lines), ``sort`` (value or risk, most first), ``limit`` (1-1000, default 50) and ``cursor`` (the
``next_cursor`` of the previous page). ``GET /api/v1/subscribers.csv`` takes the same filters and
streams the whole list. A search whose text reads a personal field is audited once: on its first
page (no cursor), and once per export.

``GET /api/v1/subscribers/<id>``: the whole story. Personal fields are masked for every caller;
``?unmask=1`` asks for them in clear: roles that may (analyst, admin) get them after
:func:`dashboard.privacy.unmask` wrote the audit record, others get 403 and nothing is read.
``?days=`` (1 to 366, default 30) sets the window of the experienced KPIs; an unknown id is 404.
"""

from __future__ import annotations

from collections.abc import Iterator

import flask

from dashboard.api import params
from dashboard.context import current_context, current_principal
from dashboard.guard.rules import access
from dashboard.privacy import PermissionDenied, unmask
from dashboard.subscribers.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SORTS,
    Filters,
    audit_search,
    filters_from,
    iter_csv,
    parse_query,
    search_page,
)
from dashboard.subscribers.story import experienced_kpis, reveal, subscriber_story

bp = flask.Blueprint("subscribers", __name__)

MAX_DAYS = 366


def _search(args: params.Args) -> tuple[str, Filters, str]:
    sort = params.one_of(args, "sort", SORTS, default="value") or "value"
    return parse_query(params.text(args, "q", max_length=256)).text, filters_from(args, strict=True), sort


@bp.get("/subscribers")
@access("read")
def search() -> tuple[flask.Response, int]:
    args = flask.request.args
    ctx = current_context()
    text, filters, sort = _search(args)
    limit = params.bounded_int(args, "limit", default=DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)
    cursor = params.cursor(args)
    principal = current_principal()
    if cursor is None:  # the search's first page; the pages after it continue the same search
        audit_search(ctx.store, principal, text, now=ctx.now())
    with ctx.store.connect() as conn:
        rows, next_cursor, total = search_page(
            conn,
            text,
            filters,
            principal=principal,
            scoring=ctx.scoring,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
    body = {
        "q": text,
        "filters": filters.to_query(),
        "sort": sort,
        "currency": ctx.currency,
        "count": len(rows),
        "total": total,
        "next_cursor": next_cursor,
        "subscribers": rows,
    }
    return flask.jsonify(body), 200


@bp.get("/subscribers.csv")
@access("read")
def export() -> tuple[flask.Response, int]:
    ctx = current_context()
    text, filters, sort = _search(flask.request.args)
    principal = current_principal()
    audit_search(ctx.store, principal, text, now=ctx.now(), export=True)

    def rows() -> Iterator[str]:
        with ctx.store.connect() as conn:
            yield from iter_csv(conn, text, filters, principal, ctx.scoring, sort=sort)

    response = flask.Response(flask.stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="subscribers.csv"'
    return response, 200


@bp.get("/subscribers/<subscriber_id>")
@access("read")
def story(subscriber_id: str) -> tuple[flask.Response, int]:
    args = flask.request.args
    ctx = current_context()
    days = params.bounded_int(args, "days", default=30, lo=1, hi=MAX_DAYS)
    wants_clear = params.flag(args, "unmask")
    principal = current_principal()
    if wants_clear and not principal.may_unmask:
        return flask.jsonify({"error": f"role {principal.role!r} may not see personal data"}), 403
    now = ctx.now()
    with ctx.store.connect() as conn:
        found = subscriber_story(
            conn, subscriber_id, principal, now=now, days=days, kpis=experienced_kpis(ctx.catalogue)
        )
    if found is None:
        return flask.jsonify({"error": f"no subscriber {subscriber_id[:128]!r}"}), 404
    if wants_clear:
        try:
            found = reveal(found, unmask(ctx.store, principal, subscriber_id, now=now))
        except PermissionDenied as err:
            return flask.jsonify({"error": str(err)}), 403
    return flask.jsonify(found | {"currency": ctx.currency}), 200
