"""SQL sources (SQLite file, PostgreSQL schema) and CSV/Parquet files, end to end into a real store."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from connectors.base import ConnectorContext, FatalError
from connectors.files import FileConnector, FileOptions, UnitConversion
from connectors.sql import SqlConnector, SqlOptions
from dashboard.ingest.runner import Ingestor, load_state
from dashboard.store import Store
from dashboard.store.schema import alarms, kpi_samples, quarantine
from tests.conftest import PG_URL, require_pg

T0 = datetime(2026, 3, 1, 9, 0)


def source_table(metadata: MetaData, schema: str | None = None) -> Table:
    return Table(
        "nms_alarms",
        metadata,
        Column("alarm_no", Integer, primary_key=True),
        Column("node", String(64)),
        Column("sev", String(16)),
        Column("cause", String(128)),
        Column("first_seen", DateTime),
        Column("last_change", DateTime),
        schema=schema,
    )


def alarm_rows(start: int, n: int, at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "alarm_no": i,
            "node": f"RTR-{i % 3}",
            "sev": ["MAJOR", "minor", "Critical"][i % 3],
            "cause": "linkDown",
            "first_seen": at,
            "last_change": at + timedelta(seconds=i),
        }
        for i in range(start, start + n)
    ]


ALARM_MAPPING = {
    "id": "'NMS-' || CAST(alarm_no AS VARCHAR(16))",
    "resource_id": "node",
    "severity": "LOWER(sev)",
    "state": "'raised'",
    "probable_cause": "cause",
    "raised_at": "first_seen",
    "changed_at": "last_change",
}


def sql_connector(**options: Any) -> SqlConnector:
    return SqlConnector(SqlOptions.model_validate(options), ConnectorContext("warehouse"))


def table_rows(store: Store, table: Table) -> list[Any]:
    with store.connect() as conn:
        return list(conn.execute(select(table)))


def run_incremental(store: Store, source_url: str, schema: str | None, **options: Any) -> None:
    """Shared scenario: initial load, new and changed rows, replay from scratch, bad rows quarantined."""
    engine = create_engine(source_url)
    md = MetaData()
    src = source_table(md, schema)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(src), alarm_rows(0, 25, T0))
    connector = sql_connector(
        kind="alarms", mapping=ALARM_MAPPING, cursor="last_change", batch_size=10, **options
    )
    ingest = Ingestor(store)
    try:
        assert connector.check().ok
        first = ingest.run(connector)
        assert first.status == "success", first.error
        assert first.records_in == 25 and first.upserted == 25
        with store.connect() as conn:
            state = load_state(conn, "warehouse", "alarms")
        assert state["cursor_type"] == "datetime"
        assert datetime.fromisoformat(state["cursor"]).replace(tzinfo=None) == T0 + timedelta(seconds=24)

        # Three new alarms, one changed (cleared later), one row that does not map (bad severity).
        with engine.begin() as conn:
            conn.execute(insert(src), alarm_rows(100, 3, T0 + timedelta(hours=1)))
            conn.execute(
                update(src)
                .where(src.c.alarm_no == 4)
                .values(sev="cleared", last_change=T0 + timedelta(hours=2))
            )
            conn.execute(
                insert(src), [{**alarm_rows(200, 1, T0 + timedelta(hours=3))[0], "sev": "apocalyptic"}]
            )
        second = ingest.run(connector)
        # Read again: the boundary row (cursor >=), 3 new, 1 changed, 1 bad.
        assert second.records_in == 6
        assert second.upserted == 4 and second.quarantined == 1
        stored = {r.id: r for r in table_rows(store, alarms)}
        assert len(stored) == 28
        assert stored["NMS-4"].severity == "cleared" and stored["NMS-2"].severity == "critical"
        assert stored["NMS-101"].resource_id == "RTR-2" and stored["NMS-101"].source == "warehouse"
        [q] = table_rows(store, quarantine)
        assert q.record_id == "NMS-200" and "severity" in q.reason and "apocalyptic" in q.reason

        # A replay from an empty state stores nothing twice.
        replay = list(connector.read(connector.streams()[0], {}))
        with store.begin() as conn:
            written = sum(
                ingest.ingest_batch(conn, connector="warehouse", stream="alarms", batch=b).upserted
                for b in replay
            )
        assert written == 0 and len(table_rows(store, alarms)) == 28
    finally:
        connector.close()
        engine.dispose()


def test_sqlite_source_incremental(store: Store, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nms.db'}"
    run_incremental(store, url, None, url=url, table="nms_alarms")


@pytest.fixture
def pg_source(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A private schema in the test PostgreSQL, its URL in $NMS_URL; dropped afterwards."""
    require_pg()
    schema = f"src_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    monkeypatch.setenv("NMS_URL", PG_URL)
    try:
        yield PG_URL, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_postgresql_source_incremental(sqlite_store: Store, pg_source: tuple[str, str]) -> None:
    url, schema = pg_source
    run_incremental(sqlite_store, url, schema, url_env="NMS_URL", table=f"{schema}.nms_alarms")


