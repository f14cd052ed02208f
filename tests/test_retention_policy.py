"""Retention of raw KPI samples and roll-ups, on SQLite (rows deleted) and PostgreSQL (partitions
dropped): what expired goes, roll-ups outlive the samples, and reads of the dropped days still answer."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select

from dashboard.config import ConfigError, RetentionConfig, Settings, settings_from_mapping
from dashboard.kpi_eval import read
from dashboard.kpi_eval.rollup import refresh_rollups
from dashboard.kpis import Catalogue, load_catalogue
from dashboard.store import Store
from dashboard.store.partitions import KPI_SAMPLES, is_partitioned, partitions
from dashboard.store.retention import apply_retention, load_report, samples_cutoff, scheduled_jobs
from dashboard.store.schema import kpi_rollups, kpi_samples
from tests import kpi_data
from tests.apps import context_for
from tests.kpi_data import T0

D = timedelta(days=1)
H = timedelta(hours=1)
Q = timedelta(minutes=15)
DAYS = 10
NOW = T0 + DAYS * D + 2 * H
#: Three days of raw samples; hourly roll-ups for longer, daily ones for ever.
POLICY = RetentionConfig(samples_days=3, hourly_rollups_days=30, daily_rollups_days=0)


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue("kpi_definitions.yaml")


@pytest.fixture
def history(store: Store, cat: Catalogue) -> Store:
    """Ten days of 15-minute samples on three cells, rolled up."""
    kpi_data.build(store)
    kpi_data.history(store, T0 + 2 * Q, T0 + DAYS * D)  # build() wrote the first two
    with store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW, full=True)
    return store


def _samples(store: Store, where: object = None) -> int:
    stmt = select(func.count()).select_from(kpi_samples)
    with store.connect() as conn:
        return int(conn.execute(stmt if where is None else stmt.where(where)).scalar_one())  # type: ignore[arg-type]


def _rollups(store: Store) -> pd.DataFrame:
    r = kpi_rollups
    with store.connect() as conn:
        rows = conn.execute(
            select(r.c.series, r.c.level, r.c.entity_id, r.c.grain_s, r.c.period_start, r.c.total, r.c.weight)
        ).all()
    frame = pd.DataFrame(rows).sort_values(["series", "level", "entity_id", "grain_s", "period_start"])
    return frame.reset_index(drop=True)


def _reads(store: Store, cat: Catalogue, day: datetime) -> dict[str, pd.DataFrame]:
    """What pages, the API and linkage read of one old day."""
    with store.connect() as conn:
        out = {
            f"{kpi}/{level}/{grain}": read.series(
                conn, cat, kpi, level=level, entity_id=entity, grain_s=grain, since=day, until=day + D
            )
            for kpi in ("availability_pct", "traffic_gb")
            for level, entity in (("cell", "C1"), ("network", "all"))
            for grain in (900, 3600, 86400)
        }
        out["panel"] = read.panel(
            conn,
            cat,
            ["availability_pct", "traffic_gb"],
            level="cell",
            grain_s=86400,
            since=day,
            until=day + D,
        )
    return out


def test_retention_drops_expired_samples_and_keeps_rollups_and_reads(history: Store, cat: Catalogue) -> None:
    store = history
    total = _samples(store)
    old_day = T0 + 2 * D
    before_reads = _reads(store, cat, old_day)
    before_rollups = _rollups(store)
    keep_from = T0 + (DAYS - 3) * D
    kept = _samples(store, kpi_samples.c.period_start >= keep_from)
    assert 0 < kept < total

    if store.dialect == "postgresql":
        # A first pass that deletes nothing gives every day of samples its partition (they landed in
        # DEFAULT: no partition of 2024 existed), as a store in service has.
        first = apply_retention(store, POLICY.model_copy(update={"enabled": False}), now=NOW)
        assert first.default_rows_moved == total and not first.partitions_dropped
    report = apply_retention(store, POLICY, now=NOW)

    assert report.samples_from == keep_from and not report.samples_held
    assert _samples(store) == kept
    with store.connect() as conn:
        assert conn.execute(select(func.min(kpi_samples.c.period_start))).scalar_one() == keep_from
        partitioned = is_partitioned(conn, "kpi_samples")
        names = [p.name for p in partitions(conn, KPI_SAMPLES)] if partitioned else []
    if store.dialect == "postgresql":
        assert partitioned
        expired = [KPI_SAMPLES.name(T0 + i * D) for i in range(DAYS - 3)]
        assert report.partitions_dropped == expired
        assert not set(expired) & set(names)
        assert KPI_SAMPLES.name(keep_from) in names and "kpi_samples_default" in names
        assert report.samples_deleted == 0
    else:
        assert not partitioned and report.samples_deleted == total - kept
    # Roll-ups are untouched, and the old day reads the same from them at hours and days.
    pd.testing.assert_frame_equal(_rollups(store), before_rollups)
    after_reads = _reads(store, cat, old_day)
    for key in before_reads:
        if "/900" not in key:
            pd.testing.assert_frame_equal(after_reads[key], before_reads[key], check_exact=False, rtol=1e-9)
    # Quarter hours of the dropped day come from the hourly roll-ups: each quarter shows its hour.
    for kpi in ("availability_pct", "traffic_gb"):
        for scope in ("cell", "network"):
            quarters = after_reads[f"{kpi}/{scope}/900"].set_index("period_start")["value"]
            hours = before_reads[f"{kpi}/{scope}/3600"].set_index("period_start")["value"]
            assert quarters.notna().all() and len(quarters) == 96
            hourly = hours.reindex(quarters.index.floor("h"))
            if kpi == "traffic_gb":  # a sum: the four quarters add up to the hour
                hourly = hourly / 4
            assert quarters.to_numpy() == pytest.approx(hourly.to_numpy(), rel=1e-9)
    # A later roll-up pass leaves the dropped days' roll-ups alone.
    with store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + H)
    old = _rollups(store)
    old = old[old["period_start"] < keep_from].reset_index(drop=True)
    expected = before_rollups[before_rollups["period_start"] < keep_from].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, expected)
    # So does a full rebuild (`vantage kpi evaluate --full`): what it cannot recompute, it keeps.
    with store.begin() as conn:
        refresh_rollups(conn, cat, now=NOW + H, full=True)
    sampled = {"availability_pct", "traffic_gb"}
    old = _rollups(store)
    old = old[(old["period_start"] < keep_from) & old["series"].isin(sampled)].reset_index(drop=True)
    expected = expected[expected["series"].isin(sampled)].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, expected, check_exact=False, rtol=1e-9)


def test_hourly_rollups_expire_before_daily_ones(history: Store, cat: Catalogue) -> None:
    store = history
    before = _rollups(store)
    policy = RetentionConfig(samples_days=3, hourly_rollups_days=5, daily_rollups_days=0)
    report = apply_retention(store, policy, now=NOW)
    after = _rollups(store)
    cut = T0 + (DAYS - 5) * D
    gone = before[(before["grain_s"] == 3600) & (before["period_start"] < cut)]
    assert report.hourly_rollups_deleted == len(gone) > 0
    assert report.daily_rollups_deleted == 0
    assert len(after) == len(before) - len(gone)
    assert (after[after["grain_s"] == 86400]["period_start"].min()) == T0
    with store.connect() as conn:
        day = read.series(
            conn,
            cat,
            "availability_pct",
            level="network",
            entity_id="all",
            grain_s=86400,
            since=T0,
            until=T0 + D,
        )
    assert day["value"].notna().all()


def test_samples_not_yet_rolled_up_are_kept(store: Store) -> None:
    kpi_data.build(store)
    kpi_data.history(store, T0 + 2 * Q, T0 + DAYS * D)
    total = _samples(store)
    report = apply_retention(store, POLICY, now=NOW)
    assert report.samples_held and report.samples_from is None
    assert _samples(store) == total
    # Rolled up only to day 5: days from there on are kept whatever the policy says.
    assert samples_cutoff(POLICY, NOW, T0 + 5 * D + 6 * H) == (T0 + 5 * D, True)
    assert samples_cutoff(POLICY, NOW, NOW) == (T0 + (DAYS - 3) * D, False)
    assert samples_cutoff(
        RetentionConfig(samples_days=0, hourly_rollups_days=0, daily_rollups_days=0), NOW, NOW
    ) == (
        None,
        False,
    )


def test_the_job_runs_on_its_interval_and_counts_what_it_did(history: Store, cat: Catalogue) -> None:
    store = history
    settings = Settings(database_url=store.url, retention=POLICY.model_copy(update={"interval_s": 600.0}))
    ctx = context_for(store, settings, clock=lambda: NOW, catalogue=cat)
    jobs = scheduled_jobs(ctx)
    assert list(jobs) == ["store-retention"]
    interval, job = jobs["store-retention"]
    assert interval == 600.0
    job()
    job()
    with store.connect() as conn:
        saved = load_report(conn)
    assert saved["totals"]["runs"] == 2
    assert saved["last"]["samples_from"] == (T0 + (DAYS - 3) * D).isoformat()
    deleted = saved["totals"]["samples_deleted"] + saved["totals"]["partitions_dropped"]
    assert deleted > 0


def test_rollups_must_outlive_samples() -> None:
    with pytest.raises(ConfigError, match="hourly_rollups_days"):
        settings_from_mapping({"retention": {"samples_days": 30, "hourly_rollups_days": 7}})
    parsed = settings_from_mapping({"retention": {"samples_days": 14, "interval": "30m"}})
    assert parsed.retention.interval_s == 1800.0 and parsed.retention.daily_rollups_days == 1830
