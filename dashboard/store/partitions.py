"""Daily time partitions of the append-heavy tables on PostgreSQL: made ahead, strays moved, old ones dropped.

A partitioned table (``PARTITIONED``) is declared ``PARTITION BY RANGE`` on its time column, with a
DEFAULT partition so that no row is ever refused: a sample for a day that has no partition yet (a
late or early delivery, a store whose maintenance has not run) lands in the DEFAULT partition and
the next :func:`maintain_partitions` moves it into the day's partition as it creates it.

Every partition is made the same way, which keeps the lock on the parent light: the day's table is
created on its own, stray rows are moved into it from DEFAULT, a CHECK constraint proves its range,
and ``ATTACH PARTITION`` (SHARE UPDATE EXCLUSIVE on the parent: ingest and reads go on) adds it and
builds its indexes. Dropping an expired partition is one ``DROP TABLE`` instead of a delete of
millions of rows, and it leaves no bloat behind. Each step runs in its own transaction under a
short ``lock_timeout``, so a long read never makes ingest queue behind the maintenance; a step that
cannot get its lock is left for the next run. One process keeps a table's partitions at a time (a
session advisory lock on the table): a second scheduler's pass finds it taken and skips.

Partition names: ``<table>_p<YYYYMMDD>`` for the day starting then, ``<table>_default``.
SQLite has no partitions: its tables stay simple and retention deletes rows (retention.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
#: How long a maintenance step waits for a lock before giving up until the next run.
LOCK_TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class PartitionSpec:
    """A table partitioned by day on a timestamp column."""

    table: str
    column: str

    def default(self) -> str:
        return f"{self.table}_default"

    def name(self, day: datetime) -> str:
        return f"{self.table}_p{day:%Y%m%d}"


#: The tables partitioned on PostgreSQL (docs/data-model.md says why these and not others).
KPI_SAMPLES = PartitionSpec("kpi_samples", "period_start")
PARTITIONED: dict[str, PartitionSpec] = {KPI_SAMPLES.table: KPI_SAMPLES}


@dataclass(frozen=True)
class Partition:
    name: str
    #: [start, end) of its rows; None for the DEFAULT partition.
    start: datetime | None
    end: datetime | None


@dataclass
class PartitionReport:
    """What one maintenance pass over one table did."""

    table: str
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    #: Rows moved out of DEFAULT into the partitions made for them.
    moved_rows: int = 0
    #: Rows in DEFAULT older than the retention cutoff, deleted with the partitions of their days.
    expired_default_rows: int = 0
    #: Steps left for the next run (a lock not granted in time).
    deferred: list[str] = field(default_factory=list)


def is_partition_name(name: str | None) -> bool:
    """Whether ``name`` is a partition of a partitioned table (which the metadata does not list)."""
    if not name:
        return False
    specs = PARTITIONED.values()
    return any(name == s.default() or re.fullmatch(rf"{s.table}_p\d{{8}}", name) for s in specs)


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Alembic's ``include_name`` hook: compare the schema without the partitions of its tables."""
    return not (type_ == "table" and is_partition_name(name))


def floor_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(t: datetime) -> str:
    # Bounds are datetimes the code computed, never input; rendered as timestamp literals.
    return f"'{t:%Y-%m-%d %H:%M:%S}'"


_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def _schema_of(conn: Connection, table: str) -> str | None:
    return conn.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(:t)"
        ),
        {"t": _q(table)},
    ).scalar()


def is_partitioned(conn: Connection, table: str) -> bool:
    """Whether ``table`` (on the search path) is a partitioned table; False on SQLite."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": _q(table)}
    ).scalar()
    return kind == "p"


def partitions(conn: Connection, spec: PartitionSpec) -> list[Partition]:
    """The partitions of ``spec.table`` with their ranges, oldest first, DEFAULT last."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": _q(spec.table)},
    ).all()
    out: list[Partition] = []
    for name, bound in rows:
        m = _BOUND.search(bound or "")
        if m is None:
            out.append(Partition(str(name), None, None))
        else:
            out.append(Partition(str(name), datetime.fromisoformat(m[1]), datetime.fromisoformat(m[2])))
    return sorted(out, key=lambda p: (p.start is None, p.start or datetime.min))


