"""Data for the incident-queue benchmark: the simulator's world in a store, plus signals, KPIs and alarms.

:func:`build` fills a migrated store through the ingest path (topology and customers from
``connectors.simulator.world``, synthetic churn signals, two KPIs per cell for the last three hours,
active alarms raised over the last two hours); :class:`Changes` then makes the small changes that
arrive between two queue refreshes (a few alarms raised and cleared, a few subscribers changed).
Every row is stamped with a simulated clock, so the engine's watermarks see a realistic history:
customers loaded days ago, the last hourly churn re-score 40 minutes ago, KPI samples as each period
closed, alarms as they were raised.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectors.base import Batch
from connectors.simulator.world import (
    POWER,
    RAN,
    ROUTER,
    TRANSPORT,
    World,
    build_world,
    customer_frames,
    subscriber_frame,
    topology_frames,
)
from dashboard.ingest import Ingestor, validate
from dashboard.store import Store
from dashboard.store.schema import subscriber_signals
from dashboard.store.upsert import upsert

PG_URL = os.environ.get("VANTAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def open_store(backend: str, tmp: str, name: str) -> tuple[Store, Callable[[], None]]:
    """A fresh, migrated store (a SQLite file in ``tmp``, or a new PostgreSQL schema) and its disposal."""
    from sqlalchemy import create_engine, text

    if backend == "sqlite":
        path = Path(tmp) / f"{name}.db"
        store = Store(f"sqlite:///{path}")
        store.upgrade()

        def drop_sqlite() -> None:
            store.dispose()
            for f in Path(tmp).glob(path.name + "*"):
                f.unlink()

        return store, drop_sqlite
    schema = f"bench_{name}_{uuid.uuid4().hex[:10]}"
    store = Store(PG_URL, schema=schema)

    def drop_pg() -> None:
        store.dispose()
        admin = create_engine(PG_URL)
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    try:
        store.upgrade()
    except Exception:
        drop_pg()
        raise
    return store, drop_pg


SOURCE = "simulator"
SIGNALS_SOURCE = "vantage"
PERIOD = timedelta(minutes=15)
KPI_PERIODS = 13  # the latest period and the three hours before it: every incident gets a baseline
KPI_DELAY = timedelta(minutes=5)  # from a period's end to its samples' arrival
ALARM_SPAN = timedelta(hours=2)
ALARM_SLICE = timedelta(minutes=5)  # alarms arrive in slices, as a fault manager would push them
CUSTOMERS_AGO = timedelta(days=2)
RESCORED_AGO = timedelta(minutes=40)
_CHUNK = 200_000

# (probable cause, specific problem, X.733 alarm type) per resource kind; symptoms sit on RAN nodes.
ROOT_ALARM = {
    RAN: ("equipmentMalfunction", "BBU not responding", "equipmentAlarm"),
    POWER: ("powerProblem", "AC mains lost, battery exhausted", "environmentalAlarm"),
    TRANSPORT: ("lossOfSignal", "Microwave link down", "communicationsAlarm"),
    ROUTER: ("equipmentMalfunction", "Line card reset loop", "equipmentAlarm"),
}
SYMPTOM_ALARM = ("lossOfSignal", "S1/NG link failure", "communicationsAlarm")
SEVERITY_MIX = {  # per resource kind: (severities, probabilities)
    RAN: (("critical", "major", "minor", "warning"), (0.3, 0.4, 0.2, 0.1)),
    POWER: (("critical", "major", "minor"), (0.35, 0.45, 0.2)),
    TRANSPORT: (("critical", "major"), (0.5, 0.5)),
    ROUTER: (("critical", "major"), (0.7, 0.3)),
}
# Share of the root alarms on each kind (routers: a few, whatever the count).
KIND_SHARE = {TRANSPORT: 0.10, RAN: 0.50, POWER: 0.40}
SYMPTOMS_PER_FAILED_TRANSPORT = 3

Progress = Callable[[str], None]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Clock:
    """The simulated time the ingest path stamps on rows (``ingested_at``)."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@dataclass
class Dataset:
    world: World
    now: datetime  # the time of the first (cold) refresh
    latest: datetime  # start of the latest complete KPI period
    churned: np.ndarray
    arpu: np.ndarray  # current ARPU of every line (changes between refreshes)
    alarms: pd.DataFrame  # every alarm ingested, with ``active``
    counts: dict[str, int] = field(default_factory=dict)
    build_s: dict[str, float] = field(default_factory=dict)


