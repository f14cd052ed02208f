"""Measure every link of the catalogue (and discover undeclared ones) on the store, and keep them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Connection, delete, insert, select

from dashboard.kpi_eval.read import panel as read_panel
from dashboard.kpis import Catalogue, KpiDefinition
from dashboard.linkage.estimate import LinkResult, estimate_link
from dashboard.store.db import Store, read_frame
from dashboard.store.schema import cells, kpi_links, regions

log = logging.getLogger(__name__)

DAY_S = 86400
TRAFFIC = "traffic_gb"
WEIGHT = "subscribers"
CLUSTER = "_site"
MAX_LAG_PERIODS = 7
"""Longest lag tried, in periods, whatever a link declares (a 28-day lag needs months of data)."""
SEGMENT_SCOPES = ("consumer", "smb", "enterprise")
COMOVING_R = 0.3
"""A technical KPI whose within-cell, within-period correlation with a driver reaches this is held
fixed when the driver's effect is measured."""


def _names(catalogue: Catalogue) -> dict[str, tuple[str, str]]:
    return {k.name: (k.label, k.unit) for k in catalogue.kpis}


def _max_lag(seconds: float, grain_s: int, n_periods: int) -> int:
    return int(max(0, min(seconds // grain_s, MAX_LAG_PERIODS, max(n_periods // 3, 0))))


def declared_links(catalogue: Catalogue) -> list[tuple[KpiDefinition, str, str, float]]:
    """(driver, target, expected direction, max lag in seconds) of every ``drives`` entry."""
    return [(k, link.kpi, link.direction, link.max_lag_s) for k in catalogue.kpis for link in k.drives]


def drivers_of(catalogue: Catalogue, target: str) -> list[str]:
    return [k.name for k in catalogue.kpis if any(link.kpi == target for link in k.drives)]


def descendants(catalogue: Catalogue, name: str) -> set[str]:
    """The KPIs ``name`` drives, directly or through others (its effects: never held fixed for it)."""
    out: set[str] = set()
    frontier = [name]
    while frontier:
        k = catalogue.find(frontier.pop())
        for link in k.drives if k is not None else ():
            if link.kpi not in out:
                out.add(link.kpi)
                frontier.append(link.kpi)
    return out


def co_moving(
    panel: pd.DataFrame, driver: str, candidates: Sequence[str], *, threshold: float | None = None
) -> list[str]:
    """The candidates whose variation within cells and periods moves with the driver's (|r| at least
    ``threshold``, default ``COMOVING_R``, after removing each entity's and each period's mean, as
    the regression does)."""
    threshold = COMOVING_R if threshold is None else threshold
    cols = [c for c in dict.fromkeys([driver, *candidates]) if c in panel.columns]
    if driver not in cols or len(cols) < 2:
        return []
    sub = panel[["entity_id", "period_start", *cols]].dropna()
    if len(sub) < 3:
        return []
    x = sub[cols].astype(float)
    within = (
        x
        - x.groupby(sub["entity_id"]).transform("mean")
        - x.groupby(sub["period_start"]).transform("mean")
        + x.mean()
    )
    r = within.corr()[driver]
    return [c for c in cols[1:] if pd.notna(r[c]) and abs(float(r[c])) >= threshold]


def link_controls(catalogue: Catalogue, panel: pd.DataFrame, driver: str, target: str) -> list[str]:
    """What a link holds fixed beside traffic: the target's other declared drivers and, for a technical
    driver, every other technical KPI that co-moves with it in this panel and is not one of its
    effects, so that a KPI riding on the same incidents as a real driver is not credited with its
    effect."""
    held = [d for d in drivers_of(catalogue, target) if d != driver]
    k = catalogue.find(driver)
    if k is None or k.domain != "technical":
        return held
    effects = descendants(catalogue, driver)
    candidates = [
        t.name
        for t in catalogue.kpis
        if t.domain == "technical"
        and t.type != "derived"
        and t.name not in (driver, target, TRAFFIC)
        and t.name not in effects
        and t.name not in held
    ]
    return held + co_moving(panel, driver, candidates)


def links_from_panel(
    panel: pd.DataFrame,
    catalogue: Catalogue,
    *,
    grain_s: int = DAY_S,
    scope: str = "all",
    level: str = "cell",
    discover: bool = True,
    cluster: str | None = None,
) -> list[LinkResult]:
    """Every declared link measured on ``panel``, then the strong undeclared technical -> business ones.

    A declared link is reported whatever it comes out as (weak and contradicted included). A
    technical x business pair that is not declared is measured with the same controls (traffic,
    the target's declared drivers, the technical KPIs co-moving with the driver: ``link_controls``)
    and kept only when strong: a discovered link.
    """
    names = _names(catalogue)
    n_periods = int(panel["period_start"].nunique()) if len(panel) else 0
    weight = WEIGHT if WEIGHT in panel.columns else None
    controls = [TRAFFIC] if TRAFFIC in panel.columns else []
    out: list[LinkResult] = []
    declared: set[tuple[str, str]] = set()
    for k, target, direction, lag_s in declared_links(catalogue):
        declared.add((k.name, target))
        others = link_controls(catalogue, panel, k.name, target)
        out.append(
            estimate_link(
                panel,
                k.name,
                target,
                step=k.step,
                expected=direction,
                max_lag=_max_lag(lag_s, grain_s, n_periods),
                controls=[c for c in controls if c != k.name],
                lagged_controls=others,
                weight=weight,
                grain_s=grain_s,
                scope=scope,
                level=level,
                names=names,
                cluster=cluster,
            )
        )
    if not discover:
        return out
    technical = [
        k for k in catalogue.kpis if k.domain == "technical" and k.name != TRAFFIC and k.type != "derived"
    ]
    business = [k for k in catalogue.kpis if k.domain == "business"]
    for t in business:
        if t.name not in panel.columns:
            continue
        for d in technical:
            if (d.name, t.name) in declared or d.name not in panel.columns:
                continue
            r = estimate_link(
                panel,
                d.name,
                t.name,
                step=d.step,
                max_lag=_max_lag(2 * DAY_S, grain_s, n_periods),
                controls=controls,
                lagged_controls=link_controls(catalogue, panel, d.name, t.name),
                weight=weight,
                grain_s=grain_s,
                declared=False,
                scope=scope,
                level=level,
                names=names,
                cluster=cluster,
            )
            if r.strength == "strong":
                out.append(r)
    return out


def _scope_arg(scope: str) -> tuple[str, str] | None:
    if scope == "all":
        return None
    kind, _, value = scope.partition(":")
    if kind not in ("region", "segment") or not value:
        raise ValueError(f"scope: expected all, region:<id> or segment:<name>, got {scope!r}")
    return (kind, value)


def panel_kpis(catalogue: Catalogue) -> list[str]:
    """The KPIs a linkage panel needs: every driver and target of a link, traffic, and the candidates."""
    wanted = {TRAFFIC}
    for k, target, _, _ in declared_links(catalogue):
        wanted |= {k.name, target}
    for k in catalogue.kpis:
        if k.type != "derived" and k.domain in ("technical", "business"):
            wanted.add(k.name)
    wanted.discard("revenue_at_risk_per_hour")  # network and region only, not per cell
    return sorted(w for w in wanted if any(k.name == w for k in catalogue.kpis))


def estimate_links(
    conn: Connection, catalogue: Catalogue, *, now: datetime, days: int = 30, scope: str | None = None
) -> list[LinkResult]:
    """Measure the links over the ``days`` whole days before ``now``, per cell and day."""
    until = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = until - timedelta(days=days)
    name = scope or "all"
    frame = read_panel(
        conn,
        catalogue,
        panel_kpis(catalogue),
        level="cell",
        grain_s=DAY_S,
        since=since,
        until=until,
        measures=(WEIGHT,),
        scope=_scope_arg(name),
    )
    # Cells of one site share subscribers (their tickets are spread over the same lines): cluster
    # the standard errors by site.
    sites = read_frame(conn, select(cells.c.id, cells.c.site_id))
    codes = pd.Series(pd.factorize(sites["site_id"])[0], index=sites["id"].astype(str))
    frame[CLUSTER] = frame["entity_id"].astype(str).map(codes).fillna(-1).astype(float)
    frame.loc[frame[CLUSTER] < 0, CLUSTER] = float("nan")
    results = links_from_panel(frame, catalogue, scope=name, cluster=CLUSTER)
    for r in results:
        r.since, r.until = since, until
    return results


def store_links(conn: Connection, results: Sequence[LinkResult], now: datetime) -> int:
    """Replace the stored links of the scopes in ``results``; returns the rows written."""
    for scope in sorted({r.scope for r in results}):
        conn.execute(delete(kpi_links).where(kpi_links.c.scope == scope))
    rows = [r.row(now) for r in results]
    if rows:
        conn.execute(insert(kpi_links), rows)
    return len(rows)


def linkage_scopes(conn: Connection) -> list[str]:
    """The scopes refreshed: the network, each region, each segment."""
    regs = sorted(str(r) for r in conn.execute(select(regions.c.id)).scalars())
    return ["all", *(f"region:{r}" for r in regs), *(f"segment:{s}" for s in SEGMENT_SCOPES)]


def refresh_linkage(
    store: Store, catalogue: Catalogue, *, now: datetime, days: int = 30, scopes: Sequence[str] | None = None
) -> int:
    """The scheduler job: measure and store the links of every scope; returns the links stored."""
    with store.connect() as conn:
        wanted = list(scopes) if scopes is not None else linkage_scopes(conn)
    total = 0
    for scope in wanted:
        with store.begin() as conn:
            results = estimate_links(conn, catalogue, now=now, days=days, scope=scope)
            total += store_links(conn, results, now)
    log.info("linkage: %d links over %d scopes", total, len(wanted))
    return total
