"""Keeps ``kpi_rollups`` up to date: every sampled KPI and measure per level, entity, hour and day.

A pass recomputes only the periods that changed since the last one, with the aggregation done in the
database (INSERT ... SELECT ... GROUP BY; the affected periods are deleted first, in the caller's
transaction):

- Samples: the hours after the newest sample period the last pass saw, and every hour the ingest
  path marked as written since (``kpi_sample_hours``, dashboard/store/sample_marks.py: a late sample
  of any age, down to the oldest sample retention keeps). Samples written into an hour already
  rolled up other than through the ingest path are picked up by ``full=True`` (``vantage kpi
  evaluate --full``). Cell hours come from one read of the samples; cell days and the other levels'
  hours from cell hours; site, region and network days from their hours, segment days from cell days.
  On PostgreSQL, when no mark the pass takes has a period at or before the newest one the last pass
  read (nothing arrived late), the new periods' samples are instead added to the rows of their
  hours and days (``_fold_periods``). Every pass reads samples only up to the newest period it saw
  when it began, so a period is never added to rows that already hold part of it.
- Tickets and churn events: the days of the rows ingested since the watermark (``ingested_at``,
  trailing the clock by ``OVERLAP``; rows in the overlap already read are not read again unless a
  batch committed late into it, see ``_since``).
- Lines in service and their revenue (stocks): today's value whenever the customer base changed or a
  new day began, and every day since a churn event that arrived. Past days keep the base as it was
  when they were computed; ``full=True`` recomputes them with today's base.
- Revenue at risk: sampled from the ranked incident queue when the pass runs (network and region);
  it cannot be recomputed, so a full rebuild keeps it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Float,
    MetaData,
    String,
    Table,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dashboard.ingest.runner import load_state, save_state
from dashboard.kpi_eval import _sql
from dashboard.kpi_eval._sql import FLOWS, RISK, ROLLUP_COLUMNS, STOCKS, floor_time
from dashboard.kpis import Catalogue, KpiDefinition
from dashboard.store.sample_marks import take_sample_hours
from dashboard.store.schema import (
    accounts,
    cells,
    churn_events,
    incident_queue,
    kpi_rollups,
    kpi_samples,
    regions,
    sites,
    subscriber_cells,
    subscribers,
    tickets,
)

STATE_KEY = ("vantage", "kpi-rollups")
GRAINS = (3600, 86400)
#: The watermark on ingest times trails the clock, so a batch committed late is still seen.
OVERLAP = timedelta(minutes=5)
#: A full build never reaches further back than this.
HISTORY_MAX = timedelta(days=400)
SAMPLE_PERIOD = timedelta(minutes=15)
LEVELS_FROM_CELLS = ("site", "region", "network", "segment")
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
#: The smallest step of a stored time: ``t + _TICK`` as an exclusive bound takes in ``t``.
_TICK = timedelta(microseconds=1)
_DAYS_PER_STATEMENT = 60  # SQLite allows 500 terms in a compound SELECT


@dataclass
class RollupSummary:
    full: bool
    sample_window: tuple[datetime, datetime] | None = None
    sample_hours: int = 0
    flow_days: int = 0
    stock_days: int = 0
    risk_sampled: bool = False
    #: The hours of samples recomputed, as [lo, hi) spans (every hour when ``full``).
    sample_spans: list[tuple[datetime, datetime]] = field(default_factory=list)
    #: The token the pass before this one left in the roll-up state, and this pass's: a process that
    #: keeps what it read between passes knows from them whether it saw every pass (quarters.py).
    previous_pass: str | None = None
    pass_id: str = ""
    #: The new periods' samples were added to their hours and days (``_fold_periods``), not the
    #: hours added up again.
    folded: bool = False
    #: The newest sample period the pass read up to (None: no samples).
    samples_to: datetime | None = None
    #: The newest period the pass before had read, when only periods after it received samples
    #: since (no mark at or before it): what was read of earlier periods still holds (quarters.py).
    #: On PostgreSQL the pass then adds the new periods to their hours and days (``folded``).
    added_after: datetime | None = None
    rows: int = 0
    elapsed_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        window = self.sample_window
        return {
            "full": self.full,
            "sample_window": [window[0].isoformat(), window[1].isoformat()] if window else None,
            "sample_hours": self.sample_hours,
            "flow_days": self.flow_days,
            "stock_days": self.stock_days,
            "risk_sampled": self.risk_sampled,
            "folded": self.folded,
            "rows": self.rows,
            "elapsed_s": round(self.elapsed_s, 3),
            "steps": {k: round(v, 3) for k, v in self.steps.items()},
        }


def sampled_kpis(catalogue: Catalogue) -> list[KpiDefinition]:
    """The KPIs read from their own samples in ``kpi_samples``."""
    return [k for k in catalogue.kpis if k.type == "simple" and k.source == "samples"]


def _ceil(t: datetime, grain_s: int) -> datetime:
    f = floor_time(t, grain_s)
    return f if f == t else f + timedelta(seconds=grain_s)


class _Laps:
    """Called with a step's name, adds the time since the last call (or since it was made) to it."""

    def __init__(self, steps: dict[str, float]) -> None:
        self.steps, self.t = steps, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = self.steps.get(step, 0.0) + now - self.t
        self.t = now


_ROLLUP_TABLE_COLUMNS = ["series", "level", "entity_id", "grain_s", "period_start"]
_ROLLUP_TABLE_COLUMNS += ["total", "weight", "low", "high", "computed_at"]


