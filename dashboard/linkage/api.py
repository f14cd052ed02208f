"""``GET /api/v1/linkage``: the measured KPI links of a scope, as kpi_links holds them."""

from __future__ import annotations

import re
from typing import Any

import flask
from sqlalchemy import select

from dashboard.api import jsonable
from dashboard.config import Settings
from dashboard.kpis import Catalogue
from dashboard.linkage.estimate import STRENGTHS
from dashboard.store.db import Store, read_frame
from dashboard.store.schema import kpi_links

_SCOPE = re.compile(r"^(all|region:[A-Za-z0-9_.\-]{1,120}|segment:(consumer|smb|enterprise))$")
FIELDS = (
    "driver",
    "target",
    "scope",
    "declared",
    "expected",
    "level",
    "grain_s",
    "step",
    "effect",
    "ci_low",
    "ci_high",
    "lag_s",
    "n",
    "p_value",
    "strength",
    "sentence",
    "since",
    "until",
    "computed_at",
)


class _Bad(ValueError):
    pass


def _params(args: Any, catalogue: Catalogue) -> tuple[str, list[str] | None, str | None, bool]:
    scope = args.get("scope", "all")
    if not _SCOPE.match(scope):
        raise _Bad(f"scope: expected all, region:<id> or segment:consumer|smb|enterprise, got {scope!r}")
    strengths = None
    if args.get("strength"):
        strengths = [s.strip() for s in args["strength"].split(",") if s.strip()]
        bad = [s for s in strengths if s not in STRENGTHS]
        if bad:
            raise _Bad(f"strength: expected one or more of {', '.join(STRENGTHS)}, got {bad[0]!r}")
    kpi = args.get("kpi") or None
    if kpi is not None and kpi not in catalogue.names:
        raise _Bad(f"kpi: expected a KPI of the catalogue, got {kpi!r}")
    evidence = args.get("evidence", "false").lower()
    if evidence not in ("true", "false", "1", "0"):
        raise _Bad(f"evidence: expected true or false, got {evidence!r}")
    return scope, strengths, kpi, evidence in ("true", "1")


def register_linkage_api(server: flask.Flask, store: Store, settings: Settings, catalogue: Catalogue) -> None:
    """Mount ``GET /api/v1/linkage``: ?scope=all|region:<id>|segment:<name>, ?strength, ?kpi, ?evidence."""

    @server.get("/api/v1/linkage")
    def _linkage() -> tuple[flask.Response, int]:
        try:
            scope, strengths, kpi, evidence = _params(flask.request.args, catalogue)
        except _Bad as err:
            return flask.jsonify({"error": str(err)}), 400
        stmt = select(*kpi_links.c).where(kpi_links.c.scope == scope)
        if strengths:
            stmt = stmt.where(kpi_links.c.strength.in_(strengths))
        if kpi:
            stmt = stmt.where((kpi_links.c.driver == kpi) | (kpi_links.c.target == kpi))
        with store.connect() as conn:
            df = read_frame(conn, stmt.order_by(kpi_links.c.target, kpi_links.c.driver))
        links = []
        for rec in df.to_dict("records"):
            item = {f: jsonable(rec.get(f)) for f in FIELDS}
            item["declared"] = bool(rec["declared"])
            if evidence:
                item["evidence"] = rec.get("evidence")
            links.append(item)
        computed = max((item["computed_at"] for item in links if item["computed_at"]), default=None)
        return flask.jsonify(
            {"scope": scope, "computed_at": computed, "count": len(links), "links": links}
        ), 200
