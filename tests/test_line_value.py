"""What a line is worth, written once: the Python, vectorised and SQL forms of Scoring's rule agree."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sqlalchemy import Boolean, String, literal, select

from connectors.canonical import SEGMENTS
from dashboard.kpis import Scoring, segment_codes
from dashboard.store.db import Store

# Consumer is not 1, so an unknown segment valued at 1.0 (instead of as consumer) shows; smb has
# no multiplier, so it must be 1.0.
SCORING = Scoring.model_validate(
    {
        "weights": {
            "severity": 1,
            "subscriber_value": 1,
            "revenue_at_risk": 1,
            "sla_urgency": 1,
            "sentiment": 1,
            "churn_risk": 1,
        },
        "severity_points": {"critical": 1.0},
        "segment_multipliers": {"consumer": 1.3, "enterprise": 5.0},
        "vip_multiplier": 1.5,
    }
)
CASES = list(itertools.product([*SEGMENTS, "martian", None], [True, False, None]))


def test_the_rule_in_words() -> None:
    assert SCORING.line_value(20.0, "enterprise", True) == pytest.approx(20 * 5.0 * 1.5)
    assert SCORING.line_value(20.0, "smb", False) == pytest.approx(20.0)  # no multiplier: 1
    # No account or an unknown segment: a consumer line.
    assert SCORING.line_value(20.0, None, None) == SCORING.line_value(20.0, "martian", False) == 26.0
    assert SCORING.line_value(None, "enterprise", True) == 0.0
    assert SCORING.line_value(float("nan"), "consumer", False) == 0.0


def test_vectorised_form_agrees_with_python() -> None:
    segments = [s for s, _ in CASES]
    vip = np.array([v is True for _, v in CASES])
    got = SCORING.line_multipliers(segment_codes(segments), vip)
    expected = [SCORING.line_multiplier(s, v) for s, v in CASES]
    assert got.tolist() == pytest.approx(expected)


def test_sql_form_agrees_with_python(store: Store) -> None:
    with store.connect() as conn:
        for segment, vip in CASES:
            expr = SCORING.line_multiplier_sql(literal(segment, String), literal(vip, Boolean))
            got = conn.execute(select(expr)).scalar_one()
            assert got == pytest.approx(SCORING.line_multiplier(segment, vip)), (segment, vip)
