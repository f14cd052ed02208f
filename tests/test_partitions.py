"""Daily partitions of kpi_samples on PostgreSQL: the migration that converts a populated store, the
upkeep that makes partitions and moves the rows that landed in DEFAULT, and ingest through them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, insert, inspect, select, text

from connectors.base import Batch
from dashboard.ingest import Ingestor
from dashboard.store import Store
from dashboard.store.partitions import (
    KPI_SAMPLES,
    floor_day,
    include_name,
    is_partitioned,
    maintain_partitions,
    partitions,
)
from dashboard.store.schema import kpi_samples, metadata, quarantine
from tests.conftest import PG_URL, require_pg

pytestmark = pytest.mark.postgres

DAY = timedelta(days=1)
Q = timedelta(minutes=15)
#: Wall-clock now: the migration makes the partitions of today and a week ahead by the real clock.
NOW = datetime.utcnow().replace(second=0, microsecond=0)


@pytest.fixture
def bare_pg() -> Iterator[Store]:
    """A PostgreSQL store in a schema of its own, not migrated yet."""
    require_pg()
    schema = f"vt_{uuid.uuid4().hex[:12]}"
    store = Store(PG_URL, schema=schema)
    try:
        yield store
    finally:
        store.dispose()
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _rows(days: list[datetime], cells: int = 5) -> list[dict[str, object]]:
    """Samples of two KPIs on ``cells`` cells, every 15 minutes of each day in ``days``."""
    out: list[dict[str, object]] = []
    for day in days:
        for q in range(96):
            for c in range(cells):
                for kpi in ("availability_pct", "traffic_gb"):
                    out.append(
                        {
                            "source": "net",
                            "entity_type": "cell",
                            "entity_id": f"C{c}",
                            "kpi": kpi,
                            "period_start": day + q * Q,
                            "value": float(q + c),
                        }
                    )
    return out


def _all(store: Store) -> list[tuple[object, ...]]:
    with store.connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(kpi_samples).order_by(*kpi_samples.primary_key.columns))
        ]


def _in_default(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM kpi_samples_default")).scalar_one())


def test_migration_converts_a_populated_store(bare_pg: Store) -> None:
    store = bare_pg
    store.upgrade("0010")
    days = [floor_day(NOW) - 40 * DAY, floor_day(NOW) - 3 * DAY, floor_day(NOW) - 2 * DAY]
    with store.begin() as conn:
        conn.execute(insert(kpi_samples), _rows(days))
        assert not is_partitioned(conn, "kpi_samples")
    before = _all(store)
    assert len(before) == 3 * 96 * 5 * 2

    store.upgrade()

    assert _all(store) == before
    with store.connect() as conn:
        assert is_partitioned(conn, "kpi_samples")
        parts = partitions(conn, KPI_SAMPLES)
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        assert compare_metadata(context, metadata) == []
        # Each day's rows are in that day's partition, none in DEFAULT.
        per_part = dict(
            conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM kpi_samples GROUP BY 1")).all()
        )
    named = {p.name: p for p in parts}
    assert parts[-1].name == "kpi_samples_default" and parts[-1].start is None
    today = floor_day(NOW)
    for day in [*days, *(today + i * DAY for i in range(8))]:
        p = named[KPI_SAMPLES.name(day)]
        assert (p.start, p.end) == (day, day + DAY)
    assert per_part == {KPI_SAMPLES.name(d): 96 * 5 * 2 for d in days}
    assert _in_default(store) == 0
    insp = inspect(store.engine)
    assert insp.get_pk_constraint("kpi_samples")["constrained_columns"] == [
        "entity_id",
        "kpi",
        "period_start",
        "entity_type",
        "source",
    ]
    assert [ix["column_names"] for ix in insp.get_indexes("kpi_samples")] == [["kpi", "period_start"]]
    # Each partition carries the key and the index (ATTACH and PARTITION OF build them).
    with store.connect() as conn:
        ix = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = :t ORDER BY indexname"),
            {"t": KPI_SAMPLES.name(days[0])},
        ).scalars()
        defs = list(ix)
    assert len(defs) == 2 and any("UNIQUE" in d and "(entity_id, kpi, period_start" in d for d in defs)

    # And back: a plain table with the same rows.
    with store.engine.begin() as conn:
        command.downgrade(store.alembic_config(conn), "0010")
    with store.connect() as conn:
        assert not is_partitioned(conn, "kpi_samples")
    assert _all(store) == before


def test_rows_without_a_partition_land_in_default_and_are_moved_not_lost(pg_store: Store) -> None:
    store = pg_store
    old_day = floor_day(NOW) - 20 * DAY  # no partition: older than the migration made
    frame = pd.DataFrame(_rows([old_day], cells=3)).drop(columns=["source"])
    ingestor = Ingestor(store)
    counts = ingestor.ingest("net", [Batch(kind="kpi_samples", records=frame)])
    assert (counts.upserted, counts.quarantined) == (len(frame), 0)
    assert _in_default(store) == len(frame)
    before = _all(store)

    report = maintain_partitions(store.engine, KPI_SAMPLES, now=NOW, ahead_days=9, keep_from=None)

    # The stray day, and the two days beyond the week the migration made ahead.
    ahead = [KPI_SAMPLES.name(floor_day(NOW) + i * DAY) for i in (8, 9)]
    assert report.created == [KPI_SAMPLES.name(old_day), *ahead]
    assert report.moved_rows == len(frame)
    assert _in_default(store) == 0
    assert _all(store) == before
    # Re-delivered after the move: nothing written twice, a changed value is written once.
    again = ingestor.ingest("net", [Batch(kind="kpi_samples", records=frame)])
    assert again.upserted == 0
    changed = frame.copy()
    changed.loc[0, "value"] = -1.0
    assert ingestor.ingest("net", [Batch(kind="kpi_samples", records=changed)]).upserted == 1
    assert len(_all(store)) == len(frame)
    # A second pass finds nothing to do.
    second = maintain_partitions(store.engine, KPI_SAMPLES, now=NOW, ahead_days=9, keep_from=None)
    assert (second.created, second.moved_rows, second.dropped) == ([], 0, [])


def test_expired_rows_in_default_go_with_their_day_and_kept_ones_get_partitions(pg_store: Store) -> None:
    store = pg_store
    days = [floor_day(NOW) - 30 * DAY, floor_day(NOW) - 12 * DAY]
    with store.begin() as conn:
        conn.execute(insert(kpi_samples), _rows(days, cells=1))
    keep_from = floor_day(NOW) - 14 * DAY
    report = maintain_partitions(store.engine, KPI_SAMPLES, now=NOW, ahead_days=7, keep_from=keep_from)
    assert report.expired_default_rows == 96 * 2
    assert report.created == [KPI_SAMPLES.name(days[1])]
    assert report.moved_rows == 96 * 2
    with store.connect() as conn:
        lo = conn.execute(select(func.min(kpi_samples.c.period_start))).scalar_one()
    assert lo == days[1]


def test_ingest_on_the_copy_path_is_idempotent_and_quarantines_bad_rows(pg_store: Store) -> None:
    store = pg_store
    day = floor_day(NOW) - DAY
    frame = pd.DataFrame(_rows([day], cells=4)).drop(columns=["source"])
    bad = frame.iloc[:3].copy()
    bad.loc[bad.index[0], "value"] = float("nan")
    bad.loc[bad.index[1], "entity_type"] = "planet"
    bad.loc[bad.index[2], "period_start"] = NOW + 3 * DAY  # beyond the allowed clock skew
    ingestor = Ingestor(store, clock=lambda: NOW)  # one clock: a rejection's reason names it
    first = ingestor.ingest("net", [Batch(kind="kpi_samples", records=pd.concat([frame, bad]))])
    assert (first.upserted, first.quarantined) == (len(frame), 3)
    with store.connect() as conn:
        reasons = list(conn.execute(select(quarantine.c.reason)).scalars())
    assert len(reasons) == 3 and all(reasons)
    # The same batch again: nothing written, nothing duplicated, the same rejections not stored twice.
    again = ingestor.ingest("net", [Batch(kind="kpi_samples", records=pd.concat([frame, bad]))])
    assert (again.upserted, again.quarantined) == (0, 3)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(quarantine)).scalar_one() == 3
    # Half old (two of them changed), half new: the changed and the new rows are written.
    nxt = pd.DataFrame(_rows([day - DAY], cells=4)).drop(columns=["source"])
    mixed = pd.concat([frame.iloc[: len(frame) // 2], nxt.iloc[: len(nxt) // 2]], ignore_index=True)
    mixed.loc[0, "value"] += 1.0
    mixed.loc[1, "value"] += 1.0
    assert ingestor.ingest("net", [Batch(kind="kpi_samples", records=mixed)]).upserted == 2 + len(nxt) // 2
    assert len(_all(store)) == len(frame) + len(nxt) // 2
    with store.connect() as conn:
        stored = conn.execute(
            select(kpi_samples.c.value).where(
                kpi_samples.c.entity_id == mixed.loc[0, "entity_id"],
                kpi_samples.c.kpi == mixed.loc[0, "kpi"],
                kpi_samples.c.period_start == mixed.loc[0, "period_start"].to_pydatetime(),
            )
        ).scalar_one()
    assert stored == mixed.loc[0, "value"]


def test_one_upkeep_at_a_time(pg_store: Store) -> None:
    store = pg_store
    lock = "hashtext('vantage-partitions:' || to_regclass('kpi_samples')::oid::text)"
    with store.engine.connect() as other:  # another scheduler in the middle of its pass
        assert other.execute(text(f"SELECT pg_try_advisory_lock({lock})")).scalar()
        skipped = maintain_partitions(store.engine, KPI_SAMPLES, now=NOW, ahead_days=10, keep_from=None)
        assert skipped.created == [] and skipped.deferred
        other.execute(text(f"SELECT pg_advisory_unlock({lock})"))
    done = maintain_partitions(store.engine, KPI_SAMPLES, now=NOW, ahead_days=10, keep_from=None)
    assert done.created == [KPI_SAMPLES.name(floor_day(NOW) + i * DAY) for i in (8, 9, 10)]
