"""The store handle: one SQLAlchemy engine (SQLite file in WAL mode by default, PostgreSQL by URL).

Nothing here connects at import time; ``Store(url)`` creates the engine lazily on first use.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from dashboard.errors import VantageError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class StoreError(VantageError):
    """The store cannot be reached or is not in the expected state."""


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for bare ``postgresql://`` URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def redact(url: str) -> str:
    """The URL with any password hidden, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL is shown by scheme only
        return url.split(":", 1)[0] + "://..."


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the web process read while the scheduler writes; NORMAL is durable at checkpoints.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


#: The longest any statement may run in the current context (None: no limit). A web request sets
#: it (settings ``web.statement_timeout_s``), so a store that holds a lock or hangs costs a page that
#: long and then a 503; jobs leave it unset, so a long roll-up is never cut. PostgreSQL only.
STATEMENT_TIMEOUT_S: ContextVar[float | None] = ContextVar("statement_timeout_s", default=None)


def _pg_statement_timeout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """On checkout, give the connection the statement timeout of the context taking it."""
    seconds = STATEMENT_TIMEOUT_S.get()
    ms = 0 if seconds is None else max(int(seconds * 1000), 1)
    if record.info.get("statement_timeout_ms") == ms:
        return
    DEADLINES.arm(dbapi_conn)
    try:
        cur = dbapi_conn.cursor()
        cur.execute(f"SET statement_timeout = {ms}")  # an integer of ours, not input
        cur.close()
        dbapi_conn.commit()  # the SET alone: a later rollback must not undo it
    finally:
        DEADLINES.disarm(dbapi_conn)
    record.info["statement_timeout_ms"] = ms


@contextmanager
def statement_limit(seconds: float) -> Iterator[None]:
    """Cap the statements run inside at ``seconds`` (or the context's own limit when shorter)."""
    current = STATEMENT_TIMEOUT_S.get()
    token = STATEMENT_TIMEOUT_S.set(seconds if current is None else min(current, seconds))
    try:
        yield
    finally:
        STATEMENT_TIMEOUT_S.reset(token)


#: Seconds a web request's statement may outlive its server-side statement timeout before the client
#: cuts its connection (below).
CLIENT_GRACE_S = 2.0
#: Seconds the pool's liveness ping of a web request's connection may take (before the grace): a
#: ping is trivial, so a stalled path is noticed sooner than a statement's limit would.
PING_LIMIT_S = 1.0


class Deadlines:
    """Client-side deadlines for the PostgreSQL statements of web requests.

    ``statement_timeout`` is enforced by the server; when the network path to it stalls (a proxy or
    a firewall that keeps the TCP connection open and passes nothing), neither the server's error
    nor TCP keepalives arrive (the nearest hop acknowledges), and libpq waits for ever. So each
    statement run with a limit is registered here with its socket; a watchdog thread shuts down the
    socket of one still running ``CLIENT_GRACE_S`` after its limit. The waiting request then fails
    at once as a lost connection (a 503 for the API), the pool discards the connection, and jobs,
    which run without a limit, are never cut.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, int, float]] = {}
        self._thread: threading.Thread | None = None
        #: Connections cut so far (for health and tests).
        self.cut = 0

    def arm(self, dbapi_conn: Any, *, cap: float | None = None) -> None:
        seconds = STATEMENT_TIMEOUT_S.get()
        if seconds is None:
            return
        if cap is not None:
            seconds = min(seconds, cap)
        try:
            fd = int(dbapi_conn.fileno())
        except Exception:  # a closed or broken connection: nothing to watch
            return
        with self._lock:
            self._armed[id(dbapi_conn)] = (time.monotonic() + seconds + CLIENT_GRACE_S, fd, seconds)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="store-deadlines", daemon=True)
                self._thread.start()

    def disarm(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._armed.pop(id(dbapi_conn), None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:  # held while cutting: a statement that ends meanwhile is not cut
                for key, (deadline, fd, limit) in list(self._armed.items()):
                    if now >= deadline:
                        del self._armed[key]
                        self._cut(fd, limit)

    def _cut(self, fd: int, limit: float) -> None:
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
            self.cut += 1
            log.warning(
                "a store statement ran %.1f s, past its %.1f s limit and the server did not end it: "
                "its connection was cut",
                limit + CLIENT_GRACE_S,
                limit,
            )
        except OSError:
            pass
        finally:
            sock.close()


DEADLINES = Deadlines()


def _pg_deadlines(engine: Engine) -> None:
    """Watch every statement, and the pool's pre-ping, of ``engine`` against its deadline."""

    def before(conn: Connection, *_args: Any) -> None:
        DEADLINES.arm(conn.connection.dbapi_connection)

    def after(conn: Connection, *_args: Any) -> None:
        DEADLINES.disarm(conn.connection.dbapi_connection)

    def failed(context: Any) -> None:
        dbapi = getattr(context, "connection", None)
        if dbapi is not None and getattr(dbapi, "connection", None) is not None:
            DEADLINES.disarm(dbapi.connection.dbapi_connection)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)
    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        DEADLINES.arm(dbapi_connection, cap=PING_LIMIT_S)
        try:
            return bool(ping(dbapi_connection))
        finally:
            DEADLINES.disarm(dbapi_connection)

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


