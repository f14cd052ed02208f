"""SQL builders shared by the roll-up job and the readers: periods, topology, cell rows and level roll-ups.

Every builder returns a SELECT of roll-up rows ``(series, entity_id, period_start, total, weight, low,
high)``; the job inserts them into ``kpi_rollups`` and the readers run them directly, so both compute
the same thing the same way, in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)

from dashboard.kpis import KpiDefinition
from dashboard.store.lines import served_cells
from dashboard.store.schema import (
    accounts,
    cell_value,
    cells,
    churn_events,
    kpi_rollups,
    kpi_samples,
    sites,
    subscribers,
    tickets,
)

FLOWS = ("tickets", "negative_tickets", "positive_tickets", "churned")
STOCKS = ("subscribers", "revenue")
RISK = "revenue_at_risk"
NEGATIVE_BELOW = -0.2
POSITIVE_ABOVE = 0.2
DAYS_PER_MONTH = 30.44
TRAFFIC_KPI = "traffic_gb"
ROLLUP_COLUMNS = ["series", "entity_id", "period_start", "total", "weight", "low", "high"]


def floor_time(t: datetime, grain_s: int) -> datetime:
    """The start of the period of ``grain_s`` seconds that holds ``t`` (periods align to the epoch)."""
    epoch = datetime(1970, 1, 1)
    secs = int((t - epoch).total_seconds())
    return epoch + timedelta(seconds=secs - secs % grain_s)


def bucket(col: Any, grain_s: int, dialect: str) -> Any:
    """``col`` truncated to the hour or the day, in SQL (SQLite keeps times as ISO text)."""
    if grain_s not in (3600, 86400):
        raise ValueError(f"roll-up grains are 3600 and 86400 s, got {grain_s}")
    if dialect == "postgresql":
        unit = "'hour'" if grain_s == 3600 else "'day'"
        return func.date_trunc(literal_column(unit), col)
    # Literal columns, not bound parameters: the same expression appears in GROUP BY.
    n, suffix = (13, "':00:00.000000'") if grain_s == 3600 else (10, "' 00:00:00.000000'")
    text = func.substr(col, literal_column("1"), literal_column(str(n)), type_=String)
    return type_coerce(text.op("||")(literal_column(suffix)), DateTime)


# --- topology ---------------------------------------------------------------------------------


def cell_sites() -> Any:
    """(cell_id, site_id), one row per cell even when two sources describe it."""
    return (
        select(cells.c.id.label("cell_id"), func.min(cells.c.site_id).label("site_id"))
        .group_by(cells.c.id)
        .subquery("cs")
    )


def cell_regions() -> Any:
    """(cell_id, site_id, region_id), one row per cell.

    One grouped query, so SQLite materialises it and joins roll-up rows to it by an index rather
    than scanning the roll-ups once per site.
    """
    return (
        select(
            cells.c.id.label("cell_id"),
            func.min(cells.c.site_id).label("site_id"),
            func.min(sites.c.region_id).label("region_id"),
        )
        .select_from(cells.outerjoin(sites, sites.c.id == cells.c.site_id))
        .group_by(cells.c.id)
        .subquery("cr")
    )


def segment_lines() -> Any:
    """(cell_id, segment, lines, share): the segment's traffic-share-weighted lines on each cell."""
    cv = cell_value
    per = (
        select(cv.c.cell_id, cv.c.segment, func.sum(cv.c.lines).label("lines"))
        .group_by(cv.c.cell_id, cv.c.segment)
        .subquery("per")
    )
    tot = select(cv.c.cell_id, func.sum(cv.c.lines).label("all_lines")).group_by(cv.c.cell_id).subquery("tot")
    return (
        select(
            per.c.cell_id,
            per.c.segment,
            per.c.lines,
            (per.c.lines / tot.c.all_lines).label("share"),
        )
        .select_from(per.join(tot, tot.c.cell_id == per.c.cell_id))
        .where(per.c.lines > 0, tot.c.all_lines > 0)
        .subquery("sl")
    )


