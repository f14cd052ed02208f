"""Connector jobs: interval scheduling, backoff on transient failures, the embedded scheduler, push routes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import ClassVar

import pytest
from flask import Flask
from sqlalchemy import select

from connectors import registry
from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorOptions,
    PushRequest,
    PushResponse,
    PushRoute,
    Reject,
    RetriableError,
    Stream,
)
from dashboard.config import SchedulerConfig, Settings, settings_from_mapping
from dashboard.ingest import Ingestor, load_state
from dashboard.push import mount_push_routes
from dashboard.scheduler import ConnectorJobs, background_scheduler, backoff_delay
from dashboard.store import Store
from dashboard.store.schema import alarms, connector_runs, quarantine
from tests.apps import context_for


class FlakyOptions(ConnectorOptions):
    fail_times: int = 0
    retry_after_s: float | None = None


class Flaky(Connector):
    """Test connector: fails transiently `fail_times` times, then yields one alarm per run."""

    type = "test_flaky"
    Options = FlakyOptions
    calls: ClassVar[int] = 0

    def streams(self) -> list[Stream]:
        return [Stream("alarms", kinds=("alarms",))]

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def read(self, stream: Stream, state: dict) -> Iterator[Batch]:
        assert isinstance(self.options, FlakyOptions)
        Flaky.calls += 1
        if Flaky.calls <= self.options.fail_times:
            raise RetriableError("HTTP 503 from source", retry_after_s=self.options.retry_after_s)
        n = int(state.get("n", 0)) + 1
        t = datetime(2026, 1, 1) + timedelta(minutes=n)
        yield Batch(
            "alarms",
            [{"id": f"a{n}", "severity": "major", "state": "raised", "raised_at": t, "changed_at": t}],
            state={"n": n},
        )

    def push_routes(self) -> list[PushRoute]:
        return [PushRoute("/listener/alarmCreateEvent", self._on_event)]

    def _on_event(self, req: PushRequest) -> PushResponse:
        body = json.loads(req.body)  # a bug on malformed JSON, on purpose: the web layer must cope
        if "id" not in body:
            return PushResponse(
                400, {"reason": "no id"}, [Batch("alarms", rejects=[Reject(req.body, "no id")])]
            )
        return PushResponse(201, {"ok": True}, [Batch("alarms", [body])])


registry.register(Flaky)


@pytest.fixture(autouse=True)
def _reset() -> None:
    Flaky.calls = 0


def _settings(store: Store, **options: object) -> Settings:
    return settings_from_mapping(
        {
            "database_url": store.url,
            "connectors": [{"name": "flaky", "type": "test_flaky", "interval": "10m", "options": options}],
        },
        environ={},
    )


def test_backoff_doubles_up_to_the_cap_and_follows_retry_after() -> None:
    policy = SchedulerConfig(retry_initial_s=10, retry_max_s=100)
    assert [backoff_delay(n, interval_s=3600, policy=policy) for n in (1, 2, 3, 4, 5)] == [
        10,
        20,
        40,
        80,
        100,
    ]
    assert backoff_delay(3, interval_s=15, policy=policy) == 15  # never later than the normal interval
    assert backoff_delay(3, interval_s=3600, policy=policy, retry_after_s=42) == 42
    # Spread either way by the jitter fraction (0.2 by default), never past the cap.
    assert backoff_delay(2, interval_s=3600, policy=policy, rand=lambda: 0.0) == pytest.approx(16)
    assert backoff_delay(2, interval_s=3600, policy=policy, rand=lambda: 0.999999) == pytest.approx(
        24, abs=0.01
    )
    assert backoff_delay(5, interval_s=3600, policy=policy, rand=lambda: 0.99) == 100
    # Once the circuit is open (5 failures in a row by default): one attempt every retry_max_s.
    assert (
        backoff_delay(5, interval_s=3600, policy=SchedulerConfig(retry_initial_s=1, retry_max_s=300)) == 300
    )


def test_a_failing_source_opens_the_circuit_and_says_so(sqlite_store: Store) -> None:
    settings = _settings(sqlite_store, fail_times=99)
    settings.scheduler = SchedulerConfig(retry_initial_s=10, retry_max_s=300, circuit_after=3)
    settings.connectors[0].interval = 3600
    jobs = ConnectorJobs(context_for(sqlite_store, settings))
    jobs.rand = None
    for _ in range(4):
        jobs.run_once("flaky")
    with sqlite_store.connect() as conn:
        runs = conn.execute(select(connector_runs).order_by(connector_runs.c.id)).all()
    gaps = [(r.next_attempt_at - r.finished_at).total_seconds() for r in runs]
    assert gaps == pytest.approx([10, 20, 300, 300], abs=0.01)
    assert "circuit open after 3 failures in a row" in runs[2].error
    assert "circuit open" not in runs[1].error


def test_transient_failure_brings_the_next_attempt_forward(sqlite_store: Store) -> None:
    jobs = ConnectorJobs(context_for(sqlite_store, _settings(sqlite_store, fail_times=2)))
    jobs.rand = None  # exact delays: the spread is checked below
    first = jobs.run_once("flaky")
    second = jobs.run_once("flaky")
    third = jobs.run_once("flaky")
    assert [first.status, second.status, third.status] == ["failed", "failed", "success"]
    with sqlite_store.connect() as conn:
        runs = conn.execute(select(connector_runs).order_by(connector_runs.c.id)).all()
    gaps = [(r.next_attempt_at - r.finished_at).total_seconds() for r in runs]
    assert gaps == pytest.approx([10, 20, 600], abs=0.01)  # backoff, backoff, then the 10 min interval
    assert runs[0].retriable is True and runs[2].error is None


def test_retry_after_from_the_source_wins(sqlite_store: Store) -> None:
    jobs = ConnectorJobs(context_for(sqlite_store, _settings(sqlite_store, fail_times=1, retry_after_s=120)))
    jobs.run_once("flaky")
    with sqlite_store.connect() as conn:
        run = conn.execute(select(connector_runs)).one()
    assert (run.next_attempt_at - run.finished_at).total_seconds() == pytest.approx(120, abs=0.01)


def test_embedded_scheduler_runs_each_connector_once_per_interval(sqlite_store: Store) -> None:
    jobs = ConnectorJobs(context_for(sqlite_store, _settings(sqlite_store)))
    scheduler = background_scheduler(jobs)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with sqlite_store.connect() as conn:
                if conn.execute(select(alarms.c.id)).first():
                    break
            time.sleep(0.1)
        time.sleep(0.5)
        job = scheduler.get_job("connector:flaky")
        assert job is not None and job.next_run_time is not None
        assert job.next_run_time.timestamp() - time.time() > 500  # next run in ~10 minutes, not now
    finally:
        scheduler.shutdown(wait=True)
        jobs.close()
    assert Flaky.calls == 1
    with sqlite_store.connect() as conn:
        assert conn.execute(select(connector_runs.c.status)).scalars().all() == ["success"]


def test_push_routes_ingest_quarantine_and_survive_handler_bugs(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VANTAGE_LISTENER_SECRET_FLAKY", "flaky-secret")
    server = Flask("t")
    mounted = mount_push_routes(server, _settings(sqlite_store), Ingestor(sqlite_store))
    assert mounted == ["/push/flaky/listener/alarmCreateEvent"]
    client = server.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer flaky-secret"
    ok = {
        "id": "p1",
        "severity": "critical",
        "state": "raised",
        "raised_at": "2026-01-01T00:00:00Z",
        "changed_at": "2026-01-01T00:00:00Z",
    }
    assert client.post(mounted[0], json=ok).status_code == 201
    assert client.post(mounted[0], json={"severity": "minor"}).status_code == 400
    assert client.post(mounted[0], data=b"{not json").status_code == 500
    assert client.get(mounted[0]).status_code == 405
    with sqlite_store.connect() as conn:
        assert conn.execute(select(alarms.c.id)).scalars().all() == ["p1"]
        reasons = conn.execute(select(quarantine.c.reason, quarantine.c.raw).order_by(quarantine.c.id)).all()
        state = load_state(conn, "flaky", "push")
    assert reasons[0][0] == "no id" and json.loads(reasons[0][1]) == {"severity": "minor"}
    assert reasons[1][0].startswith("handler error:") and reasons[1][1] == "{not json"
    assert state["last_status"] == 500 and state["last_event_at"]


def test_push_activity_is_counted_and_shown_per_connector(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VANTAGE_LISTENER_SECRET_FLAKY", "flaky-secret")
    from dashboard import health, queries

    clock = iter([datetime(2026, 1, 1, 12, 0, s) for s in range(0, 60)])
    ingestor = Ingestor(sqlite_store, clock=lambda: next(clock))
    server = Flask("t")
    settings = _settings(sqlite_store)
    (rule,) = mount_push_routes(server, settings, ingestor)
    client = server.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer flaky-secret"
    for i in range(3):
        t = f"2026-01-01T00:0{i}:00Z"
        body = {"id": f"p{i}", "severity": "major", "state": "raised", "raised_at": t, "changed_at": t}
        assert client.post(rule, json=body).status_code == 201
    assert client.post(rule, json={"severity": "minor"}).status_code == 400
    now = datetime(2026, 1, 1, 12, 5)
    with sqlite_store.connect() as conn:
        summaries = queries.run_summaries(conn, now=now)
    row = health.source_statuses(settings.connectors, summaries, now).set_index("connector").loc["flaky"]
    assert (row.push_requests, row.push_records_in, row.push_upserted, row.push_quarantined) == (4, 4, 3, 1)
    assert row.last_push_at == datetime(2026, 1, 1, 12, 0, 7)  # the clock when the 4th request was counted
    # Pushes are its life sign until a pull runs: not "never run" after events were stored.
    assert (row.state, row.freshness) == (health.LISTENING, health.FRESH)