@contextmanager
def _no_nested_loops(conn: Connection) -> Iterator[None]:
    """PostgreSQL: plan the statements inside without nested loops (joins of a period just written,
    which the statistics do not know yet: a nested loop chosen for the one row estimated took minutes
    where a hash join scans each side once)."""
    before = "on" if conn.execute(text("SHOW enable_nestloop")).scalar() == "on" else "off"
    conn.execute(text("SET LOCAL enable_nestloop = off"))
    try:
        yield
    finally:
        conn.execute(text(f"SET LOCAL enable_nestloop = {before}"))


def _in_range(series: Sequence[str], level: str, grain_s: int, lo: datetime, hi: datetime) -> tuple[Any, ...]:
    """The rows of ``kpi_rollups`` one replacement covers."""
    r = kpi_rollups.c
    return (
        r.series.in_(list(series)),
        r.level == level,
        r.grain_s == grain_s,
        r.period_start >= lo,
        r.period_start < hi,
    )


class _Writer:
    """Deletes and re-inserts roll-up rows of one (level, grain) and period range."""

    def __init__(self, conn: Connection, now: datetime, *, fresh: bool = False) -> None:
        self.conn, self.now = conn, now
        self.dialect = conn.dialect.name
        self.rows = 0
        #: The table was just emptied (full build): nothing to delete before inserting.
        self.fresh = fresh
        #: Its indexes were dropped for the build: rows need no particular order.
        self.unindexed = False
        #: Merges of hours note what they change per day, for fold_days (PostgreSQL).
        self.folding = False

    def replace(
        self, series: Sequence[str], level: str, grain_s: int, lo: datetime, hi: datetime, rows: Any
    ) -> None:
        r = kpi_rollups
        if not self.fresh and self.dialect == "postgresql":
            self.merge(series, level, grain_s, lo, hi, rows)
            return
        if not self.fresh:
            self.conn.execute(delete(r).where(*_in_range(series, level, grain_s, lo, hi)))
        self.insert(level, grain_s, rows)

    def merge(
        self, series: Sequence[str], level: str, grain_s: int, lo: datetime, hi: datetime, rows: Any
    ) -> None:
        """PostgreSQL: bring the rows of [lo, hi) to ``rows`` by updating them in place.

        A pass recomputes the current hour and day every 15 minutes. Deleting and inserting their
        rows put one new entry per row into each index, each on another leaf page of the primary
        key (it is ordered by entity), and the first change of a page after a checkpoint writes the
        whole page to the WAL: 140,000 cell days wrote 110,000 page images (700 MB of WAL, 3 s).
        An update that changes no indexed column, on a page with room (the table's fillfactor,
        migration 0017), is a heap-only tuple: no index entry, a few pages written (37 MB, 1.2 s).
        Rows no longer produced (their samples are gone) are deleted; unchanged rows are left alone.
        """
        conn, r = self.conn, kpi_rollups
        conn.execute(
            text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_MERGE.name} {_STAGE_COLUMNS} ON COMMIT DROP")
        )
        conn.execute(text(f"TRUNCATE {_MERGE.name}"))
        sub = rows.subquery("rows")
        conn.execute(
            insert(_MERGE).from_select(ROLLUP_COLUMNS, select(sub).where(sub.c.entity_id.is_not(None)))
        )
        conn.execute(text(f"ANALYZE {_MERGE.name}"))
        if self.folding and grain_s == 3600 and level in _FOLDED_LEVELS:
            self._capture_fold(series, level, lo, hi)
        m = _MERGE
        same_key = (
            m.c.series == r.c.series,
            m.c.entity_id == r.c.entity_id,
            m.c.period_start == r.c.period_start,
        )
        # The statistics may not know the period yet (it was just written): a nested loop over both
        # sides, chosen for the one row estimated, took minutes. A hash anti join scans each once.
        with _no_nested_loops(conn):
            conn.execute(
                delete(r).where(
                    *_in_range(series, level, grain_s, lo, hi), ~exists(select(literal(1)).where(*same_key))
                )
            )
        self._upsert(level, grain_s, m)

    def _upsert(self, level: str, grain_s: int, m: Any, *, add: bool = False) -> None:
        """Insert the roll-up rows of ``m`` (ROLLUP_COLUMNS), updating the rows already there in place:
        to the rows of ``m``, or with ``add`` by adding them (totals and weights summed, the lowest
        and highest kept)."""
        r = kpi_rollups
        new = select(
            m.c.series,
            literal(level, String),
            m.c.entity_id,
            literal(grain_s),
            m.c.period_start,
            m.c.total,
            m.c.weight,
            m.c.low,
            m.c.high,
            literal(self.now, DateTime),
        ).where(m.c.entity_id.is_not(None))
        new = new.order_by(m.c.series, m.c.entity_id, m.c.period_start)
        stmt = pg_insert(r).from_select(_ROLLUP_TABLE_COLUMNS, new)
        values = ("total", "weight", "low", "high")
        if add:
            x = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                constraint=r.primary_key,
                set_={
                    "total": r.c.total + x.total,
                    "weight": r.c.weight + x.weight,
                    "low": func.least(r.c.low, x.low),
                    "high": func.greatest(r.c.high, x.high),
                    "computed_at": x.computed_at,
                },
            )
        else:
            stmt = stmt.on_conflict_do_update(
                constraint=r.primary_key,
                set_={c: stmt.excluded[c] for c in (*values, "computed_at")},
                where=tuple_(*(r.c[c] for c in values)).is_distinct_from(
                    tuple_(*(stmt.excluded[c] for c in values))
                ),
            )
        result = self.conn.execute(stmt.execution_options(preserve_rowcount=True))
        self.rows += max(result.rowcount or 0, 0)

    def _capture_fold(self, series: Sequence[str], level: str, lo: datetime, hi: datetime) -> None:
        """Per (series, entity, day): the hours of [lo, hi) as stored and as about to be merged."""
        conn = self.conn
        conn.execute(_CREATE_FOLD)
        with _no_nested_loops(conn):
            conn.execute(_CAPTURE_FOLD, {"level": level, "series": list(series), "lo": lo, "hi": hi})

    def fold_days(self, series: Sequence[str], level: str) -> None:
        """PostgreSQL: bring ``level``'s day rows up to date from what the merges of its hours
        changed, without reading the day's other hours.

        Totals and weights are sums: the day gives up the hours' old sums and takes their new ones.
        The lowest value folds in with least() unless the changed hours held the day's lowest and
        now hold none as low (a value revised upwards, or hours gone); likewise the highest. Those
        days, and days whose hours are all gone, are added up again from their stored hours.
        """
        conn = self.conn
        conn.execute(_CREATE_FOLD)
        conn.execute(text("DROP TABLE IF EXISTS kpi_day_folded"))
        with _no_nested_loops(conn):
            conn.execute(_FOLD_DAYS, {"level": level, "series": list(series)})
        self._upsert(level, 86400, select(_FOLDED).where(text("NOT redo")).subquery("folded"))
        again = conn.execute(text("SELECT series, entity_id, period_start FROM kpi_day_folded WHERE redo"))
        r = kpi_rollups
        for series_name, entity, day in again.all():
            key = r.c.entity_id == entity
            hours = _sql.stored_rows([series_name], level, 3600, day, day + DAY).where(key)
            self._upsert(level, 86400, _sql.rebucket(hours.subquery("fine"), 86400, self.dialect).subquery())
            if conn.execute(hours.limit(1)).first() is None:
                conn.execute(delete(r).where(*_in_range([series_name], level, 86400, day, day + DAY), key))
        conn.execute(text("DELETE FROM kpi_day_fold WHERE level = :level"), {"level": level})

    def add(self, level: str, grain_s: int, rows: Any) -> None:
        """PostgreSQL: add ``rows`` (ROLLUP_COLUMNS) to the roll-up rows of ``level`` and ``grain_s``."""
        self._upsert(level, grain_s, rows.subquery("added"), add=True)

    def analyze(self) -> None:
        """Fresh statistics after a bulk insert, so the next statements get hash plans, not nested loops."""
        if self.dialect == "postgresql":
            self.conn.execute(text("ANALYZE kpi_rollups"))

    def drop_indexes(self) -> list[str]:
        """PostgreSQL: drop the indexes of ``kpi_rollups`` (the primary key too) for a bulk build;
        returns the statements that build them again. The table is locked until the transaction ends."""
        found = self.conn.execute(
            text(
                "SELECT c.relname, x.indisprimary, pg_get_indexdef(x.indexrelid), "
                "(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k WHERE k.conindid = x.indexrelid) "
                "FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                "WHERE x.indrelid = CAST('kpi_rollups' AS regclass) ORDER BY x.indisprimary DESC"
            )
        ).all()
        again = []
        for name, primary, index_def, constraint_def in found:
            if primary:
                self.conn.execute(text(f'ALTER TABLE kpi_rollups DROP CONSTRAINT "{name}"'))
                again.append(f'ALTER TABLE kpi_rollups ADD CONSTRAINT "{name}" {constraint_def}')
            else:
                self.conn.execute(text(f'DROP INDEX "{name}"'))
                again.append(index_def)
        return again

    def build_indexes(self, statements: Sequence[str]) -> None:
        # One sort per index over the rows, instead of a descent per inserted row.
        self.conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        for stmt in statements:
            self.conn.execute(text(stmt))

    def insert(self, level: str, grain_s: int, rows: Any, *, ordered: bool = False) -> None:
        sub = rows.subquery("rows")
        stmt = select(
            sub.c.series,
            literal(level, String).label("level"),
            sub.c.entity_id,
            literal(grain_s).label("grain_s"),
            sub.c.period_start,
            sub.c.total,
            sub.c.weight,
            sub.c.low,
            sub.c.high,
            literal(self.now, DateTime).label("computed_at"),
        ).where(sub.c.entity_id.is_not(None))
        if ordered:
            # In key order, each series' rows go to one place in the primary key instead of all over it.
            stmt = stmt.order_by(sub.c.series, sub.c.entity_id, sub.c.period_start)
        stmt_insert = insert(kpi_rollups).from_select(_ROLLUP_TABLE_COLUMNS, stmt)
        result = self.conn.execute(stmt_insert.execution_options(preserve_rowcount=True))
        self.rows += max(result.rowcount or 0, 0)

    def levels(
        self,
        series: Sequence[str],
        grain_s: int,
        lo: datetime,
        hi: datetime,
        *,
        levels: Iterable[str] = LEVELS_FROM_CELLS,
        sum_series: Sequence[str] = (),
        measures: bool = False,
    ) -> None:
        """Sites, regions, the network and segments from the stored cell rows of the same grain."""
        for level in levels:
            cell_rows = _sql.stored_rows(series, "cell", grain_s, lo, hi).subquery("cellrows")
            rows = _sql.level_rows(cell_rows, level, sum_series=sum_series, measures=measures)
            self.replace(series, level, grain_s, lo, hi, rows)

    def days_from_hours(self, series: Sequence[str], level: str, d0: datetime, d1: datetime) -> None:
        rows = _sql.rebucket_rows(
            series, level, from_grain=3600, to_grain=86400, lo=d0, hi=d1, dialect=self.dialect
        )
        self.replace(series, level, 86400, d0, d1, rows)


