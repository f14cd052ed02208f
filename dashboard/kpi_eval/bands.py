"""KPI series against their seasonal baseline, as the pages show them: values with the usual band,
each series' verdict in words, and how many cells and sites are outside their usual band now.

The band of a period is its slot's baseline (quarter hour of a weekday or weekend day) as the store
holds it now (:func:`dashboard.kpi_eval.anomaly.band_frame`: the values the KPI's ``anomaly:`` rule
leaves alone), so the last 24 hours are drawn against what is usual for each of their quarter hours.
A slot is learnt from one value a week and each value moves it by at most a few per cent, so the
band of a past period is, within that, the band the value was judged against. Verdicts are the rows
of ``kpi_anomalies`` written by the KPI evaluation; nothing here judges a value again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, case, func, select

from dashboard.kpi_eval import read
from dashboard.kpi_eval._sql import floor_time
from dashboard.kpi_eval.anomaly import GRAIN_S, STATE_KEY, anomaly_kpis, band_for, band_frame
from dashboard.kpis import Catalogue, KpiDefinition, deviation_words
from dashboard.store.db import read_frame, read_frame_in
from dashboard.store.schema import cells, connector_state, kpi_anomalies, regions, sites

#: The levels the pages show bands for (a region's band is kept when its rule asks, but not drawn).
LEVELS = ("cell", "site")
#: How far back the pages draw a series against its band.
WINDOW = timedelta(hours=24)
SERIES_COLUMNS = ["kpi", "entity_id", "period_start", "value", "expected", "low", "high", "outside"]
#: Tones of a verdict, as the pages colour it (with words, never colour alone).
TONES = ("bad", "warn", "ok", "muted")


class BandReadError(read.KpiReadError):
    """A band the store cannot have: a KPI without an anomaly rule, or a level it keeps none at."""


def band_kpis(catalogue: Catalogue) -> list[KpiDefinition]:
    """The KPIs that have a usual band: those with an ``anomaly:`` rule, in the catalogue's order."""
    return anomaly_kpis(catalogue)


def _ruled(catalogue: Catalogue, names: Sequence[str], level: str) -> list[KpiDefinition]:
    out = []
    for name in names:
        k = catalogue.find(name)
        if k is None:
            raise BandReadError(f"unknown KPI {name!r}")
        if k.anomaly is None:
            raise BandReadError(f"{name} has no anomaly rule, so no usual band")
        if level not in k.anomaly.levels:
            raise BandReadError(f"{name} keeps no usual band per {level}")
        out.append(k)
    return out


def _outside(values: np.ndarray, low: np.ndarray, high: np.ndarray, bad_way: str) -> np.ndarray:
    """Beyond the band in the direction the rule counts (NaN values or bands never are)."""
    with np.errstate(invalid="ignore"):
        below = values < low
        above = values > high
    hit = below if bad_way == "below" else above if bad_way == "above" else below | above
    return np.asarray(hit & np.isfinite(values) & np.isfinite(low) & np.isfinite(high), dtype=bool)


