"""Customer features as pure functions of frames: rolling sentiment, experienced KPIs, incidents, tickets.

Everything takes frames and a cutoff time and returns frames; nothing reads the store. Only facts
from before the cutoff are used, so the same code builds training snapshots from history (label =
churned in the window after the cutoff) and the features that are scored now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

NEGATIVE_TICKET = -0.3
"""A ticket whose sentiment is below this counts as a negative (complaint) ticket."""


def _ts(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce").astype("datetime64[us]")


def rolling_sentiment(
    tickets: pd.DataFrame, *, by: str, now: datetime, window_days: float = 30.0, half_life_days: float = 7.0
) -> pd.DataFrame:
    """Per ``by`` (subscriber_id or account_id): time-weighted mean ticket sentiment and ticket count.

    Tickets created in ``[now - window_days, now)`` count; a ticket's weight halves every
    ``half_life_days`` of age, so last week's angry call outweighs a polite one from last month.
    Tickets without a score count in ``tickets_30d`` but not in the mean. Returns columns
    ``by, sentiment_30d, tickets_30d, negative_tickets_30d``.
    """
    cols = [by, "sentiment_30d", "tickets_30d", "negative_tickets_30d"]
    if tickets.empty:
        return pd.DataFrame(columns=cols)
    created = _ts(tickets["created_at"])
    now_ts = pd.Timestamp(now)
    age = (now_ts - created) / pd.Timedelta(days=1)
    keep = (age >= 0) & (age < window_days) & tickets[by].notna()
    t = pd.DataFrame(
        {
            by: tickets.loc[keep, by].to_numpy(),
            "age": age[keep].to_numpy(),
            "s": pd.to_numeric(tickets.loc[keep, "sentiment"], errors="coerce").to_numpy(),
        }
    )
    if t.empty:
        return pd.DataFrame(columns=cols)
    w = np.exp2(-t["age"].to_numpy() / half_life_days)
    scored = ~np.isnan(t["s"].to_numpy())
    t["w"] = np.where(scored, w, 0.0)
    t["ws"] = np.where(scored, w * np.nan_to_num(t["s"].to_numpy()), 0.0)
    t["neg"] = t["s"] < NEGATIVE_TICKET
    g = t.groupby(by, sort=False).agg(w=("w", "sum"), ws=("ws", "sum"), n=("age", "size"), neg=("neg", "sum"))
    out = pd.DataFrame(
        {
            by: g.index.to_numpy(),
            "sentiment_30d": np.where(g["w"] > 0, g["ws"] / g["w"].where(g["w"] > 0, 1.0), np.nan).round(4),
            "tickets_30d": g["n"].to_numpy(dtype=np.int64),
            "negative_tickets_30d": g["neg"].to_numpy(dtype=np.int64),
        }
    )
    return out.reset_index(drop=True)


def incident_cells(incidents: pd.DataFrame, edges: pd.DataFrame, *, max_depth: int = 8) -> pd.DataFrame:
    """Which cells each incident reaches: from its root resource down the topology edges.

    ``incidents``: id, root_resource_id; ``edges``: parent_type, parent_id, child_type, child_id.
    Returns ``incident_id, cell_id`` (each pair once).
    """
    empty = pd.DataFrame({"incident_id": pd.Series(dtype=object), "cell_id": pd.Series(dtype=object)})
    if incidents.empty or edges.empty:
        return empty
    frontier = pd.DataFrame(
        {"incident_id": incidents["id"].to_numpy(), "node": incidents["root_resource_id"].to_numpy()}
    ).dropna()
    e = edges.loc[edges["parent_type"].isin(["resource", "site"]), ["parent_id", "child_type", "child_id"]]
    found: list[pd.DataFrame] = []
    seen = frontier.copy()
    for _ in range(max_depth):
        nxt = frontier.merge(e, left_on="node", right_on="parent_id")
        if nxt.empty:
            break
        cells = nxt.loc[nxt["child_type"] == "cell", ["incident_id", "child_id"]]
        found.append(cells.rename(columns={"child_id": "cell_id"}))
        res = nxt.loc[nxt["child_type"] == "resource", ["incident_id", "child_id"]].rename(
            columns={"child_id": "node"}
        )
        res = res.merge(seen, how="left", indicator=True)
        frontier = res.loc[res["_merge"] == "left_only", ["incident_id", "node"]].drop_duplicates()
        seen = pd.concat([seen, frontier], ignore_index=True)
    if not found:
        return empty
    return pd.concat(found, ignore_index=True).drop_duplicates().reset_index(drop=True)


def kpi_window(kpi_daily: pd.DataFrame, *, start: datetime, end: datetime) -> pd.DataFrame:
    """Per cell and KPI over ``[start, end)`` from daily aggregates: mean, max and min.

    ``kpi_daily``: cell_id, kpi, day, mean, max, min, n (what the store aggregates in SQL).
    """
    if kpi_daily.empty:
        return pd.DataFrame(columns=["cell_id", "kpi", "mean", "max", "min"])
    day = _ts(kpi_daily["day"])
    d = kpi_daily.loc[(day >= pd.Timestamp(start).floor("D")) & (day < pd.Timestamp(end))].copy()
    d["sum"] = d["mean"] * d["n"]
    g = d.groupby(["cell_id", "kpi"], sort=False).agg(
        sum=("sum", "sum"), n=("n", "sum"), max=("max", "max"), min=("min", "min")
    )
    g["mean"] = g["sum"] / g["n"]
    return g[["mean", "max", "min"]].reset_index()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(name)).strip("_").lower()


@dataclass
class History:
    """The frames customer features are built from (columns as in the canonical model).

    ``kpi_daily`` holds per-cell daily aggregates (cell_id, kpi, day, mean, max, min, n), and
    ``incident_cells`` the cells each incident reached (incident_id, cell_id).
    """

    subscribers: pd.DataFrame
    accounts: pd.DataFrame = field(default_factory=pd.DataFrame)
    subscriber_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    kpi_daily: pd.DataFrame = field(default_factory=pd.DataFrame)
    incidents: pd.DataFrame = field(default_factory=pd.DataFrame)
    incident_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    tickets: pd.DataFrame = field(default_factory=pd.DataFrame)
    churn_events: pd.DataFrame = field(default_factory=pd.DataFrame)

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last moment any time-stamped fact was seen."""
        stamps: list[pd.Series] = []
        for frame, col in (
            (self.kpi_daily, "day"),
            (self.tickets, "created_at"),
            (self.churn_events, "occurred_at"),
            (self.incidents, "opened_at"),
        ):
            if not frame.empty and col in frame.columns:
                stamps.append(_ts(frame[col]).dropna())
        if not stamps or all(s.empty for s in stamps):
            return None
        allts = pd.concat(stamps)
        end = allts.max()
        if not self.kpi_daily.empty:  # a day's aggregate covers the whole day
            end = max(end, _ts(self.kpi_daily["day"]).max() + pd.Timedelta(days=1))
        return allts.min(), end


