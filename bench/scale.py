"""National scale on PostgreSQL: ingest, KPI evaluation, link estimation and the queue on one fresh store.

Builds, in a fresh schema of ``--database-url`` (dropped at the end unless ``--keep``), the simulator's
world at --subscribers lines (50 a cell: 20,000 cells at 1M) through the ingest path (topology,
customers, churn signals, active alarms, the last three hours of two KPIs: ``bench/_data.py``), plus
synthetic tickets and churn events through the ingest path, and --days of 15-minute samples of the
eight sampled KPIs of every cell (``connectors.simulator.kpis.kpi_values`` of that world, no faults).
Then measures, in the same run:

- ingest: the first --ingest-days of samples through the product's path (``Ingestor.ingest``, batches
  of whole periods of about 150,000 rows, the clock at each batch's last period end) into the empty
  ``kpi_samples`` (``rows_per_s``), and a plain COPY of the same frames (written to CSV in the same
  process, then ``COPY ... FROM STDIN``) into a table made ``LIKE kpi_samples INCLUDING ALL``, empty
  too (``reference_rows_per_s``; ``ingest_ratio`` = product / reference). The rest of the history
  is generated in the database (the same formulas without faults, simplified, in SQL, a day per
  statement, into the table with its indexes built after: at 1M lines x 30 days that is 460M rows,
  which neither the product path nor CSV written in Python loads in useful time here) and timed
  apart (``bulk_history_s``); the last three hours go through the ingest path again;
- the reference: one plain GROUP BY of every sample to (cell, KPI, day) (``reference_group_by_s``);
- the first full KPI evaluation (``dashboard.kpi_eval.evaluate(full=True)``: roll-ups, statuses,
  baselines and anomaly verdicts) with its steps (``evaluation_full_s``, ``evaluation_steps_s``);
- one new 15-minute period of every cell's samples through the ingest path, then the incremental
  pass (``evaluation_incremental_s``), both as the scheduler's job runs them (the second keeps the
  first's quarter-hour rows: ``dashboard/kpi_eval/quarters.py``);
- link estimation (``dashboard.linkage.refresh_linkage``, every scope) (``linkage_s``);
- the incident queue's first refresh and --repeats steady refreshes, each after one 30-second
  interval's changes (``queue_first_s``, ``queue_steady_s`` median);
- disk: ``pg_total_relation_size`` of every table of the schema (``disk_mb``, ``disk_mb_total``);
- peak RSS of this process (``peak_rss_mb``).

Prints progress on stderr, then ONE line of JSON on stdout.

    .venv/bin/python bench/scale.py --subscribers 100000 --days 30 [--database-url URL] [--keep]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import resource
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, func, select, text

from bench import _data
from bench.kpi_eval import without_indexes
from connectors.base import Batch
from connectors.simulator.causal import CausalParameters
from connectors.simulator.kpis import KPIS, daily_profile, kpi_values
from connectors.simulator.world import World
from dashboard.incidents.queue import refresh_queue
from dashboard.ingest import Ingestor
from dashboard.kpi_eval import evaluate
from dashboard.kpi_eval.quarters import QuarterHours
from dashboard.kpis import Catalogue, load_catalogue
from dashboard.store import Store
from dashboard.store.partitions import KPI_SAMPLES, days_between, ensure_partitions
from dashboard.store.schema import kpi_samples

ROOT = Path(__file__).resolve().parents[1]
PERIOD = timedelta(minutes=15)
PERIOD_S = 900
BATCH_ROWS = 150_000
COLUMNS = ("source", "entity_type", "entity_id", "kpi", "period_start", "value")
#: KPIs ``bench/_data.py`` already wrote for its last ``KPI_PERIODS`` periods.
DATA_KPIS = ("availability_pct", "dl_throughput_mbps")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- samples ----------------------------------------------------------------------------------------


class Samples:
    """Frames of every cell's eight KPIs, period by period, from the simulator's formulas (no faults)."""

    def __init__(self, w: World, skip_from: datetime) -> None:
        self.w = w
        self.c = CausalParameters()
        #: From this period on, ``bench/_data.py`` wrote ``DATA_KPIS`` through ingest already.
        self.skip_from = pd.Timestamp(skip_from)
        self.ids = w.cell_ids.to_numpy(dtype=object)
        self.per_batch = max(1, BATCH_ROWS // (len(KPIS) * w.n_cells))

    def frame(self, ps: np.ndarray, *, skip: bool = True) -> pd.DataFrame:
        """Samples of periods ``ps`` (epoch seconds); ``skip`` leaves out what ``bench/_data.py`` wrote."""
        n_c, p = self.w.n_cells, len(ps)
        values = kpi_values(self.w, self.c, ps, [])  # (kpi, period, cell)
        n = p * n_c
        df = pd.DataFrame(
            {
                "source": _data.SOURCE,
                "entity_type": "cell",
                "entity_id": np.tile(self.ids, p * len(KPIS)),
                "kpi": np.repeat(np.asarray(KPIS, dtype=object), n),
                "period_start": np.tile(np.repeat((ps * 1_000_000).astype("datetime64[us]"), n_c), len(KPIS)),
                "value": np.round(values.reshape(-1), 3),
            }
        )
        if not skip:
            return df
        late = (df["period_start"] >= self.skip_from) & df["kpi"].isin(DATA_KPIS)
        return df[~late].reset_index(drop=True) if late.any() else df

    def batches(self, lo: datetime, hi: datetime) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
        """(last period start, frame) of the periods in [lo, hi), a few whole periods a frame."""
        a = int(pd.Timestamp(lo).timestamp())
        b = int(pd.Timestamp(hi).timestamp())
        ps = np.arange(a, b, PERIOD_S, dtype=np.int64)
        for i in range(0, len(ps), self.per_batch):
            part = ps[i : i + self.per_batch]
            yield pd.Timestamp(int(part[-1]), unit="s"), self.frame(part)


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, header=False, columns=list(COLUMNS), date_format="%Y-%m-%d %H:%M:%S")


def _copy(store: Store, table: str, chunks: Iterator[str]) -> int:
    """COPY CSV chunks into ``table`` of the store's schema in one transaction; returns bytes sent."""
    raw: Any = store.engine.raw_connection()
    sent = 0
    try:
        with raw.cursor() as cur:
            cols = ", ".join(COLUMNS)
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                for chunk in chunks:
                    copy.write(chunk)
                    sent += len(chunk)
        raw.commit()
    finally:
        raw.close()
    return sent


