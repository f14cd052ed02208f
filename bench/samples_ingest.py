"""KPI samples ingest on PostgreSQL: the product's ingest path against a plain COPY, in the same run.

A fresh, migrated store in a schema of its own (``kpi_samples`` partitioned by day, the partitions of
the bench's days made first, as the retention job keeps them); beside it an equivalent table
(``LIKE kpi_samples INCLUDING ALL``, the same daily partitions and DEFAULT). The same rows, in the
same batches, are written batch by batch, alternately:

- reference: ``COPY`` of each batch into the equivalent table and a commit, timing only the database
  work (each batch is rendered to CSV beforehand);
- ingest: ``Ingestor.ingest`` of each batch as a connector hands it over (a DataFrame without the
  ``source`` column): validation, de-duplication, the idempotent upsert, quarantine, the commit.

Then the whole set is delivered again through ingest (a replay: nothing may be written) and timed.
``--staging-only`` sends every batch through the staging table (COPY into a temporary table, one
INSERT .. ON CONFLICT) instead of trying the direct COPY first, to measure that path alone.
Alternating the two per batch spreads the noise of a shared machine over both. Prints progress,
then one line of JSON.

    .venv/bin/python bench/samples_ingest.py [--rows 1000000] [--batch 150000] [--cells 4000] [--staging-only]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py shares its name with the standard library's ``queue``: keep this folder behind it.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import json
import os
import signal
import time
import uuid
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import Batch, utcnow
from dashboard.ingest import Ingestor
from dashboard.store import Store, upsert
from dashboard.store.partitions import KPI_SAMPLES, PartitionSpec, default_ddl, ensure_partitions, floor_day
from dashboard.store.schema import kpi_samples
from dashboard.store.upsert import _csv_chunk

KPIS = ("availability_pct", "traffic_gb", "prb_utilisation_pct", "latency_ms")
Q = timedelta(minutes=15)
COLUMNS = "source, entity_type, entity_id, kpi, period_start, value"


def frames(rows: int, batch: int, cells: int, start: datetime, seed: int = 1) -> list[pd.DataFrame]:
    """Quarter-hours of every KPI on every cell from ``start``, as connector batches of ``batch`` rows."""
    rng = np.random.default_rng(seed)
    idx = np.arange(rows)
    per_period = cells * len(KPIS)
    names = np.array([f"cell-{i:05d}" for i in range(cells)], dtype=object)
    df = pd.DataFrame(
        {
            "entity_type": "cell",
            "entity_id": names[(idx // len(KPIS)) % cells],
            "kpi": np.array(KPIS, dtype=object)[idx % len(KPIS)],
            "period_start": pd.Timestamp(start) + pd.to_timedelta((idx // per_period) * 15, unit="m"),
            "value": rng.gamma(4.0, 8.0, rows),
        }
    )
    return [df.iloc[i : i + batch].reset_index(drop=True) for i in range(0, rows, batch)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=150_000, help="rows per batch (the simulator's size)")
    ap.add_argument("--cells", type=int, default=4000)
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("VANTAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument(
        "--staging-only",
        action="store_true",
        help="skip the direct COPY the upsert tries first: every batch through the staging table",
    )
    args = ap.parse_args()
    # A bench stopped by a signal still drops its schema (the ``finally`` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.staging_only:
        upsert._skip_direct[kpi_samples.name] = 1 << 62

    periods = -(-args.rows // (args.cells * len(KPIS)))
    now = utcnow()
    start = floor_day(now - periods * Q - timedelta(days=1))
    batches = frames(args.rows, args.batch, args.cells, start)
    days = sorted({floor_day(t) for b in batches for t in (b["period_start"].min(), b["period_start"].max())})
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    store = Store(args.pg_url, schema=schema)
    try:
        store.upgrade()
        ensure_partitions(store.engine, KPI_SAMPLES, days)
        ref = PartitionSpec("ref_samples", "period_start")
        with store.begin() as conn:
            like = "LIKE kpi_samples INCLUDING ALL"
            conn.execute(text(f"CREATE TABLE ref_samples ({like}) PARTITION BY RANGE (period_start)"))
            conn.execute(text(default_ddl(ref)))
        ensure_partitions(store.engine, ref, days)
        csv = [_csv_chunk(kpi_samples, b.assign(source="bench")[["source", *b.columns]]) for b in batches]
        print(
            f"{args.rows:,} rows in {len(batches)} batches over {len(days)} day partition(s)", file=sys.stderr
        )

        ingestor = Ingestor(store)
        ref_s = ingest_s = 0.0
        written = 0
        raw = store.engine.raw_connection()
        pg = raw.driver_connection  # the psycopg connection, for its COPY
        assert pg is not None
        try:
            for i, (b, data) in enumerate(zip(batches, csv, strict=True)):
                t = time.perf_counter()
                with (
                    pg.cursor() as cur,
                    cur.copy(f"COPY ref_samples ({COLUMNS}) FROM STDIN (FORMAT csv)") as cp,
                ):
                    cp.write(data)
                pg.commit()
                ref_s += time.perf_counter() - t
                t = time.perf_counter()
                counts = ingestor.ingest("bench", [Batch(kind="kpi_samples", records=b)])
                ingest_s += time.perf_counter() - t
                written += counts.upserted
                if counts.quarantined:
                    raise SystemExit(f"batch {i}: {counts.quarantined} rows quarantined")
                print(
                    f"batch {i + 1}/{len(batches)}: ref {ref_s:.1f} s, ingest {ingest_s:.1f} s",
                    file=sys.stderr,
                )
        finally:
            raw.close()
        t = time.perf_counter()
        replayed = sum(
            ingestor.ingest("bench", [Batch(kind="kpi_samples", records=b)]).upserted for b in batches
        )
        replay_s = time.perf_counter() - t
        with store.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM kpi_samples")).scalar_one()
            in_default = conn.execute(text("SELECT count(*) FROM kpi_samples_default")).scalar_one()
        if written != args.rows or stored != args.rows or replayed != 0:
            raise SystemExit(f"wrote {written}, stored {stored}, replay wrote {replayed} of {args.rows} rows")
    finally:
        store.dispose()
        admin = create_engine(args.pg_url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    rate, ref_rate = args.rows / ingest_s, args.rows / ref_s
    print(
        json.dumps(
            {
                "path": "staging" if args.staging_only else "default",
                "rows": args.rows,
                "batch_rows": args.batch,
                "partitions_days": len(days),
                "rows_in_default": int(in_default),
                "ingest_s": round(ingest_s, 2),
                "reference_s": round(ref_s, 2),
                "replay_s": round(replay_s, 2),
                "rows_per_s": round(rate),
                "reference_rows_per_s": round(ref_rate),
                "replay_rows_per_s": round(args.rows / replay_s),
                "ratio": round(rate / ref_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
