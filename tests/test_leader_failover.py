"""Two real `vantage scheduler` processes on one PostgreSQL store: the leader is killed (SIGKILL) mid-way
through a queue refresh and a KPI pass; the standby takes every family over within 30 s, runs nothing
while the leader lives, and leaves the queue a single scheduler leaves on a copy of the same store at
the same (frozen) clock."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from dashboard.config import settings_from_mapping
from dashboard.context import Context
from dashboard.failpoints import FROZEN_NOW_ENV, PAUSE_ENV, PAUSE_SECONDS_ENV
from dashboard.scheduler import ConnectorJobs, builtin_jobs
from dashboard.store import Store
from dashboard.store.schema import incident_queue, incidents, scheduler_leaders
from tests.conftest import PG_URL, require_pg

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
#: The simulated store's history ends here; the schedulers then run at T1, with half an hour of
#: alarms and samples (ingested beforehand) that neither the queue nor the KPIs have seen.
T0 = datetime(2026, 11, 30, 12, 0)
T1 = T0 + timedelta(minutes=30)
#: Families the test's settings give jobs to (no playbooks: no delivery; nothing in maintenance yet).
FAMILIES = ("connectors", "queue", "kpi", "analytics", "linkage")
TAKEOVER_S = 30.0


def _simulator() -> dict[str, object]:
    return {
        "name": "sim",
        "type": "simulator",
        "interval": "1m",
        "options": {"seed": 11, "subscribers": 1000, "days": 1, "story": True},
    }


def _settings(url: str, inbox: Path) -> dict[str, object]:
    """The schedulers' settings: the store filled by the simulator (see _prepare), and a file
    connector on an empty folder as the connectors family's cheap job."""
    return {
        "database_url": url,
        "connectors": [
            {
                "name": "inbox",
                "type": "file",
                "interval": "5s",
                "options": {"path": str(inbox), "kind": "alarms"},
            }
        ],
        "scheduler": {
            "queue_refresh_s": 2,
            "kpi_refresh_s": 3,
            # Analytics (daily, hourly) would first run this long after a start: not within the test.
            "first_run_delay_s": 3600,
            "standby_retry_s": 2,
        },
    }


@pytest.fixture
def databases() -> Iterator[Callable[[str], str]]:
    """Fresh PostgreSQL databases by suffix (``make("run", template=...)``), dropped afterwards."""
    if not os.environ.get("VANTAGE_TEST_PG_URL"):
        pytest.skip("needs a PostgreSQL server it may create databases on: set VANTAGE_TEST_PG_URL")
    require_pg()
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []
    base = f"vt_leader_{uuid.uuid4().hex[:8]}"

    def make(suffix: str, template: str | None = None) -> str:
        name = f"{base}_{suffix}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        made.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in reversed(made):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _prepare(url: str) -> None:
    """The simulated operator up to T0 (prepared: queue, KPIs, links, churn), then its next half hour
    of records ingested at T1 and left for the schedulers."""
    settings = settings_from_mapping({"database_url": url, "connectors": [_simulator()]}, file="<test>")
    store = Store(url)
    store.upgrade()
    now = [T0]
    ctx = Context.build(settings, store=store, clock=lambda: now[0])
    # The same preparation a first start gives a fresh store.
    jobs = ConnectorJobs(ctx, extra_jobs=builtin_jobs(ctx))
    try:
        prep = jobs.prepare()
        assert not [s.key for s in prep.steps if s.state == "failed"]
        now[0] = T1
        assert jobs.run_once("sim").status == "success"
    finally:
        jobs.close()
        store.dispose()


