"""The hand-made network the incident tests run on, with numbers worked out by hand.

The network: router rtr-1 -> transport tx-1 -> RAN nodes ran-1 (site S1) and ran-2 (site S2);
power plant pwr-1 -> ran-1; ran-1 serves cell c1, ran-2 serves c2 and c3. Enterprise account ENT
has 5 lines on c1 (ARPU 50, restore target 30 min, penalty 600/h); 500 consumer lines sit on c2
(ARPU 20). No KPI samples arrive, so every affected cell counts as fully degraded (assumed share 1).

"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select

from connectors.base import Batch
from dashboard.incidents import read
from dashboard.incidents.correlate import ENGINE_SOURCE
from dashboard.ingest import Ingestor
from dashboard.kpis import Catalogue, Scoring, load_catalogue
from dashboard.store.db import Store
from dashboard.store.schema import incident_cells, incidents

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


def incidents_by_cell(store: Store) -> dict[str, str]:
    """Each affected cell's incident (every cell here is affected by one incident at most)."""
    with store.connect() as conn:
        return {
            str(c): str(i)
            for i, c in conn.execute(select(incident_cells.c.incident_id, incident_cells.c.cell_id))
        }


def two_incidents(store: Store) -> None:
    """A: ran-1 (5 enterprise lines on c1); B: ran-2 (500 consumer lines on c2); both 20 min old."""
    ingest(
        store,
        "alarms",
        [
            alarm("A1", "ran-1", T - timedelta(minutes=20)),
            alarm("B1", "ran-2", T - timedelta(minutes=20), severity="critical"),
        ],
    )
