"""The queue's ranking: value, priority weights, reasons and ties, on the hand-made network.

The network is described in :mod:`tests.incident_net`.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest

from dashboard.incidents.queue import refresh_queue
from dashboard.incidents.scoring import fmt_money_short
from dashboard.store.db import Store
from tests.incident_net import T, alarm, catalogue, ingest, queue_rows, scoring, two_incidents

# --- value and priority ---------------------------------------------------------------------------


def test_enterprise_sla_outranks_consumer_volume_when_the_weights_say_so(net: Store) -> None:
    two_incidents(net)
    s = scoring()
    refresh_queue(net, s, now=T, currency="EUR")
    q = queue_rows(net).set_index("title")
    a, b = q.loc["ran-1 down at Harbour gNodeB"], q.loc["ran-2 down at Hill eNodeB"]

    # A by hand. Value: 5 lines x 50 x enterprise 1.5 = 375. Revenue per hour: service 5 x 50 / 730
    # + churn 5 x 50 x 0.001 x 24 (no risk scored) + the SLA penalty 600 (its clock runs).
    value_a = 5 * 50 * 1.5
    rev_a = 5 * 50 / 730 + 5 * 50 * 0.001 * 24 + 600
    sla_a = 1 - 10 / 120  # opened 20 min ago, 30 min target: breach in 10 of the 120-min horizon
    score_a = 100 * (
        0.15 * 1.0 + 0.25 * value_a / (value_a + 5000) + 0.15 * rev_a / (rev_a + 500) + 0.25 * sla_a
    )
    # B: 500 consumer lines x 20 = 10,000; no SLA.
    value_b = 500 * 20 * 1.0
    rev_b = 500 * 20 / 730 + 500 * 20 * 0.001 * 24
    score_b = 100 * (0.15 * 1.0 + 0.25 * value_b / (value_b + 5000) + 0.15 * rev_b / (rev_b + 500))
    assert a["value"] == pytest.approx(value_a)
    assert a["revenue_at_risk_per_hour"] == pytest.approx(rev_a)
    assert a["score"] == pytest.approx(score_a, abs=1e-3)
    assert b["score"] == pytest.approx(score_b, abs=1e-3)
    assert (a["rank"], b["rank"]) == (1, 2)
    assert a["enterprise_lines"] == pytest.approx(5) and b["consumer_lines"] == pytest.approx(500)
    assert a["sla_deadline"] == T + timedelta(minutes=10) and a["sla_account_id"] == "ENT"
    assert pd.isna(b["sla_deadline"]) and b["sla_accounts"] == 0


def test_consumer_volume_outranks_the_sla_when_the_weights_say_so(net: Store) -> None:
    two_incidents(net)
    weights = {
        "severity": 0.15,
        "subscriber_value": 0.6,
        "revenue_at_risk": 0.15,
        "sla_urgency": 0.0,
        "sentiment": 0.05,
        "churn_risk": 0.05,
    }
    s = scoring(weights=catalogue().scoring.weights.model_copy(update=weights))
    refresh_queue(net, s, now=T, currency="EUR")
    q = queue_rows(net).set_index("title")
    assert q.loc["ran-2 down at Hill eNodeB", "rank"] == 1
    assert q.loc["ran-1 down at Harbour gNodeB", "rank"] == 2


def test_reason_sentence_matches_the_breakdown(net: Store) -> None:
    two_incidents(net)
    refresh_queue(net, scoring(), now=T, currency="EUR")
    q = queue_rows(net).set_index("title")
    top = q.loc["ran-1 down at Harbour gNodeB"]
    bd = json.loads(top["breakdown"])
    pts = {k: v["points"] for k, v in bd["factors"].items()}
    assert sum(pts.values()) == pytest.approx(top["score"], abs=1e-3)
    strongest = sorted(pts, key=lambda k: -pts[k])[:3]
    assert set(strongest) == {"sla_urgency", "severity", "revenue_at_risk"}
    inputs = bd["inputs"]
    assert inputs["minutes_to_breach"] == pytest.approx(10)
    money = fmt_money_short(inputs["revenue_at_risk_per_hour"], "EUR")
    assert money == "EUR 606"
    assert top["reason"] == f"#1: {money}/h at risk, SLA breach in 10 min, critical severity"
    second = q.loc["ran-2 down at Hill eNodeB"]
    assert second["reason"].startswith("#2: 500 lines affected")


def test_ties_break_by_severity_then_age_then_id(net: Store) -> None:
    # Two alarms on power and the RAN node it feeds... no: two unrelated empty resources score the same.
    ingest(
        net,
        "resources",
        [{"id": "x-1", "name": "Spare A", "kind": "ran"}, {"id": "x-2", "name": "Spare B", "kind": "ran"}],
    )
    ingest(
        net,
        "alarms",
        [alarm("X2", "x-2", T - timedelta(minutes=5)), alarm("X1", "x-1", T - timedelta(minutes=5))],
    )
    refresh_queue(net, scoring(), now=T, currency="EUR")
    q = queue_rows(net)
    assert q["score"].nunique() == 1
    ids = q["incident_id"].tolist()
    assert ids == sorted(ids)
    assert q["rank"].tolist() == [1, 2]
