"""Value, urgency and priority of incidents: pure functions of small frames, every rule from the catalogue.

Inputs are the affected cells of each incident with their degraded share, the value aggregates of
those cells (``cell_value``), the tracked accounts on them (``cell_account_value`` joined with the
account's contract) and the incidents themselves. Nothing here reads subscribers one by one, so the
cost follows the affected cells. See the ``scoring`` section of kpi_definitions.yaml for the rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from dashboard.kpis import Scoring

FACTORS = ("severity", "subscriber_value", "revenue_at_risk", "sla_urgency", "sentiment", "churn_risk")
PHRASE_ORDER = ("subscriber_value", "revenue_at_risk", "sla_urgency", "sentiment", "churn_risk", "severity")
SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2, "warning": 3, "indeterminate": 4, "cleared": 5}
ACTIVE = ("open", "acknowledged")

_METRIC_COLS = [
    "cells",
    "lines",
    "consumer_lines",
    "smb_lines",
    "enterprise_lines",
    "vip_lines",
    "value",
    "service_revenue_per_hour",
    "churn_revenue_per_hour",
    "churn_risk",
    "sentiment",
    "negative_tickets",
]


def incident_metrics(cells: pd.DataFrame, values: pd.DataFrame, scoring: Scoring) -> pd.DataFrame:
    """Per incident: affected lines by segment, value, revenue per hour, churn risk and sentiment.

    ``cells``: incident_id, cell_id, degraded_share. ``values``: rows of ``cell_value``.
    A line counts as affected by its traffic share on affected cells (share > 0); its value and
    revenue at risk are further weighted by how degraded the cell is.
    """
    cells = cells[cells["degraded_share"] > 0]
    if cells.empty:
        return pd.DataFrame(columns=_METRIC_COLS).rename_axis("incident_id")
    m = cells.merge(values, on="cell_id", how="left")
    for col in (
        "lines",
        "arpu",
        "risk",
        "risk_arpu",
        "risk_lines",
        "sentiment",
        "sentiment_lines",
        "negative_tickets",
    ):
        m[col] = m[col].fillna(0.0).astype(float) if col in m else 0.0
    m["segment"] = m["segment"].fillna("consumer")
    m["vip"] = m["vip"].fillna(False).astype(bool)
    d = m["degraded_share"].astype(float)
    seg_mult = m["segment"].map(scoring.segment_multipliers).fillna(1.0)
    vip_mult = np.where(m["vip"], scoring.vip_multiplier, 1.0)
    r = scoring.revenue_at_risk
    m["value"] = d * m["arpu"] * seg_mult * vip_mult
    m["service_revenue_per_hour"] = d * m["arpu"] / r.hours_per_month
    m["churn_revenue_per_hour"] = (
        d
        * r.churn_hazard_per_outage_hour
        * r.lifetime_months
        * (m["arpu"] + r.churn_risk_amplifier * m["risk_arpu"])
    )
    for seg in ("consumer", "smb", "enterprise"):
        m[f"{seg}_lines"] = np.where(m["segment"] == seg, m["lines"], 0.0)
    m["vip_lines"] = np.where(m["vip"], m["lines"], 0.0)
    g = m.groupby("incident_id")
    out = g[
        [
            "lines",
            "consumer_lines",
            "smb_lines",
            "enterprise_lines",
            "vip_lines",
            "value",
            "service_revenue_per_hour",
            "churn_revenue_per_hour",
            "risk",
            "risk_lines",
            "sentiment",
            "sentiment_lines",
            "negative_tickets",
        ]
    ].sum()
    out["cells"] = g["cell_id"].nunique()
    out["churn_risk"] = (out["risk"] / out["risk_lines"]).where(out["risk_lines"] > 0)
    out["sentiment"] = (out["sentiment"] / out["sentiment_lines"]).where(out["sentiment_lines"] > 0)
    return out[_METRIC_COLS]


_CLOCK_COLS = [
    "incident_id",
    "account_id",
    "name",
    "segment",
    "vip",
    "lines",
    "services",
    "arpu",
    "degraded_share",
    "restore_minutes",
    "deadline",
    "running",
    "breached",
    "minutes_to_breach",
    "penalty_per_hour",
]


def account_clocks(
    cells: pd.DataFrame,
    account_cells: pd.DataFrame,
    accounts: pd.DataFrame,
    opened_at: Mapping[str, datetime],
    scoring: Scoring,
    *,
    now: datetime,
) -> pd.DataFrame:
    """Per (incident, tracked account): affected lines and services, degraded share and SLA clock.

    ``account_cells``: rows of ``cell_account_value``; ``accounts``: id, name, segment, vip,
    sla_restore_minutes, penalty_per_hour. A clock runs when the account has a restore target and
    at least ``sla.min_degraded_share`` of its affected lines and services is degraded.
    """
    return clock_times(clock_inputs(cells, account_cells, accounts, opened_at, scoring), now=now)


def clock_inputs(
    cells: pd.DataFrame,
    account_cells: pd.DataFrame,
    accounts: pd.DataFrame,
    opened_at: Mapping[str, datetime],
    scoring: Scoring,
) -> pd.DataFrame:
    """:func:`account_clocks` without the clock read at a time (``minutes_to_breach``, ``breached``).

    Each incident's rows depend on its own cells only, so the frame can be kept and updated per
    incident; :func:`clock_times` reads the clocks at any time.
    """
    if cells.empty or account_cells.empty:
        return pd.DataFrame(columns=_CLOCK_COLS)
    m = cells.merge(account_cells, on="cell_id")
    if m.empty:
        return pd.DataFrame(columns=_CLOCK_COLS)
    m["units"] = m["lines"].astype(float) + m["services"].astype(float)
    m["degraded_units"] = m["units"] * m["degraded_share"].astype(float)
    m["affected_lines"] = np.where(m["degraded_share"] > 0, m["lines"], 0.0)
    m["affected_services"] = np.where(m["degraded_share"] > 0, m["services"], 0)
    m["affected_arpu"] = m["arpu"] * m["degraded_share"]
    # One grouped sum over the five columns (the same per-column sums as five named aggregations).
    sums = ["units", "degraded_units", "affected_lines", "affected_services", "affected_arpu"]
    g = (
        m[["incident_id", "account_id", *sums]]
        .groupby(["incident_id", "account_id"], as_index=False)
        .sum()
        .rename(columns={"affected_lines": "lines", "affected_services": "services", "affected_arpu": "arpu"})
    )
    g = g[(g["lines"] > 0) | (g["services"] > 0)]
    acc = accounts.rename(columns={"id": "account_id"})
    g = g.merge(acc, on="account_id", how="inner")
    g["degraded_share"] = (g["degraded_units"] / g["units"].where(g["units"] > 0)).fillna(0.0)
    default = g["segment"].map(scoring.sla.default_restore_minutes)
    g["restore_minutes"] = g["sla_restore_minutes"].astype(float).fillna(default.astype(float))
    g["opened_at"] = pd.to_datetime(g["incident_id"].map(opened_at))
    g["deadline"] = g["opened_at"] + pd.to_timedelta(g["restore_minutes"], unit="m")
    g["running"] = g["restore_minutes"].notna() & (g["degraded_share"] >= scoring.sla.min_degraded_share)
    g["minutes_to_breach"] = np.nan
    g["breached"] = False
    g["penalty_per_hour"] = np.where(g["running"], g["penalty_per_hour"].astype(float).fillna(0.0), 0.0)
    g["vip"] = g["vip"].fillna(False).astype(bool)
    return g[_CLOCK_COLS].reset_index(drop=True)


def clock_times(clocks: pd.DataFrame, *, now: datetime) -> pd.DataFrame:
    """The clocks of :func:`clock_inputs` read at ``now``: minutes to breach, breached (a new frame)."""
    if clocks.empty:
        return pd.DataFrame(columns=_CLOCK_COLS)
    g = clocks.copy()
    g["minutes_to_breach"] = ((g["deadline"] - pd.Timestamp(now)).dt.total_seconds() / 60.0).where(
        g["running"]
    )
    g["breached"] = g["running"] & (g["minutes_to_breach"] <= 0)
    return g


def _fmt_count(x: float) -> str:
    return f"{round(x):,}"


def fmt_money_short(x: float, currency: str) -> str:
    """EUR 41k, EUR 1.2M, EUR 950."""
    if x >= 999_500:
        return f"{currency} {x / 1e6:.1f}M"
    if x >= 9_950:
        return f"{currency} {x / 1e3:.0f}k"
    if x >= 1_000:
        return f"{currency} {x / 1e3:.1f}k"
    return f"{currency} {x:.0f}"


def fmt_minutes(minutes: float) -> str:
    m = abs(minutes)
    if m < 90:
        return f"{math.ceil(m) if minutes > 0 else math.floor(m)} min"
    return f"{m / 60:.1f} h"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def reason(rank: int | None, row: Mapping[str, Any], breakdown: Mapping[str, Any], currency: str) -> str:
    """One sentence on why the incident ranks where it does: its three strongest factors, in words."""
    factors = breakdown["factors"]
    return _reason(rank, row, {name: factors[name]["points"] for name in FACTORS}, currency)


def _reason(rank: int | None, row: Mapping[str, Any], points: Mapping[str, float], currency: str) -> str:
    """:func:`reason` from each factor's points."""
    if rank is None:
        when = row.get("resolved_at")
        stamp = f" at {when:%H:%M} UTC" if isinstance(when, datetime) else ""
        return f"Resolved{stamp}; kept in the queue until it closes."
    strongest = sorted(
        (name for name in FACTORS if points[name] > 0),
        key=lambda n: (-points[n], FACTORS.index(n)),
    )[:3]
    phrases: list[str] = []
    for name in PHRASE_ORDER:  # who is hit, what it costs, how urgent, then the rest
        if name not in strongest:
            continue
        if name == "subscriber_value":
            ent, vip, lines = row["enterprise_lines"], row["vip_lines"], row["lines"]
            if round(ent) >= 1:
                n_acc = int(row.get("enterprise_accounts", 0))
                text = f"{_fmt_count(ent)} enterprise lines"
                text += f" on {_plural(n_acc, 'account')}" if n_acc else ""
                if round(vip) >= 1:
                    text += f" and {_fmt_count(vip)} VIP"
            elif round(vip) >= 1:
                text = f"{_fmt_count(lines)} lines incl. {_fmt_count(vip)} VIP"
            else:
                text = f"{_fmt_count(lines)} lines affected"
            phrases.append(text)
        elif name == "revenue_at_risk":
            phrases.append(f"{fmt_money_short(row['revenue_at_risk_per_hour'], currency)}/h at risk")
        elif name == "sla_urgency":
            mins = row["minutes_to_breach"]
            n = int(row["sla_accounts"])
            on = f" on {_plural(n, 'account')}" if n > 1 else ""
            if mins <= 0:
                phrases.append(f"SLA breached {fmt_minutes(mins)} ago{on}")
            else:
                phrases.append(f"SLA breach in {fmt_minutes(mins)}{on}")
        elif name == "severity":
            phrases.append(f"{row['severity']} severity")
        elif name == "sentiment":
            phrases.append(f"customers' recent tickets negative ({row['sentiment']:+.2f})")
        elif name == "churn_risk":
            phrases.append(f"churn risk {row['churn_risk'] * 100:.0f}%")
    if not phrases:
        phrases.append(f"{row['severity']} alarm, no customers measured as affected")
    return f"#{rank}: " + ", ".join(phrases)