# --- frames ---------------------------------------------------------------------------------------


def signal_frame(w: World, idx: np.ndarray, rng: np.random.Generator, scored_at: datetime) -> pd.DataFrame:
    """Churn risk (0..1) for most lines, 30-day ticket sentiment (-1..1) for about 10% of them."""
    n = len(idx)
    risk = np.where(rng.random(n) < 0.97, np.round(rng.beta(1.5, 15.0, n), 4), np.nan)
    has_tickets = rng.random(n) < 0.10
    sentiment = np.where(has_tickets, np.round(np.clip(rng.normal(-0.15, 0.45, n), -1.0, 1.0), 4), np.nan)
    tickets = np.where(has_tickets, rng.integers(1, 4, n), 0)
    negative = np.where(has_tickets & (sentiment < -0.05), np.minimum(tickets, rng.integers(1, 3, n)), 0)
    return pd.DataFrame(
        {
            "subscriber_id": w.sub_ids.iloc[idx].reset_index(drop=True),
            "account_id": w.acc_ids.iloc[w.sub_account[idx]].reset_index(drop=True),
            "churn_risk": risk,
            "model_version": 1,
            "sentiment_30d": sentiment,
            "tickets_30d": tickets,
            "negative_tickets_30d": negative,
            "scored_at": pd.Timestamp(scored_at),
        }
    )


def write_signals(store: Store, frame: pd.DataFrame, *, now: datetime) -> int:
    """Validate and upsert subscriber signals (what ``dashboard.analytics.signals`` writes hourly)."""
    written = 0
    for lo in range(0, len(frame), _CHUNK):
        checked = validate(subscriber_signals, frame.iloc[lo : lo + _CHUNK], source=SIGNALS_SOURCE)
        assert not checked.rejected, checked.rejected[:3]
        with store.begin() as conn:
            written += upsert(conn, subscriber_signals, checked.rows, now=now)
    return written


def _kinds(w: World, kind: int) -> np.ndarray:
    return np.flatnonzero(w.res_kind == kind)


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """n resources of the pool, distinct while the pool lasts (a resource may carry several alarms)."""
    if n <= len(pool):
        return rng.choice(pool, size=n, replace=False)
    return np.concatenate([rng.permutation(pool), rng.choice(pool, size=n - len(pool), replace=True)])