def sample_cell_rows(
    kpis: Sequence[KpiDefinition],
    *,
    grain_s: int | None,
    lo: datetime,
    hi: datetime,
    dialect: str,
    cell_ids: Sequence[str] | None = None,
) -> Any:
    """Roll-up rows per cell of the sampled ``kpis`` in [lo, hi): per sample period, or per bucket.

    mean, sum, min, max: total = sum of values, weight = number of samples. traffic_weighted:
    total = sum(value x traffic_gb), weight = sum(traffic_gb), traffic of the same cell, period and
    source; a sample without that traffic counts nowhere. low/high are the smallest and largest sample.

    The samples are read once and hashed twice, never sorted: first one row per cell, period and
    source with a column per KPI (the primary key holds one value per KPI there) and the traffic
    beside them, then that row taken apart into one (KPI, value, weight) row per KPI and added up per
    KPI, cell and period. Pairing each sample with its traffic by a window instead sorted every
    day's samples and read them twice (plain and weighted KPIs apart).
    """
    if not kpis:
        raise ValueError("no sampled KPIs given")
    s = kpi_samples.alias("s")
    where = [s.c.entity_type == "cell", s.c.period_start >= lo, s.c.period_start < hi]
    if cell_ids is not None:
        where.append(s.c.entity_id.in_(list(cell_ids)))
    # Plain KPIs first, then the weighted ones: an index below len(plain) has weight 1 a sample.
    plain = sorted({k.name for k in kpis if k.aggregate != "traffic_weighted"})
    weighted = sorted({k.name for k in kpis if k.aggregate == "traffic_weighted"} - set(plain))
    names = [*plain, *weighted]
    read = sorted({*names, TRAFFIC_KPI} if weighted else set(names))
    columns = [func.max(case((s.c.kpi == name, s.c.value))).label(f"v{i}") for i, name in enumerate(names)]
    if weighted and TRAFFIC_KPI not in names:
        columns.append(func.max(case((s.c.kpi == TRAFFIC_KPI, s.c.value))).label("traffic"))
    wide = (
        select(s.c.entity_id, s.c.period_start, *columns)
        .where(*where, s.c.kpi.in_(read))
        .group_by(s.c.entity_id, s.c.period_start, s.c.source)
        .subquery("wide")
    )
    series: list[Any] = [
        select(literal_column(f"'{name}'", String).label("series"), literal_column(str(i)).label("i"))
        for i, name in enumerate(names)
    ]
    listed: Any = union_all(*series) if len(series) > 1 else series[0]
    k = listed.subquery("k")
    value = case({i: wide.c[f"v{i}"] for i in range(len(names))}, value=k.c.i)
    one = literal_column("1.0", Float)
    traffic = wide.c[f"v{names.index(TRAFFIC_KPI)}"] if TRAFFIC_KPI in names else wide.c.get("traffic")
    weight = case((k.c.i >= len(plain), traffic), else_=one) if weighted else one
    period = wide.c.period_start if grain_s is None else bucket(wide.c.period_start, grain_s, dialect)
    return (
        select(
            k.c.series.label("series"),
            wide.c.entity_id.label("entity_id"),
            period.label("period_start"),
            func.sum(value * weight).label("total"),
            func.sum(weight).label("weight"),
            func.min(value).label("low"),
            func.max(value).label("high"),
        )
        .select_from(wide.join(k, true()))
        .where(value.is_not(None), weight.is_not(None))
        .group_by(k.c.series, wide.c.entity_id, period)
    )


# --- levels: site, region, network, segment from cell rows ------------------------------------


def level_rows(cell_rows: Any, level: str, *, sum_series: Sequence[str] = (), measures: bool = False) -> Any:
    """Cell rows (a subquery with ROLLUP_COLUMNS) rolled up to ``level`` by adding totals and weights.

    Technical KPIs per segment weight each cell's value by the segment's lines on it (``cell_value``);
    a ``sum`` KPI gives the segment its share of the cell's total instead. ``measures`` rows count one
    period each (weight 1), whatever the number of cells.
    """
    r = cell_rows
    if level == "network":
        entity: Any = literal_column("'all'", String)
        frm: Any = r
        where: list[Any] = []
    elif level in ("site", "region"):
        cr = cell_regions()
        entity = cr.c.site_id if level == "site" else cr.c.region_id
        frm = r.join(cr, cr.c.cell_id == r.c.entity_id)
        where = [entity.is_not(None)]
    elif level == "segment":
        if measures:
            raise ValueError("business measures per segment are computed from the lines' accounts")
        sl = segment_lines()
        entity = sl.c.segment
        frm = r.join(sl, sl.c.cell_id == r.c.entity_id)
        where = []
        is_sum = r.c.series.in_(list(sum_series)) if sum_series else literal(False)
        total = func.sum(
            case(
                (is_sum, r.c.total * sl.c.share),
                (r.c.weight > 0, sl.c.lines * r.c.total / r.c.weight),
                else_=0.0,
            )
        )
        weight = func.sum(case((is_sum, r.c.weight * sl.c.share), (r.c.weight > 0, sl.c.lines), else_=0.0))
        return (
            select(
                r.c.series,
                entity.label("entity_id"),
                r.c.period_start,
                total.label("total"),
                weight.label("weight"),
                func.min(r.c.low).label("low"),
                func.max(r.c.high).label("high"),
            )
            .select_from(frm)
            .where(*where)
            .group_by(r.c.series, entity, r.c.period_start)
        )
    else:
        raise ValueError(f"unknown level {level!r}")
    weight_sum: Any = cast(literal_column("1.0"), Float) if measures else func.sum(r.c.weight)
    group = [r.c.series, r.c.period_start] if level == "network" else [r.c.series, entity, r.c.period_start]
    return (
        select(
            r.c.series,
            entity.label("entity_id"),
            r.c.period_start,
            func.sum(r.c.total).label("total"),
            weight_sum.label("weight"),
            func.min(r.c.low).label("low"),
            func.max(r.c.high).label("high"),
        )
        .select_from(frm)
        .where(*where)
        .group_by(*group)
    )


