"""KPI evaluation on hand-made data (tests/kpi_data.py), on SQLite and PostgreSQL.

Three cells: C1 and C2 on site S1 (region R1), C3 on site S2 (region R2). At 00:00 availability is
C1 100 % (10 GB), C2 80 % (20 GB), C3 100 % (40 GB); at 00:15 C1 90 % (30 GB). Lines: L1 (consumer,
half on C1, half on C2), L3 (consumer, C1) and L2 (enterprise, C3); three tickets on 4 March (two
from L1, one from L2), L3 churns on 5 March.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, insert, select, text

from connectors.base import Batch
from dashboard.ingest import Ingestor
from dashboard.ingest.runner import load_state
from dashboard.kpi_eval import evaluate, read
from dashboard.kpi_eval.anomaly import STATE_KEY as ANOMALY_STATE
from dashboard.kpi_eval.quarters import QuarterHours
from dashboard.kpi_eval.rollup import refresh_rollups
from dashboard.kpi_eval.status import evaluate_series, refresh_status, status_frame
from dashboard.kpis import Catalogue, load_catalogue
from dashboard.store import Store
from dashboard.store.db import read_frame
from dashboard.store.sample_marks import mark_sample_hours
from dashboard.store.schema import kpi_rollups, kpi_sample_hours, kpi_status, tickets
from dashboard.store.schema import kpi_samples as kpi_samples_table
from tests import kpi_data
from tests.apps import api_client
from tests.kpi_data import T0, Q

H = timedelta(hours=1)
D = timedelta(days=1)
NOW = T0 + 2 * D + H


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    """The shipped catalogue, with availability pinned to traffic_weighted for the worked numbers."""
    shipped = load_catalogue("kpi_definitions.yaml")
    kpis = [
        k.model_copy(update={"aggregate": "traffic_weighted"}) if k.name == "availability_pct" else k
        for k in shipped.kpis
    ]
    return shipped.model_copy(update={"kpis": kpis})


@pytest.fixture
def net(store: Store, cat: Catalogue) -> Store:
    kpi_data.build(store)
    with store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW)
    return store


def value(store: Store, cat: Catalogue, kpi: str, level: str, entity: str, grain: int, at: datetime) -> float:
    with store.connect() as conn:
        df = read.series(
            conn,
            cat,
            kpi,
            level=level,
            entity_id=entity,
            grain_s=grain,
            since=at,
            until=at + timedelta(seconds=grain),
        )
    assert len(df) == 1
    return float(df["value"].iloc[0])


def rollup(
    store: Store, series: str, level: str, entity: str, grain: int, at: datetime
) -> tuple[float, float]:
    r = kpi_rollups
    with store.connect() as conn:
        row = conn.execute(
            select(r.c.total, r.c.weight).where(
                r.c.series == series,
                r.c.level == level,
                r.c.entity_id == entity,
                r.c.grain_s == grain,
                r.c.period_start == at,
            )
        ).one()
    return float(row[0]), float(row[1])


def test_rollups_at_each_level_equal_hand_sums(net: Store, cat: Catalogue) -> None:
    # traffic_weighted: total = sum(value x traffic), weight = sum(traffic), added up across cells.
    assert rollup(net, "availability_pct", "cell", "C1", 3600, T0) == (100 * 10 + 90 * 30, 40)
    assert rollup(net, "availability_pct", "site", "S1", 3600, T0) == (3700 + 80 * 20, 60)
    assert rollup(net, "availability_pct", "region", "R2", 86400, T0) == (4000, 40)
    assert rollup(net, "availability_pct", "network", "all", 86400, T0) == (9300, 100)
    # mean: total = sum, weight = count; sum: the total.
    assert value(net, cat, "prb_utilisation_pct", "site", "S1", 3600, T0) == pytest.approx((50 + 70 + 90) / 3)
    assert value(net, cat, "prb_utilisation_pct", "network", "all", 86400, T0) == pytest.approx(55.0)
    assert value(net, cat, "traffic_gb", "network", "all", 3600, T0) == pytest.approx(100.0)
    # Segments: cell values weighted by the segment's lines (C1: 3 consumer, 1 enterprise; C2: 1
    # consumer; C3: 2 enterprise); a sum KPI gives each segment its share of the cell's total.
    assert value(net, cat, "availability_pct", "segment", "consumer", 3600, T0) == pytest.approx(
        (3 * 92.5 + 1 * 80) / 4
    )
    assert value(net, cat, "availability_pct", "segment", "enterprise", 3600, T0) == pytest.approx(
        (1 * 92.5 + 2 * 100) / 3
    )
    assert value(net, cat, "traffic_gb", "segment", "consumer", 86400, T0) == pytest.approx(40 * 3 / 4 + 20)
    assert value(net, cat, "traffic_gb", "segment", "enterprise", 86400, T0) == pytest.approx(40 / 4 + 40)
    # Business measures: a line's tickets and its count spread over its cells by share; cells add up.
    assert rollup(net, "tickets", "cell", "C1", 86400, T0)[0] == pytest.approx(1.0)
    assert rollup(net, "tickets", "network", "all", 86400, T0)[0] == 3.0
    assert rollup(net, "negative_tickets", "region", "R1", 86400, T0)[0] == pytest.approx(1.0)
    assert rollup(net, "subscribers", "cell", "C1", 86400, T0)[0] == pytest.approx(1.5)
    assert rollup(net, "subscribers", "network", "all", 86400, T0 + D)[0] == 3.0  # churned that day
    assert rollup(net, "subscribers", "network", "all", 86400, T0 + 2 * D)[0] == 2.0
    assert rollup(net, "revenue", "segment", "consumer", 86400, T0)[0] == pytest.approx(2.0)
    assert value(net, cat, "arpu", "network", "all", 86400, T0) == pytest.approx(30.44 * 4 / 3)


def test_technical_levels_at_15_minutes_read_the_samples(net: Store, cat: Catalogue) -> None:
    assert value(net, cat, "availability_pct", "network", "all", 900, T0) == pytest.approx(
        (1000 + 1600 + 4000) / 70
    )
    assert value(net, cat, "availability_pct", "network", "all", 900, T0 + Q) == pytest.approx(90.0)
    assert value(net, cat, "availability_pct", "segment", "consumer", 900, T0) == pytest.approx(
        (3 * 100 + 80) / 4
    )
    assert value(net, cat, "availability_pct", "cell", "C1", 900, T0 + Q) == 90.0


def _sampled_history(store: Store, cat: Catalogue, start: datetime, end: datetime) -> list[str]:
    """Samples of every sampled KPI of the catalogue on C1..C3 from two sources, in [start, end)."""
    names = [k.name for k in cat.kpis if k.type == "simple" and k.source == "samples"]
    rng = np.random.default_rng(11)
    for source in ("net", "net-b"):
        rows = []
        t = start
        while t < end:
            for cell in ("C1", "C2", "C3"):
                for name in names:
                    if rng.random() < 0.1:  # gaps: a cell or a KPI missing in a period
                        continue
                    v = float(abs(rng.normal(50.0, 20.0)))
                    rows.append({"entity_type": "cell", "entity_id": cell, "kpi": name, "period_start": t})
                    rows[-1]["value"] = v
            t += Q
        kpi_data.ingest(store, "kpi_samples", rows, source=source)
    return names


def test_every_level_from_one_read_of_the_samples_equals_each_level_read_apart(
    net: Store, cat: Catalogue
) -> None:
    """read.fetch_levels (the jobs' path: cells read once, other levels added up in memory) gives every
    sampled KPI the values read.fetch_rows gives level by level in the database, from raw samples and,
    once retention has dropped them, from the hourly roll-ups."""
    start = T0 + 6 * H
    names = _sampled_history(net, cat, start, start + 4 * H)
    levels = ["cell", "site", "region", "network", "segment"]
    kpis = [cat.get(n) for n in names]
    assert {k.aggregate for k in kpis} >= {"mean", "sum", "traffic_weighted"}

    def compare(since: datetime, until: datetime) -> int:
        with net.connect() as conn:
            together = read.fetch_levels(
                conn, cat, names, levels=levels, grain_s=900, since=since, until=until
            )
            compared = 0
            for level in levels:
                apart = read.fetch_rows(conn, cat, names, level=level, grain_s=900, since=since, until=until)
                for k in kpis:
                    want = read.kpi_values(cat, k, apart).sort_index()
                    got = read.kpi_values(cat, k, together[level]).sort_index()
                    pd.testing.assert_series_equal(
                        got, want, check_exact=False, rtol=1e-9, obj=f"{k.name}@{level}"
                    )
                    compared += len(want)
        return compared

    with net.begin() as conn:
        refresh_rollups(conn, cat, now=start + 5 * H, full=True)
    assert compare(start, start + 4 * H) > 500
    # Retention drops the first two hours of raw samples: those quarters now come from the hourly
    # roll-ups, and a window across the boundary still agrees level by level.
    with net.begin() as conn:
        conn.execute(kpi_samples_table.delete().where(kpi_samples_table.c.period_start < start + 2 * H))
    assert compare(start, start + 4 * H) > 500


def test_cell_quarter_hours_shaped_from_the_samples_equal_the_databases_roll_up(
    net: Store, cat: Catalogue
) -> None:
    """The jobs' 15-minute cell rows, read from the samples in bulk and put in shape in memory, are
    the rows the database's roll-up statement gives: two sources (added up), gaps, traffic-weighted
    KPIs with and without their traffic, a subset of cells, and one source alone."""
    from dashboard.kpi_eval import _sql

    start = T0 + 6 * H
    names = _sampled_history(net, cat, start, start + 3 * H)
    kpis = [cat.get(n) for n in names]
    key = ["series", "entity_id", "period_start"]

    def both(ks: list[Any], since: datetime, until: datetime, cells: list[str] | None) -> int:
        with net.connect() as conn:
            got = read._cell_sample_rows(conn, ks, since, until, cells)
            stmt = _sql.sample_cell_rows(
                ks, grain_s=None, lo=since, hi=until, dialect=conn.dialect.name, cell_ids=cells
            )
            want = read._typed(read_frame(conn, stmt))
        got, want = (f.sort_values(key).reset_index(drop=True) for f in (got, want))
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
        return len(want)

    assert both(kpis, start, start + 3 * H, None) > 250
    assert both(kpis, start + Q, start + 2 * H, ["C1", "C3"]) > 80
    weighted = [k for k in kpis if k.aggregate == "traffic_weighted"]
    assert weighted and both(weighted, start, start + 3 * H, None) > 20
    assert both(kpis, start, start + Q, ["nowhere"]) == 0
    with net.begin() as conn:  # one source left: nothing to add up
        conn.execute(kpi_samples_table.delete().where(kpi_samples_table.c.source == "net-b"))
    assert both(kpis, start, start + 3 * H, None) > 200


def test_traffic_weighted_mean_is_not_the_plain_mean(net: Store, cat: Catalogue) -> None:
    # C1 in the hour: (100 x 10 + 90 x 30) / 40 = 92.5, where the plain mean would be 95.
    assert value(net, cat, "availability_pct", "cell", "C1", 3600, T0) == pytest.approx(92.5)
    assert value(net, cat, "availability_pct", "network", "all", 3600, T0) == pytest.approx(93.0)
    # Derived: evaluated on the rolled-up inputs, 60 GB / (88.33 % / 100).
    assert value(net, cat, "traffic_per_availability", "site", "S1", 3600, T0) == pytest.approx(
        60 / (5300 / 60 / 100)
    )


def test_each_source_pairs_its_own_traffic_and_a_sample_without_traffic_counts_nowhere(
    net: Store, cat: Catalogue
) -> None:
    # At 00:30 C1 reports 70 % on 30 GB from "net" and 50 % on 10 GB from a second source, "oss";
    # C2 reports 60 % from "net" with no traffic in that period and source.
    at = T0 + 2 * Q
    kpi_data.samples(net, [("C1", "availability_pct", at, 70.0), ("C1", "traffic_gb", at, 30.0)])
    kpi_data.samples(net, [("C2", "availability_pct", at, 60.0)])
    kpi_data.ingest(
        net,
        "kpi_samples",
        [
            {"entity_type": "cell", "entity_id": "C1", "kpi": k, "period_start": at, "value": v}
            for k, v in (("availability_pct", 50.0), ("traffic_gb", 10.0))
        ],
        source="oss",
    )
    with net.begin() as conn:
        refresh_rollups(conn, cat, now=NOW, full=True)
    # C1's hour: 100 x 10 + 90 x 30 before, then 70 x 30 + 50 x 10; C2's 60 % is in no total or weight.
    assert rollup(net, "availability_pct", "cell", "C1", 3600, T0) == (3700 + 2100 + 500, 80)
    assert rollup(net, "availability_pct", "cell", "C2", 3600, T0) == (80 * 20, 20)
    assert rollup(net, "traffic_gb", "cell", "C1", 3600, T0) == (10 + 30 + 30 + 10, 4)
    r = kpi_rollups
    with net.connect() as conn:
        low_high = conn.execute(
            select(r.c.entity_id, r.c.low, r.c.high)
            .where(r.c.series == "availability_pct", r.c.level == "cell", r.c.grain_s == 3600)
            .where(r.c.period_start == T0)
            .order_by(r.c.entity_id)
        ).all()
        quarters = read.fetch_rows(
            conn, cat, ["availability_pct"], level="cell", grain_s=900, since=at, until=at + Q
        )
    assert [tuple(x) for x in low_high] == [("C1", 50.0, 100.0), ("C2", 80.0, 80.0), ("C3", 100.0, 100.0)]
    assert quarters[["entity_id", "total", "weight"]].values.tolist() == [["C1", 2600.0, 40.0]]
    assert value(net, cat, "availability_pct", "network", "all", 900, at) == pytest.approx(2600 / 40)


def test_ratio_kpis_are_ratios_of_sums(net: Store, cat: Catalogue) -> None:
    # S1: 2 tickets / 2 lines = 1000 per 1k; the mean of its cells' ratios (666.7 and 2000) would be 1333.
    assert value(net, cat, "tickets_per_1k_subscribers", "site", "S1", 86400, T0) == pytest.approx(1000.0)
    assert value(net, cat, "tickets_per_1k_subscribers", "cell", "C1", 86400, T0) == pytest.approx(1000 / 1.5)
    assert value(net, cat, "negative_sentiment_share_pct", "network", "all", 86400, T0) == pytest.approx(
        100 / 3
    )
    assert value(net, cat, "churn_rate_pct", "region", "R1", 86400, T0 + D) == pytest.approx(100 * 30.44 / 2)
    assert value(net, cat, "nps_proxy", "segment", "enterprise", 86400, T0) == pytest.approx(100 * 30.44)
    assert value(net, cat, "nps_proxy", "segment", "consumer", 86400, T0) == pytest.approx(-100 * 30.44 / 2)


def test_no_data_rules(net: Store, cat: Catalogue) -> None:
    with net.connect() as conn:
        gap = read.series(
            conn,
            cat,
            "negative_sentiment_share_pct",
            level="network",
            entity_id="all",
            grain_s=86400,
            since=T0,
            until=T0 + 3 * D,
        )
        zero = read.series(
            conn,
            cat,
            "tickets_per_1k_subscribers",
            level="network",
            entity_id="all",
            grain_s=86400,
            since=T0,
            until=T0 + 5 * D,
        )
    assert gap["value"].iloc[0] == pytest.approx(100 / 3)
    assert gap["value"].iloc[1:].isna().all()  # no tickets: 0 / 0 is no data
    assert zero["value"].tolist() == pytest.approx([1000.0, 0.0, 0.0, 0.0, 0.0])  # no lines on 7, 8 March: 0
    last = cat.get("latency_ms").model_copy(update={"no_data": "last"})
    s = pd.Series([70.0, np.nan, np.nan, 40.0], index=pd.date_range(T0, periods=4, freq="15min"))
    out = evaluate_series(s, last)
    assert out["value"].tolist() == [70.0, 70.0, 70.0, 40.0]
    assert out["status"].tolist() == ["ok", "ok", "warning", "ok"]  # 70 carried over three periods
    assert evaluate_series(s, cat.get("latency_ms"))["status"].tolist() == ["ok", "no_data", "no_data", "ok"]


def test_status_honours_for_and_critical_wins(cat: Catalogue) -> None:
    latency = cat.get("latency_ms")  # warning > 60 for 30m (3 periods), critical > 120 for 15m (2)
    index = pd.date_range(T0, periods=8, freq="15min")
    frame = pd.DataFrame(
        {
            "short": [40, 70, 70, 40, 70, 70, 40, 40],  # never three periods in a row
            "long": [40, 70, 70, 70, 40, 40, 40, 40],
            "spike": [70, 70, 130, 130, 70, 40, 40, 40],
        },
        index=index,
        dtype=float,
    )
    st = status_frame(frame, latency)
    assert (st["short"] == "ok").all()
    assert st["long"].tolist() == ["ok", "ok", "ok", "warning", "ok", "ok", "ok", "ok"]
    # Above 60 from the start: warning at the third period; above 120 twice: critical; then back to warning.
    assert st["spike"].tolist() == ["ok", "ok", "warning", "critical", "warning", "ok", "ok", "ok"]


def test_status_pass_writes_kpi_status(net: Store, cat: Catalogue) -> None:
    with net.begin() as conn:
        summary = refresh_status(conn, cat, now=T0 + H)
    assert summary.rows > 0
    with net.connect() as conn:
        df = read_frame(conn, select(kpi_status).where(kpi_status.c.kpi == "availability_pct"))
    got = df.set_index(["level", "entity_id"])
    # Network: 93 % at 00:00 and 90 % at 00:15, both below 95 for two periods: critical since 00:15.
    assert got.loc[("network", "all"), "status"] == "critical"
    assert got.loc[("network", "all"), "value"] == pytest.approx(90.0)
    assert pd.Timestamp(got.loc[("network", "all"), "since"]) == pd.Timestamp(T0 + Q)
    # Consumers: 95 % then 90 %: below 99.5 twice (warning) but below 95 only once.
    assert got.loc[("segment", "consumer"), "status"] == "warning"
    assert got.loc[("cell", "C3"), "status"] == "no_data"  # no sample at 00:15
    with net.connect() as conn:
        cards = {c["name"]: c for c in read.current(conn, cat)}
    assert cards["availability_pct"]["status"] == "critical"
    assert cards["availability_pct"]["sparkline"][-1] == pytest.approx(93.0)


def test_a_status_pass_writes_over_the_stored_statuses_and_drops_those_of_entities_gone(
    net: Store, cat: Catalogue
) -> None:
    """A second pass gives every status the value and time of its own evaluation; on PostgreSQL it
    updates the stored rows in place (heap-only: no index entry, nothing inserted) instead of
    deleting and inserting them. A cell gone from the network loses its statuses, and a status row
    of a KPI the pass does not evaluate is left as it was."""
    with net.begin() as conn:
        first = refresh_status(conn, cat, now=T0 + H)
    st = kpi_status
    with net.begin() as conn:
        conn.execute(
            insert(st).values(
                kpi="not_in_catalogue", level="network", entity_id="all", status="ok", evaluated_at=T0
            )
        )
    pg = net.dialect == "postgresql"
    key = ["kpi", "level", "entity_id"]
    with net.connect() as conn:
        was = read_frame(conn, select(st.c.kpi, st.c.level, st.c.entity_id, st.c.status)).set_index(key)[
            "status"
        ]
    counts = text(
        "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_xact_user_tables "
        "WHERE relid = CAST('kpi_status' AS regclass)"
    )
    with net.begin() as conn:
        before = conn.execute(counts).one() if pg else None
        second = refresh_status(conn, cat, now=T0 + 2 * H)
        moved = [a - b for a, b in zip(conn.execute(counts).one(), before, strict=True)] if pg else None
    assert second.rows == first.rows
    if moved is not None:
        ins, upd, _, deleted = moved
        assert (ins, deleted) == (0, 0)
        assert upd == second.rows
    with net.connect() as conn:
        df = read_frame(conn, select(st))
    if moved is not None:
        # A row whose status changed moves in the (level, status) index; the others stay heap-only
        # (but for a new version that no longer fits its page).
        unchanged = int((df.set_index(key)["status"].reindex(was.index) == was).sum())
        assert unchanged > second.rows // 2 and moved[2] >= 0.9 * unchanged
    assert len(df) == second.rows + 1
    mine = df[df["kpi"] != "not_in_catalogue"]
    assert (pd.to_datetime(mine["evaluated_at"]) == pd.Timestamp(T0 + 2 * H)).all()
    with net.begin() as conn:  # C3 leaves the network: its statuses go with the next pass
        conn.execute(text("DELETE FROM subscriber_cells WHERE cell_id = 'C3'"))
        conn.execute(text("DELETE FROM cells WHERE id = 'C3'"))
        third = refresh_status(conn, cat, now=T0 + 3 * H)
    with net.connect() as conn:
        df = read_frame(conn, select(st))
    assert not ((df["level"] == "cell") & (df["entity_id"] == "C3")).any()
    assert len(df) == third.rows + 1 and third.rows < second.rows
    assert df[df["kpi"] == "not_in_catalogue"]["status"].tolist() == ["ok"]


def _rollup_table(store: Store) -> pd.DataFrame:
    with store.connect() as conn:
        df = read_frame(conn, select(kpi_rollups).where(kpi_rollups.c.series != "revenue_at_risk"))
    df = df.drop(columns=["computed_at"]).sort_values(
        ["series", "level", "entity_id", "grain_s", "period_start"]
    )
    return df.reset_index(drop=True)


def test_incremental_pass_equals_a_full_rebuild(net: Store, cat: Catalogue) -> None:
    # A new period, a late sample for an earlier period and a new ticket arrive.
    kpi_data.samples(
        net,
        [
            ("C1", "availability_pct", T0 + 2 * Q, 50.0),
            ("C1", "traffic_gb", T0 + 2 * Q, 10.0),
            ("C2", "availability_pct", T0 + Q, 60.0),  # late: 00:15 had no C2 sample before
            ("C2", "traffic_gb", T0 + Q, 10.0),
            ("C3", "prb_utilisation_pct", T0 + 5 * H, 30.0),
        ],
    )
    kpi_data.ingest(
        net,
        "tickets",
        [
            {"id": "T9", "subscriber_id": "L2", "sentiment": -0.9, "status": "new"}
            | {"created_at": T0 + D + H, "updated_at": T0 + D + H}
        ],
    )
    with net.begin() as conn:
        inc = refresh_rollups(conn, cat, now=NOW + Q, sample_risk=False)
    assert not inc.full
    assert inc.sample_window is not None and inc.sample_window[0] <= T0 + Q
    incremental = _rollup_table(net)
    assert value(net, cat, "availability_pct", "site", "S1", 3600, T0) == pytest.approx(
        (1000 + 2700 + 1600 + 600 + 500) / 80
    )
    assert rollup(net, "negative_tickets", "network", "all", 86400, T0 + D)[0] == 1.0
    with net.begin() as conn:
        full = refresh_rollups(conn, cat, now=NOW + Q, full=True, sample_risk=False)
    assert full.full
    pd.testing.assert_frame_equal(incremental, _rollup_table(net), check_exact=False)


def test_an_incremental_pass_deletes_the_roll_ups_of_samples_that_are_gone(
    net: Store, cat: Catalogue
) -> None:
    # C3's only PRB sample of 00:00 is removed (a correction upstream) and its hour marked again:
    # the pass must drop the cell's hour and day rows it made, not keep the old ones.
    assert rollup(net, "prb_utilisation_pct", "cell", "C3", 3600, T0)
    with net.begin() as conn:
        s = kpi_samples_table.c
        gone = conn.execute(
            kpi_samples_table.delete().where(
                s.entity_id == "C3", s.kpi == "prb_utilisation_pct", s.period_start == T0
            )
        )
        assert gone.rowcount == 1
        mark_sample_hours(conn, [T0], now=NOW)
    with net.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + Q, sample_risk=False)
    r = kpi_rollups.c
    with net.connect() as conn:
        left = conn.execute(
            select(r.grain_s).where(r.series == "prb_utilisation_pct", r.level == "cell", r.entity_id == "C3")
        )
        assert left.scalars().all() == []
    incremental = _rollup_table(net)
    with net.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + Q, full=True, sample_risk=False)
    pd.testing.assert_frame_equal(incremental, _rollup_table(net), check_exact=False)


@pytest.mark.postgres
def test_on_postgresql_a_pass_updates_the_hour_and_day_it_recomputes_in_place(
    pg_store: Store, cat: Catalogue
) -> None:
    # A late sample for an hour already rolled up changes rows that exist: the pass updates them
    # without a new index entry (heap-only tuples), inserts nothing and leaves unchanged rows alone.
    kpi_data.build(pg_store)
    with pg_store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW, full=True, sample_risk=False)
    kpi_data.samples(pg_store, [("C1", "availability_pct", T0 + Q, 10.0), ("C1", "traffic_gb", T0 + Q, 9.0)])
    counts = text(
        "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
        "WHERE relid = CAST('kpi_rollups' AS regclass)"
    )
    with pg_store.begin() as conn:
        before = conn.execute(counts).one()  # the backend's counts not yet reported
        refresh_rollups(conn, cat, now=NOW + Q, sample_risk=False)
        ins, upd, hot = (a - b for a, b in zip(conn.execute(counts).one(), before, strict=True))
    assert ins == 0
    assert upd > 0 and hot == upd
    # Only the rows the sample changed: C1's hour and day, and the site, region, network and segments
    # they roll into, for availability and traffic (not every row of the hour).
    assert upd < 40


def test_incremental_passes_over_a_month_and_a_day_boundary_equal_a_full_rebuild(
    net: Store, cat: Catalogue
) -> None:
    # 32 days of samples before the hand-made ones, then passes every hour across midnight while
    # samples, a ticket and a churn event arrive; the roll-ups must equal a rebuild from scratch.
    kpi_data.history(net, T0 - 32 * D, NOW, skip=(T0, T0 + H))
    with net.begin() as conn:
        first = refresh_rollups(conn, cat, now=NOW, full=True, sample_risk=False)
    assert first.full and first.sample_window is not None and first.sample_window[0] <= T0 - 32 * D
    edge = T0 + 3 * D  # the next midnight
    kpi_data.history(net, NOW, edge - 2 * H, seed=5)
    kpi_data.ingest(
        net,
        "tickets",
        [
            {"id": "T8", "subscriber_id": "L1", "sentiment": -0.6, "status": "new"}
            | {"created_at": T0 - 20 * D, "updated_at": T0 - 20 * D}  # late: three weeks back
        ],
    )
    passes, arrived = [], edge - 2 * H
    for k, at in enumerate((edge - H, edge, edge + H)):
        kpi_data.history(net, arrived, at + H, seed=10 + k)
        arrived = at + H
        if at == edge:
            kpi_data.ingest(
                net,
                "churn_events",
                [{"id": "E2", "subscriber_id": "L2", "account_id": "A2", "occurred_at": edge - 3 * H}],
            )
        with net.begin() as conn:
            passes.append(refresh_rollups(conn, cat, now=at + H + Q, sample_risk=False))
    assert not any(p.full for p in passes)
    # On PostgreSQL each pass adds the new periods to their hours and days (no sample came late).
    assert [p.folded for p in passes] == [net.dialect == "postgresql"] * 3
    # After the first (which catches up on most of a day), each pass reads hours of samples, not the month.
    assert all(p.sample_window and p.sample_window[1] - p.sample_window[0] <= 4 * H for p in passes[1:])
    incremental = _rollup_table(net)
    with net.begin() as conn:
        refresh_rollups(conn, cat, now=edge + 2 * H + Q, full=True, sample_risk=False)
    full = _rollup_table(net)
    assert len(full) == len(incremental) and len(full) > 10_000
    pd.testing.assert_frame_equal(incremental, full, check_exact=False)


def _periods(store: Store, start: datetime, end: datetime, seed: int) -> None:
    """Samples of every 15-minute period in [start, end) through the ingest path (marked hours)."""
    rng = np.random.default_rng(seed)
    rows = []
    t = start
    while t < end:
        for cell in ("C1", "C2", "C3"):
            rows += [
                (cell, "availability_pct", t, float(rng.uniform(80, 100))),
                (cell, "traffic_gb", t, float(rng.uniform(1, 9))),
                (cell, "prb_utilisation_pct", t, float(rng.uniform(10, 95))),
            ]
        t += Q
    kpi_data.samples(store, rows)


def _built_until(store: Store, cat: Catalogue, start: datetime, seed: int) -> None:
    """The hand-made network with every period from T0 + 2 days to ``start``, rolled up in full."""
    kpi_data.build(store)
    _periods(store, T0 + 2 * D, start, seed=seed)
    with store.begin() as conn:
        refresh_rollups(conn, cat, now=start, full=True, sample_risk=False)


@pytest.mark.postgres
def test_on_postgresql_new_periods_are_added_to_their_hours_and_days_and_equal_a_rebuild(
    pg_store: Store, cat: Catalogue
) -> None:
    # Passes every period across an hour and a day boundary, each period's samples arriving through
    # the ingest path; one of them with a sample for a period already read (then the hour is added
    # up again, not added to).
    start = T0 + 2 * D + 22 * H
    _built_until(pg_store, cat, start, seed=1)
    folded = []
    for i in range(12):  # 22:00 to 00:45 the next day
        at = start + i * Q
        _periods(pg_store, at, at + Q, seed=10 + i)
        if i == 7:  # 23:45's samples, with a late one for 23:15
            kpi_data.samples(pg_store, [("C2", "availability_pct", start + 5 * Q, 1.0)])
        with pg_store.begin() as conn:
            folded.append(refresh_rollups(conn, cat, now=at + Q, sample_risk=False).folded)
    assert folded == [True] * 7 + [False] + [True] * 4
    incremental = _rollup_table(pg_store)
    with pg_store.begin() as conn:
        refresh_rollups(conn, cat, now=start + 12 * Q, full=True, sample_risk=False)
    full = _rollup_table(pg_store)
    assert set(full["level"]) >= {"cell", "site", "region", "network", "segment"}
    assert (full["period_start"] >= T0 + 3 * D).any()
    pd.testing.assert_frame_equal(incremental, full, check_exact=False)


@pytest.mark.postgres
def test_samples_of_a_period_newer_than_a_pass_saw_when_it_began_are_added_by_the_next_pass_once(
    pg_store: Store, cat: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A period's samples committed after a pass read the newest period (as an ingest that commits
    # while the pass runs): that pass must not read them, or the next one, which adds every period
    # after the newest the pass saw, would count them twice.
    from dashboard.kpi_eval import rollup as rollup_module

    start = T0 + 2 * D + 10 * H
    _built_until(pg_store, cat, start, seed=2)
    _periods(pg_store, start, start + 3 * Q, seed=3)  # 10:00, 10:15 and 10:30 arrive
    real = rollup_module._sample_bounds

    def seen_before_the_last(conn: Any, names: Any) -> tuple[datetime | None, datetime | None]:
        lo, _ = real(conn, names)
        return lo, start + Q  # as if 10:30 had committed after the pass read the bounds

    monkeypatch.setattr(rollup_module, "_sample_bounds", seen_before_the_last)
    with pg_store.begin() as conn:
        first = refresh_rollups(conn, cat, now=start + 3 * Q, sample_risk=False)
    monkeypatch.setattr(rollup_module, "_sample_bounds", real)
    assert first.folded
    assert rollup(pg_store, "traffic_gb", "network", "all", 3600, start)[1] == 2 * 3  # 10:00, 10:15
    with pg_store.begin() as conn:
        second = refresh_rollups(conn, cat, now=start + 3 * Q, sample_risk=False)
    assert second.folded
    assert rollup(pg_store, "traffic_gb", "network", "all", 3600, start)[1] == 3 * 3
    incremental = _rollup_table(pg_store)
    with pg_store.begin() as conn:
        refresh_rollups(conn, cat, now=start + 3 * Q, full=True, sample_risk=False)
    pd.testing.assert_frame_equal(incremental, _rollup_table(pg_store), check_exact=False)


def test_a_mark_keeps_the_earliest_period_written_into_its_hour(store: Store) -> None:
    t = kpi_sample_hours.c
    hour = T0 + 5 * H
    with store.begin() as conn:
        mark_sample_hours(conn, [hour + 2 * Q, hour + 3 * Q, hour + H], now=NOW)
        mark_sample_hours(conn, [hour + Q], now=NOW)  # late, same hour
        mark_sample_hours(conn, [hour + 3 * Q], now=NOW)
        conn.execute(insert(kpi_sample_hours).values(hour=hour + 2 * H, ingested_at=NOW))  # none known
        mark_sample_hours(conn, [hour + 2 * H + 3 * Q], now=NOW)
    with store.connect() as conn:
        marks = conn.execute(select(t.hour, t.first_period).order_by(t.hour)).all()
    got = [(pd.Timestamp(h), None if p is None else pd.Timestamp(p)) for h, p in marks]
    assert got == [
        (pd.Timestamp(hour), pd.Timestamp(hour + Q)),
        (pd.Timestamp(hour + H), pd.Timestamp(hour + H)),
        (pd.Timestamp(hour + 2 * H), None),  # stays unknown: that hour is added up again
    ]


def test_a_sample_hours_late_is_rolled_up_by_the_next_pass_which_reads_only_the_hours_written(
    net: Store, cat: Catalogue
) -> None:
    # The pass has seen up to 10:00; then a new period (10:15) and a sample ten hours late (00:15)
    # arrive through the ingest path. The next pass recomputes hour 00 and hour 10, nothing else,
    # and the roll-ups equal a full rebuild.
    kpi_data.samples(
        net, [("C1", "availability_pct", T0 + 10 * H, 97.0), ("C1", "traffic_gb", T0 + 10 * H, 4.0)]
    )
    with net.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + Q, sample_risk=False)
    kpi_data.samples(
        net,
        [
            ("C1", "availability_pct", T0 + 10 * H + Q, 95.0),
            ("C2", "availability_pct", T0 + Q, 60.0),  # late: 00:15 had no C2 sample before
            ("C2", "traffic_gb", T0 + Q, 10.0),
        ],
    )
    with net.begin() as conn:
        inc = refresh_rollups(conn, cat, now=NOW + 2 * Q, sample_risk=False)
    assert inc.sample_hours == 2 and inc.sample_window == (T0, T0 + 11 * H)
    assert value(net, cat, "availability_pct", "site", "S1", 3600, T0) == pytest.approx(
        (1000 + 2700 + 1600 + 600) / 70
    )
    incremental = _rollup_table(net)
    with net.begin() as conn:
        quiet = refresh_rollups(conn, cat, now=NOW + 3 * Q, sample_risk=False)
    assert quiet.sample_hours == 0 and quiet.sample_window is None  # nothing written: nothing read
    with net.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + 3 * Q, full=True, sample_risk=False)
    pd.testing.assert_frame_equal(incremental, _rollup_table(net), check_exact=False)


@pytest.mark.postgres
def test_samples_committed_while_a_pass_runs_are_rolled_up_then_or_next_time(
    pg_store: Store, cat: Catalogue
) -> None:
    """An ingest holds its hour's mark until it commits: a pass that reaches the mark waits for it
    and then reads the committed samples; none is left out of both passes."""
    kpi_data.build(pg_store)
    with pg_store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW, sample_risk=False)
    kpi_data.samples(pg_store, [("C3", "availability_pct", T0 + Q, 50.0), ("C3", "traffic_gb", T0 + Q, 40.0)])
    ingest = Ingestor(pg_store)
    batch = Batch(
        kind="kpi_samples",
        records=[
            {"entity_type": "cell", "entity_id": "C1", "kpi": k, "period_start": T0 + 2 * Q, "value": v}
            for k, v in (("availability_pct", 10.0), ("traffic_gb", 5.0))
        ],
    )
    done: dict[str, Any] = {}
    with pg_store.begin() as writer:
        ingest.ingest_batch(writer, connector="net", stream="push", batch=batch)  # marks hour 00, locked

        def run_pass() -> None:
            with pg_store.begin() as conn:
                done["pass"] = refresh_rollups(conn, cat, now=NOW + Q, sample_risk=False)

        worker = threading.Thread(target=run_pass)
        worker.start()
        worker.join(timeout=3)
        assert worker.is_alive()  # waiting for the ingest's mark
    worker.join(timeout=60)
    assert not worker.is_alive() and done["pass"].sample_hours >= 1
    assert value(pg_store, cat, "availability_pct", "cell", "C1", 900, T0 + 2 * Q) == 10.0
    with pg_store.connect() as conn:
        hour = conn.execute(
            select(kpi_rollups.c.total, kpi_rollups.c.weight).where(
                kpi_rollups.c.series == "availability_pct",
                kpi_rollups.c.level == "cell",
                kpi_rollups.c.entity_id == "C1",
                kpi_rollups.c.grain_s == 3600,
                kpi_rollups.c.period_start == T0,
            )
        ).one()
    assert hour.total == pytest.approx(100 * 10 + 90 * 30 + 10 * 5)  # the sample the ingest held is in
    with pg_store.connect() as conn:
        left = conn.execute(select(func.count()).select_from(kpi_sample_hours)).scalar_one()
    assert left == 0
    incremental = _rollup_table(pg_store)
    with pg_store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + Q, full=True, sample_risk=False)
    pd.testing.assert_frame_equal(incremental, _rollup_table(pg_store), check_exact=False)


def test_rows_read_in_the_overlap_are_not_reread_but_a_late_commit_is(net: Store, cat: Catalogue) -> None:
    # The fixture's pass ran at NOW, before the rows' ingest times: all of them lie in its overlap.
    with net.begin() as conn:
        again = refresh_rollups(conn, cat, now=NOW + Q, sample_risk=False)
    assert again.flow_days == 0  # already read: not recomputed again
    # A batch that committed late, stamped inside the overlap the last pass counted.
    with net.begin() as conn:
        stamp = conn.execute(select(func.max(tickets.c.ingested_at))).scalar()
        conn.execute(
            insert(tickets)
            .values(id="T7", source="net", subscriber_id="L2", status="new", sentiment=-0.8)
            .values(created_at=T0 + D + H, updated_at=T0 + D + H, ingested_at=stamp)
        )
    with net.begin() as conn:
        late = refresh_rollups(conn, cat, now=NOW + 2 * Q, sample_risk=False)
    assert late.flow_days >= 1
    assert rollup(net, "negative_tickets", "network", "all", 86400, T0 + D)[0] == 1.0


def test_panel_is_one_row_per_entity_and_period(net: Store, cat: Catalogue) -> None:
    with net.connect() as conn:
        p = read.panel(
            conn,
            cat,
            ["availability_pct", "tickets_per_1k_subscribers"],
            level="cell",
            since=T0,
            until=T0 + 2 * D,
            measures=["subscribers", "tickets"],
        )
        consumer = read.panel(
            conn,
            cat,
            ["tickets_per_1k_subscribers"],
            level="site",
            since=T0,
            until=T0 + D,
            measures=["subscribers", "tickets"],
            scope=("segment", "consumer"),
        )
        r1 = read.panel(
            conn, cat, ["availability_pct"], level="cell", since=T0, until=T0 + D, scope=("region", "R1")
        )
        with pytest.raises(read.KpiReadError, match="scope"):
            read.panel(conn, cat, ["availability_pct"], since=T0, until=T0 + D, scope=("planet", "x"))
    assert list(p.columns) == [
        "entity_id",
        "period_start",
        "availability_pct",
        "tickets_per_1k_subscribers",
        "subscribers",
        "tickets",
    ]
    assert len(p) == 3 * 2
    row = p.set_index(["entity_id", "period_start"]).loc[("C2", pd.Timestamp(T0))]
    assert row["availability_pct"] == pytest.approx(80.0)
    assert row["tickets"] == pytest.approx(1.0) and row["subscribers"] == pytest.approx(0.5)
    assert np.isnan(
        p.set_index(["entity_id", "period_start"]).loc[("C2", pd.Timestamp(T0 + D)), "availability_pct"]
    )
    # Consumers only on S1: L1 and L3, two tickets; S2 serves no consumer line.
    s1 = consumer.set_index("entity_id").loc["S1"]
    assert (s1["subscribers"], s1["tickets"]) == pytest.approx((2.0, 2.0))
    assert sorted(r1["entity_id"].unique()) == ["C1", "C2"]


def test_evaluate_job_and_api_return_the_catalogue(net: Store, cat: Catalogue) -> None:
    result = evaluate(net, cat, now=T0 + H)
    assert result.status.rows > 0
    client = api_client(net, catalogue=cat)
    body: Any = client.get("/api/v1/kpis").get_json()
    assert [k["name"] for k in body["kpis"]] == cat.names
    assert body["count"] == len(cat.kpis) and body["level"] == "network"
    availability = body["kpis"][0]
    assert availability["status"] == "critical" and availability["value"] == pytest.approx(90.0)
    assert availability["thresholds"]["critical"] == {"op": "<", "value": 95.0, "for_s": 900.0}
    seg: Any = client.get("/api/v1/kpis?level=segment&entity=consumer").get_json()
    assert seg["kpis"][0]["status"] == "warning"
    bad = client.get("/api/v1/kpis?level=planet")
    assert bad.status_code == 400 and "expected one of" in bad.get_json()["error"]
    missing = client.get("/api/v1/kpis?level=region")
    assert missing.status_code == 400 and "entity" in missing.get_json()["error"]


def test_a_first_build_leaves_the_rollup_indexes_as_the_migrations_made_them(net: Store) -> None:
    # On PostgreSQL the first build drops them and builds them once after the samples' rows.
    if net.dialect != "postgresql":
        pytest.skip("indexes are kept up to date row by row on SQLite")
    with net.connect() as conn:
        found = {
            name: definition.split(" USING ", 1)[1]
            for name, definition in conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename = 'kpi_rollups' AND schemaname = current_schema()"
                )
            )
            if name.startswith(("pk_", "ix_"))
        }
        primary = conn.execute(
            text("SELECT conname FROM pg_constraint WHERE conrelid = CAST('kpi_rollups' AS regclass)")
        ).scalars()
    assert found == {
        "pk_kpi_rollups": "btree (series, level, entity_id, grain_s, period_start)",
        "ix_kpi_rollups_series_period": "btree (series, level, grain_s, period_start)",
    }
    assert list(primary) == ["pk_kpi_rollups"]


def test_a_status_held_longer_than_the_window_keeps_the_time_it_began(net: Store, cat: Catalogue) -> None:
    """A cell critical for six hours (availability below 95 % for two periods, so critical from its
    second period) says so since that period on every pass, not since the start of the window each
    pass reads."""
    start = T0 + 12 * H
    periods = 24
    kpi_data.samples(
        net,
        [("C1", "availability_pct", start + i * Q, 80.0) for i in range(periods)]
        + [("C1", "traffic_gb", start + i * Q, 10.0) for i in range(periods)],
    )
    began = pd.Timestamp(start + Q)
    seen = []
    for i in range(2, periods + 1):
        now = start + i * Q + timedelta(minutes=5)
        with net.begin() as conn:
            refresh_status(conn, cat, now=now)
        with net.connect() as conn:
            row = conn.execute(
                select(kpi_status.c.status, kpi_status.c.since).where(
                    kpi_status.c.kpi == "availability_pct",
                    kpi_status.c.level == "cell",
                    kpi_status.c.entity_id == "C1",
                )
            ).one()
        assert row.status == "critical", now
        seen.append(pd.Timestamp(row.since))
    assert seen == [began] * len(seen)


def _statuses(store: Store) -> pd.DataFrame:
    with store.connect() as conn:
        df = read_frame(conn, select(kpi_status))
    return df.sort_values(["kpi", "level", "entity_id"]).reset_index(drop=True)


def _period(at: datetime, availability: dict[str, float]) -> list[tuple[str, str, datetime, float]]:
    rows = []
    for cell in ("C1", "C2", "C3"):
        rows += [
            (cell, "availability_pct", at, availability.get(cell, 99.8)),
            (cell, "traffic_gb", at, 5.0),
            (cell, "prb_utilisation_pct", at, 85.0 if cell == "C2" else 40.0),
            (cell, "latency_ms", at, 30.0),
        ]
    return rows


def test_passes_that_keep_quarter_hours_write_what_a_pass_reading_everything_writes(
    net: Store, cat: Catalogue
) -> None:
    """The scheduler's passes keep the quarter-hour rows they read (QuarterHours) and read again only
    the hours the roll-up pass recomputed: a new period each pass, a sample two hours late, and the
    statuses of every level equal those of a pass that reads its whole window, after every pass."""
    start = NOW - 5 * H
    kpi_data.history(net, start, NOW)
    memo = QuarterHours()
    reads, added = [], []
    for i in range(10):
        at = NOW + i * Q
        outage = {"C1": 80.0} if 3 <= i <= 6 else {}
        rows = _period(at, outage)
        if i == 5:  # late, into an hour read before: C3 was down for three periods an hour ago
            rows += [("C3", "availability_pct", NOW + k * Q, 70.0) for k in range(1, 4)]
        kpi_data.samples(net, rows)
        now = at + Q + timedelta(minutes=5)
        done = evaluate(net, cat, now=now, memo=memo)
        reads.append(done.status.hours_read)
        added.append(done.status.hours_added)
        kept = _statuses(net)
        with net.begin() as conn:
            refresh_status(conn, cat, now=now)
        pd.testing.assert_frame_equal(kept, _statuses(net), check_exact=False)
        assert set(kept["status"]) >= {"ok"}
    assert reads[0] is not None and reads[0] >= 5  # the first pass reads the whole window
    assert max(reads[1:]) <= 2 and reads[5] == 2  # then the newest hour, and the late sample's hour
    # Of an hour kept up to the newest period read before, only the new period is read; a new hour, or
    # an hour a late sample went into, is read whole.
    assert added == [0, 1, 1, 1, 0, 0, 1, 1, 0, 1]
    cells = _statuses(net).query("kpi == 'availability_pct' and level == 'cell'").set_index("entity_id")
    assert cells.loc["C1", "status"] == "ok"
    assert pd.Timestamp(cells.loc["C3", "since"]) == pd.Timestamp(NOW + 4 * Q)  # ok since its late outage


def test_kept_quarter_hours_stop_at_the_newest_period_the_roll_up_pass_read(
    net: Store, cat: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A period whose samples commit after the roll-up pass read its bounds is left out of what the
    job keeps, and the next job, told only that period is new, adds it once."""
    from dashboard.kpi_eval import rollup as rollup_module

    kpi_data.history(net, NOW - 5 * H, NOW)
    memo = QuarterHours()
    kpi_data.samples(net, _period(NOW, {}))
    evaluate(net, cat, now=NOW + Q + timedelta(minutes=5), memo=memo)
    kpi_data.samples(net, _period(NOW + Q, {}))
    kpi_data.samples(net, _period(NOW + 2 * Q, {"C1": 80.0}))
    real = rollup_module._sample_bounds

    def before_the_last(conn: Any, names: Any) -> tuple[datetime | None, datetime | None]:
        return real(conn, names)[0], NOW + Q  # as if 00:30 had committed after the bounds were read

    monkeypatch.setattr(rollup_module, "_sample_bounds", before_the_last)
    evaluate(net, cat, now=NOW + 2 * Q + timedelta(minutes=5), memo=memo)
    monkeypatch.setattr(rollup_module, "_sample_bounds", real)
    kept = memo.hours[NOW]["cell"]
    assert kept["period_start"].max() == pd.Timestamp(NOW + Q)
    now = NOW + 3 * Q + timedelta(minutes=5)
    done = evaluate(net, cat, now=now, memo=memo)
    assert done.status.hours_read == done.status.hours_added == 1
    assert not memo.hours[NOW]["cell"].duplicated(["series", "entity_id", "period_start"]).any()
    assert memo.hours[NOW]["cell"]["period_start"].max() == pd.Timestamp(NOW + 2 * Q)
    statuses = _statuses(net)
    with net.begin() as conn:
        refresh_status(conn, cat, now=now)
    pd.testing.assert_frame_equal(statuses, _statuses(net), check_exact=False)
    cells = statuses.query("kpi == 'availability_pct' and level == 'cell'").set_index("entity_id")
    assert cells.loc["C1", "value"] == pytest.approx(80.0)


def test_kept_quarter_hours_are_forgotten_when_another_process_ran_a_pass(net: Store, cat: Catalogue) -> None:
    """A pass by another scheduler in between takes the marks of the hours it recomputed: the kept
    rows of those hours may be old, so the next pass reads its whole window again."""
    kpi_data.history(net, NOW - 5 * H, NOW)
    memo = QuarterHours()
    kpi_data.samples(net, _period(NOW, {}))
    evaluate(net, cat, now=NOW + Q + timedelta(minutes=5), memo=memo)
    # Another process: a late outage on C2 an hour ago, rolled up by its own pass.
    kpi_data.samples(net, [("C2", "availability_pct", NOW - H + k * Q, 60.0) for k in range(4)])
    with net.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + Q + timedelta(minutes=6))
    kpi_data.samples(net, _period(NOW + Q, {}))
    now = NOW + 2 * Q + timedelta(minutes=5)
    done = evaluate(net, cat, now=now, memo=memo)
    assert done.status.hours_read is not None and done.status.hours_read >= 5
    kept = _statuses(net)
    with net.begin() as conn:
        refresh_status(conn, cat, now=now)
    pd.testing.assert_frame_equal(kept, _statuses(net), check_exact=False)
    # A full rebuild, too, makes the next pass read everything.
    evaluate(net, cat, now=now, full=True, memo=memo)
    assert memo.read_hours >= 5


