"""Churn training from the store's history, versioned models, and the signals written per customer.

This is the I/O shell around the pure parts (``features``, ``churn``): it reads the canonical
tables (heavy KPI aggregation runs in SQL), trains on time-split snapshots of history, stores the
model with a version, and bulk-writes ``subscriber_signals`` and ``account_signals``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, func, insert, select

from dashboard.analytics.churn import ChurnError, ChurnModel, FeatureSpec, detect_features, evaluate, fit
from dashboard.analytics.features import (
    History,
    incident_cells,
    rolling_sentiment,
    snapshot_cutoffs,
    subscriber_features,
    training_snapshot,
)
from dashboard.kpi_eval._sql import floor_time
from dashboard.kpis import MEASURES
from dashboard.store.db import Store
from dashboard.store.schema import (
    account_signals,
    accounts,
    churn_events,
    churn_models,
    incidents,
    kpi_rollups,
    kpi_samples,
    subscriber_cells,
    subscriber_signals,
    subscribers,
    tickets,
    topology_edges,
)
from dashboard.store.upsert import upsert

log = logging.getLogger(__name__)

HIGH_RISK = 0.5
"""An account counts a subscriber as high-risk from this churn probability."""
MIN_POSITIVES = 20
"""Fewest churners a training set (and 5 for the held-out set) needs before a model is trained."""
SCORING_DAYS = 45
"""Days of history the scoring pass reads, and the most the roll-ups add to a training history."""


def _frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def load_history(store: Store, *, since: datetime | None = None) -> History:
    """The frames features are built from; KPI samples arrive already aggregated per cell and day,
    from the raw samples kept and, for the days before them, from the cells' daily roll-ups."""
    with store.connect() as conn:
        subs = _frame(
            conn,
            select(
                subscribers.c.id,
                subscribers.c.source,
                subscribers.c.account_id,
                subscribers.c.plan,
                subscribers.c.arpu,
                subscribers.c.activated_at,
                subscribers.c.status,
            ),
        )
        accs = _frame(conn, select(accounts.c.id, accounts.c.segment, accounts.c.vip))
        sc = _frame(
            conn,
            select(subscriber_cells.c.subscriber_id, subscriber_cells.c.cell_id, subscriber_cells.c.share),
        )
        day = func.date(kpi_samples.c.period_start).label("day")
        kq = (
            select(
                kpi_samples.c.entity_id.label("cell_id"),
                kpi_samples.c.kpi,
                day,
                func.avg(kpi_samples.c.value).label("mean"),
                func.max(kpi_samples.c.value).label("max"),
                func.min(kpi_samples.c.value).label("min"),
                func.count().label("n"),
            )
            .where(kpi_samples.c.entity_type == "cell")
            .group_by(kpi_samples.c.entity_id, kpi_samples.c.kpi, day)
        )
        if since is not None:
            kq = kq.where(kpi_samples.c.period_start >= since)
        raw_daily = _frame(conn, kq)
        parts = [f for f in (_rolled_up_days(conn, raw_daily, since), raw_daily) if not f.empty]
        kpi_daily = pd.concat(parts, ignore_index=True) if parts else raw_daily
        iq = select(
            incidents.c.id, incidents.c.root_resource_id, incidents.c.opened_at, incidents.c.resolved_at
        )
        if since is not None:
            iq = iq.where((incidents.c.resolved_at.is_(None)) | (incidents.c.resolved_at >= since))
        incs = _frame(conn, iq)
        edges = _frame(
            conn,
            select(
                topology_edges.c.parent_type,
                topology_edges.c.parent_id,
                topology_edges.c.child_type,
                topology_edges.c.child_id,
            ),
        )
        tq = select(
            tickets.c.id,
            tickets.c.subscriber_id,
            tickets.c.account_id,
            tickets.c.created_at,
            tickets.c.sentiment,
        )
        if since is not None:
            tq = tq.where(tickets.c.created_at >= since)
        tks = _frame(conn, tq)
        evs = _frame(conn, select(churn_events.c.subscriber_id, churn_events.c.occurred_at))
    if not kpi_daily.empty:
        kpi_daily["day"] = pd.to_datetime(kpi_daily["day"])
        for col in ("mean", "max", "min"):
            kpi_daily[col] = kpi_daily[col].astype("float64")
    if not accs.empty:
        accs["vip"] = accs["vip"].astype(bool)
    return History(
        subscribers=subs,
        accounts=accs,
        subscriber_cells=sc,
        kpi_daily=kpi_daily,
        incidents=incs,
        incident_cells=incident_cells(incs, edges),
        tickets=tks,
        churn_events=evs,
    )