# --- business measures from tickets, churn events and lines -----------------------------------


def _account_segments() -> Any:
    return (
        select(accounts.c.id.label("account_id"), func.min(accounts.c.segment).label("segment"))
        .group_by(accounts.c.id)
        .subquery("aseg")
    )


def _line_accounts() -> Any:
    return (
        select(
            subscribers.c.id.label("subscriber_id"), func.min(subscribers.c.account_id).label("account_id")
        )
        .group_by(subscribers.c.id)
        .subquery("lacc")
    )


def _segment(col: Any) -> Any:
    # A literal, not a bound parameter: the expression is also grouped by.
    return func.coalesce(col, literal_column("'consumer'", String))


def _flow_where(measure: str, t: Any) -> list[Any]:
    if measure == "negative_tickets":
        return [t.c.sentiment < NEGATIVE_BELOW]
    if measure == "positive_tickets":
        return [t.c.sentiment > POSITIVE_ABOVE]
    return []


def flow_rows(
    measure: str,
    level: str,
    *,
    grain_s: int,
    lo: datetime,
    hi: datetime,
    dialect: str,
    segment: str | None = None,
) -> Any:
    """Tickets (all, negative, positive) or churned lines per ``level`` (cell, network, segment) and period.

    At cell level each event counts for its line's cells by traffic share, so cells add up to the
    lines' total; ``segment`` restricts to the lines of accounts in that segment.
    """
    if measure == "churned":
        ev: Any = churn_events
        when = ev.c.occurred_at
        sub_id = ev.c.subscriber_id
        account = ev.c.account_id
        extra: list[Any] = []
    elif measure in ("tickets", "negative_tickets", "positive_tickets"):
        ev = tickets
        when = ev.c.created_at
        sub_id = ev.c.subscriber_id
        account = ev.c.account_id
        extra = _flow_where(measure, ev)
    else:
        raise ValueError(f"{measure!r} is not a flow measure")
    period = bucket(when, grain_s, dialect)
    la, ag = _line_accounts(), _account_segments()
    seg = _segment(ag.c.segment)
    ev_from: Any = ev
    where = [when >= lo, when < hi, *extra]
    if segment is not None or level == "segment":
        ev_from = ev.outerjoin(la, la.c.subscriber_id == sub_id).outerjoin(
            ag, ag.c.account_id == func.coalesce(account, la.c.account_id)
        )
        if segment is not None:
            where.append(seg == segment)
    series = literal_column(f"'{measure}'", String).label("series")
    if level == "cell":
        lc = served_cells(name="lc")
        return (
            select(
                series,
                lc.c.cell_id.label("entity_id"),
                period.label("period_start"),
                func.sum(lc.c.share).label("total"),
                cast(literal_column("1.0"), Float).label("weight"),
                cast(null(), Float).label("low"),
                cast(null(), Float).label("high"),
            )
            .select_from(ev_from.join(lc, lc.c.subscriber_id == sub_id))
            .where(*where)
            .group_by(lc.c.cell_id, period)
        )
    entity: Any = seg if level == "segment" else literal_column("'all'", String)
    group = [entity, period] if level == "segment" else [period]
    return (
        select(
            series,
            entity.label("entity_id"),
            period.label("period_start"),
            cast(func.count(), Float).label("total"),
            cast(literal_column("1.0"), Float).label("weight"),
            cast(null(), Float).label("low"),
            cast(null(), Float).label("high"),
        )
        .select_from(ev_from)
        .where(*where)
        .group_by(*group)
    )


