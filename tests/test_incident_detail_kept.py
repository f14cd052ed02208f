"""An incident's cells and KPI means, kept by the queue refresh and read by the incident detail, and
the KPI means and baselines read from the hourly roll-ups where retention dropped the raw samples.

The network is described in :mod:`tests.incident_net` (incident A degrades c1, B c2 and c3, both
opened at 11:40, 20 minutes before T); here the cells report availability and throughput every
quarter hour from 08:00 to 11:45.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete, event, insert, select, update

from dashboard.api.encode import records
from dashboard.incidents import read
from dashboard.incidents.queue import refresh_queue
from dashboard.store.db import Store
from dashboard.store.schema import (
    incident_cells,
    incident_detail_cells,
    incident_detail_keys,
    incident_detail_kpis,
    incident_detail_summary,
    incident_reach,
    kpi_rollups,
    kpi_samples,
)
from tests.incident_net import T, incidents_by_cell, ingest, scoring, two_incidents

KPIS = ["availability_pct", "dl_throughput_mbps"]
FIRST = T - timedelta(hours=4)  # 08:00
Q = timedelta(minutes=15)
HOLDER = "Joana Silva"


def _sample(cell: str, kpi: str, period: datetime, value: float) -> dict[str, Any]:
    return {"entity_type": "cell", "entity_id": cell, "kpi": kpi, "period_start": period, "value": value}


def _samples(store: Store, since: datetime = FIRST) -> None:
    """Every quarter from ``since`` to 11:45: availability 100 and throughput 40 Mbit/s before the
    incident; after it, c1 at 60% and 10, c2 at 70% and 10 (75% short), c3 at 80% and 20 (50%)."""
    after = {"c1": (60.0, 10.0), "c2": (70.0, 10.0), "c3": (80.0, 20.0)}
    rows = []
    period = since
    while period < T:
        for cell, values in after.items():
            avail, tput = values if period >= T - timedelta(minutes=20) else (100.0, 40.0)
            rows += [
                _sample(cell, "availability_pct", period, avail),
                _sample(cell, "dl_throughput_mbps", period, tput),
            ]
        period += Q
    ingest(store, "kpi_samples", rows)


def _read(store: Store, incident_id: str, now: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    with store.connect() as conn:
        return read.affected_cells(conn, incident_id), read.kpi_impact(conn, incident_id, KPIS, now=now)


def _live(store: Store, incident_id: str, now: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The detail measured live: what it reads with no digest kept."""
    with store.begin() as conn:
        conn.execute(delete(incident_detail_keys))
    return _read(store, incident_id, now)


def _kept_rows(store: Store, incident_id: str) -> tuple[int, int]:
    with store.connect() as conn:
        return tuple(  # type: ignore[return-value]
            len(conn.execute(select(t.c.position).where(t.c.incident_id == incident_id)).all())
            for t in (incident_detail_cells, incident_detail_kpis)
        )


def _computed(store: Store) -> dict[tuple[str, str], object]:
    k = incident_detail_keys
    with store.connect() as conn:
        return {
            (str(i), str(p)): c
            for i, p, c in conn.execute(select(k.c.incident_id, k.c.part, k.c.computed_at))
        }


