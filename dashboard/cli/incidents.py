"""``vantage incidents refresh | list``: re-rank the value-weighted queue now, or print it with reasons."""

from __future__ import annotations

import argparse
import json

from dashboard.api.encode import records
from dashboard.api.incidents import QUEUE_FIELDS
from dashboard.cli import common
from dashboard.incidents import kpi_labels, read, refresh_queue


def cmd_refresh(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    result = refresh_queue(
        ctx.store, ctx.scoring, now=ctx.now(), currency=ctx.currency, labels=kpi_labels(ctx)
    )
    report = {
        "detected_alarms": result.detected.as_dict() if result.detected else None,
        "alarms_read": result.correlation.alarms,
        "incidents_opened": result.correlation.opened,
        "incidents_changed": result.correlation.changed,
        "value_cells_recomputed": result.values.cells,
        "value_full_rebuild": result.values.full,
        "queued": result.queued,
        "active": result.active,
        **{k: round(v, 1) for k, v in result.timings_ms.items()},
    }
    print(json.dumps(report))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    states = args.state.split(",") if args.state else ["open", "acknowledged"]
    with ctx.store.connect() as conn:
        df = read.queue(conn, states=states, limit=args.limit)
    if args.json:
        print(json.dumps(records(df, ("incident_id", *QUEUE_FIELDS))))
        return 0
    if df.empty:
        print("no incidents in the queue")
    for r in df.itertuples(index=False):
        rank = f"#{int(r.rank)}" if r.rank == r.rank and r.rank is not None else "-"
        print(f"{rank:>5} {r.score:6.1f} {r.severity:9} {r.state:12} {r.incident_id}  {r.title}")
        print(f"      {r.reason}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("incidents", help="the value-weighted incident queue")
    isub = p.add_subparsers(dest="incidents_command", required=True)
    r = isub.add_parser("refresh", help="correlate alarms, update impact and re-rank the queue now")
    r.set_defaults(func=cmd_refresh)
    ls = isub.add_parser("list", help="print the ranked queue with the reason for each rank")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--state", help="comma-separated states (default: open,acknowledged)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