def partition_ddl(spec: PartitionSpec, day: datetime, *, schema: str | None = None) -> list[str]:
    """Statements that add the partition of ``day`` (an empty one; see :func:`_add_partition`)."""
    where = f"{_q(schema)}." if schema else ""
    name, parent = where + _q(spec.name(day)), where + _q(spec.table)
    lo, hi = _literal(day), _literal(day + DAY)
    check = _q(f"{spec.name(day)}_bound")
    col = _q(spec.column)
    return [
        f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS)",
        f"ALTER TABLE {name} ADD CONSTRAINT {check} CHECK ({col} >= {lo} AND {col} < {hi})",
        f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})",
        # The partition bound now says the same; the CHECK only spared ATTACH a scan.
        f"ALTER TABLE {name} DROP CONSTRAINT {check}",
    ]


def default_ddl(spec: PartitionSpec, *, schema: str | None = None) -> str:
    where = f"{_q(schema)}." if schema else ""
    return f"CREATE TABLE {where}{_q(spec.default())} PARTITION OF {where}{_q(spec.table)} DEFAULT"


def _add_partition(conn: Connection, spec: PartitionSpec, day: datetime, schema: str | None) -> int:
    """Create and attach the partition of ``day``, moving its rows out of DEFAULT; return how many.

    DEFAULT is locked against writes from the move to the ATTACH (which checks it holds no row of
    the new range), so a row arriving meanwhile waits and then goes to the new partition. ATTACH
    scans DEFAULT anyway; it holds only strays, so the move costs about as much again.
    """
    create, check, attach, uncheck = partition_ddl(spec, day, schema=schema)
    where = f"{_q(schema)}." if schema else ""
    default = where + _q(spec.default())
    col = _q(spec.column)
    conn.execute(text(create))
    conn.execute(text(f"LOCK TABLE {default} IN SHARE ROW EXCLUSIVE MODE"))
    result = conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {default} WHERE {col} >= :lo AND {col} < :hi RETURNING *) "  # noqa: S608
            f"INSERT INTO {where}{_q(spec.name(day))} SELECT * FROM moved"
        ),
        {"lo": day, "hi": day + DAY},
    )
    conn.execute(text(check))
    conn.execute(text(attach))
    conn.execute(text(uncheck))
    return max(int(result.rowcount or 0), 0)


def _stray_days(conn: Connection, spec: PartitionSpec) -> list[datetime]:
    """The days of the rows in DEFAULT (one scan of it; it holds only strays)."""
    col = _q(spec.column)
    days = conn.execute(
        text(f"SELECT DISTINCT date_trunc('day', {col}) FROM {_q(spec.default())}")  # noqa: S608
    ).scalars()
    return sorted(d for d in days if d is not None)


def _locked(err: OperationalError) -> bool:
    return isinstance(err.orig, psycopg.errors.LockNotAvailable)


def _step(engine: Engine) -> Connection:
    """A connection in a transaction whose lock waits are short (a step of its own)."""
    conn = engine.connect()
    conn.begin()
    conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
    return conn


def maintain_partitions(
    engine: Engine,
    spec: PartitionSpec,
    *,
    now: datetime,
    ahead_days: int,
    keep_from: datetime | None,
) -> PartitionReport:
    """Make the partitions of today and ``ahead_days`` days ahead, move DEFAULT's rows into
    partitions of their days, and drop the partitions wholly before ``keep_from`` (None: keep all).

    Rows in DEFAULT before ``keep_from`` are expired like the partitions of their days: deleted.
    Nothing else is ever deleted: a stray row of a kept day always gets its partition.
    """
    report = PartitionReport(spec.table)
    with engine.connect() as guard:
        if not is_partitioned(guard, spec.table):
            return report
        # One upkeep of a table at a time, across processes (a second scheduler skips its pass).
        # The table's oid in the key: the same table name in another schema is another table.
        lock = "hashtext('vantage-partitions:' || to_regclass(:t)::oid::text)"
        key = {"t": _q(spec.table)}
        if not guard.execute(text(f"SELECT pg_try_advisory_lock({lock})"), key).scalar():
            report.deferred.append("the whole pass: another process is keeping these partitions")
            return report
        try:
            _maintain(engine, guard, spec, report, now=now, ahead_days=ahead_days, keep_from=keep_from)
        finally:
            guard.execute(text(f"SELECT pg_advisory_unlock({lock})"), key)
            guard.commit()
    return report


