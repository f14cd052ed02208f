"""The slow reads at scale: one incident's detail and the subscriber list sorted by value.

Builds a store (a SQLite file, or a PostgreSQL schema) with the simulator's world at --subscribers,
churn signals, two KPIs per cell and --alarms active alarms (bench/_data.py), ranks them into the
incident queue once, then measures, server-side:
- incident detail: ``GET /api/v1/incidents/<id>`` through Flask's test client with a viewer's token,
  and the Incidents page's detail read (``dashboard.pages.incidents.read_detail``), for the top
  --incidents incidents of the queue in turn (at 2,000 alarms, four of the top 20 are transport
  failures of 600 cells and 30,000 lines each; the others about 24 cells); then, in the same
  process, each part of the detail that grows with an incident's cells (``read.affected_cells``,
  ``read.kpi_impact``, ``read.affected_accounts``) apart, for the incidents of --big-cells cells
  or more and for the others;
- the value-sorted subscriber list: ``GET /api/v1/subscribers?sort=value`` (first page of 50 with its
  count), the next pages from its cursor, and the Subscribers page's own read
  (``dashboard.subscribers.search.search_page``, a viewer's first page of 100, as the grid asks),
  pooled as ``value_page_*``; apart, the first pages of the enterprise and VIP segments.
Goals: incident detail p95 <= 150 ms; value-sorted page p95 <= 200 ms.

Building a million lines takes a while: ``--keep`` leaves the store in place and prints how to
reuse it, ``--reuse`` measures a kept store again (migrating it to the current head first), and
``--build-only`` stops after the build; ``--refresh [N]`` runs one (or N) queue refreshes before
measuring (a store kept before a migration that adds what the reads use needs them to fill it: a
pass keeps the detail's parts of 2,000 cells' incidents at most). Prints progress, then one
line of JSON.

    .venv/bin/python bench/reads.py [--subscribers 1000000] [--alarms 2000]
        [--backend sqlite|postgresql] [--requests 100] [--incidents 20] [--big-cells 300]
        [--keep] [--build-only] [--reuse SCHEMA_OR_PATH] [--refresh [N]] [--analyze auto|yes|no]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py shares its name with the standard library's ``queue`` (imported by pandas and
# SQLAlchemy): move this folder behind the standard library on the import path, then put the
# repository in front.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import func, inspect, select, text

from bench import _auth, _data
from connectors.base import utcnow
from dashboard.incidents.queue import refresh_queue
from dashboard.kpis import load_catalogue
from dashboard.store import Store
from dashboard.store.schema import incident_cells, incident_queue, subscribers

ROOT = Path(__file__).resolve().parents[1]
GOALS_MS = {"detail": 150.0, "value_page": 200.0}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def _timed(fn: Callable[[], Any], count: int, warm: int = 2) -> list[float]:
    for _ in range(warm):
        fn()  # lazy imports, the first plans and the database's cache
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


# --- the store ----------------------------------------------------------------------------------


def open_kept(backend: str, where: str) -> Store:
    """A store kept by an earlier ``--keep`` run (a PostgreSQL schema, or a SQLite file's path),
    migrated to the current head."""
    store = Store(_data.PG_URL, schema=where) if backend == "postgresql" else Store(f"sqlite:///{where}")
    t0 = time.perf_counter()
    store.upgrade()
    _say(f"reusing {where}: migrated to head in {time.perf_counter() - t0:.1f} s")
    return store


def build_store(
    args: argparse.Namespace, scoring: Any
) -> tuple[Store, str, Callable[[], None], dict[str, Any]]:
    """A new store with the bench's world, ranked once; where it is and how to drop it."""
    if args.keep:
        # A name that outlives this run: a schema in the bench database, or a file in the temp folder.
        tag = f"reads_{args.subscribers // 1000}k_{uuid.uuid4().hex[:6]}"
        if args.backend == "postgresql":
            store = Store(_data.PG_URL, schema=tag)
            store.upgrade()
            where = tag
        else:
            where = str(Path(tempfile.gettempdir()) / f"vantage-{tag}.db")
            store = Store(f"sqlite:///{where}")
            store.upgrade()
        drop: Callable[[], None] = store.dispose
    else:
        tmp = tempfile.mkdtemp(prefix="vantage-bench-reads-")
        store, drop = _data.open_store(args.backend, tmp, "reads")
        where = store.schema or store.url
    now = utcnow().replace(microsecond=0)
    t0 = time.perf_counter()
    ds = _data.build(
        store, subscribers=args.subscribers, alarms=args.alarms, now=now, seed=args.seed, say=_say
    )
    refresh_queue(store, scoring, now=now, currency="EUR")
    info = {"build_s": round(time.perf_counter() - t0, 1), "accounts": ds.world.n_accounts}
    _say(f"built in {info['build_s']} s")
    if args.keep:
        _say(f"kept: --backend {args.backend} --reuse {where}")
    return store, where, drop, info


def analyze(store: Store) -> None:
    """Fresh statistics for the store's own tables (a bare ANALYZE would read every schema of a
    shared database)."""
    from dashboard.store.schema import metadata

    t0 = time.perf_counter()
    with store.begin() as conn:
        present = set(inspect(conn).get_table_names())
        names = ", ".join(f'"{t}"' for t in metadata.tables if t in present)
        conn.execute(text(f"ANALYZE {names}"))
    _say(f"ANALYZE in {time.perf_counter() - t0:.1f} s")


# --- the reads ------------------------------------------------------------------------------------


def time_detail(
    store: Store, client: Any, app: Any, scoring: Any, catalogue: Any, n: int, top: int, big_cells: int
) -> dict[str, Any]:
    """The detail API and the page's detail read over the ``top`` first incidents of the queue, then
    its parts (:func:`time_detail_parts`)."""
    from dashboard.pages.incidents import read_detail

    with store.connect() as conn:
        ids = list(
            conn.execute(
                select(incident_queue.c.incident_id)
                .where(incident_queue.c.rank.is_not(None))
                .order_by(incident_queue.c.rank)
                .limit(top)
            ).scalars()
        )
    if not ids:
        return {"detail_error": "no ranked incident"}
    turn = iter(range(10**9))

    def api() -> None:
        iid = ids[next(turn) % len(ids)]
        resp = client.get(f"/api/v1/incidents/{iid}")
        assert resp.status_code == 200, (iid, resp.status_code, resp.get_data(as_text=True)[:300])

    def page() -> None:
        iid = ids[next(turn) % len(ids)]
        with app.server.app_context():
            assert read_detail(store, iid, scoring, utcnow(), catalogue) is not None

    api_ms = _timed(api, n)
    page_ms = _timed(page, n)
    out = {
        "detail_incidents": len(ids),
        "detail_api_p50_ms": _p(api_ms, 50),
        "detail_api_p95_ms": _p(api_ms, 95),
        "detail_page_p50_ms": _p(page_ms, 50),
        "detail_page_p95_ms": _p(page_ms, 95),
    }
    _say(
        f"detail: API p50 {out['detail_api_p50_ms']} p95 {out['detail_api_p95_ms']} ms; page p50 "
        f"{out['detail_page_p50_ms']} p95 {out['detail_page_p95_ms']} ms"
    )
    out.update(time_detail_parts(store, ids, scoring, n, big_cells))
    return out


def time_detail_parts(store: Store, ids: list[str], scoring: Any, n: int, big_cells: int) -> dict[str, Any]:
    """Each part of the detail that grows with the incident's cells, read apart in this process,
    over the incidents of ``big_cells`` cells or more (``big``) and the others (``small``)."""
    from dashboard.incidents import read

    kpis = [scoring.impact.availability_kpi, scoring.impact.throughput_kpi]
    with store.connect() as conn:
        sizes = dict(
            conn.execute(
                select(incident_cells.c.incident_id, func.count())
                .where(incident_cells.c.incident_id.in_(ids))
                .group_by(incident_cells.c.incident_id)
            ).all()
        )
    groups = {
        "big": [i for i in ids if sizes.get(i, 0) >= big_cells],
        "small": [i for i in ids if sizes.get(i, 0) < big_cells],
    }
    parts: dict[str, Callable[[Any, str], Any]] = {
        "cells": read.affected_cells,
        "kpis": lambda conn, iid: read.kpi_impact(conn, iid, kpis, now=utcnow()),
        "accounts": lambda conn, iid: read.affected_accounts(conn, iid, scoring, now=utcnow()),
    }
    out: dict[str, Any] = {"detail_big_incidents": len(groups["big"]), "detail_big_cells": big_cells}
    for group, members in groups.items():
        if not members:
            continue
        said = []
        for name, part in parts.items():
            ms = _timed(_in_turn(store, part, members), max(len(members), n // 2))
            p50, p95 = _p(ms, 50), _p(ms, 95)
            out[f"detail_{name}_{group}_p50_ms"], out[f"detail_{name}_{group}_p95_ms"] = p50, p95
            said.append(f"{name} p50 {p50} p95 {p95} ms")
        _say(f"detail parts, {group} incidents ({len(members)}): " + "; ".join(said))
    return out


def _in_turn(store: Store, part: Callable[[Any, str], Any], ids: list[str]) -> Callable[[], None]:
    """A call of ``part`` on its own connection, for each of ``ids`` in turn."""
    turn = iter(range(10**9))

    def call() -> None:
        with store.connect() as conn:
            part(conn, ids[next(turn) % len(ids)])

    return call


def time_value_pages(store: Store, client: Any, scoring: Any, n: int) -> dict[str, Any]:
    """The value-sorted list: the API's first page and the pages after it, and the page's read."""
    from dashboard.privacy import Principal
    from dashboard.subscribers.search import Filters, search_page

    def first() -> str | None:
        resp = client.get("/api/v1/subscribers?sort=value&limit=50")
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        return str(resp.get_json()["next_cursor"] or "") or None

    cursors: list[str] = []
    cursor = first()
    while cursor and len(cursors) < n:
        cursors.append(cursor)
        resp = client.get(f"/api/v1/subscribers?sort=value&limit=50&cursor={cursor}")
        cursor = resp.get_json()["next_cursor"]
    turn = iter(range(10**9))

    def next_page() -> None:
        c = cursors[next(turn) % len(cursors)]
        resp = client.get(f"/api/v1/subscribers?sort=value&limit=50&cursor={c}")
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]

    viewer = Principal(user="bench", role="viewer")

    def grid() -> None:
        with store.connect() as conn:
            search_page(conn, None, Filters(), principal=viewer, scoring=scoring, sort="value", limit=100)

    def segment(name: str) -> Callable[[], None]:
        def call() -> None:
            resp = client.get(f"/api/v1/subscribers?sort=value&limit=50&segment={name}")
            assert resp.status_code == 200, resp.get_data(as_text=True)[:300]

        return call

    first_ms = _timed(first, n)
    next_ms = _timed(next_page, n) if cursors else []
    grid_ms = _timed(grid, n)
    segment_ms = [t for name in ("enterprise", "vip") for t in _timed(segment(name), max(5, n // 4))]
    pooled = first_ms + next_ms + grid_ms
    out = {
        "value_first_api_p50_ms": _p(first_ms, 50),
        "value_first_api_p95_ms": _p(first_ms, 95),
        "value_next_api_p50_ms": _p(next_ms, 50),
        "value_next_api_p95_ms": _p(next_ms, 95),
        "value_page_read_p50_ms": _p(grid_ms, 50),
        "value_page_read_p95_ms": _p(grid_ms, 95),
        "value_page_p50_ms": _p(pooled, 50),
        "value_page_p95_ms": _p(pooled, 95),
        "value_segment_first_api_p50_ms": _p(segment_ms, 50),
        "value_segment_first_api_p95_ms": _p(segment_ms, 95),
    }
    _say(
        f"value pages: first p95 {out['value_first_api_p95_ms']} ms, next p95 {out['value_next_api_p95_ms']} "
        f"ms, page read p95 {out['value_page_read_p95_ms']} ms"
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--alarms", type=int, default=2000, help="active alarms (bench/queue.py's busy network)")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--requests", type=int, default=100, help="requests per read measured")
    p.add_argument(
        "--incidents", type=int, default=20, help="top-ranked incidents whose detail is read in turn"
    )
    p.add_argument(
        "--big-cells", type=int, default=300, help="incidents of this many cells or more are timed apart"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--keep", action="store_true", help="keep the store built (and say how to reuse it)")
    p.add_argument("--build-only", action="store_true", help="build (and keep) the store, measure nothing")
    p.add_argument("--reuse", metavar="SCHEMA_OR_PATH", help="measure a kept store instead of building one")
    p.add_argument(
        "--refresh",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="N",
        help="N queue refreshes before measuring",
    )
    p.add_argument(
        "--analyze",
        choices=("auto", "yes", "no"),
        default="auto",
        help="ANALYZE before measuring; auto: on PostgreSQL only, standing in for autovacuum",
    )
    args = p.parse_args()
    if args.build_only:
        args.keep = True
    catalogue = load_catalogue(ROOT / "kpi_definitions.yaml")
    scoring = catalogue.scoring
    result: dict[str, Any] = {"backend": args.backend}
    if args.reuse:
        store, where, drop = open_kept(args.backend, args.reuse), args.reuse, None
    else:
        store, where, drop, info = build_store(args, scoring)
        result.update(info)
    try:
        if args.refresh:
            t0 = time.perf_counter()
            for _ in range(args.refresh):
                refresh_queue(store, scoring, now=utcnow().replace(microsecond=0), currency="EUR")
            result["refresh_s"] = round(time.perf_counter() - t0, 1)
            _say(f"queue refreshed {args.refresh} time(s) in {result['refresh_s']} s")
        if args.analyze == "yes" or (args.analyze == "auto" and args.backend == "postgresql"):
            analyze(store)
        if args.keep or args.reuse:
            result["store"] = where
        with store.connect() as conn:
            result["subscribers"] = conn.execute(select(func.count()).select_from(subscribers)).scalar_one()
        if not args.build_only:
            from dashboard.app import create_app
            from dashboard.config import Settings
            from dashboard.context import Context

            app = create_app(Context.build(Settings(database_url=store.url), store=store))
            client = app.server.test_client()
            # A user of its own per run: a kept store already holds the earlier runs' users.
            text = _auth.token(store, "viewer", f"bench-reads-{uuid.uuid4().hex[:8]}")
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {text}"
            result.update(
                time_detail(
                    store, client, app, scoring, catalogue, args.requests, args.incidents, args.big_cells
                )
            )
            result.update(time_value_pages(store, client, scoring, args.requests))
            result["goals_met"] = {
                "detail_p95_le_150_ms": max(result["detail_api_p95_ms"], result["detail_page_p95_ms"])
                <= GOALS_MS["detail"],
                "value_page_p95_le_200_ms": result["value_page_p95_ms"] <= GOALS_MS["value_page"],
            }
    finally:
        if drop is not None and not args.keep:
            drop()
        else:
            store.dispose()
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
