"""The telecom sentiment scorer on hand-written ticket texts, and the ingest enrichers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.ingest.enrich import default_enrichers
from dashboard.sentiment import SentimentScorer, TelecomVader, enrich_ticket_notes, enrich_tickets

ANGRY = [
    "No internet for 3 days and still waiting for a technician. This is unacceptable,"
    " I will cancel my contract.",
    "NO SIGNAL at home since Monday, calls keep dropping. Fix it!",
    "Dropped calls all the time and the internet is so slow. Worst service ever.",
    "Outage in my area, down for 3 days",
    "My broadband keeps disconnecting every evening, I'm switching to another provider",
]
THANKS = [
    "Thank you, the internet is working again!",
    "Thanks for fixing it so quickly, great support.",
    "Issue resolved, thank you",
]
NEUTRAL = [
    "Please change my plan to the 20GB bundle",
    "Hi, I would like to update my billing address",
    "Can you send me a copy of my last invoice?",
    "How do I activate roaming before my trip?",
    "Escalated to field team",
]


@pytest.fixture(scope="module")
def scorer() -> TelecomVader:
    return TelecomVader()


def test_scorer_meets_the_protocol(scorer: TelecomVader) -> None:
    assert isinstance(scorer, SentimentScorer)
    out = scorer.score(["", "slow", "Thank you"])
    assert out.shape == (3,) and out.dtype == np.float64
    assert out[0] == 0.0 and out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("text", ANGRY)
def test_angry_complaints_score_clearly_negative(scorer: TelecomVader, text: str) -> None:
    assert scorer.score([text])[0] < -0.5


@pytest.mark.parametrize("text", THANKS)
def test_thanks_score_clearly_positive(scorer: TelecomVader, text: str) -> None:
    assert scorer.score([text])[0] > 0.5


@pytest.mark.parametrize("text", NEUTRAL)
def test_neutral_requests_score_near_zero(scorer: TelecomVader, text: str) -> None:
    assert abs(scorer.score([text])[0]) < 0.2


@pytest.mark.parametrize(
    ("negative", "positive"),
    [
        ("my phone is not working", "my phone is working"),
        ("the internet is down", "the internet is not down"),
        ("the connection is slow", "the connection is not slow"),
    ],
)
def test_negation_flips_the_sign(scorer: TelecomVader, negative: str, positive: str) -> None:
    neg, pos = scorer.score([negative, positive])
    assert neg < -0.2 < 0.2 < pos


def test_phrases_become_tokens_that_keep_capitals_and_boosters(scorer: TelecomVader) -> None:
    assert scorer.rewrite("No signal and dropped calls") == "no_network and calls_dropping"
    assert scorer.rewrite("NO SIGNAL") == "NO_NETWORK"
    plain, shouted = scorer.score(["no signal at home", "NO SIGNAL at home"])
    assert shouted < plain < 0
    slow, very_slow = scorer.score(["the internet is slow", "the internet is very slow"])
    assert very_slow < slow < 0


def test_repeated_texts_are_scored_once_and_in_order(scorer: TelecomVader) -> None:
    texts = ["Thank you", "no signal", "Thank you", None, "no signal"]
    out = scorer.score(texts)  # type: ignore[arg-type]
    assert out[0] == out[2] > 0 and out[1] == out[4] < 0 and out[3] == 0


def test_ticket_enricher_scores_subject_and_description_and_keeps_source_scores() -> None:
    rows = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "subject": ["Outage", "Thanks", None, "Question"],
            "description": ["no internet for 2 days", "all working again", None, "what is my PIN?"],
            "sentiment": [None, None, None, 0.9],
        }
    )
    out = enrich_tickets(rows)
    assert out.loc[0, "sentiment"] < -0.5
    assert out.loc[1, "sentiment"] > 0.5
    assert pd.isna(out.loc[2, "sentiment"])  # nothing to score
    assert out.loc[3, "sentiment"] == 0.9  # a score the source supplied is kept
    assert list(out["id"]) == ["a", "b", "c", "d"]


def test_default_enrichers_cover_tickets_and_notes() -> None:
    enrichers = default_enrichers()
    assert enrichers["tickets"] is enrich_tickets
    assert enrichers["ticket_notes"] is enrich_ticket_notes
    notes = enrich_ticket_notes(
        pd.DataFrame({"id": ["n1"], "text": ["Customer very angry, no service again"]})
    )
    assert notes.loc[0, "sentiment"] < -0.5