def _maintain(
    engine: Engine,
    conn: Connection,
    spec: PartitionSpec,
    report: PartitionReport,
    *,
    now: datetime,
    ahead_days: int,
    keep_from: datetime | None,
) -> None:
    schema = _schema_of(conn, spec.table)
    existing = partitions(conn, spec)
    strays = _stray_days(conn, spec)
    conn.commit()  # the guard holds its session lock only, no snapshot
    covered = {p.start for p in existing if p.start is not None}
    if keep_from is not None:
        keep_from = floor_day(keep_from)
        expired = [d for d in strays if d < keep_from]
        if expired:
            deleted = _delete_expired_strays(engine, spec, keep_from)
            if deleted is None:
                report.deferred.append(f"expire rows of {spec.default()}")
            else:
                report.expired_default_rows += deleted
        strays = [d for d in strays if d >= keep_from]
    today = floor_day(now)
    wanted = sorted({today + i * DAY for i in range(ahead_days + 1)} | set(strays))
    _create_days(engine, spec, [d for d in wanted if d not in covered], schema, report)
    if keep_from is not None:
        for p in existing:
            if p.end is None or p.end > keep_from:
                continue
            step = _step(engine)
            try:
                where = f"{_q(schema)}." if schema else ""
                step.execute(text(f"DROP TABLE IF EXISTS {where}{_q(p.name)}"))
                step.commit()
                report.dropped.append(p.name)
            except OperationalError as err:
                step.rollback()
                if not _locked(err):
                    raise
                report.deferred.append(f"drop {p.name}")
            finally:
                step.close()


def _create_days(
    engine: Engine,
    spec: PartitionSpec,
    days: Iterable[datetime],
    schema: str | None,
    report: PartitionReport,
) -> None:
    for day in days:
        name = spec.name(day)
        conn = _step(engine)
        try:
            report.moved_rows += _add_partition(conn, spec, day, schema)
            conn.commit()
            report.created.append(name)
        except OperationalError as err:
            conn.rollback()
            if not _locked(err):
                raise
            report.deferred.append(f"create {name}")
        finally:
            conn.close()


def ensure_partitions(engine: Engine, spec: PartitionSpec, days: Iterable[datetime]) -> PartitionReport:
    """Make the partitions of ``days`` that are missing (moving their rows out of DEFAULT): for a
    backfill of past days, before loading it, so its rows go straight to their partitions."""
    report = PartitionReport(spec.table)
    with engine.connect() as conn:
        if not is_partitioned(conn, spec.table):
            return report
        schema = _schema_of(conn, spec.table)
        covered = {p.start for p in partitions(conn, spec)}
    wanted = sorted({floor_day(d) for d in days} - covered)
    _create_days(engine, spec, wanted, schema, report)
    return report


def _delete_expired_strays(engine: Engine, spec: PartitionSpec, keep_from: datetime) -> int | None:
    """Delete DEFAULT's rows before ``keep_from``: their days expired. None when its lock was not granted."""
    conn = _step(engine)
    try:
        result = conn.execute(
            text(f"DELETE FROM {_q(spec.default())} WHERE {_q(spec.column)} < :cut"),  # noqa: S608
            {"cut": keep_from},
        )
        conn.commit()
        return max(int(result.rowcount or 0), 0)
    except OperationalError as err:
        conn.rollback()
        if not _locked(err):
            raise
        return None
    finally:
        conn.close()


def days_between(lo: datetime, hi: datetime) -> Iterable[datetime]:
    """Every day start from ``lo``'s day to ``hi``'s day, both included."""
    day = floor_day(lo)
    while day <= hi:
        yield day
        day += DAY


__all__ = [
    "KPI_SAMPLES",
    "PARTITIONED",
    "Partition",
    "PartitionReport",
    "PartitionSpec",
    "default_ddl",
    "ensure_partitions",
    "floor_day",
    "include_name",
    "is_partition_name",
    "is_partitioned",
    "maintain_partitions",
    "partition_ddl",
    "partitions",
]
