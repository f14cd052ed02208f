"""Impact and value aggregates: degraded shares from KPIs, incremental value passes against a rebuild.

The network is described in :mod:`tests.incident_net`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from dashboard.incidents import read
from dashboard.incidents.impact import degraded_share
from dashboard.incidents.queue import refresh_queue
from dashboard.incidents.value import rebuild, refresh_values
from dashboard.store.db import Store
from dashboard.store.schema import cell_value
from tests.incident_net import T, alarm, build_network, ingest, queue_rows, scoring

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