def factor_frame(q: pd.DataFrame, scoring: Scoring) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per incident, each factor's raw input (NaN where it has none) and its 0..1 value."""
    value = q["value"].astype(float)
    rev = q["revenue_at_risk_per_hour"].astype(float)
    mins = q["minutes_to_breach"].astype(float)
    sentiment = q["sentiment"].astype(float)
    risk = q["churn_risk"].astype(float)
    horizon_min = scoring.sla.urgency_horizon_s / 60.0
    raw = pd.DataFrame(
        {
            "severity": np.nan,
            "subscriber_value": value,
            "revenue_at_risk": rev,
            "sla_urgency": mins,
            "sentiment": sentiment,
            "churn_risk": risk,
        },
        index=q.index,
    )
    norm = pd.DataFrame(
        {
            "severity": q["severity"].map(scoring.severity_points).astype(float).fillna(0.0),
            "subscriber_value": value / (value + scoring.value_half_point),
            "revenue_at_risk": rev / (rev + scoring.revenue_half_point),
            "sla_urgency": (1.0 - mins / horizon_min).clip(0.0, 1.0).fillna(0.0),
            "sentiment": (sentiment / scoring.sentiment_floor).clip(0.0, 1.0).fillna(0.0),
            "churn_risk": (risk / scoring.churn_risk_ceiling).clip(0.0, 1.0).fillna(0.0),
        },
        index=q.index,
    )
    return raw, norm


