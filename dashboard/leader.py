"""One leader per job family among the schedulers sharing a store; the others stand by.

Any number of `vantage scheduler` processes (and `vantage run` with its embedded scheduler) may run
on one store. Each job family (connectors, queue, kpi, ...) is led by one of them: the process that
holds the family's lock. On PostgreSQL that is a session advisory lock held on a connection of its
own, so the lock dies with the process (or with its connection) and a standby takes it at its next
try, ``scheduler.standby_retry_s`` later. On a SQLite file it is an OS file lock (``flock``) beside
the database file, with the same semantics between processes on one host. An in-memory SQLite store
is private to its process, which leads everything.

A leader checks that it still holds the lock right before each job run (the lock connection
answers and the lock is granted to it); when it does not, it steps down: that family's jobs stop,
what its jobs kept in memory is dropped, and it stands by again. The families a process leads are
written to ``scheduler_leaders`` for /healthz.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import zlib
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import insert, update
from sqlalchemy.engine import make_url

from dashboard.config import SchedulerConfig
from dashboard.store.db import Store
from dashboard.store.schema import scheduler_leaders

log = logging.getLogger(__name__)

#: The job families, in the order a process tries to take them.
CONNECTORS, QUEUE, KPI, ANALYTICS, LINKAGE, DELIVERY, MAINTENANCE = (
    "connectors",
    "queue",
    "kpi",
    "analytics",
    "linkage",
    "delivery",
    "maintenance",
)
FAMILIES = (CONNECTORS, QUEUE, KPI, ANALYTICS, LINKAGE, DELIVERY, MAINTENANCE)
#: The first key of every advisory lock of the schedulers ("VANT"); the second names the family.
LOCK_CLASS = 0x56414E54
#: Taken for the length of one round of tries, so that of schedulers started together one takes
#: every free family rather than each a few.
_ROUND = "-round-"

T = TypeVar("T")


class Locks(Protocol):
    """Where the family locks live: a PostgreSQL session, lock files, or nowhere (one process)."""

    def try_acquire(self, name: str) -> bool: ...

    def holds(self, name: str) -> bool: ...

    def release(self, name: str) -> None: ...

    def close(self) -> None: ...


def lock_key(name: str, schema: str | None = None) -> int:
    """The second key of ``name``'s advisory lock: stable across processes and releases; stores in
    different schemas of one database do not share locks."""
    return zlib.crc32(f"{schema or ''}/{name}".encode()) & 0x7FFFFFFF


class PgLocks:
    """Session advisory locks on one dedicated connection (never returned to the pool)."""

    def __init__(self, store: Store, *, keepalive_s: float) -> None:
        self.store = store
        self.keepalive_s = keepalive_s
        self._conn: Any = None
        self._mutex = threading.Lock()

    def _connection(self) -> Any:
        if self._conn is None:
            raw = self.store.engine.raw_connection()
            conn: Any = raw.driver_connection
            raw.detach()  # the lock must not go back to the pool with a connection someone else reuses
            conn.rollback()
            conn.autocommit = True
            idle = int(self.keepalive_s)
            with conn.cursor() as cur:
                # The server drops this connection about 2 x keepalive_s after its host went silent,
                # which frees the locks for a standby; no statement may time out on it.
                cur.execute(f"SET tcp_keepalives_idle = {idle}")
                cur.execute(f"SET tcp_keepalives_interval = {max(idle // 3, 1)}")
                cur.execute("SET tcp_keepalives_count = 3")
                cur.execute("SET statement_timeout = 0")
            self._conn = conn
        return self._conn

    def _key(self, name: str) -> tuple[int, int]:
        return LOCK_CLASS, lock_key(name, self.store.schema)

    def _scalar(self, sql: str, name: str) -> Any:
        with self._mutex:
            try:
                with self._connection().cursor() as cur:
                    cur.execute(sql, self._key(name))
                    row = cur.fetchone()
                return None if row is None else row[0]
            except Exception as err:
                # A lost connection has lost every lock it held: forget it, reconnect next time.
                log.warning("leader: the lock connection failed: %s: %s", type(err).__name__, err)
                self._drop()
                return None

    def try_acquire(self, name: str) -> bool:
        return bool(self._scalar("SELECT pg_try_advisory_lock(%s, %s)", name))

    def holds(self, name: str) -> bool:
        return bool(
            self._scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                " AND pid = pg_backend_pid() AND granted AND objsubid = 2"
                " AND classid::bigint = %s AND objid::bigint = %s)",
                name,
            )
        )

    def release(self, name: str) -> None:
        self._scalar("SELECT pg_advisory_unlock(%s, %s)", name)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already gone
                log.debug("closing the lost lock connection failed", exc_info=True)

    def close(self) -> None:
        with self._mutex:
            self._drop()


class FileLocks:
    """``flock`` on one file per family beside a SQLite database file (``<db>.leader-<family>``)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._fds: dict[str, int] = {}
        self._mutex = threading.Lock()

    def path(self, name: str) -> Path:
        return self.database.with_name(f"{self.database.name}.leader{name if name == _ROUND else '-' + name}")

    def try_acquire(self, name: str) -> bool:
        with self._mutex:
            if name in self._fds:
                return True
            fd = os.open(self.path(name), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fds[name] = fd
            return True

    def holds(self, name: str) -> bool:
        # The OS holds the lock until the descriptor is closed or the process dies.
        with self._mutex:
            return name in self._fds

    def release(self, name: str) -> None:
        with self._mutex:
            fd = self._fds.pop(name, None)
            if fd is not None:
                os.close(fd)  # closing the only descriptor releases its lock

    def close(self) -> None:
        for name in list(self._fds):
            self.release(name)


class ProcessLocks:
    """No one else can reach an in-memory store: this process leads every family."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def try_acquire(self, name: str) -> bool:
        self._held.add(name)
        return True

    def holds(self, name: str) -> bool:
        return name in self._held

    def release(self, name: str) -> None:
        self._held.discard(name)

    def close(self) -> None:
        self._held.clear()


def locks_for(store: Store, policy: SchedulerConfig) -> Locks:
    """The locks that make leaders on ``store``."""
    if store.dialect == "postgresql":
        return PgLocks(store, keepalive_s=policy.lock_keepalive_s)
    if store.dialect == "sqlite":
        database = make_url(store.url).database
        if database and database != ":memory:" and not database.startswith("file::memory:"):
            return FileLocks(Path(database).resolve())
        return ProcessLocks()
    raise ValueError(f"no scheduler locks for a {store.dialect} store")


def holder_name() -> str:
    """How this process is named in ``scheduler_leaders``."""
    return f"{socket.gethostname()}:{os.getpid()}"


#: Called with the families just taken, and whether this is the process's first round.
OnGain = Callable[[frozenset[str], bool], None]
#: Called with the families just lost (the process stands by for them again).
OnLose = Callable[[frozenset[str]], None]


class Leadership:
    """The families one process leads, taken and checked every ``standby_retry_s``.

    ``families`` are the families this process has jobs for; it competes for those only.
    ``on_gain`` and ``on_lose`` start and stop a family's jobs (see ConnectorJobs.schedule).
    """

    def __init__(
        self,
        store: Store,
        families: Iterable[str],
        *,
        policy: SchedulerConfig,
        clock: Callable[[], datetime],
        locks: Locks | None = None,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.families = tuple(dict.fromkeys(families))
        self.policy = policy
        self.clock = clock
        self.locks = locks if locks is not None else locks_for(store, policy)
        self.holder = holder or holder_name()
        self.on_gain: OnGain = lambda _families, _first: None
        self.on_lose: OnLose = lambda _families: None
        self._held: set[str] = set()
        self._mutex = threading.RLock()
        self._rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> frozenset[str]:
        with self._mutex:
            return frozenset(self._held)

    def leads_all(self) -> bool:
        return self.held == frozenset(self.families)

    # --- one round -------------------------------------------------------------------------

    def tick(self) -> frozenset[str]:
        """Check the families held, try the free ones, beat; returns the families taken now."""
        with self._mutex:
            lost = frozenset(f for f in self._held if not self.locks.holds(f))
            self._held -= lost
            gained: set[str] = set()
            free = [f for f in self.families if f not in self._held]
            if free and not self._stop.is_set() and self.locks.try_acquire(_ROUND):
                try:
                    gained = {f for f in free if self.locks.try_acquire(f)}
                finally:
                    self.locks.release(_ROUND)
            self._held |= gained
            first = self._rounds == 0
            self._rounds += 1
            held = frozenset(self._held)
        if lost:
            self._lost(lost, "its lock is gone (lock connection lost)")
        if gained:
            log.info(
                "leader: %s now leads %s (standing by for %s)",
                self.holder,
                ", ".join(sorted(gained)),
                ", ".join(sorted(set(self.families) - held)) or "nothing",
            )
        elif first and self.families:
            log.info("leader: %s stands by for %s", self.holder, ", ".join(sorted(set(self.families) - held)))
        self._record(gained, held)
        if gained:
            self.on_gain(frozenset(gained), first)
        return frozenset(gained)

    def _lost(self, lost: frozenset[str], why: str) -> None:
        log.warning(
            "leader: %s steps down from %s: %s; standing by", self.holder, ", ".join(sorted(lost)), why
        )
        self._record_off(lost)
        self.on_lose(lost)

    def check(self, family: str) -> bool:
        """Whether this process still leads ``family``; steps down from it when not."""
        with self._mutex:
            if family not in self._held:
                return False
            if self.locks.holds(family):
                return True
            # The lock connection is gone: every family it held is gone with it.
            lost = frozenset(f for f in self._held if not self.locks.holds(f)) | {family}
            self._held -= lost
        self._lost(lost, "its lock is gone (checked before a job run)")
        return False

    def guard(self, family: str, name: str, func: Callable[..., T]) -> Callable[..., T | None]:
        """``func`` run only while this process leads ``family`` (checked right before each run)."""

        def run(*args: Any, **kwargs: Any) -> T | None:
            if not self.check(family):
                log.warning("leader: %s not run: %s no longer leads %s", name, self.holder, family)
                return None
            log.debug("leader: %s runs %s (%s)", self.holder, name, family)
            try:
                return func(*args, **kwargs)
            finally:
                log.debug("leader: %s ran %s (%s)", self.holder, name, family)
                self._record_run(family, name)

        return run

    # --- running ---------------------------------------------------------------------------

    def start(self) -> Leadership:
        """Take what is free now, then keep trying (and checking) every ``standby_retry_s``."""
        self.tick()
        self._thread = threading.Thread(target=self._loop, name="vantage-leader", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.policy.standby_retry_s):
            try:
                self.tick()
            except Exception:  # a round that failed is retried at the next one
                log.exception("leader: a round of tries failed")

    def stop(self, *, release: bool = True) -> None:
        """Stop trying and say so in ``scheduler_leaders``; with ``release``, let go of the locks now.

        A process that may still be running a job passes ``release=False`` and exits: its locks go
        with it, after its job's connections, so a standby never starts a job beside the last run.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._mutex:
            held, self._held = frozenset(self._held), set()
            if release:
                for family in held:
                    self.locks.release(family)
                self.locks.close()
        if held:
            log.info("leader: %s lets go of %s", self.holder, ", ".join(sorted(held)))
            self._record_off(held)

    # --- what /healthz reads ---------------------------------------------------------------

    def _write(self, work: Callable[[Any], None]) -> None:
        try:
            with self.store.begin() as conn:
                work(conn)
        except Exception as err:  # the record informs; the lock alone decides who leads
            log.warning("leader: could not record leadership: %s: %s", type(err).__name__, err)

    def _record(self, gained: Collection[str], held: Collection[str]) -> None:
        if not held:
            return
        now = self.clock()
        t = scheduler_leaders

        def work(conn: Any) -> None:
            for family in held:
                values: dict[str, Any] = {"holder": self.holder, "seen_at": now}
                if family in gained:
                    values["since"] = now
                found = conn.execute(update(t).where(t.c.family == family).values(**values)).rowcount
                if not found:
                    conn.execute(insert(t).values(family=family, runs=0, **values | {"since": now}))

        self._write(work)

    def _record_off(self, families: Collection[str]) -> None:
        t = scheduler_leaders
        now = self.clock()

        def work(conn: Any) -> None:
            conn.execute(
                update(t)
                .where(t.c.family.in_(sorted(families)), t.c.holder == self.holder)
                .values(holder=None, since=None, seen_at=now)
            )

        self._write(work)

    def _record_run(self, family: str, name: str) -> None:
        t = scheduler_leaders
        now = self.clock()

        def work(conn: Any) -> None:
            conn.execute(
                update(t)
                .where(t.c.family == family, t.c.holder == self.holder)
                .values(runs=t.c.runs + 1, last_job=name[:64], last_run_at=now)
            )

        self._write(work)