# --- samples ----------------------------------------------------------------------------------


def _sample_bounds(conn: Connection, names: Sequence[str]) -> tuple[datetime | None, datetime | None]:
    """Oldest and newest sample period (one index probe per KPI)."""
    lows, highs = [], []
    for name in names:
        lo, hi = conn.execute(
            select(func.min(kpi_samples.c.period_start), func.max(kpi_samples.c.period_start)).where(
                kpi_samples.c.kpi == name
            )
        ).one()
        if lo is not None:
            lows.append(_as_dt(lo))
            highs.append(_as_dt(hi))
    return (min(lows) if lows else None, max(highs) if highs else None)


def _as_dt(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def _refresh_samples(
    w: _Writer,
    kpis: Sequence[KpiDefinition],
    lo: datetime,
    hi: datetime,
    until: datetime,
    steps: dict[str, float],
) -> None:
    """Recompute every roll-up of the sampled KPIs touching [lo, hi), from the samples of periods up
    to ``until`` (the newest the pass saw when it began: a later one is left whole to the next pass,
    which may add it to its hour, see ``_fold_periods``).

    One read of the samples makes the cell hours (a day per statement, so the aggregation stays in
    memory); everything else is rolled from stored rows, one statement per level and grain: sites,
    regions, the network and segments from cell hours, cell days from cell hours, site, region and
    network days from their own hours (sums of sums: the same totals, weights, lows and highs), and
    segment days from cell days (a segment weighs each cell's value over the period by its lines).
    """
    names = [k.name for k in kpis]
    sums = [k.name for k in kpis if k.aggregate == "sum"]
    h0, h1 = floor_time(lo, 3600), _ceil(hi, 3600)
    d0, d1 = floor_time(lo, 86400), _ceil(hi, 86400)
    lap = _Laps(steps)

    # On PostgreSQL an incremental pass folds the hours' changes into their days (fold_days).
    fold = w.dialect == "postgresql" and not w.fresh
    w.folding = fold
    day = d0
    while day < d1:
        a, b = max(h0, day), min(h1, day + DAY)
        rows = _sql.sample_cell_rows(kpis, grain_s=3600, lo=a, hi=min(b, until + _TICK), dialect=w.dialect)
        w.replace(names, "cell", 3600, a, b, rows)
        day += DAY
    if w.fresh:
        w.analyze()
    lap("samples.cell_hours")
    w.levels(names, 3600, h0, h1, sum_series=sums)
    w.folding = False
    lap("samples.level_hours")
    for level in _FOLDED_LEVELS:
        if fold:
            w.fold_days(names, level)
        else:
            w.days_from_hours(names, level, d0, d1)
        if level == "cell":
            lap("samples.cell_days")
    w.levels(names, 86400, d0, d1, levels=("segment",), sum_series=sums)
    lap("samples.level_days")


_STAGE = MetaData()


def _stage_table(name: str) -> Table:
    return Table(
        name,
        _STAGE,
        Column("series", String),
        Column("entity_id", String),
        Column("period_start", DateTime),
        *(Column(c, Float) for c in ("total", "weight", "low", "high")),
    )


#: Cell hours and cell days of a full build on PostgreSQL, before they are rolled further.
_CELL_HOURS = _stage_table("kpi_stage_cell_hours")
_CELL_DAYS = _stage_table("kpi_stage_cell_days")


_STAGE_COLUMNS = (
    "(series varchar(64), entity_id varchar(128), period_start timestamp, "
    "total float8, weight float8, low float8, high float8)"
)
#: The rows one merge brings a period range to (PostgreSQL, incremental passes).
_MERGE = _stage_table("kpi_merge_rows")
#: What merges of hours changed per (level, series, entity, day), and the day rows folded from it.
_CREATE_FOLD = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS kpi_day_fold (level varchar(16), series varchar(64), "
    "entity_id varchar(128), day timestamp, "
    "old_total float8, old_weight float8, old_low float8, old_high float8, old_n int, "
    "new_total float8, new_weight float8, new_low float8, new_high float8, new_n int) ON COMMIT DROP"
)
_CAPTURE_FOLD = text(
    "INSERT INTO kpi_day_fold SELECT :level, coalesce(o.series, n.series), "
    "coalesce(o.entity_id, n.entity_id), coalesce(o.day, n.day), "
    "o.total, o.weight, o.low, o.high, coalesce(o.n, 0), n.total, n.weight, n.low, n.high, coalesce(n.n, 0) "
    "FROM (SELECT series, entity_id, date_trunc('day', period_start) AS day, sum(total) AS total, "
    "sum(weight) AS weight, min(low) AS low, max(high) AS high, count(*) AS n FROM kpi_rollups "
    "WHERE series = ANY(:series) AND level = :level AND grain_s = 3600 "
    "AND period_start >= :lo AND period_start < :hi GROUP BY 1, 2, 3) o "
    "FULL JOIN (SELECT series, entity_id, date_trunc('day', period_start) AS day, sum(total) AS total, "
    "sum(weight) AS weight, min(low) AS low, max(high) AS high, count(*) AS n FROM kpi_merge_rows "
    "GROUP BY 1, 2, 3) n ON o.series = n.series AND o.entity_id = n.entity_id AND o.day = n.day"
)
_FOLD_DAYS = text(
    "CREATE TEMPORARY TABLE kpi_day_folded ON COMMIT DROP AS SELECT f.series, f.entity_id, "
    "f.day AS period_start, "
    "coalesce(d.total, 0) - coalesce(f.old_total, 0) + f.new_total AS total, "
    "coalesce(d.weight, 0) - coalesce(f.old_weight, 0) + f.new_weight AS weight, "
    "CASE WHEN d.series IS NULL THEN f.new_low ELSE least(d.low, f.new_low) END AS low, "
    "CASE WHEN d.series IS NULL THEN f.new_high ELSE greatest(d.high, f.new_high) END AS high, "
    "(f.new_n = 0 OR (d.series IS NULL AND f.old_n > 0) "
    "OR (f.old_n > 0 AND f.old_low <= d.low AND (f.new_low IS NULL OR f.new_low > f.old_low)) "
    "OR (f.old_n > 0 AND f.old_high >= d.high AND (f.new_high IS NULL OR f.new_high < f.old_high))) AS redo "
    "FROM kpi_day_fold f LEFT JOIN kpi_rollups d ON d.series = f.series AND d.level = f.level "
    "AND d.entity_id = f.entity_id AND d.grain_s = 86400 AND d.period_start = f.day "
    "WHERE f.level = :level AND f.series = ANY(:series)"
)
_FOLDED = _stage_table("kpi_day_folded")
#: Levels whose days are added up from their own hours (segment days come from cell days).
_FOLDED_LEVELS = ("cell", "site", "region", "network")


def _stage(conn: Connection, table: Table) -> Table:
    """A temporary table (never written to the WAL, dropped at commit) with the roll-up row columns."""
    conn.execute(text(f"CREATE TEMPORARY TABLE {table.name} {_STAGE_COLUMNS} ON COMMIT DROP"))
    return table


def _refresh_samples_staged(
    w: _Writer,
    kpis: Sequence[KpiDefinition],
    lo: datetime,
    hi: datetime,
    until: datetime,
    steps: dict[str, float],
) -> None:
    """A full build of the sampled KPIs on PostgreSQL, each roll-up row written once and in key order.

    The samples are read once, a day per statement (with ``period_start`` bounds, so a table
    partitioned by day is read one partition at a time), into cell hours in a temporary table; cell
    days are added up from those, every other level from the cell hours or days (sums of sums:
    the same totals, weights, lows and highs as rolling each level's own hours), without reading
    ``kpi_rollups`` back.
    """
    sums = [k.name for k in kpis if k.aggregate == "sum"]
    h0, h1 = floor_time(lo, 3600), _ceil(hi, 3600)
    d0, d1 = floor_time(lo, 86400), _ceil(hi, 86400)
    conn = w.conn
    lap = _Laps(steps)

    hours, days = _stage(conn, _CELL_HOURS), _stage(conn, _CELL_DAYS)
    day = d0
    while day < d1:
        a, b = max(h0, day), min(h1, day + DAY, until + _TICK)
        rows = _sql.sample_cell_rows(kpis, grain_s=3600, lo=a, hi=b, dialect=w.dialect)
        conn.execute(insert(hours).from_select(ROLLUP_COLUMNS, rows))
        day += DAY
    conn.execute(text(f"ANALYZE {hours.name}"))
    lap("samples.read")
    # In key order, unless the indexes are built after the rows (they sort them themselves).
    w.insert("cell", 3600, select(hours), ordered=not w.unindexed)
    lap("samples.cell_hours")
    for level in LEVELS_FROM_CELLS:
        w.insert(level, 3600, _sql.level_rows(select(hours).subquery("cellrows"), level, sum_series=sums))
    lap("samples.level_hours")
    conn.execute(insert(days).from_select(ROLLUP_COLUMNS, _sql.rebucket(hours, 86400, w.dialect)))
    conn.execute(text(f"ANALYZE {days.name}"))
    w.insert("cell", 86400, select(days), ordered=not w.unindexed)
    lap("samples.cell_days")
    for level in LEVELS_FROM_CELLS:
        w.insert(level, 86400, _sql.level_rows(select(days).subquery("cellrows"), level, sum_series=sums))
    lap("samples.level_days")


#: The cell rows of the periods one fold adds, and the same rows rolled up to one level.
_PERIODS = _stage_table("kpi_fold_cells")
_PERIODS_LEVEL = _stage_table("kpi_fold_level")


def _restage(conn: Connection, table: Table) -> Table:
    conn.execute(text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table.name} {_STAGE_COLUMNS} ON COMMIT DROP"))
    conn.execute(text(f"TRUNCATE {table.name}"))
    return table


def _fold_periods(
    w: _Writer, kpis: Sequence[KpiDefinition], since: datetime, until: datetime, steps: dict[str, float]
) -> None:
    """PostgreSQL: add the samples of the periods in (since, until] to the rows of their hours and
    days, at every level but segments.

    The caller has made sure no pass read a sample of those periods (every pass reads periods up to
    the newest it saw when it began, and no mark it took lies at or before ``since``), so adding is
    exact: totals and weights are sums, the lowest and highest fold in with least() and greatest().
    One read of the new periods' samples, instead of every period of their hours, and no old rows to
    take away from the days. Segment rows weigh each cell's value over the whole period by its lines,
    which is not a sum of the parts: they are rolled up again from the cell rows, as elsewhere.
    """
    conn, dialect = w.conn, w.dialect
    names = [k.name for k in kpis]
    sums = [k.name for k in kpis if k.aggregate == "sum"]
    lap = _Laps(steps)

    cells = _restage(conn, _PERIODS)
    lo, hi = since + _TICK, until + _TICK
    day = floor_time(lo, 86400)
    while day < hi:  # a day per statement, as elsewhere
        rows = _sql.sample_cell_rows(
            kpis, grain_s=3600, lo=max(lo, day), hi=min(hi, day + DAY), dialect=dialect
        )
        conn.execute(insert(cells).from_select(ROLLUP_COLUMNS, rows))
        day += DAY
    conn.execute(text(f"ANALYZE {cells.name}"))
    hours = [_as_dt(h) for h in conn.execute(select(cells.c.period_start).distinct()).scalars()]
    lap("samples.read")
    w.add("cell", 3600, select(cells))
    lap("samples.cell_hours")
    w.add("cell", 86400, _sql.rebucket(cells, 86400, dialect))
    lap("samples.cell_days")
    for level in ("site", "region", "network"):
        rows = _sql.level_rows(select(cells).subquery("cellrows"), level, sum_series=sums)
        part = _restage(conn, _PERIODS_LEVEL)
        conn.execute(insert(part).from_select(ROLLUP_COLUMNS, rows))
        w.add(level, 3600, select(part))
        w.add(level, 86400, _sql.rebucket(part, 86400, dialect))
    for h0, h1 in _ranges(hours, HOUR):
        w.levels(names, 3600, h0, h1, levels=("segment",), sum_series=sums)
    lap("samples.level_hours")
    for d0, d1 in _ranges({floor_time(h, 86400) for h in hours}):
        w.levels(names, 86400, d0, d1, levels=("segment",), sum_series=sums)
    lap("samples.level_days")


# --- business measures ------------------------------------------------------------------------


def _ranges(starts: Iterable[datetime], step: timedelta = DAY) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of period starts (days, or ``step``) as [start, end) ranges."""
    out: list[tuple[datetime, datetime]] = []
    for d in sorted(set(starts)):
        if out and out[-1][1] == d:
            out[-1] = (out[-1][0], d + step)
        else:
            out.append((d, d + step))
    return out


def _refresh_flows(w: _Writer, days: Iterable[datetime]) -> None:
    flows = list(FLOWS)
    for d0, d1 in _ranges(days):
        for level in ("cell", "network", "segment"):
            for measure in flows:
                rows = _sql.flow_rows(measure, level, grain_s=3600, lo=d0, hi=d1, dialect=w.dialect)
                w.replace([measure], level, 3600, d0, d1, rows)
            w.days_from_hours(flows, level, d0, d1)
        for grain, (a, b) in ((3600, (d0, d1)), (86400, (d0, d1))):
            w.levels(flows, grain, a, b, levels=("site", "region"), measures=True)


def _refresh_stocks(w: _Writer, days: Sequence[datetime]) -> None:
    ordered = sorted(set(days))
    for i in range(0, len(ordered), _DAYS_PER_STATEMENT):
        part = ordered[i : i + _DAYS_PER_STATEMENT]
        for d0, d1 in _ranges(part):
            chunk = [d for d in part if d0 <= d < d1]
            for level in ("cell", "network", "segment"):
                for measure in STOCKS:
                    rows = _sql.stock_rows(measure, level, days=chunk)
                    w.replace([measure], level, 86400, d0, d1, rows)
            w.levels(list(STOCKS), 86400, d0, d1, levels=("site", "region"), measures=True)


def _changed_days(conn: Connection, table: Any, when: Any, since: datetime) -> set[datetime]:
    # Few rows change between passes; reading their times is cheaper than a DISTINCT over a bucket.
    found = conn.execute(select(when).where(table.c.ingested_at > since)).scalars()
    return {floor_time(_as_dt(t), 86400) for t in found}


#: Tables whose ingest times move the watermark; the first five are read for changes.
WATCHED: dict[str, Any] = {
    "tickets": tickets,
    "churn_events": churn_events,
    "subscribers": subscribers,
    "subscriber_cells": subscriber_cells,
    "accounts": accounts,
    "cells": cells,
    "sites": sites,
}
_READ_FOR_CHANGES = ("tickets", "churn_events", "subscribers", "subscriber_cells", "accounts")


def _marks(conn: Connection) -> dict[str, datetime]:
    """The latest ingest time of each watched table (an index probe each, or a scan of a small table)."""
    out: dict[str, datetime] = {}
    for name, t in WATCHED.items():
        m = conn.execute(select(func.max(t.c.ingested_at))).scalar()
        if m is not None:
            out[name] = _as_dt(m)
    return out


def _window_count(conn: Connection, name: str, lo: datetime, hi: datetime) -> int:
    t = WATCHED[name]
    where = (t.c.ingested_at > lo, t.c.ingested_at <= hi)
    return int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())


def _windows(conn: Connection, marks: dict[str, datetime], lo: datetime) -> dict[str, list[Any]]:
    """Per table, its latest ingest time and how many of its rows lie in (lo, that time]."""
    out: dict[str, list[Any]] = {}
    for name in _READ_FOR_CHANGES:
        hi = marks.get(name)
        if hi is not None and hi > lo:
            out[name] = [hi.isoformat(), _window_count(conn, name, lo, hi)]
    return out


def _since(conn: Connection, name: str, since: datetime, windows: dict[str, Any]) -> datetime:
    """Where a table's unseen changes begin.

    The watermark trails the clock by ``OVERLAP``, so the rows ingested in the overlap were already
    read by the last pass; when the overlap still holds as many rows as that pass counted there (no
    batch committed late into it), only rows after that pass's latest ingest time are new.
    """
    seen = windows.get(name)
    if not seen:
        return since
    hi = datetime.fromisoformat(seen[0])
    if hi > since and _window_count(conn, name, since, hi) == int(seen[1]):
        return hi
    return since


def _base_changed(conn: Connection, since: dict[str, datetime]) -> bool:
    for name in ("subscribers", "subscriber_cells", "accounts"):
        t = WATCHED[name]
        if conn.execute(select(t.c.ingested_at).where(t.c.ingested_at > since[name]).limit(1)).first():
            return True
    return False


def _history_start(conn: Connection, sample_lo: datetime | None, now: datetime) -> datetime:
    starts = [now]
    if sample_lo is not None:
        starts.append(sample_lo)
    for when in (tickets.c.created_at, churn_events.c.occurred_at):
        first = conn.execute(select(func.min(when))).scalar()
        if first is not None:
            starts.append(_as_dt(first))
    return floor_time(max(min(starts), now - HISTORY_MAX), 86400)


# --- revenue at risk --------------------------------------------------------------------------


def _sample_risk(w: _Writer) -> None:
    """Add the ranked queue's revenue at risk per hour to this hour's network and region rows."""
    conn, q = w.conn, incident_queue
    hour = floor_time(w.now, 3600)
    ranked = q.c.rank.is_not(None)
    network = conn.execute(select(func.coalesce(func.sum(q.c.revenue_at_risk_per_hour), 0.0)).where(ranked))
    values: dict[tuple[str, str], float] = {("network", "all"): float(network.scalar_one())}
    for rid in conn.execute(select(regions.c.id).distinct()).scalars():
        values[("region", str(rid))] = 0.0
    by_region = select(q.c.region_id, func.sum(q.c.revenue_at_risk_per_hour)).where(
        ranked, q.c.region_id.is_not(None)
    )
    for rid, value in conn.execute(by_region.group_by(q.c.region_id)):
        values[("region", str(rid))] = float(value or 0.0)
    r = kpi_rollups
    for (level, entity), value in values.items():
        key = (r.c.series == RISK, r.c.level == level, r.c.entity_id == entity, r.c.grain_s == 3600)
        updated = conn.execute(
            r.update()
            .where(*key, r.c.period_start == hour)
            .values(
                total=r.c.total + value,
                weight=r.c.weight + 1.0,
                low=func.min(func.coalesce(r.c.low, value), value)
                if w.dialect == "sqlite"
                else func.least(r.c.low, value),
                high=func.max(func.coalesce(r.c.high, value), value)
                if w.dialect == "sqlite"
                else func.greatest(r.c.high, value),
                computed_at=w.now,
            )
        )
        if not updated.rowcount:
            conn.execute(
                insert(r).values(
                    series=RISK,
                    level=level,
                    entity_id=entity,
                    grain_s=3600,
                    period_start=hour,
                    total=value,
                    weight=1.0,
                    low=value,
                    high=value,
                    computed_at=w.now,
                )
            )
    day = floor_time(hour, 86400)
    for level in ("network", "region"):
        w.days_from_hours([RISK], level, day, day + DAY)


# --- the pass ---------------------------------------------------------------------------------


def built(conn: Connection) -> bool:
    """Whether a roll-up pass has run on this store, so that the next one without ``full`` is
    incremental: it recomputes only hours of samples kept, and leaves every older row as it is."""
    return bool(load_state(conn, *STATE_KEY))


def refresh_rollups(
    conn: Connection,
    catalogue: Catalogue,
    *,
    now: datetime,
    full: bool = False,
    sample_risk: bool = True,
    planned: Callable[[RollupSummary], None] | None = None,
) -> RollupSummary:
    """Bring ``kpi_rollups`` up to date, in the caller's transaction; ``full`` rebuilds everything.

    ``planned`` is called with the summary as soon as the pass knows the hours of samples it
    recomputes (``sample_spans``), before it writes anything."""
    started = time.perf_counter()
    state = load_state(conn, *STATE_KEY, for_update=True)
    full = full or not state
    w = _Writer(conn, now, fresh=full)
    if w.dialect == "postgresql":
        # Aggregations of a day of samples fit in memory; JIT compiling costs more than it saves here.
        conn.execute(text("SET LOCAL work_mem = '128MB'"))
        conn.execute(text("SET LOCAL jit = off"))
    summary = RollupSummary(full=full, previous_pass=state.get("pass"), pass_id=uuid.uuid4().hex)
    kpis = sampled_kpis(catalogue)
    names = [k.name for k in kpis]
    today = floor_time(now, 86400)

    def lap(step: str, t0: float) -> float:
        t1 = time.perf_counter()
        summary.steps[step] = summary.steps.get(step, 0.0) + t1 - t0
        return t1

    t = time.perf_counter()
    # Hours the ingest path wrote samples into since the last pass (a full build reads them all),
    # taken first: taking a mark waits for an ingest that holds it, whose samples the bounds then see.
    marked = take_sample_hours(conn)
    sample_lo, sample_hi = _sample_bounds(conn, names) if names else (None, None)
    rebuild: list[str] = []
    if full:
        kept = select(kpi_rollups.c.series).where(kpi_rollups.c.series != RISK).limit(1)
        if w.dialect == "postgresql" and conn.execute(kept).first() is None:
            # A first build writes every row once: its indexes are built after the samples' rows, not
            # kept up to date row by row (readers wait for the build; there is nothing to read yet).
            rebuild = w.drop_indexes()
            w.unindexed = bool(rebuild)
        gone = delete(kpi_rollups).where(kpi_rollups.c.series != RISK)
        if sample_lo is not None and names:
            # Roll-ups of days whose samples retention has dropped cannot be recomputed: they stay.
            keep_before = floor_time(max(sample_lo, now - HISTORY_MAX), 86400)
            gone = gone.where(
                or_(kpi_rollups.c.series.not_in(names), kpi_rollups.c.period_start >= keep_before)
            )
        conn.execute(gone)
    fold_since: datetime | None = None
    if sample_hi is not None:
        hi = sample_hi + SAMPLE_PERIOD
        # Hours before the oldest sample kept are never recomputed: their samples are gone.
        oldest = max(floor_time(sample_lo or sample_hi, 3600), floor_time(now - HISTORY_MAX, 3600))
        if full or not state.get("samples_to"):
            spans = [(lo, hi)] if (lo := max(sample_lo or sample_hi, now - HISTORY_MAX)) < hi else []
        else:
            # The hours of periods after the newest one seen last time, and every hour marked since.
            seen = datetime.fromisoformat(state["samples_to"])
            hours = {m.hour for m in marked if oldest <= m.hour < hi}
            hour = floor_time(seen + SAMPLE_PERIOD, 3600)
            while sample_hi > seen and hour < hi:
                hours.add(hour)
                hour += HOUR
            spans = _ranges(hours, HOUR)
            # No sample went into a period an earlier pass read: the new periods can be added to
            # their hours and days (a mark made without its earliest period counts from its hour).
            earlier = [m for m in marked if oldest <= m.hour < hi and (m.first_period or m.hour) <= seen]
            # (A pass of a version that read whole hours may have read past its newest period.)
            bounded = bool(state.get("reads_bounded"))
            if bounded and sample_hi > seen and not earlier:
                summary.added_after = seen
                fold_since = seen if w.dialect == "postgresql" else None
        summary.sample_spans = list(spans)
        if spans:
            summary.sample_window = (spans[0][0], spans[-1][1])
            summary.sample_hours = sum(int((_ceil(b, 3600) - floor_time(a, 3600)) // HOUR) for a, b in spans)
    summary.folded = fold_since is not None
    summary.samples_to = sample_hi
    if planned is not None:
        planned(summary)
    if sample_hi is not None and fold_since is not None:
        _fold_periods(w, kpis, fold_since, sample_hi, summary.steps)
    elif sample_hi is not None:
        for lo, end in summary.sample_spans:
            if full and w.dialect == "postgresql":
                _refresh_samples_staged(w, kpis, lo, end, sample_hi, summary.steps)
            else:
                _refresh_samples(w, kpis, lo, end, sample_hi, summary.steps)
    if rebuild:
        w.build_indexes(rebuild)
        w.analyze()
    t = lap("samples", t)

    marks = _marks(conn)
    mark = max(marks.values()) if marks else None
    new_mark = min(mark, now - OVERLAP) if mark is not None else None
    # Counted before the flows are read: a row committed later is either seen now or counted next time.
    windows = _windows(conn, marks, new_mark) if new_mark is not None else {}
    if full:
        start = _history_start(conn, sample_lo, now)
        days = [start + i * DAY for i in range((today - start) // DAY + 1)]
        flow_days: set[datetime] = set(days)
        stock_days = set(days)
    else:
        since = datetime.fromisoformat(state["ingested_at"]) if state.get("ingested_at") else None
        flow_days, stock_days = set(), set()
        if since is not None:
            counted = state.get("windows") or {}
            since_by = {name: _since(conn, name, since, counted) for name in _READ_FOR_CHANGES}
            flow_days |= _changed_days(conn, tickets, tickets.c.created_at, since_by["tickets"])
            churn_days = _changed_days(
                conn, churn_events, churn_events.c.occurred_at, since_by["churn_events"]
            )
            flow_days |= churn_days
            if churn_days:
                first = max(min(churn_days), today - HISTORY_MAX)
                stock_days |= {first + i * DAY for i in range((today - first) // DAY + 1)}
            if _base_changed(conn, since_by):
                stock_days |= {today - DAY, today}
        if state.get("stock_day") != today.isoformat():
            stock_days.add(today)
        flow_days = {d for d in flow_days if d <= today}
        stock_days = {d for d in stock_days if d <= today}
    if flow_days:
        _refresh_flows(w, flow_days)
    t = lap("flows", t)
    if stock_days:
        _refresh_stocks(w, sorted(stock_days))
    t = lap("stocks", t)
    summary.flow_days, summary.stock_days = len(flow_days), len(stock_days)
    w.fresh = False  # revenue at risk survives a full build: its day rows are replaced
    if sample_risk:
        _sample_risk(w)
        summary.risk_sampled = True
    lap("revenue_at_risk", t)

    previous = state.get("ingested_at")
    save_state(
        conn,
        *STATE_KEY,
        {
            "samples_to": sample_hi.isoformat() if sample_hi else state.get("samples_to"),
            "ingested_at": new_mark.isoformat() if new_mark else previous,
            "windows": windows if new_mark else state.get("windows", {}),
            "stock_day": today.isoformat(),
            "pass": summary.pass_id,
            # Samples were read up to samples_to and no further (a later pass may add what follows).
            "reads_bounded": True,
        },
        now=now,
    )
    summary.rows = w.rows
    summary.elapsed_s = time.perf_counter() - started
    return summary


__all__ = ["GRAINS", "RollupSummary", "refresh_rollups", "sampled_kpis"]
