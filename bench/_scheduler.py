"""``vantage scheduler`` with its writers bumping the shared cache's versions, for bench/load.py.

The jobs are those of ``vantage scheduler`` (dashboard/scheduler.py), each wrapped as
dashboard/cache.py says: the built-in jobs by :func:`dashboard.cache.bumping_jobs`, the connectors'
ingest by :class:`dashboard.cache.BumpingIngestor`. Once dashboard/scheduler.py wires them itself,
wrapping again here only bumps twice (harmless).

    .venv/bin/python bench/_scheduler.py --config vantage.yaml [--database-url URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import signal

from dashboard import cache
from dashboard.cli import common
from dashboard.scheduler import ConnectorJobs, LoopRuntime, blocking_scheduler, builtin_jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    ctx = common.context(args, migrate=False)
    runtime = LoopRuntime.from_settings(ctx)
    extra = cache.bumping_jobs(ctx, builtin_jobs(ctx, runtime.loop if runtime else None))
    ingestor = cache.BumpingIngestor(ctx, clock=ctx.clock, limits=ctx.settings.ingest)
    jobs = ConnectorJobs(ctx, ingestor=ingestor, extra_jobs=extra)
    if runtime is not None:
        runtime.attach(jobs)
    try:
        scheduler = blocking_scheduler(jobs)
        signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
        scheduler.start()
    finally:
        jobs.close()
        if runtime is not None:
            runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
