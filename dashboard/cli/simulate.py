"""``vantage simulate``: backfill a store with the simulated operator, then rank its incidents."""

from __future__ import annotations

import argparse
import json
import time

from connectors.base import ConnectorContext
from connectors.registry import get
from dashboard.cli import common
from dashboard.incidents import refresh_queue
from dashboard.ingest import run_connector


def cmd_simulate(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    cls = get("simulator")
    options = cls.Options.model_validate(
        {"seed": args.seed, "subscribers": args.subscribers, "days": args.days}
    )
    connector = cls(options, ConnectorContext(name=args.name, now=ctx.clock))
    started = time.perf_counter()
    summary = run_connector(ctx.store, connector, clock=ctx.clock)
    # Correlate the backfilled alarms into incidents and rank them, as the scheduler would.
    queue = refresh_queue(ctx.store, ctx.scoring, now=ctx.now(), currency=ctx.currency)
    elapsed = time.perf_counter() - started
    report = {
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
    print(json.dumps(report))
    return 0 if summary.status != "failed" else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="backfill the store with the simulated operator")
    p.add_argument("--subscribers", type=int, default=10_000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--name", default="simulator", help="connector name the records are stored under")
    p.set_defaults(func=cmd_simulate)
