"""Linkage, measured: how much each technical KPI moves each business KPI, on the store's data."""

from dashboard.context import Context, Jobs
from dashboard.kpi_eval.read import evaluated as kpi_evaluated
from dashboard.linkage import read
from dashboard.linkage.estimate import LagFit, LinkResult, WhatIf, estimate_link, sentence, what_if
from dashboard.linkage.run import estimate_links, links_from_panel, refresh_linkage, store_links


def scheduled_jobs(ctx: Context) -> Jobs:
    """The scheduler's linkage job: links re-measured every ``scheduler.linkage_refresh_s``.

    It wakes every ``scheduler.kpi_refresh_s`` and measures only when the last measurement is older
    than ``linkage_refresh_s`` and KPI evaluation has run (so a fresh store gets its links minutes
    after its first evaluation, not hours).
    """
    every = ctx.settings.scheduler.linkage_refresh_s

    def job() -> int:
        now = ctx.now()
        with ctx.store.connect() as conn:
            last = read.last_measured(conn)
            evaluated = kpi_evaluated(conn)
        if not evaluated or (last is not None and (now - last).total_seconds() < every):
            return 0
        return refresh_linkage(ctx.store, ctx.catalogue, now=now)

    return {"kpi-linkage": (min(every, ctx.settings.scheduler.kpi_refresh_s), job)}


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