def ingest_slice(store: Store, samples: Samples, lo: datetime, hi: datetime, out: dict[str, Any]) -> None:
    """Samples of [lo, hi) through the product's ingest path, then the same frames by a plain COPY."""
    frames = list(samples.batches(lo, hi))
    rows = sum(len(f) for _, f in frames)
    clock = _data.Clock(hi)
    ingestor = Ingestor(store, clock=clock)
    t0 = time.perf_counter()
    for last, df in frames:
        clock.t = last.to_pydatetime() + PERIOD + _data.KPI_DELAY
        counts = ingestor.ingest(_data.SOURCE, [Batch(kind="kpi_samples", records=df)])
        assert counts.quarantined == 0, counts
    ingest_s = time.perf_counter() - t0
    with store.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS scale_copy_reference"))
        conn.execute(text("CREATE TABLE scale_copy_reference (LIKE kpi_samples INCLUDING ALL)"))
    t0 = time.perf_counter()
    _copy(store, "scale_copy_reference", (_csv(df) for _, df in frames))
    copy_s = time.perf_counter() - t0
    with store.begin() as conn:
        copied = conn.execute(text("SELECT count(*) FROM scale_copy_reference")).scalar_one()
        conn.execute(text("DROP TABLE scale_copy_reference"))
    assert copied == rows, (copied, rows)
    out["ingest_rows"] = rows
    out["ingest_s"] = round(ingest_s, 2)
    out["rows_per_s"] = round(rows / ingest_s)
    out["reference_rows_per_s"] = round(rows / copy_s)
    out["ingest_ratio"] = round(copy_s / ingest_s, 3)
    _say(
        f"ingest path: {rows:,} rows in {ingest_s:.1f} s ({out['rows_per_s']:,}/s); plain COPY "
        f"{copy_s:.1f} s ({out['reference_rows_per_s']:,}/s); ratio {out['ingest_ratio']}"
    )