@dataclass(frozen=True)
class ClockSummary:
    """Per incident, what its SLA clocks say apart from the time: see :func:`summarize_clocks`."""

    # index incident_id; sla_accounts, penalty_per_hour, sla_deadline, sla_account_id, accounts,
    # enterprise_accounts (only incidents with clocks)
    per_incident: pd.DataFrame
    deadlines: pd.Series  # the running clocks' deadlines, indexed by incident_id

    def without(self, ids: Collection[str]) -> ClockSummary:
        keep = ~self.per_incident.index.isin(list(ids))
        return ClockSummary(self.per_incident[keep], self.deadlines[~self.deadlines.index.isin(list(ids))])

    @staticmethod
    def join(parts: list[ClockSummary]) -> ClockSummary:
        per = [p.per_incident for p in parts if not p.per_incident.empty]
        dl = [p.deadlines for p in parts if not p.deadlines.empty]
        return ClockSummary(
            pd.concat(per) if len(per) > 1 else (per[0] if per else parts[0].per_incident),
            pd.concat(dl) if len(dl) > 1 else (dl[0] if dl else parts[0].deadlines),
        )


_SUMMARY_COLS = [
    "sla_accounts",
    "penalty_per_hour",
    "sla_deadline",
    "sla_account_id",
    "accounts",
    "enterprise_accounts",
]


