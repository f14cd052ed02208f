"""The value-weighted incident queue: correlation, value aggregates, impact, scoring, reads and actions."""

from __future__ import annotations

from dashboard.context import Context, Jobs
from dashboard.incidents.actions import ActionError, acknowledge, add_note, assign
from dashboard.incidents.correlate import ENGINE_SOURCE, Correlator, correlate
from dashboard.incidents.queue import QueueRefresh, rank_from_store, refresh_queue
from dashboard.incidents.scoring import account_clocks, incident_metrics, rank_incidents, reason
from dashboard.incidents.value import refresh_values


def kpi_labels(ctx: Context) -> dict[str, str]:
    """KPI name -> label, for the sentences of detected incidents."""
    return {k.name: k.label for k in ctx.catalogue.kpis}


def scheduled_jobs(ctx: Context) -> Jobs:
    """The scheduler's queue job: correlate, aggregate, measure and rank every ``queue_refresh_s``."""

    def job() -> QueueRefresh:
        return refresh_queue(
            ctx.store, ctx.scoring, now=ctx.now(), currency=ctx.currency, labels=kpi_labels(ctx)
        )

    return {"incident-queue": (ctx.settings.scheduler.queue_refresh_s, job)}


__all__ = [
    "ENGINE_SOURCE",
    "ActionError",
    "Correlator",
    "QueueRefresh",
    "account_clocks",
    "acknowledge",
    "add_note",
    "assign",
    "correlate",
    "incident_metrics",
    "kpi_labels",
    "rank_from_store",
    "rank_incidents",
    "reason",
    "refresh_queue",
    "refresh_values",
    "scheduled_jobs",
]
