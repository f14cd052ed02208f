"""What every ``vantage`` command shares: the settings it runs with and the Context built from them."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from dashboard.config import DEFAULT_CONFIG_FILE, ENV_CONFIG, Settings, load_settings, settings_from_mapping
from dashboard.context import Context

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
                "story": True,
                "causal": {"incident_rate_per_resource_day": 0.05, "silent_fault_rate_per_cell_day": 0.03},
            },
        },
    ]
}


def settings(args: argparse.Namespace) -> Settings:
    """The settings of this invocation: ``--config``, ``$VANTAGE_CONFIG``, ``./vantage.yaml`` or the
    built-in simulated operator, with ``--database-url`` applied."""
    path = getattr(args, "config", None)
    if path is None and not os.environ.get(ENV_CONFIG) and not Path(DEFAULT_CONFIG_FILE).exists():
        log.info("no %s here: using the built-in simulated operator", DEFAULT_CONFIG_FILE)
        found = settings_from_mapping(BUILTIN_SETTINGS, file="<built-in defaults>")
    else:
        found = load_settings(path)
    if getattr(args, "database_url", None):
        found.database_url = args.database_url
    return found


def context(args: argparse.Namespace, *, migrate: bool = True) -> Context:
    """The Context of this invocation (store, settings, catalogue, system clock); ``migrate`` brings
    the store's schema up to date first."""
    ctx = Context.build(settings(args))
    if migrate:
        ctx.store.upgrade()
    return ctx
