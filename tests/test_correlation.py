"""Alarm correlation into incidents: roots, merges, clears, flapping, replay and the simulator's faults.

The network is described in :mod:`tests.incident_net`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from dashboard.incidents import read
from dashboard.incidents.queue import refresh_queue
from dashboard.store.db import Store
from dashboard.store.schema import incident_alarms
from tests.incident_net import T, alarm, build_network, engine_incidents, ingest, queue_rows, scoring

# --- correlation ------------------------------------------------------------------------------------


def test_topology_related_alarms_form_one_incident_with_the_top_most_root(net: Store) -> None:
    t0 = T - timedelta(minutes=30)
    ingest(
        net,
        "alarms",
        [
            alarm("TX", "tx-1", t0),
            alarm("R1", "ran-1", t0 + timedelta(minutes=1), severity="major"),
            alarm("R2", "ran-2", t0 + timedelta(minutes=2), severity="major"),
        ],
    )
    refresh_queue(net, scoring(), now=T, currency="EUR")
    inc = engine_incidents(net)
    assert len(inc) == 1
    row = inc.iloc[0]
    assert row["root_alarm_id"] == "TX" and row["root_resource_id"] == "tx-1"
    assert row["state"] == "open" and row["severity"] == "critical"
    assert row["title"] == "tx-1 down at Harbour transport hub" and row["region_id"] == "R1"
    with net.connect() as conn:
        cells = read.affected_cells(conn, row["id"])
        members = conn.execute(select(func.count()).select_from(incident_alarms)).scalar_one()
    assert sorted(cells["cell_id"]) == ["c1", "c2", "c3"] and members == 3
    q = queue_rows(net).iloc[0]
    assert q["lines"] == pytest.approx(505) and q["cells"] == 3


def test_symptoms_first_then_the_root_merge_into_one_incident(net: Store) -> None:
    t0 = T - timedelta(minutes=30)
    ingest(net, "alarms", [alarm("R1", "ran-1", t0), alarm("R2", "ran-2", t0 + timedelta(seconds=30))])
    refresh_queue(net, scoring(), now=t0 + timedelta(minutes=1), currency="EUR")
    assert len(engine_incidents(net)) == 2  # siblings: not related to each other
    ingest(net, "alarms", [alarm("TX", "tx-1", t0 + timedelta(minutes=1))])
    refresh_queue(net, scoring(), now=T, currency="EUR")
    inc = engine_incidents(net).set_index("id")
    live = inc[inc["state"] == "open"]
    merged = inc[inc["state"] == "merged"]
    assert len(live) == 1 and len(merged) == 1
    assert merged.iloc[0]["merged_into"] == live.index[0]
    assert live.iloc[0]["root_alarm_id"] == "TX"
    assert len(queue_rows(net)) == 1


def test_a_cleared_root_cause_resolves_the_incident_then_it_closes(net: Store) -> None:
    t0 = T - timedelta(minutes=30)
    ingest(net, "alarms", [alarm("TX", "tx-1", t0), alarm("R1", "ran-1", t0 + timedelta(minutes=1))])
    refresh_queue(net, scoring(), now=T, currency="EUR")
    ingest(net, "alarms", [alarm("TX", "tx-1", t0, cleared=T)])  # the symptom R1 is still active
    refresh_queue(net, scoring(), now=T + timedelta(minutes=1), currency="EUR")
    row = engine_incidents(net).iloc[0]
    assert row["state"] == "resolved" and row["resolved_at"] == T
    q = queue_rows(net).iloc[0]
    assert pd.isna(q["rank"]) and q["score"] == 0 and q["reason"].startswith("Resolved at 12:00 UTC")
    refresh_queue(net, scoring(), now=T + timedelta(hours=1, minutes=1), currency="EUR")
    assert engine_incidents(net).iloc[0]["state"] == "closed"
    assert queue_rows(net).empty


def test_a_flapping_alarm_reopens_its_incident_instead_of_opening_new_ones(net: Store) -> None:
    t0 = T - timedelta(hours=2)
    for k in range(3):  # raise 10 min, clear, re-raise 5 min later; new alarm ids each time
        up = t0 + timedelta(minutes=15 * k)
        ingest(net, "alarms", [alarm(f"F{k}", "ran-1", up)])
        refresh_queue(net, scoring(), now=up + timedelta(minutes=1), currency="EUR")
        ingest(net, "alarms", [alarm(f"F{k}", "ran-1", up, cleared=up + timedelta(minutes=10))])
        refresh_queue(net, scoring(), now=up + timedelta(minutes=11), currency="EUR")
    inc = engine_incidents(net)
    assert len(inc) == 1
    assert inc.iloc[0]["flaps"] == 2 and inc.iloc[0]["state"] == "resolved"
    # Long after it closed, the same fault again is a new incident.
    later = t0 + timedelta(hours=5)
    refresh_queue(net, scoring(), now=later, currency="EUR")
    ingest(net, "alarms", [alarm("F9", "ran-1", later)])
    refresh_queue(net, scoring(), now=later + timedelta(minutes=1), currency="EUR")
    inc = engine_incidents(net)
    assert sorted(inc["state"]) == ["closed", "open"]


def test_replaying_alarms_gives_the_same_queue(net: Store, tmp_path: Any) -> None:
    t0 = T - timedelta(minutes=40)
    batch = [
        alarm("TX", "tx-1", t0),
        alarm("R1", "ran-1", t0 + timedelta(minutes=1)),
        alarm("P1", "pwr-1", t0 + timedelta(minutes=25)),
        alarm("B1", "ran-2", t0 + timedelta(minutes=30)),
        alarm("X", "rtr-1", t0 - timedelta(hours=3), cleared=t0 - timedelta(hours=2)),
    ]
    ingest(net, "alarms", batch[:2])
    refresh_queue(net, scoring(), now=t0 + timedelta(minutes=5), currency="EUR")
    ingest(net, "alarms", batch[2:])
    refresh_queue(net, scoring(), now=T, currency="EUR")
    first = queue_rows(net)[["incident_id", "rank", "score", "reason"]]
    before = engine_incidents(net)[["id", "state", "root_alarm_id", "changed_at"]]
    # The same alarms again change nothing.
    ingest(net, "alarms", batch)
    again = refresh_queue(net, scoring(), now=T + timedelta(seconds=30), currency="EUR")
    assert again.correlation.changed == 0 and again.correlation.opened == 0
    pd.testing.assert_frame_equal(queue_rows(net)[["incident_id", "rank", "score", "reason"]], first)
    pd.testing.assert_frame_equal(
        engine_incidents(net)[["id", "state", "root_alarm_id", "changed_at"]], before
    )
    # A fresh store fed everything at once builds the same incidents and queue.
    fresh = Store(f"sqlite:///{tmp_path / 'replay.db'}")
    fresh.upgrade()
    build_network(fresh)
    ingest(fresh, "alarms", batch)
    refresh_queue(fresh, scoring(), now=T, currency="EUR")
    pd.testing.assert_frame_equal(queue_rows(fresh)[["incident_id", "rank", "score", "reason"]], first)
    fresh.dispose()


# --- the simulator ------------------------------------------------------------------------------


def test_correlation_recovers_the_simulators_faults(tmp_path: Any) -> None:
    """On the simulated operator, each simulated fault becomes one incident rooted at its resource."""
    simulator = pytest.importorskip("connectors.simulator")
    from connectors.base import ConnectorContext
    from dashboard.ingest import run_connector

    anchor = datetime(2026, 11, 19)
    options = simulator.SimulatorOptions(
        subscribers=3000, days=7, anchor=anchor, seed=3, causal={"incident_rate_per_resource_day": 0.01}
    )
    conn_ = simulator.SimulatorConnector(options, ConnectorContext(name="sim", now=lambda: anchor))
    store = Store(f"sqlite:///{tmp_path / 'sim.db'}")
    store.upgrade()
    run_connector(store, conn_, streams=["topology", "customers", "faults"])
    refresh_queue(store, scoring(), now=anchor, currency="EUR")
    truth = conn_.incident_truth(anchor - timedelta(days=7), anchor)
    truth = truth[(truth["opened_at"] < anchor) & ~truth["silent"].astype(bool)]
    got = engine_incidents(store)
    got = got[got["state"] != "merged"]
    assert len(truth) > 5
    # Faults that overlap on related resources are one incident for the NOC; otherwise one to one.
    assert len(got) >= 0.9 * len(truth)
    matched = truth.merge(got, left_on="root_alarm_id", right_on="root_alarm_id", how="inner")
    assert len(matched) >= 0.9 * len(truth)
    assert (matched["root_resource_id_x"] == matched["root_resource_id_y"]).all()
    store.dispose()
