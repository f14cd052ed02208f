"""Seasonal baselines in the store, anomaly verdicts, and the silent-failure incidents they open.

The hand-made network of tests/band_data.py: cells C1, C2 on site S1 (served by RAN node N1, behind
transport link T1), C3 on site S2. Here throughput and latency follow a daily curve of their own with
noise for two weeks; then C1 degrades.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, insert, select

from dashboard.config import ConfigError
from dashboard.incidents import correlate, refresh_queue
from dashboard.incidents.correlate import DETECTOR_SOURCE, ENGINE_SOURCE
from dashboard.incidents.detect import detect
from dashboard.kpi_eval.anomaly import _traffic_array, band_for, band_frame, refresh_anomalies
from dashboard.kpi_eval.baseline import slot_of
from dashboard.kpi_eval.fixtures import run_rule_tests
from dashboard.kpis import Catalogue, load_catalogue
from dashboard.store import Store
from dashboard.store.db import read_frame
from dashboard.store.schema import (
    alarms,
    incident_queue,
    incidents,
    kpi_anomalies,
    kpi_baselines,
)
from tests.band_data import build_network, write_samples
from tests.kpi_data import ingest

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2024, 3, 4)  # a Monday
LEARNT = START + timedelta(days=14)
Q = timedelta(minutes=15)
CELLS = ("C1", "C2", "C3")


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue(ROOT / "kpi_definitions.yaml")


def _curve(t: datetime) -> float:
    hour = t.hour + t.minute / 60
    return 0.5 + 0.5 * np.exp(-(((hour - 20) / 3) ** 2))  # evening peak of load


def _rows(start: datetime, end: datetime, *, bad: tuple[datetime, datetime] | None = None, seed: int = 1):
    """Throughput, latency and traffic per cell and quarter hour; C1 at 40% throughput and 3x latency
    in ``bad``."""
    rng = np.random.default_rng(seed + int(start.timestamp()) % 1000)
    out = []
    t = start
    while t < end:
        load = _curve(t)
        for c in CELLS:
            tput = 60 * (1.2 - 0.6 * load) * float(np.exp(rng.normal(0, 0.05)))
            lat = 25 + 20 * load + float(abs(rng.normal(0, 1.5)))
            if bad is not None and bad[0] <= t < bad[1] and c == "C1":
                tput, lat = tput * 0.4, lat * 3
            for kpi, v in (("dl_throughput_mbps", tput), ("latency_ms", lat), ("traffic_gb", 2 + 6 * load)):
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


@pytest.fixture
def net(store: Store) -> Store:
    build_network(store)
    write_samples(store, _rows(START, LEARNT))
    return store


def _verdicts(store: Store) -> pd.DataFrame:
    with store.begin() as conn:
        return read_frame(conn, select(kpi_anomalies)).set_index(["kpi", "level", "entity_id"]).sort_index()


def test_first_pass_learns_history_and_later_passes_touch_one_slot(net: Store, cat: Catalogue) -> None:
    with net.begin() as conn:
        first = refresh_anomalies(conn, cat, now=LEARNT)
    # 14 days of quarter hours, the first reaching back to the start of the data.
    assert first.periods == 14 * 96
    v = _verdicts(net)
    assert set(v.index.get_level_values("level")) == {"cell", "site"}
    assert (v["state"] == "normal").all(), v[v["state"] != "normal"]
    with net.begin() as conn:
        slots_before = read_frame(conn, select(kpi_baselines)).set_index(
            ["slot", "kpi", "level", "entity_id"]
        )
    assert slots_before.index.get_level_values("slot").nunique() == 192
    write_samples(net, _rows(LEARNT, LEARNT + Q))
    with net.begin() as conn:
        second = refresh_anomalies(conn, cat, now=LEARNT + 2 * Q)
        after = read_frame(conn, select(kpi_baselines)).set_index(["slot", "kpi", "level", "entity_id"])
    assert second.periods == 1
    changed = after.compare(slots_before.reindex(after.index))
    slot = int(slot_of(np.array([np.datetime64(LEARNT)]))[0])
    assert set(changed.index.get_level_values("slot")) == {slot}
    # A pass with nothing new does nothing.
    with net.begin() as conn:
        assert refresh_anomalies(conn, cat, now=LEARNT + 2 * Q).periods == 0


def test_a_degradation_is_anomalous_after_its_for_and_normal_after_clear_after(
    net: Store, cat: Catalogue
) -> None:
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
    bad = (LEARNT + 4 * Q, LEARNT + 8 * Q)
    write_samples(net, _rows(LEARNT, LEARNT + 12 * Q, bad=bad))
    states = []
    for k in range(1, 13):
        with net.begin() as conn:
            refresh_anomalies(conn, cat, now=LEARNT + (k + 1) * Q)
        v = _verdicts(net)
        states.append(v.loc[("dl_throughput_mbps", "cell", "C1"), "state"])
        assert v.loc[("dl_throughput_mbps", "cell", "C2"), "state"] == "normal"
    # states[i] is the verdict once period i + 1 was read. Periods 4-7 are bad: the verdict turns at
    # period 5 (for: 15m, two periods) and holds through period 8, the first of two back in band
    # (clear_after: 30m).
    assert states[:4] == ["normal"] * 4
    assert states[4:8] == ["anomalous"] * 4
    assert states[8:] == ["normal"] * 4
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT + 13 * Q)
    v = _verdicts(net)
    assert v.loc[("latency_ms", "cell", "C1"), "state"] == "normal"


def test_band_of_a_series_follows_its_daily_curve(net: Store, cat: Catalogue) -> None:
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
        band = band_frame(conn, cat, "dl_throughput_mbps", "cell", "C2")
    times = pd.DatetimeIndex([LEARNT + timedelta(hours=4), LEARNT + timedelta(hours=20)])
    at = band_for(band, times)
    night, evening = at.iloc[0], at.iloc[1]
    assert night["expected"] == pytest.approx(60 * (1.2 - 0.6 * _curve(times[0])), rel=0.05)
    assert evening["expected"] < 0.8 * night["expected"]
    assert (at["low"] < at["expected"]).all() and (at["expected"] < at["high"]).all()


def _step(store: Store, cat: Catalogue, now: datetime) -> None:
    with store.begin() as conn:
        refresh_anomalies(conn, cat, now=now)
    with store.begin() as conn:
        detect(conn, now=now, labels={k.name: k.label for k in cat.kpis})
    with store.begin() as conn:
        correlate(conn, cat.scoring.correlation, now=now)


def _engine_incidents(store: Store) -> pd.DataFrame:
    with store.begin() as conn:
        return read_frame(conn, select(incidents).where(incidents.c.source == ENGINE_SOURCE))


def test_silent_degradation_opens_a_detected_incident_that_resolves_when_kpis_recover(
    net: Store, cat: Catalogue
) -> None:
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
    bad = (LEARNT + 4 * Q, LEARNT + 10 * Q)
    write_samples(net, _rows(LEARNT, LEARNT + 16 * Q, bad=bad))
    for k in range(1, 7):
        _step(net, cat, LEARNT + (k + 1) * Q)
    inc = _engine_incidents(net)
    assert len(inc) == 1, inc
    row = inc.iloc[0]
    assert row["kind"] == "detected" and row["state"] == "open"
    # Throughput and latency out of band together count at once: the alarm sits on the cell alone.
    assert row["root_resource_id"] == "C1"
    assert "below usual" in row["title"] and "Latency" in row["title"], row["title"]
    with net.begin() as conn:
        det = read_frame(conn, select(alarms).where(alarms.c.source == DETECTOR_SOURCE))
    assert len(det) == 1 and pd.Timestamp(det.iloc[0]["raised_at"]) == pd.Timestamp(bad[0])
    # The queue ranks it with the same rules and says why in words.
    refresh_queue(net, cat.scoring, now=LEARNT + 7 * Q, labels={k.name: k.label for k in cat.kpis})
    with net.begin() as conn:
        q = read_frame(conn, select(incident_queue))
    assert q.iloc[0]["kind"] == "detected"
    reason = q.iloc[0]["reason"]
    assert reason.startswith("#1: no alarm; Latency 3.2x usual for Mon 01:00"), reason
    assert "Downlink throughput 6" in reason and "% below usual at c1 (Porto 1) for 45 min;" in reason, reason
    # Back in band from period 10; two periods later (clear_after: 30m) the verdict is normal.
    for k in range(7, 12):
        _step(net, cat, LEARNT + (k + 1) * Q)
    inc = _engine_incidents(net)
    assert inc.iloc[0]["state"] == "resolved"
    assert pd.Timestamp(inc.iloc[0]["resolved_at"]) == pd.Timestamp(LEARNT + 12 * Q)
    with net.begin() as conn:
        det = read_frame(conn, select(alarms).where(alarms.c.source == DETECTOR_SOURCE))
    assert det.iloc[0]["state"] == "cleared" and det.iloc[0]["cleared_at"] is not None


def test_an_alarm_arriving_later_merges_the_detected_incident_into_an_alarm_incident(
    net: Store, cat: Catalogue
) -> None:
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
    bad = (LEARNT + 4 * Q, LEARNT + 12 * Q)
    write_samples(net, _rows(LEARNT, LEARNT + 14 * Q, bad=bad))
    for k in range(1, 8):
        _step(net, cat, LEARNT + (k + 1) * Q)
    assert _engine_incidents(net).iloc[0]["kind"] == "detected"
    # The transport link behind site S1 reports its degradation: above the cell in the topology.
    raised = LEARNT + 8 * Q
    ingest(
        net,
        "alarms",
        [
            {
                "id": "A-T1",
                "resource_id": "T1",
                "severity": "major",
                "state": "raised",
                "specific_problem": "High bit error rate on microwave link",
                "raised_at": raised,
                "changed_at": raised,
            }
        ],
    )
    _step(net, cat, LEARNT + 9 * Q)
    inc = _engine_incidents(net)
    live = inc[inc["state"].isin(["open", "acknowledged"])]
    assert len(live) == 1, inc
    assert live.iloc[0]["kind"] == "alarm"
    assert live.iloc[0]["root_resource_id"] == "T1"
    assert "microwave" in live.iloc[0]["title"]


def test_an_anomaly_under_an_active_alarm_joins_its_incident(net: Store, cat: Catalogue) -> None:
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
    ingest(
        net,
        "alarms",
        [
            {
                "id": "A-N1",
                "resource_id": "N1",
                "severity": "major",
                "state": "raised",
                "specific_problem": "High uplink interference",
                "raised_at": LEARNT + 4 * Q,
                "changed_at": LEARNT + 4 * Q,
            }
        ],
    )
    bad = (LEARNT + 4 * Q, LEARNT + 10 * Q)
    write_samples(net, _rows(LEARNT, LEARNT + 10 * Q, bad=bad))
    for k in range(1, 9):
        _step(net, cat, LEARNT + (k + 1) * Q)
    inc = _engine_incidents(net)
    assert len(inc) == 1 and inc.iloc[0]["kind"] == "alarm"
    with net.begin() as conn:
        n_det = conn.execute(select(func.count()).where(alarms.c.source == DETECTOR_SOURCE)).scalar()
    assert n_det == 1  # raised, and part of the alarm's incident


def test_catalogue_refuses_anomaly_rules_it_cannot_keep(tmp_path: Path) -> None:
    text = (ROOT / "kpi_definitions.yaml").read_text()
    bad = text.replace(
        '    thresholds:\n      warning: {op: ">", value: 3',
        '    anomaly: {min_z: 3}\n    thresholds:\n      warning: {op: ">", value: 3',
        1,
    )
    assert bad != text
    path = tmp_path / "kpis.yaml"
    path.write_text(bad)
    with pytest.raises(ConfigError) as err:
        load_catalogue(path)
    assert "anomaly" in str(err.value) and "samples" in str(err.value)
    odd = text.replace(
        "anomaly: {min_z: 3.5, min_deviation: 0.3, for: 15m",
        "anomaly: {min_z: 3.5, min_deviation: 0.3, for: 20m",
        1,
    )
    assert odd != text
    path.write_text(odd)
    with pytest.raises(ConfigError) as err:
        load_catalogue(path)
    assert ".anomaly.for" in str(err.value)


def test_anomaly_rule_fixtures_fail_when_the_expectation_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"catalogue: {ROOT / 'kpi_definitions.yaml'}\n"
        "tests:\n"
        "  - name: one bad quarter is not yet anomalous\n"
        "    kpi: dl_throughput_mbps\n"
        "    rule: anomaly\n"
        "    usual: '40'\n"
        "    series: '40 10 10'\n"
        "    expect:\n"
        "      - {at: 15m, status: anomalous}\n"
        "      - {at: 30m, status: anomalous}\n"
    )
    result = run_rule_tests(path)
    assert [f.at_s for f in result.failures] == [900.0]
    assert result.failures[0].got == "normal"


def _lines_and_tickets(store: Store, now: datetime, recent: int) -> None:
    """Ten lines on C3 (site S2), one ticket of theirs a day for two weeks, then ``recent`` in the
    last hour."""
    ingest(store, "accounts", [{"id": "A1", "name": "Ann", "segment": "consumer"}])
    ingest(
        store,
        "subscribers",
        [
            {"id": f"TL{i}", "account_id": "A1", "arpu": 20.0, "activated_at": START, "status": "active"}
            for i in range(10)
        ],
    )
    ingest(
        store,
        "subscriber_cells",
        [{"subscriber_id": f"TL{i}", "cell_id": "C3", "share": 1.0} for i in range(10)],
    )
    rows = []
    for d in range(14):
        t = now - timedelta(days=14 - d, hours=3)
        rows.append({"id": f"T-old-{d}", "subscriber_id": f"TL{d % 10}", "account_id": "A1", "created_at": t})
    for i in range(recent):
        t = now - timedelta(minutes=50 - 5 * i)
        rows.append(
            {
                "id": f"T-new-{i}",
                "subscriber_id": f"TL{i % 10}",
                "account_id": "A1",
                "created_at": t,
                "sentiment": -0.6,
            }
        )
    ingest(
        store,
        "tickets",
        [r | {"status": "acknowledged", "updated_at": r["created_at"], "subject": "no data"} for r in rows],
    )


def test_a_burst_of_tickets_with_kpis_in_band_opens_a_detected_incident(net: Store, cat: Catalogue) -> None:
    now = LEARNT + 2 * Q
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
    _lines_and_tickets(net, now, recent=8)
    _step(net, cat, now)
    inc = _engine_incidents(net)
    assert len(inc) == 1 and inc.iloc[0]["kind"] == "detected", inc
    assert inc.iloc[0]["root_resource_id"] == "N2"
    title = inc.iloc[0]["title"]
    assert title.startswith("Tickets ") and "from 8 lines (8 negative), KPIs in their usual band" in title, (
        title
    )


def test_a_burst_of_tickets_after_an_alarm_the_network_raised_is_explained(
    net: Store, cat: Catalogue
) -> None:
    now = LEARNT + 2 * Q
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
    _lines_and_tickets(net, now, recent=8)
    ingest(
        net,
        "alarms",
        [
            {
                "id": "A-N2",
                "resource_id": "N2",
                "severity": "critical",
                "state": "cleared",
                "raised_at": now - timedelta(hours=3),
                "changed_at": now - timedelta(hours=2),
                "cleared_at": now - timedelta(hours=2),
            }
        ],
    )
    with net.begin() as conn:
        detect(conn, now=now)
        n_det = conn.execute(select(func.count()).where(alarms.c.source == DETECTOR_SOURCE)).scalar()
    assert n_det == 0
    # Without the alarm, 90 minutes later: four of the tickets are left in the window, fewer than a
    # spike needs.
    with net.begin() as conn:
        conn.execute(alarms.delete())
    with net.begin() as conn:
        detect(conn, now=now + timedelta(hours=1, minutes=30))
        n_det = conn.execute(select(func.count()).where(alarms.c.source == DETECTOR_SOURCE)).scalar()
    assert n_det == 0


def test_calls_about_a_degradation_vantage_found_and_that_ended_open_nothing_new(
    net: Store, cat: Catalogue
) -> None:
    now = LEARNT + 2 * Q
    with net.begin() as conn:
        refresh_anomalies(conn, cat, now=LEARNT)
    _lines_and_tickets(net, now, recent=8)
    ended = now - timedelta(hours=1)
    with net.begin() as conn:
        conn.execute(
            insert(alarms).values(
                id="DET-S2-earlier",
                source=DETECTOR_SOURCE,
                resource_id="C3",
                alarmed_object="S2",
                severity="major",
                state="cleared",
                probable_cause="kpiAnomaly",
                raised_at=ended - timedelta(hours=2),
                changed_at=ended,
                cleared_at=ended,
                ingested_at=ended,
            )
        )
    with net.begin() as conn:
        assert detect(conn, now=now).raised == 0


def test_each_series_is_held_back_by_its_own_entitys_traffic_at_its_own_level() -> None:
    """The traffic floor's array: a series with a floor gets its entity's traffic at its level (0 for
    a period with none recorded); a series without a floor, or whose entity has no traffic at all, +inf."""
    periods = pd.date_range("2024-03-04", periods=3, freq="900s")
    traffic = {
        "cell": pd.DataFrame({"C1": [1.0, np.nan, 3.0], "C2": [0.5, 0.6, 0.7]}, index=periods[[0, 1, 2]]),
        "site": pd.DataFrame({"S1": [9.0, 8.0]}, index=periods[[0, 2]]),
    }
    keys = [
        ("dl_throughput_mbps", "cell", "C2"),
        ("dl_throughput_mbps", "site", "S1"),
        ("latency_ms", "cell", "C1"),  # no floor
        ("dl_throughput_mbps", "cell", "C1"),
        ("dl_throughput_mbps", "cell", "C9"),  # no traffic recorded at all
        ("dl_throughput_mbps", "region", "R1"),  # no traffic at this level
    ]
    floors = np.array([0.05, 0.05, 0.0, 0.05, 0.05, 0.05])
    got = _traffic_array(traffic, keys, periods, floors)
    inf = np.inf
    want = np.array(
        [
            [0.5, 9.0, inf, 1.0, inf, inf],
            [0.6, 0.0, inf, 0.0, inf, inf],
            [0.7, 8.0, inf, 3.0, inf, inf],
        ]
    )
    np.testing.assert_array_equal(got, want)