#: The simulator's fault-free formulas (``connectors.simulator.kpis.kpi_values``) in SQL, simplified: each
#: period's daily-profile load (``daily_profile``, computed in Python) times the cell's own parameters,
#: with one uniform draw per sample for the noise. The history is generated in the database.
_HISTORY = """
INSERT INTO kpi_samples (source, entity_type, entity_id, kpi, period_start, value)
SELECT :source, 'cell', c.cell_id, k.kpi, p.t,
  CASE k.kpi
    WHEN 'traffic_gb' THEN c.traffic_scale * p.prof * (0.85 + 0.3 * random())
    WHEN 'prb_utilisation_pct' THEN least(8 + 75 * least(p.prof * c.load, 1.2) + 6 * (random() - 0.5), 100)
    WHEN 'call_setup_success_pct' THEN 99.6 - 1.2 * 0.5 * (c.load ^ 2 + p.prof ^ 2) - 0.3 * random()
    WHEN 'drop_call_rate_pct' THEN 0.25 + 0.3 * (c.load ^ 2 + p.prof ^ 2) + 0.1 * random()
    WHEN 'latency_ms' THEN c.base_latency + 15 * (c.load ^ 2 + p.prof ^ 2) + 4 * random()
    WHEN 'dl_throughput_mbps' THEN c.peak * (1 - 0.65 * least(p.prof * c.load, 1)) * (0.9 + 0.2 * random())
    WHEN 'availability_pct' THEN 100.0
    ELSE 0.05 + 0.15 * (c.load ^ 2 + p.prof ^ 2) + 0.04 * random()
  END
FROM scale_periods AS p
CROSS JOIN scale_cells AS c
CROSS JOIN (VALUES ('traffic_gb'), ('prb_utilisation_pct'), ('call_setup_success_pct'),
  ('drop_call_rate_pct'), ('latency_ms'), ('dl_throughput_mbps'), ('availability_pct'),
  ('packet_loss_pct')) AS k(kpi)
WHERE p.t >= :lo AND p.t < :hi
"""


def bulk(store: Store, w: World, lo: datetime, hi: datetime) -> float:
    """The history the ingest slice did not cover: generated in the database a day per statement, into
    the table without its indexes (built once after)."""
    t0 = time.perf_counter()
    cells = pd.DataFrame(
        {
            "cell_id": w.cell_ids.to_numpy(),
            "load": w.cell_load,
            "peak": np.where(w.cell_5g, 320.0, 55.0),
            "base_latency": np.where(w.cell_5g, 14.0, 32.0),
            "traffic_scale": (w.cell_subs + 5) / 96,
        }
    )
    times = pd.date_range(lo, hi, freq="15min", inclusive="left")
    secs = (times - pd.Timestamp(0)).total_seconds().to_numpy()
    hour = (secs % 86400) / 3600.0 + 7.5 / 60
    weekend = ((secs // 86400) + 3) % 7 >= 5
    periods = pd.DataFrame({"t": times, "prof": daily_profile(hour, weekend)})
    with store.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS scale_cells, scale_periods"))
        cells.to_sql("scale_cells", conn, index=False)
        periods.to_sql("scale_periods", conn, index=False)
    day = lo
    with without_indexes(store):
        while day < hi:
            end = min(day + timedelta(days=1), hi)
            with store.begin() as conn:
                conn.execute(text(_HISTORY), {"source": _data.SOURCE, "lo": day, "hi": end})
            day = end
            _say(f"  history through {day:%Y-%m-%d %H:%M} ({time.perf_counter() - t0:.0f} s)")
        _say(f"  building the indexes ({time.perf_counter() - t0:.0f} s)")
    with store.begin() as conn:
        conn.execute(text("DROP TABLE scale_cells, scale_periods"))
    return time.perf_counter() - t0


# --- tickets and churn --------------------------------------------------------------------------------


def flows(store: Store, w: World, lo: datetime, hi: datetime, rng: np.random.Generator) -> dict[str, int]:
    """Tickets (a line in 300 a day) and churn events (one in 3,000) over [lo, hi), through ingest."""
    days = (hi - lo) / timedelta(days=1)
    span = (hi - lo).total_seconds()
    n_t = int(days * w.n_subscribers / 300)
    n_c = min(int(days * w.n_subscribers / 3000), w.n_subscribers)
    created = pd.Timestamp(lo) + pd.to_timedelta(np.sort(rng.uniform(0, span, n_t)).round(), unit="s")
    who = rng.integers(0, w.n_subscribers, n_t)
    tickets = pd.DataFrame(
        {
            "id": [f"BT-{i:08d}" for i in range(n_t)],
            "subscriber_id": w.sub_ids.to_numpy()[who],
            "status": "new",
            "channel": "phone",
            "sentiment": np.round(rng.uniform(-1, 1, n_t), 3),
            "created_at": created,
            "updated_at": created,
        }
    )
    gone = rng.choice(w.n_subscribers, n_c, replace=False)
    when = pd.Timestamp(lo) + pd.to_timedelta(np.sort(rng.uniform(0, span, n_c)).round(), unit="s")
    churn = pd.DataFrame(
        {
            "id": [f"BC-{i:08d}" for i in range(n_c)],
            "subscriber_id": w.sub_ids.to_numpy()[gone],
            "occurred_at": when,
            "reason": "price",
        }
    )
    ingestor = Ingestor(store, clock=_data.Clock(hi), enrichers={})
    n = {"tickets": 0, "churn_events": 0}
    for kind, df in (("tickets", tickets), ("churn_events", churn)):
        for i in range(0, len(df), 100_000):
            counts = ingestor.ingest(_data.SOURCE, [Batch(kind=kind, records=df.iloc[i : i + 100_000])])
            assert counts.quarantined == 0, (kind, counts)
            n[kind] += counts.upserted
    return n


# --- measurements -------------------------------------------------------------------------------------


def group_by_reference(store: Store) -> float:
    """Seconds for one plain GROUP BY of every sample to (cell, KPI, day): the least an evaluation reads."""
    k = kpi_samples.c
    day = func.date_trunc("day", k.period_start)
    stmt = select(k.entity_id, k.kpi, day.label("d"), func.avg(k.value), func.count()).group_by(
        k.entity_id, k.kpi, day
    )
    t0 = time.perf_counter()
    with store.connect() as conn:
        n = len(conn.execute(stmt).all())
    s = time.perf_counter() - t0
    _say(f"reference GROUP BY (cell, KPI, day): {n:,} groups in {s:.1f} s")
    return s


#: What the scheduler's KPI job keeps between its passes (the quarter-hour rows of its status window).
MEMO = QuarterHours()


def evaluation(store: Store, catalogue: Catalogue, now: datetime, *, full: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    ev = evaluate(store, catalogue, now=now, full=full, memo=MEMO)
    total = time.perf_counter() - t0
    steps = {f"rollups.{k}": round(v, 2) for k, v in ev.rollups.steps.items()}
    steps["rollups"] = round(ev.rollups.elapsed_s, 2)
    steps["status"] = round(ev.status.elapsed_s, 2)
    steps["anomalies"] = round(ev.anomalies.elapsed_s, 2)
    steps |= {f"anomalies.{k}": round(v, 2) for k, v in ev.anomalies.steps.items()}
    return {"s": round(total, 2), "steps": steps, "rollup_rows": ev.rollups.rows}


def disk(store: Store, schema: str) -> dict[str, float]:
    with store.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            ),
            {"s": schema},
        ).all()
        parts = conn.execute(
            text(
                "SELECT i.inhparent::regclass::text, sum(pg_total_relation_size(i.inhrelid)) "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') GROUP BY 1"
            ),
            {"s": schema},
        ).all()
    sizes = {name: float(size) for name, size in rows}
    # A partitioned table's size is its partitions' (each with its indexes); partitioned indexes
    # inherit too, and are left out so that no index is counted twice.
    for parent, size in parts:
        name = str(parent).split(".")[-1].strip('"')
        sizes[name] = sizes.get(name, 0.0) + float(size)
    mb = {k: round(v / 2**20, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]) if v >= 2**20 / 10}
    return mb