def test_query_source_with_integer_cursor(sqlite_store: Store, tmp_path: Path) -> None:
    db = tmp_path / "kpi.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE samples (seq INTEGER, cell TEXT, region TEXT, t TEXT, drops REAL)"))
        conn.execute(
            text("INSERT INTO samples VALUES (:s, :c, :r, :t, :d)"),
            [
                {
                    "s": i,
                    "c": f"C{i}",
                    "r": "north" if i % 2 else "south",
                    "t": "2026-03-01T10:00:00Z",
                    "d": i / 10,
                }
                for i in range(1, 21)
            ],
        )
    connector = sql_connector(
        url=f"sqlite:///{db}",
        query="SELECT seq, cell, t, drops FROM samples WHERE region = 'north'",
        kind="kpi_samples",
        cursor="seq",
        batch_size=4,
        mapping={"entity_id": "cell", "period_start": "t", "value": "drops * 100"},
        defaults={"entity_type": "cell", "kpi": "drop_rate_pct"},
    )
    batches = list(connector.read(connector.streams()[0], {}))
    assert [len(b.records) for b in batches] == [4, 4, 2]
    assert [b.state for b in batches][-1] == {"cursor": 19, "cursor_type": "int"}
    summary = Ingestor(sqlite_store).run(connector)
    assert summary.upserted == 10
    values = {r.entity_id: r.value for r in table_rows(sqlite_store, kpi_samples)}
    assert values["C19"] == pytest.approx(190.0) and "C2" not in values
    connector.close()
    engine.dispose()


def test_string_cursor_is_bound_not_formatted(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT, name TEXT)"))
        conn.execute(
            text("INSERT INTO t VALUES (:k, :n)"), [{"k": "O'Brien", "n": "a"}, {"k": "Zed", "n": "b"}]
        )
    connector = sql_connector(
        url=f"sqlite:///{db}", table="t", kind="regions", cursor="k", mapping={"id": "k", "name": "name"}
    )
    batches = list(connector.read(connector.streams()[0], {"cursor": "O'Brien", "cursor_type": "str"}))
    assert [r["id"] for b in batches for r in pd.DataFrame(b.records).to_dict("records")] == [
        "O'Brien",
        "Zed",
    ]
    connector.close()
    engine.dispose()


def test_secrets_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="must not contain a password"):
        SqlOptions.model_validate({"url": "postgresql://u:hunter2@db/x", "table": "t", "kind": "alarms"})
    with pytest.raises(ValueError, match="exactly one of url_env"):
        SqlOptions.model_validate({"table": "t", "kind": "alarms"})
    with pytest.raises(ValueError, match="unknown kind"):
        SqlOptions.model_validate({"url_env": "X", "table": "t", "kind": "alarmz"})
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    connector = sql_connector(url_env="WAREHOUSE_URL", table="t", kind="alarms")
    with pytest.raises(FatalError, match="WAREHOUSE_URL"):
        list(connector.read(connector.streams()[0], {}))
    # A password from the environment is used and never shown.
    monkeypatch.setenv("WAREHOUSE_PASSWORD", "hunter2")
    connector = sql_connector(
        url="postgresql://vantage@127.0.0.1:9/x", password_env="WAREHOUSE_PASSWORD", table="t", kind="alarms"
    )
    assert make_url(connector._url()).password == "hunter2"
    result = connector.check()
    assert not result.ok and "hunter2" not in result.detail


# --- files ----------------------------------------------------------------------------------


def file_connector(folder: Path, **options: Any) -> FileConnector:
    opts = {
        "path": str(folder),
        "kind": "kpi_samples",
        "mapping": {"entity_id": "cell", "kpi": "metric", "period_start": "ts", "value": "v"},
        "defaults": {"entity_type": "cell"},
        **options,
    }
    return FileConnector(FileOptions.model_validate(opts), ConnectorContext("files"))


def samples(store: Store) -> dict[tuple[str, str], float]:
    return {(r.entity_id, r.kpi): r.value for r in table_rows(store, kpi_samples)}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


