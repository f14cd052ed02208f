"""What every TM Forum Open API connector shares: options, paging, incremental cursors, hub and listeners."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd
from pydantic import Field

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorError,
    ConnectorOptions,
    FatalError,
    JSONDict,
    PushRequest,
    PushResponse,
    PushRoute,
    Reject,
    Stream,
    VantageError,
)
from connectors.http import AuthConfig, HttpClient, InvalidResponse, RetryPolicy, safe_url
from connectors.tmf.swagger import ShapeCheck, SwaggerSchema

#: How many records a listener remembers to complete partial events (per connector).
CACHE_SIZE = 50_000


class MappingError(VantageError, ValueError):
    """A payload that cannot become a canonical record; the message is the quarantine reason."""


class TmfOptions(ConnectorOptions):
    """Options every TMF connector takes."""

    #: Scheme, host and port of the API server, e.g. ``https://oss.example.com:8443``.
    base_url: str
    #: TMF Open API major version: selects the default base path (``/tmf-api/<api>/v4``).
    version: Literal[4, 5] = 4
    #: Replaces the default ``/tmf-api/<api>/v<version>`` when the server mounts the API elsewhere.
    base_path: str | None = None
    auth: AuthConfig = Field(default_factory=AuthConfig)
    timeout_s: float = Field(default=30.0, gt=0)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    page_size: int = Field(default=100, ge=1, le=10_000)
    verify_tls: bool = True
    #: An item whose cursor time is this far ahead of our clock is refused and never moves the
    #: cursor: one record dated 9999 must not make every later read ask for what comes after it.
    max_future_s: float = Field(default=3600.0, ge=0)
    #: The API's swagger (v4) or OpenAPI (v5) document, e.g. TMF642-Alarm-v4.0.0.swagger.json: every
    #: item and notification is checked against the resource's definition before it is mapped, and
    #: one whose shape it breaks is quarantined with the path and the reason (see tmf/swagger.py for
    #: the leniencies). Read when the connector is built: a file that cannot be used stops it.
    swagger_path: str | None = None


class TmfPushOptions(TmfOptions):
    """Options of TMF connectors that also receive hub notifications."""

    #: Our listener base URL as the source must call it, e.g.
    #: ``https://vantage.example.com/push/tmf-alarms``; unset means no hub registration.
    callback_url: str | None = None
    #: Optional ``query`` of the hub subscription (which events the source should send).
    hub_query: str | None = None


# --- small, forgiving readers of TMF payloads --------------------------------------------------


def required_id(item: JSONDict, what: str) -> str:
    """The item's ``id`` as text, or a MappingError naming what had no usable id."""
    found = text_id(item.get("id"))
    if found is None:
        raise MappingError(f"{what} has no usable id (got {item.get('id')!r})"[:200])
    return found


