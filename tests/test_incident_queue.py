"""The value-weighted incident queue on small hand-made networks with numbers worked out by hand.

The network: router rtr-1 -> transport tx-1 -> RAN nodes ran-1 (site S1) and ran-2 (site S2);
power plant pwr-1 -> ran-1; ran-1 serves cell c1, ran-2 serves c2 and c3. Enterprise account ENT
has 5 lines on c1 (ARPU 50, restore target 30 min, penalty 600/h); 500 consumer lines sit on c2
(ARPU 20). No KPI samples arrive, so every affected cell counts as fully degraded (assumed share 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from connectors.base import Batch
from dashboard.incidents import read
from dashboard.incidents.actions import ActionError, acknowledge, add_note, assign
from dashboard.incidents.correlate import ENGINE_SOURCE
from dashboard.incidents.impact import degraded_share
from dashboard.incidents.queue import refresh_queue
from dashboard.incidents.scoring import fmt_money_short
from dashboard.incidents.value import rebuild, refresh_values
from dashboard.ingest import Ingestor
from dashboard.kpis import Catalogue, Scoring, load_catalogue
from dashboard.store.db import Store
from dashboard.store.schema import audit, cell_value, incident_alarms, incident_queue, incidents

T = datetime(2026, 3, 2, 12, 0)


def catalogue() -> Catalogue:
    return load_catalogue("kpi_definitions.yaml")


def scoring(**changes: Any) -> Scoring:
    return catalogue().scoring.model_copy(update=changes)


def _ingest(
    store: Store,
    kind: str,
    records: Iterable[dict[str, Any]],
    source: str = "net",
    clock: Callable[[], datetime] | None = None,
) -> None:
    ingestor = Ingestor(store, clock=clock) if clock else Ingestor(store)
    counts = ingestor.ingest(source, [Batch(kind=kind, records=list(records))])
    assert counts.quarantined == 0, counts


def build_network(store: Store, clock: Callable[[], datetime] | None = None) -> None:
    def ingest(store: Store, kind: str, records: Iterable[dict[str, Any]]) -> None:
        _ingest(store, kind, records, clock=clock)

    ingest(store, "regions", [{"id": "R1", "name": "North"}])
    ingest(
        store,
        "sites",
        [
            {"id": "S1", "region_id": "R1", "name": "Harbour", "lat": 41.15, "lon": -8.61},
            {"id": "S2", "region_id": "R1", "name": "Hill", "lat": 41.18, "lon": -8.60},
        ],
    )
    ingest(
        store,
        "resources",
        [
            {"id": "rtr-1", "site_id": "S1", "name": "Harbour aggregation router", "kind": "router"},
            {"id": "tx-1", "site_id": "S1", "name": "Harbour transport hub", "kind": "transport"},
            {"id": "ran-1", "site_id": "S1", "name": "Harbour gNodeB", "kind": "ran"},
            {"id": "ran-2", "site_id": "S2", "name": "Hill eNodeB", "kind": "ran"},
            {"id": "pwr-1", "site_id": "S1", "name": "Harbour power plant", "kind": "power"},
        ],
    )
    ingest(
        store,
        "cells",
        [
            {"id": c, "site_id": s, "name": c.upper(), "technology": "4g"}
            for c, s in (("c1", "S1"), ("c2", "S2"), ("c3", "S2"))
        ],
    )
    edges = [
        ("resource", "rtr-1", "resource", "tx-1"),
        ("resource", "tx-1", "resource", "ran-1"),
        ("resource", "tx-1", "resource", "ran-2"),
        ("resource", "pwr-1", "resource", "ran-1"),
        ("resource", "ran-1", "cell", "c1"),
        ("resource", "ran-2", "cell", "c2"),
        ("resource", "ran-2", "cell", "c3"),
    ]
    ingest(
        store,
        "topology_edges",
        [{"parent_type": a, "parent_id": b, "child_type": c, "child_id": d} for a, b, c, d in edges],
    )
    ingest(
        store,
        "accounts",
        [
            {
                "id": "ENT",
                "name": "Harbour Logistics",
                "segment": "enterprise",
                "vip": False,
                "account_manager": "Ana Costa",
                "sla_restore_minutes": 30,
                "penalty_per_hour": 600.0,
            },
            {"id": "CONS", "name": "Consumers", "segment": "consumer", "vip": False},
        ],
    )
    subs = [
        {"id": f"E{i}", "account_id": "ENT", "msisdn": f"35191000000{i}", "arpu": 50.0, "home_cell_id": "c1"}
        for i in range(5)
    ]
    subs += [
        {
            "id": f"C{i:03d}",
            "account_id": "CONS",
            "msisdn": f"3519200{i:05d}",
            "arpu": 20.0,
            "home_cell_id": "c2",
        }
        for i in range(500)
    ]
    ingest(store, "subscribers", subs)
    ingest(
        store,
        "subscriber_cells",
        [{"subscriber_id": s["id"], "cell_id": s["home_cell_id"], "share": 1.0} for s in subs],
    )


def alarm(
    alarm_id: str,
    resource: str,
    raised: datetime,
    *,
    cleared: datetime | None = None,
    severity: str = "critical",
) -> dict[str, Any]:
    return {
        "id": alarm_id,
        "resource_id": resource,
        "severity": "cleared" if cleared else severity,
        "state": "cleared" if cleared else "raised",
        "probable_cause": "equipmentMalfunction",
        "specific_problem": f"{resource} down",
        "service_affecting": True,
        "raised_at": raised,
        "changed_at": cleared or raised,
        "cleared_at": cleared,
    }


@pytest.fixture
def net(store: Store) -> Store:
    build_network(store)
    return store


ingest = _ingest


def queue_rows(store: Store) -> pd.DataFrame:
    with store.connect() as conn:
        return read.queue(conn, limit=100)


def engine_incidents(store: Store) -> pd.DataFrame:
    with store.connect() as conn:
        return pd.DataFrame(
            conn.execute(
                select(incidents).where(incidents.c.source == ENGINE_SOURCE).order_by(incidents.c.id)
            ).fetchall()
        )


# --- value and priority ---------------------------------------------------------------------------


def _two_incidents(store: Store) -> None:
    """A: ran-1 (5 enterprise lines on c1); B: ran-2 (500 consumer lines on c2); both 20 min old."""
    ingest(
        store,
        "alarms",
        [
            alarm("A1", "ran-1", T - timedelta(minutes=20)),
            alarm("B1", "ran-2", T - timedelta(minutes=20), severity="critical"),
        ],
    )


def test_enterprise_sla_outranks_consumer_volume_when_the_weights_say_so(net: Store) -> None:
    _two_incidents(net)
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
    _two_incidents(net)
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
    _two_incidents(net)
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


# --- impact and aggregates ----------------------------------------------------------------------


def test_degraded_share_is_unavailability_or_throughput_shortfall() -> None:
    share = degraded_share(
        pd.Series([100.0, 60.0, 100.0, 99.0, math.nan]),
        pd.Series([50.0, 50.0, 20.0, 49.0, 10.0]),
        pd.Series([50.0, 50.0, 50.0, 50.0, 40.0]),
        min_share=0.05,
    )
    assert share.tolist() == pytest.approx([0.0, 0.4, 0.6, 0.0, 0.75])


def test_kpis_measure_each_cells_degraded_share(net: Store) -> None:
    opened = T - timedelta(minutes=20)
    samples = []
    for minutes in (60, 45, 30, 15):  # the hour before: 40 Mbit/s on c2 and c3
        for cell in ("c2", "c3"):
            samples.append(
                {
                    "entity_type": "cell",
                    "entity_id": cell,
                    "kpi": "dl_throughput_mbps",
                    "period_start": opened - timedelta(minutes=minutes) - timedelta(minutes=2),
                    "value": 40.0,
                }
            )
    now_period = T - timedelta(minutes=15)
    samples += [
        {
            "entity_type": "cell",
            "entity_id": "c2",
            "kpi": "availability_pct",
            "period_start": now_period,
            "value": 100.0,
        },
        {
            "entity_type": "cell",
            "entity_id": "c2",
            "kpi": "dl_throughput_mbps",
            "period_start": now_period,
            "value": 10.0,
        },
        {
            "entity_type": "cell",
            "entity_id": "c3",
            "kpi": "availability_pct",
            "period_start": now_period,
            "value": 50.0,
        },
        {
            "entity_type": "cell",
            "entity_id": "c3",
            "kpi": "dl_throughput_mbps",
            "period_start": now_period,
            "value": 40.0,
        },
    ]
    ingest(net, "kpi_samples", samples)
    ingest(net, "alarms", [alarm("B1", "ran-2", opened, severity="major")])
    refresh_queue(net, scoring(), now=T, currency="EUR")
    with net.connect() as conn:
        inc_id = queue_rows(net).iloc[0]["incident_id"]
        cells = read.affected_cells(conn, inc_id).set_index("cell_id")
    assert cells.loc["c2", "degraded_share"] == pytest.approx(0.75)  # 10 of 40 Mbit/s
    assert cells.loc["c3", "degraded_share"] == pytest.approx(0.5)  # half available
    assert set(cells["basis"]) == {"kpi"}
    q = queue_rows(net).iloc[0]
    assert q["value"] == pytest.approx(500 * 20 * 0.75)  # c2's 500 lines, 75% degraded


def test_value_aggregates_follow_changed_subscribers_only(tmp_path: Any) -> None:
    net = Store(f"sqlite:///{tmp_path / 'v.db'}")
    net.upgrade()
    build_network(net, clock=lambda: T - timedelta(hours=1))
    with net.begin() as conn:
        first = refresh_values(conn, now=T)
    assert first.full
    ingest(
        net,
        "subscribers",
        [{"id": "E0", "account_id": "ENT", "msisdn": "351910000000", "arpu": 80.0, "home_cell_id": "c1"}],
        clock=lambda: T + timedelta(minutes=1),
    )
    with net.begin() as conn:
        step = refresh_values(conn, now=T + timedelta(minutes=2))
        incremental = pd.DataFrame(
            conn.execute(select(cell_value).order_by(cell_value.c.cell_id, cell_value.c.segment)).fetchall()
        )
    assert not step.full and step.cells == 1  # only c1, E0's cell
    with net.begin() as conn:  # the change is re-read (the watermark trails the clock) but not redone
        assert refresh_values(conn, now=T + timedelta(minutes=3)).cells == 0
    with net.begin() as conn:
        rebuild(conn, now=T)
        full = pd.DataFrame(
            conn.execute(select(cell_value).order_by(cell_value.c.cell_id, cell_value.c.segment)).fetchall()
        )
    cols = ["cell_id", "segment", "vip", "lines", "arpu"]
    pd.testing.assert_frame_equal(incremental[cols], full[cols])
    assert full.set_index("cell_id").loc["c1", "arpu"] == pytest.approx(4 * 50 + 80)
    net.dispose()


def _aggregates(conn: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    from dashboard.store.schema import cell_account_value

    cols = [c for c in cell_value.c if c.name != "updated_at"]
    v = pd.DataFrame(
        conn.execute(
            select(*cols).order_by(cell_value.c.cell_id, cell_value.c.segment, cell_value.c.vip)
        ).fetchall(),
        columns=[c.name for c in cols],
    )
    acols = [c for c in cell_account_value.c if c.name != "updated_at"]
    a = pd.DataFrame(
        conn.execute(
            select(*acols).order_by(cell_account_value.c.cell_id, cell_account_value.c.account_id)
        ).fetchall(),
        columns=[c.name for c in acols],
    )
    return v.assign(vip=v["vip"].astype(bool)), a


def test_incremental_value_passes_match_a_full_rebuild_through_every_kind_of_change(net: Store) -> None:
    """Each pass re-reads only the changed lines (kept in the process between passes); after every
    kind of change the aggregates equal those a full rebuild computes from scratch."""
    from dashboard.store.schema import subscriber_signals
    from dashboard.store.upsert import upsert

    build_network(net, clock=lambda: T - timedelta(hours=1))
    with net.begin() as conn:
        assert refresh_values(conn, now=T).full
    t = [T]

    def at() -> datetime:
        return t[0]

    def signals(rows: list[dict[str, Any]]) -> None:
        with net.begin() as conn:
            upsert(
                conn,
                subscriber_signals,
                pd.DataFrame([r | {"source": "vantage", "scored_at": at()} for r in rows]),
                now=at(),
            )

    changes: list[tuple[str, Callable[[], None]]] = [
        (
            "ARPU",
            lambda: ingest(
                net,
                "subscribers",
                [
                    {
                        "id": "C001",
                        "account_id": "CONS",
                        "msisdn": "351920000001",
                        "arpu": 99.5,
                        "home_cell_id": "c2",
                    }
                ],
                clock=at,
            ),
        ),
        (
            "churned",
            lambda: ingest(
                net,
                "subscribers",
                [
                    {
                        "id": "C002",
                        "account_id": "CONS",
                        "msisdn": "351920000002",
                        "arpu": 20.0,
                        "home_cell_id": "c2",
                        "status": "churned",
                    }
                ],
                clock=at,
            ),
        ),
        (
            "moved to a business account",
            lambda: ingest(
                net,
                "subscribers",
                [
                    {
                        "id": "C003",
                        "account_id": "ENT",
                        "msisdn": "351920000003",
                        "arpu": 45.0,
                        "home_cell_id": "c2",
                    }
                ],
                clock=at,
            ),
        ),
        (
            "account became VIP",
            lambda: ingest(
                net,
                "accounts",
                [
                    {
                        "id": "ENT",
                        "name": "Harbour Logistics",
                        "segment": "enterprise",
                        "vip": True,
                        "sla_restore_minutes": 30,
                        "penalty_per_hour": 600.0,
                    }
                ],
                clock=at,
            ),
        ),
        (
            "served on a second cell",
            lambda: ingest(
                net,
                "subscriber_cells",
                [
                    {"subscriber_id": "E1", "cell_id": "c3", "share": 0.4},
                    {"subscriber_id": "E1", "cell_id": "c1", "share": 0.6},
                ],
                clock=at,
            ),
        ),
        (
            "new line on its home cell only",
            lambda: ingest(
                net,
                "subscribers",
                [
                    {
                        "id": "N1",
                        "account_id": "ENT",
                        "msisdn": "351930000001",
                        "arpu": 70.0,
                        "home_cell_id": "c3",
                    }
                ],
                clock=at,
            ),
        ),
        (
            "signals re-scored",
            lambda: signals(
                [
                    {
                        "subscriber_id": "C004",
                        "churn_risk": 0.8,
                        "sentiment_30d": -0.6,
                        "tickets_30d": 3,
                        "negative_tickets_30d": 2,
                    },
                    {
                        "subscriber_id": "E2",
                        "churn_risk": 0.1,
                        "sentiment_30d": None,
                        "tickets_30d": 0,
                        "negative_tickets_30d": 0,
                    },
                ]
            ),
        ),
        (
            "account service on a cell",
            lambda: (
                ingest(
                    net,
                    "services",
                    [{"id": "SVC-9", "account_id": "ENT", "name": "MPLS", "status": "active"}],
                    clock=at,
                ),
                ingest(
                    net,
                    "topology_edges",
                    [
                        {
                            "parent_type": "cell",
                            "parent_id": "c2",
                            "child_type": "service",
                            "child_id": "SVC-9",
                        }
                    ],
                    clock=at,
                ),
            ),
        ),
    ]
    for what, change in changes:
        t[0] += timedelta(minutes=1)
        change()
        t[0] += timedelta(seconds=30)
        with net.begin() as conn:
            step = refresh_values(conn, now=at())
            assert not step.full and step.cells >= 1, what
            incremental = _aggregates(conn)
        with net.connect() as conn, conn.begin() as tx:
            rebuild(conn, now=at())
            fresh = _aggregates(conn)
            tx.rollback()
        for got, want in zip(incremental, fresh, strict=True):
            pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, obj=what)
    # c2's 500 consumer lines less the churned one and the one moved to the enterprise account.
    c2 = fresh[0].set_index(["cell_id", "segment", "vip"])
    assert c2.loc[("c2", "consumer", False), "lines"] == pytest.approx(498)
    assert c2.loc[("c2", "enterprise", True), "lines"] == pytest.approx(1)


# --- API and actions -----------------------------------------------------------------------------


def test_api_serves_the_ranked_queue_and_one_incident(net: Store) -> None:
    from dashboard.config import Settings
    from tests.apps import new_app

    _two_incidents(net)
    refresh_queue(net, scoring(), now=T, currency="EUR")
    app = new_app(net, Settings(database_url=net.url))
    client = app.server.test_client()
    body = client.get("/api/v1/incidents?limit=5&state=open").get_json()
    assert body["currency"] == "EUR" and body["count"] == 2
    top = body["incidents"][0]
    assert top["rank"] == 1 and top["reason"].startswith("#1: ") and top["region"] == "North"
    assert set(top["breakdown"]["factors"]) == {
        "severity",
        "subscriber_value",
        "revenue_at_risk",
        "sla_urgency",
        "sentiment",
        "churn_risk",
    }
    assert top["sla_deadline"] == "2026-03-02T12:10:00Z"
    assert client.get("/api/v1/incidents?region=R1").get_json()["count"] == 2
    assert client.get("/api/v1/incidents?region=South").get_json()["count"] == 0
    assert client.get("/api/v1/incidents?segment=enterprise").get_json()["count"] == 1
    bad = client.get("/api/v1/incidents?limit=zero")
    assert bad.status_code == 400 and "limit" in bad.get_json()["error"]
    assert client.get("/api/v1/incidents?state=sleeping").status_code == 400
    detail = client.get(f"/api/v1/incidents/{top['id']}").get_json()
    assert detail["queue"]["rank"] == 1 and detail["impact"]["subscribers"] == 5
    account = detail["impact"]["accounts"][0]
    assert (
        account["account_id"] == "ENT" and account["running"] is True and account["penalty_per_hour"] == 600.0
    )
    assert [a["id"] for a in detail["alarms"]] == ["A1"]
    assert client.get("/api/v1/incidents/INC-nope").status_code == 404
    net.dispose()


def test_actions_are_stored_and_audited_and_survive_correlation(net: Store) -> None:
    _two_incidents(net)
    refresh_queue(net, scoring(), now=T, currency="EUR")
    inc_id = queue_rows(net).iloc[0]["incident_id"]
    assert acknowledge(net, inc_id, actor="noc-1", now=T)
    assert not acknowledge(net, inc_id, actor="noc-1", now=T)
    assert assign(net, inc_id, "RAN team", actor="noc-1", now=T)
    note = add_note(net, inc_id, "Field engineer dispatched, ETA 40 min", actor="noc-1", now=T)
    with pytest.raises(ActionError):
        add_note(net, inc_id, "   ", actor="noc-1", now=T)
    with pytest.raises(ActionError):
        acknowledge(net, "INC-unknown", actor="noc-1", now=T)
    # A later alarm on the same incident does not undo what operators did.
    ingest(net, "alarms", [alarm("A2", "ran-1", T + timedelta(minutes=1), severity="major")])
    refresh_queue(net, scoring(), now=T + timedelta(minutes=2), currency="EUR")
    row = engine_incidents(net).set_index("id").loc[inc_id]
    assert row["state"] == "acknowledged" and row["owner"] == "RAN team" and row["acked_at"] == T
    with net.connect() as conn:
        q = conn.execute(
            select(incident_queue.c.owner, incident_queue.c.state).where(
                incident_queue.c.incident_id == inc_id
            )
        ).one()
        actions = [
            r.action
            for r in conn.execute(select(audit).where(audit.c.target_id == inc_id).order_by(audit.c.id))
        ]
        notes = read.notes(conn, inc_id)
    assert tuple(q) == ("RAN team", "acknowledged")
    assert actions == ["incident.acknowledge", "incident.assign", "incident.note"]
    assert notes["id"].tolist() == [note] and notes["author"].tolist() == ["noc-1"]


def test_affected_subscribers_page_sorted_by_value_and_exported(net: Store) -> None:
    ingest(net, "alarms", [alarm("TX", "tx-1", T - timedelta(minutes=5))])
    refresh_queue(net, scoring(), now=T, currency="EUR")
    inc_id = queue_rows(net).iloc[0]["incident_id"]
    s = scoring()
    with net.connect() as conn:
        page, total = read.affected_subscribers(conn, inc_id, s, limit=10)
        last, _ = read.affected_subscribers(conn, inc_id, s, offset=500, limit=10)
        csv = read.affected_subscribers_csv(conn, inc_id, s)
    assert total == 505
    assert page["id"].tolist()[:5] == [f"E{i}" for i in range(5)]  # 50 x 1.5 beats 20
    assert page["value"].iloc[0] == pytest.approx(75.0)
    assert len(last) == 5
    assert page["msisdn"].iloc[0].endswith("000") and "35191" not in page["msisdn"].iloc[0]
    assert csv.count("\n") == 506 and "351910000000" not in csv


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
    truth = truth[truth["opened_at"] < anchor]
    got = engine_incidents(store)
    got = got[got["state"] != "merged"]
    assert len(truth) > 5
    # Faults that overlap on related resources are one incident for the NOC; otherwise one to one.
    assert len(got) >= 0.9 * len(truth)
    matched = truth.merge(got, left_on="root_alarm_id", right_on="root_alarm_id", how="inner")
    assert len(matched) >= 0.9 * len(truth)
    assert (matched["root_resource_id_x"] == matched["root_resource_id_y"]).all()
    store.dispose()


# --- incremental refresh --------------------------------------------------------------------------


def test_steady_state_refresh_matches_a_fresh_computation(store: Store) -> None:
    """Later refreshes reuse the last one's measurements; value changes still re-rank, and a fresh
    computation (another process, nothing remembered) stores the same queue."""
    from dashboard.incidents.queue import forget

    net = store
    build_network(net, clock=lambda: T - timedelta(hours=1))
    _two_incidents(net)
    s = scoring()
    refresh_queue(net, s, now=T, currency="EUR")
    before = queue_rows(net).set_index("title").loc["ran-2 down at Hill eNodeB"]
    # The 500 consumers on c2 become enterprise lines at ARPU 40: B's value and score rise.
    later = T + timedelta(minutes=1)
    ingest(
        net,
        "accounts",
        [{"id": "CONS", "name": "Consumers", "segment": "enterprise", "vip": False}],
        clock=lambda: later,
    )
    ingest(
        net,
        "subscribers",
        [
            {
                "id": f"C{i:03d}",
                "account_id": "CONS",
                "msisdn": f"3519200{i:05d}",
                "arpu": 40.0,
                "home_cell_id": "c2",
            }
            for i in range(500)
        ],
        clock=lambda: later,
    )
    step = refresh_queue(net, s, now=later + timedelta(seconds=30), currency="EUR")
    assert step.measured == 1  # only B, the incident on c2 (A only ages)
    cols = [
        "incident_id",
        "rank",
        "score",
        "value",
        "enterprise_lines",
        "sla_deadline",
        "breakdown",
        "reason",
    ]
    incremental = queue_rows(net)[cols]
    b = queue_rows(net).set_index("title").loc["ran-2 down at Hill eNodeB"]
    assert b["value"] == pytest.approx(500 * 40 * 1.5) and b["enterprise_lines"] == pytest.approx(500)
    assert b["score"] > before["score"] and b["sla_accounts"] == 1
    forget(net)
    fresh = refresh_queue(net, s, now=later + timedelta(seconds=30), currency="EUR")
    assert fresh.measured == 2
    pd.testing.assert_frame_equal(queue_rows(net)[cols], incremental)
    # Time alone moves the SLA clock: nothing is re-measured, the deadline stays, urgency grows.
    again = refresh_queue(net, s, now=later + timedelta(minutes=5), currency="EUR")
    assert again.measured == 0
    a = queue_rows(net).set_index("title").loc["ran-1 down at Harbour gNodeB"]
    assert a["sla_deadline"] == T + timedelta(minutes=10)
    assert json.loads(a["breakdown"])["inputs"]["sla_breached"] == 0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_stores(request: Any, tmp_path: Any) -> Iterable[tuple[Store, Store]]:
    """Two empty stores of one backend."""
    import uuid

    from sqlalchemy import create_engine, text

    from tests.conftest import PG_URL, require_pg

    made: list[Store] = []
    schemas: list[str] = []
    for k in range(2):
        if request.param == "sqlite":
            made.append(Store(f"sqlite:///{tmp_path / f'{k}.db'}"))
        else:
            require_pg()
            schemas.append(f"vt_{uuid.uuid4().hex[:12]}")
            made.append(Store(PG_URL, schema=schemas[-1]))
        made[-1].upgrade()
    yield made[0], made[1]
    for st in made:
        st.dispose()
    if schemas:
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            for name in schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def test_remembering_refreshes_store_what_refreshes_from_scratch_store(
    two_stores: tuple[Store, Store],
) -> None:
    """One story (symptoms, their root, an operator's acknowledgement and assignment, a merge, a clear,
    a flap, customers changing, the close) refreshed by one process that remembers between passes
    and by one that forgets before each: the same incidents, memberships and queue at every step."""
    from dashboard.incidents.actions import assign
    from dashboard.incidents.queue import forget

    t0 = T - timedelta(hours=1)
    steps: list[tuple[datetime, Callable[[Store, datetime], None]]] = [
        (
            t0,
            lambda s, t: ingest(
                s, "alarms", [alarm("S1", "ran-1", t), alarm("S2", "ran-2", t)], clock=lambda: t
            ),
        ),
        (
            t0 + timedelta(minutes=2),
            lambda s, t: ingest(s, "alarms", [alarm("R1", "tx-1", t)], clock=lambda: t),
        ),
        (t0 + timedelta(minutes=4), lambda s, t: None),
        (
            t0 + timedelta(minutes=6),
            lambda s, t: ingest(s, "alarms", [alarm("P1", "pwr-1", t, severity="major")], clock=lambda: t),
        ),
        (
            t0 + timedelta(minutes=8),
            lambda s, t: ingest(
                s,
                "subscribers",
                [
                    {
                        "id": "C007",
                        "account_id": "ENT",
                        "msisdn": "351920000007",
                        "arpu": 80.0,
                        "home_cell_id": "c2",
                    }
                ],
                clock=lambda: t,
            ),
        ),
        (
            t0 + timedelta(minutes=10),
            lambda s, t: ingest(
                s,
                "alarms",
                [
                    alarm("R1", "tx-1", t0 + timedelta(minutes=2), cleared=t),
                    alarm("S1", "ran-1", t0, cleared=t),
                    alarm("S2", "ran-2", t0, cleared=t),
                    alarm("P1", "pwr-1", t0 + timedelta(minutes=6), cleared=t),
                ],
                clock=lambda: t,
            ),
        ),
        (
            t0 + timedelta(minutes=13),
            lambda s, t: ingest(s, "alarms", [alarm("R2", "tx-1", t)], clock=lambda: t),
        ),
        (
            t0 + timedelta(minutes=15),
            lambda s, t: ingest(
                s,
                "alarms",
                [
                    alarm("R2", "tx-1", t0 + timedelta(minutes=13), cleared=t),
                ],
                clock=lambda: t,
            ),
        ),
        (t0 + timedelta(hours=3), lambda s, t: None),
    ]
    remembering, fresh = two_stores
    for st in two_stores:
        build_network(st, clock=lambda: t0 - timedelta(hours=1))
    cols = [c for c in incidents.c if c.name not in ("ingested_at",)]
    for k, (when, change) in enumerate(steps):
        for st in two_stores:
            change(st, when)
            if st is fresh:
                forget(st)
            done = refresh_queue(st, scoring(), now=when + timedelta(seconds=30), currency="EUR")
            if k == 0:  # two sibling RAN nodes, no common alarmed parent yet: two incidents
                assert done.correlation.opened == 2
            if k == 2:  # the operator takes the first incident
                first = engine_incidents(st)["id"].iloc[0]
                acknowledge(st, first, actor="noc", now=when + timedelta(seconds=40))
                assign(st, first, owner="ana", actor="noc", now=when + timedelta(seconds=40))
        got = []
        for st in two_stores:
            with st.connect() as conn:
                members = select(incident_alarms.c.incident_id, incident_alarms.c.alarm_id).order_by(
                    incident_alarms.c.incident_id, incident_alarms.c.alarm_id
                )
                got.append(
                    (
                        pd.DataFrame(conn.execute(select(*cols).order_by(incidents.c.id)).fetchall()),
                        pd.DataFrame(conn.execute(members).fetchall()),
                    )
                )
        pd.testing.assert_frame_equal(got[0][0], got[1][0], obj=f"incidents after step {k}")
        pd.testing.assert_frame_equal(got[0][1], got[1][1], obj=f"memberships after step {k}")
        q = ["incident_id", "rank", "score", "state", "owner", "lines", "sla_deadline", "breakdown", "reason"]
        pd.testing.assert_frame_equal(
            queue_rows(remembering)[q], queue_rows(fresh)[q], obj=f"queue after step {k}"
        )
    final = engine_incidents(remembering)
    assert set(final["state"]) == {"closed", "merged"} and final["flaps"].max() >= 1


def test_breakdowns_are_written_exactly_as_json_dumps_writes_them() -> None:
    """The breakdown JSON is assembled a column at a time; it must match json.dumps value for value."""
    from dashboard.incidents import scoring as sc

    floats = [0.0, -0.0, 1.5, 1e-7, 123456789.123456, 2.675, math.nan, math.inf, -math.inf, 1 / 3]
    assert sc._jfloats(floats) == [json.dumps(v) for v in floats]
    assert sc._jfloats(floats, nan="null") == [json.dumps(None if v != v else v) for v in floats]
    cases = {
        "lines": pd.Series(floats, dtype=float),
        "sla_accounts": pd.Series([0, 3, -2, 10**12], dtype="int64"),
        "sentiment": pd.Series([None, 0.123456789, "x", True], dtype=object),
    }
    for key, values in cases.items():
        want = [json.dumps(sc._inputs({key: v}, (key,))[key], default=str) for v in values.tolist()]
        assert sc._input_values(key, values) == want, key
