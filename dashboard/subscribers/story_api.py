"""``GET /api/v1/subscribers/<id>``: one subscriber's whole story as JSON, masked as the role requires.

Personal fields are masked for every caller. ``?unmask=1`` asks for them in clear: roles that may
(analyst, admin) get them after :func:`dashboard.privacy.unmask` wrote the audit record; others get
403 and nothing is read. ``?days=`` (1 to 366, default 30) sets the window of the experienced KPIs.
An unknown id is 404. Times are ISO 8601 UTC with a ``Z``; money is in the currency named.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import flask

from dashboard.config import Settings
from dashboard.pages import CATALOGUE_KEY, utcnow
from dashboard.privacy import PERSONAL_FIELDS, PermissionDenied, current_principal, unmask
from dashboard.store.db import Store
from dashboard.subscribers.story import experienced_kpis, subscriber_story

MAX_DAYS = 366
_TRUE = ("1", "true", "yes")


class _BadParam(ValueError):
    pass


def _days(args: Any) -> int:
    raw = args.get("days", "30")
    try:
        value = int(raw)
    except ValueError:
        raise _BadParam(f"days: expected an integer from 1 to {MAX_DAYS}, got {raw!r}") from None
    if not 1 <= value <= MAX_DAYS:
        raise _BadParam(f"days: expected an integer from 1 to {MAX_DAYS}, got {value}")
    return value


def _wants_unmask(args: Any) -> bool:
    raw = (args.get("unmask") or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in _TRUE:
        return True
    raise _BadParam(f"unmask: expected 1 or 0, got {raw!r}")


def reveal(story: dict[str, Any], clear: dict[str, Any]) -> dict[str, Any]:
    """The story with the clear values :func:`unmask` returned in place of the masked ones."""
    out = dict(story)
    out["profile"] = story["profile"] | {"msisdn": clear.get("msisdn")}
    if story.get("account") is not None:
        contacts = {k: clear.get(k) for k in PERSONAL_FIELDS if k != "msisdn"}
        out["account"] = story["account"] | contacts
    out["privacy"] = story["privacy"] | {"masked": False}
    return out


def register_subscriber_story_api(
    server: flask.Flask, store: Store, settings: Settings, *, clock: Callable[[], datetime] = utcnow
) -> None:
    """Mount ``GET /api/v1/subscribers/<id>`` on the Flask server; ``clock`` gives naive UTC now."""

    @server.get("/api/v1/subscribers/<subscriber_id>")
    def _subscriber_story(subscriber_id: str) -> tuple[flask.Response, int]:
        args = flask.request.args
        try:
            days, wants_clear = _days(args), _wants_unmask(args)
        except _BadParam as err:
            return flask.jsonify({"error": str(err)}), 400
        principal = current_principal()
        if wants_clear and not principal.may_unmask:
            return flask.jsonify({"error": f"role {principal.role!r} may not see personal data"}), 403
        catalogue = server.config.get(CATALOGUE_KEY)
        kpis = experienced_kpis(catalogue) if catalogue is not None else None
        now = clock()
        with store.connect() as conn:
            story = subscriber_story(conn, subscriber_id, principal, now=now, days=days, kpis=kpis)
        if story is None:
            return flask.jsonify({"error": f"no subscriber {subscriber_id!r}"}), 404
        if wants_clear:
            try:
                story = reveal(story, unmask(store, principal, subscriber_id, now=now))
            except PermissionDenied as err:
                return flask.jsonify({"error": str(err)}), 403
        return flask.jsonify(story | {"currency": settings.currency}), 200