def _rolled_up_days(conn: Connection, raw_daily: pd.DataFrame, since: datetime | None) -> pd.DataFrame:
    """The cells' daily KPI aggregates before the first day of raw samples kept (retention dropped
    older days), from the cells' daily roll-ups: mean is total / weight (a traffic-weighted KPI's
    roll-up keeps its traffic-weighted mean, and weighs a day by its traffic), max and min the
    highest and lowest sample, n the weight (the number of samples of every other aggregate)."""
    first = pd.Timestamp(min(raw_daily["day"])).to_pydatetime() if not raw_daily.empty else None
    r = kpi_rollups
    if since is None:
        # Training reads every raw sample kept; the roll-ups add at most the scoring window before
        # the newest day (years of daily roll-ups of every cell would not fit in memory).
        if first is not None:
            newest = max(raw_daily["day"])
        else:  # no samples kept at all (rare): the newest daily roll-up of a cell
            newest = conn.execute(
                select(func.max(r.c.period_start)).where(r.c.level == "cell", r.c.grain_s == 86400)
            ).scalar()
            if newest is None:
                return pd.DataFrame()
        since = pd.Timestamp(newest).to_pydatetime() - timedelta(days=SCORING_DAYS)
    start = floor_time(since, 86400)
    if first is not None and first <= start:
        return pd.DataFrame()  # the samples reach back to ``since``
    # The KPIs the samples kept have (by the roll-ups' index), or, with none kept, every series
    # that is not a business measure.
    names = sorted(set(raw_daily["kpi"])) if first is not None else []
    series = r.c.series.in_(names) if names else r.c.series.not_in(list(MEASURES))
    q = select(
        r.c.entity_id.label("cell_id"),
        r.c.series.label("kpi"),
        func.date(r.c.period_start).label("day"),
        (r.c.total / r.c.weight).label("mean"),
        r.c.high.label("max"),
        r.c.low.label("min"),
        r.c.weight.label("n"),
    ).where(series, r.c.level == "cell", r.c.grain_s == 86400, r.c.weight > 0)
    if first is not None:
        q = q.where(r.c.period_start < first)
    return _frame(conn, q.where(r.c.period_start >= start))


@dataclass
class StoreTraining:
    """A model trained on the store's history, with held-out metrics and the cutoffs used."""

    model: ChurnModel
    metrics: dict[str, Any]
    test_cutoff: datetime
    horizon_days: float
    lookback_days: float


def train_from_history(
    h: History, *, horizon_days: float = 7.0, lookback_days: float = 28.0, seed: int = 0
) -> StoreTraining:
    """Train on snapshots before the held-out cutoff; metrics on the snapshot at it (a time split).

    Raises ``ChurnError`` when the history is too short or has too few churners to learn from.
    """
    span = h.span()
    if span is None:
        raise ChurnError("no time-stamped history (KPIs, tickets, churn events) in the store")
    cutoffs, test_cutoff, horizon, lookback = snapshot_cutoffs(
        span, horizon_days=horizon_days, lookback_days=lookback_days
    )
    if not cutoffs or horizon < 1.0:
        raise ChurnError(f"history of {(span[1] - span[0]).days} days is too short for a time split")
    parts = [training_snapshot(h, cutoff=c, lookback_days=lookback, horizon_days=horizon) for c in cutoffs]
    x_train = pd.concat([p[0] for p in parts], ignore_index=True)
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = training_snapshot(h, cutoff=test_cutoff, lookback_days=lookback, horizon_days=horizon)
    if y_train.sum() < MIN_POSITIVES or y_test.sum() < 5:
        raise ChurnError(
            f"too few churners to train: {int(y_train.sum())} in training snapshots, "
            f"{int(y_test.sum())} held out (need {MIN_POSITIVES} and 5)"
        )
    spec: FeatureSpec = detect_features(x_train)
    model = fit(x_train, y_train, label="churned", seed=seed, spec=spec)
    metrics: dict[str, Any] = evaluate(y_test, model.predict_proba(x_test))
    metrics.update(
        n_train=len(x_train),
        n_test=len(x_test),
        positives_train=int(y_train.sum()),
        snapshots=len(cutoffs),
        horizon_days=round(horizon, 2),
        lookback_days=round(lookback, 2),
        test_cutoff=test_cutoff.isoformat(sep=" "),
        split="time",
        top_features=dict(model.top_features(10)),
    )
    model.metrics = metrics
    return StoreTraining(
        model=model, metrics=metrics, test_cutoff=test_cutoff, horizon_days=horizon, lookback_days=lookback
    )


