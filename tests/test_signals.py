"""Customer features and signals: rolling sentiment, experienced KPIs and incidents, time-split training
on the simulated operator, and the signals written to the store."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from dashboard.analytics.features import (
    History,
    eligible_at,
    incident_cells,
    rolling_sentiment,
    snapshot_cutoffs,
    subscriber_features,
)
from dashboard.store import Store

NOW = datetime(2026, 3, 31)


def test_rolling_sentiment_is_a_time_weighted_mean_over_the_window() -> None:
    tickets = pd.DataFrame(
        {
            "subscriber_id": ["s1", "s1", "s1", "s2", "s2"],
            "created_at": pd.to_datetime(
                ["2026-03-30", "2026-03-23", "2026-02-01", "2026-03-24", "2026-03-25"]
            ),
            "sentiment": [-0.8, 0.4, -1.0, 0.5, None],
        }
    )
    out = rolling_sentiment(tickets, by="subscriber_id", now=NOW, window_days=30, half_life_days=7).set_index(
        "subscriber_id"
    )
    # s1: ages 1 and 8 days (the February ticket is outside the window); weights 2^-1/7 and 2^-8/7.
    w1, w2 = 2 ** (-1 / 7), 2 ** (-8 / 7)
    assert out.loc["s1", "sentiment_30d"] == pytest.approx((w1 * -0.8 + w2 * 0.4) / (w1 + w2), abs=1e-4)
    assert out.loc["s1", "tickets_30d"] == 2 and out.loc["s1", "negative_tickets_30d"] == 1
    # s2: the unscored ticket counts as a ticket but not in the mean.
    assert out.loc["s2", "sentiment_30d"] == pytest.approx(0.5)
    assert out.loc["s2", "tickets_30d"] == 2


def _history() -> History:
    subs = pd.DataFrame(
        {
            "id": ["s1", "s2", "s3"],
            "source": "t",
            "account_id": ["a1", "a1", "a2"],
            "plan": ["gold", "basic", "basic"],
            "arpu": [50.0, 20.0, 30.0],
            "activated_at": pd.to_datetime(["2025-03-31", "2026-03-01", "2026-04-05"]),
            "status": "active",
        }
    )
    accounts = pd.DataFrame({"id": ["a1", "a2"], "segment": ["smb", "consumer"], "vip": [True, False]})
    cells = pd.DataFrame(
        {"subscriber_id": ["s1", "s1", "s2"], "cell_id": ["c1", "c2", "c2"], "share": [0.75, 0.25, 1.0]}
    )
    kpi = pd.DataFrame(
        {
            "cell_id": ["c1", "c2", "c1"],
            "kpi": "drop_rate",
            "day": pd.to_datetime(["2026-03-30", "2026-03-30", "2026-01-01"]),
            "mean": [1.0, 5.0, 99.0],
            "max": [2.0, 9.0, 99.0],
            "min": [0.5, 1.0, 99.0],
            "n": [96, 96, 96],
        }
    )
    incidents = pd.DataFrame(
        {
            "id": ["i1"],
            "root_resource_id": ["router"],
            "opened_at": pd.to_datetime(["2026-03-30 10:00"]),
            "resolved_at": pd.to_datetime(["2026-03-30 14:00"]),
        }
    )
    edges = pd.DataFrame(
        {
            "parent_type": ["resource", "resource"],
            "parent_id": ["router", "ran"],
            "child_type": ["resource", "cell"],
            "child_id": ["ran", "c2"],
        }
    )
    tickets = pd.DataFrame(
        {
            "subscriber_id": ["s2", "s2"],
            "account_id": ["a1", "a1"],
            "created_at": pd.to_datetime(["2026-03-30", "2026-03-29"]),
            "sentiment": [-0.9, 0.1],
        }
    )
    churn = pd.DataFrame({"subscriber_id": ["s2"], "occurred_at": pd.to_datetime(["2026-04-10"])})
    return History(
        subscribers=subs,
        accounts=accounts,
        subscriber_cells=cells,
        kpi_daily=kpi,
        incidents=incidents,
        incident_cells=incident_cells(incidents, edges),
        tickets=tickets,
        churn_events=churn,
    )


def test_incidents_reach_cells_through_the_topology() -> None:
    assert _history().incident_cells.to_dict("records") == [{"incident_id": "i1", "cell_id": "c2"}]


def test_subscriber_features_weight_cells_by_share_and_use_only_the_past() -> None:
    f = subscriber_features(_history(), cutoff=NOW, lookback_days=28)
    assert f.loc["s1", "tenure_days"] == 365 and math.isnan(f.loc["s3", "tenure_days"])  # s3 joins later
    # s1 is 75 % on c1 (mean 1) and 25 % on c2 (mean 5); the January sample is outside the lookback.
    assert f.loc["s1", "kpi_drop_rate_mean"] == pytest.approx(0.75 * 1 + 0.25 * 5)
    assert f.loc["s1", "kpi_drop_rate_max"] == pytest.approx(0.75 * 2 + 0.25 * 9)
    # The 4-hour incident reached c2 only: a quarter of s1's traffic, all of s2's.
    assert f.loc["s1", "incident_hours"] == pytest.approx(1.0)
    assert f.loc["s2", "incident_hours"] == pytest.approx(4.0) and f.loc["s2", "incidents"] == 1
    assert f.loc["s2", "tickets"] == 2 and f.loc["s2", "negative_tickets"] == 1
    assert f.loc["s2", "sentiment_min"] == pytest.approx(-0.9)
    assert f.loc["s1", "segment"] == "smb" and f.loc["s1", "vip"] == 1.0
    assert f.loc["s3", "tickets"] == 0
    # A cutoff before the tickets and the incident sees none of them.
    early = subscriber_features(_history(), cutoff=datetime(2026, 3, 29), lookback_days=28)
    assert early.loc["s2", "tickets"] == 0 and early.loc["s2", "incident_hours"] == 0


def test_eligibility_excludes_lines_not_yet_active_or_already_churned() -> None:
    h = _history()
    assert sorted(eligible_at(h, NOW)) == ["s1", "s2"]
    assert sorted(eligible_at(h, datetime(2026, 4, 20))) == ["s1", "s3"]  # s2 churned on 10 April


def test_training_cutoffs_never_see_held_out_labels() -> None:
    span = (pd.Timestamp("2026-01-01"), pd.Timestamp("2026-02-26"))  # 56 days
    cutoffs, test, horizon, lookback = snapshot_cutoffs(span, horizon_days=7, lookback_days=28)
    assert horizon == 7 and lookback == 28 and test == datetime(2026, 2, 19)
    assert all(pd.Timestamp(c) + pd.Timedelta(days=horizon) <= pd.Timestamp(test) for c in cutoffs)
    assert all(pd.Timestamp(c) - pd.Timedelta(days=lookback) >= span[0] for c in cutoffs)
    assert len(cutoffs) == 5


simulator = pytest.importorskip("connectors.simulator", reason="the simulator connector is not available")


def _simulate(store: Store, anchor: datetime) -> None:
    """The shipped demo operator (vantage.yaml: 10,000 lines, raised incident rate), 28 days of it,
    without its story (statistics are checked with it off: docs/simulator.md)."""
    from connectors.base import ConnectorContext
    from dashboard.ingest import run_connector

    options = simulator.SimulatorOptions(
        subscribers=10000,
        days=28,
        anchor=anchor,
        seed=42,
        causal={"incident_rate_per_resource_day": 0.05, "silent_fault_rate_per_cell_day": 0.03},
    )
    connector = simulator.SimulatorConnector(options, ConnectorContext(name="sim", now=lambda: anchor))
    run_connector(store, connector, streams=["topology", "customers", "faults", "tickets", "churn"])
    # Incidents are Vantage's correlation of the alarms, as the scheduler's queue job builds them.
    from dashboard.incidents.correlate import correlate
    from dashboard.kpis import CorrelationRules

    with store.begin() as conn:
        correlate(conn, CorrelationRules(), now=anchor)


@pytest.fixture(scope="module")
def simulated_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('sim') / 'vantage.db'}")
    store.upgrade()
    # The shipped demo settings (vantage.yaml): 10,000 lines and the raised incident rate. KPI samples
    # are left out to keep the test fast; the incidents and tickets carry the causal signal.
    anchor = datetime(2026, 11, 19)
    _simulate(store, anchor)
    yield store
    store.dispose()


@pytest.mark.slow
def test_churn_risk_ranks_later_churners_first_on_the_simulator(simulated_store: Store) -> None:
    from dashboard.analytics.signals import load_history, train_from_history

    trained = train_from_history(load_history(simulated_store), horizon_days=7, lookback_days=28)
    m = trained.metrics
    print(f"simulator held-out: {m}")
    # What the simulator's causal structure allows (docs/simulator.md): a line decides to leave at
    # a hazard driven by its dissatisfaction, a 28-day decayed sum (half-life 7 days) of degraded
    # hours beyond 5 tolerated ones and of negative tickets, and the churn lands 3 to 21 days later.
    # So a week's churners were mostly made unhappy before the cutoff, which the features see. On
    # these demo settings (10,000 lines, 28 days, the shipped incident rate) ranking by the hidden
    # hazard itself reaches about 0.70-0.75; this model reaches 0.69 on 86 held-out churners with
    # lift 2.8 in the top decile, and 0.69-0.71 at other anchors. With ~86 positives the AUC's
    # standard error is about 0.03: a floor of 0.60 is three of them above chance and below what is
    # measured, so it fails when the features lose the incident or ticket signal, not by chance.
    assert m["positives"] >= 60
    assert m["roc_auc"] > 0.60
    assert m["lift_top_decile"] > 1.5
    assert "incident_hours" in list(m["top_features"])[:3]


@pytest.mark.slow
def test_retrain_and_score_writes_versioned_models_and_signals(simulated_store: Store) -> None:
    from dashboard.analytics.signals import retrain_and_score
    from dashboard.store.schema import account_signals, churn_models, subscriber_signals, subscribers, tickets

    now = datetime(2026, 11, 19)
    first = retrain_and_score(simulated_store, now=now)
    second = retrain_and_score(simulated_store, now=now)
    assert second["version"] == first["version"] + 1
    with simulated_store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(churn_models)).scalar_one() == 2
        active = conn.execute(
            select(func.count()).select_from(subscribers).where(subscribers.c.status == "active")
        ).scalar_one()
        sigs = pd.DataFrame(conn.execute(select(subscriber_signals)).mappings().all())
        accs = pd.DataFrame(conn.execute(select(account_signals)).mappings().all())
        scored_tickets = conn.execute(
            select(func.count()).select_from(tickets).where(tickets.c.sentiment.is_not(None))
        ).scalar_one()
    assert scored_tickets > 0  # the ingest enricher scored the simulator's ticket texts
    assert len(sigs) == active == second["scored"]["subscribers"]
    assert (sigs["model_version"] == second["version"]).all()
    assert sigs["churn_risk"].between(0, 1).all()
    drivers = [json.loads(d) for d in sigs.sort_values("churn_risk")["churn_drivers"].tail(20)]
    assert all(d and d[0]["impact"] > 0 for d in drivers)  # high-risk lines have a named reason
    assert (sigs["tickets_30d"] > 0).any() and sigs["sentiment_30d"].dropna().between(-1, 1).all()
    # Accounts aggregate their subscribers.
    per_account = sigs.groupby("account_id")["churn_risk"].agg(["size", "sum"])
    joined = accs.set_index("account_id").join(per_account)
    assert (joined["subscribers"] == joined["size"]).all()
    np.testing.assert_allclose(joined["expected_churners"], joined["sum"], atol=1e-3)


@pytest.mark.slow
@pytest.mark.postgres
def test_models_and_signals_round_trip_on_postgresql(pg_store: Store) -> None:
    """The same training, model storage and bulk signal upsert on PostgreSQL."""
    from dashboard.analytics.signals import retrain_and_score
    from dashboard.store.schema import subscriber_signals, subscribers

    anchor = datetime(2026, 11, 19)
    _simulate(pg_store, anchor)
    first = retrain_and_score(pg_store, now=anchor)
    again = retrain_and_score(pg_store, now=anchor)
    assert again["version"] == first["version"] + 1
    with pg_store.connect() as conn:
        active = conn.execute(
            select(func.count()).select_from(subscribers).where(subscribers.c.status == "active")
        ).scalar_one()
        versions = conn.execute(select(subscriber_signals.c.model_version).distinct()).scalars().all()
        n = conn.execute(select(func.count()).select_from(subscriber_signals)).scalar_one()
    assert n == active == again["scored"]["subscribers"] and versions == [again["version"]]


@pytest.mark.slow
def test_a_model_no_better_than_chance_is_not_promoted(
    simulated_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard.analytics import signals
    from dashboard.store.schema import churn_models

    with simulated_store.connect() as conn:
        before = conn.execute(select(func.count()).select_from(churn_models)).scalar_one()
    monkeypatch.setattr(signals, "MIN_PROMOTE_AUC", 0.99)
    report = signals.retrain_and_score(simulated_store, now=datetime(2026, 11, 19))
    assert "held-out ROC AUC" in report["skipped"] and "version" not in report
    with simulated_store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(churn_models)).scalar_one() == before
