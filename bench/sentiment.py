"""Sentiment on a held-out set of texts a reader has labelled: the share of negative, neutral and
positive texts in each band, for the telecom scorer and for plain VADER (the reference), and texts
scored per second.

Run: ``.venv/bin/python bench/sentiment.py [--csv FILE]``. The file has columns ``text``, ``label``
(negative / neutral / positive) and optionally ``channel`` (``complaint`` means a complaint form,
read as the ticket category ``complaint``); by default the set in tests/fixtures. The last line is
one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import time

import numpy as np
import pandas as pd
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from dashboard.sentiment import TelecomVader, category_prior, shares, with_prior

EVAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sentiment_eval.csv"


def categories(frame: pd.DataFrame) -> pd.Series:
    """The ticket category each row would carry: a complaint form's rows are complaints."""
    channel = frame.get("channel", pd.Series([""] * len(frame), index=frame.index)).fillna("")
    return channel.where(channel.eq("complaint"), "")


def telecom_scores(frame: pd.DataFrame, *, prior: bool = True) -> np.ndarray:
    scores = TelecomVader().score(frame["text"].tolist())
    return with_prior(scores, category_prior(categories(frame))) if prior else scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", type=Path, default=EVAL)
    args = ap.parse_args()
    frame = pd.read_csv(args.csv, dtype=str, keep_default_na=False)
    labels = frame["label"].tolist()
    vader = SentimentIntensityAnalyzer()
    reference = np.array([vader.polarity_scores(t)["compound"] for t in frame["text"]])
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        scores = telecom_scores(frame)
    texts_per_s = rounds * len(frame) / (time.perf_counter() - started)
    no_prior = telecom_scores(frame, prior=False)
    ours, ref, text_only = shares(labels, scores), shares(labels, reference), shares(labels, no_prior)
    complaint = categories(frame).eq("complaint").to_numpy()
    for name, table in (
        ("plain VADER", ref),
        ("telecom, text only", text_only),
        ("telecom + category", ours),
    ):
        print(name)
        for label, row in table.items():
            print(f"  {label:>8}: " + "  ".join(f"{b} {v:.0%}" for b, v in row.items()))
    print(
        json.dumps(
            {
                "texts": len(frame),
                "labels": {lb: labels.count(lb) for lb in sorted(set(labels))},
                "shares": ours,
                "shares_text_only": text_only,
                "reference_shares": ref,
                "complaint_form_texts": int(complaint.sum()),
                "complaint_form_negative_share": round(float((scores[complaint] < -0.2).mean()), 4)
                if complaint.any()
                else None,
                "agreement_share": round(float(np.mean([ours[lb][lb] for lb in ours])), 4),
                "reference_agreement_share": round(float(np.mean([ref[lb].get(lb, 0.0) for lb in ref])), 4),
                "correct_share_by_label": {lb: ours[lb][lb] for lb in ours},
                "texts_per_s": round(texts_per_s),
            }
        )
    )


if __name__ == "__main__":
    main()
