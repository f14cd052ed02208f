"""``vantage run`` (the dashboard on the waitress WSGI server, jobs embedded by default) and
``vantage scheduler`` (the jobs alone). Any number of either may share a store: each job family has
one leader among them and the others stand by (dashboard.leader)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import replace

import waitress

from dashboard.app import create_app
from dashboard.auth import keys, users
from dashboard.cli import common
from dashboard.context import Context
from dashboard.failpoints import frozen_clock
from dashboard.leader import Leadership
from dashboard.scheduler import (
    ConnectorJobs,
    LoopRuntime,
    background_scheduler,
    blocking_scheduler,
    builtin_jobs,
    family_jobs,
    leadership_for,
)
from dashboard.store.db import redact

log = logging.getLogger("vantage")


def cmd_run(args: argparse.Namespace) -> int:
    ctx = common.context(args, migrate=not args.no_migrate)
    port = args.port or int(os.environ.get("PORT") or ctx.settings.web.port)
    host = args.host or ctx.settings.web.host
    first_admin(ctx)
    app = create_app(ctx)
    scheduler = None
    jobs = None
    runtime = None
    leadership: Leadership | None = None
    if ctx.settings.scheduler.embedded and not args.no_scheduler:
        runtime = LoopRuntime.from_settings(ctx)
        jobs = ConnectorJobs(ctx, families=family_jobs(ctx, runtime.loop if runtime else None))
        if runtime is not None:
            runtime.attach(jobs)
        leadership = leadership_for(jobs)
        scheduler = background_scheduler(jobs, leadership)
        log.info("scheduler: %d connector job(s) embedded", len(jobs.configs))
    log.info("Vantage on http://%s:%d (store %s)", host, port, redact(ctx.store.url))
    # Stop on SIGINT and SIGTERM alike, even when started from a shell that ignores SIGINT for
    # background jobs (the ignore would be inherited, and the server would never stop).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        waitress.serve(app.server, host=host, port=port, threads=args.threads, ident="vantage")
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if leadership is not None:
            leadership.stop(release=False)  # released as the process exits (below), after its jobs
        if jobs is not None:
            jobs.close()
        if runtime is not None:
            runtime.close()
    if scheduler is not None:
        _exit_past_running_jobs()
    return 0


ADMIN_PASSWORD_ENV = "VANTAGE_ADMIN_PASSWORD"


def first_admin(ctx: Context) -> None:
    """A store with no user gets ``admin``: with ``$VANTAGE_ADMIN_PASSWORD`` when set, else a
    generated password printed once on the terminal (never to the log, never a default one). The
    session key is made here too, before any job holds the store: the web only reads it."""
    try:
        keys.session_key(ctx.store, now=ctx.now())
    except ValueError as err:  # $VANTAGE_SECRET_KEY set but too short
        raise SystemExit(str(err)) from None
    given = os.environ.get(ADMIN_PASSWORD_ENV) or None
    try:
        password = users.ensure_first_admin(ctx.store, given, now=ctx.now())
    except users.UserError as err:
        raise SystemExit(f"${ADMIN_PASSWORD_ENV}: {err}") from None
    if password is None:
        return
    if given:
        print(f"Created the first user, admin, with the password from ${ADMIN_PASSWORD_ENV}.", flush=True)
    else:
        print(
            "\n  Created the first user.  Log in as  admin  with the password\n\n"
            f"      {password}\n\n"
            "  It is shown this once; change it with `vantage users passwd admin`.\n",
            flush=True,
        )


def _exit_past_running_jobs() -> None:
    """Stop now even if a job (a KPI roll-up, say) is mid-way: Python would otherwise join the job
    threads at exit and wait for it. Every job writes in transactions, so a cut one is rolled back
    whole and runs again at the next start."""
    log.info("stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_scheduler(args: argparse.Namespace) -> int:
    ctx = common.context(args, migrate=not args.no_migrate)
    clock = frozen_clock()
    if clock is not None:
        ctx = replace(ctx, clock=clock)
    runtime = LoopRuntime.from_settings(ctx)
    loop = runtime.loop if runtime else None
    if args.once:
        jobs = ConnectorJobs(ctx, extra_jobs=builtin_jobs(ctx, loop))
    else:
        jobs = ConnectorJobs(ctx, families=family_jobs(ctx, loop))
    if runtime is not None:
        runtime.attach(jobs)
    leadership: Leadership | None = None
    try:
        if args.once:
            failed = 0
            for summary in jobs.run_all_once():
                print(
                    f"{summary.connector}: {summary.status}, {summary.records_in} in, "
                    f"{summary.upserted} written, {summary.quarantined} quarantined"
                    + (f" ({summary.error})" if summary.error else "")
                )
                failed += summary.status == "failed"
            return 1 if failed else 0
        leadership = leadership_for(jobs)
        scheduler = blocking_scheduler(jobs, leadership)
        signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
        log.info("scheduler: %d connector job(s), families %s", len(jobs.configs), ", ".join(jobs.families()))
        leadership.start()
        scheduler.start()
    finally:
        if leadership is not None:
            leadership.stop(release=False)
        jobs.close()
        if runtime is not None:
            runtime.close()
    if leadership is not None:
        # A job may still be running: the process ends here, and its locks with it, so no standby
        # starts a job while this one's last run is still writing.
        _exit_past_running_jobs()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="serve the dashboard (and, by default, run connector jobs in-process)")
    p.add_argument("--port", type=int, help="port (default: $PORT or web.port, 8050)")
    p.add_argument("--host", help="address to bind (default: web.host, 127.0.0.1)")
    p.add_argument(
        "--no-scheduler", action="store_true", help="serve only; run `vantage scheduler` separately"
    )
    p.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    p.add_argument("--threads", type=int, default=8, help="request threads of the web server (default 8)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "scheduler",
        help="run the jobs (any number per store: one leads each job family, the others stand by)",
    )
    p.add_argument("--once", action="store_true", help="run every enabled connector once and exit")
    p.add_argument("--no-migrate", action="store_true")
    p.set_defaults(func=cmd_scheduler)
