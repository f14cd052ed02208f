"""Any SQLAlchemy database (``type: sql``): a table or query, mapped to one canonical kind, incrementally.

The URL comes from an environment variable (``url_env``) or from the file without a password
(``url`` + ``password_env``). The incremental cursor is a source column; the state keeps the
largest value seen and the next read asks for ``cursor >= :cursor`` through a bound parameter.
``>=`` rather than ``>``: rows that share the last cursor value but were committed after the
previous read are not lost; the rows already stored are read again and the upsert leaves them
unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from pydantic import ConfigDict, Field, field_validator, model_validator
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    column,
    create_engine,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorOptions,
    FatalError,
    JSONDict,
    RetriableError,
    Stream,
    frame_rows,
)
from connectors.canonical import check_kind

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CURSOR = "_vantage_cursor"


def _redact(url: str | URL) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return str(url).split(":", 1)[0] + "://..."


def _expr(source: str) -> ColumnElement[Any]:
    """A plain name is a (quoted) column; anything else is a SQL expression from the config file."""
    return column(source) if _IDENT.match(source) else literal_column(source)


class SqlOptions(ConnectorOptions):
    """Options of ``type: sql``."""

    #: Name of an environment variable holding the whole URL (secrets included).
    url_env: str | None = None
    #: A URL without a password; the password, if any, comes from ``password_env``.
    url: str | None = None
    password_env: str | None = None
    #: Read this table (optionally in ``schema``) ...
    table: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    #: ... or the rows of this query (no trailing semicolon; values through the cursor only).
    query: str | None = None
    #: The canonical kind the rows are.
    kind: str
    #: ``{canonical_column: source_column_or_sql_expression}``; empty reads columns by their names.
    mapping: dict[str, str] = Field(default_factory=dict)
    #: Values for canonical columns the source lacks.
    defaults: dict[str, Any] = Field(default_factory=dict)
    #: The source column (or expression) that grows with new rows: an update time or an id.
    cursor: str | None = None
    batch_size: int = Field(default=10_000, ge=1)
    #: Stream name (defaults to the kind).
    stream: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return check_kind(v)

    @model_validator(mode="after")
    def _source(self) -> SqlOptions:
        if bool(self.url_env) == bool(self.url):
            raise ValueError("give exactly one of url_env (an environment variable) or url")
        if self.url:
            try:
                parsed = make_url(self.url)
            except ArgumentError as err:
                raise ValueError(f"url is not a SQLAlchemy URL: {err}") from None
            if parsed.password:
                raise ValueError(
                    "url must not contain a password; name it in password_env "
                    "or give the whole URL in url_env"
                )
        if self.password_env and not self.url:
            raise ValueError("password_env goes with url")
        if bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of table or query")
        if self.table and not all(_IDENT.match(p) for p in self.table.split(".")):
            raise ValueError(f"table {self.table!r} is not a plain table name")
        if self.query and self.query.strip().rstrip(";") != self.query.strip():
            raise ValueError("query must not end with a semicolon (it is wrapped as a subquery)")
        return self


def _cursor_json(value: Any) -> tuple[Any, str]:
    """A cursor value and its type as JSON-friendly values."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.isoformat(), "datetime"
    if isinstance(value, date):
        return value.isoformat(), "date"
    if isinstance(value, bool):
        return int(value), "int"
    if isinstance(value, int):
        return value, "int"
    if isinstance(value, Decimal):
        return str(value), "decimal"
    if isinstance(value, float):
        return value, "float"
    return str(value), "str"


def _cursor_param(value: Any, kind: str) -> Any:
    """The bound parameter for a stored cursor, typed so each dialect compares it correctly."""
    if kind == "datetime":
        dt = datetime.fromisoformat(str(value))
        return bindparam("cursor", dt.replace(tzinfo=None) if dt.tzinfo is None else dt, type_=DateTime())
    if kind == "date":
        return bindparam("cursor", date.fromisoformat(str(value)), type_=Date())
    if kind == "int":
        return bindparam("cursor", int(value), type_=Integer())
    if kind == "decimal":
        return bindparam("cursor", Decimal(str(value)))
    if kind == "float":
        return bindparam("cursor", float(value), type_=Float())
    return bindparam("cursor", str(value), type_=String())


