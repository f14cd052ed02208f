"""Idempotent bulk upsert of validated rows: a replayed batch changes nothing.

A row is written only when it is new or when one of its columns differs from what is stored (and,
for tables with a ``version_column``, when it is not older than the stored row). Unchanged rows are
not touched, so their ``ingested_at`` stays put and the count of written rows is honest.

SQLite: ``executemany`` of ``INSERT .. ON CONFLICT DO UPDATE .. WHERE changed``.
PostgreSQL: ``COPY`` straight into the table when every key is new (the common case), else
``COPY`` into a temporary table, then one ``INSERT .. SELECT .. ON CONFLICT``.
Both go through the raw DBAPI connection: this is the hot path of every connector.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Boolean, Connection, Date, DateTime, Float, Integer, Table

SQLITE_CHUNK = 20_000
PG_CHUNK = 100_000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_datetimes(values: np.ndarray, date_only: bool) -> np.ndarray:
    """datetime64 -> the text SQLAlchemy's SQLite dialect stores, vectorised (no per-row strftime)."""
    nat = np.isnat(values)
    if nat.all():
        return np.full(len(values), None, dtype=object)
    if len(values) > 1 and not nat.any() and values.min() == values.max():
        # One time for every row (ingested_at): format it once.
        return np.full(len(values), _sqlite_datetimes(values[:1], date_only)[0], dtype=object)
    unit = "D" if date_only else "us"
    text: np.ndarray = np.datetime_as_string(values.astype(f"datetime64[{unit}]"), unit=unit)  # type: ignore[call-overload]
    if not date_only:
        raw = text.astype("S26")
        buf = raw.view(np.uint8).reshape(-1, 26)
        buf[:, 10] = ord(" ")  # 2026-01-01T00:00:00 -> 2026-01-01 00:00:00, as SQLAlchemy binds it
        text = raw.astype("U26")
    out = text.astype(object)
    out[nat] = None
    return out


def _column_values(table: Table, rows: pd.DataFrame, dialect: str) -> list[np.ndarray]:
    """Each column as an object array of DBAPI-ready Python values (None for null)."""
    arrays: list[np.ndarray] = []
    for name in rows.columns:
        col = table.columns[name]
        s = rows[name]
        t = col.type
        if isinstance(t, DateTime | Date):
            values = s.to_numpy(dtype="datetime64[us]")
            if dialect == "sqlite":
                arrays.append(_sqlite_datetimes(values, date_only=isinstance(t, Date)))
            else:
                objs = pd.Series(values).dt.to_pydatetime() if len(values) else np.array([], dtype=object)
                arr = np.asarray(objs, dtype=object)
                if isinstance(t, Date):
                    arr = np.array([None if v is None or pd.isna(v) else v.date() for v in arr], dtype=object)
                else:
                    arr[np.isnat(values)] = None
                arrays.append(arr)
        elif isinstance(t, Float):
            f = s.to_numpy(dtype="float64", na_value=np.nan)
            arr = f.astype(object)
            arr[np.isnan(f)] = None
            arrays.append(arr)
        elif isinstance(t, Integer | Boolean):
            # Whole numbers and flags as Python int/bool (DBAPI drivers reject numpy scalars).
            missing = s.isna().to_numpy()
            arr = np.empty(len(s), dtype=object)
            present = s[~missing]
            if len(present):
                native = present.astype("int64" if isinstance(t, Integer) else bool).tolist()
                arr[~missing] = native
            arrays.append(arr)
        else:
            arr = s.to_numpy(dtype=object, copy=True)
            arr[pd.isna(s).to_numpy()] = None
            arrays.append(arr)
    return arrays


def iter_rows(table: Table, rows: pd.DataFrame, dialect: str) -> Iterator[tuple[Any, ...]]:
    arrays = _column_values(table, rows, dialect)
    return zip(*arrays, strict=True) if arrays else iter(())


def _update_clause(table: Table, cols: list[str], excluded: str, target: str, distinct_op: str) -> str:
    key = {c.name for c in table.primary_key.columns}
    data = [c for c in cols if c not in key and c != "ingested_at"]
    has_managed = "ingested_at" in table.columns
    sets = [f"{_quote(c)} = {excluded}.{_quote(c)}" for c in data]
    if has_managed:
        sets.append(f"{_quote('ingested_at')} = {excluded}.{_quote('ingested_at')}")
    if not data:
        return "DO NOTHING"
    mine = ", ".join(f"{target}.{_quote(c)}" for c in data)
    theirs = ", ".join(f"{excluded}.{_quote(c)}" for c in data)
    changed = f"{mine} {distinct_op} {theirs}" if len(data) == 1 else f"({mine}) {distinct_op} ({theirs})"
    version = table.info.get("version_column")
    if version:
        v = _quote(version)
        changed = f"({changed}) AND {excluded}.{v} >= {target}.{v}"
    return f"DO UPDATE SET {', '.join(sets)} WHERE {changed}"


def upsert(conn: Connection, table: Table, rows: pd.DataFrame, *, now: datetime) -> int:
    """Write new and changed rows of a validated, de-duplicated frame; return how many were written."""
    if rows.empty:
        return 0
    rows = rows.copy()
    if "ingested_at" in table.columns:
        rows["ingested_at"] = pd.Timestamp(now)
        rows["ingested_at"] = rows["ingested_at"].astype("datetime64[us]")
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return _upsert_postgres(conn, table, rows)
    return _upsert_generic(conn, table, rows, dialect)


