"""Reading the measured links back: what ``kpi_links`` holds for a scope, one link with its evidence."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, select

from dashboard.store.db import read_frame
from dashboard.store.schema import kpi_links


def links(
    conn: Connection,
    scope: str,
    *,
    strengths: Sequence[str] | None = None,
    kpi: str | None = None,
    evidence: bool = False,
) -> pd.DataFrame:
    """The links measured for ``scope`` (``all``, ``region:<id>``, ``segment:<name>``), by target and
    driver; ``strengths`` and ``kpi`` (as driver or target) narrow them; ``evidence`` adds that column."""
    cols = [c for c in kpi_links.c if evidence or c.name != "evidence"]
    stmt = select(*cols).where(kpi_links.c.scope == scope)
    if strengths:
        stmt = stmt.where(kpi_links.c.strength.in_(list(strengths)))
    if kpi:
        stmt = stmt.where((kpi_links.c.driver == kpi) | (kpi_links.c.target == kpi))
    return read_frame(conn, stmt.order_by(kpi_links.c.target, kpi_links.c.driver))


def link(conn: Connection, scope: str, driver: str, target: str) -> dict[str, Any] | None:
    """One measured link with its evidence, or None."""
    row = (
        conn.execute(
            select(kpi_links).where(
                kpi_links.c.driver == driver, kpi_links.c.target == target, kpi_links.c.scope == scope
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def last_measured(conn: Connection) -> datetime | None:
    """When links were last measured (None: never)."""
    value: datetime | None = conn.execute(select(func.max(kpi_links.c.computed_at))).scalar_one_or_none()
    return value