def alarm_plan(w: World, n: int, rng: np.random.Generator, now: datetime) -> pd.DataFrame:
    """``n`` active alarms raised over the last two hours on RAN nodes, power, transports, a few routers.

    Half the transport alarms are failures with symptom alarms on RAN nodes below them, raised
    within minutes, so correlation groups them. Critical and major root alarms degrade the cells
    below them (``avail_drop``: unavailability, ``tput_drop``: throughput shortfall).
    """
    routers, transports = _kinds(w, ROUTER), _kinds(w, TRANSPORT)
    n_router = min(max(1, n // 500), max(1, len(routers) // 3))
    n_tx = min(int(n * KIND_SHARE[TRANSPORT]), len(transports) // 2)
    n_failed = n_tx // 2
    n_sym = SYMPTOMS_PER_FAILED_TRANSPORT * n_failed
    rest = max(0, n - n_router - n_tx - n_sym)
    n_ran = int(rest * KIND_SHARE[RAN] / (KIND_SHARE[RAN] + KIND_SHARE[POWER]))
    roots = np.concatenate(
        [
            _pick(rng, routers, n_router),
            _pick(rng, transports, n_tx),
            _pick(rng, _kinds(w, RAN), n_ran),
            _pick(rng, _kinds(w, POWER), rest - n_ran),
        ]
    )
    span_s = ALARM_SPAN.total_seconds()
    raised_s = rng.uniform(-span_s, -60.0, len(roots))
    kind = w.res_kind[roots]
    severity = np.empty(len(roots), dtype=object)
    for k, (levels, p) in SEVERITY_MIX.items():
        m = kind == k
        severity[m] = rng.choice(np.asarray(levels, dtype=object), size=int(m.sum()), p=p)
    impactful = np.isin(severity, ("critical", "major"))
    outage = rng.random(len(roots)) < 0.5
    avail_drop = np.where(impactful & outage, rng.uniform(0.4, 1.0, len(roots)), 0.0)
    tput_drop = np.where(impactful & ~outage, rng.uniform(0.2, 0.8, len(roots)), 0.0)
    symptom = np.zeros(len(roots), dtype=bool)
    frames = [
        pd.DataFrame(
            {
                "resource": roots,
                "raised_s": raised_s,
                "severity": severity,
                "symptom": symptom,
                "avail_drop": avail_drop,
                "tput_drop": tput_drop,
            }
        )
    ]
    # Symptoms: RAN nodes below the failed transports (the first n_failed transport alarms).
    failed = np.flatnonzero(kind == TRANSPORT)[:n_failed]
    sym_res, sym_raised = [], []
    for i in failed:
        r = roots[i]
        sites = np.arange(w.res_cell_lo[r] // 3, w.res_cell_hi[r] // 3)
        take = rng.choice(sites, size=min(SYMPTOMS_PER_FAILED_TRANSPORT, len(sites)), replace=False)
        sym_res.extend(take.tolist())  # the RAN node of site s is resource s
        sym_raised.extend((raised_s[i] + rng.uniform(10.0, 240.0, len(take))).tolist())
    if sym_res:
        frames.append(
            pd.DataFrame(
                {
                    "resource": np.asarray(sym_res),
                    "raised_s": np.minimum(np.asarray(sym_raised), -1.0),
                    "severity": "major",
                    "symptom": True,
                    "avail_drop": 0.0,
                    "tput_drop": 0.0,
                }
            )
        )
    plan = pd.concat(frames, ignore_index=True)
    plan["raised_at"] = pd.Timestamp(now) + pd.to_timedelta(np.round(plan["raised_s"]), unit="s")
    plan = plan.sort_values(["raised_at", "resource"], kind="stable").reset_index(drop=True)
    plan["id"] = [f"BALM-{i:06d}" for i in range(len(plan))]
    plan["active"] = True
    return plan.drop(columns=["raised_s"])


def alarm_records(w: World, plan: pd.DataFrame, cleared_at: pd.Series | None = None) -> pd.DataFrame:
    """TMF642-shaped alarm records for rows of an alarm plan (cleared where ``cleared_at`` is set)."""
    res = plan["resource"].to_numpy()
    kind = w.res_kind[res]
    cause = np.empty(len(plan), dtype=object)
    problem = np.empty(len(plan), dtype=object)
    atype = np.empty(len(plan), dtype=object)
    for k, (c, p, t) in ROOT_ALARM.items():
        m = kind == k
        cause[m], problem[m], atype[m] = c, p, t
    sym = plan["symptom"].to_numpy(dtype=bool)
    cause[sym], problem[sym], atype[sym] = SYMPTOM_ALARM
    raised = pd.to_datetime(plan["raised_at"]).reset_index(drop=True)
    cleared = (
        pd.Series(pd.NaT, index=raised.index, dtype="datetime64[ns]")
        if cleared_at is None
        else pd.to_datetime(cleared_at).reset_index(drop=True)
    )
    is_cleared = cleared.notna()
    return pd.DataFrame(
        {
            "id": plan["id"].reset_index(drop=True),
            "resource_id": w.res_ids.iloc[res].reset_index(drop=True),
            "alarmed_object": w.res_names.iloc[res].reset_index(drop=True),
            "alarmed_object_type": "ManagedElement",
            "severity": plan["severity"].reset_index(drop=True),
            "state": np.where(is_cleared, "cleared", "raised"),
            "ack_state": "unacknowledged",
            "alarm_type": atype,
            "probable_cause": cause,
            "specific_problem": problem,
            "service_affecting": plan["severity"].isin(("critical", "major")).to_numpy(),
            "raised_at": raised,
            "changed_at": cleared.where(is_cleared, raised),
            "cleared_at": cleared,
        }
    )


def kpi_frame(w: World, plan: pd.DataFrame, latest: datetime, rng: np.random.Generator) -> pd.DataFrame:
    """availability_pct and dl_throughput_mbps of every cell for the last ``KPI_PERIODS`` periods.

    A cell below a degrading alarm loses availability or throughput from the period its alarm was
    raised in; the others vary by a few percent around their own level.
    """
    n_cells = w.n_cells
    base = np.round(np.where(w.cell_5g, 320.0, 85.0) * w.cell_load, 2)
    hit = plan[(plan["avail_drop"] > 0) | (plan["tput_drop"] > 0)]
    res = hit["resource"].to_numpy()
    lo, hi = w.res_cell_lo[res], w.res_cell_hi[res]
    lens = hi - lo
    cell = np.repeat(lo, lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
    raised = np.repeat(pd.to_datetime(hit["raised_at"]).to_numpy(), lens)
    a_drop = np.repeat(hit["avail_drop"].to_numpy(), lens)
    t_drop = np.repeat(hit["tput_drop"].to_numpy(), lens)
    frames = []
    for k in range(KPI_PERIODS):
        start = pd.Timestamp(latest) - k * PERIOD
        on = raised < (start + PERIOD).to_datetime64()
        down = np.zeros(n_cells)
        short = np.zeros(n_cells)
        np.maximum.at(down, cell[on], a_drop[on])
        np.maximum.at(short, cell[on], t_drop[on])
        avail = np.round(np.clip(100.0 - rng.exponential(0.05, n_cells), 0.0, 100.0) * (1.0 - down), 3)
        tput = np.round(base * rng.uniform(0.97, 1.03, n_cells) * (1.0 - short) * (1.0 - down), 2)
        for kpi, values in (("availability_pct", avail), ("dl_throughput_mbps", tput)):
            frames.append(
                pd.DataFrame(
                    {
                        "entity_type": "cell",
                        "entity_id": w.cell_ids,
                        "kpi": kpi,
                        "period_start": start,
                        "value": values,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


# --- the store ------------------------------------------------------------------------------------


def _ingest(ingestor: Ingestor, batches: Iterable[tuple[str, pd.DataFrame]]) -> int:
    n = 0
    for kind, df in batches:
        counts = ingestor.ingest(SOURCE, [Batch(kind=kind, records=df)])
        assert counts.quarantined == 0, (kind, counts)
        n += counts.upserted
    return n


def _chunked(kind: str, df: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    for lo in range(0, len(df), _CHUNK):
        yield kind, df.iloc[lo : lo + _CHUNK]


def build(
    store: Store,
    *,
    subscribers: int,
    alarms: int,
    now: datetime,
    seed: int = 42,
    subscribers_per_cell: int = 50,
    say: Progress = _say,
) -> Dataset:
    """Fill a migrated, empty store; ``now`` is the time of the first refresh."""
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    w = build_world(seed, subscribers, subscribers_per_cell)
    churned = rng.random(w.n_subscribers) < 0.01
    timings["world_s"] = time.perf_counter() - t0
    say(f"world: {w.n_subscribers:,} subscribers, {w.n_cells:,} cells, {w.n_resources:,} resources")

    clock = Clock(now - CUSTOMERS_AGO)
    ingestor = Ingestor(store, clock=clock)
    t0 = time.perf_counter()
    counts["topology_rows"] = _ingest(
        ingestor, (b for kind, df in topology_frames(w, SOURCE) for b in _chunked(kind, df))
    )
    counts["customer_rows"] = _ingest(ingestor, customer_frames(w, SOURCE, churned))
    timings["customers_s"] = time.perf_counter() - t0
    say(f"topology and customers: {counts['topology_rows'] + counts['customer_rows']:,} rows")

    t0 = time.perf_counter()
    scored = now - RESCORED_AGO
    counts["signal_rows"] = write_signals(
        store, signal_frame(w, np.arange(w.n_subscribers), rng, scored), now=scored
    )
    timings["signals_s"] = time.perf_counter() - t0
    say(f"signals: {counts['signal_rows']:,} rows")

    t0 = time.perf_counter()
    plan = alarm_plan(w, alarms, rng, now)
    latest = pd.Timestamp(now).floor("15min").to_pydatetime() - PERIOD
    kpis = kpi_frame(w, plan, latest, rng)
    counts["kpi_rows"] = 0
    for start, part in kpis.groupby("period_start", sort=True):
        # Each period's samples arrive once it has closed (the ingest refuses times ahead of it).
        clock.t = min(pd.Timestamp(start).to_pydatetime() + PERIOD + KPI_DELAY, now)
        counts["kpi_rows"] += _ingest(ingestor, _chunked("kpi_samples", part))
    timings["kpis_s"] = time.perf_counter() - t0
    say(f"KPI samples: {counts['kpi_rows']:,} rows, latest period {latest:%H:%M}")

    t0 = time.perf_counter()
    recs = alarm_records(w, plan)
    slice_end = pd.to_datetime(recs["raised_at"]).dt.ceil(f"{int(ALARM_SLICE.total_seconds())}s")
    n_alarms = 0
    for end, part in recs.groupby(slice_end, sort=True):
        clock.t = min(pd.Timestamp(end).to_pydatetime(), now)
        n_alarms += _ingest(ingestor, [("alarms", part)])
    counts["alarms"] = n_alarms
    timings["alarms_s"] = time.perf_counter() - t0
    say(f"alarms: {n_alarms:,} active ({int(plan['symptom'].sum())} symptoms below failed transports)")
    return Dataset(
        world=w,
        now=now,
        latest=latest,
        churned=churned,
        arpu=w.sub_arpu.copy(),
        alarms=plan,
        counts=counts,
        build_s=timings,
    )


class Changes:
    """What arrives between two refreshes: alarms raised and cleared, customers changed."""

    def __init__(
        self,
        ds: Dataset,
        store: Store,
        *,
        new_alarms: int = 3,
        cleared_alarms: int = 2,
        subscribers: int = 20,
        seed: int = 7,
    ) -> None:
        self.ds, self.store = ds, store
        self.rng = np.random.default_rng(seed)
        self.new_alarms, self.cleared_alarms, self.subscribers = new_alarms, cleared_alarms, subscribers
        self.clock = Clock(ds.now)
        self.ingestor = Ingestor(store, clock=self.clock)
        self._next = len(ds.alarms)

    def apply(self, t: datetime) -> dict[str, Any]:
        """Ingest one interval's changes stamped ``t``; returns what was done."""
        w, ds, rng = self.ds.world, self.ds, self.rng
        self.clock.t = t
        # New root alarms on RAN nodes, power plants and transports.
        pool = np.flatnonzero(np.isin(w.res_kind, (RAN, POWER, TRANSPORT)))
        res = rng.choice(pool, size=self.new_alarms, replace=False)
        severity = rng.choice(np.array(["critical", "major", "minor"], dtype=object), size=len(res))
        new = pd.DataFrame(
            {
                "resource": res,
                "severity": severity,
                "symptom": False,
                "avail_drop": 0.0,
                "tput_drop": 0.0,
                "raised_at": pd.Timestamp(t) - pd.to_timedelta(rng.uniform(1, 30, len(res)), unit="s"),
                "id": [f"BALM-{self._next + i:06d}" for i in range(len(res))],
                "active": True,
            }
        )
        self._next += len(res)
        # Clears of some active alarms.
        active = np.flatnonzero(ds.alarms["active"].to_numpy())
        gone = rng.choice(active, size=min(self.cleared_alarms, len(active)), replace=False)
        cleared_at = pd.Series(
            pd.Timestamp(t) - pd.to_timedelta(rng.uniform(1, 30, len(gone)), unit="s")
        ).dt.floor("s")
        ds.alarms.loc[ds.alarms.index[gone], "active"] = False
        recs = pd.concat(
            [
                alarm_records(w, new.assign(raised_at=new["raised_at"].dt.floor("s"))),
                alarm_records(w, ds.alarms.iloc[gone], cleared_at),
            ],
            ignore_index=True,
        )
        ds.alarms = pd.concat([ds.alarms, new], ignore_index=True)
        _ingest(self.ingestor, [("alarms", recs)])
        # Customers: plan changes (ARPU), a few churned lines, and their re-scored signals.
        idx = np.sort(rng.choice(w.n_subscribers, size=self.subscribers, replace=False))
        ds.arpu[idx] = np.round(ds.arpu[idx] * rng.uniform(0.8, 1.25, len(idx)), 2)
        ds.churned[idx[: max(1, len(idx) // 10)]] = True
        subs = subscriber_frame(w, SOURCE, idx, ds.churned[idx])
        subs["arpu"] = ds.arpu[idx]
        _ingest(self.ingestor, [("subscribers", subs)])
        write_signals(self.store, signal_frame(w, idx, rng, t), now=t)
        return {"raised": len(res), "cleared": len(gone), "subscribers": len(idx)}
