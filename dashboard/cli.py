"""The `vantage` command: run the dashboard, the scheduler, migrations, the simulator and checks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dashboard.config import (
    DEFAULT_CONFIG_FILE,
    ENV_CONFIG,
    ConfigError,
    Settings,
    load_settings,
    settings_from_mapping,
)
from dashboard.store.db import Store, redact

log = logging.getLogger("vantage")

#: Used when no configuration file is given and ./vantage.yaml does not exist: the simulated operator.
BUILTIN_SETTINGS: dict[str, Any] = {
    "connectors": [
        {
            "name": "simulator",
            "type": "simulator",
            "interval": "1m",
            "options": {
                "seed": 42,
                "subscribers": 10000,
                "days": 28,
                "causal": {"incident_rate_per_resource_day": 0.05},
            },
        },
    ]
}


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None)
    if path is None and not os.environ.get(ENV_CONFIG) and not Path(DEFAULT_CONFIG_FILE).exists():
        log.info("no %s here: using the built-in simulated operator", DEFAULT_CONFIG_FILE)
        settings = settings_from_mapping(BUILTIN_SETTINGS, file="<built-in defaults>")
    else:
        settings = load_settings(path)
    if getattr(args, "database_url", None):
        settings.database_url = args.database_url
    return settings


def _store(settings: Settings) -> Store:
    return Store(settings.database_url)


# --- commands ---------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    from dashboard.kpis import load_catalogue

    settings = _settings(args)
    catalogue = load_catalogue(settings.kpi_definitions_path())
    print(f"{settings.config_file}: valid")
    print(f"  KPI catalogue {settings.kpi_definitions_path()}: {len(catalogue.kpis)} KPIs")
    print(f"  store: {redact(settings.database_url)}")
    for c in settings.connectors:
        state = "enabled" if c.enabled else "disabled"
        print(f"  connector {c.name}: type {c.type}, every {c.interval:g}s, {state}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    if args.db_command == "upgrade":
        store.upgrade(args.revision)
        print(f"{redact(store.url)}: at revision {store.current_revision()}")
    else:
        print(store.current_revision() or "no schema yet (run: vantage db upgrade)")
    return 0


def _extra_jobs(store: Store, settings: Settings) -> dict[str, tuple[float, Any]]:
    """Built-in jobs beside the connectors: the incident queue, analytics, KPI evaluation and linkage."""
    import dashboard.analytics as analytics
    import dashboard.incidents as incident_queue
    import dashboard.kpi_eval as kpi_eval
    import dashboard.linkage as linkage

    return (
        dict(incident_queue.scheduled_jobs(store, settings))
        | dict(analytics.scheduled_jobs(store))
        | dict(kpi_eval.scheduled_jobs(store, settings))
        | dict(linkage.scheduled_jobs(store, settings))
    )


def cmd_run(args: argparse.Namespace) -> int:
    from dashboard.app import create_app
    from dashboard.kpis import load_catalogue
    from dashboard.scheduler import ConnectorJobs, background_scheduler

    settings = _settings(args)
    load_catalogue(settings.kpi_definitions_path())  # fail at start, not on the first page visit
    port = args.port or int(os.environ.get("PORT") or settings.web.port)
    host = args.host or settings.web.host
    store = _store(settings)
    if not args.no_migrate:
        store.upgrade()
    app = create_app(settings, store=store)
    scheduler = None
    jobs = None
    if settings.scheduler.embedded and not args.no_scheduler:
        jobs = ConnectorJobs(settings, store, extra_jobs=_extra_jobs(store, settings))
        scheduler = background_scheduler(jobs)
        log.info("scheduler: %d connector job(s) embedded", len(jobs.configs))
    log.info("Vantage on http://%s:%d (store %s)", host, port, redact(store.url))
    # Stop on SIGINT and SIGTERM alike, even when started from a shell that ignores SIGINT for
    # background jobs (the ignore would be inherited, and the server would never stop).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app.run(host=host, port=port, debug=False)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if jobs is not None:
            jobs.close()
    if scheduler is not None:
        _exit_past_running_jobs()
    return 0


def _exit_past_running_jobs() -> None:
    """Stop now even if a job (a KPI roll-up, say) is mid-way: Python would otherwise join the job
    threads at exit and wait for it. Every job writes in transactions, so a cut one is rolled back
    whole and runs again at the next start."""
    import logging

    log.info("stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_scheduler(args: argparse.Namespace) -> int:
    from dashboard.scheduler import ConnectorJobs, blocking_scheduler

    settings = _settings(args)
    store = _store(settings)
    if not args.no_migrate:
        store.upgrade()
    jobs = ConnectorJobs(settings, store, extra_jobs=_extra_jobs(store, settings))
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
        scheduler = blocking_scheduler(jobs)
        signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
        log.info("scheduler: %d connector job(s)", len(jobs.configs))
        scheduler.start()
    finally:
        jobs.close()
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from connectors.base import ConnectorContext
    from connectors.registry import get
    from dashboard.incidents import refresh_queue
    from dashboard.ingest import run_connector
    from dashboard.kpis import load_catalogue

    settings = _settings(args)
    store = _store(settings)
    store.upgrade()
    cls = get("simulator")
    options = cls.Options.model_validate(
        {"seed": args.seed, "subscribers": args.subscribers, "days": args.days}
    )
    connector = cls(options, ConnectorContext(name=args.name))
    started = time.perf_counter()
    summary = run_connector(store, connector)
    # Correlate the backfilled alarms into incidents and rank them, as the scheduler would.
    queue = refresh_queue(
        store, load_catalogue(settings.kpi_definitions_path()).scoring, currency=settings.currency
    )
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "connector": args.name,
                "status": summary.status,
                "records_in": summary.records_in,
                "upserted": summary.upserted,
                "quarantined": summary.quarantined,
                "elapsed_s": round(elapsed, 2),
                "error": summary.error,
                "incidents_opened": queue.correlation.opened,
                "incidents_active": queue.active,
            }
        )
    )
    return 0 if summary.status != "failed" else 1


def cmd_connectors(args: argparse.Namespace) -> int:
    from connectors.registry import available
    from dashboard.scheduler import build_connector

    settings = _settings(args)
    if args.connectors_command == "types":
        for name, cls in sorted(available().items()):
            doc = (cls.__doc__ or "").strip().splitlines()
            print(f"{name:12} {doc[0] if doc else ''}")
        return 0
    if args.connectors_command == "list":
        for c in settings.connectors:
            print(
                f"{c.name:16} {c.type:12} every {c.interval:>6g}s  {'enabled' if c.enabled else 'disabled'}"
            )
        return 0
    cfg = settings.connector(args.name)
    connector = build_connector(cfg)
    try:
        if args.connectors_command == "test":
            result = connector.check()
            print(f"{cfg.name} ({cfg.type}): {'OK' if result.ok else 'FAILED'}: {result.detail}")
            for stream in connector.streams():
                print(f"  stream {stream.name}: {', '.join(stream.kinds)}")
            for route in connector.push_routes():
                print(f"  listener /push/{cfg.name}{route.path} ({', '.join(route.methods)})")
            return 0 if result.ok else 1
        from dashboard.ingest import run_connector

        store = _store(settings)
        store.upgrade()
        summary = run_connector(store, connector)
        print(
            f"{cfg.name}: {summary.status}, {summary.records_in} in, {summary.upserted} written, "
            f"{summary.quarantined} quarantined" + (f" ({summary.error})" if summary.error else "")
        )
        return 0 if summary.status != "failed" else 1
    finally:
        connector.close()


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vantage", description=__doc__)
    parser.add_argument(
        "--config", "-c", help=f"settings file (default: ${ENV_CONFIG} or ./{DEFAULT_CONFIG_FILE})"
    )
    parser.add_argument("--database-url", help="store URL (overrides the file and $VANTAGE_DATABASE_URL)")
    parser.add_argument("--log-level", default=os.environ.get("VANTAGE_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="serve the dashboard (and, by default, run connector jobs in-process)")
    p.add_argument("--port", type=int, help="port (default: $PORT or web.port, 8050)")
    p.add_argument("--host", help="address to bind (default: web.host, 127.0.0.1)")
    p.add_argument(
        "--no-scheduler", action="store_true", help="serve only; run `vantage scheduler` separately"
    )
    p.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("scheduler", help="run connector jobs (one process per deployment)")
    p.add_argument("--once", action="store_true", help="run every enabled connector once and exit")
    p.add_argument("--no-migrate", action="store_true")
    p.set_defaults(func=cmd_scheduler)

    p = sub.add_parser("check-config", help="validate the settings file without starting anything")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("db", help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    dbsub.add_parser("current", help="show the applied revision")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("simulate", help="backfill the store with the simulated operator")
    p.add_argument("--subscribers", type=int, default=10_000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--name", default="simulator", help="connector name the records are stored under")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("connectors", help="configured connectors")
    csub = p.add_subparsers(dest="connectors_command", required=True)
    csub.add_parser("list", help="configured connectors")
    csub.add_parser("types", help="installed connector types")
    t = csub.add_parser("test", help="run check() and show what the connector can reach")
    t.add_argument("name")
    r = csub.add_parser("run", help="run one connector once through the ingest path")
    r.add_argument("name")
    p.set_defaults(func=cmd_connectors)

    from dashboard.analytics.cli import register as register_churn
    from dashboard.incidents.cli import register as register_incidents
    from dashboard.kpi_eval.cli import register as register_kpi

    register_incidents(sub)
    register_churn(sub)
    register_kpi(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level.upper() == "INFO":
        # Each run is logged by the ingest path; per-request and per-job lines would drown it.
        for noisy in ("werkzeug", "apscheduler", "alembic.runtime.plugins"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"configuration error:\n{err}", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
