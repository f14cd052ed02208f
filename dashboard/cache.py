"""The shared cache: what every screen asks (the queue's top, the wall's panels, the KPI tiles, the
overview strip) read from the store once per change, for every web worker and every screen.

Invalidation is by versions, not timers. The writers that change a family of data bump its version
in Redis once they have committed: the incident queue job (``queue``), the KPI evaluation
(``kpis``), a connector run or a push that wrote rows (``ingest``), every connector run
(``runs``), an incident action (``queue``). A cached value's key holds the versions of the
families it was read from, so the first read after a bump misses and reads the store again, and
every later read (any worker, any screen) until the next bump is served from Redis. A time to live
is only a safety net for a writer that forgot to bump.

The cache never decides who may see what: the guard has already checked the request when a read
gets here, and only values that are the same for every role that may reach them are cached. A read
whose output depends on who asks must put the role (or what it may see) in its key ``parts``.

Without Redis (no ``cache.url``, ``cache.enabled: false``, or Redis unreachable) every read goes to
the store, as it always did: the cache is an optimisation, never a dependency. Store queries are
counted per process (a SQLAlchemy event) and, when Redis is configured, added to a shared hash, so a
benchmark can read how many queries the web workers and the scheduler sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import redis
from sqlalchemy import event
from sqlalchemy.engine import Engine

from dashboard.config import CacheConfig, Settings
from dashboard.ingest.runner import Counts, Ingestor, RunSummary
from dashboard.store.db import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The families of data a writer bumps, and who bumps them.
FAMILIES = (
    "queue",  # the incident queue was recomputed, or an incident acknowledged, assigned or noted
    "kpis",  # a KPI evaluation pass wrote roll-ups, statuses and anomaly verdicts
    "ingest",  # a connector run or a push wrote rows (alarms, topology, customers, tickets, bills)
    "runs",  # a connector run was recorded (its status feeds the sources' freshness)
    "linkage",  # the links between KPIs were measured again
    "churn",  # churn risk was scored again
    "actions",  # the playbooks' outbox was delivered
)
#: The built-in scheduler jobs (dashboard.scheduler.builtin_jobs) and the families each one bumps.
JOB_FAMILIES: dict[str, tuple[str, ...]] = {
    "incident-queue": ("queue",),
    "kpi-evaluation": ("kpis",),
    "kpi-linkage": ("linkage",),
    "analytics-retrain": ("churn",),
    "analytics-score": ("churn",),
    "playbooks-deliver": ("actions",),
    "store-retention": ("kpis",),
}
#: After Redis failed to answer, how long every read goes straight to the store before trying again.
RETRY_AFTER_S = 5.0
#: How long a worker that lost the race to fill a key waits for the winner before reading itself.
FILL_WAIT_S = 2.0
_FILL_POLL_S = 0.02
#: Seconds the socket waits for Redis: a slow cache must cost less than the store read it saves.
_SOCKET_TIMEOUT_S = 0.5


class HasStore(Protocol):
    """What :func:`bumping` and friends need of a Context: its settings and its store."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...


