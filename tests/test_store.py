"""The store suite, on SQLite and PostgreSQL: migrations, idempotent upserts, quarantine, run records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from connectors.base import Batch, CheckResult, Connector, ConnectorContext, Reject, RetriableError, Stream
from dashboard.ingest import Ingestor, load_state
from dashboard.store import Store
from dashboard.store.partitions import include_name
from dashboard.store.schema import (
    CANONICAL_KINDS,
    alarms,
    connector_runs,
    connector_state,
    kpi_samples,
    metadata,
    quarantine,
    tickets,
)

T0 = datetime(2026, 3, 2, 8, 0)


def _count(store: Store, table) -> int:  # type: ignore[no-untyped-def]
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _snapshot(store: Store, table) -> list[tuple]:  # type: ignore[no-untyped-def]
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def test_migrations_create_exactly_the_model(store: Store) -> None:
    with store.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, metadata)
    assert diff == [], f"schema.py and migrations disagree: {diff}"
    assert store.current_revision() is not None


def test_indexes_for_page_queries_exist(store: Store) -> None:
    insp = inspect(store.engine)
    kpi_ix = {tuple(ix["column_names"]) for ix in insp.get_indexes("kpi_samples")}
    assert ("kpi", "period_start") in kpi_ix
    alarm_ix = {tuple(ix["column_names"]) for ix in insp.get_indexes("alarms")}
    assert ("state", "raised_at") in alarm_ix


def test_sqlite_uses_wal(sqlite_store: Store) -> None:
    with sqlite_store.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one().lower() == "wal"


def _kpis(n_cells: int = 5, n_periods: int = 8) -> pd.DataFrame:
    rows = [
        {
            "entity_type": "cell",
            "entity_id": f"c{c}",
            "kpi": "latency_ms",
            "period_start": T0 + pd.Timedelta(minutes=15 * p),
            "value": 20.0 + c + p / 7,
        }
        for c in range(n_cells)
        for p in range(n_periods)
    ]
    return pd.DataFrame(rows)


def test_replayed_batch_changes_no_row(store: Store) -> None:
    ing = Ingestor(store, clock=lambda: T0 + pd.Timedelta(hours=2))
    alarm = {
        "id": "a1",
        "severity": "major",
        "state": "raised",
        "raised_at": T0,
        "changed_at": T0,
        "resource_id": "r1",
        "probable_cause": "powerProblem",
    }
    with store.begin() as conn:
        first = ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("kpi_samples", _kpis()))
        ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("alarms", [alarm]))
    assert first.upserted == 40
    before_k, before_a = _snapshot(store, kpi_samples), _snapshot(store, alarms)
    later = Ingestor(store, clock=lambda: T0 + pd.Timedelta(hours=3))
    with store.begin() as conn:
        again = later.ingest_batch(conn, connector="src", stream="s", batch=Batch("kpi_samples", _kpis()))
        again_a = later.ingest_batch(conn, connector="src", stream="s", batch=Batch("alarms", [dict(alarm)]))
    assert (again.records_in, again.upserted, again.quarantined) == (40, 0, 0)
    assert again_a.upserted == 0
    # Not one column moved, not even ingested_at.
    assert _snapshot(store, kpi_samples) == before_k
    assert _snapshot(store, alarms) == before_a


def test_changed_record_is_updated_and_counted(store: Store) -> None:
    ing = Ingestor(store, clock=lambda: T0)
    df = _kpis(2, 2)
    with store.begin() as conn:
        ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("kpi_samples", df))
    df.loc[0, "value"] = 99.5
    with store.begin() as conn:
        c = ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("kpi_samples", df))
    assert c.upserted == 1
    with store.connect() as conn:
        assert conn.execute(select(func.max(kpi_samples.c.value))).scalar_one() == 99.5


def test_malformed_records_are_quarantined_with_reason_and_counted(store: Store) -> None:
    ing = Ingestor(store, clock=lambda: T0)
    records = [
        {
            "id": "a1",
            "severity": "major",
            "state": "raised",
            "raised_at": "2026-03-02T08:00:00Z",
            "changed_at": "2026-03-02T08:00:00Z",
        },
        {
            "id": "a2",
            "severity": "apocalyptic",
            "state": "raised",
            "raised_at": "2026-03-02T08:00:00Z",
            "changed_at": "2026-03-02T08:00:00Z",
        },
        {
            "id": "a3",
            "severity": "minor",
            "state": "raised",
            "raised_at": "yesterday-ish",
            "changed_at": "2026-03-02T08:00:00Z",
        },
        {
            "severity": "minor",
            "state": "raised",
            "raised_at": "2026-03-02T08:00:00Z",
            "changed_at": "2026-03-02T08:00:00Z",
        },
        {
            "id": "a5",
            "severity": "minor",
            "state": "raised",
            "raised_at": "2026-03-02T08:00:00Z",
            "changed_at": "2026-03-02T08:00:00Z",
            "colour": "red",
        },
    ]
    batch = Batch("alarms", records, rejects=[Reject(raw=b"{not json", reason="malformed JSON: line 1")])
    with store.begin() as conn:
        c = ing.ingest_batch(conn, connector="src", stream="alarms", batch=batch)
    assert (c.records_in, c.upserted, c.quarantined) == (6, 1, 5)
    with store.connect() as conn:
        found = list(conn.execute(select(quarantine)))
    assert len(found) == 5
    rows = {r.record_id: r for r in found if r.record_id}
    assert "apocalyptic" in rows["a2"].reason and "severity" in rows["a2"].reason
    assert "raised_at" in rows["a3"].reason and "yesterday-ish" in rows["a3"].reason
    assert "unknown field(s): colour" in rows["a5"].reason
    missing_id = [r for r in found if r.record_id is None and "id: required" in r.reason]
    assert len(missing_id) == 1
    assert '"severity": "minor"' in missing_id[0].raw  # the record as received, not a summary
    assert [r.reason for r in found if r.raw == "{not json"] == ["malformed JSON: line 1"]
    assert _count(store, alarms) == 1


def test_values_are_normalised_not_lost(store: Store) -> None:
    ing = Ingestor(store, clock=lambda: T0)
    records = [
        {
            "id": 42,
            "severity": "MAJOR",
            "state": "Raised",
            "ack_state": "UNacknowledged",
            "raised_at": "2026-03-02T10:00:00+02:00",
            "changed_at": "2026-03-02T10:00:00+02:00",
            "service_affecting": "true",
        },
        {"id": "t1", "status": "Pending", "created_at": T0, "updated_at": T0},
    ]
    with store.begin() as conn:
        ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("alarms", records[:1]))
        ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("tickets", records[1:]))
    with store.connect() as conn:
        a = conn.execute(select(alarms)).one()
        t = conn.execute(select(tickets)).one()
    assert (a.id, a.severity, a.state, a.ack_state, a.service_affecting) == (
        "42",
        "major",
        "raised",
        "unacknowledged",
        True,
    )
    assert a.raised_at == datetime(2026, 3, 2, 8, 0)  # converted to UTC
    assert t.status == "pending"  # an unknown-to-the-spec status is kept, not rejected


def test_an_older_event_never_rolls_a_record_back(store: Store) -> None:
    ing = Ingestor(store, clock=lambda: T0)
    raised = {"id": "a1", "severity": "critical", "state": "raised", "raised_at": T0, "changed_at": T0}
    cleared = {
        **raised,
        "severity": "cleared",
        "state": "cleared",
        "changed_at": T0 + pd.Timedelta(minutes=30),
        "cleared_at": T0 + pd.Timedelta(minutes=30),
    }
    with store.begin() as conn:
        # Clear and raise in one batch, out of order, plus a duplicate of the raise afterwards.
        ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("alarms", [cleared, raised]))
        ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("alarms", [raised]))
    with store.connect() as conn:
        row = conn.execute(select(alarms)).one()
    assert (row.state, row.severity) == ("cleared", "cleared")


def test_empty_and_unknown_kind_batches(store: Store) -> None:
    ing = Ingestor(store, clock=lambda: T0)
    with store.begin() as conn:
        assert ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("alarms", [])).records_in == 0
        c = ing.ingest_batch(conn, connector="src", stream="s", batch=Batch("alarmz", [{"id": "x"}]))
    assert c.quarantined == 1
    with store.connect() as conn:
        assert "unknown record kind 'alarmz'" in conn.execute(select(quarantine.c.reason)).scalar_one()


class _Scripted(Connector):
    """A connector whose streams replay scripted batches, and fail when told to."""

    type = "scripted"

    def __init__(self, batches: dict[str, list[Batch]], fail: Exception | None = None) -> None:
        super().__init__(self.Options(), ConnectorContext(name="scripted"))
        self.batches = batches
        self.fail = fail
        self.seen_state: dict[str, dict] = {}

    def streams(self) -> list[Stream]:
        return [Stream(name, kinds=("kpi_samples",), cursor_field="period_start") for name in self.batches]

    def check(self) -> CheckResult:
        return CheckResult(True, "scripted")

    def read(self, stream: Stream, state: dict) -> Iterator[Batch]:
        self.seen_state[stream.name] = state
        yield from self.batches[stream.name]
        if self.fail is not None:
            raise self.fail


def test_run_records_counts_state_and_resumes(store: Store) -> None:
    df = _kpis(3, 4)
    bad = pd.DataFrame(
        [{"entity_type": "cell", "entity_id": "c9", "kpi": "latency_ms", "period_start": T0, "value": "n/a"}]
    )
    conn_ = _Scripted(
        {
            "kpis": [
                Batch("kpi_samples", df, state={"until": "2026-03-02T09:00:00"}),
                Batch("kpi_samples", bad, state={"until": "2026-03-02T09:15:00"}),
            ]
        }
    )
    summary = Ingestor(store, clock=lambda: T0).run(conn_)
    assert (summary.status, summary.records_in, summary.upserted, summary.quarantined) == (
        "partial",
        13,
        12,
        1,
    )
    with store.connect() as conn:
        run = conn.execute(select(connector_runs)).one()
        assert (run.status, run.records_in, run.upserted, run.quarantined) == ("partial", 13, 12, 1)
        assert run.streams["kpis"]["quarantined"] == 1
        assert load_state(conn, "scripted", "kpis") == {"until": "2026-03-02T09:15:00"}
    # The next run starts from the saved state.
    again = _Scripted({"kpis": []})
    Ingestor(store, clock=lambda: T0).run(again)
    assert again.seen_state["kpis"] == {"until": "2026-03-02T09:15:00"}


def test_failed_run_keeps_committed_batches_and_records_the_error(store: Store) -> None:
    df = _kpis(2, 2)
    c = _Scripted(
        {"kpis": [Batch("kpi_samples", df, state={"until": "x1"})]},
        fail=RetriableError("HTTP 503 from source", retry_after_s=30),
    )
    summary = Ingestor(store, clock=lambda: T0).run(c)
    assert summary.status == "failed" and summary.retriable and summary.retry_after_s == 30
    assert _count(store, kpi_samples) == 4
    with store.connect() as conn:
        run = conn.execute(select(connector_runs)).one()
        assert run.error == "kpis: HTTP 503 from source" and run.retriable is True
        assert conn.execute(select(connector_state.c.state)).scalar_one() == {"until": "x1"}


def test_a_connector_bug_is_recorded_not_raised(store: Store) -> None:
    c = _Scripted({"kpis": []}, fail=ZeroDivisionError("division by zero"))
    summary = Ingestor(store, clock=lambda: T0).run(c)
    assert summary.status == "failed" and not summary.retriable
    assert "ZeroDivisionError" in (summary.error or "")


@pytest.mark.parametrize("kind", sorted(CANONICAL_KINDS))
def test_every_canonical_kind_round_trips_idempotently(kind: str, store: Store) -> None:
    """One minimal valid record of each kind is stored once, and its replay writes nothing."""
    table = CANONICAL_KINDS[kind]
    record: dict = {}
    for col in table.columns:
        if col.nullable or col.info.get("managed") or col.name == "source" or col.default is not None:
            continue
        t = col.type.python_type
        enum = col.info.get("enum")
        record[col.name] = (
            (enum[0] if enum else "x1")
            if t is str
            else (
                T0
                if t is datetime
                else T0.date()
                if t.__name__ == "date"
                else 1
                if t in (int, float)
                else True
            )
        )
    ing = Ingestor(store, clock=lambda: T0)
    with store.begin() as conn:
        first = ing.ingest_batch(conn, connector="src", stream="s", batch=Batch(kind, [record]))
        second = ing.ingest_batch(conn, connector="src", stream="s", batch=Batch(kind, [dict(record)]))
    assert (first.upserted, first.quarantined, second.upserted) == (1, 0, 0), kind
    assert _count(store, table) == 1


def test_bulk_reads_give_the_frame_a_row_by_row_read_gives(store: Store) -> None:
    """bulk_frame (COPY TO STDOUT parsed by pyarrow on PostgreSQL) returns what read_frame returns:
    text that needs quoting, an empty text apart from NULL, NaN and infinities, microseconds,
    whole numbers with a null, bound parameters with '%' and quotes, IN lists, and no rows."""
    from typing import Any

    from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, event, insert, literal

    from dashboard.store.db import bulk_frame, read_frame

    md = MetaData()
    t = Table(
        "bulk_try", md, Column("s", String), Column("i", Integer), Column("f", Float), Column("d", DateTime)
    )
    rows = [
        {"s": 'a,b "q"\nnext line', "i": 1, "f": float("nan"), "d": datetime(2024, 1, 1, 0, 15)},
        {"s": "", "i": None, "f": float("inf"), "d": None},
        {"s": None, "i": 3, "f": -float("inf"), "d": datetime(2024, 1, 1, 0, 15, 0, 123456)},
        {"s": "100% ünï \\N", "i": 4, "f": 1.0000000000000002, "d": datetime(2024, 1, 1)},
    ]
    try:
        with store.begin() as conn:
            md.create_all(conn)
            conn.execute(insert(t), rows)
        every = select(t.c.s, t.c.i, t.c.f, t.c.d).order_by(t.c.d.nulls_first(), t.c.s)
        chosen = every.where(t.c.i.in_([1, 4]) | t.c.i.is_(None), t.c.s != literal("x%'y"))
        nothing = every.where(t.c.i == 99)
        with store.connect() as conn:
            for stmt, n in ((every, 4), (chosen, 3), (nothing, 0)):
                got, want = bulk_frame(conn, stmt), read_frame(conn, stmt)
                assert len(got) == n
                pd.testing.assert_frame_equal(got, want, check_dtype=n > 0)
            seen: list[str] = []

            def one(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
                seen.append(statement)

            event.listen(store.engine, "before_cursor_execute", one)
            try:
                got = bulk_frame(conn, every)
            finally:
                event.remove(store.engine, "before_cursor_execute", one)
            assert len(seen) == 1 and "bulk_try" in seen[0]  # counted and watched as any statement
            assert got["s"].isna().sum() == 1 and (got["s"] == "").sum() == 1
            assert "100% ünï \\N" in got["s"].tolist()
    finally:
        with store.begin() as conn:
            md.drop_all(conn)
