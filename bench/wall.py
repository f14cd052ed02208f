"""The NOC wall at scale: server time and bytes per refresh, and a soak in headless Chromium.

Builds a fresh store (a SQLite file in a temporary folder, or a disposable schema on PostgreSQL) with
the simulator's world at --subscribers, churn signals, KPIs and --alarms active alarms ranked into the
queue (bench/_data.py, then one queue refresh and one KPI evaluation), then measures, in the same run:
- refresh: ``GET /api/v1/wall?have=...`` through Flask's test client as the screen asks it (with a
  viewer's API token), --requests times; every --change-every requests one interval's changes
  arrive (a few alarms raised and cleared, customers changed) and the queue is refreshed, so some
  answers carry changed panels. Prints the server-side p50/p95 (``refresh_p50_ms``,
  ``refresh_p95_ms``; goal p95 <= 100 ms) and the bytes per refresh (``bytes_mean``, ``bytes_p95``,
  ``bytes_max``; goal <= 50 KB), apart from the first load, which carries every site's position
  once (``first_load_bytes``);
- the reference: one plain read of the same top of the queue, the site statuses and the sources in
  one connection (``reference_ms``, ``ratio`` = refresh p50 / reference);
- with --soak-minutes > 0: the wall open at /wall?kiosk=1 in headless Chromium (set up as a wall
  screen is: a viewer's token in the kiosk link) at --soak-refresh-s while changes keep arriving,
  the JS heap (after a forced garbage collection) after --warmup-s and at the end
  (``heap_warm_mb``, ``heap_end_mb``, ``heap_growth_pct``; goal < 10 %), DOM nodes, and console
  errors (``console_errors``).
Ends with one line of JSON.

    .venv/bin/python bench/wall.py [--subscribers 1000000] [--alarms 2000] [--backend sqlite|postgresql]
                                   [--requests 300] [--soak-minutes 30] [--soak-refresh-s 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import resource
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, text

from bench import _auth, _data
from dashboard.app import create_app
from dashboard.config import ConnectorConfig, Settings, WallConfig
from dashboard.context import Context
from dashboard.incidents.queue import refresh_queue
from dashboard.kpis import load_catalogue
from dashboard.store.schema import connector_runs, incident_queue
from dashboard.wall import queue_panel, sites_panel

ROOT = Path(__file__).resolve().parents[1]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _settings(store: Any, refresh_s: float) -> Settings:
    return Settings(
        database_url=store.url,
        connectors=[ConnectorConfig(name="bench", type="simulator", interval=3600)],
        wall=WallConfig(refresh_s=refresh_s),
    )


def _mark_source_fresh(store: Any, at: datetime) -> None:
    with store.begin() as conn:
        conn.execute(
            connector_runs.insert().values(
                connector="bench", started_at=at, finished_at=at, status="success", records_in=0
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--alarms", type=int, default=2000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--change-every", type=int, default=10)
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--soak-refresh-s", type=float, default=1.0)
    parser.add_argument("--warmup-s", type=float, default=120.0)
    parser.add_argument(
        "--no-evaluate", action="store_true", help="skip the KPI evaluation (the KPI tiles stay empty)"
    )
    args = parser.parse_args()

    catalogue = load_catalogue(ROOT / "kpi_definitions.yaml")
    out: dict[str, Any] = {"backend": args.backend, "subscribers": args.subscribers, "alarms": args.alarms}
    with tempfile.TemporaryDirectory() as tmp:
        store, drop = _data.open_store(args.backend, tmp, "wall")
        try:
            now = _now().replace(microsecond=0)
            t0 = time.perf_counter()
            ds = _data.build(store, subscribers=args.subscribers, alarms=args.alarms, now=now, say=_say)
            refresh_queue(store, catalogue.scoring, now=now)
            if not args.no_evaluate:
                from dashboard.kpi_eval import evaluate

                t1 = time.perf_counter()
                evaluate(store, catalogue, now=now)
                out["evaluate_s"] = round(time.perf_counter() - t1, 1)
            out["kpis_evaluated"] = not args.no_evaluate
            out["build_s"] = round(time.perf_counter() - t0, 1)
            _mark_source_fresh(store, now)
            if args.backend == "postgresql":
                with store.begin() as conn:
                    conn.execute(text("ANALYZE"))
            with store.connect() as conn:
                out["queued"] = len(conn.execute(select(incident_queue.c.incident_id)).all())
            _say(f"built in {out['build_s']} s; {out['queued']:,} incidents in the queue")
            changes = _data.Changes(ds, store)
            out.update(_refreshes(store, catalogue, changes, args, now))
            if args.soak_minutes > 0:
                out.update(_soak(store, catalogue, changes, args, now))
        finally:
            drop()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def _refreshes(store: Any, catalogue: Any, changes: Any, args: Any, start: datetime) -> dict[str, Any]:
    settings = _settings(store, 10)
    client = create_app(Context.build(settings, store=store)).server.test_client()
    _auth.authorize(client, store, "viewer")
    first = client.get("/api/v1/wall")
    assert first.status_code == 200, first.data[:200]
    first_bytes = len(first.data)
    have = first.get_json()["versions"]
    times: list[float] = []
    sizes: list[int] = []
    t = start
    for i in range(args.requests):
        if i and i % args.change_every == 0:
            t += timedelta(seconds=30)
            changes.apply(t)
            refresh_queue(store, catalogue.scoring, now=t)
        query = ",".join(f"{k}:{v}" for k, v in have.items())
        t0 = time.perf_counter()
        resp = client.get(f"/api/v1/wall?have={query}")
        times.append((time.perf_counter() - t0) * 1000)
        sizes.append(len(resp.data))
        have = resp.get_json()["versions"]
    ref: list[float] = []
    with store.connect() as conn:
        for _ in range(20):
            t0 = time.perf_counter()
            queue_panel(conn, settings.wall.top)
            sites_panel(conn)
            conn.execute(select(connector_runs.c.connector, connector_runs.c.finished_at)).all()
            ref.append((time.perf_counter() - t0) * 1000)
    res = {
        "first_load_bytes": first_bytes,
        "refresh_p50_ms": _p(times, 50),
        "refresh_p95_ms": _p(times, 95),
        "reference_ms": _p(ref, 50),
        "bytes_mean": round(float(np.mean(sizes))),
        "bytes_p95": _p([float(s) for s in sizes], 95),
        "bytes_max": max(sizes),
    }
    res["ratio"] = round(res["refresh_p50_ms"] / max(res["reference_ms"] or 1e-3, 1e-3), 2)
    _say(
        f"refresh: p50 {res['refresh_p50_ms']} ms, p95 {res['refresh_p95_ms']} ms "
        f"(reference {res['reference_ms']} ms);"
        f" bytes mean {res['bytes_mean']:,}, p95 {res['bytes_p95']:,}, max {res['bytes_max']:,};"
        f" first load {first_bytes:,}"
    )
    return res


def _soak(store: Any, catalogue: Any, changes: Any, args: Any, start: datetime) -> dict[str, Any]:
    from tests.browser import chromium, live_server

    settings = _settings(store, args.soak_refresh_s)
    app = create_app(Context.build(settings, store=store))
    stop = threading.Event()

    def feed() -> None:  # changes keep arriving while the wall is open
        t = start + timedelta(hours=1)
        while not stop.wait(15):
            t += timedelta(seconds=30)
            try:
                changes.apply(t)
                refresh_queue(store, catalogue.scoring, now=t)
                _mark_source_fresh(store, _now())
            except Exception as err:  # a failed change must not end the soak
                _say(f"change failed: {err!r}")

    feeder = threading.Thread(target=feed, daemon=True)
    res: dict[str, Any] = {"soak_minutes": args.soak_minutes, "soak_refresh_s": args.soak_refresh_s}
    kiosk = _auth.token(store, "viewer")  # a wall screen is set up once with a read-only token
    with live_server(app.server) as url, chromium(1920, 1080) as driver:
        driver.get(url + f"/wall?kiosk=1&access_token={kiosk}")
        feeder.start()

        def heap() -> tuple[float, int]:
            driver.execute_cdp_cmd("HeapProfiler.enable", {})
            driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
            used = driver.execute_script("return performance.memory.usedJSHeapSize")
            nodes = driver.execute_script("return document.getElementsByTagName('*').length")
            return float(used) / 1e6, int(nodes)

        time.sleep(args.warmup_s)
        warm, warm_nodes = heap()
        _say(f"soak: heap after warm-up {warm:.2f} MB, {warm_nodes} DOM nodes")
        end_at = time.monotonic() + args.soak_minutes * 60 - args.warmup_s
        while time.monotonic() < end_at:
            time.sleep(min(60.0, max(end_at - time.monotonic(), 0)))
            h, n = heap()
            _say(f"soak: heap {h:.2f} MB, {n} DOM nodes")
        end, end_nodes = heap()
        polls = driver.execute_script(
            "return window.vantageWall ? Object.keys(window.vantageWall.have).length : 0"
        )
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        stop.set()
    res.update(
        {
            "heap_warm_mb": round(warm, 2),
            "heap_end_mb": round(end, 2),
            "heap_growth_pct": round((end - warm) / warm * 100, 1),
            "dom_nodes_warm": warm_nodes,
            "dom_nodes_end": end_nodes,
            "panels_tracked": polls,
            "console_errors": len(errors),
        }
    )
    return res


if __name__ == "__main__":
    main()