def summarize_clocks(clocks: pd.DataFrame) -> ClockSummary:
    """Per incident: accounts with a running clock, their penalties, the earliest deadline and its
    account, business and enterprise accounts; and every running clock's deadline (for the count of
    breached ones at a given time). ``clocks``: from :func:`clock_inputs` or :func:`account_clocks`.
    """
    empty = pd.DataFrame(columns=_SUMMARY_COLS, index=pd.Index([], name="incident_id", dtype=object))
    no_deadlines = pd.Series([], index=pd.Index([], name="incident_id", dtype=object), dtype="datetime64[ns]")
    if clocks.empty:
        return ClockSummary(empty, no_deadlines)
    running = clocks[clocks["running"].astype(bool)]
    parts = []
    deadlines = no_deadlines
    if not running.empty:
        first = (
            running[["incident_id", "deadline", "account_id"]]
            .sort_values(["deadline", "account_id"])
            .groupby("incident_id")
            .first()
        )
        by_incident = running.groupby("incident_id")
        per = pd.concat(
            [
                by_incident["account_id"].nunique().rename("sla_accounts"),
                by_incident["penalty_per_hour"].sum(),
            ],
            axis=1,
        )
        parts.append(
            per.join(
                first[["deadline", "account_id"]].rename(
                    columns={"deadline": "sla_deadline", "account_id": "sla_account_id"}
                )
            )
        )
        deadlines = pd.Series(
            pd.to_datetime(running["deadline"]).to_numpy(), index=running["incident_id"].to_numpy()
        )
        deadlines.index.name = "incident_id"
    biz = clocks[clocks["segment"] != "consumer"]
    parts.append(biz.groupby("incident_id")["account_id"].nunique().rename("accounts").to_frame())
    ent = clocks[clocks["segment"] == "enterprise"]
    parts.append(ent.groupby("incident_id")["account_id"].nunique().rename("enterprise_accounts").to_frame())
    per_incident = pd.concat(parts, axis=1)
    for col in _SUMMARY_COLS:
        if col not in per_incident:
            per_incident[col] = np.nan
    per_incident.index.name = "incident_id"
    return ClockSummary(per_incident[_SUMMARY_COLS], deadlines)


