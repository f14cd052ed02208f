"""Customer analytics: ticket sentiment, churn risk and the signals written on customer records."""

from __future__ import annotations

from dashboard.analytics.churn import ChurnError, ChurnModel, TrainResult, evaluate, parse_label, train_table
from dashboard.analytics.features import History, rolling_sentiment, subscriber_features
from dashboard.analytics.signals import (
    latest_model,
    load_history,
    retrain_and_score,
    score_subscribers,
    train_from_history,
)
from dashboard.context import Context, Jobs
from dashboard.sentiment import SentimentScorer, TelecomVader, default_scorer

RETRAIN_INTERVAL_S = 24 * 3600.0
SCORE_INTERVAL_S = 3600.0


def scheduled_jobs(ctx: Context) -> Jobs:
    """The scheduler's analytics jobs: retrain and score daily, re-score (fresh signals) hourly."""
    return {
        "analytics-retrain": (RETRAIN_INTERVAL_S, lambda: retrain_and_score(ctx.store, now=ctx.now())),
        "analytics-score": (SCORE_INTERVAL_S, lambda: score_subscribers(ctx.store, now=ctx.now())),
    }


__all__ = [
    "ChurnError",
    "ChurnModel",
    "History",
    "SentimentScorer",
    "TelecomVader",
    "TrainResult",
    "default_scorer",
    "evaluate",
    "latest_model",
    "load_history",
    "parse_label",
    "retrain_and_score",
    "rolling_sentiment",
    "scheduled_jobs",
    "score_subscribers",
    "subscriber_features",
    "train_from_history",
    "train_table",
]