def _anomalies_through(store: Store) -> str | None:
    with store.connect() as conn:
        return load_state(conn, *ANOMALY_STATE).get("through")


def _evaluated_at(store: Store, cat: Catalogue) -> dict[int, set[datetime]]:
    """When the statuses of the KPIs of each grain were last evaluated."""
    grains = {k.name: int(k.grain) for k in cat.kpis}
    with store.connect() as conn:
        rows = conn.execute(select(kpi_status.c.kpi, kpi_status.c.evaluated_at)).all()
    out: dict[int, set[datetime]] = {}
    for kpi, at in rows:
        out.setdefault(grains[kpi], set()).add(pd.Timestamp(at).to_pydatetime())
    return out


def _evaluate_while_rollups_wait(
    store: Store, cat: Catalogue, now: datetime, memo: QuarterHours, *, full: bool
) -> list[Any]:
    """Hold the network's revenue-at-risk row of ``now``'s hour locked, so the job's roll-up pass
    waits on it at its end (after the samples' roll-ups, full or not), start the job, and return
    whether the baseline pass committed while the roll-ups were still waiting, when the statuses of
    each grain had been evaluated by then, and the job's result once the lock is let go."""
    done: list[Any] = []

    def job() -> None:
        done.append(evaluate(store, cat, now=now, full=full, memo=memo))

    worker = threading.Thread(target=job, daemon=True)
    before = _anomalies_through(store)
    r = kpi_rollups.c
    hour = now.replace(minute=0, second=0, microsecond=0)
    with store.begin() as conn:
        held = conn.execute(
            select(r.total)
            .where(r.series == "revenue_at_risk", r.level == "network", r.entity_id == "all")
            .where(r.grain_s == 3600, r.period_start == hour)
            .with_for_update()
        )
        assert held.one()
        worker.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            _anomalies_through(store) == before or _evaluated_at(store, cat).get(900) != {now}
        ):
            time.sleep(0.05)
        moved = _anomalies_through(store) != before
        evaluated = _evaluated_at(store, cat)
        assert worker.is_alive() and not done  # the roll-ups still wait on the lock
    worker.join(60)
    assert not worker.is_alive()
    return [moved, evaluated, *done]


