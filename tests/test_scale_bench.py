"""bench/scale.py's mechanics on a tiny world (PostgreSQL): the history it generates in the database,
the ingest slice beside its plain COPY, and the disk figures; not its timings."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import func, select, text

from connectors.simulator.kpis import KPIS
from connectors.simulator.world import build_world
from dashboard.store import Store
from dashboard.store.schema import kpi_samples

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.postgres


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _indexes(store: Store) -> set[str]:
    with store.connect() as conn:
        q = text(
            "SELECT indexdef FROM pg_indexes "
            "WHERE tablename = 'kpi_samples' AND schemaname = current_schema()"
        )
        return {d.split(" ON ", 1)[1] for d in conn.execute(q).scalars()}


def test_history_slice_and_disk_on_a_tiny_world(pg_store: Store) -> None:
    bench = _bench()
    w = build_world(3, 600, 50)
    day = datetime(2026, 3, 2)
    before = _indexes(pg_store)
    bench.bulk(pg_store, w, day, day + timedelta(days=1))
    assert _indexes(pg_store) == before and len(before) == 2  # dropped for the load, built again
    with pg_store.connect() as conn:
        n = conn.execute(select(func.count()).select_from(kpi_samples)).scalar_one()
        kinds = conn.execute(select(func.count(func.distinct(kpi_samples.c.kpi)))).scalar_one()
        low = conn.execute(select(func.min(kpi_samples.c.value))).scalar_one()
    assert (n, kinds) == (w.n_cells * len(KPIS) * 96, len(KPIS))
    assert low >= 0

    samples = bench.Samples(w, day + timedelta(days=2))
    out: dict[str, object] = {}
    lo = day + timedelta(days=1)
    bench.ingest_slice(pg_store, samples, lo, lo + timedelta(hours=1), out)
    assert out["ingest_rows"] == w.n_cells * len(KPIS) * 4
    assert float(out["rows_per_s"]) > 0 and float(out["reference_rows_per_s"]) > 0  # type: ignore[arg-type]
    with pg_store.connect() as conn:
        n2 = conn.execute(select(func.count()).select_from(kpi_samples)).scalar_one()
        gone = conn.execute(text("SELECT to_regclass('scale_copy_reference')")).scalar()
    assert n2 == n + out["ingest_rows"]  # the product path wrote them; the reference table is dropped
    assert gone is None
    sizes = bench.disk(pg_store, pg_store.schema)
    assert sizes["kpi_samples"] > 0
