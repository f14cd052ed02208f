"""``vantage connectors list | types | test NAME | run NAME | cursor NAME``: the configured and
installed connectors, and where each stream of one will read from next."""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy import delete, select

from connectors.registry import available
from dashboard.cli import common
from dashboard.config import ConfigError
from dashboard.ingest import load_state, run_connector, save_state
from dashboard.store.schema import connector_state


def cmd_cursor(args: argparse.Namespace) -> int:
    """Show each stream's saved state (its cursor); ``--reset`` forgets it (the next run reads the
    whole history again), ``--set STREAM JSON`` replaces one stream's state."""
    ctx = common.context(args)
    cfg = ctx.settings.connector(args.name)
    streams = [s.name for s in cfg.build(ctx.clock).streams()]
    if args.set:
        stream, text = args.set
        if stream not in streams:
            raise ConfigError(
                "<command line>", [("--set", f"{cfg.name} has no stream {stream!r} ({', '.join(streams)})")]
            )
        try:
            state = json.loads(text)
        except ValueError as err:
            raise ConfigError("<command line>", [("--set", f"expected a JSON object: {err}")]) from err
        if not isinstance(state, dict):
            raise ConfigError("<command line>", [("--set", "expected a JSON object")])
        with ctx.store.begin() as conn:
            save_state(conn, cfg.name, stream, state, now=ctx.now())
    elif args.reset:
        with ctx.store.begin() as conn:
            conn.execute(delete(connector_state).where(connector_state.c.connector == cfg.name))
    with ctx.store.connect() as conn:
        saved = {
            row.stream: load_state(conn, cfg.name, row.stream)
            for row in conn.execute(
                select(connector_state.c.stream).where(connector_state.c.connector == cfg.name)
            )
        }
    for stream in streams:
        print(f"{cfg.name}/{stream}: {json.dumps(saved.get(stream) or {}, sort_keys=True)}")
    return 0


def cmd_connectors(args: argparse.Namespace) -> int:
    if args.connectors_command == "cursor":
        return cmd_cursor(args)
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
    try:
        connector = cfg.build()
    except ValueError as err:  # a file an option names cannot be used (a schema, say)
        print(f"{cfg.name} ({cfg.type}): cannot be built: {err}", file=sys.stderr)
        return 2
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
    c = csub.add_parser("cursor", help="show, reset or set where each stream reads from next")
    c.add_argument("name")
    how = c.add_mutually_exclusive_group()
    how.add_argument("--reset", action="store_true", help="forget every stream's cursor: read all again")
    how.add_argument("--set", nargs=2, metavar=("STREAM", "JSON"), help="replace one stream's state")
    p.set_defaults(func=cmd_connectors)