def test_csv_and_parquet_with_unit_conversion(store: Store, folder: Path) -> None:
    (folder / "a.csv").write_text(
        "cell,metric,ts,v\nC1,latency_ms,2026-03-01T10:00:00Z,0.020\n"
        "C2,latency_ms,2026-03-01T10:00:00+01:00,1.5\n",
        encoding="utf-8",
    )
    pd.DataFrame(
        {
            "cell": ["C3", "C4"],
            "metric": ["latency_ms"] * 2,
            "ts": pd.to_datetime(["2026-03-01 10:00", "2026-03-01 10:15"]),
            "v": [0.25, 0.004],
        }
    ).to_parquet(folder / "b.parquet")
    connector = file_connector(folder, units={"value": {"from": "s", "to": "ms"}})
    ingest = Ingestor(store)
    summary = ingest.run(connector)
    assert summary.status == "success" and summary.upserted == 4
    assert samples(store) == pytest.approx(
        {
            ("C1", "latency_ms"): 20.0,
            ("C2", "latency_ms"): 1500.0,
            ("C3", "latency_ms"): 250.0,
            ("C4", "latency_ms"): 4.0,
        }
    )
    periods = {r.entity_id: r.period_start for r in table_rows(store, kpi_samples)}
    assert periods["C2"] == datetime(2026, 3, 1, 9, 0)  # offset converted to UTC
    # Processed once: the next run reads nothing; a replay from scratch writes nothing.
    assert ingest.run(connector).records_in == 0
    replay = list(connector.read(connector.streams()[0], {}))
    with store.begin() as conn:
        assert (
            sum(
                ingest.ingest_batch(conn, connector="files", stream="files", batch=b).upserted for b in replay
            )
            == 0
        )
    assert len(samples(store)) == 4


def test_rows_that_do_not_map_are_quarantined_with_reasons(sqlite_store: Store, folder: Path) -> None:
    (folder / "a.csv").write_text(
        "cell,metric,ts,v\nC1,thr,2026-03-01T10:00:00Z,5\nC2,thr,yesterday,6\nC3,thr,2026-03-01T10:00:00Z,lots\n"
        ",thr,2026-03-01T10:00:00Z,7\n",
        encoding="utf-8",
    )
    summary = Ingestor(sqlite_store).run(file_connector(folder, units={"value": {"factor": 8}}))
    assert summary.upserted == 1 and summary.quarantined == 3 and summary.status == "partial"
    assert samples(sqlite_store) == {("C1", "thr"): 40.0}
    reasons = sorted(q.reason for q in table_rows(sqlite_store, quarantine))
    assert any("entity_id: required" in r for r in reasons)
    assert any("period_start" in r and "yesterday" in r for r in reasons)
    assert any("value: expected a number, got 'lots'" in r for r in reasons)


def test_broken_and_unmappable_files_are_quarantined_whole(sqlite_store: Store, folder: Path) -> None:
    (folder / "a.parquet").write_bytes(b"PAR1 this is not parquet")
    (folder / "b.csv").write_text("cell,metric,when,v\nC1,thr,2026-03-01T10:00:00Z,5\n", encoding="utf-8")
    (folder / "c.csv").write_text("cell,metric,ts,v\nC9,thr,2026-03-01T10:00:00Z,5\n", encoding="utf-8")
    for i, name in enumerate(("a.parquet", "b.csv", "c.csv")):
        os.utime(folder / name, (1_700_000_000 + i, 1_700_000_000 + i))
    summary = Ingestor(sqlite_store).run(file_connector(folder))
    assert summary.quarantined == 2 and summary.upserted == 1
    assert samples(sqlite_store) == {("C9", "thr"): 5.0}
    by_file = {q.record_id: q for q in table_rows(sqlite_store, quarantine)}
    assert set(by_file) == {"a.parquet", "b.csv"}
    assert "column(s) not found: ts" in by_file["b.csv"].reason
    assert by_file["b.csv"].raw.startswith("cell,metric,when,v")


def test_large_file_in_several_batches_moves_state_at_the_end(folder: Path) -> None:
    n = 25
    pd.DataFrame(
        {
            "cell": [f"C{i}" for i in range(n)],
            "metric": ["k"] * n,
            "ts": ["2026-03-01T10:00:00Z"] * n,
            "v": range(n),
        }
    ).to_csv(folder / "big.csv", index=False)
    connector = file_connector(folder, batch_size=10)
    batches = list(connector.read(connector.streams()[0], {}))
    assert [len(b.records) for b in batches] == [10, 10, 5]
    assert [b.state is None for b in batches] == [True, True, False]


def test_unit_options_are_checked() -> None:
    assert UnitConversion.model_validate({"from": "MB", "to": "kB"}).multiplier == pytest.approx(1000)
    assert UnitConversion.model_validate({"from": "percent", "to": "ratio"}).multiplier == pytest.approx(0.01)
    with pytest.raises(ValueError, match="different dimensions"):
        UnitConversion.model_validate({"from": "s", "to": "MB"})
    with pytest.raises(ValueError, match="unknown unit"):
        UnitConversion.model_validate({"from": "fortnight", "to": "s"})
