"""Analytics throughput: tickets scored per second, and churn scoring (risk + top-3 drivers) for 1M lines.

Run: ``.venv/bin/python bench/analytics.py [--subscribers 1000000]``. The last line is one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py and bench/connectors.py share their names with the standard library's ``queue``
# (imported by pandas through pyarrow) and the ``connectors`` package: move this folder behind the
# standard library on the import path, then put the repository in front.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd

from dashboard.analytics.churn import fit
from dashboard.sentiment import TelecomVader

OPENERS = ["", "Hi, ", "Hello team, ", "This is ridiculous. ", "Thanks for the quick reply. "]
BODIES = [
    "no signal at home in {place} since {n} days, still waiting for a technician",
    "calls keep dropping near the station in {place}, {n} times today",
    "internet is very slow in {place}, {n} Mbps only",
    "please change my plan to the {n}GB bundle",
    "thank you, everything is working again in {place}",
    "I was charged twice this month, invoice {n}",
    "the network is not down anymore in {place}, thanks",
    "I will cancel my contract if this is not fixed in {n} days",
]
PLACES = ["Porto", "Lisbon", "Braga", "Faro", "Coimbra", "Aveiro", "Evora", "Leiria"]


def _texts(n: int, rng: np.random.Generator) -> list[str]:
    # Every text is distinct (ticket numbers differ), so the scorer's de-duplication does not help.
    o, b, p = (
        rng.integers(0, len(OPENERS), n),
        rng.integers(0, len(BODIES), n),
        rng.integers(0, len(PLACES), n),
    )
    return [OPENERS[o[i]] + BODIES[b[i]].format(place=PLACES[p[i]], n=i) for i in range(n)]


def _features(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A subscriber feature frame shaped like the store's (30 columns) with a learnable churn label."""
    frame = pd.DataFrame(
        {
            "tenure_days": rng.gamma(2.0, 400.0, n),
            "arpu": rng.gamma(3.0, 10.0, n),
            "plan": rng.choice(["Unlimited 5G", "Smart 20GB", "Family 60GB", "Business 30GB", "Prepaid"], n),
            "segment": rng.choice(["consumer", "smb", "enterprise"], n, p=[0.8, 0.15, 0.05]),
            "vip": (rng.random(n) < 0.02).astype(float),
            "incidents": rng.poisson(0.3, n).astype(float),
            "incident_hours": rng.exponential(1.0, n) * (rng.random(n) < 0.3),
            "incident_hours_recent": rng.exponential(0.5, n) * (rng.random(n) < 0.1),
            "tickets": rng.poisson(0.1, n).astype(float),
            "negative_tickets": rng.poisson(0.05, n).astype(float),
            "negative_tickets_recent": rng.poisson(0.02, n).astype(float),
            "sentiment_mean": np.where(rng.random(n) < 0.1, rng.uniform(-1, 1, n), np.nan),
            "sentiment_min": np.where(rng.random(n) < 0.1, rng.uniform(-1, 1, n), np.nan),
            "sentiment_rolling": np.where(rng.random(n) < 0.1, rng.uniform(-1, 1, n), np.nan),
            "days_since_ticket": np.where(rng.random(n) < 0.1, rng.uniform(0, 28, n), np.nan),
        }
    )
    for kpi in (
        "availability_pct",
        "call_setup_success_pct",
        "dl_throughput_mbps",
        "drop_call_rate_pct",
        "latency_ms",
    ):
        base = rng.normal(0, 1, n)
        frame[f"kpi_{kpi}_mean"] = base
        frame[f"kpi_{kpi}_max"] = base + rng.exponential(1, n)
        frame[f"kpi_{kpi}_min"] = base - rng.exponential(1, n)
    logit = (
        -4
        + 0.5 * frame["incident_hours"]
        + 1.2 * frame["negative_tickets"]
        + 0.3 * frame["kpi_latency_ms_max"]
    )
    y = rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))
    return frame, y


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=20_000)
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--train", type=int, default=50_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    scorer = TelecomVader()
    texts = _texts(args.tickets, rng)
    t = time.perf_counter()
    scores = scorer.score(texts)
    ticket_s = time.perf_counter() - t
    repeated = texts[: args.tickets // 10] * 10  # templated texts: each distinct text scored once
    t = time.perf_counter()
    scorer.score(repeated)
    repeated_s = time.perf_counter() - t
    print(
        f"sentiment: {args.tickets} distinct tickets in {ticket_s:.2f} s = {args.tickets / ticket_s:,.0f}/s"
        f" (mean score {scores.mean():+.3f}); with 10x repetition {len(repeated) / repeated_s:,.0f}/s"
    )

    x_train, y_train = _features(args.train, rng)
    t = time.perf_counter()
    model = fit(x_train, y_train, seed=0)
    train_s = time.perf_counter() - t
    print(f"churn: trained on {args.train:,} rows x {x_train.shape[1]} features in {train_s:.1f} s")

    x, _ = _features(args.subscribers, rng)
    t = time.perf_counter()
    model.predict_proba(x)
    proba_s = time.perf_counter() - t
    t = time.perf_counter()
    _, idx, impact = model.score(x, top=3)
    score_s = time.perf_counter() - t
    sample = min(len(x), 100_000)
    t = time.perf_counter()
    model.describe_drivers(x.iloc[:sample], idx[:sample], impact[:sample])
    json_s = (time.perf_counter() - t) * len(x) / sample
    print(
        f"churn: {len(x):,} subscribers: risk only {proba_s * 1000:,.0f} ms;"
        f" risk + top-3 drivers {score_s * 1000:,.0f} ms; drivers as JSON text ~{json_s * 1000:,.0f} ms"
    )
    peak = _peak_rss_mb()
    print(f"peak RSS {peak:,.0f} MB")
    print(
        json.dumps(
            {
                "tickets_per_s": round(args.tickets / ticket_s),
                "tickets_repeated_per_s": round(len(repeated) / repeated_s),
                "train_rows": args.train,
                "train_s": round(train_s, 2),
                "subscribers": len(x),
                "score_risk_1m_ms": round(proba_s * 1000 * 1_000_000 / len(x)),
                "score_with_drivers_1m_ms": round(score_s * 1000 * 1_000_000 / len(x)),
                "drivers_json_1m_ms": round(json_s * 1000 * 1_000_000 / len(x)),
                "peak_rss_mb": round(peak),
            }
        )
    )


if __name__ == "__main__":
    main()
