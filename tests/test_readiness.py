"""A fresh store is prepared in order (first queue before the KPI history), says how far along it is,
and the periodic jobs start only when it is ready."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select

from dashboard import readiness
from dashboard.cli import main
from dashboard.config import settings_from_mapping
from dashboard.readiness import Preparation
from dashboard.scheduler import ConnectorJobs, builtin_jobs
from dashboard.store import Store
from dashboard.store.schema import connector_runs, incident_queue, kpi_links, kpi_status, subscriber_signals
from dashboard.wall import wall_state
from tests.apps import context_for

T = datetime(2026, 3, 2, 12, 0)


def _at(seconds: float) -> str:
    return (T + timedelta(seconds=seconds)).isoformat()


def test_progress_weighs_steps_by_their_estimate_and_learns_the_pace() -> None:
    prep = Preparation.start(T)
    total = sum(s.expected_s for s in prep.steps)
    p = prep.progress(T)
    assert not p["ready"] and p["step"] == 1 and p["percent"] == 0
    assert p["remaining_s"] == round(total)
    assert p["label"] == readiness.LABELS["events"]

    # The first step took twice its estimate: what is left is expected to take twice as long too.
    events = prep.step("events")
    events.state, events.started_at, events.finished_at = "done", _at(0), _at(2 * events.expected_s)
    now = T + timedelta(seconds=2 * events.expected_s)
    p = prep.progress(now)
    assert p["step"] == 2 and p["done"] == ["events"]
    assert prep.pace(now) == pytest.approx(2.0)
    assert p["remaining_s"] == round(2 * (total - events.expected_s))

    # A step half done after 10 s has about 10 s to go, whatever its estimate said.
    queue = prep.step("queue")
    queue.state, queue.started_at, queue.fraction = "running", now.isoformat(), 0.5
    later = now + timedelta(seconds=10)
    rest = sum(s.expected_s for s in prep.steps[2:])
    assert prep.progress(later)["remaining_s"] == round(10 + 2 * rest)
    assert "step 2 of 7" in readiness.waiting_text(prep.progress(later))

    prep.finished_at = later.isoformat()
    p = prep.progress(later)
    assert p["ready"] and p["percent"] == 100 and p["remaining_s"] == 0


def test_what_each_part_of_a_page_waits_for(sqlite_store: Store) -> None:
    prep = Preparation.start(T)
    for key in ("events", "queue"):
        step = prep.step(key)
        step.state, step.started_at, step.finished_at = "done", _at(0), _at(3)
    readiness.write(sqlite_store, prep, now=T)
    with sqlite_store.connect() as conn:
        assert readiness.waiting(conn, "incidents", T) is None  # its queue is there
        waiting = readiness.waiting(conn, "linkage", T)
        assert waiting is not None and "step 3 of 7" in waiting and "Loading KPI history" in waiting
        assert readiness.progress(conn, T) == prep.progress(T)
    prep.finished_at = _at(60)
    readiness.write(sqlite_store, prep, now=T)
    with sqlite_store.connect() as conn:
        assert readiness.waiting(conn, "linkage", T) is None


def test_a_store_never_prepared_waits_for_nothing(sqlite_store: Store) -> None:
    with sqlite_store.connect() as conn:
        assert readiness.progress(conn, T) is None
        assert readiness.waiting(conn, "wall", T) is None


def _simulated(store: Store) -> ConnectorJobs:
    settings = settings_from_mapping(
        {
            "database_url": store.url,
            "connectors": [
                {
                    "name": "sim",
                    "type": "simulator",
                    "interval": "1m",
                    "options": {"seed": 7, "subscribers": 1000, "days": 15, "story": True},
                }
            ],
        },
        file="<test>",
    )
    ctx = context_for(store, settings)
    return ConnectorJobs(ctx, extra_jobs=builtin_jobs(ctx))


@pytest.mark.slow
def test_a_fresh_store_is_prepared_in_order_then_the_periodic_jobs_start(sqlite_store: Store) -> None:
    jobs = _simulated(sqlite_store)
    try:
        assert jobs.needs_preparation()
        scheduler = BackgroundScheduler(timezone="UTC")
        jobs.schedule(scheduler)
        # Only the preparation is scheduled: nothing competes with it for the store.
        assert [j.id for j in scheduler.get_jobs()] == ["prepare"]
        # Mid-way the wall says what it is waiting for (looked at from inside the queue steps).
        seen: list[dict[str, object] | None] = []
        queue_job = jobs.extra_jobs["incident-queue"]

        def queue_and_look() -> object:
            out = queue_job[1]()
            seen.append(
                wall_state(jobs.store, jobs.settings, jobs.ctx.catalogue, now=jobs.ctx.now(), have={})[
                    "preparing"
                ]
            )
            return out

        jobs.extra_jobs["incident-queue"] = (queue_job[0], queue_and_look)
        scheduler.get_job("prepare").func()
    finally:
        jobs.close()

    with sqlite_store.connect() as conn:
        prep = readiness.read(conn)
        assert prep is not None and prep.ready
        assert [s.state for s in prep.steps] == ["done"] * 7, [(s.key, s.detail) for s in prep.steps]
        # One after the other, in order.
        for before, after in zip(prep.steps, prep.steps[1:], strict=False):
            assert before.finished_at is not None and after.started_at is not None
            assert before.finished_at <= after.started_at
        # Events first: the first runs read no KPI samples, the last one only them.
        runs = conn.execute(select(connector_runs.c.streams).order_by(connector_runs.c.id)).scalars().all()
        assert "kpis" not in runs[0] and list(runs[-1]) == ["kpis"]
        # Everything a page needs is computed.
        for table in (incident_queue, kpi_status, kpi_links, subscriber_signals):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() > 0, table.name
    assert not jobs.needs_preparation()

    # While it ran the wall said so: at the first queue (events loaded), then at the last ranking.
    first = seen[0]
    assert first is not None and first["key"] == "queue" and first["done"] == ["events"]
    assert seen[1] is not None and seen[1]["key"] == "ranking"

    # Then the periodic jobs are scheduled; connectors read again one interval later, not at once.
    jobs_now = {j.id: j for j in scheduler.get_jobs()}
    assert {"connector:sim", "incident-queue", "kpi-evaluation", "kpi-linkage"} <= set(jobs_now)


@pytest.mark.slow
def test_vantage_simulate_prepares_the_store_with_progress_on_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    caplog.set_level(logging.INFO, logger="dashboard.scheduler")
    code = main(["--database-url", url, "simulate", "--subscribers", "1000", "--days", "3", "--story"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["failed"] == []
    assert report["options"]["story"] is True and report["options"]["days"] == 3
    assert list(report["steps"]) == [key for key, _, _ in readiness.STEPS]
    lines = [r.getMessage() for r in caplog.records]
    assert any("step 1 of 7" in line for line in lines) and any("step 7 of 7" in line for line in lines)
    store = Store(url)
    try:
        with store.connect() as conn:
            prep = readiness.read(conn)
            assert prep is not None and prep.ready
            assert conn.execute(select(func.count()).select_from(incident_queue)).scalar_one() > 0
    finally:
        store.dispose()
