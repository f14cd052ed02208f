"""Seasonal baselines kept in the store and each series' verdict against its band, updated incrementally.

For every KPI with an ``anomaly:`` rule and each of the rule's levels (cell, site, region), a pass reads
the 15-minute values of the periods completed since the last pass, compares each with its series'
baseline for that slot (quarter hour of a weekday or weekend day) and then learns from it
(:mod:`dashboard.kpi_eval.baseline`). Only the slots of those periods are read from ``kpi_baselines``
and written back, so a 15-minute pass touches one slot per series. ``kpi_anomalies`` keeps the latest
verdict per series (learning, normal or anomalous, the usual value, the band and how long it held).

The first pass of a store learns from the ``learn_days`` before the last complete period, so bands
and verdicts exist from the start: each slot starts from the median and MAD of its values there
(robust to the faults in the history, which learning one value at a time from an empty slot is
not), and the last periods are replayed one at a time to reach the current verdicts. A period is
read once it is complete and samples exist for it; samples arriving after their period was read do
not teach the baseline (they still count everywhere else). A gap longer than ``learn_days``
restarts from the last ``learn_days``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, func, select

from dashboard.ingest.runner import load_state, save_state
from dashboard.kpi_eval import read
from dashboard.kpi_eval._sql import floor_time
from dashboard.kpi_eval._write import insert_columns, replace_columns
from dashboard.kpi_eval.baseline import SLOTS, Baseline, Verdicts, breach_arrays, slot_of
from dashboard.kpis import Catalogue, KpiDefinition
from dashboard.store.db import chunks, read_frame
from dashboard.store.schema import kpi_anomalies, kpi_baselines, kpi_samples

STATE_KEY = ("vantage", "kpi-anomalies")
GRAIN_S = 900
GRAIN = timedelta(seconds=GRAIN_S)
TRAFFIC_KPI = "traffic_gb"
#: Periods read per statement when catching up (a day).
CHUNK_PERIODS = 96
#: A long window seeds empty slots robustly, then replays this many periods one at a time.
REPLAY_PERIODS = 8
#: Quarter hours either side whose residuals a seeded slot's scale pools.
NEIGHBOURS = 2
#: MAD x this estimates a normal sigma.
_MAD_TO_SIGMA = 1.4826
_SIGN = {"below": -1, "above": 1, "both": 0}


@dataclass
class AnomalySummary:
    periods: int = 0
    series: int = 0
    anomalous: int = 0
    opened: int = 0
    closed: int = 0
    through: datetime | None = None
    elapsed_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "periods": self.periods,
            "series": self.series,
            "anomalous": self.anomalous,
            "opened": self.opened,
            "closed": self.closed,
            "through": self.through.isoformat() if self.through else None,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def anomaly_kpis(catalogue: Catalogue) -> list[KpiDefinition]:
    """The KPIs that carry an anomaly rule."""
    return [k for k in catalogue.kpis if k.anomaly is not None]


@dataclass
class Rules:
    """Per series, its KPI's anomaly rule as arrays, so that every series goes in one vector step."""

    sign: np.ndarray
    min_z: np.ndarray
    min_rel: np.ndarray
    periods: np.ndarray
    clear: np.ndarray
    min_traffic: np.ndarray

    @classmethod
    def of(cls, kpis: list[KpiDefinition]) -> Rules:
        rules = [(k, k.anomaly) for k in kpis if k.anomaly is not None]
        if len(rules) != len(kpis):
            raise ValueError("every series needs a KPI with an anomaly rule")
        return cls(
            sign=np.array([_SIGN[r.bad_way(k.direction)] for k, r in rules], dtype=np.int8),
            min_z=np.array([r.min_z for _, r in rules], dtype=float),
            min_rel=np.array([r.min_deviation for _, r in rules], dtype=float),
            periods=np.array([r.periods(GRAIN_S) for _, r in rules], dtype=np.int32),
            clear=np.array([r.clear_periods(GRAIN_S) for _, r in rules], dtype=np.int32),
            min_traffic=np.array([r.min_traffic_gb for _, r in rules], dtype=float),
        )


@dataclass
class Step:
    """What one period did to every series: the band it was read against and the verdict's moves."""

    expected: np.ndarray
    scale: np.ndarray
    warm: np.ndarray
    z: np.ndarray
    rel: np.ndarray
    opened: np.ndarray
    closed: np.ndarray


