"""One leader per job family: PostgreSQL advisory locks and SQLite file locks, stepping down when the
lock is gone, a family's jobs started and stopped with its leadership, and /healthz saying who leads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine, select, text

from dashboard.config import SchedulerConfig, settings_from_mapping
from dashboard.health import check_health
from dashboard.incidents import queue
from dashboard.leader import FAMILIES, FileLocks, Leadership, ProcessLocks, lock_key
from dashboard.scheduler import ConnectorJobs, family_jobs
from dashboard.store import Store
from dashboard.store.schema import scheduler_leaders
from tests.apps import context_for
from tests.conftest import PG_URL

T = datetime(2026, 3, 2, 12, 0)
POLICY = SchedulerConfig(standby_retry_s=1.0)
FAMILIES_HERE = ("connectors", "queue", "kpi")


def _leadership(store: Store, holder: str, families: tuple[str, ...] = FAMILIES_HERE) -> Leadership:
    return Leadership(store, families, policy=POLICY, clock=lambda: T, holder=holder)


def _holders(store: Store) -> dict[str, str | None]:
    with store.connect() as conn:
        return {r.family: r.holder for r in conn.execute(select(scheduler_leaders))}


def _kill_lock_connection(store: Store, family: str) -> None:
    """Terminate, from outside, the server process holding ``family``'s advisory lock (what a
    network cut or a restarted PgBouncer does to a leader's lock connection)."""
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            pids = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
                    " AND objid::bigint = :key AND granted"
                ),
                {"key": lock_key(family, store.schema)},
            ).scalars()
            for pid in list(pids):
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


@pytest.fixture
def pair(pg_store: Store) -> Iterator[tuple[Leadership, Leadership]]:
    a, b = _leadership(pg_store, "a"), _leadership(pg_store, "b")
    yield a, b
    a.stop()
    b.stop()


@pytest.mark.postgres
def test_one_process_leads_each_family_and_the_standby_takes_over_a_lost_lock(
    pg_store: Store, pair: tuple[Leadership, Leadership]
) -> None:
    a, b = pair
    lost: list[frozenset[str]] = []
    a.on_lose = lost.append
    assert a.tick() == frozenset(FAMILIES_HERE)
    assert b.tick() == frozenset() and b.held == frozenset()  # standing by
    assert _holders(pg_store) == dict.fromkeys(FAMILIES_HERE, "a")
    assert a.check("queue") and not b.check("queue")

    _kill_lock_connection(pg_store, "queue")
    # The leader learns it before its next job run, and steps down from every family that
    # connection held.
    assert not a.check("queue")
    assert lost == [frozenset(FAMILIES_HERE)] and a.held == frozenset()
    assert set(_holders(pg_store).values()) == {None}
    assert b.tick() == frozenset(FAMILIES_HERE)
    assert _holders(pg_store) == dict.fromkeys(FAMILIES_HERE, "b")
    assert a.tick() == frozenset()  # the old leader, reconnected, stands by


@pytest.mark.postgres
def test_stores_in_other_schemas_do_not_share_locks(pg_store: Store) -> None:
    other = Store(PG_URL, schema=f"{pg_store.schema}_x")
    a, b = _leadership(pg_store, "a"), _leadership(other, "b")
    try:
        assert lock_key("queue", pg_store.schema) != lock_key("queue", other.schema)
        # ``other`` is not migrated: the record fails (logged), the lock alone decides.
        assert a.tick() == frozenset(FAMILIES_HERE) and b.tick() == frozenset(FAMILIES_HERE)
    finally:
        a.stop()
        b.stop()
        other.dispose()


def test_schedulers_on_one_sqlite_file_take_turns_by_file_lock(sqlite_store: Store) -> None:
    a, b = _leadership(sqlite_store, "a"), _leadership(sqlite_store, "b")
    try:
        assert isinstance(a.locks, FileLocks)
        assert a.tick() == frozenset(FAMILIES_HERE) and b.tick() == frozenset()
        assert a.locks.path("queue").exists()
        a.stop()  # or its process died: the OS lets go of the lock either way
        assert b.tick() == frozenset(FAMILIES_HERE)
        assert _holders(sqlite_store) == dict.fromkeys(FAMILIES_HERE, "b")
    finally:
        b.stop()