def test_the_kept_cells_and_kpi_means_read_as_the_live_ones(net: Store) -> None:
    _samples(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    now = T + timedelta(minutes=5)
    for iid in sorted(set(incidents_by_cell(net).values())):
        assert all(n > 0 for n in _kept_rows(net, iid))  # the rows were there to be read
        cells, kpis = _read(net, iid, now)
        live_cells, live_kpis = _live(net, iid, now)
        refresh_queue(net, scoring(), now=T)  # put back what _live deleted
        pd.testing.assert_frame_equal(cells, live_cells)
        pd.testing.assert_frame_equal(kpis, live_kpis)
        assert records(cells) == records(live_cells)
    b = incidents_by_cell(net)["c2"]
    cells, kpis = _read(net, b, now)
    assert cells["cell_id"].tolist() == ["c2", "c3"]  # c2 the more degraded (75% short against 50%)
    assert cells["lines"].tolist() == [500.0, 0.0]
    assert set(cells["site"]) == {"Hill"}
    # From 08:40, three hours before the incident opened: 08:45 to 11:45, 13 quarters of both KPIs.
    assert len(kpis) == 2 * 13 and kpis["period_start"].is_monotonic_increasing
    last = kpis[kpis["period_start"] == T - Q].set_index("kpi")["value"]
    assert last["availability_pct"] == pytest.approx((70.0 + 80.0) / 2)
    assert last["dl_throughput_mbps"] == pytest.approx((10.0 + 20.0) / 2)


def test_the_detail_reads_the_kept_rows_while_their_inputs_are_unchanged(net: Store) -> None:
    _samples(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    b = incidents_by_cell(net)["c2"]
    c, m = incident_detail_cells, incident_detail_kpis
    with net.begin() as conn:  # values no live measurement could give: the detail must read them
        conn.execute(update(c).where(c.c.incident_id == b, c.c.position == 0).values(lines=123.0))
        conn.execute(update(m).where(m.c.incident_id == b, m.c.position == 0).values(value=-1.0))
    cells, kpis = _read(net, b, T)
    assert cells["lines"].iloc[0] == 123.0 and kpis["value"].iloc[0] == -1.0
    ic = incident_cells
    with net.begin() as conn:  # another share than the kept cells were measured from: live
        conn.execute(update(ic).where(ic.c.incident_id == b, ic.c.cell_id == "c3").values(degraded_share=0.9))
    cells, kpis = _read(net, b, T)
    assert 123.0 not in cells["lines"].tolist() and kpis["value"].iloc[0] == -1.0  # the means stand
    # A late sample of the newest period: the means live.
    ingest(net, "kpi_samples", [_sample("c1", "availability_pct", T - Q, 1.0)], source="pm2")
    assert _read(net, b, T)[1]["value"].iloc[0] != -1.0
    refresh_queue(net, scoring(), now=T)
    with net.begin() as conn:
        conn.execute(update(m).where(m.c.incident_id == b, m.c.position == 0).values(value=-1.0))
    assert _read(net, b, T)[1]["value"].iloc[0] == -1.0
    with net.connect() as conn:  # other KPIs or another span than kept: live
        assert -1.0 not in read.kpi_impact(conn, b, KPIS[:1], now=T)["value"].tolist()
        assert -1.0 not in read.kpi_impact(conn, b, KPIS, now=T, before=timedelta(hours=1))["value"].tolist()
    # A new period: live until the next refresh.
    ingest(net, "kpi_samples", [_sample("c2", "availability_pct", T, 50.0)])
    assert -1.0 not in _read(net, b, T + Q)[1]["value"].tolist()
    # A stale digest: live.
    refresh_queue(net, scoring(), now=T + Q)
    with net.begin() as conn:
        conn.execute(update(m).where(m.c.incident_id == b, m.c.position == 0).values(value=-1.0))
        conn.execute(update(incident_detail_keys).values(inputs_key="0" * 64))
    assert -1.0 not in _read(net, b, T + Q)[1]["value"].tolist()


def test_the_next_refresh_measures_again_what_changed_and_nothing_else(net: Store) -> None:
    _samples(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    later = T + timedelta(days=400)  # past every row's ingest time and the overlap
    refresh_queue(net, scoring(), now=later)
    before = _computed(net)
    refresh_queue(net, scoring(), now=later + timedelta(seconds=30))
    assert len(before) == 4 and _computed(net) == before
    ingest(net, "cells", [{"id": "c3", "site_id": "S2", "name": "C3 renamed", "technology": "5g"}])
    refresh_queue(net, scoring(), now=later + timedelta(seconds=60))
    b = incidents_by_cell(net)["c2"]
    after = _computed(net)
    assert after[(b, "cells")] != before[(b, "cells")]  # measured again, by its cell's own ingest
    assert {k: v for k, v in after.items() if k != (b, "cells")} == {
        k: v for k, v in before.items() if k != (b, "cells")
    }
    cells = _read(net, b, later)[0].set_index("cell_id")
    assert cells.loc["c3", "name"] == "C3 renamed" and cells.loc["c3", "technology"] == "5g"


def _rollup(cell: str, kpi: str, hour: datetime, total: float, weight: float) -> dict[str, Any]:
    return {
        "series": kpi,
        "level": "cell",
        "entity_id": cell,
        "grain_s": 3600,
        "period_start": hour,
        "total": total,
        "weight": weight,
        "low": None,
        "high": None,
        "computed_at": T,
    }


def _parts(conn: Any, iid: str, now: datetime, given: read.Facts | None) -> list[Any]:
    return [
        read.count_affected_subscribers(conn, iid, given=given),
        read.affected_cells(conn, iid, given=given),
        read.kpi_impact(conn, iid, KPIS, now=now, given=given),
        read.affected_accounts(conn, iid, scoring(), now=now, given=given),
        read.related_tickets(conn, iid, given=given),
    ]


def test_the_parts_read_from_the_incidents_facts_equal_those_read_alone(net: Store) -> None:
    _samples(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    now = T + timedelta(minutes=5)
    statements: list[str] = []
    accounts_seen = {"kept": 0, "live": 0}
    event.listen(net.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for iid in sorted(set(incidents_by_cell(net).values())):
        for how in ("kept", "live"):
            if how == "live":  # nothing kept: every part measured here
                with net.begin() as conn:
                    conn.execute(delete(incident_detail_keys))
                    conn.execute(delete(incident_detail_summary))
                    conn.execute(delete(incident_reach))
            with net.connect() as conn:
                given = read.facts(conn, read.incident(conn, iid) or {})
                statements.clear()
                shared = _parts(conn, iid, now, given)
                read_cells = [s for s in statements if "FROM incident_cells" in s]
                alone = _parts(conn, iid, now, None)
            assert shared[0] == alone[0] > 0, how
            for mine, theirs in zip(shared[1:], alone[1:], strict=True):
                pd.testing.assert_frame_equal(mine, theirs)
            assert len(shared[2]) > 0, how  # KPI means to compare
            accounts_seen[how] += len(shared[3])
            # Kept, no part reads the incident's cells again; live, only the cells' measurement
            # joins them to their sites.
            if how == "kept":
                assert read_cells == []
            else:
                assert len(read_cells) == 1 and "JOIN sites" in read_cells[0], read_cells
        refresh_queue(net, scoring(), now=T)  # put back what was deleted
    assert accounts_seen["kept"] == accounts_seen["live"] > 0  # A's enterprise account, both ways
    with net.connect() as conn:  # no such incident: every part says so without facts
        assert read.affected_accounts(conn, "INC-none", scoring(), now=now).empty
        assert read.kpi_impact(conn, "INC-none", KPIS, now=now).empty


def test_the_kpi_means_read_roll_ups_where_the_raw_samples_were_dropped(net: Store) -> None:
    _samples(net, since=T - timedelta(hours=1))  # raw samples from 11:00 only
    hours = []
    for h, (avail, tput) in enumerate([((380.0, 200.0), (400.0, 600.0)), ((400.0, 360.0), (800.0, 900.0))]):
        hour = FIRST + timedelta(hours=1 + h)  # 09:00 and 10:00
        # c2: 4 samples, traffic 10 GB (and 20 GB at 10:00); c3: 4 samples, 30 GB.
        hours += [
            _rollup("c2", "availability_pct", hour, avail[0], 4.0),
            _rollup("c3", "availability_pct", hour, avail[1], 4.0),
            _rollup("c2", "dl_throughput_mbps", hour, tput[0], 10.0 * (1 + h)),
            _rollup("c3", "dl_throughput_mbps", hour, tput[1], 30.0),
            _rollup("c1", "availability_pct", hour, 0.0, 4.0),  # another incident's cell
        ]
    with net.begin() as conn:
        conn.execute(insert(kpi_rollups), hours)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    b = incidents_by_cell(net)["c2"]
    kept = _read(net, b, T)[1]
    live = _live(net, b, T)[1]
    pd.testing.assert_frame_equal(kept, live)
    by = live.pivot(index="period_start", columns="kpi", values="value")
    # 08:40 on: the quarters of 09:00 and 10:00 from their roll-ups, 11:00 on from the samples.
    assert by.index.min() == pd.Timestamp(FIRST + timedelta(hours=1))
    assert len(by) == 4 + 4 + 4
    for q in range(4):
        nine = by.loc[pd.Timestamp(FIRST + timedelta(hours=1) + q * Q)]
        assert nine["availability_pct"] == pytest.approx((380.0 + 200.0) / 8)  # 72.5
        assert nine["dl_throughput_mbps"] == pytest.approx((400.0 + 600.0) / 40)  # traffic-weighted: 25
        ten = by.loc[pd.Timestamp(FIRST + timedelta(hours=2) + q * Q)]
        assert ten["availability_pct"] == pytest.approx((400.0 + 360.0) / 8)
        assert ten["dl_throughput_mbps"] == pytest.approx((800.0 + 900.0) / 50)
    assert by.loc[pd.Timestamp(T - Q), "availability_pct"] == pytest.approx((70.0 + 80.0) / 2)
    # Retention dropping the 11:00 hour too, its roll-ups now read (none kept): the kept means no longer
    # stand, and the hour is gone from the chart as from the store.
    with net.begin() as conn:
        conn.execute(delete(kpi_samples).where(kpi_samples.c.period_start < T - timedelta(minutes=30)))
    after = _read(net, b, T)[1]
    assert after["period_start"].min() == pd.Timestamp(FIRST + timedelta(hours=1))
    assert len(after["period_start"].unique()) == 4 + 4 + 2  # 11:00 to 11:15 neither sampled nor rolled up


def test_a_baseline_before_the_kept_samples_comes_from_the_roll_ups(net: Store) -> None:
    # Only the current quarter's samples are kept; the hour before the incident opened (11:40) is
    # rolled up: c2 at 40 Mbit/s (400 over 10 GB) from 10:00, and the 11:00 hour was never rolled up.
    ingest(
        net,
        "kpi_samples",
        [_sample("c2", "availability_pct", T - Q, 100.0), _sample("c2", "dl_throughput_mbps", T - Q, 10.0)],
    )
    with net.begin() as conn:
        conn.execute(
            insert(kpi_rollups), [_rollup("c2", "dl_throughput_mbps", T - timedelta(hours=2), 400.0, 10.0)]
        )
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    b = incidents_by_cell(net)["c2"]
    cells = _read(net, b, T)[0].set_index("cell_id")
    # Baseline window 10:40-11:40: 10:45 from 10:00's roll-up; raw samples begin at 11:00.
    assert cells.loc["c2", "degraded_share"] == pytest.approx(0.75)  # 10 of 40 Mbit/s
    assert cells.loc["c2", "basis"] == "kpi"


def test_no_personal_data_is_kept_or_served_with_the_cells_and_means(net: Store) -> None:
    from dashboard.config import Settings
    from tests.apps import client as client_of
    from tests.apps import new_app

    ingest(net, "accounts", [{"id": "VIPC", "name": HOLDER, "segment": "consumer", "vip": True}])
    ingest(net, "subscribers", [{"id": "V0", "account_id": "VIPC", "msisdn": "351930099999", "arpu": 80.0}])
    ingest(net, "subscriber_cells", [{"subscriber_id": "V0", "cell_id": "c2", "share": 1.0}])
    _samples(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T, currency="EUR")
    b = incidents_by_cell(net)["c2"]
    with net.connect() as conn:
        kept = [conn.execute(select(t)).all() for t in (incident_detail_cells, incident_detail_kpis)]
    texts = [str(v) for rows in kept for row in rows for v in row]
    assert texts and not any(HOLDER in t or "351930099999" in t or "Joana" in t for t in texts)
    for role in ("viewer", "analyst", "operator"):
        body = client_of(new_app(net, Settings(database_url=net.url)), net, role).get(
            f"/api/v1/incidents/{b}"
        )
        assert body.status_code == 200
        text = json.dumps(body.get_json())
        assert body.get_json()["impact"]["cells"][0]["cell_id"] == "c2"  # the kept cells served
        assert HOLDER not in text and "Joana" not in text and "351930099999" not in text
        assert "J*** S***" in text  # the VIP consumer's account, its holder's name masked
    net.dispose()
