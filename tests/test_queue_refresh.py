"""Incremental queue refresh: remembered refreshes store what a refresh from scratch stores.

The network is described in :mod:`tests.incident_net`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from dashboard.incidents.actions import acknowledge, assign
from dashboard.incidents.queue import refresh_queue
from dashboard.store.db import Store
from dashboard.store.schema import incident_alarms, incidents
from tests.incident_net import (
    T,
    alarm,
    build_network,
    engine_incidents,
    ingest,
    queue_rows,
    scoring,
    two_incidents,
)

# --- incremental refresh --------------------------------------------------------------------------


def test_steady_state_refresh_matches_a_fresh_computation(store: Store) -> None:
    """Later refreshes reuse the last one's measurements; value changes still re-rank, and a fresh
    computation (another process, nothing remembered) stores the same queue."""
    from dashboard.incidents.queue import forget

    net = store
    build_network(net, clock=lambda: T - timedelta(hours=1))
    two_incidents(net)
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
