"""Readers of raw KPI samples after retention dropped old days: the 360's experienced KPIs and the
churn model's daily cell KPIs read the dropped days from the cells' roll-ups, with the values they
read from the samples before, on SQLite (rows deleted) and PostgreSQL (partitions dropped).

Ten days of samples on C1..C3 (tests/kpi_data.py: C3 misses every tenth quarter hour), rolled up;
line L4 sends 70% of its traffic on C1 and 30% on C3. Retention keeps three days of samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from dashboard.analytics.signals import load_history
from dashboard.config import RetentionConfig
from dashboard.kpi_eval import evaluate
from dashboard.kpis import Catalogue, load_catalogue
from dashboard.privacy import Principal
from dashboard.store import Store
from dashboard.store.retention import apply_retention
from dashboard.store.schema import kpi_samples
from dashboard.subscribers.story import experienced_kpis, subscriber_story
from tests import kpi_data
from tests.kpi_data import T0, Q

D = timedelta(days=1)
H = timedelta(hours=1)
DAYS = 10
NOW = T0 + DAYS * D + 2 * H
#: Three days of raw samples kept (from KEEP_FROM); roll-ups for longer.
POLICY = RetentionConfig(samples_days=3, hourly_rollups_days=30, daily_rollups_days=0)
KEEP_FROM = T0 + (DAYS - 3) * D
VIEWER = Principal("vera", "viewer")
#: Series are compared as (kpi, period_start) -> (value, cells).
Points = dict[tuple[str, str], tuple[float | None, int]]


@pytest.fixture
def history(store: Store) -> tuple[Store, Catalogue]:
    """The store with its samples, not rolled up yet (the readers read the samples alone), and the
    catalogue."""
    cat = load_catalogue("kpi_definitions.yaml")
    kpi_data.build(store)
    shares = {"C1": 0.7, "C3": 0.3}
    kpi_data.ingest(store, "subscribers", [{"id": "L4", "account_id": "A1", "status": "active"}])
    kpi_data.ingest(
        store,
        "subscriber_cells",
        [{"subscriber_id": "L4", "cell_id": c, "share": s} for c, s in shares.items()],
    )
    kpi_data.history(store, T0 + 2 * Q, T0 + DAYS * D)
    return store, cat


def _roll_up(store: Store, cat: Catalogue) -> None:
    evaluate(store, cat, now=NOW, full=True)


def _drop_old_samples(store: Store, cat: Catalogue) -> None:
    """Roll the samples up (if not yet), then keep three days of them."""
    _roll_up(store, cat)
    if store.dialect == "postgresql":
        # Samples written before their day's partition existed sit in DEFAULT: a pass that deletes
        # nothing gives them their partitions first, as in a store in service.
        apply_retention(store, POLICY.model_copy(update={"enabled": False}), now=NOW)
    report = apply_retention(store, POLICY, now=NOW)
    assert report.samples_from == KEEP_FROM
    with store.connect() as conn:
        assert conn.execute(select(func.min(kpi_samples.c.period_start))).scalar_one() == KEEP_FROM


def _kpis(cat: Catalogue) -> list[Any]:
    """The 360's KPIs (means and traffic-weighted ones) and a sum, traffic."""
    return [*experienced_kpis(cat), cat.get("traffic_gb")]


def _story(
    store: Store, cat: Catalogue, *, now: datetime, days: int, kpis: Sequence[Any] | None = None
) -> tuple[int, Points]:
    with store.connect() as conn:
        story = subscriber_story(conn, "L4", VIEWER, now=now, days=days, kpis=kpis or _kpis(cat))
    assert story is not None
    window = story["kpis"]
    points = {(p["kpi"], str(p["period_start"])): (p["value"], p["cells"]) for p in window["series"]}
    return window["step_minutes"], points


