"""Prometheus query_range end to end: a real loopback HTTP server, the shared client, a real store."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import ConnectorContext
from connectors.prometheus import PrometheusConnector, PrometheusOptions
from dashboard.ingest.runner import Ingestor, load_state
from dashboard.store import Store
from dashboard.store.schema import kpi_samples, quarantine
from tests.loopback import LoopbackServer, Request, Response

NOW = datetime(2026, 3, 1, 12, 0, 30)  # naive UTC, like ConnectorContext.utcnow()
QUERY = "avg by (cell) (rate(latency_seconds_sum[5m]))"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def epoch(dt: datetime) -> float:
    return dt.replace(tzinfo=UTC).timestamp()


def prom_range(req: Request) -> Response:
    """A Prometheus that answers every step: C1 = minutes past the hour, C2 NaN, one series unlabelled."""
    assert req.query["query"] == [QUERY]
    start, end, step = (float(req.query[k][0]) for k in ("start", "end", "step"))
    ts = []
    t = start
    while t <= end:
        ts.append(t)
        t += step
    result = [
        {"metric": {"cell": "C1", "job": "ran"}, "values": [[t, str((t % 3600) / 60)] for t in ts]},
        {"metric": {"cell": "C2"}, "values": [[t, "NaN"] for t in ts]},
        {"metric": {"job": "ran"}, "values": [[t, "1"] for t in ts[:1]]},
    ]
    return Response(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})


def make(server: LoopbackServer, clock: Clock, **options: Any) -> PrometheusConnector:
    opts = {
        "base_url": server.url,
        "step": "1m",
        "lookback": "10m",
        "retry": {"attempts": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.05},
        "queries": [{"query": QUERY, "kpi": "latency_ms", "entity_label": "cell", "scale": 1000}],
        **options,
    }
    return PrometheusConnector(PrometheusOptions.model_validate(opts), ConnectorContext("prom", now=clock))


def stored(store: Store) -> dict[datetime, float]:
    with store.connect() as conn:
        rows = conn.execute(select(kpi_samples)).all()
    assert {(r.entity_type, r.entity_id, r.kpi, r.source) for r in rows} <= {
        ("cell", "C1", "latency_ms", "prom")
    }
    return {r.period_start: r.value for r in rows}


def test_incremental_reads_into_the_store(store: Store, http_server: LoopbackServer) -> None:
    http_server.route("GET", "/api/v1/query_range", prom_range)
    clock = Clock(NOW)
    connector = make(http_server, clock)
    ingest = Ingestor(store)
    first = ingest.run(connector)
    assert first.status == "partial"  # the series without a cell label is quarantined
    got = stored(store)
    minutes = [datetime(2026, 3, 1, 11, 50) + timedelta(minutes=i) for i in range(11)]
    assert sorted(got) == minutes
    assert got[datetime(2026, 3, 1, 11, 55)] == pytest.approx(55_000.0)
    with store.connect() as conn:
        [q] = conn.execute(select(quarantine)).all()
        assert load_state(conn, "prom", "latency_ms") == {"end": epoch(datetime(2026, 3, 1, 12, 0))}
    assert "no label 'cell'" in q.reason and "job" in q.reason

    # Five minutes later: only the new steps are asked for, nothing is stored twice.
    clock.at = NOW + timedelta(minutes=5)
    second = ingest.run(connector)
    last = http_server.hits("GET", "/api/v1/query_range")[-1]
    assert float(last.query["start"][0]) == epoch(datetime(2026, 3, 1, 12, 1))
    assert float(last.query["end"][0]) == epoch(datetime(2026, 3, 1, 12, 5))
    assert second.upserted == 5
    assert len(stored(store)) == 16


def test_long_ranges_are_read_in_windows(sqlite_store: Store, http_server: LoopbackServer) -> None:
    http_server.route("GET", "/api/v1/query_range", prom_range)
    connector = make(http_server, Clock(NOW), lookback="1h", max_points=7)
    summary = Ingestor(sqlite_store).run(connector)
    hits = http_server.hits("GET", "/api/v1/query_range")
    assert len(hits) == 9  # 61 steps, 7 per window
    spans = [(float(h.query["start"][0]), float(h.query["end"][0])) for h in hits]
    assert all(b[0] - a[1] == 60 for a, b in itertools.pairwise(spans))  # no gap, no overlap
    assert summary.upserted == 61 and len(stored(sqlite_store)) == 61


def test_a_500_then_success_is_retried_by_the_shared_client(
    sqlite_store: Store, http_server: LoopbackServer
) -> None:
    http_server.route("GET", "/api/v1/query_range", prom_range)
    http_server.script(
        "GET",
        "/api/v1/query_range",
        Response(500, {"status": "error", "error": "boom"}),
        Response(503, "unavailable", headers={"Retry-After": "0"}),
    )
    summary = Ingestor(sqlite_store).run(make(http_server, Clock(NOW)))
    assert len(http_server.hits("GET", "/api/v1/query_range")) == 3
    assert summary.error is None and len(stored(sqlite_store)) == 11


def test_persistent_5xx_fails_retriable_and_keeps_the_cursor(
    sqlite_store: Store, http_server: LoopbackServer
) -> None:
    http_server.json_route("GET", "/api/v1/query_range", {"status": "error"}, status=502)
    summary = Ingestor(sqlite_store).run(make(http_server, Clock(NOW)))
    assert summary.status == "failed" and summary.retriable and "502" in (summary.error or "")
    with sqlite_store.connect() as conn:
        assert load_state(conn, "prom", "latency_ms") == {}


def test_bad_query_is_fatal_with_prometheus_reason(sqlite_store: Store, http_server: LoopbackServer) -> None:
    http_server.json_route(
        "GET",
        "/api/v1/query_range",
        {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
        status=400,
    )
    summary = Ingestor(sqlite_store).run(make(http_server, Clock(NOW)))
    assert summary.status == "failed" and not summary.retriable
    assert "400" in (summary.error or "")


def test_bearer_auth_from_env_and_check(http_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", "tok-123456")
    http_server.json_route(
        "GET", "/api/v1/query", {"status": "success", "data": {"resultType": "vector", "result": []}}
    )
    http_server.route("GET", "/api/v1/query_range", prom_range)
    connector = make(http_server, Clock(NOW), auth={"type": "bearer", "token_env": "PROM_TOKEN"})
    assert connector.check().ok
    batches = list(connector.read(connector.streams()[0], {}))
    assert sum(len(b.records) for b in batches) == 11
    assert {r.headers["authorization"] for r in http_server.requests} == {"Bearer tok-123456"}
    connector.close()


def test_check_reports_an_unreachable_server(http_server: LoopbackServer) -> None:
    connector = make(http_server, Clock(NOW), base_url="http://127.0.0.1:9", retry={"attempts": 1})
    result = connector.check()
    assert not result.ok and "connection failed" in result.detail


def test_options_are_checked() -> None:
    base = {"base_url": "http://x", "queries": [{"query": "up", "kpi": "k", "entity_label": "cell"}] * 2}
    with pytest.raises(ValueError, match="unique"):
        PrometheusOptions.model_validate(base)
    with pytest.raises(ValueError, match="duration"):
        PrometheusOptions.model_validate({**base, "queries": base["queries"][:1], "step": "soon"})