def queue(
    store: Store, catalogue: Catalogue, ds: _data.Dataset, now: datetime, repeats: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    refresh_queue(store, catalogue.scoring, now=now, currency="EUR")
    first = time.perf_counter() - t0
    changes = _data.Changes(ds, store)
    steady = []
    for i in range(1, repeats + 1):
        t = now + i * timedelta(seconds=30)
        changes.apply(t - timedelta(seconds=5))
        t0 = time.perf_counter()
        refresh_queue(store, catalogue.scoring, now=t, currency="EUR")
        steady.append(time.perf_counter() - t0)
    out = {"queue_first_s": round(first, 2), "queue_steady_s": round(statistics.median(steady), 3)}
    _say(f"queue: first refresh {first:.1f} s, steady {out['queue_steady_s']:.2f} s (median of {repeats})")
    return out


# --- the run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, store: Store, schema: str) -> dict[str, Any]:
    catalogue = load_catalogue(ROOT / "kpi_definitions.yaml")
    out: dict[str, Any] = {"subscribers": args.subscribers, "days": args.days}
    # A Monday morning: the evaluation's now is the first refresh's time.
    now = datetime(2026, 3, 2, 9, 5)
    t0 = time.perf_counter()
    ds = _data.build(store, subscribers=args.subscribers, alarms=args.alarms, now=now, say=_say)
    w = ds.world
    out["cells"] = w.n_cells
    end = ds.latest + PERIOD  # samples cover [start, end); the next period starts at end
    start = end - timedelta(days=args.days)
    # A running store's retention job makes each day's partition ahead of its samples; for a
    # backfill of past days they are made before loading (the clock here is not the wall clock).
    ensure_partitions(store.engine, KPI_SAMPLES, days_between(start - PERIOD, end + timedelta(days=2)))
    out["flows"] = flows(store, w, start, end, np.random.default_rng(3))
    out["world_build_s"] = round(time.perf_counter() - t0, 1)
    _say(f"world, customers, signals, alarms, tickets and churn through ingest in {out['world_build_s']} s")

    tail_start = ds.latest - (_data.KPI_PERIODS - 1) * PERIOD
    samples = Samples(w, tail_start)
    slice_end = min(start + timedelta(days=args.ingest_days), end)
    ingest_slice(store, samples, start, slice_end, out)
    out["bulk_history_s"] = round(bulk(store, w, slice_end, tail_start), 1)
    # The last periods of the six KPIs ``bench/_data.py`` did not write, through the ingest path.
    tail = Ingestor(store, clock=_data.Clock(end + _data.KPI_DELAY))
    for _, df in samples.batches(tail_start, end):
        assert tail.ingest(_data.SOURCE, [Batch(kind="kpi_samples", records=df)]).quarantined == 0
    with store.begin() as conn:
        conn.execute(text("ANALYZE"))
        out["kpi_samples"] = conn.execute(select(func.count()).select_from(kpi_samples)).scalar_one()
    _say(f"{out['kpi_samples']:,} samples; history generated in {out['bulk_history_s']} s")

    out["reference_group_by_s"] = round(group_by_reference(store), 2)
    t0 = time.perf_counter()
    refresh_queue(store, catalogue.scoring, now=now, currency="EUR")  # revenue at risk has a value
    _say(f"queue refresh before the evaluation: {time.perf_counter() - t0:.1f} s")

    full = evaluation(store, catalogue, now, full=True)
    out["evaluation_full_s"] = full["s"]
    out["evaluation_ratio"] = round(full["s"] / max(out["reference_group_by_s"], 1e-3), 2)
    out["evaluation_steps_s"] = full["steps"]
    out["rollup_rows"] = full["rollup_rows"]
    _say(f"full evaluation: {full['s']:.1f} s ({out['evaluation_ratio']}x the GROUP BY) {full['steps']}")

    # One new period of every cell arrives through the ingest path, then the incremental pass.
    clock = _data.Clock(end + PERIOD + _data.KPI_DELAY)
    new = samples.frame(np.array([int(pd.Timestamp(end).timestamp())]), skip=False)
    t0 = time.perf_counter()
    Ingestor(store, clock=clock).ingest(_data.SOURCE, [Batch(kind="kpi_samples", records=new)])
    out["period_ingest_s"] = round(time.perf_counter() - t0, 2)
    inc = evaluation(store, catalogue, clock.t, full=False)
    out["evaluation_incremental_s"] = inc["s"]
    out["evaluation_incremental_steps_s"] = inc["steps"]
    _say(f"new period ingested in {out['period_ingest_s']} s; incremental {inc['s']:.2f} s {inc['steps']}")

    from dashboard.linkage import refresh_linkage

    t0 = time.perf_counter()
    links = refresh_linkage(store, catalogue, now=clock.t)
    out["linkage_s"] = round(time.perf_counter() - t0, 2)
    out["links"] = links
    _say(f"link estimation: {links} links in {out['linkage_s']} s")

    out.update(queue(store, catalogue, ds, clock.t, args.repeats))
    sizes = disk(store, schema)
    out["disk_mb"] = sizes
    out["disk_mb_total"] = round(sum(sizes.values()), 1)
    _say(f"disk: {out['disk_mb_total']:,} MB")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--database-url", default=_data.PG_URL)
    p.add_argument("--ingest-days", type=float, default=1.0, help="days of samples through the ingest path")
    p.add_argument("--alarms", type=int, default=0, help="active alarms (default: one per 500 lines)")
    p.add_argument("--repeats", type=int, default=5, help="steady queue refreshes")
    p.add_argument("--keep", action="store_true", help="keep the schema (its name is printed)")
    args = p.parse_args()
    if not args.database_url.startswith("postgresql"):
        p.error("--database-url: a PostgreSQL URL")
    args.alarms = args.alarms or max(20, args.subscribers // 500)
    schema = f"bench_scale_{uuid.uuid4().hex[:10]}"
    store = Store(args.database_url, schema=schema)
    _say(f"schema {schema}")
    out: dict[str, Any] = {}
    try:
        store.upgrade()
        out = run(args, store, schema)
    finally:
        store.dispose()
        if args.keep:
            _say(f"kept schema {schema}")
        else:
            admin = create_engine(args.database_url)
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    out["samples_through_ingest"] = "the first --ingest-days and the last 3 h; the rest generated in SQL"
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
