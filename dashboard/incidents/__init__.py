"""The value-weighted incident queue: correlation, value aggregates, impact, scoring, reads and actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboard.incidents.actions import ActionError, acknowledge, add_note, assign
from dashboard.incidents.correlate import ENGINE_SOURCE, Correlator, correlate
from dashboard.incidents.queue import QueueRefresh, rank_from_store, refresh_queue
from dashboard.incidents.scoring import account_clocks, incident_metrics, rank_incidents, reason
from dashboard.incidents.value import refresh_values


def scheduled_jobs(store: Any, settings: Any) -> dict[str, tuple[float, Callable[[], Any]]]:
    """The scheduler's queue job: correlate, aggregate, measure and rank every ``queue_refresh_s``."""
    from dashboard.kpis import load_catalogue

    scoring = load_catalogue(settings.kpi_definitions_path()).scoring

    def job() -> QueueRefresh:
        return refresh_queue(store, scoring, currency=settings.currency)

    return {"incident-queue": (settings.scheduler.queue_refresh_s, job)}


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
    "rank_from_store",
    "rank_incidents",
    "reason",
    "refresh_queue",
    "refresh_values",
    "scheduled_jobs",
]
