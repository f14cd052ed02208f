"""``GET /api/v1/linkage``: the measured KPI links of a scope.

``?scope=`` (``all``, ``region:<id>`` or ``segment:consumer|smb|enterprise``), ``?strength=``
(comma-separated), ``?kpi=`` (links where it is driver or target) and ``?evidence=true``.
"""

from __future__ import annotations

import re

import flask

from dashboard.api import params
from dashboard.api.encode import jsonable
from dashboard.context import current_context
from dashboard.guard.rules import access
from dashboard.linkage import read
from dashboard.linkage.estimate import STRENGTHS

bp = flask.Blueprint("linkage", __name__)

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


@bp.get("/linkage")
@access("read")
def linkage() -> tuple[flask.Response, int]:
    args = flask.request.args
    ctx = current_context()
    scope = params.text(args, "scope") or "all"
    if not _SCOPE.match(scope):
        raise params.BadParameter("scope", "all, region:<id> or segment:consumer|smb|enterprise", scope)
    strengths = params.many_of(args, "strength", STRENGTHS)
    kpi = params.text(args, "kpi")
    if kpi is not None and kpi not in ctx.catalogue.names:
        raise params.BadParameter("kpi", "a KPI of the catalogue", kpi)
    evidence = params.flag(args, "evidence")
    with ctx.store.connect() as conn:
        df = read.links(conn, scope, strengths=strengths, kpi=kpi, evidence=evidence)
    links = []
    for rec in df.to_dict("records"):
        item = {f: jsonable(rec.get(f)) for f in FIELDS}
        item["declared"] = bool(rec["declared"])
        if evidence:
            item["evidence"] = rec.get("evidence")
        links.append(item)
    computed = max((item["computed_at"] for item in links if item["computed_at"]), default=None)
    return flask.jsonify({"scope": scope, "computed_at": computed, "count": len(links), "links": links}), 200