def save_model(
    store: Store,
    model: ChurnModel,
    *,
    trained_on: str,
    cutoff: datetime | None = None,
    now: datetime,
) -> int:
    """Store a model as the next version; returns the version."""
    with store.begin() as conn:
        version = conn.execute(
            insert(churn_models)
            .values(
                trained_at=now,
                trained_on=trained_on,
                label=model.label,
                cutoff=cutoff,
                metrics=_jsonable(model.metrics),
                features=model.features,
                model=model.to_bytes(),
            )
            .returning(churn_models.c.version)
        ).scalar_one()
    return int(version)


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, float) and v != v:  # NaN is not JSON
            out[k] = None
        elif isinstance(v, dict):
            out[k] = _jsonable(v)
        else:
            out[k] = v
    return out


def latest_model(store: Store, *, trained_on: str = "store") -> tuple[int, ChurnModel] | None:
    """The newest stored model trained on ``trained_on`` (the store's history by default)."""
    with store.connect() as conn:
        row = conn.execute(
            select(churn_models.c.version, churn_models.c.model)
            .where(churn_models.c.trained_on == trained_on)
            .order_by(churn_models.c.version.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return int(row[0]), ChurnModel.from_bytes(bytes(row[1]))


def subscriber_signal_frame(
    h: History,
    *,
    now: datetime,
    model: ChurnModel | None,
    model_version: int | None,
    lookback_days: float = 28.0,
) -> pd.DataFrame:
    """One row per active subscriber: churn risk and drivers (with a model), rolling sentiment, tickets."""
    subs = h.subscribers
    if "status" in subs.columns:
        subs = subs.loc[subs["status"].fillna("active").str.lower() == "active"]
    subs = subs.drop_duplicates("id")
    out = pd.DataFrame(
        {
            "subscriber_id": subs["id"].to_numpy(),
            "source": subs["source"].to_numpy(),
            "account_id": subs["account_id"].to_numpy(),
        }
    )
    out["churn_risk"] = np.nan
    out["churn_drivers"] = None
    out["model_version"] = None
    if model is not None and len(out):
        x = subscriber_features(
            h, cutoff=now, lookback_days=lookback_days, subscriber_ids=out["subscriber_id"].tolist()
        )
        x = x.reindex(out["subscriber_id"].to_numpy())
        risk, idx, impact = model.score(x)
        out["churn_risk"] = np.round(risk, 4)
        out["churn_drivers"] = model.describe_drivers(x, idx, impact)
        out["model_version"] = model_version
    roll = rolling_sentiment(h.tickets, by="subscriber_id", now=now) if not h.tickets.empty else None
    if roll is not None and not roll.empty:
        out = out.merge(roll, on="subscriber_id", how="left")
    else:
        out["sentiment_30d"] = np.nan
        out["tickets_30d"] = 0
        out["negative_tickets_30d"] = 0
    out["tickets_30d"] = out["tickets_30d"].fillna(0).astype("int64")
    out["negative_tickets_30d"] = out["negative_tickets_30d"].fillna(0).astype("int64")
    out["scored_at"] = pd.Timestamp(now)
    return out


def account_signal_frame(h: History, sub_signals: pd.DataFrame, *, now: datetime) -> pd.DataFrame:
    """Per account: its subscribers' risks aggregated, and the sentiment of tickets on the account."""
    cols = [
        "account_id",
        "source",
        "subscribers",
        "churn_risk_mean",
        "churn_risk_max",
        "expected_churners",
        "arpu_at_risk",
        "high_risk_subscribers",
        "model_version",
        "sentiment_30d",
        "tickets_30d",
        "negative_tickets_30d",
        "scored_at",
    ]
    s = sub_signals.loc[sub_signals["account_id"].notna()]
    if s.empty:
        return pd.DataFrame(columns=cols)
    arpu = h.subscribers.drop_duplicates("id").set_index("id")["arpu"]
    s = s.assign(arpu=pd.to_numeric(arpu.reindex(s["subscriber_id"].to_numpy()), errors="coerce").to_numpy())
    s = s.assign(risk_arpu=s["churn_risk"] * s["arpu"], high=(s["churn_risk"] >= HIGH_RISK).astype(float))
    g = (
        s.groupby(["account_id", "source"])
        .agg(
            subscribers=("subscriber_id", "size"),
            churn_risk_mean=("churn_risk", "mean"),
            churn_risk_max=("churn_risk", "max"),
            expected_churners=("churn_risk", "sum"),
            arpu_at_risk=("risk_arpu", "sum"),
            high_risk_subscribers=("high", "sum"),
            model_version=("model_version", "max"),
        )
        .reset_index()
    )
    no_model = g["churn_risk_mean"].isna()
    g.loc[no_model, ["expected_churners", "arpu_at_risk", "high_risk_subscribers"]] = np.nan
    # Account sentiment counts every ticket on the account, including ones not tied to a line.
    roll = rolling_sentiment(h.tickets, by="account_id", now=now) if not h.tickets.empty else pd.DataFrame()
    if not roll.empty:
        g = g.merge(roll, on="account_id", how="left")
    else:
        g["sentiment_30d"] = np.nan
        g["tickets_30d"] = 0
        g["negative_tickets_30d"] = 0
    g["tickets_30d"] = g["tickets_30d"].fillna(0).astype("int64")
    g["negative_tickets_30d"] = g["negative_tickets_30d"].fillna(0).astype("int64")
    for col in ("churn_risk_mean", "churn_risk_max", "expected_churners", "arpu_at_risk"):
        g[col] = g[col].astype("float64").round(4)
    g["scored_at"] = pd.Timestamp(now)
    return g[cols]


def write_signals(store: Store, subs: pd.DataFrame, accs: pd.DataFrame, *, now: datetime) -> None:
    """Bulk-upsert both signal tables and drop rows of customers no longer scored, in one transaction."""
    with store.begin() as conn:
        for table, frame in ((subscriber_signals, subs), (account_signals, accs)):
            rows = frame[[c.name for c in table.columns if c.name in frame.columns]].copy()
            if "model_version" in rows.columns:
                rows["model_version"] = pd.to_numeric(rows["model_version"], errors="coerce")
            rows["scored_at"] = pd.Timestamp(now).to_datetime64()
            rows["scored_at"] = rows["scored_at"].astype("datetime64[us]")
            upsert(conn, table, rows, now=now)
            conn.execute(delete(table).where(table.c.scored_at < now))


def score_subscribers(store: Store, *, now: datetime, history: History | None = None) -> dict[str, Any]:
    """Score every active subscriber with the latest stored model and write the signals."""
    h = history or load_history(store, since=now - timedelta(days=SCORING_DAYS))
    found = latest_model(store)
    version, model = found if found is not None else (None, None)
    subs = subscriber_signal_frame(h, now=now, model=model, model_version=version)
    accs = account_signal_frame(h, subs, now=now)
    write_signals(store, subs, accs, now=now)
    risk = subs["churn_risk"]
    return {
        "model_version": version,
        "subscribers": len(subs),
        "accounts": len(accs),
        "mean_risk": None if risk.isna().all() else round(float(risk.mean()), 4),
        "high_risk": int((risk >= HIGH_RISK).sum()),
    }


#: A retrained model must rank held-out churners above chance by this much to be used.
MIN_PROMOTE_AUC = 0.55
MIN_PROMOTE_POSITIVES = 20


def retrain_and_score(store: Store, *, now: datetime, horizon_days: float = 7.0) -> dict[str, Any]:
    """Retrain from history when there is enough of it, then score all active subscribers.

    A new model replaces the current one only when its held-out ranking is better than chance by
    a margin (``MIN_PROMOTE_AUC``) on enough churners (``MIN_PROMOTE_POSITIVES``); otherwise the
    previous model (if any) keeps scoring and the reason is returned under ``"skipped"``, so a
    short or unlucky history never publishes risk scores that rank worse than a coin.
    """
    h = load_history(store)
    report: dict[str, Any] = {}
    try:
        trained = train_from_history(h, horizon_days=horizon_days)
    except ChurnError as err:
        log.info("churn model not retrained: %s", err)
        report["skipped"] = str(err)
    else:
        m = trained.metrics
        if m["positives"] < MIN_PROMOTE_POSITIVES or not m["roc_auc"] > MIN_PROMOTE_AUC:
            reason = (
                f"held-out ROC AUC {m['roc_auc']:.3f} on {m['positives']} churners; a model needs more "
                f"than {MIN_PROMOTE_AUC} on at least {MIN_PROMOTE_POSITIVES} to replace the current one"
            )
            log.info("churn model not promoted: %s", reason)
            report.update(skipped=reason, metrics=_jsonable(m))
        else:
            version = save_model(
                store, trained.model, trained_on="store", cutoff=trained.test_cutoff, now=now
            )
            report.update(version=version, metrics=_jsonable(m))
    report["scored"] = score_subscribers(store, now=now, history=h)
    return report
