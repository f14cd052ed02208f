"""Value, urgency and priority of incidents: pure functions of small frames, every rule from the catalogue.

Inputs are the affected cells of each incident with their degraded share, the value aggregates of
those cells (``cell_value``), the tracked accounts on them (``cell_account_value`` joined with the
account's contract) and the incidents themselves. Nothing here reads subscribers one by one, so the
cost follows the affected cells. See the ``scoring`` section of kpi_definitions.yaml for the rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from connectors.canonical import SEGMENTS
from dashboard.incidents import measure
from dashboard.incidents.measure import ImpactRows
from dashboard.kpis import Scoring, segment_codes

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


def _positions(values: Any) -> tuple[list[Any], dict[Any, int]]:
    ids = sorted(set(values))
    return ids, {v: i for i, v in enumerate(ids)}


def _impact_rows(cells: pd.DataFrame, inc_pos: dict[Any, int], cell_pos: dict[Any, int]) -> ImpactRows:
    cells = cells.sort_values(["incident_id", "cell_id"], kind="stable")
    return ImpactRows(
        inc=np.fromiter((inc_pos[v] for v in cells["incident_id"]), dtype=np.int64, count=len(cells)),
        cell=np.fromiter((cell_pos[v] for v in cells["cell_id"]), dtype=np.int64, count=len(cells)),
        share=cells["degraded_share"].to_numpy(dtype=float),
    )


def incident_metrics(cells: pd.DataFrame, values: pd.DataFrame, scoring: Scoring) -> pd.DataFrame:
    """Per incident: affected lines by segment, value, revenue per hour, churn risk and sentiment.

    ``cells``: incident_id, cell_id, degraded_share. ``values``: rows of ``cell_value``.
    A line counts as affected by its traffic share on affected cells (share > 0); its value and
    revenue at risk are further weighted by how degraded the cell is (:func:`measure.metrics`).
    """
    hit = cells[cells["degraded_share"] > 0]
    if hit.empty:
        return pd.DataFrame(columns=_METRIC_COLS).rename_axis("incident_id")
    inc_ids, inc_pos = _positions(cells["incident_id"])
    cell_ids, cell_pos = _positions([*cells["cell_id"], *values["cell_id"]])
    rows = measure.rows_from_frame(
        values.assign(segment=segment_codes(values["segment"])),
        np.fromiter((cell_pos[v] for v in values["cell_id"]), dtype=np.int64, count=len(values)),
        len(cell_ids),
        VALUE_DTYPES,
        ["segment", "vip"],
    )
    out = pd.DataFrame(
        measure.metrics(len(inc_ids), _impact_rows(cells, inc_pos, cell_pos), rows, scoring),
        index=pd.Index(inc_ids, name="incident_id", dtype=object),
    )
    return out.loc[sorted(set(hit["incident_id"]))][_METRIC_COLS]


VALUE_DTYPES: dict[str, Any] = {"segment": np.int8, "vip": bool} | {f: float for f in measure.VALUE_FIELDS}
ACCOUNT_DTYPES: dict[str, Any] = {"account": np.int64, "lines": float, "arpu": float, "services": np.int64}


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
    """:func:`account_clocks` without the clock read at a time (``minutes_to_breach``, ``breached``)."""
    if cells.empty or account_cells.empty:
        return pd.DataFrame(columns=_CLOCK_COLS)
    inc_ids, inc_pos = _positions(cells["incident_id"])
    cell_ids, cell_pos = _positions([*cells["cell_id"], *account_cells["cell_id"]])
    acct_ids, acct_pos = _positions(account_cells["account_id"])
    acc = measure.accounts_from_frame(accounts, acct_ids)
    rows = measure.rows_from_frame(
        account_cells.assign(account=[acct_pos[v] for v in account_cells["account_id"]]),
        np.fromiter(
            (cell_pos[v] for v in account_cells["cell_id"]), dtype=np.int64, count=len(account_cells)
        ),
        len(cell_ids),
        ACCOUNT_DTYPES,
        ["account"],
    )
    opened = pd.to_datetime(pd.Series([opened_at.get(i) for i in inc_ids], dtype=object)).to_numpy(
        dtype="datetime64[ns]"
    )
    c = measure.clocks(_impact_rows(cells, inc_pos, cell_pos), rows, acc, opened, scoring)
    segment_names = np.array(SEGMENTS, dtype=object)
    return pd.DataFrame(
        {
            "incident_id": np.asarray(inc_ids, dtype=object)[c.inc],
            "account_id": acc.ids[c.acct],
            "name": acc.names[c.acct],
            "segment": segment_names[acc.segment[c.acct]],
            "vip": acc.vip[c.acct],
            "lines": c.lines,
            "services": c.services.astype(np.int64),
            "arpu": c.arpu,
            "degraded_share": c.degraded_share,
            "restore_minutes": c.restore_minutes,
            "deadline": c.deadline,
            "running": c.running,
            "breached": False,
            "minutes_to_breach": np.nan,
            "penalty_per_hour": c.penalty_per_hour,
        },
        columns=_CLOCK_COLS,
    )


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
        what = "anomaly" if row.get("kind") == "detected" else "alarm"
        phrases.append(f"{row['severity']} {what}, no customers measured as affected")
    if row.get("kind") == "detected":
        # Opened by KPI anomalies alone: say so first, with what is wrong and for how long.
        minutes = row.get("minutes_open")
        lasted = (
            f" for {fmt_minutes(minutes)}" if isinstance(minutes, float | int) and minutes == minutes else ""
        )
        return f"#{rank}: no alarm; {row.get('title')}{lasted}; " + ", ".join(phrases)
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
    """Per incident, what its SLA clocks say apart from the time (see :class:`measure.ClockTotals`)."""

    # index incident_id; sla_accounts, penalty_per_hour, sla_deadline, sla_account_id, accounts,
    # enterprise_accounts
    per_incident: pd.DataFrame
    deadlines: pd.Series  # the running clocks' deadlines, indexed by incident_id

    @staticmethod
    def of(inc_ids: np.ndarray, totals: measure.ClockTotals, account_ids: np.ndarray) -> ClockSummary:
        """From the totals of the incidents at the positions of ``inc_ids``."""
        index = pd.Index(inc_ids, name="incident_id", dtype=object)
        lead = totals.sla_account
        per = pd.DataFrame(
            {
                "sla_accounts": totals.sla_accounts,
                "penalty_per_hour": totals.penalty_per_hour,
                "sla_deadline": totals.sla_deadline,
                "sla_account_id": np.where(lead >= 0, account_ids[np.maximum(lead, 0)], None)
                if len(account_ids)
                else np.full(len(index), None, dtype=object),
                "accounts": totals.accounts,
                "enterprise_accounts": totals.enterprise_accounts,
            },
            index=index,
        )
        deadlines = pd.Series(
            totals.running_deadline,
            index=pd.Index(np.asarray(inc_ids, dtype=object)[totals.running_inc], name="incident_id"),
            dtype="datetime64[ns]",
        )
        return ClockSummary(per, deadlines)


def rank_incidents(
    incidents: pd.DataFrame,
    metrics: pd.DataFrame,
    summary: ClockSummary,
    scoring: Scoring,
    *,
    now: datetime,
    currency: str,
) -> pd.DataFrame:
    """Score, rank and explain incidents.

    ``incidents``: id, severity, state, opened_at, resolved_at, title, region_id, owner (and kind:
    alarm or detected, when known);
    ``metrics``: from :func:`incident_metrics` (or :func:`measure.metrics`); ``summary``: their SLA
    clocks (:meth:`ClockSummary.of`). Returns one row per incident with the ``incident_queue`` columns;
    active incidents ranked 1..n by score, then severity, then the earliest opened, then id; resolved
    ones unranked with score 0.
    """
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
    q["minutes_open"] = (pd.Timestamp(now) - pd.to_datetime(q["opened_at"])).dt.total_seconds() / 60.0
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
    return q.drop(columns=["_sev", "_active", "_pos", "minutes_open"]).reset_index(drop=True)


_REASON_KEYS = (
    "resolved_at",
    "kind",
    "title",
    "minutes_open",
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
