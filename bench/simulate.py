"""Benchmark of the simulated operator: generate (and optionally ingest) every stream, print figures."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import resource
import time
from datetime import datetime
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import ConnectorContext
from connectors.simulator import SimulatorConnector, SimulatorOptions


def _peak_rss_mb() -> float:
    # ru_maxrss is kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--anchor", default=None, help="end of history, ISO time (default: now)")
    parser.add_argument("--store", default=None, help="database URL: also write through dashboard.ingest")
    args = parser.parse_args(argv)

    options = SimulatorOptions(
        seed=args.seed,
        subscribers=args.subscribers,
        days=args.days,
        anchor=datetime.fromisoformat(args.anchor) if args.anchor else None,
    )
    connector = SimulatorConnector(options, ConnectorContext(name="simulator"))
    started = time.perf_counter()
    result: dict[str, Any] = {"subscribers": args.subscribers, "days": args.days}
    if args.store:
        result.update(_through_store(args.store, connector))
    else:
        counts: dict[str, int] = {}
        for stream in connector.streams():
            t0 = time.perf_counter()
            n = 0
            for batch in connector.read(stream, {}):
                counts[batch.kind] = counts.get(batch.kind, 0) + len(batch.records)
                n += len(batch.records)
            print(
                f"{stream.name:<10} {n:>12,d} rows {time.perf_counter() - t0:8.1f} s  "
                f"peak RSS {_peak_rss_mb():,.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        result["kpi_rows"] = counts.get("kpi_samples", 0)
        result["rows"] = sum(counts.values())
        result["counts"] = counts
    elapsed = time.perf_counter() - started
    result["elapsed_s"] = round(elapsed, 1)
    result["rows_per_s"] = round(result.get("rows", 0) / elapsed) if elapsed else None
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))
    return 0


def _through_store(url: str, connector: SimulatorConnector) -> dict[str, Any]:
    """Write through the one ingest path (``dashboard.ingest.run_connector``)."""
    from dashboard.ingest import run_connector
    from dashboard.store.db import Store

    store = Store(url)
    store.upgrade()
    summary = run_connector(store, connector)
    for name, counts in summary.streams.items():
        print(f"{name:<10} {counts}", file=sys.stderr)
    if summary.error:
        print(f"run {summary.status}: {summary.error}", file=sys.stderr)
    return {
        "store": repr(store),
        "status": summary.status,
        "rows": summary.counts.records_in,
        "upserted": summary.counts.upserted,
        "quarantined": summary.counts.quarantined,
    }


if __name__ == "__main__":
    raise SystemExit(main())
