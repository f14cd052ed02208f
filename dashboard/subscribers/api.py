"""``GET /api/v1/subscribers``: subscriber search and the filtered list as JSON, masked by role.

Parameters: ``q`` (an MSISDN in any common format, a subscriber or account id, the start of an
account name), ``segment`` (consumer, smb, enterprise, vip), ``region`` (id or name), ``plan``,
``risk`` (low, medium, high), ``sentiment`` (negative, neutral, positive), ``affected`` (true:
on a cell an open incident degrades), ``account`` (an account's lines), ``sort`` (value or risk,
most first), ``limit`` (1-1000, default 50) and ``cursor`` (the ``next_cursor`` of the previous
page). A bad parameter answers 400 with what was expected. ``GET /api/v1/subscribers.csv`` takes
the same filters and streams the whole list as CSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask

from dashboard.config import Settings
from dashboard.kpis import Scoring, load_catalogue
from dashboard.pages import CATALOGUE_KEY
from dashboard.privacy import current_principal
from dashboard.store.db import Store
from dashboard.subscribers.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SORTS,
    Filters,
    SearchError,
    filters_from,
    iter_csv,
    parse_query,
    search_page,
)


def _limit(args: Any) -> int:
    raw = args.get("limit", str(DEFAULT_LIMIT))
    try:
        value = int(raw)
    except ValueError:
        raise SearchError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {raw[:40]!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise SearchError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {value}")
    return value


def _sort(args: Any) -> str:
    sort = (args.get("sort") or "value").strip().lower()
    if sort not in SORTS:
        raise SearchError(f"sort: expected one of {', '.join(SORTS)}, got {sort[:40]!r}")
    return sort


def _search(args: Any) -> tuple[str, Filters, str]:
    return parse_query(args.get("q")).text, filters_from(args, strict=True), _sort(args)


def register_subscriber_search_api(server: flask.Flask, store: Store, settings: Settings) -> None:
    """Mount ``/api/v1/subscribers`` and ``/api/v1/subscribers.csv`` on the Flask server."""
    catalogue = server.config.get(CATALOGUE_KEY)
    scoring: Scoring = (catalogue or load_catalogue(settings.kpi_definitions_path())).scoring

    @server.get("/api/v1/subscribers")
    def _subscribers() -> tuple[flask.Response, int]:
        args = flask.request.args
        try:
            text, filters, sort = _search(args)
            limit = _limit(args)
            with store.connect() as conn:
                rows, next_cursor, total = search_page(
                    conn,
                    text,
                    filters,
                    principal=current_principal(),
                    scoring=scoring,
                    sort=sort,
                    limit=limit,
                    cursor=args.get("cursor") or None,
                )
        except SearchError as err:
            return flask.jsonify({"error": str(err)}), 400
        return flask.jsonify(
            {
                "q": text,
                "filters": filters.to_query(),
                "sort": sort,
                "currency": settings.currency,
                "count": len(rows),
                "total": total,
                "next_cursor": next_cursor,
                "subscribers": rows,
            }
        ), 200

    @server.get("/api/v1/subscribers.csv")
    def _subscribers_csv() -> tuple[flask.Response, int]:
        try:
            text, filters, sort = _search(flask.request.args)
        except SearchError as err:
            return flask.jsonify({"error": str(err)}), 400
        principal = current_principal()

        def rows() -> Iterator[str]:
            with store.connect() as conn:
                yield from iter_csv(conn, text, filters, principal, scoring, sort=sort)

        response = flask.Response(flask.stream_with_context(rows()), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="subscribers.csv"'
        return response, 200
