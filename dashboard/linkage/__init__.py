"""Linkage, measured: how much each technical KPI moves each business KPI, on the store's data."""

from collections.abc import Callable
from typing import Any

from dashboard.linkage.estimate import LagFit, LinkResult, WhatIf, estimate_link, sentence, what_if
from dashboard.linkage.run import estimate_links, links_from_panel, refresh_linkage, store_links


def scheduled_jobs(store: Any, settings: Any) -> dict[str, tuple[float, Callable[[], Any]]]:
    """The scheduler's linkage job: links re-measured every ``scheduler.linkage_refresh_s``.

    It wakes every ``scheduler.kpi_refresh_s`` and measures only when the last measurement is older
    than ``linkage_refresh_s`` and KPI evaluation has run (so a fresh store gets its links minutes
    after its first evaluation, not hours).
    """
    from sqlalchemy import func, select

    from dashboard.kpis import load_catalogue
    from dashboard.store.schema import kpi_links, kpi_status

    catalogue = load_catalogue(settings.kpi_definitions_path())
    every = settings.scheduler.linkage_refresh_s

    def job() -> int:
        from dashboard.pages import utcnow

        now = utcnow()
        with store.connect() as conn:
            last = conn.execute(select(func.max(kpi_links.c.computed_at))).scalar_one_or_none()
            evaluated = conn.execute(select(func.count()).select_from(kpi_status)).scalar_one()
        if not evaluated or (last is not None and (now - last).total_seconds() < every):
            return 0
        return refresh_linkage(store, catalogue, now=now)

    return {"kpi-linkage": (min(every, settings.scheduler.kpi_refresh_s), job)}


__all__ = [
    "LagFit",
    "LinkResult",
    "WhatIf",
    "estimate_link",
    "estimate_links",
    "links_from_panel",
    "refresh_linkage",
    "scheduled_jobs",
    "sentence",
    "store_links",
    "what_if",
]