def days_table(days: Sequence[datetime]) -> Any:
    """A derived table of (day, day_end), one row per day start given."""
    if not days:
        raise ValueError("no days given")
    rows = [
        select(
            literal(d, DateTime).label("day"),
            literal(d + timedelta(days=1), DateTime).label("day_end"),
        )
        for d in days
    ]
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("days")


def stock_rows(
    measure: str,
    level: str,
    *,
    days: Sequence[datetime],
    segment: str | None = None,
) -> Any:
    """Lines in service (``subscribers``) or their recurring revenue per day (``revenue``), per day.

    A line is in service on a day when it was activated before the day ended and had not churned
    before it began; a line marked churned without a churn event is left out (its date is unknown).
    """
    if measure not in STOCKS:
        raise ValueError(f"{measure!r} is not a stock measure")
    d = days_table(days)
    s = subscribers
    churned_at = (
        select(churn_events.c.subscriber_id, func.min(churn_events.c.occurred_at).label("churned_at"))
        .group_by(churn_events.c.subscriber_id)
        .subquery("ch")
    )
    in_service = and_(
        or_(s.c.activated_at.is_(None), s.c.activated_at < d.c.day_end),
        or_(churned_at.c.churned_at.is_(None), churned_at.c.churned_at >= d.c.day),
        or_(churned_at.c.churned_at.is_not(None), s.c.status != "churned"),
    )
    per_line = (
        cast(literal_column("1.0"), Float)
        if measure == "subscribers"
        else func.coalesce(s.c.arpu, 0.0) / DAYS_PER_MONTH
    )
    series = literal_column(f"'{measure}'", String).label("series")
    base = s.outerjoin(churned_at, churned_at.c.subscriber_id == s.c.id)
    ag = _account_segments()
    seg = _segment(ag.c.segment)
    where: list[Any] = []
    if segment is not None or level == "segment":
        base = base.outerjoin(ag, ag.c.account_id == s.c.account_id)
        if segment is not None:
            where.append(seg == segment)
    base = base.join(d, in_service)
    if level == "cell":
        lc = served_cells(name="lc")
        return (
            select(
                series,
                lc.c.cell_id.label("entity_id"),
                d.c.day.label("period_start"),
                func.sum(lc.c.share * per_line).label("total"),
                cast(literal_column("1.0"), Float).label("weight"),
                cast(null(), Float).label("low"),
                cast(null(), Float).label("high"),
            )
            .select_from(base.join(lc, lc.c.subscriber_id == s.c.id))
            .where(*where)
            .group_by(lc.c.cell_id, d.c.day)
        )
    entity: Any = seg if level == "segment" else literal_column("'all'", String)
    group = [entity, d.c.day] if level == "segment" else [d.c.day]
    return (
        select(
            series,
            entity.label("entity_id"),
            d.c.day.label("period_start"),
            func.sum(per_line).label("total"),
            cast(literal_column("1.0"), Float).label("weight"),
            cast(null(), Float).label("low"),
            cast(null(), Float).label("high"),
        )
        .select_from(base)
        .where(*where)
        .group_by(*group)
    )


def stored_rows(series: Sequence[str], level: str, grain_s: int, lo: datetime, hi: datetime) -> Any:
    """Rows of ``kpi_rollups`` as roll-up rows (for rolling them further)."""
    r = kpi_rollups
    return select(
        r.c.series, r.c.entity_id, r.c.period_start, r.c.total, r.c.weight, r.c.low, r.c.high
    ).where(
        r.c.series.in_(list(series)),
        r.c.level == level,
        r.c.grain_s == grain_s,
        r.c.period_start >= lo,
        r.c.period_start < hi,
    )


def rebucket_rows(
    series: Sequence[str],
    level: str,
    *,
    from_grain: int,
    to_grain: int,
    lo: datetime,
    hi: datetime,
    dialect: str,
) -> Any:
    """Stored rows of ``from_grain`` added up into periods of ``to_grain`` (hours into days)."""
    return rebucket(stored_rows(series, level, from_grain, lo, hi).subquery("fine"), to_grain, dialect)


def rebucket(r: Any, to_grain: int, dialect: str) -> Any:
    """Roll-up rows (a subquery with ROLLUP_COLUMNS) added up into periods of ``to_grain``."""
    period = bucket(r.c.period_start, to_grain, dialect)
    return select(
        r.c.series,
        r.c.entity_id,
        period.label("period_start"),
        func.sum(r.c.total).label("total"),
        func.sum(r.c.weight).label("weight"),
        func.min(r.c.low).label("low"),
        func.max(r.c.high).label("high"),
    ).group_by(r.c.series, r.c.entity_id, period)
