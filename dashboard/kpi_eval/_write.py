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
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
    delete,
    exists,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.types import TypeEngine

#: Rows per executemany where COPY is not available (SQLite).
_BATCH = 5000


def insert_columns(
    conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]], *, into: str | None = None
) -> int:
    """Insert the rows whose values ``columns`` holds per column (plain Python values, equal lengths),
    in the caller's transaction: COPY on PostgreSQL with psycopg, batched executemany otherwise.
    ``into``: PostgreSQL, the name of a table of the same columns to COPY into instead."""
    names = list(columns)
    values = [columns[c] for c in names]
    n = len(values[0]) if values else 0
    if not n:
        return 0
    if _copies(conn):
        raw = cast(Any, conn.connection.driver_connection)
        cols = ", ".join(f'"{c}"' for c in names)
        types = [_binary_type(table.c[c].type) for c in names]
        binary = all(_binary_fits(kind, column) for kind, column in zip(types, values, strict=True))
        options = " (FORMAT BINARY)" if binary else ""
        target = into or table.name
        with raw.cursor() as cur, cur.copy(f'COPY "{target}" ({cols}) FROM STDIN{options}') as copy:
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


def _copies(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def replace_columns(
    conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]], *, scope: Any
) -> int:
    """Make the rows of ``table`` that ``scope`` (a condition on its columns) selects the rows of
    ``columns`` (as :func:`insert_columns` takes them; every key column given, every key inside the
    scope), in the caller's transaction.

    On PostgreSQL the rows are staged by COPY into a temporary table, then written over the stored
    rows of the same key in place (``INSERT .. ON CONFLICT DO UPDATE``: with room left on the page,
    an update that changes no indexed column adds no index entry, where a delete and an insert add
    one per index and leave the old row dead), new keys inserted and the rows of the scope not given
    deleted. Elsewhere the scope is deleted and the rows inserted.
    """
    if not _copies(conn):
        conn.execute(delete(table).where(scope))
        return insert_columns(conn, table, columns)
    staged = f"{table.name}_next"
    conn.execute(
        text(f'CREATE TEMPORARY TABLE IF NOT EXISTS "{staged}" (LIKE "{table.name}") ON COMMIT DROP')
    )
    conn.execute(text(f'TRUNCATE "{staged}"'))
    n = insert_columns(conn, table, columns, into=staged)
    key = [c.name for c in table.primary_key.columns]
    names = list(columns)
    missing = [k for k in key if k not in names]
    if missing:
        raise ValueError(f"replace_columns: key column {missing[0]!r} not given")
    quoted, keys = ", ".join(f'"{c}"' for c in names), ", ".join(f'"{k}"' for k in key)
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in names if c not in key)
    action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
    if n:
        conn.execute(
            text(
                f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{staged}" '  # noqa: S608
                f"ORDER BY {keys} ON CONFLICT ({keys}) {action}"
            )
        )
    given = table.to_metadata(MetaData(), name=staged)
    same_key = and_(*(given.c[k] == table.c[k] for k in key))
    conn.execute(delete(table).where(scope, ~exists(select(literal(1)).select_from(given).where(same_key))))
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
