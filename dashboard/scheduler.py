"""Connector jobs on APScheduler: each enabled connector runs at its interval, backing off on failure.

Embedded (`vantage run`): a background scheduler inside the web process. Production
(`vantage run --no-scheduler` on every web worker, plus `vantage scheduler` processes): jobs run
once, not once per worker. Jobs come in families (:func:`family_jobs`); with several schedulers on
one store each family has one leader and the others stand by (dashboard.leader). A transient
failure (timeout, 429, 5xx) brings the next attempt forward with exponential backoff (or the
source's Retry-After); the attempt time is recorded on the run so the Sources page can say
"retrying at ...".
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import insert, update

from connectors.actions.loopback import LoopbackSinks, Received
from connectors.base import Connector, ConnectorError, RetriableError
from dashboard import analytics, cache, incidents, kpi_eval, linkage, readiness
from dashboard.auth.keys import stored_secret
from dashboard.config import SchedulerConfig
from dashboard.context import Context, Jobs
from dashboard.incidents.queue import forget as forget_queue
from dashboard.ingest.runner import Ingestor, RunSummary, abandon_runs
from dashboard.leader import (
    ANALYTICS,
    CONNECTORS,
    DELIVERY,
    FAMILIES,
    KPI,
    LINKAGE,
    MAINTENANCE,
    QUEUE,
    Leadership,
)
from dashboard.playbooks import LINK_SECRET, ClosedLoop
from dashboard.readiness import Preparation
from dashboard.store import retention
from dashboard.store.schema import connector_runs, loopback_messages

log = logging.getLogger(__name__)

#: The built-in job that computes each step of the preparation after the connectors' history.
PREPARE_JOBS = {
    "queue": "incident-queue",
    "evaluation": "kpi-evaluation",
    "linkage": "kpi-linkage",
    "churn": "analytics-retrain",
    "ranking": "incident-queue",
}
#: Kinds whose history is the bulk of a backfill and that no first page needs: read last.
SAMPLE_KINDS = frozenset({"kpi_samples"})


def family_jobs(ctx: Context, loop: ClosedLoop | None = None) -> dict[str, Jobs]:
    """The built-in jobs by family (each family has one leader among the schedulers on a store).

    The connector jobs, one per enabled connector, make the ``connectors`` family (ConnectorJobs adds
    them). A job joins a family by one line here: ``KPI: kpi_eval.scheduled_jobs(ctx)``.
    """
    queue = incidents.scheduled_jobs(ctx)
    if loop is not None:
        interval, refresh = queue["incident-queue"]

        def queue_then_playbooks() -> object:
            result = refresh()
            try:
                loop.evaluate()
            except Exception:  # the queue is refreshed whatever the playbooks do
                log.exception("playbooks: evaluation failed")
            return result

        queue["incident-queue"] = (interval, queue_then_playbooks)
    families = {
        QUEUE: queue,
        KPI: kpi_eval.scheduled_jobs(ctx),
        ANALYTICS: analytics.scheduled_jobs(ctx),
        LINKAGE: linkage.scheduled_jobs(ctx),
        DELIVERY: loop.jobs() if loop is not None else {},
        MAINTENANCE: retention.scheduled_jobs(ctx),
    }
    # Each job bumps the shared cache's versions of what it changed once it has run (the queue's
    # after the playbooks too), so every screen's next read sees it.
    return {name: cache.bumping_jobs(ctx, jobs) for name, jobs in families.items()}


def builtin_jobs(ctx: Context, loop: ClosedLoop | None = None) -> Jobs:
    """Jobs beside the connectors: the incident queue, analytics, KPI evaluation, linkage and the
    store's retention; with a closed ``loop``, its playbooks decide right after each queue refresh
    and its outbox is delivered at its own interval (every family of :func:`family_jobs` in one
    mapping)."""
    jobs: Jobs = {}
    for family in family_jobs(ctx, loop).values():
        jobs |= family
    return jobs


#: What a family's jobs keep in memory between runs, dropped when the process stops leading it (a
#: later leader, maybe this process again, starts from the store).
FORGET: dict[str, Callable[[Context], None]] = {QUEUE: lambda ctx: forget_queue(ctx.store)}


class LoopRuntime:
    """A process's closed loop: the playbooks, and the loopback sinks when the settings ask for them.

    What the sinks receive is kept in the store (the Actions page shows it) and handed to the
    simulated operator's customers, who answer apologies and offers as the simulator's causal
    model says (docs/simulator.md).
    """

    def __init__(self, ctx: Context, *, start_sinks: bool = True) -> None:
        self.ctx = ctx
        self.sinks: LoopbackSinks | None = None
        self.jobs: ConnectorJobs | None = None
        pb = ctx.settings.playbooks
        options: dict[str, dict[str, Any]] = {}
        if pb.loopback and start_sinks:
            self.sinks = LoopbackSinks(on_message=self._received).start()
            options = self.sinks.action_options()
            log.info(
                "loopback sinks: SMTP on port %d, HTTP at %s", self.sinks.smtp_port, self.sinks.http_base_url
            )
        secret = stored_secret(ctx.store, LINK_SECRET, now=ctx.now())
        self.loop = ClosedLoop(ctx, secret=secret, loopback_options=options)

    @classmethod
    def from_settings(cls, ctx: Context) -> LoopRuntime | None:
        """The runtime when the settings enable playbooks, else None."""
        return cls(ctx) if ctx.settings.playbooks.enabled else None

    def attach(self, jobs: ConnectorJobs) -> None:
        """Hand what the sinks receive to these jobs' simulators."""
        self.jobs = jobs

    def _received(self, msg: Received) -> None:
        with self.ctx.store.begin() as conn:
            conn.execute(
                insert(loopback_messages).values(
                    channel=msg.channel,
                    received_at=msg.at,
                    to=(msg.to or None) and msg.to[:256],
                    subject=(msg.subject or None) and msg.subject[:256],
                    body=msg.body,
                    reference=(msg.reference or None) and msg.reference[:256],
                    key=(msg.key or None) and msg.key[:64],
                )
            )
        jobs = self.jobs
        if jobs is None or msg.channel not in ("email", "sms"):
            return
        headers = {k.lower(): v for k, v in msg.headers.items()}  # the sinks keep them lower case
        raw_meta = msg.data.get("metadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        offer = meta.get("offer") or headers.get("x-vantage-offer")
        kind = (
            "offer"
            if offer
            else ("apology" if (meta.get("kind") or headers.get("x-vantage-kind")) == "apology" else None)
        )
        if kind is None:
            return
        for name, cfg in jobs.configs.items():
            if cfg.type != "simulator":
                continue
            receive = getattr(jobs.connector(name), "receive", None)
            if receive is not None:
                receive(
                    kind,
                    at=msg.at,
                    address=msg.to,
                    subscriber_id=meta.get("subscriber_id"),
                    offer=offer,
                    key=msg.key,
                )

    def close(self) -> None:
        self.loop.close()
        if self.sinks is not None:
            self.sinks.stop()


def backoff_delay(
    failures: int,
    *,
    interval_s: float,
    policy: SchedulerConfig,
    retry_after_s: float | None = None,
    rand: Callable[[], float] | None = None,
) -> float:
    """Seconds until the next attempt after ``failures`` consecutive transient failures.

    Doubling from ``retry_initial_s`` up to ``retry_max_s`` (at once ``retry_max_s`` once the circuit
    is open), never later than the normal interval, spread by ``retry_jitter`` when ``rand`` (a
    uniform [0, 1) source) is given; a source's own Retry-After wins.
    """
    if retry_after_s is not None and retry_after_s > 0:
        return min(retry_after_s, max(policy.retry_max_s, retry_after_s))
    if failures >= policy.circuit_after:
        delay = policy.retry_max_s
    else:
        delay = policy.retry_initial_s * (2 ** max(failures - 1, 0))
    if rand is not None and policy.retry_jitter:
        delay *= 1 - policy.retry_jitter + 2 * policy.retry_jitter * rand()
    return float(min(delay, policy.retry_max_s, interval_s))


class ConnectorJobs:
    """Owns the connector instances of one process and runs them through the ingest path."""

    def __init__(
        self,
        ctx: Context,
        *,
        ingestor: Ingestor | None = None,
        extra_jobs: Jobs | None = None,
        families: dict[str, Jobs] | None = None,
    ) -> None:
        """Jobs of ``ctx``'s enabled connectors, plus ``families`` (see :func:`family_jobs`) and
        ``extra_jobs`` (see :func:`builtin_jobs`; each outside any family is a family of its own)."""
        self.ctx = ctx
        self.settings = ctx.settings
        self.store = ctx.store
        self.ingestor = ingestor or cache.BumpingIngestor(ctx, clock=ctx.clock, limits=ctx.settings.ingest)
        self.connectors: dict[str, Connector[Any]] = {}
        self.configs = {c.name: c for c in ctx.settings.enabled_connectors}
        self.failures: dict[str, int] = {}
        self.extra_jobs = dict(extra_jobs or {})
        #: job name -> its family; connector jobs are all in ``connectors``.
        self.family_of: dict[str, str] = {name: name for name in self.extra_jobs}
        for family, jobs in (families or {}).items():
            self.extra_jobs |= jobs
            self.family_of |= dict.fromkeys(jobs, family)
        self.leadership: Leadership | None = None
        self._lock = threading.Lock()
        # SQLite has one writer at a time: jobs that would wait on each other's write locks (and
        # time out behind a long KPI roll-up) take turns instead. PostgreSQL runs them side by side.
        self._writer: threading.Lock | None = threading.Lock() if ctx.store.dialect == "sqlite" else None
        #: Spreads retry delays (SchedulerConfig.retry_jitter); None retries at the exact delays.
        self.rand: Callable[[], float] | None = random.random
        self._scheduler: BaseScheduler | None = None

    def _serial(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` run under the writer lock on SQLite, unchanged elsewhere."""
        writer = self._writer
        if writer is None:
            return func

        def run(*args: Any, **kwargs: Any) -> Any:
            with writer:
                return func(*args, **kwargs)

        return run

    def connector(self, name: str) -> Connector[Any]:
        with self._lock:
            if name not in self.connectors:
                conn = self.configs[name].build(self.ctx.clock)
                conn.start()
                self.connectors[name] = conn
            return self.connectors[name]

    def run_once(self, name: str) -> RunSummary:
        """Run one connector now and, under a scheduler, set when it runs next.

        A connector that cannot start (a TMF hub registration refused, a source unreachable at
        start) is recorded as a failed run with the reason, so the Sources page and /healthz show
        it, and retried on the same backoff as any failed run."""
        try:
            connector = self.connector(name)
        except Exception as err:  # recorded and retried, never lost in the scheduler's log
            log.warning("connector %s could not start: %s", name, err)
            summary = self.ingestor.record_failure(
                name,
                f"could not start: {type(err).__name__}: {err}",
                retriable=not isinstance(err, ConnectorError) or isinstance(err, RetriableError),
                retry_after_s=err.retry_after_s if isinstance(err, RetriableError) else None,
            )
        else:
            summary = self.ingestor.run(connector)
        interval = self.configs[name].interval
        if summary.status == "failed" and summary.retriable:
            self.failures[name] = self.failures.get(name, 0) + 1
            delay = backoff_delay(
                self.failures[name],
                interval_s=interval,
                policy=self.settings.scheduler,
                retry_after_s=summary.retry_after_s,
                rand=self.rand,
            )
        else:
            self.failures[name] = 0
            delay = interval
        next_at = summary.finished_at + timedelta(seconds=delay)
        values: dict[str, Any] = {"next_attempt_at": next_at}
        failures = self.failures[name]
        if failures >= self.settings.scheduler.circuit_after and summary.retry_after_s is None:
            # Say why the source is left alone: the Sources page and /healthz show the run's error.
            values["error"] = (
                f"{summary.error} [circuit open after {failures} failures in a row: "
                f"next attempt at {next_at:%H:%M:%S} UTC]"
            )
            log.warning("connector %s: circuit open after %d failures in a row", name, failures)
        with self.store.begin() as conn:
            conn.execute(update(connector_runs).where(connector_runs.c.id == summary.run_id).values(**values))
        if self._scheduler is not None and delay != interval:
            job = self._scheduler.get_job(f"connector:{name}")
            if job is not None:
                job.modify(next_run_time=_as_aware(next_at))
        return summary

    def run_all_once(self) -> list[RunSummary]:
        return [self.run_once(name) for name in self.configs]

    # --- the first preparation ----------------------------------------------------------

    def needs_preparation(self) -> bool:
        """Whether this store has never been prepared to the end (a fresh store, or one whose
        preparation was cut short)."""
        if not self.configs and not self.extra_jobs:
            return False
        with self.store.connect() as conn:
            prep = readiness.read(conn)
        return prep is None or not prep.ready

    def prepare(self) -> Preparation:
        """Bring the store to ready, step by step, writing progress after each step and stream.

        The connectors' history is read events first (inventory, customers, alarms, tickets,
        bills), so a first incident queue is ranked before the bulk of the KPI samples loads; then
        the KPIs are rolled up, the links measured, churn scored and the queue ranked again with
        all of it. A failed step is recorded and the next one runs: the periodic jobs retry it.
        """
        ctx = self.ctx
        prep = Preparation.start(ctx.now())
        readiness.write(self.store, prep, now=ctx.now())
        log.info("preparing a fresh store: %d steps", len(prep.steps))
        connectors = [self.connector(name) for name in self.configs]
        events = [(c, s.name) for c in connectors for s in c.streams() if not set(s.kinds) & SAMPLE_KINDS]
        samples = [(c, s.name) for c in connectors for s in c.streams() if set(s.kinds) & SAMPLE_KINDS]
        for step in prep.steps:
            if step.key in ("events", "samples"):
                work = events if step.key == "events" else samples
                if not work:
                    step.state = "skipped"
                    continue
                self._prepare_step(prep, step, self._read_history, work)
            else:
                job = self.extra_jobs.get(PREPARE_JOBS[step.key])
                if job is None:
                    step.state = "skipped"
                    continue
                self._prepare_step(prep, step, _run_job, job[1])
        prep.finished_at = ctx.now().isoformat()
        cache.of(ctx).bump(*cache.FAMILIES)  # everything changed: no screen keeps the empty store
        readiness.write(self.store, prep, now=ctx.now())
        took = (
            datetime.fromisoformat(prep.finished_at) - datetime.fromisoformat(prep.started_at)
        ).total_seconds()
        log.info("ready in %.0f s", took)
        return prep

    def _prepare_step(
        self,
        prep: Preparation,
        step: readiness.Step,
        work: Callable[[Preparation, readiness.Step, Any], None],
        arg: Any,
    ) -> bool:
        now = self.ctx.now()
        step.state, step.started_at = "running", now.isoformat()
        readiness.write(self.store, prep, now=now)
        p = prep.progress(now)
        log.info("%s", readiness.waiting_text(p))
        try:
            self._serial(work)(prep, step, arg)
            step.state = "done"
        except Exception as err:  # one failed step must not keep the operator from the others
            log.exception("preparing: %s failed", step.label)
            step.state, step.detail = "failed", f"{type(err).__name__}: {err}"[:300]
        step.fraction = 1.0
        step.finished_at = self.ctx.now().isoformat()
        readiness.write(self.store, prep, now=self.ctx.now())
        log.info("preparing: %s %s in %.1f s", step.label, step.state, step.elapsed_s(self.ctx.now()))
        return step.state == "done"

    def _read_history(
        self, prep: Preparation, step: readiness.Step, work: list[tuple[Connector[Any], str]]
    ) -> None:
        """Read each (connector, stream) of ``work`` to its end, recording the fraction done."""
        failed: list[str] = []
        for i, (connector, stream) in enumerate(work):
            summary = self.ingestor.run(connector, streams=[stream])
            if summary.status == "failed":
                failed.append(f"{connector.name}/{stream}: {summary.error}")
            step.fraction = (i + 1) / len(work)
            step.detail = f"{connector.name}: {stream}"
            readiness.write(self.store, prep, now=self.ctx.now())
        if failed:
            raise RuntimeError("; ".join(failed))

    # --- the periodic jobs ---------------------------------------------------------------

    def families(self) -> list[str]:
        """The families this process has jobs for, in the order they are taken."""
        found = ([CONNECTORS] if self.configs else []) + list(dict.fromkeys(self.family_of.values()))
        return [f for f in FAMILIES if f in found] + [f for f in found if f not in FAMILIES]

    def schedule(
        self,
        scheduler: BaseScheduler,
        *,
        run_now: bool = True,
        prepare: bool = True,
        leadership: Leadership | None = None,
    ) -> None:
        """Add one interval job per enabled connector (first run immediately) and the extra jobs.

        With ``prepare`` and a store that was never prepared to the end, one job prepares it first
        (:meth:`prepare`) and the periodic jobs start when it is done, so none of them competes with
        the preparation for the store or runs on half-loaded history.

        With ``leadership`` (other schedulers may share the store) a family's jobs are added when
        this process takes the family and removed when it steps down; the preparation runs only in
        a process that leads every family. Call ``leadership.start()`` to begin.
        """
        self._scheduler = scheduler
        if leadership is None:
            # This process runs the connectors now: any run still marked running died with its process.
            abandon_runs(self.store, now=self.ctx.now())
            if run_now and prepare and self.needs_preparation():
                self._schedule_preparation(scheduler, None)
                return
            self._schedule_periodic(
                scheduler, run_now=run_now, first_delay_s=self.settings.scheduler.first_run_delay_s
            )
            return
        self.leadership = leadership

        def gained(families: frozenset[str], _first: bool) -> None:
            if CONNECTORS in families:
                # The connectors' last leader is gone: a run it left running died with it.
                abandon_runs(self.store, now=self.ctx.now())
            if run_now and prepare and leadership.leads_all() and self.needs_preparation():
                self._schedule_preparation(scheduler, leadership)
                return
            self._schedule_periodic(
                scheduler,
                run_now=run_now,
                first_delay_s=self.settings.scheduler.first_run_delay_s,
                families=families,
            )

        leadership.on_gain = gained
        leadership.on_lose = lambda families: self._unschedule(scheduler, families)

    def _schedule_preparation(self, scheduler: BaseScheduler, leadership: Leadership | None) -> None:
        def prepare_then_schedule() -> None:
            try:
                self.prepare()
            finally:
                held = None if leadership is None else leadership.held
                self._schedule_periodic(scheduler, run_now=True, first_delay_s=None, families=held)

        scheduler.add_job(
            prepare_then_schedule, id="prepare", name="prepare", max_instances=1, replace_existing=True
        )

    def _unschedule(self, scheduler: BaseScheduler, families: frozenset[str]) -> None:
        """Stop the jobs of ``families`` (a run in progress finishes) and drop what they kept."""
        names = [f"connector:{n}" for n in self.configs] if CONNECTORS in families else []
        names += [n for n, f in self.family_of.items() if f in families]
        for job_id in [*names, "prepare"]:
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(job_id)
        if CONNECTORS in families:
            self.failures.clear()
        for family in families:
            forget = FORGET.get(family)
            if forget is not None:
                forget(self.ctx)

    def _job(self, family: str, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` as scheduled: under the SQLite writer lock, then (with several schedulers) run
        only while this process still leads ``family``, checked right before the run."""
        if self.leadership is not None:
            func = self.leadership.guard(family, name, func)
        return self._serial(func)

    def _schedule_periodic(
        self,
        scheduler: BaseScheduler,
        *,
        run_now: bool,
        first_delay_s: float | None,
        families: frozenset[str] | None = None,
    ) -> None:
        # APScheduler keeps wall-clock time, whatever clock the jobs compute with.
        now = datetime.now(UTC)
        for name, cfg in self.configs.items():
            if families is not None and CONNECTORS not in families:
                break
            scheduler.add_job(
                self._job(CONNECTORS, f"connector:{name}", self.run_once),
                IntervalTrigger(seconds=cfg.interval),
                args=[name],
                id=f"connector:{name}",
                name=f"connector {name}",
                replace_existing=True,
                # Just after a preparation, which read every stream, the next read is an interval away.
                next_run_time=(now + timedelta(seconds=cfg.interval) if first_delay_s is None else now)
                if run_now
                else None,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(self.settings.scheduler.misfire_grace_s),
            )
        # Built-in jobs (incident queue, analytics) first run shortly after start, once connectors
        # have had time to write a first backfill (frequent jobs after one interval), then at their
        # own interval; after a preparation, which has just run each of them, after one interval.
        for job_name, (interval_s, func) in self.extra_jobs.items():
            family = self.family_of[job_name]
            if families is not None and family not in families:
                continue
            delay = interval_s if first_delay_s is None else min(interval_s, first_delay_s)
            first = now + timedelta(seconds=delay)
            scheduler.add_job(
                self._job(family, job_name, func),
                IntervalTrigger(seconds=interval_s),
                id=job_name,
                name=job_name,
                replace_existing=True,
                next_run_time=first if run_now else None,
                max_instances=1,
                coalesce=True,
            )

    def close(self) -> None:
        for conn in self.connectors.values():
            try:
                conn.close()
            except Exception:  # closing must not hide the reason we stop
                log.exception("closing connector %s failed", conn.name)
        self.connectors.clear()


def _run_job(_prep: Preparation, _step: readiness.Step, func: Callable[[], Any]) -> None:
    func()


def _as_aware(naive_utc: datetime) -> datetime:
    return naive_utc.replace(tzinfo=UTC)


def leadership_for(jobs: ConnectorJobs) -> Leadership:
    """This process's leadership of the families ``jobs`` has (not started)."""
    ctx = jobs.ctx
    return Leadership(ctx.store, jobs.families(), policy=ctx.settings.scheduler, clock=ctx.clock)


def background_scheduler(jobs: ConnectorJobs, leadership: Leadership | None = None) -> BackgroundScheduler:
    """A started background scheduler running ``jobs`` (for the embedded web process); with
    ``leadership``, the jobs of the families it leads (started here too)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    jobs.schedule(scheduler, leadership=leadership)
    scheduler.start()
    if leadership is not None:
        leadership.start()
    return scheduler


def blocking_scheduler(jobs: ConnectorJobs, leadership: Leadership | None = None) -> BlockingScheduler:
    """A blocking scheduler running ``jobs`` (for `vantage scheduler`); call ``start()`` to run,
    and ``leadership.start()`` first when given."""
    scheduler = BlockingScheduler(timezone="UTC")
    jobs.schedule(scheduler, leadership=leadership)
    return scheduler
