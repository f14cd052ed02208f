"""``vantage simulate``: fill a store with the simulated operator and prepare it, with progress."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

from dashboard.cli import common
from dashboard.config import ConfigError, ConnectorConfig
from dashboard.scheduler import ConnectorJobs, builtin_jobs


def simulator_config(args: argparse.Namespace, configured: list[ConnectorConfig]) -> ConnectorConfig:
    """The simulator to run: the configured one named ``--name`` (its causal model and story
    included) with the options given on the command line on top, else the defaults."""
    base = next((c for c in configured if c.name == args.name and c.type == "simulator"), None)
    options: dict[str, Any] = dict(base.options) if base is not None else {}
    for key in ("seed", "subscribers", "days", "story"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    config = ConnectorConfig(
        name=args.name, type="simulator", interval=base.interval if base else 60.0, options=options
    )
    try:
        config.parsed_options()
    except Exception as err:
        raise ConfigError("<command line>", [("simulator options", str(err))]) from err
    return config


def cmd_simulate(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    config = simulator_config(args, ctx.settings.connectors)
    # The same preparation `vantage run` gives a fresh store, on this simulator alone: history
    # (events first), the first queue, KPI roll-ups, links, churn and the queue again.
    settings = ctx.settings.model_copy(update={"connectors": [config]})
    sim_ctx = replace(ctx, settings=settings)
    jobs = ConnectorJobs(sim_ctx, extra_jobs=builtin_jobs(sim_ctx))
    started = time.perf_counter()
    try:
        prep = jobs.prepare()
    finally:
        jobs.close()
    now = ctx.now()
    report = {
        "connector": config.name,
        "options": config.options,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "steps": {s.key: {"state": s.state, "seconds": round(s.elapsed_s(now), 1)} for s in prep.steps},
        "failed": [f"{s.key}: {s.detail}" for s in prep.steps if s.state == "failed"],
    }
    print(json.dumps(report))
    return 1 if report["failed"] else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="fill the store with the simulated operator and prepare it (KPIs, links, churn, queue)",
    )
    p.add_argument("--subscribers", type=int, help="default: the configured simulator's, else 10,000")
    p.add_argument("--days", type=int, help="history to backfill (default: configured, else 7)")
    p.add_argument("--seed", type=int, help="default: the configured simulator's, else 42")
    story = p.add_mutually_exclusive_group()
    story.add_argument(
        "--story", dest="story", action="store_true", default=None, help="keep incidents active"
    )
    story.add_argument("--no-story", dest="story", action="store_false")
    p.add_argument("--name", default="simulator", help="connector name the records are stored under")
    p.set_defaults(func=cmd_simulate)