def band_panel(
    conn: Connection,
    catalogue: Catalogue,
    kpis: Sequence[str],
    *,
    level: str,
    entity_ids: Sequence[str],
    since: datetime,
    until: datetime,
) -> pd.DataFrame:
    """Every 15-minute period in [since, until) of each KPI at each entity, with its band.

    Columns ``SERIES_COLUMNS``: value (NaN where no sample), expected, low and high (NaN where the
    slot is still learning) and ``outside``: the value is beyond the band in the rule's bad direction.
    Rows by KPI (in the order given), entity (in the order given) and time.
    """
    ks = _ruled(catalogue, kpis, level)
    ents = list(dict.fromkeys(str(e) for e in entity_ids))
    if not ks or not ents:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    index = read.periods(since, until, GRAIN_S)
    names: set[str] = set()
    for k in ks:
        names |= read.inputs(catalogue, k)
    rows = read.fetch_rows(
        conn, catalogue, names, level=level, grain_s=GRAIN_S, since=since, until=until, entities=ents
    )
    parts = []
    for k in ks:
        values = read.kpi_values(catalogue, k, rows)
        present = set(values.index.get_level_values("entity_id")) if len(values) else set()
        bad_way = k.anomaly.bad_way(k.direction) if k.anomaly is not None else "both"
        for e in ents:
            got = values.xs(e, level="entity_id") if e in present else pd.Series(dtype=float)
            v = got.reindex(index).to_numpy(dtype=float)
            band = band_for(band_frame(conn, catalogue, k.name, level, e), index)
            low, high = band["low"].to_numpy(dtype=float), band["high"].to_numpy(dtype=float)
            parts.append(
                pd.DataFrame(
                    {
                        "kpi": k.name,
                        "entity_id": e,
                        "period_start": index,
                        "value": v,
                        "expected": band["expected"].to_numpy(dtype=float),
                        "low": low,
                        "high": high,
                        "outside": _outside(v, low, high, bad_way),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)[SERIES_COLUMNS]


def band_series(
    conn: Connection,
    catalogue: Catalogue,
    kpi: str,
    *,
    level: str,
    entity_id: str,
    since: datetime,
    until: datetime,
) -> pd.DataFrame:
    """One KPI of one cell or site over [since, until): period_start, value, expected, low, high, outside."""
    df = band_panel(conn, catalogue, [kpi], level=level, entity_ids=[entity_id], since=since, until=until)
    return df.drop(columns=["kpi", "entity_id"]).reset_index(drop=True)


# --- verdicts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One series' latest verdict, in words: what the pages print beside its chart."""

    kpi: str
    entity_id: str
    state: str  # learning, normal, anomalous, no_data; "unknown" when never evaluated
    tone: str  # bad (anomalous), warn (out of band, not yet for long enough), ok, muted
    text: str
    deviation: float | None  # (value - usual) / |usual| at the latest period
    since: datetime | None

    @property
    def outside(self) -> bool:
        """Out of its usual band now: anomalous, or out of band in the latest periods."""
        return self.tone in ("bad", "warn")


def verdict_frame(
    conn: Connection, catalogue: Catalogue, *, level: str, entity_ids: Sequence[str]
) -> pd.DataFrame:
    """The rows of ``kpi_anomalies`` of every KPI with a rule at ``entity_ids`` (a series never
    evaluated has none)."""
    names = [k.name for k in band_kpis(catalogue)]
    ents = list(dict.fromkeys(str(e) for e in entity_ids))
    a = kpi_anomalies
    if not names or not ents:
        return pd.DataFrame(columns=[c.name for c in a.c])
    stmt = select(a).where(a.c.level == level, a.c.kpi.in_(names))
    return read_frame_in(conn, stmt, a.c.entity_id, ents)


def _when(at: datetime, now: datetime) -> str:
    """``17:40 UTC`` today, ``Tue 17:40 UTC`` within a week, ``2024-05-01 17:40 UTC`` before."""
    if at.date() == now.date():
        return f"{at:%H:%M} UTC"
    if now - at < timedelta(days=6):
        return f"{at:%a %H:%M} UTC"
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _number(v: float) -> str:
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2g}" if a >= 0.01 else f"{v:.1g}"


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _time(v: Any) -> datetime | None:
    if v is None or v is pd.NaT or pd.isna(v):  # NaT is a datetime too
        return None
    out: datetime = pd.Timestamp(v).to_pydatetime()
    return out


def describe(
    kpi: KpiDefinition, row: Mapping[str, Any] | None, *, now: datetime, entity_id: str = ""
) -> Verdict:
    """A series' verdict in words: "Downlink throughput 46% below usual since 17:40 UTC".

    ``row`` is its ``kpi_anomalies`` row (None: never evaluated)."""
    label, unit = kpi.label, kpi.unit
    entity = str(row.get("entity_id") or entity_id) if row is not None else entity_id
    if row is None:
        return Verdict(kpi.name, entity, "unknown", "muted", f"{label}: no usual band yet", None, None)
    state = str(row.get("state") or "unknown")
    dev, worst = _finite(row.get("deviation")), _finite(row.get("worst_deviation"))
    value, expected = _finite(row.get("value")), _finite(row.get("expected"))
    since = _time(row.get("since"))
    run = int(row.get("run") or 0)
    at = f" since {_when(since, now)}" if since is not None else ""
    if state == "anomalous":
        if run > 0 and dev is not None:
            text = f"{label} {deviation_words(dev)}{at}"
        else:
            was = f", worst {deviation_words(worst)}" if worst is not None else ""
            text = f"{label} back in its usual band, not yet for long enough (anomalous{at}{was})"
        return Verdict(kpi.name, entity, state, "bad", text, dev, since)
    if state == "normal" and run > 0 and dev is not None:
        minutes = run * GRAIN_S // 60
        text = f"{label} {deviation_words(dev)} for the last {minutes} min (not yet an anomaly)"
        return Verdict(kpi.name, entity, state, "warn", text, dev, since)
    if state == "normal":
        detail = (
            f" ({_number(value)} {unit}, usual {_number(expected)})"
            if value is not None and expected is not None
            else ""
        )
        return Verdict(kpi.name, entity, state, "ok", f"{label} within its usual band{detail}", dev, since)
    if state == "learning":
        return Verdict(kpi.name, entity, state, "muted", f"{label}: still learning what is usual", dev, since)
    return Verdict(kpi.name, entity, state, "muted", f"{label}: no recent data", dev, since)


def verdicts_of(catalogue: Catalogue, frame: pd.DataFrame, entity_id: str, *, now: datetime) -> list[Verdict]:
    """The verdict of every KPI with a rule at one entity of ``frame`` (:func:`verdict_frame`), in the
    catalogue's order; a KPI never evaluated there says so."""
    mine = frame[frame["entity_id"].astype(str) == str(entity_id)] if len(frame) else frame
    by_kpi = {str(r["kpi"]): r for r in mine.to_dict("records")}
    return [describe(k, by_kpi.get(k.name), now=now, entity_id=str(entity_id)) for k in band_kpis(catalogue)]


def rank_entities(frame: pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    """``candidates`` with a verdict, the most out of band first: most KPIs anomalous, then most out
    of band in the latest period, then the largest deviation; ties keep the given order (the
    incident's most degraded cells first)."""
    if not len(frame):
        return []
    f = frame.assign(
        _bad=(frame["state"] == "anomalous").astype(int),
        _run=(pd.to_numeric(frame["run"], errors="coerce").fillna(0) > 0).astype(int),
        _mag=pd.to_numeric(frame["deviation"], errors="coerce").abs().fillna(0.0),
    )
    f["entity_id"] = f["entity_id"].astype(str)
    score = f.groupby("entity_id").agg(bad=("_bad", "sum"), run=("_run", "sum"), mag=("_mag", "max"))
    order = {str(c): i for i, c in enumerate(dict.fromkeys(str(c) for c in candidates))}
    known = [c for c in order if c in score.index]

    def key(c: str) -> tuple[int, int, float, int]:
        return (-int(score.at[c, "bad"]), -int(score.at[c, "run"]), -float(score.at[c, "mag"]), order[c])

    return sorted(known, key=key)


# --- what a page draws for a few entities ------------------------------------------------------------


@dataclass(frozen=True)
class EntityBands:
    """One cell or site: the verdict of each KPI shown and those KPIs' last hours with their band."""

    level: str
    entity_id: str
    verdicts: list[Verdict]
    series: pd.DataFrame  # SERIES_COLUMNS, the KPIs of ``verdicts``

    @property
    def outside(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.outside]


def entity_bands(
    conn: Connection,
    catalogue: Catalogue,
    *,
    level: str,
    entity_ids: Sequence[str],
    now: datetime,
    window: timedelta = WINDOW,
    most: int = 2,
    worst_first: bool = True,
    only_outside: bool = True,
) -> list[EntityBands]:
    """Up to ``most`` of ``entity_ids`` that have a verdict, each with the last ``window`` of its KPIs
    against their band.

    ``worst_first`` picks the entities most out of band (:func:`rank_entities`), else keeps the
    given order (a line's cells by share). ``only_outside`` shows each entity's KPIs that are out of
    band plus the catalogue's headline KPIs with a rule; otherwise every KPI with a rule.
    """
    kpis = [k for k in band_kpis(catalogue) if level in (k.anomaly.levels if k.anomaly else ())]
    if not kpis or not entity_ids or most <= 0:
        return []
    frame = verdict_frame(conn, catalogue, level=level, entity_ids=entity_ids)
    if not len(frame):
        return []
    chosen = rank_entities(frame, entity_ids)
    if not worst_first:
        have = set(chosen)
        chosen = [str(e) for e in dict.fromkeys(str(e) for e in entity_ids) if str(e) in have]
    chosen = chosen[:most]
    headline = {k.name for k in kpis if k.headline}
    shown: dict[str, list[Verdict]] = {}
    for e in chosen:
        vs = [v for v in verdicts_of(catalogue, frame, e, now=now) if v.kpi in {k.name for k in kpis}]
        if only_outside:
            vs = [v for v in vs if v.outside or v.kpi in headline]
        shown[e] = vs
    names = [k.name for k in kpis if any(v.kpi == k.name for vs in shown.values() for v in vs)]
    end = floor_time(now, GRAIN_S) + timedelta(seconds=GRAIN_S)
    panel = band_panel(conn, catalogue, names, level=level, entity_ids=chosen, since=end - window, until=end)
    out = []
    for e in chosen:
        keep = {v.kpi for v in shown[e]}
        series = panel[(panel["entity_id"] == e) & panel["kpi"].isin(keep)].reset_index(drop=True)
        out.append(EntityBands(level, e, shown[e], series))
    return out


def series_choices(
    conn: Connection, catalogue: Catalogue, kpi: str, *, level: str, now: datetime, limit: int = 300
) -> pd.DataFrame:
    """The series of one KPI at ``level`` that have a verdict, most out of band first (anomalous,
    then out of band in the latest period, then by deviation): entity_id, name (a cell's name and
    site, a site's name), state, tone and the verdict in words. At most ``limit``."""
    (k,) = _ruled(catalogue, [kpi], level)
    a = kpi_anomalies
    if level == "cell":
        name = select(func.max(cells.c.name)).where(cells.c.id == a.c.entity_id).scalar_subquery()
        place = (
            select(func.max(sites.c.name))
            .select_from(cells.join(sites, sites.c.id == cells.c.site_id))
            .where(cells.c.id == a.c.entity_id)
            .scalar_subquery()
        )
    else:
        name = select(func.max(sites.c.name)).where(sites.c.id == a.c.entity_id).scalar_subquery()
        place = (
            select(func.max(regions.c.name))
            .select_from(sites.join(regions, regions.c.id == sites.c.region_id))
            .where(sites.c.id == a.c.entity_id)
            .scalar_subquery()
        )
    first = case((a.c.state == "anomalous", 0), (a.c.run > 0, 1), else_=2)
    stmt = (
        select(a, name.label("name"), place.label("place"))
        .where(a.c.kpi == k.name, a.c.level == level)
        .order_by(first, func.coalesce(func.abs(a.c.deviation), -1.0).desc(), a.c.entity_id)
        .limit(limit)
    )
    rows = read_frame(conn, stmt)
    out = []
    for r in rows.to_dict("records"):
        v = describe(k, r, now=now)
        ent = str(r["entity_id"])
        label = str(r["name"]) if isinstance(r.get("name"), str) and r["name"] else ent
        if isinstance(r.get("place"), str) and r["place"]:
            label += f" ({r['place']})"
        out.append({"entity_id": ent, "name": label, "state": v.state, "tone": v.tone, "text": v.text})
    return pd.DataFrame(out, columns=["entity_id", "name", "state", "tone", "text"])


# --- how many are out of band now --------------------------------------------------------------------


def outside_counts(
    conn: Connection, catalogue: Catalogue, *, levels: Sequence[str] = LEVELS
) -> dict[str, dict[str, int]]:
    """KPI name -> {level: series anomalous now} for every KPI with a rule (0 where none is)."""
    a = kpi_anomalies
    out: dict[str, dict[str, int]] = {
        k.name: {str(lv): 0 for lv in levels if k.anomaly is not None and lv in k.anomaly.levels}
        for k in band_kpis(catalogue)
    }
    if not out:
        return out
    stmt = (
        select(a.c.kpi, a.c.level, func.count())
        .where(a.c.state == "anomalous", a.c.level.in_(list(levels)), a.c.kpi.in_(list(out)))
        .group_by(a.c.kpi, a.c.level)
    )
    for kpi, level, n in conn.execute(stmt):
        if str(level) in out.get(str(kpi), {}):
            out[str(kpi)][str(level)] = int(n)
    return out


def verdicts_mark(conn: Connection) -> tuple[Any, ...]:
    """Changes whenever an evaluation pass rewrote the verdicts (for caches of what they show).

    A pass rewrites the verdicts in the transaction that saves its state, and only then: the state's
    time is the mark, one primary-key read (not a scan of every series' verdict)."""
    s = connector_state
    row = conn.execute(
        select(s.c.updated_at).where(s.c.connector == STATE_KEY[0], s.c.stream == STATE_KEY[1])
    ).first()
    return (None if row is None else row[0],)


__all__ = [
    "LEVELS",
    "SERIES_COLUMNS",
    "TONES",
    "WINDOW",
    "BandReadError",
    "EntityBands",
    "Verdict",
    "band_kpis",
    "band_panel",
    "band_series",
    "describe",
    "deviation_words",
    "entity_bands",
    "outside_counts",
    "rank_entities",
    "series_choices",
    "verdict_frame",
    "verdicts_mark",
    "verdicts_of",
]
