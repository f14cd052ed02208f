"""KPI status against thresholds, honouring ``for``: the pure rule and the pass that writes kpi_status.

A threshold counts once its condition has held in ``for / grain + 1`` consecutive periods (``for: 0``
is one period, ``for: 15m`` on a 15-minute KPI two, as Prometheus fires after the condition held for
the duration); critical wins over warning; a period back within the threshold recovers at once; a
period with no value (after the KPI's no_data rule: gap, zero or last) is ``no_data``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, or_, select

from dashboard.kpi_eval import read
from dashboard.kpi_eval._sql import RISK, floor_time
from dashboard.kpi_eval._write import replace_columns
from dashboard.kpi_eval.quarters import QuarterHours
from dashboard.kpis import Catalogue, KpiDefinition, Threshold
from dashboard.store.db import read_frame
from dashboard.store.schema import kpi_status

STATUSES = ("ok", "warning", "critical", "no_data")
_STATUS_COLUMNS = ("kpi", "level", "entity_id", "status", "value", "period_start", "since", "evaluated_at")
#: Levels every KPI gets a status at; technical KPIs also per site and cell.
LEVELS = ("network", "region", "segment")
TECHNICAL_LEVELS = ("site", "cell")
#: Periods evaluated beyond the longest ``for``, so ``since`` is usually found in the window.
EXTRA_PERIODS = 8
#: Data this many periods late (or up to an hour) still counts as the current period.
LATE_PERIODS = 2
#: The KPIs one pass evaluates: all of them; those of 15-minute grain, read from samples only
#: (read.check_grain), which need no roll-up pass first; the others, which read roll-ups.
PARTS = ("all", "quarters", "rollups")


@dataclass
class StatusSummary:
    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    #: Hours of quarter-hour rows read from the store (None: the whole window, no memo), and of
    #: them the hours kept whose new periods only were read (quarters.py).
    hours_read: int | None = None
    hours_added: int = 0
    #: Of ``elapsed_s``, the seconds of the part that ran beside the roll-up pass (the KPIs of
    #: 15-minute grain, on PostgreSQL; kpi_eval.evaluate).
    beside_s: float = 0.0

    def beside(self, after: StatusSummary) -> StatusSummary:
        """This pass (of the KPIs of 15-minute grain, run beside the roll-ups) and ``after`` (of the
        others, after them) as one."""
        return StatusSummary(
            rows=self.rows + after.rows,
            by_status=dict(Counter(self.by_status) + Counter(after.by_status)),
            elapsed_s=self.elapsed_s + after.elapsed_s,
            hours_read=self.hours_read,
            hours_added=self.hours_added,
            beside_s=self.elapsed_s,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "by_status": self.by_status,
            "elapsed_s": round(self.elapsed_s, 3),
            "beside_s": round(self.beside_s, 3),
            "hours_read": self.hours_read,
            "hours_added": self.hours_added,
        }


def _periods_needed(t: Threshold | None, grain_s: float) -> int:
    return 0 if t is None else int(t.for_s // grain_s) + 1


def status_codes(arr: np.ndarray, kpi: KpiDefinition, grain_s: float) -> np.ndarray:
    """Status per period (rows, in time order) and entity (columns) of ``arr`` (the no_data rule applied,
    NaN where there is no value), as indexes into ``STATUSES``."""
    present = ~np.isnan(arr)
    out = np.where(present, 0, 3).astype(np.int8)
    for code, name in ((1, "warning"), (2, "critical")):
        t: Threshold | None = getattr(kpi.thresholds, name)
        if t is None:
            continue
        with np.errstate(invalid="ignore"):
            breached = np.asarray(t.breached(arr), dtype=bool) & present
        need = _periods_needed(t, grain_s)
        run = np.zeros(arr.shape[1:], dtype=int)
        for i in range(arr.shape[0]):
            run = np.where(breached[i], run + 1, 0)
            out[i][run >= need] = code
    return out


def _with_no_data(values: pd.DataFrame, kpi: KpiDefinition) -> pd.DataFrame:
    v = values.sort_index()
    if kpi.no_data == "zero":
        return v.fillna(0.0)
    if kpi.no_data == "last":
        return v.ffill()
    return v


def status_frame(values: pd.DataFrame, kpi: KpiDefinition, *, grain_s: float | None = None) -> pd.DataFrame:
    """Status per period (rows, in time order) and entity (columns) of a KPI's values.

    ``values`` holds NaN where there is no data; the KPI's no_data rule is applied first.
    """
    v = _with_no_data(values, kpi)
    codes = status_codes(v.to_numpy(dtype=float), kpi, grain_s or kpi.grain)
    return pd.DataFrame(np.asarray(STATUSES, dtype=object)[codes], index=v.index, columns=v.columns)


def evaluate_series(values: pd.Series, kpi: KpiDefinition, *, grain_s: float | None = None) -> pd.DataFrame:
    """One entity's statuses: [period_start, value, status], the no_data rule applied to value."""
    frame = values.sort_index().to_frame("v")
    status = status_frame(frame, kpi, grain_s=grain_s)["v"]
    shown = read.apply_no_data(frame["v"], kpi.no_data)
    return pd.DataFrame({"period_start": frame.index, "value": shown.to_numpy(), "status": status.to_numpy()})


