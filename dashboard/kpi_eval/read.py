"""Reading KPI values: one series, a panel of entities x periods, and the current status cards.

Values are computed from roll-up rows (``kpi_rollups``; cell samples at 15 minutes, and the hourly
roll-ups spread over their quarters for periods older than the raw samples retention keeps): a sampled KPI
by its ``aggregate`` (mean and traffic_weighted: total / weight, sum: total, min: low, max: high);
a ratio by evaluating its formula on the measures summed to the level and period (a ratio of sums);
a derived KPI by evaluating its expression on its inputs' values at the same level and period.
Measures: flows (tickets, churned) are sums over the period; stocks (lines in service, revenue per
day) and revenue at risk are the period's average level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from connectors.canonical import SEGMENTS
from dashboard.errors import VantageError
from dashboard.kpi_eval import _sql
from dashboard.kpi_eval._sql import FLOWS, RISK, STOCKS, floor_time
from dashboard.kpis import MEASURES, Catalogue, KpiDefinition, evaluate, references
from dashboard.store.db import bulk_frame, read_frame
from dashboard.store.schema import KPI_LEVELS, cells, kpi_rollups, kpi_samples, kpi_status, regions, sites

Scope = tuple[str, str] | None
ROW_COLUMNS = _sql.ROLLUP_COLUMNS
SPARK_HOURS = 24
SPARK_DAYS = 14


class KpiReadError(VantageError, ValueError):
    """A request the readers cannot answer: unknown KPI, level, grain or scope."""


# --- what a KPI reads -------------------------------------------------------------------------


def inputs(catalogue: Catalogue, kpi: KpiDefinition) -> set[str]:
    """The stored series a KPI is computed from: sampled KPI names and measure names."""
    if kpi.type == "simple":
        return {kpi.name} if kpi.source == "samples" else {kpi.source}
    if kpi.type == "ratio":
        return references(kpi.formula or "")
    out: set[str] = set()
    for ref in references(kpi.expression or ""):
        out |= inputs(catalogue, catalogue.get(ref))
    return out


def _is_sampled(catalogue: Catalogue, name: str) -> bool:
    return name in catalogue.names and name not in MEASURES and catalogue.get(name).source == "samples"


def check_grain(catalogue: Catalogue, series: Iterable[str], grain_s: int) -> None:
    if grain_s == 900:
        business = sorted(s for s in series if not _is_sampled(catalogue, s))
        if business:
            raise KpiReadError(f"15-minute values exist for cell samples only, not {', '.join(business)}")
    elif grain_s != 3600 and (grain_s <= 0 or grain_s % 86400):
        raise KpiReadError(f"grain: expected 900, 3600 or a multiple of 86400 seconds, got {grain_s}")


# --- fetching roll-up rows --------------------------------------------------------------------


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series": pd.Series(dtype=object),
            "entity_id": pd.Series(dtype=object),
            "period_start": pd.Series(dtype="datetime64[ns]"),
            **{c: pd.Series(dtype=float) for c in ("total", "weight", "low", "high")},
        }
    )


def _frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    return _typed(read_frame(conn, stmt))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return _empty_rows()
    df["period_start"] = pd.to_datetime(df["period_start"])
    for c in ("total", "weight", "low", "high"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["entity_id"] = df["entity_id"].astype(str)
    return df[ROW_COLUMNS]


def _stored(
    conn: Connection,
    series: Sequence[str],
    level: str,
    grain_s: int,
    lo: datetime,
    hi: datetime,
    entities: Any,
) -> pd.DataFrame:
    if not series:
        return _empty_rows()
    stmt = _sql.stored_rows(series, level, grain_s, lo, hi)
    if entities is not None:
        stmt = stmt.where(kpi_rollups.c.entity_id.in_(list(entities)))
    return _typed(bulk_frame(conn, stmt))


def _rebucket(rows: pd.DataFrame, grain_s: int) -> pd.DataFrame:
    if rows.empty:
        return rows
    secs = (rows["period_start"] - pd.Timestamp(0)).dt.total_seconds().astype("int64")
    rows = rows.assign(period_start=pd.Timestamp(0) + pd.to_timedelta(secs - secs % grain_s, unit="s"))
    out = rows.groupby(["series", "entity_id", "period_start"], as_index=False).agg(
        total=("total", "sum"), weight=("weight", "sum"), low=("low", "min"), high=("high", "max")
    )
    return out[ROW_COLUMNS]


def _hours_from_days(rows: pd.DataFrame, since: datetime, until: datetime) -> pd.DataFrame:
    """A stock's daily rows as that level in each hour of the day (stocks are kept per day)."""
    if rows.empty:
        return rows
    hours = pd.DataFrame({"h": np.arange(24)})
    out = rows.merge(hours, how="cross")
    out["period_start"] = out["period_start"] + pd.to_timedelta(out.pop("h"), unit="h")
    keep = (out["period_start"] >= pd.Timestamp(since)) & (out["period_start"] < pd.Timestamp(until))
    return out.loc[keep, ROW_COLUMNS]