class Scheduler:
    """One `vantage scheduler` process, its log in a file."""

    def __init__(self, config: Path, log: Path, *, pause: str | None = None) -> None:
        env = {**os.environ, FROZEN_NOW_ENV: T1.isoformat(), "VANTAGE_LOG_LEVEL": "DEBUG"}
        env.pop(PAUSE_ENV, None)
        if pause:
            env[PAUSE_ENV], env[PAUSE_SECONDS_ENV] = pause, "600"
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "--config", str(config), "scheduler", "--no-migrate"],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    @property
    def holder_pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text()

    def led(self) -> set[str]:
        """The families this process said it took."""
        return {
            f.strip()
            for m in re.finditer(r"leader: \S+ now leads ([a-z, ]+) \(", self.text())
            for f in m.group(1).split(",")
        }

    def wait_for(self, what: str, test: Callable[[], bool], timeout: float) -> float:
        """Seconds until ``test()`` held (fails after ``timeout`` or when the process died)."""
        start = time.monotonic()
        while not test():
            if self.proc.poll() is not None:
                pytest.fail(
                    f"scheduler exited ({self.proc.returncode}) waiting for {what}:\n{self.text()[-3000:]}"
                )
            if time.monotonic() - start > timeout:
                pytest.fail(f"no {what} within {timeout:.0f} s:\n{self.text()[-3000:]}")
            time.sleep(0.2)
        return time.monotonic() - start

    def runs(self) -> list[tuple[str, str]]:
        """(runs|ran, job) in the order this process logged them."""
        return re.findall(r"leader: \S+ (runs|ran) (\S+) \(", self.text())

    def refreshed_after_evaluation(self) -> bool:
        """Whether a queue refresh started after a KPI pass finished, and finished."""
        events = self.runs()
        try:
            evaluated = events.index(("ran", "kpi-evaluation"))
            started = events.index(("runs", "incident-queue"), evaluated)
            events.index(("ran", "incident-queue"), started)
        except ValueError:
            return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def _queue(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            queue = pd.read_sql(select(incident_queue).order_by(incident_queue.c.incident_id), conn)
            incs = pd.read_sql(
                select(
                    incidents.c.id, incidents.c.state, incidents.c.severity, incidents.c.opened_at
                ).order_by(incidents.c.id),
                conn,
            )
    finally:
        engine.dispose()
    return queue, incs


def _leaders(url: str) -> dict[str, str | None]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {r.family: r.holder for r in conn.execute(select(scheduler_leaders))}
    finally:
        engine.dispose()


def test_the_standby_takes_over_a_leader_killed_mid_queue_and_mid_kpi(
    databases: Callable[..., str], tmp_path: Path
) -> None:
    started = time.monotonic()
    url = databases("failover")
    _prepare(url)
    print(f"prepared in {time.monotonic() - started:.0f} s")
    ref_url = databases("single", template=make_url(url).database)
    before, before_incs = _queue(url)
    config, ref_config, inbox = tmp_path / "failover.yaml", tmp_path / "single.yaml", tmp_path / "inbox"
    inbox.mkdir()
    config.write_text(yaml.safe_dump(_settings(url, inbox)))
    ref_config.write_text(yaml.safe_dump(_settings(ref_url, inbox)))

    # The single scheduler runs on its copy of the store meanwhile.
    single = Scheduler(ref_config, tmp_path / "single.log")
    leader = Scheduler(config, tmp_path / "leader.log", pause="queue:correlated,kpi:rolled-up")
    standby: Scheduler | None = None
    try:
        leader.wait_for("leadership of every family", lambda: leader.led() >= set(FAMILIES), 60)
        standby = Scheduler(config, tmp_path / "standby.log")
        standby.wait_for("standing by", lambda: "stands by for" in standby.text(), 60)
        leader.wait_for(
            "a queue refresh and a KPI pass paused mid-way",
            lambda: (
                "paused at queue:correlated" in leader.text() and "paused at kpi:rolled-up" in leader.text()
            ),
            60,
        )
        assert standby.runs() == [] and standby.led() == set()  # it ran nothing while the leader lived
        assert set(_leaders(url).values()) == {f"{os.uname().nodename}:{leader.holder_pid}"}

        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait()
        killed = time.monotonic()
        taken: dict[str, float] = {}

        def more_taken() -> bool:
            return bool(standby.led() - taken.keys())

        while taken.keys() < set(FAMILIES):
            standby.wait_for("a takeover", more_taken, TAKEOVER_S)
            for family in standby.led() - taken.keys():
                taken[family] = time.monotonic() - killed
        print(f"takeover after the leader's SIGKILL (s): { {k: round(v, 1) for k, v in taken.items()} }")
        assert max(taken.values()) <= TAKEOVER_S
        assert set(_leaders(url).values()) == {f"{os.uname().nodename}:{standby.holder_pid}"}
        standby.wait_for("a queue refresh after a KPI pass", standby.refreshed_after_evaluation, 60)
        single.wait_for("a queue refresh after a KPI pass", single.refreshed_after_evaluation, 60)
    finally:
        leader.stop()
        single.stop()
        if standby is not None:
            standby.stop()
    print(f"failover and single runs done at {time.monotonic() - started:.0f} s")

    # Each process ran each job one run at a time, and the two never overlapped: the standby began
    # after the kill; the leader's last runs of the queue and the KPIs were the ones cut short.
    for proc in (leader, standby):
        assert proc is not None
        open_runs: dict[str, int] = {}
        for verb, job in proc.runs():
            open_runs[job] = open_runs.get(job, 0) + (1 if verb == "runs" else -1)
            assert open_runs[job] in (0, 1), (job, proc.text()[-3000:])
    cut = {job for job, n in _open(leader).items() if n}
    assert {"incident-queue", "kpi-evaluation"} <= cut

    queue, incs = _queue(url)
    ref_queue, ref_incs = _queue(ref_url)
    assert len(queue) > 0 and queue["rank"].notna().any()
    # The half hour at T1 changed the queue (new alarms correlated, impact measured again).
    unchanged = [c for c in queue.columns if c != "computed_at"]
    assert not (queue[unchanged].equals(before[unchanged]) and incs.equals(before_incs))
    pd.testing.assert_frame_equal(incs, ref_incs)
    pd.testing.assert_frame_equal(queue, ref_queue)


def _open(proc: Scheduler) -> dict[str, int]:
    out: dict[str, int] = {}
    for verb, job in proc.runs():
        out[job] = out.get(job, 0) + (1 if verb == "runs" else -1)
    return out
