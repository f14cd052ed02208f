"""KPI evaluation: roll-ups per level and period kept in the database, readers, and status against thresholds.

``evaluate`` is the scheduled job (roll-ups, then statuses); ``read.series``, ``read.panel`` and
``read.current`` answer pages, the API and the linkage estimation. docs/kpis.md describes the rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dashboard import failpoints
from dashboard.context import Context, Jobs
from dashboard.kpi_eval.anomaly import AnomalySummary, refresh_anomalies
from dashboard.kpi_eval.quarters import QuarterHours
from dashboard.kpi_eval.read import KpiReadError, current, panel, series
from dashboard.kpi_eval.rollup import RollupSummary, refresh_rollups
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
    """Bring the roll-ups up to date, then the statuses, then the baselines and anomaly verdicts; each
    step in its own transaction. ``memo`` keeps quarter-hour rows between one process's passes."""
    at = now
    with store.begin() as conn:
        rollups = refresh_rollups(conn, catalogue, now=at, full=full)
    if memo is not None:
        memo.follow(rollups)
    failpoints.pause("kpi:rolled-up")
    with store.begin() as conn:
        status = refresh_status(conn, catalogue, now=at, memo=memo)
    with store.begin() as conn:
        anomalies = refresh_anomalies(conn, catalogue, now=at)
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