@pytest.mark.postgres
def test_on_postgresql_the_job_reads_samples_beside_an_incremental_roll_up_pass(
    pg_store: Store, cat: Catalogue
) -> None:
    """What reads only samples runs on PostgreSQL on connections of its own while the roll-ups run:
    the baseline pass and the statuses of the KPIs of 15-minute grain commit while the roll-up pass
    is held up, the other statuses follow it, and together they are what a pass reading its whole
    window writes. Beside a full build the 15-minute statuses run too, and the baselines when their
    window holds no period before the oldest sample kept (they would read hourly roll-ups there)."""
    kpi_data.build(pg_store)
    kpi_data.history(pg_store, NOW - 5 * H, NOW)
    with pg_store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + timedelta(minutes=5))  # the hour's risk rows, to hold
    memo = QuarterHours()
    moved, evaluated, result = _evaluate_while_rollups_wait(
        pg_store, cat, NOW + timedelta(minutes=5), memo, full=True
    )
    # The first baseline pass learns from 14 days, which begin before the oldest sample (5 hours back).
    assert not moved, "the first baseline pass read roll-ups beside a full build"
    assert evaluated[900] == {NOW + timedelta(minutes=5)}
    assert result.rollups.full and result.anomalies.periods > 1000
    for i, outage in enumerate(({"C1": 80.0}, {"C1": 80.0, "C2": 70.0})):
        kpi_data.samples(pg_store, _period(NOW + i * Q, outage))
        now = NOW + (i + 1) * Q + timedelta(minutes=5)
        moved, evaluated, result = _evaluate_while_rollups_wait(pg_store, cat, now, memo, full=False)
        assert moved, "the baseline pass waited for the roll-ups"
        assert evaluated[900] == {now}, "the 15-minute statuses waited for the roll-ups"
        assert all(now not in at for grain, at in evaluated.items() if grain != 900)  # they read roll-ups
        assert result.anomalies.periods == 1 and result.rollups.sample_hours == 1
        assert result.status.hours_read == 1 and 0 < result.status.beside_s < result.status.elapsed_s
        assert _evaluated_at(pg_store, cat) == {grain: {now} for grain in evaluated}
        assert _anomalies_through(pg_store) == (NOW + i * Q).isoformat()
        kept = _statuses(pg_store)
        with pg_store.begin() as conn:
            refresh_status(conn, cat, now=now)
        pd.testing.assert_frame_equal(kept, _statuses(pg_store), check_exact=False)
    cells = kept.query("kpi == 'availability_pct' and level == 'cell'").set_index("entity_id")
    assert list(cells.loc[["C1", "C2"], "status"]) != ["ok", "ok"]
    kpi_data.samples(pg_store, _period(NOW + 2 * Q, {}))
    # Another full build: the baselines' window is one period now, within the samples kept.
    moved, evaluated, result = _evaluate_while_rollups_wait(pg_store, cat, now + Q, memo, full=True)
    assert moved and evaluated[900] == {now + Q}
    assert result.rollups.full and result.anomalies.periods == 1
    assert (
        result.status.hours_read >= 5 and result.status.beside_s > 0
    )  # the whole window, after a full build


@pytest.mark.postgres
def test_on_postgresql_a_full_build_has_the_baselines_beside_it_when_samples_cover_their_window(
    pg_store: Store, cat: Catalogue
) -> None:
    # A new store whose samples go back 15 days: the first baseline pass (14 days) reads samples only.
    kpi_data.build(pg_store)
    kpi_data.history(pg_store, NOW - 15 * D, NOW, skip=(T0, T0 + H))
    with pg_store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + timedelta(minutes=5))  # the hour's risk rows, to hold
    moved, evaluated, result = _evaluate_while_rollups_wait(
        pg_store, cat, NOW + timedelta(minutes=5), QuarterHours(), full=True
    )
    assert moved and evaluated[900] == {NOW + timedelta(minutes=5)}
    assert result.rollups.full and result.anomalies.periods == 14 * 96
    kept = _statuses(pg_store)
    with pg_store.begin() as conn:
        refresh_status(conn, cat, now=NOW + timedelta(minutes=5))
    pd.testing.assert_frame_equal(kept, _statuses(pg_store), check_exact=False)