def _technical_rows(
    conn: Connection,
    catalogue: Catalogue,
    names: Sequence[str],
    *,
    level: str,
    grain_s: int,
    since: datetime,
    until: datetime,
    entities: Any,
    cell_ids: Sequence[str] | None,
) -> pd.DataFrame:
    kpis = [catalogue.get(n) for n in names]
    if grain_s != 900:
        stored_grain = 3600 if grain_s == 3600 else 86400
        lo = floor_time(since, stored_grain)
        rows = _stored(conn, names, level, stored_grain, lo, until, entities)
        return rows if grain_s in (3600, 86400) else _rebucket(rows, grain_s)
    # Quarter hours come from the raw samples, which retention keeps for fewer days than roll-ups:
    # before the oldest sample kept, they come from the hourly roll-ups (_quarters_from_hours).
    raw_from = max(raw_samples_from(conn, names, until), since)
    parts = []
    if raw_from > since:
        older = _stored(conn, names, level, 3600, floor_time(since, 3600), raw_from, entities)
        parts.append(_quarters_from_hours(older))
    if raw_from < until:
        parts.append(_sample_rows(conn, kpis, level, raw_from, until, entities, cell_ids))
    return _concat(parts)


def raw_samples_from(conn: Connection, names: Sequence[str], until: datetime) -> datetime:
    """The hour the kept raw samples of ``names`` begin (``until`` when none are kept): one index
    probe per KPI (per partition on PostgreSQL)."""
    ks = kpi_samples
    firsts = [
        conn.execute(select(func.min(ks.c.period_start)).where(ks.c.kpi == name)).scalar() for name in names
    ]
    kept = [_as_dt(t) for t in firsts if t is not None]
    return floor_time(min(kept), 3600) if kept else until


def _quarters_from_hours(rows: pd.DataFrame) -> pd.DataFrame:
    """Hourly roll-up rows as four quarter-hour rows each, the hour's totals and weights spread evenly:
    every quarter shows the hour's mean (total / weight), a sum's quarters add up to the hour's sum,
    and low and high are the hour's."""
    if rows.empty:
        return rows
    quarters = pd.DataFrame({"q": np.arange(4)})
    out = rows.merge(quarters, how="cross")
    out["period_start"] = out["period_start"] + pd.to_timedelta(out.pop("q") * 900, unit="s")
    out["total"] = out["total"] / 4
    out["weight"] = out["weight"] / 4
    return out[ROW_COLUMNS]


def _sample_rows(
    conn: Connection,
    kpis: Sequence[KpiDefinition],
    level: str,
    since: datetime,
    until: datetime,
    entities: Any,
    cell_ids: Sequence[str] | None,
) -> pd.DataFrame:
    """Quarter-hour rows of ``level`` straight from the raw samples."""
    if level == "cell":
        return _cell_sample_rows(conn, kpis, since, until, cell_ids)
    dialect = conn.dialect.name
    cell_rows = _sql.sample_cell_rows(
        kpis, grain_s=None, lo=since, hi=until, dialect=dialect, cell_ids=cell_ids
    )
    sums = [k.name for k in kpis if k.aggregate == "sum"]
    stmt = _sql.level_rows(cell_rows.subquery("cellrows"), level, sum_series=sums)
    rows = _frame(conn, stmt)
    if entities is not None:
        rows = rows[rows["entity_id"].isin(list(entities))]
    return rows


