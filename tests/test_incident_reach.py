"""The subscribers each incident reaches, counted by the queue refresh and read by the incident detail.

The network is described in :mod:`tests.incident_net`: incident A degrades c1 (5 enterprise lines),
incident B c2 (500 consumer lines).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from dashboard.incidents import read
from dashboard.incidents.queue import refresh_queue
from dashboard.incidents.reach import cells_key, refresh_reach
from dashboard.store.db import Store
from dashboard.store.schema import incident_cells, incident_reach
from tests.incident_net import T, ingest, scoring, two_incidents


def _kept(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        return dict(conn.execute(select(incident_reach.c.incident_id, incident_reach.c.subscribers)).all())


def _by_cell(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        return {
            str(c): str(i)
            for i, c in conn.execute(select(incident_cells.c.incident_id, incident_cells.c.cell_id))
        }


def test_the_queue_refresh_counts_each_incidents_reach(net: Store) -> None:
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    on = _by_cell(net)
    assert _kept(net) == {on["c1"]: 5, on["c2"]: 500}
    with net.connect() as conn:
        assert read.count_affected_subscribers(conn, on["c1"]) == 5
        assert read.count_affected_subscribers(conn, on["c2"]) == 500


def test_the_detail_reads_the_kept_count_while_it_names_the_degraded_cells(net: Store) -> None:
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    b = _by_cell(net)["c2"]
    with net.begin() as conn:  # a count no live read could give: the detail must be reading it
        conn.execute(update(incident_reach).where(incident_reach.c.incident_id == b).values(subscribers=7))
    with net.connect() as conn:
        assert read.count_affected_subscribers(conn, b) == 7
    with net.begin() as conn:  # the incident no longer degrades c2: the kept count is for other cells
        conn.execute(
            update(incident_cells).where(incident_cells.c.incident_id == b).values(degraded_share=0.0)
        )
    with net.connect() as conn:
        assert read.count_affected_subscribers(conn, b) == 0
    with net.begin() as conn:
        conn.execute(delete(incident_reach))
        conn.execute(
            update(incident_cells).where(incident_cells.c.incident_id == b).values(degraded_share=1.0)
        )
    with net.connect() as conn:
        assert read.count_affected_subscribers(conn, b) == 500  # nothing kept: counted live


def test_lines_that_churn_are_counted_out_by_the_next_refresh(net: Store) -> None:
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    b = _by_cell(net)["c2"]
    churned = [
        {
            "id": f"C{i:03d}",
            "account_id": "CONS",
            "msisdn": f"3519200{i:05d}",
            "arpu": 20.0,
            "status": "churned",
        }
        for i in range(30)
    ]
    ingest(net, "subscribers", churned)
    refresh_queue(net, scoring(), now=T + timedelta(seconds=30))
    assert _kept(net)[b] == 470
    with net.connect() as conn:
        assert read.count_affected_subscribers(conn, b) == 470


def test_a_pass_with_nothing_changed_counts_nothing_again(net: Store) -> None:
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    later = T + timedelta(days=400)  # past every row's ingest time and the overlap
    with net.begin() as conn:
        refresh_reach(conn, now=later)
    with net.begin() as conn:
        assert refresh_reach(conn, now=later + timedelta(seconds=30)) == 0
        keys = dict(conn.execute(select(incident_reach.c.incident_id, incident_reach.c.cells_key)).all())
    on = _by_cell(net)
    assert keys[on["c1"]] == cells_key(["c1"])
