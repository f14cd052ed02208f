"""Hand-made data for the KPI evaluation tests: three cells on two sites in two regions, three lines."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert

from connectors.base import Batch
from dashboard.ingest import Ingestor
from dashboard.store import Store
from dashboard.store.schema import cell_value, kpi_samples

T0 = datetime(2024, 3, 4)
Q = timedelta(minutes=15)


def ingest(store: Store, kind: str, records: Iterable[dict[str, Any]], source: str = "net") -> None:
    counts = Ingestor(store).ingest(source, [Batch(kind=kind, records=list(records))])
    assert counts.quarantined == 0, counts


def samples(store: Store, rows: Iterable[tuple[str, str, datetime, float]]) -> None:
    ingest(
        store,
        "kpi_samples",
        [
            {"entity_type": "cell", "entity_id": c, "kpi": k, "period_start": t, "value": v}
            for c, k, t, v in rows
        ],
    )


MEANS = (("availability_pct", 99.0), ("traffic_gb", 5.0), ("prb_utilisation_pct", 50.0))


def history(
    store: Store,
    start: datetime,
    end: datetime,
    *,
    skip: tuple[datetime, datetime] | None = None,
    seed: int = 3,
) -> None:
    """15-minute samples of availability, traffic, PRB and latency on C1..C3 in [start, end), written
    in bulk (not through ingest), leaving out the periods in ``skip``; C3 misses every tenth period."""
    rng = np.random.default_rng(seed)
    rows = []
    t, i = start, 0
    while t < end:
        if skip is None or not skip[0] <= t < skip[1]:
            for cell in ("C1", "C2", "C3"):
                if cell == "C3" and i % 10 == 0:
                    continue
                for kpi, mu in (
                    ("availability_pct", 99.0),
                    ("traffic_gb", 5.0),
                    ("prb_utilisation_pct", 50.0),
                ):
                    rows.append((cell, kpi, t, float(abs(rng.normal(mu, mu / 10)))))
                rows.append((cell, "latency_ms", t, float(abs(rng.normal(40.0, 10.0)))))
        t += Q
        i += 1
    with store.begin() as conn:
        conn.execute(
            insert(kpi_samples),
            [
                {"source": "net", "entity_type": "cell", "entity_id": c, "kpi": k, "period_start": p}
                | {"value": v}
                for c, k, p, v in rows
            ],
        )


def build(store: Store) -> None:
    ingest(store, "regions", [{"id": "R1", "name": "North"}, {"id": "R2", "name": "South"}])
    ingest(
        store,
        "sites",
        [{"id": "S1", "region_id": "R1", "name": "s1"}, {"id": "S2", "region_id": "R2", "name": "s2"}],
    )
    ingest(
        store,
        "cells",
        [
            {"id": "C1", "site_id": "S1", "name": "c1"},
            {"id": "C2", "site_id": "S1", "name": "c2"},
            {"id": "C3", "site_id": "S2", "name": "c3"},
        ],
    )
    ingest(
        store,
        "accounts",
        [
            {"id": "A1", "name": "Ann", "segment": "consumer"},
            {"id": "A2", "name": "Acme", "segment": "enterprise"},
        ],
    )
    act = datetime(2024, 1, 1)
    ingest(
        store,
        "subscribers",
        [
            {"id": "L1", "account_id": "A1", "arpu": 30.44, "activated_at": act, "status": "active"},
            {"id": "L2", "account_id": "A2", "arpu": 60.88, "activated_at": act, "status": "active"},
            {"id": "L3", "account_id": "A1", "arpu": 30.44, "activated_at": act, "status": "active"},
        ],
    )
    ingest(
        store,
        "subscriber_cells",
        [
            {"subscriber_id": "L1", "cell_id": "C1", "share": 0.5},
            {"subscriber_id": "L1", "cell_id": "C2", "share": 0.5},
            {"subscriber_id": "L2", "cell_id": "C3", "share": 1.0},
            {"subscriber_id": "L3", "cell_id": "C1", "share": 1.0},
        ],
    )
    with store.begin() as conn:
        conn.execute(
            insert(cell_value),
            [
                _cv("C1", "consumer", False, 2.0),
                _cv("C1", "consumer", True, 1.0),
                _cv("C1", "enterprise", False, 1.0),
                _cv("C2", "consumer", False, 1.0),
                _cv("C3", "enterprise", False, 2.0),
            ],
        )
    samples(
        store,
        [
            ("C1", "availability_pct", T0, 100.0),
            ("C1", "traffic_gb", T0, 10.0),
            ("C1", "prb_utilisation_pct", T0, 50.0),
            ("C1", "availability_pct", T0 + Q, 90.0),
            ("C1", "traffic_gb", T0 + Q, 30.0),
            ("C1", "prb_utilisation_pct", T0 + Q, 70.0),
            ("C2", "availability_pct", T0, 80.0),
            ("C2", "traffic_gb", T0, 20.0),
            ("C2", "prb_utilisation_pct", T0, 90.0),
            ("C3", "availability_pct", T0, 100.0),
            ("C3", "traffic_gb", T0, 40.0),
            ("C3", "prb_utilisation_pct", T0, 10.0),
        ],
    )
    ticket = {"status": "new", "updated_at": T0 + timedelta(hours=9)}
    ingest(
        store,
        "tickets",
        [
            ticket
            | {"id": "T1", "subscriber_id": "L1", "sentiment": -0.5, "created_at": T0 + timedelta(hours=9)},
            ticket
            | {"id": "T2", "subscriber_id": "L2", "sentiment": 0.5, "created_at": T0 + timedelta(hours=9)},
            ticket
            | {"id": "T3", "subscriber_id": "L1", "sentiment": 0.0, "created_at": T0 + timedelta(hours=10)},
        ],
    )
    ingest(
        store,
        "churn_events",
        [
            {
                "id": "E1",
                "subscriber_id": "L3",
                "account_id": "A1",
                "occurred_at": T0 + timedelta(days=1, hours=10),
            }
        ],
    )


def _cv(cell: str, segment: str, vip: bool, lines: float) -> dict[str, Any]:
    return {
        "cell_id": cell,
        "segment": segment,
        "vip": vip,
        "lines": lines,
        "arpu": 0.0,
        "risk": 0.0,
        "risk_arpu": 0.0,
        "risk_lines": 0.0,
        "sentiment": 0.0,
        "sentiment_lines": 0.0,
        "negative_tickets": 0.0,
        "updated_at": T0,
    }
