"""KPI evaluation: roll-ups per level and period kept in the database, readers, and status against thresholds.

``evaluate`` is the scheduled job (roll-ups, then statuses); ``read.series``, ``read.panel`` and
``read.current`` answer pages, the API and the linkage estimation. docs/kpis.md describes the rules.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dashboard import failpoints
from dashboard.context import Context, Jobs
from dashboard.kpi_eval.anomaly import AnomalySummary, reads_samples_only, refresh_anomalies
from dashboard.kpi_eval.quarters import QuarterHours
from dashboard.kpi_eval.read import KpiReadError, current, panel, series
from dashboard.kpi_eval.rollup import RollupSummary, built, refresh_rollups
from dashboard.kpi_eval.status import StatusSummary, evaluate_series, refresh_status, status_frame
from dashboard.kpis import Catalogue
from dashboard.store.db import Store

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    rollups: RollupSummary
    status: StatusSummary
    anomalies: AnomalySummary

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollups": self.rollups.as_dict(),
            "status": self.status.as_dict(),
            "anomalies": self.anomalies.as_dict(),
        }


def evaluate(
    store: Store, catalogue: Catalogue, *, now: datetime, full: bool = False, memo: QuarterHours | None = None
) -> Evaluation:
    """Bring the roll-ups up to date, then the statuses, and the baselines and anomaly verdicts; each
    step in its own transaction. ``memo`` keeps quarter-hour rows between one process's passes.

    On PostgreSQL the work that reads only samples runs beside the roll-ups, on connections of its
    own: as soon as the roll-up pass knows the hours it recomputes (so that ``memo`` reads them
    again), the statuses of the KPIs of 15-minute grain, which read samples only
    (read.check_grain); the baseline pass from the start, unless the pass is a full build and the
    baselines' window begins before the oldest sample kept (before it they read hourly roll-ups,
    which a full build rewrites; an incremental pass leaves those hours alone). Both write only
    their own rows. Their work in Python overlaps the roll-ups' in the database; the statuses of
    the other KPIs, which read roll-ups, follow the roll-ups. SQLite has one writer at a time:
    there the steps run in turn."""
    at = now
    beside = baselines_beside = False
    if store.dialect == "postgresql":
        beside = True
        with store.connect() as conn:
            rebuild = full or not built(conn)
            baselines_beside = not rebuild or reads_samples_only(conn, catalogue, now=at)
    known = threading.Event()
    followed: list[RollupSummary] = []

    def planned(summary: RollupSummary) -> None:
        if memo is not None:
            memo.follow(summary)
        followed.append(summary)
        known.set()

    def quarter_statuses() -> StatusSummary | None:
        known.wait()
        if not followed:
            return None  # the roll-up pass failed before it knew its hours
        with store.begin() as conn:
            return refresh_status(conn, catalogue, now=at, memo=memo, part="quarters")

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="kpi-beside") as pool:
        quarters = pool.submit(quarter_statuses) if beside else None
        baselines = pool.submit(_anomalies, store, catalogue, at) if baselines_beside else None
        try:
            with store.begin() as conn:
                rollups = refresh_rollups(conn, catalogue, now=at, full=full, planned=planned)
        finally:
            known.set()  # a pass that failed before it knew its hours lets the worker go on
        failpoints.pause("kpi:rolled-up")
        done_beside = quarters.result() if quarters is not None else None
        with store.begin() as conn:
            part = "all" if done_beside is None else "rollups"
            status = refresh_status(conn, catalogue, now=at, memo=memo, part=part)
        if done_beside is not None:
            status = done_beside.beside(status)
        anomalies = baselines.result() if baselines is not None else _anomalies(store, catalogue, at)
    log.info(
        "KPI evaluation: %d roll-up rows in %.1f s, %d statuses in %.1f s, %d periods of %d series "
        "against their baselines in %.1f s (%d anomalous)",
        rollups.rows,
        rollups.elapsed_s,
        status.rows,
        status.elapsed_s,
        anomalies.periods,
        anomalies.series,
        anomalies.elapsed_s,
        anomalies.anomalous,
    )
    return Evaluation(rollups=rollups, status=status, anomalies=anomalies)


def _anomalies(store: Store, catalogue: Catalogue, at: datetime) -> AnomalySummary:
    with store.begin() as conn:
        return refresh_anomalies(conn, catalogue, now=at)


def scheduled_jobs(ctx: Context) -> Jobs:
    """The scheduler's KPI job: roll-ups and statuses every ``scheduler.kpi_refresh_s``, keeping the
    quarter-hour rows it read between its passes."""
    memo = QuarterHours()

    def job() -> Evaluation:
        return evaluate(ctx.store, ctx.catalogue, now=ctx.now(), memo=memo)

    return {"kpi-evaluation": (ctx.settings.scheduler.kpi_refresh_s, job)}


__all__ = [
    "AnomalySummary",
    "Evaluation",
    "KpiReadError",
    "RollupSummary",
    "StatusSummary",
    "current",
    "evaluate",
    "evaluate_series",
    "panel",
    "refresh_anomalies",
    "refresh_rollups",
    "refresh_status",
    "scheduled_jobs",
    "series",
    "status_frame",
]
