"""A hand-made network whose cells have learnt their usual bands, then one cell degrades silently: the
data the band tests and the pages' band tests share.

Cells C1 and C2 on site S1 ("Porto 1", RAN node N1 behind transport link T1), C3 on site S2
("Porto 2", RAN node N2), all in region R1. Two weeks of 15-minute throughput, latency and traffic
on a daily curve (an evening peak, when throughput is lowest) with a little noise; then, from
``BAD_FROM``, C1 runs at 40% of its throughput and 3x its latency for ``BAD_PERIODS`` periods, with
no alarm from the network. The evaluation and the queue are stepped every 15 minutes up to ``NOW``,
so C1's throughput and latency are anomalous at ``NOW`` and Vantage has opened a ``detected``
incident on C1.

Lines: L1 (70% of its traffic on C1, 30% on C3) and L2 (all on C3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select

from dashboard.incidents import refresh_queue
from dashboard.kpi_eval.anomaly import refresh_anomalies
from dashboard.kpis import Catalogue, load_catalogue
from dashboard.store import Store
from dashboard.store.schema import incident_queue, kpi_samples
from tests.kpi_data import ingest

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2024, 3, 4)  # a Monday
LEARNT = START + timedelta(days=14)
Q = timedelta(minutes=15)
BAD_FROM = LEARNT + 4 * Q
BAD_PERIODS = 6
#: The last period evaluated is NOW - Q (the last complete one), the sixth bad period.
NOW = LEARNT + 10 * Q
CELLS = ("C1", "C2", "C3")
THROUGHPUT_SHARE = 0.4  # C1's throughput while degraded
LATENCY_TIMES = 3.0  # C1's latency while degraded


def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "kpi_definitions.yaml")


def load(t: datetime) -> float:
    """The daily curve: 0.5 at night, 1.0 at 20:00."""
    hour = t.hour + t.minute / 60
    return 0.5 + 0.5 * float(np.exp(-(((hour - 20) / 3) ** 2)))


def usual_throughput(t: datetime) -> float:
    return 60 * (1.2 - 0.6 * load(t))


def usual_latency(t: datetime) -> float:
    return 25 + 20 * load(t)


def degraded(t: datetime, cell: str) -> bool:
    return cell == "C1" and BAD_FROM <= t < BAD_FROM + BAD_PERIODS * Q


def sample_rows(start: datetime, end: datetime, *, seed: int = 5) -> list[dict[str, Any]]:
    """Throughput, latency and traffic per cell and quarter hour in [start, end)."""
    rng = np.random.default_rng(seed + int(start.timestamp()) % 1000)
    out = []
    t = start
    while t < end:
        for c in CELLS:
            tput = usual_throughput(t) * float(np.exp(rng.normal(0, 0.04)))
            lat = usual_latency(t) + float(abs(rng.normal(0, 1.0)))
            if degraded(t, c):
                tput, lat = tput * THROUGHPUT_SHARE, lat * LATENCY_TIMES
            for kpi, v in (
                ("dl_throughput_mbps", tput),
                ("latency_ms", lat),
                ("traffic_gb", 2 + 6 * load(t)),
            ):
                out.append(
                    {
                        "source": "net",
                        "entity_type": "cell",
                        "entity_id": c,
                        "kpi": kpi,
                        "period_start": t,
                        "value": round(v, 3),
                    }
                )
        t += Q
    return out


def write_samples(store: Store, rows: list[dict[str, Any]]) -> None:
    with store.begin() as conn:
        for lo in range(0, len(rows), 5000):
            conn.execute(insert(kpi_samples), rows[lo : lo + 5000])


def build_network(store: Store) -> None:
    """Regions, sites, cells, resources, topology and two lines (no samples)."""
    ingest(store, "regions", [{"id": "R1", "name": "North"}])
    ingest(
        store,
        "sites",
        [
            {"id": "S1", "region_id": "R1", "name": "Porto 1", "lat": 41.15, "lon": -8.61},
            {"id": "S2", "region_id": "R1", "name": "Porto 2", "lat": 41.10, "lon": -8.55},
        ],
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
        "resources",
        [
            {"id": "T1", "site_id": "S1", "name": "mw link", "kind": "transport"},
            {"id": "N1", "site_id": "S1", "name": "enb 1", "kind": "ran_node"},
            {"id": "N2", "site_id": "S2", "name": "enb 2", "kind": "ran_node"},
        ],
    )
    ingest(
        store,
        "topology_edges",
        [
            {"parent_type": "resource", "parent_id": "T1", "child_type": "resource", "child_id": "N1"},
            {"parent_type": "resource", "parent_id": "N1", "child_type": "cell", "child_id": "C1"},
            {"parent_type": "resource", "parent_id": "N1", "child_type": "cell", "child_id": "C2"},
            {"parent_type": "resource", "parent_id": "N2", "child_type": "cell", "child_id": "C3"},
        ],
    )
    ingest(
        store,
        "subscribers",
        [
            {"id": "L1", "msisdn": "351910000001", "arpu": 30.0, "home_cell_id": "C1"},
            {"id": "L2", "msisdn": "351910000002", "arpu": 20.0, "home_cell_id": "C3"},
        ],
    )
    ingest(
        store,
        "subscriber_cells",
        [
            {"subscriber_id": "L1", "cell_id": "C1", "share": 0.7},
            {"subscriber_id": "L1", "cell_id": "C3", "share": 0.3},
            {"subscriber_id": "L2", "cell_id": "C3", "share": 1.0},
        ],
    )


def learnt(store: Store, cat: Catalogue) -> None:
    """The network with two weeks of samples, every series' band learnt up to ``LEARNT``."""
    build_network(store)
    write_samples(store, sample_rows(START, LEARNT))
    with store.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)


@dataclass(frozen=True)
class Detected:
    incident_id: str  # the incident Vantage opened on C1, with no alarm


def degraded_silently(store: Store, cat: Catalogue) -> Detected:
    """:func:`learnt`, then C1 degrades; evaluation and queue stepped every 15 minutes up to NOW."""
    learnt(store, cat)
    write_samples(store, sample_rows(LEARNT, NOW))
    labels = {k.name: k.label for k in cat.kpis}
    t = LEARNT + Q
    while t <= NOW:
        with store.begin() as conn:
            refresh_anomalies(conn, cat, now=t)
        refresh_queue(store, cat.scoring, now=t, labels=labels)
        t += Q
    with store.connect() as conn:
        rows = conn.execute(select(incident_queue.c.incident_id, incident_queue.c.kind)).all()
    detected = [r.incident_id for r in rows if r.kind == "detected"]
    assert len(detected) == 1, rows
    return Detected(incident_id=str(detected[0]))