def _upsert_generic(conn: Connection, table: Table, rows: pd.DataFrame, dialect: str) -> int:
    cols = list(rows.columns)
    key = ", ".join(_quote(c.name) for c in table.primary_key.columns)
    tname = _quote(table.name)
    placeholders = ", ".join("?" for _ in cols)
    # Identifiers come from the schema and are quoted; values are bound parameters.
    sql = (
        f"INSERT INTO {tname} ({', '.join(map(_quote, cols))}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT ({key}) {_update_clause(table, cols, 'excluded', tname, 'IS NOT')}"
    )
    raw = conn.connection.dbapi_connection
    assert raw is not None
    written = 0
    cur = raw.cursor()
    try:
        for start in range(0, len(rows), SQLITE_CHUNK):
            chunk = rows.iloc[start : start + SQLITE_CHUNK]
            cur.executemany(sql, list(iter_rows(table, chunk, dialect)))
            written += max(cur.rowcount, 0)
    finally:
        cur.close()
    return written


def _csv_chunk(table: Table, rows: pd.DataFrame) -> bytes:
    """A frame as PostgreSQL CSV: every value quoted, NULL an unquoted empty field (Arrow's writer)."""
    arrays = []
    for name in rows.columns:
        t = table.columns[name].type
        s = rows[name]
        if isinstance(t, Date):
            arrays.append(pa.array(s.to_numpy(dtype="datetime64[D]"), type=pa.date32()))
        elif isinstance(t, DateTime):
            arrays.append(pa.array(s.to_numpy(dtype="datetime64[us]"), type=pa.timestamp("us")))
        elif isinstance(t, Boolean):
            arrays.append(
                pa.array([None if v is None or pd.isna(v) else bool(v) for v in s], type=pa.bool_())
            )
        elif isinstance(t, Integer):
            arrays.append(pa.array(s.astype("Int64"), type=pa.int64(), from_pandas=True))
        elif isinstance(t, Float):
            arrays.append(
                pa.array(s.to_numpy(dtype="float64", na_value=np.nan), type=pa.float64(), from_pandas=True)
            )
        else:
            arrays.append(pa.array(s, type=pa.string(), from_pandas=True))
    batch = pa.table(arrays, names=list(rows.columns))
    sink = io.BytesIO()
    pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return sink.getvalue()


def _copy_chunks(cur: Any, table_name: str, cols: str, chunks: list[bytes]) -> None:
    for data in chunks:
        with cur.copy(f"COPY {table_name} ({cols}) FROM STDIN (FORMAT csv)") as cp:
            cp.write(data)


def copy_rows(conn: Connection, table_name: str, table: Table, rows: pd.DataFrame) -> None:
    """COPY a frame into ``table_name`` (which has ``table``'s columns) through psycopg."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    chunks = [_csv_chunk(table, rows.iloc[i : i + PG_CHUNK]) for i in range(0, len(rows), PG_CHUNK)]
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        _copy_chunks(cur, table_name, ", ".join(map(_quote, rows.columns)), chunks)


#: After a batch of a table turned out to hold keys that were stored already, this many of its
#: next batches go straight to the upsert path before a direct COPY is tried again.
DIRECT_COPY_BACKOFF = 8
_skip_direct: dict[str, int] = {}


def _upsert_postgres(conn: Connection, table: Table, rows: pd.DataFrame) -> int:
    cols = list(rows.columns)
    collist = ", ".join(map(_quote, cols))
    tname = _quote(table.name)
    tmp = _quote(f"_in_{table.name}")
    raw = conn.connection.dbapi_connection
    assert raw is not None
    chunks = [_csv_chunk(table, rows.iloc[i : i + PG_CHUNK]) for i in range(0, len(rows), PG_CHUNK)]
    if _skip_direct.get(table.name, 0) > 0:
        _skip_direct[table.name] -= 1
    else:
        # New rows are the common case (the next KPI periods, new alarms): COPY them straight into
        # the table, one write instead of two. If any key is stored already the COPY fails as a
        # whole, is undone to the savepoint, and the batch takes the upsert path below.
        with raw.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("SAVEPOINT vt_direct_copy")
            try:
                _copy_chunks(cur, tname, collist, chunks)
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT vt_direct_copy")
                _skip_direct[table.name] = DIRECT_COPY_BACKOFF
            else:
                cur.execute("RELEASE SAVEPOINT vt_direct_copy")
                return len(rows)
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {tname} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute(f"TRUNCATE {tmp}")
        _copy_chunks(cur, tmp, collist, chunks)
    key = ", ".join(_quote(c.name) for c in table.primary_key.columns)
    # Identifiers come from the schema and are quoted; no values in the text.
    sql = (
        f"INSERT INTO {tname} AS t ({collist}) SELECT {collist} FROM {tmp} ORDER BY {key} "  # noqa: S608
        f"ON CONFLICT ({key}) {_update_clause(table, cols, 'excluded', 't', 'IS DISTINCT FROM')}"
    )
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(sql)
        written = max(int(cur.rowcount), 0)
        cur.execute(f"TRUNCATE {tmp}")
    return written
