"""KPI evaluation and linkage at scale: the full catalogue's evaluation, link estimation, page callbacks.

Builds a fresh store (a SQLite file in a temporary folder, or a disposable schema on PostgreSQL) with
the simulated operator at --cells cells (--subscribers-per-cell lines each) and --days of 15-minute
cell KPIs, written through the ingest path (``dashboard.ingest.run_connector``), then one queue
refresh so revenue at risk has a value. Then measures, in the same run:
- evaluation of the full catalogue (``dashboard.kpi_eval.evaluate``: roll-ups of every sampled KPI
  and measure to cell, site, region, segment and network at hourly and daily grain, then status):
  a full first build (``evaluation_ms``) and an incremental pass after one more 15-minute period
  arrived (``incremental_ms``);
- the reference: one plain SQL GROUP BY of every KPI sample to (cell, KPI, day) (the least any
  evaluation must read), timed in the same run (``reference_ms``, ``ratio`` = evaluation / reference);
- link estimation (``dashboard.linkage.refresh_linkage``: every declared and candidate link, network-
  wide, per region and per segment) (``linkage_ms``);
- the Linkage page's callbacks server-side (the functions the callbacks call, in the app's request
  context, as a viewer): the overview for each filter combination, a link's evidence, what-if and a
  CSV export, --requests times each (``callback_p50_ms``, ``callback_p95_ms``; goal p95 <= 300 ms);
- peak RSS of the process (``peak_rss_mb``).
Prints progress, then one line of JSON.

    .venv/bin/python bench/linkage.py [--cells 2000] [--days 30] [--backend sqlite|postgresql]
                                      [--subscribers-per-cell 10] [--requests 50]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import random
import resource
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, text

from bench import _auth, _data
from connectors.base import ConnectorContext
from connectors.simulator.connector import SimulatorConnector, SimulatorOptions, floor_15
from dashboard.app import create_app
from dashboard.config import Settings
from dashboard.context import Context
from dashboard.incidents.queue import refresh_queue
from dashboard.ingest import run_connector
from dashboard.kpis import load_catalogue
from dashboard.store.schema import kpi_samples, regions

ROOT = Path(__file__).resolve().parents[1]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _reference(conn: Any) -> float:
    """One GROUP BY of every sample to (cell, KPI, day); returns milliseconds."""
    day = (
        func.date(kpi_samples.c.period_start)
        if conn.dialect.name == "sqlite"
        else func.date_trunc("day", kpi_samples.c.period_start)
    )
    stmt = select(
        kpi_samples.c.entity_id,
        kpi_samples.c.kpi,
        day.label("d"),
        func.avg(kpi_samples.c.value),
        func.count(),
    ).group_by(kpi_samples.c.entity_id, kpi_samples.c.kpi, day)
    t0 = time.perf_counter()
    rows = conn.execute(stmt).all()
    ms = (time.perf_counter() - t0) * 1000
    _say(f"reference: {len(rows):,} (cell, KPI, day) groups in {ms:,.0f} ms")
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--subscribers-per-cell", type=int, default=10)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from dashboard.kpi_eval import evaluate
    from dashboard.linkage import refresh_linkage

    catalogue = load_catalogue(ROOT / "kpi_definitions.yaml")
    anchor = floor_15(datetime.utcnow().replace(microsecond=0)) - timedelta(minutes=15)
    out: dict[str, Any] = {"backend": args.backend, "cells": args.cells, "days": args.days}
    with tempfile.TemporaryDirectory() as tmp:
        store, drop = _data.open_store(args.backend, tmp, "linkage")
        try:
            options = SimulatorOptions(
                seed=args.seed,
                subscribers=args.cells * args.subscribers_per_cell,
                subscribers_per_cell=args.subscribers_per_cell,
                days=args.days,
                anchor=anchor,
            )
            t0 = time.perf_counter()
            summary = run_connector(store, SimulatorConnector(options, ConnectorContext(name="simulator")))
            out["build_s"] = round(time.perf_counter() - t0, 1)
            with store.connect() as conn:
                out["kpi_samples"] = conn.execute(select(func.count()).select_from(kpi_samples)).scalar_one()
                out["cells_measured"] = conn.execute(
                    select(func.count(func.distinct(kpi_samples.c.entity_id)))
                ).scalar_one()
            _say(
                f"built {summary.counts.records_in:,} records ({out['kpi_samples']:,} KPI samples) "
                f"in {out['build_s']} s"
            )
            refresh_queue(store, catalogue.scoring, now=anchor)
            if args.backend == "postgresql":
                with store.begin() as conn:
                    conn.execute(text("ANALYZE"))

            with store.connect() as conn:
                out["reference_ms"] = round(_reference(conn))

            t0 = time.perf_counter()
            evaluate(store, catalogue, now=anchor + timedelta(minutes=15), full=True)
            out["evaluation_ms"] = round((time.perf_counter() - t0) * 1000)
            out["ratio"] = round(out["evaluation_ms"] / max(out["reference_ms"], 1), 2)
            _say(f"evaluation (full): {out['evaluation_ms']:,} ms; ratio {out['ratio']}")

            # One more 15-minute period arrives, then an incremental pass.
            options2 = options.model_copy(update={"anchor": anchor + timedelta(minutes=15)})
            run_connector(store, SimulatorConnector(options2, ConnectorContext(name="simulator")))
            t0 = time.perf_counter()
            evaluate(store, catalogue, now=anchor + timedelta(minutes=30))
            out["incremental_ms"] = round((time.perf_counter() - t0) * 1000)
            _say(f"evaluation (incremental, one new period): {out['incremental_ms']:,} ms")

            t0 = time.perf_counter()
            refresh_linkage(store, catalogue, now=anchor + timedelta(minutes=30))
            out["linkage_ms"] = round((time.perf_counter() - t0) * 1000)
            _say(f"linkage estimation: {out['linkage_ms']:,} ms")

            out.update(_callbacks(store, catalogue, args.requests, anchor + timedelta(minutes=30)))
        finally:
            drop()
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _callbacks(store: Any, catalogue: Any, requests: int, now: datetime) -> dict[str, Any]:
    """Server-side time of the Linkage page's callback functions, in the app's request context as a
    viewer (the principal the guard sets once a request's credentials are checked)."""
    app = create_app(Context.build(Settings(database_url=store.url), store=store))
    from dashboard.pages import linkage

    with store.connect() as conn:
        region_ids = [r for (r,) in conn.execute(select(regions.c.id))]
    combos = [(None, None)] + [(r, None) for r in region_ids[:3]] + [(None, s) for s in linkage.SEGMENTS]
    times: dict[str, list[float]] = {"overview": [], "link": [], "what_if": [], "csv": []}
    rng = random.Random(1)
    with _auth.request_as(app.server, "viewer", "/linkage"):
        for i in range(requests):
            region, segment = combos[i % len(combos)]
            filters = {
                "region": region or "any",
                "segment": segment or "any",
                "range": rng.choice(list(linkage.RANGES)),
            }
            t0 = time.perf_counter()
            view = linkage.overview(store, catalogue, filters, now, "EUR")
            times["overview"].append((time.perf_counter() - t0) * 1000)
            key = view["selected"]
            if not key:
                continue
            t0 = time.perf_counter()
            linkage.link_view(store, catalogue, view["links_scope"], key)
            times["link"].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            link = linkage.link_detail(store, view["links_scope"], key)
            if link is not None:
                linkage.what_if_text(link, 0.1, catalogue)
            times["what_if"].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            linkage.chart_csv(store, catalogue, "links", filters, view["links_scope"], key, now)
            times["csv"].append((time.perf_counter() - t0) * 1000)
    pooled = [t for v in times.values() for t in v]
    res: dict[str, Any] = {"callback_p50_ms": _p(pooled, 50), "callback_p95_ms": _p(pooled, 95)}
    for k, v in times.items():
        res[f"{k}_p95_ms"] = _p(v, 95)
    _say(
        f"callbacks: p50 {res['callback_p50_ms']} ms, p95 {res['callback_p95_ms']} ms; "
        + ", ".join(f"{k} p95 {res[f'{k}_p95_ms']}" for k in times)
    )
    return res


if __name__ == "__main__":
    main()
