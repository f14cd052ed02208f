"""The connector protocol: streams, ``check()`` and ``read(stream, state)`` yielding batches.

A connector never writes to the store itself. It yields ``Batch`` objects of canonical records
(dicts or a DataFrame whose columns are a canonical table's columns) together with the cursor
state reached after that batch; the one ingest path validates, upserts, quarantines and saves the
state in the same transaction, so a run that dies half-way resumes from its last batch.
"""

from __future__ import annotations

import builtins
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar, cast, overload

import pandas as pd
from pydantic import BaseModel, ConfigDict

JSONDict = dict[str, Any]
Records: TypeAlias = Sequence[Mapping[str, Any]] | pd.DataFrame


class VantageError(Exception):
    """Base of every error Vantage raises on purpose; its message is written for the operator who reads it."""


class ConnectorError(VantageError):
    """Base of the errors a connector raises; the message is shown to operators, so no secrets."""


class RetriableError(ConnectorError):
    """A transient failure (timeout, 429, 5xx): the run fails now and the next attempt may work."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FatalError(ConnectorError):
    """A failure that retrying will not fix (bad configuration, 4xx): an operator must act."""


@dataclass(frozen=True)
class Stream:
    """One stream of a connector: its name, the canonical kinds it yields and its cursor field."""

    name: str
    kinds: tuple[str, ...]
    cursor_field: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Reject:
    """A payload the connector could not turn into a canonical record, kept for quarantine."""

    raw: Any
    reason: str
    record_id: str | None = None


@dataclass
class Batch:
    """Canonical records of one kind, plus rejects, plus the stream state after this batch."""

    kind: str
    records: Records = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    state: JSONDict | None = None
    #: The source payload each record was mapped from, in the order of ``records`` (None: the
    #: records are the payload). Ingest keeps it in quarantine when it refuses a record. Any
    #: sequence will do: ``LazySources`` builds a source payload only when it is asked for.
    sources: Sequence[Any] | None = None
    #: Deviations from the source's published schema on records that are kept (one line each:
    #: where and what), counted with the run's adjusted records and logged.
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.rejects)


@dataclass(frozen=True)
class CheckResult:
    """What ``check()`` found: whether the source is reachable and a line about what it saw."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class PushRequest:
    """An HTTP request a source pushed to one of a connector's listener endpoints."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PushResponse:
    """What to answer the source and what to ingest (``batches`` go through the one ingest path)."""

    status: int = 201
    body: Any = None
    batches: list[Batch] = field(default_factory=list)


@dataclass(frozen=True)
class PushRoute:
    """A listener endpoint, mounted by the web server at ``/push/<connector name><path>``."""

    path: str
    handler: Callable[[PushRequest], PushResponse]
    methods: tuple[str, ...] = ("POST",)
    #: The web server stops reading a body at this size and answers 413: a sender cannot make the
    #: process hold more than this in memory.
    max_body_bytes: int = 10 * 1024 * 1024


class ConnectorOptions(BaseModel):
    """Base for a connector's own options; unknown keys are an error, so typos surface."""

    model_config = ConfigDict(extra="forbid")


def utcnow() -> datetime:
    """The system clock as every part of Vantage reads it: naive UTC, as the store keeps times."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector may know of its surroundings: its configured name and the clock."""

    name: str
    #: Returns the current naive UTC time; None means the system clock (tests pass a fixed clock).
    now: Callable[[], datetime] | None = None
    #: The bearer secret the dashboard's listener routes expect from this connector's source, for
    #: connectors that register a callback with it (a TMF hub); None when not configured.
    listener_token: str | None = field(default=None, repr=False)

    def utcnow(self) -> datetime:
        return self.now() if self.now is not None else utcnow()


OptionsT = TypeVar("OptionsT", bound=ConnectorOptions)


class Connector(ABC, Generic[OptionsT]):
    """Base class for every connector, built-in or third-party.

    Subclasses name their options model twice: as ``Options`` (what configuration is validated
    with) and as the type parameter (``class FileConnector(Connector[FileOptions])``), so
    ``self.options`` is typed without a check in every connector.
    """

    #: The ``type`` used in configuration to pick this connector.
    type: ClassVar[str]
    #: The pydantic model of its ``options`` block.
    Options: ClassVar[builtins.type[ConnectorOptions]] = ConnectorOptions

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        if not isinstance(options, self.Options):
            raise TypeError(
                f"{type(self).__name__} takes {self.Options.__name__}, got {type(options).__name__}"
            )
        self.options: OptionsT = cast(OptionsT, options)
        self.context = context

    @property
    def name(self) -> str:
        return self.context.name

    @abstractmethod
    def streams(self) -> list[Stream]:
        """The streams this connector reads, in the order they should be read."""

    @abstractmethod
    def check(self) -> CheckResult:
        """Reach the source without reading data and say what was found."""

    @abstractmethod
    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        """Yield batches of canonical records newer than ``state``, each with the state after it."""

    def push_routes(self) -> list[PushRoute]:
        """Listener endpoints for sources that push (TMF hub notifications, VES); none by default."""
        return []

    def start(self) -> None:
        """Called once when the process that serves push routes or runs jobs starts (hub registration)."""

    def close(self) -> None:
        """Release what the connector holds (clients, hub registrations)."""


def read_json_document(path: str) -> dict[str, Any]:
    """A JSON object from a file named in a connector's options; ValueError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror})") from None
    except ValueError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return document


class LazySources(Sequence[Any]):
    """A batch's ``sources`` built only for the records ingest refuses: ``read(i)`` gives the source
    payload of record ``i``. For records mapped row for row (a file's rows before renaming and unit
    conversion, a query's rows as the database returned them, a PM file's measValues), so a refused
    record keeps what the source said at no cost to the records that are accepted."""

    def __init__(self, count: int, read: Callable[[int], Any]) -> None:
        self._count = count
        self._read = read

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        return self._read(index % self._count)


def frame_rows(frame: pd.DataFrame) -> LazySources:
    """The rows of ``frame`` as dicts (missing values as None), read when asked for."""

    def read(i: int) -> dict[str, Any]:
        return {str(k): (None if _missing(v) else v) for k, v in frame.iloc[i].items()}

    return LazySources(len(frame), read)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False  # a list or an array: present