def judge_period(
    base: Baseline, verdicts: Verdicts, rules: Rules, column: int, x: np.ndarray, traffic: np.ndarray
) -> Step:
    """Read one period's values (one per series) against their slot ``column``, then learn from them.

    The one rule both the evaluation job and ``vantage kpi test`` apply."""
    idx = np.arange(len(x))
    col = np.full(len(x), column)
    expected, scale, warm = base.expected(idx, col)
    z, rel = base.update(idx, col, x)
    hit = breach_arrays(z, rel, rules.sign, rules.min_z, rules.min_rel) & (traffic >= rules.min_traffic)
    opened, closed = verdicts.step(z, rel, hit, rules.periods, rules.clear)
    return Step(expected, scale, warm, z, rel, opened, closed)


def seed_slots(base: Baseline, values: np.ndarray, columns: np.ndarray, slot_ids: list[int]) -> None:
    """Start every (series, slot) that has learnt nothing from the window's ``values`` (periods x series,
    period ``p`` in local slot column ``columns[p]``; ``slot_ids[j]`` is column j's slot), when it has
    at least the warm-up count of them: the level is the median of the slot's values, the scale the
    MAD of the residuals from their own slot's median over the slot and its neighbours (two quarter
    hours either side, same day type), since a slot has only a few values of its own (4 weekend days
    in two weeks) and the spread changes slowly through the day. A few disturbed days in the history
    then move neither the level nor the scale, where learning them one at a time from an empty slot
    would take them in at full weight."""
    present = np.unique(columns)
    med = np.full((len(slot_ids), values.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        for j in present:
            med[j] = np.nanmedian(values[columns == j], axis=0)
    resid = np.abs(values - med[columns])
    local = {g: j for j, g in enumerate(slot_ids)}
    for j in present:
        rows = values[columns == j]
        n = np.isfinite(rows).sum(axis=0)
        empty = (base.count[:, j] == 0) & (n >= base.warmup)
        if not empty.any():
            continue
        g = slot_ids[j]
        day0 = (g // 96) * 96
        near = [
            local[k] for d in range(-NEIGHBOURS, NEIGHBOURS + 1) if (k := day0 + (g % 96 + d) % 96) in local
        ]
        pooled = resid[np.isin(columns, near)][:, empty]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mad = np.nanmedian(pooled, axis=0)
        level = med[j, empty]
        base.level[empty, j] = level
        base.scale[empty, j] = np.maximum(np.nan_to_num(mad) * _MAD_TO_SIGMA, np.abs(level) * base.rel_floor)
        base.count[empty, j] = np.minimum(n[empty], 65535)


@dataclass
class _Series:
    """The series of one pass: keys, their rules, baseline and verdict state."""

    keys: list[tuple[str, str, str]]
    kpi_rules: dict[str, KpiDefinition]
    position: dict[tuple[str, str, str], int] = field(init=False)

    def __post_init__(self) -> None:
        self.position = {k: i for i, k in enumerate(self.keys)}
        n = len(self.keys)
        self.rules = Rules.of([self.kpi_rules[k[0]] for k in self.keys])
        self.verdicts = Verdicts(n)
        self.since: list[datetime | None] = [None] * n
        self.worst = np.full(n, np.nan)
        self.last = {
            name: np.full(n, np.nan) for name in ("value", "expected", "scale", "z", "deviation", "warm")
        }
        self.last_period: list[datetime | None] = [None] * n


def _latest_sample(conn: Connection, names: list[str]) -> datetime | None:
    # One probe per KPI: the newest entry of the (kpi, period_start) index of each partition. With
    # the KPIs in one IN list, PostgreSQL reads every entry of theirs instead.
    found = [
        conn.execute(select(func.max(kpi_samples.c.period_start)).where(kpi_samples.c.kpi == name)).scalar()
        for name in names
    ]
    values = [pd.Timestamp(v).to_pydatetime() for v in found if v is not None]
    return max(values) if values else None


def _values(
    catalogue: Catalogue, kpis: list[KpiDefinition], rows: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Wide frames (period x (kpi, entity)) of the KPIs' values and of traffic, from one level's rows."""
    parts = {}
    for k in kpis:
        v = read.kpi_values(catalogue, k, rows)
        if len(v):
            parts[k.name] = v.unstack("entity_id")
    traffic = None
    if _wants_traffic(catalogue, kpis):
        t = read.kpi_values(catalogue, catalogue.get(TRAFFIC_KPI), rows)
        traffic = t.unstack("entity_id") if len(t) else None
    wide = pd.concat(parts, axis=1) if parts else pd.DataFrame()
    return wide, traffic


def _wants_traffic(catalogue: Catalogue, kpis: list[KpiDefinition]) -> bool:
    wants = any(k.anomaly is not None and k.anomaly.min_traffic_gb > 0 for k in kpis)
    return wants and catalogue.find(TRAFFIC_KPI) is not None


def _load(conn: Connection, s: _Series, names: list[str], slots: list[int]) -> Baseline:
    """The baseline of the pass's series for ``slots`` (columns in that order)."""
    base = Baseline(len(s.keys), slots=len(slots))
    col = {slot: j for j, slot in enumerate(slots)}
    b = kpi_baselines
    for part in chunks(slots):
        q = select(b.c.kpi, b.c.level, b.c.entity_id, b.c.slot, b.c.mean, b.c.scale, b.c.n).where(
            b.c.slot.in_(part), b.c.kpi.in_(names)
        )
        for kpi, level, ent, slot, mean, scale, n in conn.execute(q):
            i = s.position.get((kpi, level, ent))
            if i is None:
                continue
            j = col[int(slot)]
            base.level[i, j], base.scale[i, j], base.count[i, j] = mean, scale, min(int(n), 65535)
    return base


def _load_verdicts(conn: Connection, s: _Series, names: list[str]) -> None:
    a = kpi_anomalies
    q = select(
        a.c.kpi, a.c.level, a.c.entity_id, a.c.state, a.c.run, a.c.calm, a.c.since, a.c.worst_deviation
    ).where(a.c.kpi.in_(names))
    for kpi, level, ent, state, run, calm, since, worst in conn.execute(q):
        i = s.position.get((kpi, level, ent))
        if i is None:
            continue
        s.verdicts.run[i], s.verdicts.calm[i] = int(run), int(calm)
        s.verdicts.anomalous[i] = state == "anomalous"
        s.since[i] = pd.Timestamp(since).to_pydatetime() if since is not None else None
        s.worst[i] = np.nan if worst is None else float(worst)


def _stored_keys(conn: Connection, names: list[str]) -> list[tuple[str, str, str]]:
    a = kpi_anomalies
    q = select(a.c.kpi, a.c.level, a.c.entity_id).where(a.c.kpi.in_(names))
    return [(str(k), str(lv), str(e)) for k, lv, e in conn.execute(q)]


def _window(
    conn: Connection, kpis: list[KpiDefinition], state: dict[str, Any], now: datetime
) -> tuple[datetime, datetime, datetime | None] | None:
    """The first and last period a pass at ``now`` reads, and the last period the passes before
    learnt from (None: none); None when there are no samples yet."""
    latest = _latest_sample(conn, [k.name for k in kpis])
    if latest is None:
        return None
    done = datetime.fromisoformat(state["through"]) if state.get("through") else None
    end = min(floor_time(latest, GRAIN_S), floor_time(now, GRAIN_S) - GRAIN)
    learn = max(k.anomaly.learn_days for k in kpis if k.anomaly is not None)
    earliest = end - timedelta(days=learn) + GRAIN
    return (earliest if done is None else max(done + GRAIN, earliest)), end, done


def reads_samples_only(conn: Connection, catalogue: Catalogue, *, now: datetime) -> bool:
    """Whether a pass at ``now`` would read raw samples only: its window begins at or after the oldest
    sample kept, so it reads none of the hourly roll-ups (which a full roll-up build is rewriting)."""
    kpis = anomaly_kpis(catalogue)
    if not kpis:
        return True
    window = _window(conn, kpis, load_state(conn, *STATE_KEY), now)
    if window is None:
        return True
    start = window[0]
    names = sorted({k.name for k in kpis} | ({TRAFFIC_KPI} if _wants_traffic(catalogue, kpis) else set()))
    return read.raw_samples_from(conn, names, start) <= start


def refresh_anomalies(conn: Connection, catalogue: Catalogue, *, now: datetime) -> AnomalySummary:
    """Learn from the periods completed since the last pass and rewrite the verdicts."""
    started = time.perf_counter()
    summary = AnomalySummary()
    kpis = anomaly_kpis(catalogue)
    if not kpis:
        return summary
    names = [k.name for k in kpis]
    state = load_state(conn, *STATE_KEY, for_update=True)
    window = _window(conn, kpis, state, now)
    if window is None:
        summary.elapsed_s = time.perf_counter() - started
        return summary
    start, end, done = window
    summary.through = done
    if start > end:
        summary.elapsed_s = time.perf_counter() - started
        return summary
    periods = pd.date_range(start, end, freq=f"{GRAIN_S}s")
    summary.periods = len(periods)
    # Read the values of the window a day per statement, into one wide frame per level.
    t0 = time.perf_counter()
    levels: dict[str, list[KpiDefinition]] = {}
    for k in kpis:
        for lvl in k.anomaly.levels if k.anomaly is not None else ():
            levels.setdefault(str(lvl), []).append(k)
    frames: list[pd.DataFrame] = []
    traffic: dict[str, pd.DataFrame] = {}
    read_names = {k.name for k in kpis} | ({TRAFFIC_KPI} if _wants_traffic(catalogue, kpis) else set())
    values_parts: dict[str, list[pd.DataFrame]] = {level: [] for level in levels}
    traffic_parts: dict[str, list[pd.DataFrame]] = {level: [] for level in levels}
    for lo in range(0, len(periods), CHUNK_PERIODS):
        p_lo = periods[lo].to_pydatetime()
        p_hi = periods[min(lo + CHUNK_PERIODS, len(periods)) - 1].to_pydatetime() + GRAIN
        rows_of = read.fetch_levels(
            conn, catalogue, read_names, levels=list(levels), grain_s=GRAIN_S, since=p_lo, until=p_hi
        )
        for level, ks in levels.items():
            wide, tr = _values(catalogue, ks, rows_of[level])
            values_parts[level].append(wide)
            if tr is not None:
                traffic_parts[level].append(tr)
    for level in levels:
        wide = pd.concat(values_parts[level]) if values_parts[level] else pd.DataFrame()
        if len(wide.columns):
            wide.columns = pd.MultiIndex.from_tuples([(k, level, str(e)) for k, e in wide.columns])
            frames.append(wide)
        if traffic_parts[level]:
            traffic[level] = pd.concat(traffic_parts[level])
    summary.steps["read_s"] = time.perf_counter() - t0
    values = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=periods)
    values = values.reindex(index=periods)
    pairs = {(k.name, level) for level, ks in levels.items() for k in ks}
    stored = {key for key in _stored_keys(conn, names) if (key[0], key[1]) in pairs}
    keys = sorted(set(values.columns.tolist()) | stored)
    values = values.reindex(columns=pd.MultiIndex.from_tuples(keys) if keys else None)
    s = _Series(keys, {k.name: k for k in kpis})
    if not keys:
        save_state(conn, *STATE_KEY, {"through": end.isoformat()}, now=now)
        summary.through = end
        summary.elapsed_s = time.perf_counter() - started
        return summary
    slots_of_periods = slot_of(periods.to_numpy())
    slots = sorted({int(x) for x in slots_of_periods})
    col = {slot: j for j, slot in enumerate(slots)}
    t0 = time.perf_counter()
    base = _load(conn, s, names, slots)
    _load_verdicts(conn, s, names)
    summary.steps["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    arr = values.to_numpy(dtype=float)
    traffic_arr = _traffic_array(traffic, keys, periods, s.rules.min_traffic)
    stamps = periods.to_pydatetime()
    first = 0
    if len(periods) > REPLAY_PERIODS + CHUNK_PERIODS:
        # A long window (the first pass, or catching up): slots that know nothing yet start from the
        # median and MAD of the window's values, robust to the faults inside it, and only the last
        # periods are replayed one at a time to reach the current verdicts.
        first = len(periods) - REPLAY_PERIODS
        seed_slots(base, arr[:first], np.array([col[int(x)] for x in slots_of_periods[:first]]), slots)
    for p in range(first, len(stamps)):
        when = stamps[p]
        x = arr[p]
        st = judge_period(base, s.verdicts, s.rules, col[int(slots_of_periods[p])], x, traffic_arr[p])
        rel = st.rel
        for i in np.flatnonzero(st.opened):
            # The anomaly began with the first of the out-of-band periods that made it count.
            s.since[i] = when - GRAIN * (int(s.verdicts.run[i]) - 1)
            s.worst[i] = rel[i]
            summary.opened += 1
        for i in np.flatnonzero(st.closed):
            s.since[i] = when - GRAIN * (int(s.verdicts.calm[i]) - 1)
            s.worst[i] = np.nan
            summary.closed += 1
        still = s.verdicts.anomalous & ~st.opened & np.isfinite(rel)
        if still.any():
            sign = np.where(s.rules.sign == 0, np.sign(np.nan_to_num(rel)), s.rules.sign)
            worse = still & ~(np.abs(s.worst) >= np.abs(rel)) & (rel * sign > 0)
            s.worst[worse] = rel[worse]
        seen = np.isfinite(x)
        for name, v in (
            ("value", x),
            ("expected", st.expected),
            ("scale", st.scale),
            ("z", st.z),
            ("deviation", rel),
            ("warm", st.warm.astype(float)),
        ):
            s.last[name] = np.where(seen, v, s.last[name])
        for i in np.flatnonzero(seen):
            s.last_period[i] = when
            if s.since[i] is None:
                s.since[i] = when
    summary.steps["learn_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _write_baselines(conn, s, base, names, slots)
    _write_verdicts(conn, s, names, now)
    save_state(conn, *STATE_KEY, {"through": end.isoformat()}, now=now)
    summary.steps["write_s"] = time.perf_counter() - t0
    summary.through = end
    summary.series = len(keys)
    summary.anomalous = int(s.verdicts.anomalous.sum())
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _traffic_array(
    traffic: dict[str, pd.DataFrame],
    keys: list[tuple[str, str, str]],
    periods: pd.DatetimeIndex,
    min_traffic: np.ndarray,
) -> np.ndarray:
    """Traffic per period (rows) and series (columns) for the series whose rule has a traffic floor:
    their entity's traffic at their level (0 where none was recorded, so the floor holds them back);
    +inf for the others, whom no floor applies to. One take per level, not one lookup per series."""
    out = np.full((len(periods), len(keys)), np.inf)
    if not keys:
        return out
    levels = np.asarray([k[1] for k in keys], dtype=object)
    ents = pd.Index([k[2] for k in keys])
    floor = min_traffic > 0
    for level, tr in traffic.items():
        mine = np.flatnonzero((levels == level) & floor)
        if not len(mine):
            continue
        grid = tr.reindex(periods).fillna(0.0).to_numpy(dtype=float)
        at = tr.columns.get_indexer(ents[mine])
        known = at >= 0
        out[:, mine[known]] = grid[:, at[known]]
    return out


def _write_baselines(
    conn: Connection, s: _Series, base: Baseline, names: list[str], slots: list[int]
) -> None:
    b = kpi_baselines
    for part in chunks(slots):
        conn.execute(delete(b).where(b.c.slot.in_(part), b.c.kpi.in_(names)))
    # Every (slot, series) that has learnt something, slot by slot, as columns (no dict per row).
    cols, series = np.nonzero(base.count.T > 0)
    keys = np.empty((len(s.keys), 3), dtype=object)
    if len(s.keys):
        keys[:] = s.keys
    slot_ids = np.asarray(slots, dtype=np.int64)
    insert_columns(
        conn,
        b,
        {
            "kpi": keys[series, 0].tolist(),
            "level": keys[series, 1].tolist(),
            "entity_id": keys[series, 2].tolist(),
            "slot": slot_ids[cols].tolist(),
            "mean": base.level[series, cols].astype(float).tolist(),
            "scale": base.scale[series, cols].astype(float).tolist(),
            "n": base.count[series, cols].astype(np.int64).tolist(),
        },
    )


def _nums(values: np.ndarray, keep: np.ndarray | None = None) -> list[float | None]:
    """Values as floats, None where not finite (or where ``keep`` is False)."""
    ok = np.isfinite(values) if keep is None else np.isfinite(values) & keep
    return [float(v) if k else None for v, k in zip(values.tolist(), ok.tolist(), strict=True)]


def _write_verdicts(conn: Connection, s: _Series, names: list[str], now: datetime) -> None:
    a = kpi_anomalies
    n = len(s.keys)
    if not n:
        conn.execute(delete(a).where(a.c.kpi.in_(names)))
        return
    warm = s.last["warm"] == 1.0
    never = np.fromiter((p is None for p in s.last_period), dtype=bool, count=n)
    state = np.where(
        s.verdicts.anomalous,
        "anomalous",
        np.where(never & ~np.isfinite(s.last["value"]), "no_data", np.where(warm, "normal", "learning")),
    )
    keys = np.empty((n, 3), dtype=object)
    keys[:] = s.keys
    replace_columns(
        conn,
        a,
        {
            "kpi": keys[:, 0].tolist(),
            "level": keys[:, 1].tolist(),
            "entity_id": keys[:, 2].tolist(),
            "state": state.tolist(),
            "period_start": list(s.last_period),
            "value": _nums(s.last["value"]),
            "expected": _nums(s.last["expected"], warm),
            "scale": _nums(s.last["scale"], warm),
            "z": _nums(s.last["z"]),
            "deviation": _nums(s.last["deviation"]),
            "run": s.verdicts.run.astype(np.int64).tolist(),
            "calm": s.verdicts.calm.astype(np.int64).tolist(),
            "since": list(s.since),
            "worst_deviation": _nums(s.worst, s.verdicts.anomalous),
            "evaluated_at": [now] * n,
        },
        scope=a.c.kpi.in_(names),
    )


def band_frame(conn: Connection, catalogue: Catalogue, kpi: str, level: str, entity_id: str) -> pd.DataFrame:
    """The series' baseline per slot: slot, expected, low and high of the band (empty while learning).

    The band is the expected value plus or minus the larger of ``min_z`` scales and ``min_deviation``
    of the level, i.e. the values the rule leaves alone.
    """
    k = catalogue.find(kpi)
    cols = ["slot", "expected", "low", "high", "n"]
    if k is None or k.anomaly is None:
        return pd.DataFrame(columns=cols)
    b = kpi_baselines
    rows = read_frame(
        conn,
        select(b.c.slot, b.c.mean, b.c.scale, b.c.n).where(
            b.c.kpi == kpi, b.c.level == level, b.c.entity_id == entity_id
        ),
    )
    if not len(rows):
        return pd.DataFrame(columns=cols)
    rows.columns = ["slot", "mean", "scale", "n"]
    width = np.maximum(k.anomaly.min_z * rows["scale"], k.anomaly.min_deviation * rows["mean"].abs())
    warm = rows["n"] >= Baseline(1, slots=1).warmup
    out = pd.DataFrame(
        {
            "slot": rows["slot"].astype(int),
            "expected": rows["mean"],
            "low": rows["mean"] - width,
            "high": rows["mean"] + width,
            "n": rows["n"].astype(int),
        }
    )[warm.to_numpy()]
    return out.sort_values("slot", ignore_index=True)


def band_for(band: pd.DataFrame, times: pd.DatetimeIndex) -> pd.DataFrame:
    """The band at each of ``times`` (columns expected, low, high; NaN where the slot is learning)."""
    slots = slot_of(times.to_numpy())
    keyed = band.set_index("slot")[["expected", "low", "high"]] if len(band) else None
    if keyed is None:
        return pd.DataFrame(np.nan, index=times, columns=["expected", "low", "high"])
    out = keyed.reindex(slots)
    out.index = times
    return out


def anomaly_frame(conn: Connection, *, levels: tuple[str, ...] = ("cell", "site", "region")) -> pd.DataFrame:
    """Every series' latest verdict at ``levels`` (the rows of ``kpi_anomalies``)."""
    a = kpi_anomalies
    return read_frame(conn, select(a).where(a.c.level.in_(levels)))


def anomaly_states(
    kpi: KpiDefinition, usual: list[float], values: list[float], *, start: datetime, learn: timedelta
) -> list[str]:
    """The verdict per period of ``values`` (from ``start``, one per 15 minutes) after a baseline learnt
    over ``learn`` of history whose quarter hours repeat ``usual`` (a day's profile, cycled)."""
    if kpi.anomaly is None:
        raise ValueError(f"{kpi.name} has no anomaly rule")
    n_hist = int(learn / GRAIN)
    hist_times = pd.date_range(start - GRAIN * n_hist, periods=n_hist, freq=f"{GRAIN_S}s")
    day_pos = ((hist_times - hist_times.normalize()) // GRAIN).to_numpy(dtype=np.int64)
    profile = np.asarray(usual, dtype=float)
    hist = profile[day_pos * len(profile) // 96] if len(profile) != 96 else profile[day_pos]
    times = pd.date_range(start, periods=len(values), freq=f"{GRAIN_S}s")
    base = Baseline(1, slots=SLOTS)
    verdicts = Verdicts(1)
    rules = Rules.of([kpi])
    inf = np.array([np.inf])
    for t, x in zip(slot_of(hist_times.to_numpy()), hist, strict=True):
        judge_period(base, verdicts, rules, int(t), np.array([x]), inf)
    out = []
    for t, x in zip(slot_of(times.to_numpy()), values, strict=True):
        st = judge_period(base, verdicts, rules, int(t), np.array([x], dtype=float), inf)
        if verdicts.anomalous[0]:
            out.append("anomalous")
        elif not np.isfinite(x):
            out.append("no_data")
        elif not st.warm[0]:
            out.append("learning")
        else:
            out.append("normal")
    return out
