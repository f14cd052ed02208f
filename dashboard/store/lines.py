"""Where a line is served: the one rule every per-cell aggregate of lines uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, cast, exists, literal, select, union_all

from dashboard.store.schema import subscriber_cells
from dashboard.store.schema import subscribers as subscribers_t


def served_cells(
    cells: list[str] | None = None, *, subscribers: list[str] | None = None, name: str = "lines"
) -> Any:
    """(subscriber_id, cell_id, share) as a subquery: a line's served cells with their traffic share,
    or its home cell (share 1) when no cell is recorded for it; only ``cells``, or only the lines of
    ``subscribers``, when given."""
    sc = subscriber_cells
    served = select(sc.c.subscriber_id, sc.c.cell_id, sc.c.share.label("share")).where(sc.c.share > 0)
    home = select(
        subscribers_t.c.id.label("subscriber_id"),
        subscribers_t.c.home_cell_id.label("cell_id"),
        cast(literal(1.0), Float).label("share"),
    ).where(
        subscribers_t.c.home_cell_id.is_not(None),
        ~exists().where(sc.c.subscriber_id == subscribers_t.c.id),
    )
    if cells is not None:
        served = served.where(sc.c.cell_id.in_(cells))
        home = home.where(subscribers_t.c.home_cell_id.in_(cells))
    if subscribers is not None:
        served = served.where(sc.c.subscriber_id.in_(subscribers))
        home = home.where(subscribers_t.c.id.in_(subscribers))
    return union_all(served, home).subquery(name)
