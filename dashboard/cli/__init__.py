"""The ``vantage`` command: run the dashboard, the scheduler, migrations, the simulator and checks.

One module per command group, each with a ``register(subparsers)``; what they share (the settings
of an invocation, the Context built from them) is in dashboard/cli/common.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from dashboard.cli import churn, connectors, incidents, kpi, playbooks, serve, setup, simulate, users, web
from dashboard.config import DEFAULT_CONFIG_FILE, ENV_CONFIG, ConfigError

#: Command groups in the order ``vantage --help`` lists them.
GROUPS = (serve, web, setup, simulate, connectors, incidents, churn, kpi, playbooks, users)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vantage", description="Vantage: a command centre for telecom operators."
    )
    parser.add_argument(
        "--config", "-c", help=f"settings file (default: ${ENV_CONFIG} or ./{DEFAULT_CONFIG_FILE})"
    )
    parser.add_argument("--database-url", help="store URL (overrides the file and $VANTAGE_DATABASE_URL)")
    parser.add_argument("--log-level", default=os.environ.get("VANTAGE_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level.upper() == "INFO":
        # Each run is logged by the ingest path; per-request and per-job lines would drown it.
        for noisy in ("werkzeug", "waitress.queue", "apscheduler", "alembic.runtime.plugins"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"configuration error:\n{err}", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "main"]
