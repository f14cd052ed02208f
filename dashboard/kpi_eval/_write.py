"""Bulk writes of the evaluation's own tables (statuses, baselines, verdicts), given column by column.

A first pass at national scale writes millions of baseline rows (160,000 series x 192 slots); as
dictionaries through an executemany that is minutes, as one COPY stream on PostgreSQL seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
    Table,
    insert,
)
from sqlalchemy.types import TypeEngine

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
        types = [_binary_type(table.c[c].type) for c in names]
        binary = all(_binary_fits(kind, column) for kind, column in zip(types, values, strict=True))
        options = " (FORMAT BINARY)" if binary else ""
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN{options}') as copy:
            if binary:
                # Values go as PostgreSQL's own binary forms: nothing is printed here or parsed there
                # (240,000 status rows in about a fifth of the time of text).
                copy.set_types(types)
            for row in zip(*values, strict=True):
                copy.write_row(row)
        return n
    rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    for lo in range(0, n, _BATCH):
        conn.execute(insert(table), rows[lo : lo + _BATCH])
    return n


def _binary_type(kind: TypeEngine[Any]) -> str | None:
    """The PostgreSQL type a column's values are sent as in a binary COPY (None: not one of these)."""
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    for sql_type, name in _BINARY_TYPES:
        if isinstance(kind, sql_type):
            return name
    return None


#: The range of the integer types sent in binary, which would wrap a value outside it silently.
_INT_RANGE = {"int2": (-(2**15), 2**15 - 1), "int4": (-(2**31), 2**31 - 1)}


def _binary_fits(kind: str | None, column: Sequence[Any]) -> bool:
    """Whether ``column`` may go as ``kind`` in a binary COPY. Otherwise the COPY is text, where the
    server converts each value or says why it cannot: a zone-aware time bound for a column without
    zone is converted, a smallint out of range refused."""
    if kind is None:
        return False
    if kind == "timestamp":
        return not any(getattr(v, "tzinfo", None) is not None for v in column)
    if kind in _INT_RANGE:
        present = [v for v in column if v is not None]
        lo, hi = _INT_RANGE[kind]
        return not present or (lo <= min(present) and max(present) <= hi)
    return True


#: Most specific first: SmallInteger and BigInteger are Integers.
_BINARY_TYPES: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (SmallInteger, "int2"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Float, "float8"),
    (Boolean, "bool"),
    (String, "text"),
)