def _iso(t: datetime | pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _assert_same(after: Points, before: Points) -> None:
    assert after.keys() == before.keys()
    for key, (value, cells) in before.items():
        assert after[key][0] == pytest.approx(value, rel=1e-6, abs=1e-4), key
        assert after[key][1] == cells, key


# --- The 360 --------------------------------------------------------------------------------------

#: (now, days) of the windows read: hours across the boundary, hours entirely before it, days.
WINDOWS = {
    "hours across": (T0 + DAYS * D, 10),
    "hours before": (T0 + 5 * D, 3),
    "days": (T0 + DAYS * D, 40),
}


def test_the_360_reads_dropped_days_from_rollups_as_it_read_them_from_samples(
    history: tuple[Store, Catalogue],
) -> None:
    store, cat = history
    before = {name: _story(store, cat, now=now, days=days) for name, (now, days) in WINDOWS.items()}
    assert [step for step, _ in before.values()] == [60, 60, 1440]
    # Rolled up, the hours and days before the pass's watermark come from the roll-ups (and the
    # last hours from the samples); with old samples dropped, so do the dropped days.
    _roll_up(store, cat)
    rolled = {name: _story(store, cat, now=now, days=days) for name, (now, days) in WINDOWS.items()}
    _drop_old_samples(store, cat)
    after = {name: _story(store, cat, now=now, days=days) for name, (now, days) in WINDOWS.items()}
    for name, (step, points) in before.items():
        assert rolled[name][0] == after[name][0] == step
        _assert_same(rolled[name][1], points)
        _assert_same(after[name][1], points)
    # Every hour of every KPI the cells sample has a value, on both sides of the boundary...
    kpis = {"availability_pct", "prb_utilisation_pct", "latency_ms", "traffic_gb"}
    hours = pd.date_range(T0, T0 + DAYS * D, freq="h", inclusive="left")
    across = after["hours across"][1]
    assert {k for k, _ in across} == kpis
    for kpi in kpis:
        assert sorted(t for k, t in across if k == kpi) == [_iso(t) for t in hours]
    # ... and a window entirely before it is not empty: three days of hours.
    assert len(after["hours before"][1]) == len(kpis) * 3 * 24


def test_kpis_given_by_name_read_the_dropped_days_as_sample_means(history: tuple[Store, Catalogue]) -> None:
    store, cat = history
    names = ["availability_pct", "traffic_gb"]  # a mean and a sum, both read as the mean of samples
    now, days = WINDOWS["hours across"]
    _, before = _story(store, cat, now=now, days=days, kpis=names)
    _drop_old_samples(store, cat)
    _, after = _story(store, cat, now=now, days=days, kpis=names)
    assert len(after) == 2 * DAYS * 24
    _assert_same(after, before)


def test_the_360_by_hand_on_a_dropped_hour_weighs_each_cells_value_by_its_aggregate(
    history: tuple[Store, Catalogue],
) -> None:
    store, cat = history
    hour = T0 + 2 * D + 5 * H  # C3 misses its first quarter: three samples against C1's four
    with store.connect() as conn:
        rows = conn.execute(
            select(
                kpi_samples.c.entity_id, kpi_samples.c.period_start, kpi_samples.c.kpi, kpi_samples.c.value
            ).where(kpi_samples.c.period_start >= hour, kpi_samples.c.period_start < hour + H)
        ).all()
    samples = pd.DataFrame(rows, columns=["cell", "period_start", "kpi", "value"])
    wide = samples.pivot_table(index=["cell", "period_start"], columns="kpi", values="value")
    assert len(wide.loc["C1"]) == 4 and len(wide.loc["C3"]) == 3

    def cell_value(cell: str, kpi: str) -> float:
        w = wide.loc[cell]
        if kpi == "latency_ms":  # traffic-weighted
            return float((w[kpi] * w["traffic_gb"]).sum() / w["traffic_gb"].sum())
        if kpi == "traffic_gb":  # a sum
            return float(w[kpi].sum())
        return float(w[kpi].mean())

    expected = {
        k: 0.7 * cell_value("C1", k) + 0.3 * cell_value("C3", k)
        for k in ("availability_pct", "latency_ms", "traffic_gb")
    }
    _drop_old_samples(store, cat)
    _, points = _story(store, cat, now=T0 + DAYS * D, days=10)
    for kpi, value in expected.items():
        assert points[(kpi, _iso(hour))][0] == pytest.approx(value, abs=5e-5), kpi  # 4 decimals


def test_quarter_hours_before_the_boundary_show_their_hour(history: tuple[Store, Catalogue]) -> None:
    store, cat = history
    now = KEEP_FROM + 12 * H  # two days back: from 12:00 the day before the oldest sample kept
    _, hourly = _story(store, cat, now=now, days=10)
    step, before = _story(store, cat, now=now, days=2)
    assert step == 15
    _drop_old_samples(store, cat)
    step, after = _story(store, cat, now=now, days=2)
    assert step == 15
    quarters = pd.date_range(now - 2 * D, now, freq="15min", inclusive="left")
    for kpi in ("availability_pct", "traffic_gb"):
        assert sorted(t for k, t in after if k == kpi) == [_iso(t) for t in quarters]
    kept = {key: p for key, p in before.items() if key[1] >= _iso(KEEP_FROM)}
    _assert_same({key: p for key, p in after.items() if key[1] >= _iso(KEEP_FROM)}, kept)
    for (kpi, at), (value, cells) in after.items():
        if at < _iso(KEEP_FROM):
            hour = _iso(pd.Timestamp(at.rstrip("Z")).floor("h"))
            assert (value, cells) == pytest.approx(hourly[(kpi, hour)], rel=1e-6), (kpi, at)


# --- The churn model's history --------------------------------------------------------------------


def _kpi_daily(store: Store, since: datetime | None) -> pd.DataFrame:
    daily = load_history(store, since=since).kpi_daily
    daily = daily.astype({"n": float}).sort_values(["cell_id", "kpi", "day"])
    return daily[["cell_id", "kpi", "day", "mean", "max", "min", "n"]].reset_index(drop=True)


@pytest.mark.parametrize("since", [None, T0 + D], ids=["all", "since"])
def test_churn_history_reads_dropped_days_from_daily_rollups(
    history: tuple[Store, Catalogue], since: datetime | None
) -> None:
    store, cat = history
    before = _kpi_daily(store, since)
    _drop_old_samples(store, cat)
    after = _kpi_daily(store, since)
    # The same cells, KPIs and days, every day of the ten (or nine) still there.
    key = ["cell_id", "kpi", "day"]
    pd.testing.assert_frame_equal(after[key], before[key])
    first = T0 if since is None else since
    assert sorted(after["day"].unique()) == list(pd.date_range(first, T0 + (DAYS - 1) * D, freq="D"))
    # The same figures, but for a traffic-weighted KPI (latency) on the dropped days: its roll-ups
    # keep the traffic-weighted mean and weigh the day by its traffic.
    weighted = {k.name for k in cat.kpis if k.aggregate == "traffic_weighted"}
    same = ~(after["kpi"].isin(weighted) & (after["day"] < KEEP_FROM))
    assert (~same).any()
    pd.testing.assert_frame_equal(after[same], before[same], check_exact=False, rtol=1e-9)
    latency = after[~same]
    assert ((latency["min"] <= latency["mean"]) & (latency["mean"] <= latency["max"])).all()