def run_start(statuses: pd.Series) -> Any:
    """The index label where the last run of equal statuses began."""
    s = statuses.to_numpy()
    i = len(s) - 1
    while i > 0 and s[i - 1] == s[-1]:
        i -= 1
    return statuses.index[i]


def _levels(catalogue: Catalogue, kpi: KpiDefinition, levels: tuple[str, ...] | None) -> tuple[str, ...]:
    if levels is not None:
        chosen = levels
    elif kpi.domain == "technical":
        chosen = LEVELS + TECHNICAL_LEVELS
    else:
        chosen = LEVELS
    if RISK in read.inputs(catalogue, kpi):
        chosen = tuple(lvl for lvl in chosen if lvl in ("network", "region"))
    return chosen


def _fetch_quarters(
    conn: Connection,
    catalogue: Catalogue,
    names: set[str],
    levels: list[str],
    since: datetime,
    until: datetime,
) -> dict[str, pd.DataFrame]:
    return read.fetch_levels(conn, catalogue, names, levels=levels, grain_s=900, since=since, until=until)


def _inputs_rows(by_series: dict[str, pd.DataFrame], empty: pd.DataFrame, names: set[str]) -> pd.DataFrame:
    """The rows of ``names`` among rows split by series (``empty``: none of them has any)."""
    parts = [by_series[n] for n in sorted(names) if n in by_series]
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True) if parts else empty


Plan = tuple[KpiDefinition, str, int, datetime, datetime, datetime, int, int, int]
Wanted = dict[tuple[str, int, datetime], tuple[datetime, set[str]]]