def storable_text(value: str) -> bool:
    """Whether any store keeps ``value`` as it is: no NUL, valid UTF-8 (no unpaired surrogate). An
    item whose id is not is quarantined by ingest, and its id must not reach the saved cursor."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_id(value: Any) -> str | None:
    """An id as text: strings as given, integers converted (TMF v4 swagger types ids as integer)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def ref_id(ref: Any) -> str | None:
    """The id of a TMF reference (``{"id": .., "href": ..}``), falling back to the href's last segment."""
    if isinstance(ref, dict):
        found = text_id(ref.get("id"))
        if found is not None:
            return found
        href = ref.get("href")
        if isinstance(href, str) and href.strip():
            tail = href.strip().rstrip("/").rsplit("/", 1)[-1]
            return tail.rsplit("=", 1)[-1] or None
        return None
    return text_id(ref)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def dig(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``, or None when any step is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    out = str(value).strip()
    return out or None


def parse_time(value: Any, name: str) -> datetime | None:
    """A TMF date-time as naive UTC; None when absent; ``MappingError`` when present but unreadable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise MappingError(f"{name}: expected an ISO 8601 time, got {value!r}"[:200])
    try:
        ts = pd.Timestamp(value.strip())
    except (ValueError, TypeError, OverflowError):
        raise MappingError(f"{name}: expected an ISO 8601 time, got {value!r}"[:200]) from None
    if ts is pd.NaT or pd.isna(ts):
        raise MappingError(f"{name}: expected an ISO 8601 time, got {value!r}"[:200])
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    out: datetime = ts.to_pydatetime()
    return out


def iso(dt: datetime) -> str:
    """The form TMF filters take: ``2019-07-03T03:32:52.744Z``."""
    return dt.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When a notification's event happened: ``timeOcurred`` (v4), ``timeOccurred`` (v5), ``eventTime``."""
    for key in ("timeOcurred", "timeOccurred", "eventTime"):
        found = parse_time(event.get(key), key)
        if found is not None:
            return found
    return None


def party_by_role(parties: Any, roles: list[str]) -> Mapping[str, Any] | None:
    """The first related party whose role (case-insensitive, spaces ignored) is one of ``roles``."""
    wanted = {_norm(r) for r in roles}
    for party in as_list(parties):
        if isinstance(party, dict) and _norm(party.get("role")) in wanted:
            return party
    return None


def _norm(value: Any) -> str:
    return str(value or "").strip().lower().replace(" ", "").replace("_", "").replace("-", "")


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return _norm(value) in {"true", "yes", "y", "1"}


# --- batches --------------------------------------------------------------------------------


@dataclass
class Rows:
    """Canonical records and rejects collected by kind, in the order kinds were first seen."""

    records: dict[str, list[JSONDict]] = field(default_factory=dict)
    rejects: dict[str, list[Reject]] = field(default_factory=dict)
    sources: dict[str, list[Any]] = field(default_factory=dict)
    #: Deviations from the source's schema on records that are kept, by kind.
    notes: dict[str, list[str]] = field(default_factory=dict)
    #: The source item being mapped: each record added keeps it, for quarantine.
    source: Any = None

    def note(self, kind: str, notes: list[str]) -> None:
        """Note one kept item's deviations from the source's schema (one line per item)."""
        if notes:
            self.notes.setdefault(kind, []).append("; ".join(notes))

    def add(self, kind: str, record: JSONDict) -> None:
        self.records.setdefault(kind, []).append(record)
        self.sources.setdefault(kind, []).append(self.source)
        self.rejects.setdefault(kind, [])

    def reject(self, kind: str, raw: Any, reason: str, record_id: str | None = None) -> None:
        self.records.setdefault(kind, [])
        self.rejects.setdefault(kind, []).append(Reject(raw=raw, reason=reason, record_id=record_id))

    def batches(self) -> list[Batch]:
        return [
            Batch(
                kind=k,
                records=self.records[k],
                rejects=self.rejects.get(k, []),
                sources=self.sources[k] if any(s is not None for s in self.sources.get(k, [])) else None,
                notes=self.notes.get(k, []),
            )
            for k in self.records
            if self.records[k] or self.rejects.get(k)
        ]


class _Cache:
    """The last full record per id, so a partial notification still yields a whole row."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._data: OrderedDict[str, JSONDict] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> JSONDict | None:
        with self._lock:
            found = self._data.get(key)
            return dict(found) if found is not None else None

    def put(self, key: str, record: JSONDict) -> None:
        with self._lock:
            self._data[key] = dict(record)
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


# --- the base connector ---------------------------------------------------------------------


TmfOptionsT = TypeVar("TmfOptionsT", bound=TmfOptions)
PushOptionsT = TypeVar("PushOptionsT", bound=TmfPushOptions)


class TmfConnector(Connector[TmfOptionsT]):
    """A TMF Open API source read by ``GET {base}/{resource}`` with offset/limit paging."""

    Options: ClassVar[type[ConnectorOptions]] = TmfOptions
    #: The API's path segment, e.g. ``alarmManagement``.
    api: ClassVar[str]
    #: The listed resource, e.g. ``alarm``.
    resource: ClassVar[str]
    #: The stream this connector reads and the canonical kinds it yields.
    stream: ClassVar[Stream]
    #: The TMF field an incremental read filters on (``<field>.gt=``); None reads everything each run.
    cursor_field: ClassVar[str | None] = None

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        super().__init__(options, context)
        self._client: HttpClient | None = None
        #: Injected in tests so backoff does not wait.
        self.sleep: Callable[[float], None] = time.sleep
        path = self.options.swagger_path
        self.swagger = SwaggerSchema.load(path, self.definition()) if path else None

    @classmethod
    def definition(cls) -> str:
        """The resource's definition name in the API's swagger: ``alarm`` -> ``Alarm``."""
        return cls.resource[:1].upper() + cls.resource[1:]

    def shape(self, item: JSONDict) -> ShapeCheck:
        """What the API's swagger says of ``item`` (nothing without a swagger)."""
        return self.swagger.check(item) if self.swagger is not None else ShapeCheck()

    @property
    def base_path(self) -> str:
        if self.options.base_path is not None:
            return "/" + self.options.base_path.strip("/")
        return f"/tmf-api/{self.api}/v{self.options.version}"

    def http(self) -> HttpClient:
        if self._client is None:
            o = self.options
            self._client = HttpClient(
                o.base_url.rstrip("/") + self.base_path,
                auth=o.auth,
                timeout_s=o.timeout_s,
                retry=o.retry,
                verify=o.verify_tls,
                sleep=lambda s: self.sleep(s),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def streams(self) -> list[Stream]:
        return [self.stream]

    def check(self) -> CheckResult:
        try:
            page = next(self.http().pages(self.resource, limit=1, params={"fields": "id"}), None)
        except ConnectorError as err:
            return CheckResult(False, str(err))
        where = safe_url(self.http().url(self.resource))
        seen = "no records yet" if page is None or not page.items else "records available"
        return CheckResult(True, f"{where} answered: {seen}")

    # --- mapping, per connector ---

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        """Add the canonical records of one listed item to ``rows``; return its cursor value if any."""
        raise NotImplementedError

    def finish(self, rows: Rows) -> None:
        """Called once after the last page (inventory connectors emit their edges here)."""

    # --- pull ---

    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        since = _state_time(state.get("since"))
        seen_at_since = set(state.get("ids_at_since") or [])
        params: dict[str, Any] = {}
        if self.cursor_field and since is not None:
            params[f"{self.cursor_field}.gt"] = iso(since)
        high, ids_at_high = since, set(seen_at_since)
        primary = stream.kinds[0]
        latest = self.context.utcnow() + timedelta(seconds=self.options.max_future_s)
        try:
            for page in self.http().pages(self.resource, params=params, limit=self.options.page_size):
                rows = Rows()
                for item in page.items:
                    if not isinstance(item, dict):
                        rows.reject(primary, item, f"expected a JSON object, got {type(item).__name__}")
                        continue
                    item_id = text_id(item.get("id"))
                    try:
                        cursor = self._cursor_of(item)
                    except MappingError as err:
                        rows.reject(primary, item, str(err), item_id)
                        continue
                    if cursor is not None and cursor > latest:
                        rows.reject(
                            primary,
                            item,
                            f"{self.cursor_field} {iso(cursor)} is in the future (more than "
                            f"{self.options.max_future_s:g} s ahead): refused, the cursor stays",
                            item_id,
                        )
                        continue
                    if (
                        since is not None
                        and cursor is not None
                        and (cursor < since or (cursor == since and item_id in seen_at_since))
                    ):
                        continue  # already read: the source ignored the filter or treats gt as gte
                    rows.source = item
                    shape = self.shape(item)
                    if shape.refused is not None:
                        rows.reject(primary, item, shape.refused, item_id)
                        continue
                    rows.note(primary, shape.notes)
                    try:
                        self.map_item(item, rows)
                    except MappingError as err:
                        rows.reject(primary, item, str(err), item_id)
                        continue
                    if cursor is not None and item_id is not None and storable_text(item_id):
                        if high is None or cursor > high:
                            high, ids_at_high = cursor, {item_id}
                        elif cursor == high:
                            ids_at_high.add(item_id)
                # The cursor is saved only after the whole listing: pages are not ordered by it.
                yield from rows.batches()
        except InvalidResponse as err:
            # An unreadable page is quarantined with its reason; the cursor stays, so it is read again.
            yield Batch(kind=primary, rejects=[Reject(raw=err.text, reason=str(err))])
            return
        tail = Rows()
        self.finish(tail)
        batches = tail.batches()
        new_state: JSONDict = {}
        if self.cursor_field:
            new_state = {
                "since": iso(high) if high is not None else None,
                "ids_at_since": sorted(ids_at_high)[:1000],
            }
        if batches:
            batches[-1].state = new_state
            yield from batches
        else:
            yield Batch(kind=primary, state=new_state)

    def _cursor_of(self, item: JSONDict) -> datetime | None:
        if not self.cursor_field:
            return None
        return parse_time(item.get(self.cursor_field), self.cursor_field)


class TmfPushConnector(TmfConnector[PushOptionsT]):
    """A TMF connector that also registers with the source's hub and serves listener endpoints."""

    Options: ClassVar[type[ConnectorOptions]] = TmfPushOptions
    #: Listener paths and the key of the resource inside the event payload.
    listeners: ClassVar[tuple[str, ...]]
    event_key: ClassVar[str]

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        super().__init__(options, context)
        self.hub_id: str | None = None
        self._cache = _Cache()

    def start(self) -> None:
        """Subscribe to the source's hub with our callback URL (when one is configured)."""
        o = self.options
        if not o.callback_url or self.hub_id is not None:
            return
        body: JSONDict = {"callback": with_access_token(o.callback_url, self.context.listener_token)}
        if o.hub_query:
            body["query"] = o.hub_query
        answer = self.http().json_of(self.http().post("hub", json=body))
        hub_id = text_id(answer.get("id")) if isinstance(answer, dict) else None
        if hub_id is None:
            raise FatalError(f"{safe_url(self.http().url('hub'))} registered no subscription id")
        self.hub_id = hub_id

    def close(self) -> None:
        """Remove our hub subscription, then release the client."""
        try:
            if self.hub_id is not None:
                self.http().delete(f"hub/{self.hub_id}")
                self.hub_id = None
        finally:
            super().close()

    def push_routes(self) -> list[PushRoute]:
        return [
            PushRoute(path=f"/listener/{name}", handler=self._make_handler(name)) for name in self.listeners
        ]

    def _make_handler(self, name: str) -> Callable[[PushRequest], PushResponse]:
        def handle(request: PushRequest) -> PushResponse:
            return self.handle_event(name, request.body)

        return handle

    def handle_event(self, name: str, body: bytes) -> PushResponse:
        """Turn one notification into batches; a malformed one is answered 400 and quarantined."""
        kind = self.stream.kinds[0]
        raw = body.decode("utf-8", errors="replace")
        try:
            event = json.loads(body)
        except ValueError as err:
            return _bad(kind, raw, f"{name}: body is not valid JSON ({err})")
        except RecursionError:
            return _bad(kind, raw[:65536], f"{name}: body is nested too deeply to be a notification")
        if not isinstance(event, dict):
            return _bad(kind, raw, f"{name}: expected a JSON object, got {type(event).__name__}")
        payload = event.get("event")
        item = payload.get(self.event_key) if isinstance(payload, dict) else None
        if not isinstance(item, dict):
            return _bad(kind, event, f"{name}: no event.{self.event_key} object in the notification")
        shape = self.shape(item)
        if shape.refused is not None:
            reason = f"{name}: event.{self.event_key}.{shape.refused}"
            return _bad(kind, event, reason, text_id(item.get("id")))
        rows = Rows(source=event)
        rows.note(kind, shape.notes)
        try:
            when = event_time(event)
            self.map_event(name, item, rows, when=when)
        except MappingError as err:
            return _bad(kind, event, f"{name}: {err}", text_id(item.get("id")))
        return PushResponse(status=201, body=None, batches=rows.batches())

    def map_event(self, name: str, item: JSONDict, rows: Rows, *, when: datetime | None) -> None:
        self.map_item(item, rows, when=when)

    def merged(self, key: str, record: JSONDict, version: str) -> JSONDict:
        """``record`` with the fields it lacks (None) taken from the last full record of the same id.

        An event older than that record is returned as is: the store's version column then refuses
        it, so a late or replayed notification cannot roll the record back.
        """
        cached = self._cache.get(key)
        if cached is None or _older(record, cached, version):
            return dict(record)
        return {k: (cached.get(k) if v is None else v) for k, v in record.items()}

    def remember(self, key: str, record: JSONDict, version: str) -> None:
        """Keep ``record`` as the last full record of its id unless a newer one is already known."""
        cached = self._cache.get(key)
        if cached is None or not _older(record, cached, version):
            self._cache.put(key, record)


def _older(record: JSONDict, cached: JSONDict, version: str) -> bool:
    mine, theirs = record.get(version), cached.get(version)
    return mine is not None and theirs is not None and bool(mine < theirs)


def _bad(kind: str, raw: Any, reason: str, record_id: str | None = None) -> PushResponse:
    return PushResponse(
        status=400,
        body={"code": "400", "reason": reason[:500]},
        batches=[Batch(kind=kind, rejects=[Reject(raw=raw, reason=reason, record_id=record_id)])],
    )


def _state_time(value: Any) -> datetime | None:
    try:
        return parse_time(value, "since")
    except MappingError:
        return None  # a damaged cursor means a full read, not a crash


def with_access_token(url: str, token: str | None) -> str:
    """The callback URL carrying the listener's bearer secret as RFC 6750's ``access_token`` query
    parameter: TMF hubs call back with a plain POST to the registered URL, so the URL is the one
    thing a registration can make them send."""
    if not token:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "access_token"]
    query.append(("access_token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))
