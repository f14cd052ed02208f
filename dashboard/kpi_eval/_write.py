"""Bulk writes of the evaluation's own tables (statuses, baselines, verdicts), given column by column.

A first pass at national scale writes millions of baseline rows (160,000 series x 192 slots); as
dictionaries through an executemany that is minutes, as one COPY stream on PostgreSQL seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, insert

#: Rows per executemany where COPY is not available (SQLite).
_BATCH = 5000


def insert_columns(conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]]) -> int:
    """Insert the rows whose values ``columns`` holds per column (plain Python values, equal lengths),
    in the caller's transaction: COPY on PostgreSQL with psycopg, batched executemany otherwise."""
    names = list(columns)
    values = [columns[c] for c in names]
    n = len(values[0]) if values else 0
    if not n:
        return 0
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        raw = cast(Any, conn.connection.driver_connection)
        cols = ", ".join(f'"{c}"' for c in names)
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as copy:
            for row in zip(*values, strict=True):
                copy.write_row(row)
        return n
    rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    for lo in range(0, n, _BATCH):
        conn.execute(insert(table), rows[lo : lo + _BATCH])
    return n