def _plan(
    catalogue: Catalogue, now: datetime, levels: tuple[str, ...] | None, part: str = "all"
) -> tuple[list[Plan], Wanted]:
    """What a pass evaluates (per KPI and level: its grain, window and ``for``) and reads (per level,
    grain and end: the earliest period and the series), for the KPIs of ``part`` (PARTS)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}: expected one of {', '.join(PARTS)}")
    plans: list[Plan] = []
    # The KPIs of a level and grain share one read of roll-up rows (the union of their inputs over
    # the longest of their windows); each KPI then keeps the periods of its own window.
    wanted: Wanted = {}
    for kpi in catalogue.kpis:
        grain = int(kpi.grain)
        if part != "all" and (grain == 900) != (part == "quarters"):
            continue
        need = max(
            _periods_needed(kpi.thresholds.warning, grain), _periods_needed(kpi.thresholds.critical, grain), 1
        )
        last_complete = floor_time(now, grain) - timedelta(seconds=grain)
        lateness = max(LATE_PERIODS * grain, 3600)
        window = need + EXTRA_PERIODS
        since = last_complete - timedelta(seconds=grain * window + lateness)
        until = last_complete + timedelta(seconds=grain)
        for level in _levels(catalogue, kpi, levels):
            key = (level, grain, until)
            lo, names = wanted.get(key, (since, set()))
            wanted[key] = (min(lo, since), names | read.inputs(catalogue, kpi))
            plans.append((kpi, level, grain, since, until, last_complete, lateness, window, need))
    return plans, wanted


def _quarter_reads(wanted: Wanted) -> dict[datetime, tuple[datetime, set[str], list[str]]]:
    """The reads of quarter hours, per end: the earliest period, the series and the levels (every
    level's quarter hours come from one read of the samples, read.fetch_levels)."""
    quarters: dict[datetime, tuple[datetime, set[str], list[str]]] = {}
    for (level, grain, until), (lo, names) in wanted.items():
        if grain == 900:
            q_lo, q_names, q_levels = quarters.get(until, (lo, set(), []))
            quarters[until] = (min(q_lo, lo), q_names | names, [*q_levels, level])
    return quarters


def refresh_status(
    conn: Connection,
    catalogue: Catalogue,
    *,
    now: datetime,
    levels: tuple[str, ...] | None = None,
    memo: QuarterHours | None = None,
    part: str = "all",
) -> StatusSummary:
    """Evaluate every KPI (or those of ``part``, PARTS) at its grain for each entity of the status
    levels; rewrite their rows of kpi_status.

    ``memo`` keeps the quarter-hour rows between the passes of one process (quarters.py): only the
    hours the roll-up pass just recomputed, and hours not read yet, are read from the store."""
    started = time.perf_counter()
    summary = StatusSummary()
    counts: Counter[str] = Counter()
    plans, wanted = _plan(catalogue, now, levels, part)
    fetched: dict[tuple[str, int, datetime], pd.DataFrame] = {}
    quarters = _quarter_reads(wanted)
    for key, (lo, names) in wanted.items():
        level, grain, until = key
        if grain != 900:
            fetched[key] = read.fetch_rows(
                conn, catalogue, names, level=level, grain_s=grain, since=lo, until=until
            )
    for until, (lo, names, lvls) in quarters.items():
        fetch = partial(_fetch_quarters, conn, catalogue, names, lvls)
        if memo is not None and len(quarters) == 1:
            rows_of = memo.rows(fetch, series=names, levels=lvls, since=lo, until=until)
            summary.hours_read, summary.hours_added = memo.read_hours, memo.added_hours
        else:
            rows_of = fetch(lo, until)
        fetched |= {(lvl, 900, until): rows_of[lvl] for lvl in lvls}
    entities: dict[str, list[str]] = {}
    st = kpi_status.c
    stored = read_frame(conn, select(st.kpi, st.level, st.entity_id, st.status, st.since))
    before = {key: part.set_index("entity_id") for key, part in stored.groupby(["kpi", "level"], sort=False)}
    written: list[tuple[str, str]] = []
    by_series: dict[tuple[str, int, datetime], tuple[dict[str, pd.DataFrame], pd.DataFrame]] = {}
    columns: dict[str, list[Any]] = {c: [] for c in _STATUS_COLUMNS}
    names_of = np.asarray(STATUSES, dtype=object)
    for kpi, level, grain, since, until, last_complete, lateness, window, need in plans:
        if level not in entities:
            entities[level] = read.entities(conn, level)
        ents = entities[level]
        key = (level, grain, until)
        if key not in by_series:
            # Each KPI reads its own inputs' rows, not a mask over every series' rows per KPI.
            frame = fetched.pop(key)
            by_series[key] = (dict(tuple(frame.groupby("series", sort=False))), frame.iloc[0:0])
        rows = _inputs_rows(*by_series[key], read.inputs(catalogue, kpi))
        rows = rows[rows["period_start"] >= pd.Timestamp(floor_time(since, min(grain, 86400)))]
        values = read.kpi_values(catalogue, kpi, rows)
        end = last_complete
        if len(values):
            latest = values.dropna().index.get_level_values("period_start").max()
            if pd.notna(latest) and latest < end and (end - latest).total_seconds() <= lateness:
                end = latest.to_pydatetime()
        index = pd.date_range(end - timedelta(seconds=grain * (window - 1)), end, freq=f"{grain}s")
        wide = (
            values.unstack("entity_id").reindex(index=index, columns=ents)
            if len(values)
            else pd.DataFrame(np.nan, index=index, columns=ents)
        )
        shown = read.apply_no_data(wide.astype(float), kpi.no_data).to_numpy(dtype=float)
        codes = status_codes(shown, kpi, grain)
        last = codes[-1]
        # The window's first need - 1 periods have no look-back: a breach there is not yet counted
        # for its `for`, so their statuses may be understated and a run is followed back to the
        # first period after them at most.
        trusted = codes[min(need - 1, len(codes) - 1) :]
        # Length of the trailing run of each entity's last status, vectorised over entities.
        trailing = np.cumprod((trusted == last)[::-1], axis=0).sum(axis=0)
        began = index.to_numpy()[len(codes) - trailing]
        previous = before.get((kpi.name, level))
        if previous is not None and len(ents):
            # Unchanged over the whole window and as before: the status began when it was first seen.
            prev = previous.reindex(ents)
            prev_since = pd.to_datetime(prev["since"]).to_numpy()
            same = (trailing == len(trusted)) & (prev["status"].to_numpy() == names_of[last])
            same &= ~pd.isna(prev_since)
            began = np.where(same, prev_since, began)
        n = len(ents)
        columns["kpi"] += [kpi.name] * n
        columns["level"] += [level] * n
        columns["entity_id"] += list(ents)
        columns["status"] += names_of[last].tolist()
        columns["value"] += [None if np.isnan(v) else float(v) for v in shown[-1]]
        columns["period_start"] += [end] * n
        columns["since"] += pd.DatetimeIndex(began).to_pydatetime().tolist()
        columns["evaluated_at"] += [now] * n
        counts.update(names_of[last].tolist())
        written.append((kpi.name, level))
        summary.rows += n
    # One read of the previous statuses above; here one write of every KPI and level evaluated.
    if written:
        scope = or_(*(and_(st.kpi == name, st.level == level) for name, level in written))
        replace_columns(conn, kpi_status, columns, scope=scope)
    summary.by_status = dict(counts)
    summary.elapsed_s = time.perf_counter() - started
    return summary
