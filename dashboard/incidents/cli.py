"""``vantage incidents ...``: refresh the value-weighted queue now, or print it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dashboard.api import QUEUE_FIELDS, records
from dashboard.incidents import read
from dashboard.incidents.queue import refresh_queue


def _settings_and_store(args: argparse.Namespace) -> tuple[Any, Any]:
    from dashboard.cli import _settings, _store

    settings = _settings(args)
    store = _store(settings)
    store.upgrade()
    return settings, store


def cmd_refresh(args: argparse.Namespace) -> int:
    from dashboard.kpis import load_catalogue

    settings, store = _settings_and_store(args)
    scoring = load_catalogue(settings.kpi_definitions_path()).scoring
    result = refresh_queue(store, scoring, currency=settings.currency)
    print(
        json.dumps(
            {
                "alarms_read": result.correlation.alarms,
                "incidents_opened": result.correlation.opened,
                "incidents_changed": result.correlation.changed,
                "value_cells_recomputed": result.values.cells,
                "value_full_rebuild": result.values.full,
                "queued": result.queued,
                "active": result.active,
                **{k: round(v, 1) for k, v in result.timings_ms.items()},
            }
        )
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, store = _settings_and_store(args)
    states = args.state.split(",") if args.state else ["open", "acknowledged"]
    with store.connect() as conn:
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


def register(sub: Any) -> None:
    p = sub.add_parser("incidents", help="the value-weighted incident queue")
    isub = p.add_subparsers(dest="incidents_command", required=True)
    r = isub.add_parser("refresh", help="correlate alarms, update impact and re-rank the queue now")
    r.set_defaults(func=cmd_refresh)
    ls = isub.add_parser("list", help="print the ranked queue with the reason for each rank")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--state", help="comma-separated states (default: open,acknowledged)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
