"""``vantage connectors list | types | test NAME | run NAME``: the configured and installed connectors."""

from __future__ import annotations

import argparse

from connectors.registry import available
from dashboard.cli import common
from dashboard.ingest import run_connector


def cmd_connectors(args: argparse.Namespace) -> int:
    settings = common.settings(args)
    if args.connectors_command == "types":
        for name, cls in sorted(available().items()):
            doc = (cls.__doc__ or "").strip().splitlines()
            print(f"{name:12} {doc[0] if doc else ''}")
        return 0
    if args.connectors_command == "list":
        for c in settings.connectors:
            state = "enabled" if c.enabled else "disabled"
            print(f"{c.name:16} {c.type:12} every {c.interval:>6g}s  {state}")
        return 0
    cfg = settings.connector(args.name)
    connector = cfg.build()
    try:
        if args.connectors_command == "test":
            result = connector.check()
            print(f"{cfg.name} ({cfg.type}): {'OK' if result.ok else 'FAILED'}: {result.detail}")
            for stream in connector.streams():
                print(f"  stream {stream.name}: {', '.join(stream.kinds)}")
            for route in connector.push_routes():
                print(f"  listener /push/{cfg.name}{route.path} ({', '.join(route.methods)})")
            return 0 if result.ok else 1
        ctx = common.context(args)
        summary = run_connector(ctx.store, connector, clock=ctx.clock)
        print(
            f"{cfg.name}: {summary.status}, {summary.records_in} in, {summary.upserted} written, "
            f"{summary.quarantined} quarantined" + (f" ({summary.error})" if summary.error else "")
        )
        return 0 if summary.status != "failed" else 1
    finally:
        connector.close()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("connectors", help="configured connectors")
    csub = p.add_subparsers(dest="connectors_command", required=True)
    csub.add_parser("list", help="configured connectors")
    csub.add_parser("types", help="installed connector types")
    t = csub.add_parser("test", help="run check() and show what the connector can reach")
    t.add_argument("name")
    r = csub.add_parser("run", help="run one connector once through the ingest path")
    r.add_argument("name")
    p.set_defaults(func=cmd_connectors)
