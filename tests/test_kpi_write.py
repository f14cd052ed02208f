"""The evaluation's bulk writes (dashboard/kpi_eval/_write.py): what goes in comes back, on both stores.

On PostgreSQL the rows go by binary COPY when every value has an exact binary form there, and by text
COPY otherwise, where the server converts or refuses: a zone-aware time is converted, a smallint out
of range is refused, never wrapped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import select

from dashboard.kpi_eval._write import insert_columns
from dashboard.store import Store
from dashboard.store.schema import kpi_baselines, kpi_status

T = datetime(2024, 3, 4, 10, 15)


def _rows(store: Store, table):  # type: ignore[no-untyped-def]
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def test_statuses_written_as_columns_come_back_as_they_went(store: Store) -> None:
    ids = ["C1", "tab\there", "line\nbreak", "back\\slash", "çé€ 漢", "N"]
    with store.begin() as conn:
        n = insert_columns(
            conn,
            kpi_status,
            {
                "kpi": ["availability_pct"] * len(ids),
                "level": ["cell"] * len(ids),
                "entity_id": ids,
                "status": ["ok", "warning", "critical", "no_data", "ok", "ok"],
                "value": [99.5, 1e-300, -0.0, None, 12, float("inf")],
                "period_start": [T] * len(ids),
                "since": [T - timedelta(hours=i) if i % 2 else None for i in range(len(ids))],
                "evaluated_at": [T + timedelta(minutes=5)] * len(ids),
            },
        )
    assert n == len(ids)
    got = {r[2]: r for r in _rows(store, kpi_status)}
    assert set(got) == set(ids)
    assert got["tab\there"][4] == 1e-300 and got["back\\slash"][4] is None and got["çé€ 漢"][4] == 12.0
    assert got["N"][4] == float("inf")
    assert got["tab\there"][6] == T - timedelta(hours=1) and got["C1"][6] is None
    assert all(r[5] == T and r[7] == T + timedelta(minutes=5) for r in got.values())


def test_a_zone_aware_time_is_stored_as_utc_and_an_integer_out_of_range_is_refused(store: Store) -> None:
    aware = datetime(2024, 3, 4, 12, 15, tzinfo=UTC)
    with store.begin() as conn:
        insert_columns(
            conn,
            kpi_status,
            {
                "kpi": ["latency_ms"],
                "level": ["cell"],
                "entity_id": ["C1"],
                "status": ["ok"],
                "value": [30.0],
                "period_start": [aware],
                "since": [T],
                "evaluated_at": [T],
            },
        )
    [row] = _rows(store, kpi_status)
    assert row[5].replace(tzinfo=None) == datetime(2024, 3, 4, 12, 15)
    columns = {
        "kpi": ["latency_ms"] * 2,
        "level": ["cell"] * 2,
        "entity_id": ["C1", "C2"],
        "slot": [3, 70_000],  # a smallint holds up to 32,767
        "mean": [30.0, 31.0],
        "scale": [1.0, 1.0],
        "n": [5, 6],
    }
    if store.dialect == "sqlite":
        pytest.skip("SQLite stores any integer in any integer column")
    with pytest.raises(psycopg.errors.NumericValueOutOfRange), store.begin() as conn:
        insert_columns(conn, kpi_baselines, columns)
    assert _rows(store, kpi_baselines) == []