#: Advisory lock key under which migrations run on PostgreSQL, one process at a time ("vantage-m").
MIGRATION_LOCK_KEY = 0x76616E746167652D
#: Seconds a migration statement waits for a table lock before the upgrade is rolled back and
#: retried (``$VANTAGE_MIGRATION_LOCK_TIMEOUT_S``), and how many times it is tried.
MIGRATION_LOCK_TIMEOUT_S = float(os.environ.get("VANTAGE_MIGRATION_LOCK_TIMEOUT_S", "5"))
MIGRATION_ATTEMPTS = 20
#: PostgreSQL's SQLSTATE for lock_timeout expiring.
LOCK_NOT_AVAILABLE = "55P03"

#: Seconds to establish a PostgreSQL connection (libpq's connect_timeout; whole seconds, 2 at least).
CONNECT_TIMEOUT_S = 3
#: Seconds a request waits for a free pooled connection before failing (then a 503).
POOL_TIMEOUT_S = 5


class Store:
    """A database the canonical model lives in.

    ``schema`` (PostgreSQL only) puts every table in that schema via ``search_path``; tests use it
    to get a private, disposable namespace inside a shared database.
    """

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.schema = schema
        self._echo = echo
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Store({redact(self.url)!r})"

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        url = make_url(self.url)
        kwargs: dict[str, Any] = {"echo": self._echo, "future": True}
        if url.get_backend_name() == "sqlite":
            db = url.database
            if db and db != ":memory:" and not db.startswith("file:"):
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            engine = create_engine(url, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if url.get_backend_name() == "postgresql":
            # A server that refuses, or accepts and never answers, costs a request CONNECT_TIMEOUT_S
            # (then the API answers 503), not a hang; keepalives notice a peer that went away.
            connect_args: dict[str, Any] = {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            }
            if self.schema:
                connect_args["options"] = f"-csearch_path={self.schema}"
            kwargs.update(
                connect_args=connect_args,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
                pool_timeout=POOL_TIMEOUT_S,
            )
            engine = create_engine(url, **kwargs)
            event.listen(engine, "checkout", _pg_statement_timeout)
            _pg_deadlines(engine)
            return engine
        return create_engine(url, **kwargs)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside a transaction, committed on success."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def ping(self) -> bool:
        """True when the store answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def upgrade(
        self,
        revision: str = "head",
        *,
        lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S,
        attempts: int = MIGRATION_ATTEMPTS,
    ) -> None:
        """Apply Alembic migrations up to ``revision``.

        On PostgreSQL the service may be running: processes that upgrade at once (each web worker
        and scheduler applies migrations as it starts) take turns on an advisory lock, and every
        statement waits at most ``lock_timeout_s`` for a table lock. A migration that cannot get
        its lock is rolled back whole and tried again, rather than queueing behind a long read
        while every later query on that table queues behind it.
        """
        from alembic import command

        for attempt in range(1, attempts + 1):
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                        if self.schema:
                            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                        conn.execute(
                            text(f"SET LOCAL lock_timeout = '{max(int(lock_timeout_s * 1000), 1)}ms'")
                        )
                    command.upgrade(self.alembic_config(conn), revision)
                return
            except OperationalError as err:
                if getattr(err.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE or attempt == attempts:
                    raise
                log.warning(
                    "migration waited %.1f s for a table lock (attempt %d of %d): rolled back, retrying",
                    lock_timeout_s,
                    attempt,
                    attempts,
                )
                time.sleep(min(0.5 * attempt, 5.0))

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def alembic_config(self, connection: Connection | None = None) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["connection"] = connection
        return cfg

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


T = TypeVar("T")

#: Values per IN list: the bound parameters of one statement stay well under SQLite's and
#: PostgreSQL's limits, and each statement stays small enough to plan quickly.
IN_CHUNK = 5_000


def chunks(values: list[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``values`` in consecutive slices of at most ``size`` (for IN lists and bulk deletes)."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


def read_frame_in(conn: Connection, stmt: Any, column: Any, values: list[Any]) -> pd.DataFrame:
    """:func:`read_frame` of ``stmt`` restricted to ``column IN values``, one statement per chunk."""
    frames = [read_frame(conn, stmt.where(column.in_(part))) for part in chunks(values)]
    if not frames:
        return read_frame(conn, stmt.where(column.in_([])))
    return pd.concat(frames, ignore_index=True)


def read_frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    """A SELECT's rows as a DataFrame with the statement's column names, read in bulk.

    Rows come straight from the driver's cursor (building a SQLAlchemy row object per row, which
    pandas then probes attribute by attribute, costs more than the query). On SQLite, which stores
    times as text and booleans as integers, those columns are converted per column afterwards.
    """
    result = conn.execute(stmt)
    columns = list(result.keys())
    cursor = result.cursor
    rows = cursor.fetchall() if cursor is not None else []
    result.close()
    df = pd.DataFrame.from_records(rows, columns=columns)
    selected = getattr(stmt, "selected_columns", None)
    if conn.dialect.name != "sqlite" or selected is None:
        return df
    for name, col in zip(columns, selected, strict=True):
        kind = col.type
        if isinstance(kind, DateTime):
            df[name] = pd.to_datetime(df[name], format="ISO8601")
        elif isinstance(kind, Date):
            df[name] = pd.to_datetime(df[name], format="ISO8601").dt.date
        elif isinstance(kind, Boolean):
            df[name] = df[name].map(lambda v: None if v is None else bool(v)).astype(object)
        elif isinstance(kind, JSON):
            df[name] = df[name].map(lambda v: None if v is None else json.loads(v))
    return df


def _arrow_type(kind: Any) -> Any:
    if isinstance(kind, DateTime) and not kind.timezone:
        return pa.timestamp("us")
    if isinstance(kind, Float):
        return pa.float64()
    if isinstance(kind, Integer):
        return pa.int64()
    if isinstance(kind, String):
        return pa.string()
    return None


def bulk_frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    """:func:`read_frame` for reads of millions of rows.

    On PostgreSQL (psycopg) the rows leave the server as CSV through ``COPY (SELECT ...) TO STDOUT``
    and pyarrow parses them, several times faster than a Python object per value; elsewhere it is
    :func:`read_frame`. The statement's columns must be text, whole numbers, floats or times without
    a time zone (the frame is the same either way: ``str``, ``int64``, ``float64``,
    ``datetime64[us]``; an integer column with nulls comes as float, as :func:`read_frame` gives it).
    """
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return read_frame(conn, stmt)
    fields = []
    for col in stmt.selected_columns:
        kind = _arrow_type(col.type)
        if kind is None:
            raise TypeError(f"bulk_frame: column {col.name!r} ({col.type}) is not text, number or naive time")
        fields.append(pa.field(col.name, kind))
    schema = pa.schema(fields)
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    sql, params = f"COPY ({compiled}) TO STDOUT (FORMAT csv)", compiled.params
    buf = io.BytesIO()
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        # The engine's statement events, as for any statement: the client-side deadline of a web
        # request is armed, and the statement is counted.
        conn.dispatch.before_cursor_execute(conn, cur, sql, params, None, False)
        try:
            with cur.copy(sql, params) as copy:
                for block in copy:
                    buf.write(block)
        finally:
            conn.dispatch.after_cursor_execute(conn, cur, sql, params, None, False)
    if not buf.tell():
        return schema.empty_table().to_pandas()
    buf.seek(0)
    table = pa_csv.read_csv(
        buf,
        read_options=pa_csv.ReadOptions(column_names=schema.names),
        # COPY writes NULL unquoted and empty, an empty text quoted ("").
        convert_options=pa_csv.ConvertOptions(
            column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
    return table.to_pandas()