def subscriber_features(
    h: History, *, cutoff: datetime, lookback_days: float = 28.0, subscriber_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per subscriber (index ``subscriber_id``) with the features known at ``cutoff``.

    tenure and ARPU, plan, the account's segment and VIP flag; per KPI the share-weighted mean, max
    and min their serving cells showed over the lookback; incidents that reached their cells
    (share-weighted count and hours); tickets, negative tickets, mean/min/rolling sentiment and days
    since the last ticket.
    """
    cut = pd.Timestamp(cutoff)
    start = cut - pd.Timedelta(days=lookback_days)
    recent_start = cut - pd.Timedelta(days=lookback_days / 4)
    subs = h.subscribers
    if subscriber_ids is not None:
        subs = subs.loc[subs["id"].isin(list(subscriber_ids))]
    subs = subs.drop_duplicates("id")
    f = pd.DataFrame(index=pd.Index(subs["id"].to_numpy(), name="subscriber_id"))
    activated = (
        _ts(subs["activated_at"]) if "activated_at" in subs.columns else pd.Series(pd.NaT, index=subs.index)
    )
    tenure = ((cut - activated) / pd.Timedelta(days=1)).to_numpy()
    f["tenure_days"] = np.where(tenure >= 0, tenure, np.nan)
    f["arpu"] = pd.to_numeric(subs["arpu"], errors="coerce").to_numpy() if "arpu" in subs.columns else np.nan
    f["plan"] = subs["plan"].to_numpy() if "plan" in subs.columns else None
    if not h.accounts.empty and "account_id" in subs.columns:
        acc = h.accounts.drop_duplicates("id").set_index("id")
        f["segment"] = acc["segment"].reindex(subs["account_id"].to_numpy()).to_numpy()
        f["vip"] = acc["vip"].reindex(subs["account_id"].to_numpy()).astype("float64").to_numpy()
    else:
        f["segment"] = None
        f["vip"] = np.nan

    sc = h.subscriber_cells
    if not sc.empty:
        sc = sc.loc[sc["subscriber_id"].isin(f.index), ["subscriber_id", "cell_id", "share"]]
        total = sc.groupby("subscriber_id")["share"].transform("sum")
        sc = sc.assign(w=np.where(total > 0, sc["share"] / total.where(total > 0, 1.0), 0.0))
    if not sc.empty and not h.kpi_daily.empty:
        kw = kpi_window(h.kpi_daily, start=start, end=cut)
        if not kw.empty:
            m = sc.merge(kw, on="cell_id")
            for stat in ("mean", "max", "min"):
                m[stat] = m[stat] * m["w"]
            # Re-normalise by the share actually covered by KPI data, so a missing cell is not a zero.
            g = m.groupby(["subscriber_id", "kpi"]).agg(
                mean=("mean", "sum"), max=("max", "sum"), min=("min", "sum"), w=("w", "sum")
            )
            for stat in ("mean", "max", "min"):
                g[stat] = g[stat] / g["w"]
            wide = g[["mean", "max", "min"]].unstack("kpi")
            wide.columns = [f"kpi_{_safe(k)}_{stat}" for stat, k in wide.columns]
            f = f.join(wide)
    if not sc.empty and not h.incidents.empty and not h.incident_cells.empty:
        inc = h.incidents[["id", "opened_at", "resolved_at"]].rename(columns={"id": "incident_id"})
        opened = _ts(inc["opened_at"])
        resolved = _ts(inc["resolved_at"]).fillna(cut).clip(upper=cut)
        inc = inc.assign(
            hours=((resolved - opened.clip(lower=start)) / pd.Timedelta(hours=1)).clip(lower=0),
            # Experience fades: the last quarter of the lookback separately, so the model can weigh it.
            recent=((resolved - opened.clip(lower=recent_start)) / pd.Timedelta(hours=1)).clip(lower=0),
        )
        inc = inc.loc[(opened < cut) & (resolved > start)]
        hit = h.incident_cells.merge(inc[["incident_id", "hours", "recent"]], on="incident_id").merge(
            sc, on="cell_id"
        )
        # An incident reaching two of a subscriber's cells counts once, with their summed share.
        per = hit.groupby(["subscriber_id", "incident_id"]).agg(
            w=("w", "sum"), hours=("hours", "first"), recent=("recent", "first")
        )
        per["w"] = per["w"].clip(upper=1.0)
        per["wh"] = per["w"] * per["hours"]
        per["wr"] = per["w"] * per["recent"]
        agg = per.groupby("subscriber_id").agg(
            incidents=("w", "sum"), incident_hours=("wh", "sum"), incident_hours_recent=("wr", "sum")
        )
        f = f.join(agg)
    for col in ("incidents", "incident_hours", "incident_hours_recent"):
        f[col] = f[col].fillna(0.0) if col in f.columns else 0.0

    t = h.tickets
    if not t.empty and "subscriber_id" in t.columns:
        created = _ts(t["created_at"])
        t = t.loc[(created >= start) & (created < cut) & t["subscriber_id"].isin(f.index)]
    if not t.empty and "subscriber_id" in t.columns:
        s = pd.to_numeric(t["sentiment"], errors="coerce")
        created = _ts(t["created_at"])
        tt = pd.DataFrame(
            {
                "subscriber_id": t["subscriber_id"].to_numpy(),
                "s": s.to_numpy(),
                "age": ((cut - created) / pd.Timedelta(days=1)).to_numpy(),
            }
        )
        g = tt.groupby("subscriber_id").agg(
            tickets=("age", "size"),
            sentiment_mean=("s", "mean"),
            sentiment_min=("s", "min"),
            days_since_ticket=("age", "min"),
        )
        neg = tt.assign(
            neg=tt["s"] < NEGATIVE_TICKET,
            recent=(tt["s"] < NEGATIVE_TICKET) & (tt["age"] < lookback_days / 4),
        ).groupby("subscriber_id")
        g["negative_tickets"] = neg["neg"].sum()
        g["negative_tickets_recent"] = neg["recent"].sum()
        roll = rolling_sentiment(t, by="subscriber_id", now=cut.to_pydatetime(), window_days=lookback_days)
        g = g.join(
            roll.set_index("subscriber_id")[["sentiment_30d"]].rename(
                columns={"sentiment_30d": "sentiment_rolling"}
            )
        )
        f = f.join(g)
    for col in ("tickets", "negative_tickets", "negative_tickets_recent"):
        f[col] = f[col].fillna(0.0) if col in f.columns else 0.0
    for col in ("sentiment_mean", "sentiment_min", "sentiment_rolling", "days_since_ticket"):
        if col not in f.columns:
            f[col] = np.nan
    return f


def eligible_at(h: History, cutoff: datetime) -> np.ndarray:
    """Subscriber ids that were customers at ``cutoff``: activated before it, not churned since."""
    subs = h.subscribers.drop_duplicates("id")
    cut = pd.Timestamp(cutoff)
    activated = (
        _ts(subs["activated_at"]) if "activated_at" in subs.columns else pd.Series(pd.NaT, index=subs.index)
    )
    ok = activated.isna() | (activated <= cut)
    if not h.churn_events.empty:
        ev = h.churn_events.assign(at=_ts(h.churn_events["occurred_at"]))
        last = ev.loc[ev["at"] < cut].groupby("subscriber_id")["at"].max()
        last_for = last.reindex(subs["id"].to_numpy()).to_numpy()
        gone = ~pd.isna(last_for) & (activated.isna().to_numpy() | (last_for >= activated.to_numpy()))
        ok &= ~gone
    return np.asarray(subs.loc[ok.to_numpy(), "id"].to_numpy())


def churned_between(h: History, start: datetime, end: datetime) -> set[str]:
    if h.churn_events.empty:
        return set()
    at = _ts(h.churn_events["occurred_at"])
    mask = (at >= pd.Timestamp(start)) & (at < pd.Timestamp(end))
    return set(h.churn_events.loc[mask, "subscriber_id"].astype(str))


def training_snapshot(
    h: History, *, cutoff: datetime, lookback_days: float, horizon_days: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of the customers at ``cutoff`` and whether each churned within ``horizon_days`` after."""
    ids = eligible_at(h, cutoff)
    x = subscriber_features(h, cutoff=cutoff, lookback_days=lookback_days, subscriber_ids=ids.tolist())
    churned = churned_between(h, cutoff, pd.Timestamp(cutoff) + pd.Timedelta(days=horizon_days))
    y = np.fromiter((str(i) in churned for i in x.index), dtype=bool, count=len(x))
    return x, y


def snapshot_cutoffs(
    span: tuple[pd.Timestamp, pd.Timestamp], *, horizon_days: float, lookback_days: float
) -> tuple[list[datetime], datetime, float, float]:
    """Training cutoffs, the held-out cutoff, the horizon and the lookback for a history span.

    The horizon is at most a third of the history and the lookback at most what is left after two
    horizons. The held-out cutoff leaves one horizon of labels at the end; training cutoffs step
    back by half a horizon while a full lookback fits and their label window ends before the
    held-out cutoff, so no training label comes from the held-out period.
    """
    start, end = span
    days = (end - start) / pd.Timedelta(days=1)
    horizon = float(min(horizon_days, days / 3.0))
    lookback = float(max(min(lookback_days, days - 2 * horizon), horizon))
    test = end - pd.Timedelta(days=horizon)
    cutoffs: list[datetime] = []
    c = test - pd.Timedelta(days=horizon)
    while c - pd.Timedelta(days=lookback) >= start - timedelta(seconds=1):
        cutoffs.append(c.floor("us").to_pydatetime())
        c -= pd.Timedelta(days=horizon / 2)
    return sorted(cutoffs), test.floor("us").to_pydatetime(), horizon, lookback