class SqlConnector(Connector[SqlOptions]):
    """Reads a table or query of any SQLAlchemy database into one canonical kind."""

    type = "sql"
    Options = SqlOptions

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        super().__init__(options, context)
        self._engine: Engine | None = None
        self._table: Table | None = None

    # --- plumbing ---

    def _url(self) -> URL:
        o = self.options
        if o.url_env:
            raw = os.environ.get(o.url_env)
            if not raw:
                raise FatalError(f"environment variable {o.url_env} (the database URL) is not set")
        else:
            assert o.url is not None
            raw = o.url
        try:
            url = make_url(raw)
        except ArgumentError:
            where = f" in {o.url_env}" if o.url_env else ""
            raise FatalError(f"the database URL{where} is not valid") from None
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        if o.password_env:
            password = os.environ.get(o.password_env)
            if password is None:
                raise FatalError(f"environment variable {o.password_env} (the database password) is not set")
            url = url.set(password=password)
        return url

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            url = self._url()
            try:
                self._engine = create_engine(url, pool_pre_ping=True)
            except (ArgumentError, NoSuchModuleError) as err:
                raise FatalError(f"cannot use {_redact(url)}: {err}") from None
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _translate(self, err: SQLAlchemyError) -> Exception:
        where = _redact(self.engine.url) if self._engine is not None else "the database"
        detail = str(getattr(err, "orig", None) or err).strip().splitlines()
        first = detail[0][:300] if detail else type(err).__name__
        if isinstance(err, OperationalError) or (isinstance(err, DBAPIError) and err.connection_invalidated):
            return RetriableError(f"{where}: {first}")
        return FatalError(f"{where}: {first}")

    def _source(self, conn: Connection) -> Any:
        """The table (reflected, so its column types type the values read) or the query as a subquery."""
        o = self.options
        if o.table:
            if self._table is None:
                schema, _, name = o.table.rpartition(".")
                self._table = Table(name, MetaData(), schema=o.schema_ or schema or None, autoload_with=conn)
            return self._table
        assert o.query is not None
        return text(o.query).columns().subquery("src")

    def _statement(self, conn: Connection, cursor: Any | None) -> Any:
        o = self.options
        src = self._source(conn)
        known = src.c if isinstance(src, Table) else None

        def expr(source: str) -> ColumnElement[Any]:
            if known is not None and source in known:
                column: ColumnElement[Any] = known[source]
                return column
            return _expr(source)

        cols: list[Any] = (
            [expr(v).label(k) for k, v in o.mapping.items()] if o.mapping else [literal_column("*")]
        )
        if o.cursor:
            cols.append(expr(o.cursor).label(_CURSOR))
        stmt = select(*cols).select_from(src)
        if o.cursor:
            if cursor is not None:
                stmt = stmt.where(expr(o.cursor) >= cursor)
            stmt = stmt.order_by(expr(o.cursor))
        return stmt

    # --- protocol ---

    def streams(self) -> list[Stream]:
        return [
            Stream(
                self.options.stream or self.options.kind,
                (self.options.kind,),
                cursor_field=self.options.cursor,
                description=f"{self.options.kind} from {self.options.table or 'a query'}",
            )
        ]

    def check(self) -> CheckResult:
        try:
            with self.engine.connect() as conn:
                result = conn.execute(self._statement(conn, None).limit(0))
                names = list(result.keys())
        except SQLAlchemyError as err:
            return CheckResult(False, str(self._translate(err)))
        except FatalError as err:
            return CheckResult(False, str(err))
        shown = [n for n in names if n != _CURSOR]
        return CheckResult(True, f"{_redact(self.engine.url)}: columns {', '.join(shown)}")

    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        o = self.options
        param = None
        if o.cursor and state.get("cursor") is not None:
            param = _cursor_param(state["cursor"], str(state.get("cursor_type", "str")))
        best: Any = state.get("cursor")
        best_type: str | None = state.get("cursor_type")
        try:
            with self.engine.connect() as conn:
                stmt = self._statement(conn, param)
                result = conn.execution_options(stream_results=True, yield_per=o.batch_size).execute(stmt)
                keys = list(result.keys())
                while True:
                    rows = result.fetchmany(o.batch_size)
                    if not rows:
                        break
                    df = pd.DataFrame.from_records([tuple(r) for r in rows], columns=keys)
                    source = frame_rows(df.drop(columns=[_CURSOR]) if o.cursor else df.copy(deep=False))
                    if o.cursor:
                        # From the rows as the driver typed them (pandas would make numpy scalars).
                        at = keys.index(_CURSOR)
                        last = next((r[at] for r in reversed(rows) if r[at] is not None), None)
                        if last is not None:
                            best, best_type = _cursor_json(last)
                        df = df.drop(columns=[_CURSOR])
                    for col, value in o.defaults.items():
                        df[col] = df[col].where(df[col].notna(), value) if col in df.columns else value
                    df = df.astype(object).where(df.notna(), None)
                    for col in df.columns:
                        if df[col].map(lambda v: isinstance(v, Decimal)).any():
                            df[col] = df[col].map(lambda v: float(v) if isinstance(v, Decimal) else v)
                    new_state = {"cursor": best, "cursor_type": best_type} if o.cursor else None
                    yield Batch(o.kind, df, [], state=new_state, sources=source)
        except SQLAlchemyError as err:
            raise self._translate(err) from None