def _cell_sample_rows(
    conn: Connection,
    kpis: Sequence[KpiDefinition],
    since: datetime,
    until: datetime,
    cell_ids: Sequence[str] | None,
) -> pd.DataFrame:
    """Quarter-hour rows per cell of the sampled ``kpis`` in [since, until), from the samples as they are.

    The same rows :func:`_sql.sample_cell_rows` adds up in the database (a sample is total = value,
    weight 1, low = high = value; a ``traffic_weighted`` one is weighed by the traffic of its cell,
    period and source, and counts nowhere without it; several sources of a cell and period add up),
    but at 15 minutes there is nothing to add up unless a cell has several sources: the samples are
    read in bulk (:func:`bulk_frame`: COPY on PostgreSQL) and put in shape here, which moves a day of
    20,000 cells several times faster than the database's two hash aggregates and a row per value.
    """
    if not kpis:
        raise ValueError("no sampled KPIs given")
    plain = sorted({k.name for k in kpis if k.aggregate != "traffic_weighted"})
    weighted = sorted({k.name for k in kpis if k.aggregate == "traffic_weighted"} - set(plain))
    wanted = sorted({*plain, *weighted, _sql.TRAFFIC_KPI} if weighted else set(plain))
    s = kpi_samples
    stmt = select(s.c.kpi, s.c.entity_id, s.c.period_start, s.c.source, s.c.value).where(
        s.c.entity_type == "cell", s.c.period_start >= since, s.c.period_start < until, s.c.kpi.in_(wanted)
    )
    if cell_ids is not None:
        stmt = stmt.where(s.c.entity_id.in_(list(cell_ids)))
    raw = bulk_frame(conn, stmt)
    raw = raw[raw["value"].notna()]
    if raw.empty:
        return _empty_rows()
    kpi = raw["kpi"]
    parts = []
    own = raw[kpi.isin(plain)] if len(plain) < len(wanted) else raw
    if len(own):
        v = own["value"].to_numpy(float)
        keep = own[["kpi", "entity_id", "period_start", "source"]]
        parts.append(keep.assign(total=v, weight=1.0, low=v, high=v))
    if weighted:
        at = ["entity_id", "period_start", "source"]
        traffic = raw.loc[kpi == _sql.TRAFFIC_KPI, [*at, "value"]].rename(columns={"value": "traffic"})
        heavy = raw[kpi.isin(weighted)].merge(traffic, on=at, how="inner")
        v, w = heavy["value"].to_numpy(float), heavy["traffic"].to_numpy(float)
        parts.append(heavy[["kpi", *at]].assign(total=v * w, weight=w, low=v, high=v))
    rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    source = rows["source"]
    if len(source) and (source != source.iloc[0]).any():
        rows = rows.groupby(["kpi", "entity_id", "period_start"], as_index=False, sort=False).agg(
            total=("total", "sum"), weight=("weight", "sum"), low=("low", "min"), high=("high", "max")
        )
    return _typed(rows.rename(columns={"kpi": "series"}))


def _business_rows(
    conn: Connection,
    names: Sequence[str],
    *,
    level: str,
    grain_s: int,
    since: datetime,
    until: datetime,
    entities: Any,
) -> pd.DataFrame:
    stocks = [n for n in names if n in STOCKS]
    others = [n for n in names if n not in STOCKS]
    day0 = floor_time(since, 86400)
    parts = []
    if grain_s == 3600:
        parts.append(_stored(conn, others, level, 3600, floor_time(since, 3600), until, entities))
        parts.append(
            _hours_from_days(_stored(conn, stocks, level, 86400, day0, until, entities), since, until)
        )
    else:
        daily = _stored(conn, [*others, *stocks], level, 86400, day0, until, entities)
        parts.append(daily if grain_s == 86400 else _rebucket(daily, grain_s))
    return _concat(parts)