class Cache:
    """Versioned reads through Redis (or straight to the store when there is none)."""

    def __init__(self, client: redis.Redis | None, *, prefix: str = "vantage:", ttl_s: float = 300.0,
                 enabled: bool = True) -> None:  # fmt: skip
        """``client`` None: no Redis at all. ``enabled`` False: Redis holds the counters only."""
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.caching = enabled and client is not None
        self._down_until = 0.0
        self._lock = threading.Lock()

    # --- Redis, or not -----------------------------------------------------------------------

    def _redis(self) -> redis.Redis | None:
        if self.client is None or time.monotonic() < self._down_until:
            return None
        return self.client

    def _failed(self, err: Exception) -> None:
        with self._lock:
            first = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + RETRY_AFTER_S
        if first:
            log.warning("shared cache unreachable (%s): reading the store directly", type(err).__name__)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- versions ----------------------------------------------------------------------------

    def versions(self, families: Iterable[str] = FAMILIES) -> dict[str, str] | None:
        """The current version of each family (``"0"`` before its first bump) in one round trip;
        None when Redis cannot answer."""
        client = self._redis()
        if client is None:
            return None
        names = list(families)
        try:
            found = client.mget([self._key("v", f) for f in names])
        except redis.RedisError as err:
            self._failed(err)
            return None
        return {
            f: (v.decode() if isinstance(v, bytes) else str(v or "0"))
            for f, v in zip(names, found, strict=True)
        }

    def bump(self, *families: str) -> None:
        """Say that the data of ``families`` changed (after the change is committed)."""
        client = self._redis()
        if client is None or not families:
            return
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown cache families: {sorted(unknown)}")
        try:
            with client.pipeline(transaction=False) as pipe:
                for family in families:
                    pipe.incr(self._key("v", family))
                pipe.execute()
        except redis.RedisError as err:
            self._failed(err)

    # --- reads -------------------------------------------------------------------------------

    def read(
        self,
        name: str,
        families: Iterable[str],
        compute: Callable[[], T],
        *,
        parts: Iterable[Any] = (),
        versions: Mapping[str, str] | None = None,
        dump: Callable[[T], Any] | None = None,
        load: Callable[[Any], T] | None = None,
        ttl_s: float | None = None,
    ) -> T:
        """``compute()``'s value as of the current versions of ``families``: from Redis when this
        version was read already (by any worker), else computed once and stored.

        ``parts`` are the read's parameters (filters, limit, currency). ``versions`` is a snapshot
        from :meth:`versions` shared by the reads of one request. ``dump``/``load`` turn the value
        into JSON-able data and back (default: the value is JSON-able as it is).
        """
        if not self.caching:
            return compute()
        fams = sorted(set(families))
        snap = versions if versions is not None else self.versions(fams)
        client = self._redis()
        if snap is None or client is None:
            return compute()
        stamp = ".".join(f"{f}{snap.get(f, '0')}" for f in fams)
        digest = hashlib.blake2b(
            json.dumps(list(parts), default=str, separators=(",", ":")).encode(), digest_size=8
        ).hexdigest()
        key = self._key("c", name, digest, stamp)
        try:
            raw = client.get(key)
            if raw is None:
                raw = self._fill(client, key, compute, dump, ttl_s)
                if raw is None:
                    return compute()
        except redis.RedisError as err:
            self._failed(err)
            return compute()
        value = json.loads(raw)
        return load(value) if load is not None else value

    def _fill(
        self,
        client: redis.Redis,
        key: str,
        compute: Callable[[], T],
        dump: Callable[[T], Any] | None,
        ttl_s: float | None,
    ) -> bytes | None:
        """Compute and store ``key``'s value, once for all workers: the first to take the fill lock
        reads the store; the others wait for its value (at most FILL_WAIT_S, then read themselves)."""
        lock = key + ":fill"
        ttl_ms = int((ttl_s or self.ttl_s) * 1000)
        if not client.set(lock, b"1", nx=True, px=int(FILL_WAIT_S * 1000) * 5):
            deadline = time.monotonic() + FILL_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(_FILL_POLL_S)
                raw = client.get(key)
                if raw is not None:
                    return _text(raw).encode()
        try:
            raw = client.get(key)  # filled between our miss and our lock: read, do not fill again
            if raw is not None:
                return _text(raw).encode()
            value = compute()
            text = json.dumps(dump(value) if dump is not None else value, default=str, separators=(",", ":"))
            client.set(key, text.encode(), px=ttl_ms)
        finally:
            client.delete(lock)
        return text.encode()

    # --- store query counts ------------------------------------------------------------------

    def add_counts(self, deltas: Mapping[str, int]) -> None:
        """Add per-role store query counts to the shared hash (nothing without Redis)."""
        client = self._redis()
        deltas = {k: v for k, v in deltas.items() if v}
        if client is None or not deltas:
            return
        try:
            with client.pipeline(transaction=False) as pipe:
                for role, n in deltas.items():
                    pipe.hincrby(self._key("stats", "store_queries"), role, n)
                pipe.execute()
        except redis.RedisError as err:
            self._failed(err)
            _COUNTER.give_back(deltas)

    def query_counts(self) -> dict[str, int]:
        """Store queries sent so far, per role (web, scheduler), by every process sharing Redis."""
        client = self._redis()
        if client is None:
            return {}
        raw = client.hgetall(self._key("stats", "store_queries"))
        return {_text(k): int(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


# --- one Cache per process and settings ------------------------------------------------------

_SHARED: dict[tuple[str | None, str, float, bool], Cache] = {}
_SHARED_LOCK = threading.Lock()


def shared(config: CacheConfig) -> Cache:
    """This process's Cache for ``config`` (one Redis connection pool per URL and prefix)."""
    key = (config.url, config.prefix, config.ttl_s, config.enabled)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            client = None
            if config.url:
                client = redis.Redis.from_url(
                    config.url, socket_timeout=_SOCKET_TIMEOUT_S, socket_connect_timeout=_SOCKET_TIMEOUT_S
                )
            found = _SHARED[key] = Cache(
                client, prefix=config.prefix, ttl_s=config.ttl_s, enabled=config.enabled
            )
        return found


def of(ctx: HasStore) -> Cache:
    return shared(ctx.settings.cache)


def reset_after_fork() -> None:
    """Forget the connection pools a forked worker inherited (each process opens its own)."""
    with _SHARED_LOCK:
        _SHARED.clear()
    _COUNTER.reset()


# --- writers bump ------------------------------------------------------------------------------


def bumping(ctx: HasStore, families: Iterable[str], func: Callable[[], T]) -> Callable[[], T]:
    """``func`` that bumps ``families`` once it has returned (its writes committed), and adds the
    store queries it sent to the shared counts (role ``scheduler``)."""
    fams = tuple(families)

    def run() -> T:
        count_queries(ctx.store, "scheduler")
        try:
            return func()
        finally:
            c = of(ctx)
            c.bump(*fams)
            c.add_counts(_COUNTER.take())

    run.__name__ = getattr(func, "__name__", "job")
    run.__doc__ = func.__doc__
    return run


Jobs = dict[str, tuple[float, Callable[[], object]]]


def bumping_jobs(ctx: HasStore, jobs: Jobs) -> Jobs:
    """The scheduler's jobs, each bumping the families of :data:`JOB_FAMILIES` after it ran."""
    return {
        name: (interval, bumping(ctx, JOB_FAMILIES.get(name, ()), func))
        for name, (interval, func) in jobs.items()
    }


class BumpingIngestor(Ingestor):
    """The ingest path, bumping ``ingest`` after anything was written and ``runs`` after each run
    (a connector run, or a push: both feed the sources' freshness)."""

    def __init__(self, ctx: HasStore, **kwargs: Any) -> None:
        super().__init__(ctx.store, **kwargs)
        self.ctx = ctx

    def _bump(self, wrote: bool) -> None:
        count_queries(self.ctx.store, "scheduler")  # in a web process its engine counts as web already
        c = of(self.ctx)
        c.bump(*(("ingest", "runs") if wrote else ("runs",)))
        c.add_counts(_COUNTER.take())

    def run(self, connector: Any, *, streams: Iterable[str] | None = None) -> RunSummary:
        summary = super().run(connector, streams=streams)
        self._bump(summary.upserted > 0)
        return summary

    def ingest(self, connector: str, batches: Iterable[Any], *, stream: str = "push") -> Counts:
        counts = super().ingest(connector, batches, stream=stream)
        self._bump(counts.upserted > 0)
        return counts

    def record_failure(self, *args: Any, **kwargs: Any) -> RunSummary:
        summary = super().record_failure(*args, **kwargs)
        self._bump(False)
        return summary


# --- frames in the cache ---------------------------------------------------------------------


# --- store query counts --------------------------------------------------------------------------


class _QueryCounter:
    """Statements this process sent to the store, per role, not yet added to the shared counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._engines: dict[int, str] = {}

    def attach(self, engine: Engine, role: str) -> None:
        with self._lock:
            if id(engine) in self._engines:
                return
            self._engines[id(engine)] = role

        def counted(*_args: Any) -> None:
            with self._lock:
                self._pending[role] = self._pending.get(role, 0) + 1
                self._total[role] = self._total.get(role, 0) + 1

        event.listen(engine, "before_cursor_execute", counted)

    def take(self) -> dict[str, int]:
        with self._lock:
            out, self._pending = self._pending, {}
        return out

    def give_back(self, deltas: Mapping[str, int]) -> None:
        with self._lock:
            for role, n in deltas.items():
                self._pending[role] = self._pending.get(role, 0) + n

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._total)

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self._total.clear()


_COUNTER = _QueryCounter()


def count_queries(store: Store, role: str) -> None:
    """Count every statement ``store`` sends from now on, as ``role`` (web or scheduler)."""
    _COUNTER.attach(store.engine, role)


def flush_counts(ctx: HasStore) -> None:
    """Add the statements counted since the last flush to the shared counts."""
    of(ctx).add_counts(_COUNTER.take())


def local_counts() -> dict[str, int]:
    """Statements this process sent since it started (or forked), per role."""
    return _COUNTER.totals()


__all__ = [
    "FAMILIES",
    "JOB_FAMILIES",
    "BumpingIngestor",
    "Cache",
    "bumping",
    "bumping_jobs",
    "count_queries",
    "flush_counts",
    "local_counts",
    "of",
    "shared",
]