def rank_incidents(
    incidents: pd.DataFrame,
    metrics: pd.DataFrame,
    clocks: pd.DataFrame | ClockSummary,
    scoring: Scoring,
    *,
    now: datetime,
    currency: str,
) -> pd.DataFrame:
    """Score, rank and explain incidents.

    ``incidents``: id, severity, state, opened_at, resolved_at, title, region_id, owner;
    ``metrics``: from :func:`incident_metrics`; ``clocks``: from :func:`account_clocks` (or their
    :func:`summarize_clocks`). Returns one row per incident with the ``incident_queue`` columns;
    active incidents ranked 1..n by score, then severity, then the earliest opened, then id; resolved
    ones unranked with score 0.
    """
    summary = clocks if isinstance(clocks, ClockSummary) else summarize_clocks(clocks)
    inc = incidents.set_index("id")
    met = metrics.reindex(inc.index)
    for col in _METRIC_COLS:
        if col not in met:
            met[col] = np.nan
    zero_cols = [c for c in _METRIC_COLS if c not in ("churn_risk", "sentiment")]
    met[zero_cols] = met[zero_cols].fillna(0.0)
    q = inc.join(met).join(summary.per_incident)
    dl = summary.deadlines
    breached = dl.index[(dl <= pd.Timestamp(now)).to_numpy()].value_counts()
    q["sla_breached"] = breached.reindex(q.index).to_numpy()
    for col in ("sla_accounts", "sla_breached", "accounts", "enterprise_accounts"):
        q[col] = q[col].fillna(0).astype(int)
    q["penalty_per_hour"] = q["penalty_per_hour"].fillna(0.0).astype(float)
    q["sla_deadline"] = pd.to_datetime(q["sla_deadline"])
    q["minutes_to_breach"] = (q["sla_deadline"] - pd.Timestamp(now)).dt.total_seconds() / 60.0
    q["revenue_at_risk_per_hour"] = (
        q["service_revenue_per_hour"] + q["churn_revenue_per_hour"] + q["penalty_per_hour"]
    )
    active = q["state"].isin(ACTIVE).to_numpy()
    total_w = scoring.weights.total()
    weights = scoring.weights.model_dump()
    raw, norm = factor_frame(q, scoring)
    points = {
        name: np.where(active, np.round(100.0 * weights[name] * norm[name].to_numpy() / total_w, 4), 0.0)
        for name in FACTORS
    }
    scores = np.round(sum(points[name] for name in FACTORS), 4)
    q["score"] = scores
    q["_sev"] = q["severity"].map(SEVERITY_ORDER).fillna(9)
    q["_pos"] = np.arange(len(q))
    q = q.reset_index().rename(columns={"index": "id"})
    q["_active"] = q["state"].isin(ACTIVE)
    q = q.sort_values(
        ["_active", "score", "_sev", "opened_at", "id"], ascending=[False, False, True, True, True]
    )
    n_active = int(q["_active"].sum())
    q["rank"] = [i + 1 if i < n_active else None for i in range(len(q))]
    # Breakdowns, reasons and their inputs from plain lists (in the sorted order), each JSON document
    # assembled from its values encoded column by column, exactly as json.dumps would write it.
    pos = q["_pos"].to_numpy()
    scores_l = q["score"].tolist()
    ranks = [None if pd.isna(rk) else int(rk) for rk in q["rank"].tolist()]
    points_l = {name: points[name][pos].tolist() for name in FACTORS}
    # One template for the document, its variable parts encoded a column at a time.
    parts: list[str] = []
    cols: list[list[str]] = []

    def lit(text: str) -> None:
        parts.append(text.replace("{", "{{").replace("}", "}}"))

    def var(col: list[str]) -> None:
        parts.append("{}")
        cols.append(col)

    lit('{"score": ')
    var(_jfloats(scores_l) if q["score"].dtype.kind == "f" else [_jfloat(float(v)) for v in scores_l])
    lit(', "factors": {')
    for k, name in enumerate(FACTORS):
        lit((", " if k else "") + json.dumps(name) + ': {"input": ')
        var(_jfloats(raw[name].to_numpy(dtype=float)[pos].tolist(), nan="null"))
        lit(', "factor": ')
        var(_jfloats(list(map(round, norm[name].to_numpy(dtype=float)[pos].tolist(), repeat(6)))))
        lit(', "weight": ' + _jvalue(weights[name]) + ', "points": ')
        var(_jfloats(points_l[name]))
        lit("}")
    lit('}, "inputs": {')
    for k, key in enumerate(_INPUT_KEYS):
        lit((", " if k else "") + json.dumps(key) + ": ")
        var(_input_values(key, q[key] if key in q else pd.Series([None] * len(q), dtype=object)))
    lit("}}")
    template = "".join(parts)
    details = [template.format(*row) for row in zip(*cols, strict=True)]
    values = [q[k].tolist() if k in q else [None] * len(q) for k in _REASON_KEYS]
    reasons = [
        _reason(
            rk, dict(zip(_REASON_KEYS, vals, strict=True)), dict(zip(FACTORS, pts, strict=True)), currency
        )
        for rk, vals, pts in zip(
            ranks, zip(*values, strict=True), zip(*(points_l[n] for n in FACTORS), strict=True), strict=True
        )
    ]
    q["reason"] = reasons
    q["breakdown"] = details
    return q.drop(columns=["_sev", "_active", "_pos"]).reset_index(drop=True)