def _segment_business_rows(
    conn: Connection,
    names: Sequence[str],
    *,
    segment: str,
    level: str,
    grain_s: int,
    since: datetime,
    until: datetime,
    cell_map: pd.DataFrame,
) -> pd.DataFrame:
    """Business measures of one segment's lines per cell, site or region, computed from the sources."""
    dialect = conn.dialect.name
    day0 = floor_time(since, 86400)
    end = floor_time(until - timedelta(microseconds=1), 86400) + timedelta(days=1)
    days = [day0 + timedelta(days=i) for i in range((end - day0) // timedelta(days=1))]
    parts = []
    flow_grain = 3600 if grain_s == 3600 else 86400
    for name in names:
        if name in FLOWS:
            stmt = _sql.flow_rows(
                name, "cell", grain_s=flow_grain, lo=day0, hi=end, dialect=dialect, segment=segment
            )
            parts.append(_frame(conn, stmt))
        elif name in STOCKS:
            for i in range(0, len(days), 60):
                stmt = _sql.stock_rows(name, "cell", days=days[i : i + 60], segment=segment)
                rows = _frame(conn, stmt)
                parts.append(_hours_from_days(rows, since, until) if grain_s == 3600 else rows)
        else:
            raise KpiReadError(f"{name} is not kept per segment below the network (revenue at risk)")
    rows = _concat(parts)
    if level != "cell" and not rows.empty:
        key = "site_id" if level == "site" else "region_id"
        mapping = cell_map.set_index("cell_id")[key]
        rows = rows.assign(entity_id=rows["entity_id"].map(mapping)).dropna(subset=["entity_id"])
        rows = rows.groupby(["series", "entity_id", "period_start"], as_index=False).agg(
            total=("total", "sum"), weight=("weight", "max"), low=("low", "min"), high=("high", "max")
        )
    if grain_s > 86400:
        rows = _rebucket(rows, grain_s)
    return rows[ROW_COLUMNS] if not rows.empty else _empty_rows()


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True)[ROW_COLUMNS] if parts else _empty_rows()


def fetch_rows(
    conn: Connection,
    catalogue: Catalogue,
    series: Iterable[str],
    *,
    level: str,
    grain_s: int,
    since: datetime,
    until: datetime,
    entities: Sequence[str] | None = None,
    scope: Scope = None,
) -> pd.DataFrame:
    """Roll-up rows (series, entity_id, period_start, total, weight, low, high) of the given series."""
    names = sorted(set(series))
    check_grain(catalogue, names, grain_s)
    technical = [n for n in names if _is_sampled(catalogue, n)]
    business = [n for n in names if n not in technical]
    unknown = [n for n in business if n not in MEASURES or n == "samples"]
    if unknown:
        raise KpiReadError(f"unknown series {unknown[0]!r}")
    cell_ids = list(entities) if level == "cell" and entities is not None else None
    parts = []
    if technical:
        parts.append(
            _technical_rows(
                conn,
                catalogue,
                technical,
                level=level,
                grain_s=grain_s,
                since=since,
                until=until,
                entities=entities,
                cell_ids=cell_ids,
            )
        )
    if business:
        if scope is not None and scope[0] == "segment" and level != "segment":
            rows = _segment_business_rows(
                conn,
                business,
                segment=scope[1],
                level=level,
                grain_s=grain_s,
                since=since,
                until=until,
                cell_map=_cell_map(conn),
            )
            if entities is not None:
                rows = rows[rows["entity_id"].isin(list(entities))]
            parts.append(rows)
        else:
            parts.append(
                _business_rows(
                    conn, business, level=level, grain_s=grain_s, since=since, until=until, entities=entities
                )
            )
    rows = _concat(parts)
    keep = (rows["period_start"] >= pd.Timestamp(floor_time(since, min(grain_s, 86400)))) & (
        rows["period_start"] < pd.Timestamp(until)
    )
    return rows[keep].reset_index(drop=True)


def fetch_levels(
    conn: Connection,
    catalogue: Catalogue,
    series: Iterable[str],
    *,
    levels: Sequence[str],
    grain_s: int,
    since: datetime,
    until: datetime,
) -> dict[str, pd.DataFrame]:
    """:func:`fetch_rows` of several levels at once, for the jobs that evaluate every entity.

    Quarter hours of sampled KPIs are read from the samples once, per cell, and rolled up to the other
    levels here, the way :func:`_sql.level_rows` does in the database (sites and regions add up their
    cells' totals and weights, the network all cells', a segment weighs each cell's value by its lines
    there or takes its share of a ``sum``), instead of one read of every sample per level. A KPI's
    values are the same either way (:func:`kpi_values`). Other grains read their stored rows per level.
    """
    names = sorted(set(series))
    if grain_s != 900 or not names or set(levels) <= {"cell"}:
        return {
            lvl: fetch_rows(conn, catalogue, names, level=lvl, grain_s=grain_s, since=since, until=until)
            for lvl in levels
        }
    cell = fetch_rows(conn, catalogue, names, level="cell", grain_s=900, since=since, until=until)
    sums = {n for n in names if catalogue.get(n).aggregate == "sum"}
    topology = _cell_map(conn) if {"site", "region"} & set(levels) else None
    lines = read_frame(conn, select(_sql.segment_lines())) if "segment" in levels else None
    return {lvl: cell if lvl == "cell" else _roll_cells(cell, lvl, topology, lines, sums) for lvl in levels}


def _roll_cells(
    cell: pd.DataFrame, level: str, topology: pd.DataFrame | None, lines: pd.DataFrame | None, sums: set[str]
) -> pd.DataFrame:
    """Cell rows added up to ``level`` (see :func:`fetch_levels`)."""
    if cell.empty:
        return _empty_rows()
    if level == "network":
        rows = cell.assign(entity_id="all")
    elif level in ("site", "region") and topology is not None:
        to = topology.drop_duplicates("cell_id").set_index("cell_id")[f"{level}_id"]
        rows = cell.assign(entity_id=cell["entity_id"].map(to)).dropna(subset=["entity_id"])
    elif level == "segment" and lines is not None:
        lines = lines.assign(cell_id=lines["cell_id"].astype(str))
        joined = cell.merge(lines, left_on="entity_id", right_on="cell_id")
        total, weight = joined["total"].to_numpy(float), joined["weight"].to_numpy(float)
        share, served = joined["share"].to_numpy(float), joined["lines"].to_numpy(float)
        is_sum = joined["series"].isin(list(sums)).to_numpy()
        has = weight > 0
        mean = np.divide(total, weight, out=np.zeros_like(total), where=has)
        rows = pd.DataFrame(
            {
                "series": joined["series"],
                "entity_id": joined["segment"],
                "period_start": joined["period_start"],
                "total": np.where(is_sum, total * share, np.where(has, served * mean, 0.0)),
                "weight": np.where(is_sum, weight * share, np.where(has, served, 0.0)),
                "low": joined["low"],
                "high": joined["high"],
            }
        )
    else:
        raise KpiReadError(f"unknown level {level!r}")
    if rows.empty:
        return _empty_rows()
    out = rows.groupby(["series", "entity_id", "period_start"], as_index=False, sort=False).agg(
        total=("total", "sum"), weight=("weight", "sum"), low=("low", "min"), high=("high", "max")
    )
    out["entity_id"] = out["entity_id"].astype(str)
    return out[ROW_COLUMNS]


# --- values -----------------------------------------------------------------------------------


def _keyed(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    return rows[rows["series"] == name].set_index(["entity_id", "period_start"])


def _series_value(catalogue: Catalogue, rows: pd.DataFrame, name: str) -> pd.Series:
    """The value of one stored series per (entity_id, period_start)."""
    r = _keyed(rows, name)
    if name in FLOWS:
        return r["total"]
    if name in STOCKS or name == RISK:
        return r["total"] / r["weight"].where(r["weight"] > 0)
    agg = catalogue.get(name).aggregate
    if agg == "sum":
        return r["total"]
    if agg == "min":
        return r["low"]
    if agg == "max":
        return r["high"]
    return r["total"] / r["weight"].where(r["weight"] > 0)


def kpi_values(catalogue: Catalogue, kpi: KpiDefinition, rows: pd.DataFrame) -> pd.Series:
    """A KPI's value per (entity_id, period_start) where its inputs have rows (no gaps filled)."""
    if kpi.type == "simple":
        return _series_value(catalogue, rows, inputs(catalogue, kpi).pop()).rename(kpi.name)
    if kpi.type == "ratio":
        refs = sorted(references(kpi.formula or ""))
        values = {m: _series_value(catalogue, rows, m) for m in refs}
        frame = pd.concat(values, axis=1) if values else pd.DataFrame()
        for m in refs:
            if m in FLOWS:  # no row is no event: zero, wherever the other measures have a value
                frame[m] = frame[m].fillna(0.0)
        out = evaluate(kpi.formula or "", {m: frame[m] for m in refs})
        return pd.Series(out, index=frame.index, dtype=float).rename(kpi.name)
    refs = sorted(references(kpi.expression or ""))
    parts = {r: kpi_values(catalogue, catalogue.get(r), rows) for r in refs}
    frame = pd.concat(parts, axis=1)
    out = evaluate(kpi.expression or "", {r: frame[r] for r in refs})
    return pd.Series(out, index=frame.index, dtype=float).rename(kpi.name)


def periods(since: datetime, until: datetime, grain_s: int) -> pd.DatetimeIndex:
    """Period starts of ``grain_s`` from the one holding ``since`` up to ``until`` (exclusive)."""
    start = floor_time(since, grain_s)
    return pd.date_range(start, until - timedelta(microseconds=1), freq=f"{grain_s}s", name="period_start")


def apply_no_data(values: pd.Series, rule: str) -> pd.Series:
    """gap: left as NaN; zero: NaN counts as 0; last: the last value carries forward."""
    if rule == "zero":
        return values.fillna(0.0)
    if rule == "last":
        return values.ffill()
    return values


def _validate(catalogue: Catalogue, level: str, grain_s: int) -> None:
    if level not in KPI_LEVELS:
        raise KpiReadError(f"level: expected one of {', '.join(KPI_LEVELS)}, got {level!r}")
    if grain_s <= 0:
        raise KpiReadError(f"grain: expected a positive number of seconds, got {grain_s}")


def series(
    conn: Connection,
    catalogue: Catalogue,
    kpi: str,
    *,
    level: str,
    entity_id: str,
    grain_s: int,
    since: datetime,
    until: datetime,
) -> pd.DataFrame:
    """One KPI for one entity as [period_start, value], one row per period, the no_data rule applied."""
    _validate(catalogue, level, grain_s)
    try:
        k = catalogue.get(kpi)
    except KeyError:
        raise KpiReadError(f"unknown KPI {kpi!r}") from None
    rows = fetch_rows(
        conn,
        catalogue,
        inputs(catalogue, k),
        level=level,
        grain_s=grain_s,
        since=since,
        until=until,
        entities=[entity_id],
    )
    values = kpi_values(catalogue, k, rows)
    index = periods(since, until, grain_s)
    got = values.xs(entity_id, level="entity_id") if len(values) else pd.Series(dtype=float)
    got = got.reindex(index)
    return pd.DataFrame({"period_start": index, "value": apply_no_data(got, k.no_data).to_numpy(float)})


# --- panels -----------------------------------------------------------------------------------


def _cell_map(conn: Connection) -> pd.DataFrame:
    cr = _sql.cell_regions()
    df = read_frame(conn, select(cr.c.cell_id, cr.c.site_id, cr.c.region_id))
    return df.astype(object)


def entities(conn: Connection, level: str, scope: Scope = None) -> list[str]:
    """The entities of a level, restricted to a region or to the cells serving a segment."""
    if level == "network":
        return ["all"]
    if level == "segment":
        if scope is not None and scope[0] == "segment":
            return [scope[1]]
        return list(SEGMENTS)
    if level == "region" and scope is None:
        return sorted({str(r) for r in conn.execute(select(regions.c.id)).scalars()})
    if level == "site" and scope is None:
        return sorted({str(r) for r in conn.execute(select(sites.c.id)).scalars()})
    if level == "cell" and scope is None:
        return sorted({str(r) for r in conn.execute(select(cells.c.id)).scalars()})
    cmap = _cell_map(conn)
    key = {"cell": "cell_id", "site": "site_id", "region": "region_id"}[level]
    if scope is not None and scope[0] == "region":
        cmap = cmap[cmap["region_id"] == scope[1]]
    elif scope is not None and scope[0] == "segment":
        sl = _sql.segment_lines()
        served = {
            str(c) for c in conn.execute(select(sl.c.cell_id).where(sl.c.segment == scope[1])).scalars()
        }
        cmap = cmap[cmap["cell_id"].isin(served)]
    return sorted({str(v) for v in cmap[key].dropna()})


def _check_scope(level: str, scope: Scope) -> None:
    if scope is None:
        return
    if not (isinstance(scope, tuple) and len(scope) == 2 and scope[0] in ("region", "segment")):
        raise KpiReadError(f"scope: expected None, ('region', id) or ('segment', name), got {scope!r}")
    if scope[0] == "segment" and scope[1] not in SEGMENTS:
        raise KpiReadError(f"scope: expected a segment of {', '.join(SEGMENTS)}, got {scope[1]!r}")
    if scope[0] == "region" and level in ("segment", "network"):
        raise KpiReadError(f"a region scope applies to cell, site or region levels, not {level}")


def panel(
    conn: Connection,
    catalogue: Catalogue,
    kpis: Sequence[str],
    *,
    level: str = "cell",
    grain_s: int = 86400,
    since: datetime,
    until: datetime,
    measures: Sequence[str] = (),
    scope: Scope = None,
) -> pd.DataFrame:
    """KPIs and measure sums per entity and period: columns entity_id, period_start, each KPI, each measure.

    One row per (entity, period) in [since, until); NaN where there is no data (no_data rules are
    not applied: an estimation wants to see the gaps). Measures: flows are sums over the period
    (0 where the entity had lines in service but no event), stocks the period's average.
    """
    _validate(catalogue, level, grain_s)
    _check_scope(level, scope)
    defs = []
    for name in kpis:
        try:
            defs.append(catalogue.get(name))
        except KeyError:
            raise KpiReadError(f"unknown KPI {name!r}") from None
    bad = [m for m in measures if m not in MEASURES or m == "samples"]
    if bad:
        raise KpiReadError(f"unknown measure {bad[0]!r}; expected one of {', '.join(MEASURES)}")
    wanted: set[str] = set(measures)
    if any(m in FLOWS for m in measures):
        wanted.add("subscribers")
    for k in defs:
        wanted |= inputs(catalogue, k)
    ents = entities(conn, level, scope)
    restrict = ents if (scope is not None or level in ("network", "segment")) else None
    rows = fetch_rows(
        conn,
        catalogue,
        wanted,
        level=level,
        grain_s=grain_s,
        since=since,
        until=until,
        entities=restrict,
        scope=scope,
    )
    index = pd.MultiIndex.from_product(
        [ents, periods(since, until, grain_s)], names=["entity_id", "period_start"]
    )
    out = pd.DataFrame(index=index)
    for k in defs:
        out[k.name] = kpi_values(catalogue, k, rows).reindex(index).astype(float)
    if measures:
        lines = _series_value(catalogue, rows, "subscribers").reindex(index)
        for m in measures:
            values = _series_value(catalogue, rows, m).reindex(index).astype(float)
            if m in FLOWS:
                values = values.where(values.notna() | lines.isna(), 0.0)
            out[m] = values
    return out.reset_index()


# --- current status cards ---------------------------------------------------------------------


def _thresholds(k: KpiDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lvl in ("warning", "critical"):
        t = getattr(k.thresholds, lvl)
        if t is not None:
            out[lvl] = {"op": t.op, "value": t.value, "for_s": t.for_s}
    return out


def _none(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def current(
    conn: Connection, catalogue: Catalogue, *, level: str = "network", entity_id: str = "all"
) -> list[dict[str, Any]]:
    """Per KPI: its definition, the stored status and value, and a sparkline of recent periods.

    Reads ``kpi_status`` and three roll-up queries (hours and days), so a page callback can call it.
    """
    if level not in KPI_LEVELS:
        raise KpiReadError(f"level: expected one of {', '.join(KPI_LEVELS)}, got {level!r}")
    st = kpi_status
    status_rows = {
        r.kpi: r
        for r in conn.execute(
            select(st.c.kpi, st.c.status, st.c.value, st.c.period_start, st.c.since).where(
                st.c.level == level, st.c.entity_id == entity_id
            )
        )
    }
    anchors = [_as_dt(r.period_start) for r in status_rows.values() if r.period_start is not None]
    anchor = max(anchors) if anchors else _latest_rollup(conn, catalogue, level, entity_id)
    hourly = [k for k in catalogue.kpis if k.grain < 86400]
    daily = [k for k in catalogue.kpis if k.grain >= 86400]
    spark: dict[str, list[float | None]] = {}
    if anchor is not None:
        for group, grain, count in ((hourly, 3600, SPARK_HOURS), (daily, 86400, SPARK_DAYS)):
            if not group:
                continue
            until = floor_time(anchor, grain) + timedelta(seconds=grain)
            since = until - timedelta(seconds=grain * count)
            names: set[str] = set()
            for k in group:
                names |= inputs(catalogue, k)
            rows = fetch_rows(
                conn,
                catalogue,
                names,
                level=level,
                grain_s=grain,
                since=since,
                until=until,
                entities=[entity_id],
            )
            index = periods(since, until, grain)
            for k in group:
                values = kpi_values(catalogue, k, rows)
                got = values.xs(entity_id, level="entity_id") if len(values) else pd.Series(dtype=float)
                got = apply_no_data(got.reindex(index), k.no_data)
                spark[k.name] = [None if np.isnan(v) else round(float(v), 6) for v in got.to_numpy(float)]
    out = []
    for k in catalogue.kpis:
        row = status_rows.get(k.name)
        out.append(
            {
                "name": k.name,
                "label": k.label,
                "unit": k.unit,
                "domain": k.domain,
                "value": _none(row.value) if row is not None else None,
                "status": row.status if row is not None else "no_data",
                "period_start": _as_dt(row.period_start) if row is not None and row.period_start else None,
                "since": _as_dt(row.since) if row is not None and row.since else None,
                "thresholds": _thresholds(k),
                "direction": k.direction,
                "headline": k.headline,
                "grain_s": k.grain,
                "sparkline": spark.get(k.name, []),
            }
        )
    return out


def _as_dt(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def _latest_rollup(conn: Connection, catalogue: Catalogue, level: str, entity_id: str) -> datetime | None:
    r = kpi_rollups
    series = [k.name for k in catalogue.kpis if _is_sampled(catalogue, k.name)] + [*FLOWS, RISK]
    v = conn.execute(
        select(func.max(r.c.period_start)).where(
            r.c.series.in_(series), r.c.level == level, r.c.entity_id == entity_id, r.c.grain_s == 3600
        )
    ).scalar()
    return _as_dt(v) if v is not None else None


__all__ = [
    "KpiReadError",
    "Scope",
    "apply_no_data",
    "current",
    "entities",
    "fetch_levels",
    "fetch_rows",
    "inputs",
    "kpi_values",
    "panel",
    "periods",
    "series",
]


def evaluated(conn: Connection) -> bool:
    """Whether KPI evaluation has written any status yet."""
    return conn.execute(select(kpi_status.c.kpi).limit(1)).first() is not None
