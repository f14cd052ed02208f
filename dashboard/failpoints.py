"""Test hooks that hold a process at a named point of a job, so a test can kill it there.

Off unless ``$VANTAGE_PAUSE_AT`` names the point (comma-separated names); then the job logs that it
paused and sleeps ``$VANTAGE_PAUSE_S`` seconds (default 600) before going on. The failover test
kills a leading scheduler while it is paused mid-way through a queue refresh and a KPI pass.
``$VANTAGE_FROZEN_NOW`` (an ISO time) gives a scheduler a clock that stands still, so two runs on
copies of one store compute at the same instant.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime

log = logging.getLogger(__name__)

PAUSE_ENV = "VANTAGE_PAUSE_AT"
PAUSE_SECONDS_ENV = "VANTAGE_PAUSE_S"
FROZEN_NOW_ENV = "VANTAGE_FROZEN_NOW"


def pause(name: str) -> None:
    """Sleep here when ``$VANTAGE_PAUSE_AT`` names ``name``; otherwise return at once."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or name not in wanted.split(","):
        return
    seconds = float(os.environ.get(PAUSE_SECONDS_ENV) or 600)
    log.warning("paused at %s for %.0f s ($%s)", name, seconds, PAUSE_ENV)
    time.sleep(seconds)


def frozen_clock() -> Callable[[], datetime] | None:
    """A clock stopped at ``$VANTAGE_FROZEN_NOW`` (naive UTC), or None when it is unset."""
    value = os.environ.get(FROZEN_NOW_ENV)
    if not value:
        return None
    at = datetime.fromisoformat(value).replace(tzinfo=None)
    return lambda: at