_REASON_KEYS = (
    "resolved_at",
    "enterprise_lines",
    "vip_lines",
    "lines",
    "enterprise_accounts",
    "revenue_at_risk_per_hour",
    "minutes_to_breach",
    "sla_accounts",
    "severity",
    "sentiment",
    "churn_risk",
)
_INPUT_KEYS = (
    "lines",
    "enterprise_lines",
    "vip_lines",
    "enterprise_accounts",
    "value",
    "service_revenue_per_hour",
    "churn_revenue_per_hour",
    "penalty_per_hour",
    "revenue_at_risk_per_hour",
    "sla_accounts",
    "sla_breached",
    "minutes_to_breach",
    "sentiment",
    "churn_risk",
)


def _inputs(row: Mapping[str, Any], keys: tuple[str, ...] = _INPUT_KEYS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        v = row.get(k)
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif isinstance(v, np.integer | np.floating):
            v = v.item()
        out[k] = round(v, 4) if isinstance(v, float) else v
    return out


def _jfloat(x: float) -> str:
    """A float as json.dumps writes it (repr; NaN and infinities by name)."""
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "Infinity" if x > 0 else "-Infinity"
    return float.__repr__(x)


def _jvalue(v: Any) -> str:
    """Any value as json.dumps(v, default=str) writes it."""
    if type(v) is float:
        return _jfloat(v)
    return json.dumps(v, default=str)


def _jfloats(values: list[float], nan: str = "NaN") -> list[str]:
    """Python floats as json.dumps writes them (``nan``: what NaN becomes, ``null`` for a None)."""
    out = list(map(float.__repr__, values))
    for i in np.flatnonzero(~np.isfinite(np.asarray(values, dtype=float))).tolist():
        v = values[i]
        out[i] = nan if v != v else _jfloat(v)
    return out


def _input_values(key: str, values: pd.Series) -> list[str]:
    """One input of the breakdown per row, as :func:`_inputs` and json.dumps give it."""
    plain = values.tolist()
    if values.dtype.kind == "f":
        return _jfloats(list(map(round, plain, repeat(4))), nan="null")
    if values.dtype.kind in "iu":
        return list(map(int.__repr__, plain))
    return [json.dumps(_inputs({key: v}, (key,))[key], default=str) for v in plain]
