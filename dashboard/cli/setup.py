"""``vantage check-config`` and ``vantage db upgrade|current|backup|restore``: settings and the store."""

from __future__ import annotations

import argparse

from dashboard.cli import common
from dashboard.kpis import load_catalogue
from dashboard.store.backup import BackupError, backup, restore
from dashboard.store.db import Store, redact


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = common.settings(args)
    catalogue = load_catalogue(settings.kpi_definitions_path())
    print(f"{settings.config_file}: valid")
    print(f"  KPI catalogue {settings.kpi_definitions_path()}: {len(catalogue.kpis)} KPIs")
    print(f"  store: {redact(settings.database_url)}")
    for c in settings.connectors:
        state = "enabled" if c.enabled else "disabled"
        print(f"  connector {c.name}: type {c.type}, every {c.interval:g}s, {state}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    store = Store(common.settings(args).database_url)
    if args.db_command == "upgrade":
        store.upgrade(args.revision)
        print(f"{redact(store.url)}: at revision {store.current_revision()}")
    elif args.db_command in ("backup", "restore"):
        try:
            done = (backup if args.db_command == "backup" else restore)(store, args.file)
        except BackupError as err:
            print(f"vantage db {args.db_command}: {err}")
            return 1
        verb = "backed up to" if args.db_command == "backup" else "restored from"
        print(f"{redact(store.url)}: {verb} {done.path} ({done.bytes:,} bytes, revision {done.revision})")
    else:
        print(store.current_revision() or "no schema yet (run: vantage db upgrade)")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate the settings file without starting anything")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("db", help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    dbsub.add_parser("current", help="show the applied revision")
    bk = dbsub.add_parser("backup", help="write a consistent backup while the service runs")
    bk.add_argument("file", help="a new file (pg_dump's custom format on PostgreSQL)")
    rs = dbsub.add_parser("restore", help="restore a backup into an empty database or schema")
    rs.add_argument("file")
    p.set_defaults(func=cmd_db)