def test_an_in_memory_store_is_led_by_its_only_process() -> None:
    store = Store("sqlite://")
    store.upgrade()
    a = _leadership(store, "a")
    assert isinstance(a.locks, ProcessLocks) and a.tick() == frozenset(FAMILIES_HERE)
    a.stop()
    store.dispose()


def _jobs(store: Store, ran: list[str]) -> ConnectorJobs:
    ctx = context_for(store, clock=lambda: T)
    families = family_jobs(ctx)
    families["maintenance"] = {"probe": (60.0, lambda: ran.append("probe"))}
    return ConnectorJobs(ctx, families=families)


@pytest.mark.postgres
def test_a_family_s_jobs_run_only_while_it_is_led_and_its_memory_goes_with_it(pg_store: Store) -> None:
    ran: list[str] = []
    jobs, other = _jobs(pg_store, ran), _jobs(pg_store, ran)
    assert jobs.families() == ["queue", "kpi", "analytics", "linkage", "maintenance"]
    schedulers = BackgroundScheduler(timezone="UTC"), BackgroundScheduler(timezone="UTC")  # not started
    a, b = (
        _leadership(pg_store, "a", tuple(jobs.families())),
        _leadership(pg_store, "b", tuple(jobs.families())),
    )
    try:
        jobs.schedule(schedulers[0], prepare=False, leadership=a)
        other.schedule(schedulers[1], prepare=False, leadership=b)
        a.tick()
        b.tick()
        ids = {j.id for j in schedulers[0].get_jobs()}
        assert {"incident-queue", "kpi-evaluation", "kpi-linkage", "analytics-retrain", "probe"} <= ids
        assert schedulers[1].get_jobs() == []  # the standby schedules nothing
        probe = schedulers[0].get_job("probe")
        assert probe is not None
        probe.func()
        assert ran == ["probe"]

        queue._MEMORY[pg_store] = queue.QueueMemory(scoring="kept")  # what a refresh would keep
        _kill_lock_connection(pg_store, "queue")
        assert probe.func() is None and ran == ["probe"]  # checked before the run: not run
        assert schedulers[0].get_jobs() == []  # every family of the lost connection stopped
        assert pg_store not in queue._MEMORY  # a later leader (this one again, too) starts from the store
        b.tick()
        assert {j.id for j in schedulers[1].get_jobs()} == ids
    finally:
        a.stop()
        b.stop()


def test_healthz_says_who_leads_each_family(sqlite_store: Store) -> None:
    settings = settings_from_mapping({"database_url": sqlite_store.url, "scheduler": {"standby_retry_s": 5}})
    a = _leadership(sqlite_store, "host:1")
    try:
        a.tick()
        body, status = check_health(sqlite_store, settings, now=T + timedelta(seconds=10))
        assert status == 200
        assert body["schedulers"]["queue"] == {
            "leader": "host:1",
            "since": "2026-03-02T12:00:00Z",
            "seen": "2026-03-02T12:00:00Z",
            "alive": True,
            "runs": 0,
            "last_job": None,
            "last_run": None,
        }
        later, _ = check_health(sqlite_store, settings, now=T + timedelta(seconds=60))
        assert not later["schedulers"]["queue"]["alive"]  # no beat for 12 retries: presumed gone
    finally:
        a.stop()
    stopped, _ = check_health(sqlite_store, settings, now=T)
    assert {v["leader"] for v in stopped["schedulers"].values()} == {None}


def test_every_family_is_known_and_retention_is_maintenance(sqlite_store: Store) -> None:
    ctx = context_for(sqlite_store, clock=lambda: T)
    families = family_jobs(ctx)
    assert set(families) <= set(FAMILIES) and set(families["maintenance"]) == {"store-retention"}
    assert "incident-queue" in families["queue"] and "kpi-evaluation" in families["kpi"]


def test_each_family_has_its_own_lock() -> None:
    assert len({lock_key(f) for f in FAMILIES}) == len(FAMILIES)
    assert len({lock_key(f, "a") for f in FAMILIES} | {lock_key(f, "b") for f in FAMILIES}) == 2 * len(
        FAMILIES
    )


def test_lock_files_sit_beside_the_database(tmp_path: Path) -> None:
    locks = FileLocks(tmp_path / "vantage.db")
    assert locks.path("queue") == tmp_path / "vantage.db.leader-queue"
