"""Ingest throughput: KPI samples/s and alarms/s through the ingest path versus a plain bulk insert.

For each backend (SQLite file; PostgreSQL when reachable) and each kind, the same rows are written
twice into fresh, migrated stores in the same run:
- reference: a plain bulk insert of those rows (``executemany`` on SQLite, ``COPY`` on PostgreSQL),
  timing only the database work: the rows are converted to database-ready values beforehand;
- ingest: ``Ingestor.ingest_batch`` (validation, de-duplication, idempotent upsert, counting).
KPI samples arrive as a DataFrame (as the simulator and PM-file connectors emit them), alarms as a
list of dicts (as JSON connectors emit them). Prints progress, then one line of JSON.

    .venv/bin/python bench/ingest.py [--kpi-rows 500000] [--alarms 100000] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py shares its name with the standard library's ``queue`` (imported by pandas through
# pyarrow): move this folder behind the standard library on the import path.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import json
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import Batch
from dashboard.ingest import Ingestor, validate
from dashboard.store import CANONICAL_KINDS, Store
from dashboard.store.upsert import _csv_chunk, iter_rows

T0 = datetime(2026, 1, 5)


def kpi_frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = 2000
    idx = np.arange(n)
    return pd.DataFrame(
        {
            "entity_type": "cell",
            "entity_id": pd.Series([f"cell-{i:05d}" for i in range(cells)]).to_numpy()[idx % cells],
            "kpi": "latency_ms",
            "period_start": pd.Timestamp(T0) + pd.to_timedelta((idx // cells) * 15, unit="m"),
            "value": rng.gamma(4.0, 8.0, n),
        }
    )


def alarm_dicts(n: int, seed: int = 2) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    sev = np.array(["critical", "major", "minor", "warning"])[rng.integers(0, 4, n)]
    out = []
    for i in range(n):
        t = T0 + timedelta(seconds=int(i * 7))
        out.append(
            {
                "id": f"alm-{i}",
                "resource_id": f"res-{i % 5000}",
                "alarmed_object": f"res-{i % 5000}",
                "severity": str(sev[i]),
                "state": "raised",
                "ack_state": "unacknowledged",
                "alarm_type": "equipmentAlarm",
                "probable_cause": "powerProblem",
                "specific_problem": "mains failure",
                "service_affecting": bool(i % 3 == 0),
                "raised_at": t.isoformat() + "Z",
                "changed_at": t.isoformat() + "Z",
            }
        )
    return out


def _prepared(kind: str, data: Any, dialect: str) -> tuple[list[str], Any]:
    """The rows ready for the database, made outside the timed part, so the reference is pure DB time."""
    table = CANONICAL_KINDS[kind]
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame.from_records(data)
    checked = validate(table, frame, source="bench").rows
    cols = list(checked.columns)
    if dialect == "sqlite":
        return cols, list(iter_rows(table, checked, "sqlite"))
    return cols, _csv_chunk(table, checked)


def _sqlite_plain(store: Store, kind: str, prepared: tuple[list[str], Any]) -> None:
    cols, rows = prepared
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.executemany(
            f"INSERT INTO {kind} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", rows
        )
        raw.commit()
    finally:
        raw.close()


def _pg_plain(store: Store, kind: str, prepared: tuple[list[str], Any]) -> None:
    cols, data = prepared
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY {kind} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as cp:
            cp.write(data)
        raw.commit()
    finally:
        raw.close()


def _ingest(store: Store, kind: str, data: Any) -> None:
    ing = Ingestor(store)
    with store.begin() as conn:
        counts = ing.ingest_batch(conn, connector="bench", stream=kind, batch=Batch(kind, data))
    assert counts.quarantined == 0 and counts.upserted == len(data), counts


def _timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_backend(
    name: str,
    make_store: Callable[[], tuple[Store, Callable[[], None]]],
    plain: Any,
    kpis: pd.DataFrame,
    alarms: list[dict[str, Any]],
    repeat: int,
) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, data in (("kpi_samples", kpis), ("alarms", alarms)):
        best_ref, best_ing = float("inf"), float("inf")
        prepared = _prepared(kind, data, "sqlite" if name == "sqlite" else "postgresql")
        for _ in range(repeat):
            store, drop = make_store()
            best_ref = min(best_ref, _timed(partial(plain, store, kind, prepared)))
            drop()
            store, drop = make_store()
            best_ing = min(best_ing, _timed(partial(_ingest, store, kind, data)))
            drop()
        n = len(data)
        short = "kpi" if kind == "kpi_samples" else "alarm"
        out[f"{name}_{short}_ingest_rows_per_s"] = round(n / best_ing)
        out[f"{name}_{short}_reference_rows_per_s"] = round(n / best_ref)
        out[f"{name}_{short}_ingest_ms"] = round(best_ing * 1000, 1)
        out[f"{name}_{short}_reference_ms"] = round(best_ref * 1000, 1)
        out[f"{name}_{short}_ratio"] = round(best_ref / best_ing, 3)
        print(
            f"{name:8} {kind:12} ingest {n / best_ing:>10,.0f} rows/s   "
            f"plain {n / best_ref:>10,.0f} rows/s   ratio {best_ref / best_ing:.2f}",
            file=sys.stderr,
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kpi-rows", type=int, default=500_000)
    p.add_argument("--alarms", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=2, help="best of N for each measurement")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("VANTAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    p.add_argument("--no-pg", action="store_true")
    args = p.parse_args()

    print(f"generating {args.kpi_rows:,} KPI samples and {args.alarms:,} alarms", file=sys.stderr)
    kpis, alarms = kpi_frame(args.kpi_rows), alarm_dicts(args.alarms)
    result: dict[str, Any] = {"kpi_rows": args.kpi_rows, "alarms": args.alarms}
    tmp = tempfile.mkdtemp(prefix="vantage-bench-")

    def sqlite_store() -> tuple[Store, Callable[[], None]]:
        path = Path(tmp) / f"{uuid.uuid4().hex}.db"
        store = Store(f"sqlite:///{path}")
        store.upgrade()

        def drop() -> None:
            store.dispose()
            for f in Path(tmp).glob(path.name + "*"):
                f.unlink()

        return store, drop

    result.update(bench_backend("sqlite", sqlite_store, _sqlite_plain, kpis, alarms, args.repeat))

    if not args.no_pg:
        admin = create_engine(args.pg_url)
        try:
            with admin.connect() as c:
                c.execute(text("SELECT 1"))
            reachable = True
        except Exception as err:
            print(f"PostgreSQL not reachable ({type(err).__name__}); skipping it", file=sys.stderr)
            reachable = False
        if reachable:

            def pg_store() -> tuple[Store, Callable[[], None]]:
                schema = f"bench_{uuid.uuid4().hex[:10]}"
                store = Store(args.pg_url, schema=schema)
                store.upgrade()

                def drop() -> None:
                    store.dispose()
                    with admin.begin() as c:
                        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

                return store, drop

            result.update(bench_backend("postgres", pg_store, _pg_plain, kpis, alarms, args.repeat))
        admin.dispose()

    ratios = [v for k, v in result.items() if k.endswith("_ratio")]
    result["min_ratio"] = min(ratios)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
