"""Silent failures found on the simulator: precision, recall, detection delay and false incidents.

Per seed, the simulated operator (silent faults on: degradations with no alarm, their truth kept)
runs through the real path on a SQLite store, quarter hour by quarter hour, for ``--days`` after
``--learn-days`` of history:

- the connector's alarms of each quarter hour are ingested as they happen, its KPI samples and
  tickets a day ahead (nothing reads them before their time: the baseline pass stops at the last
  complete period before the clock, ticket counts at the clock);
- the KPI evaluation's baseline pass reads the new period (``refresh_anomalies``), the detector turns
  anomalies into Vantage's own alarms (``detect``) and the correlation builds incidents (``correlate``),
  each as the scheduler runs them, the clock at the end of the quarter hour.

Scored against the truth:

- a detected incident (kind ``detected`` once the run ends) is a true one when one of its alarms sits
  on a cell of a silent fault (or the resource serving it) while the fault was on (until an hour
  after it ended: the verdict waits for ``clear_after``); else it is a false incident;
- recall: silent faults with at least one matching alarm; delay: from the fault's start to the quarter
  hour at which its first matching alarm was raised;
- false incidents per 1,000 cell-days; detected incidents that sit on a fault that did raise alarms
  (where the network's alarm did not reach the same resources) are counted apart.

``--late-alarms MIN`` runs again with every silent fault raising an alarm on its resource MIN minutes
after it began: the share of detected incidents that merge into (are joined by) an alarm incident.

Run: ``.venv/bin/python bench/silent.py [--seeds 1 2 3 --days 30 --subscribers 5000]``. The last
line is one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select

from connectors.base import Batch, ConnectorContext
from connectors.simulator import SimulatorConnector, SimulatorOptions
from dashboard.incidents.correlate import DETECTOR_SOURCE, ENGINE_SOURCE, correlate
from dashboard.incidents.detect import detect
from dashboard.incidents.impact import cells_below
from dashboard.ingest import Ingestor
from dashboard.kpi_eval.anomaly import refresh_anomalies
from dashboard.kpis import load_catalogue
from dashboard.store import Store
from dashboard.store.db import read_frame
from dashboard.store.schema import alarms, incident_alarms, incidents

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = datetime(2026, 1, 5)  # a Monday: the end of the learnt history
STEP = timedelta(minutes=15)
AFTER = timedelta(hours=1)  # a fault still counts this long after it ended


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def run_seed(seed: int, args: argparse.Namespace, late_alarms: int | None) -> dict[str, Any]:
    catalogue = load_catalogue(ROOT / "kpi_definitions.yaml")
    labels = {k.name: k.label for k in catalogue.kpis}
    clock = Clock(ANCHOR)
    options = SimulatorOptions(
        seed=seed,
        subscribers=args.subscribers,
        days=args.learn_days,
        anchor=ANCHOR,
        causal={
            "incident_rate_per_resource_day": args.incident_rate,
            "silent_fault_rate_per_cell_day": args.silent_rate,
        },
    )
    sim = SimulatorConnector(options, ConnectorContext(name="sim", now=clock))
    tmp = tempfile.mkdtemp(prefix="vantage-silent-")
    store = Store(f"sqlite:///{tmp}/silent.db")
    store.upgrade()
    ingestor = Ingestor(store, clock=clock)
    started = time.perf_counter()
    ingestor.run(sim, streams=["topology", "customers", "kpis", "faults", "tickets"])
    with store.begin() as conn:
        refresh_anomalies(conn, catalogue, now=clock.t)
    learn_s = time.perf_counter() - started
    truth = sim.incident_truth(ANCHOR, ANCHOR + timedelta(days=args.days))
    truth = truth.assign(silent=truth["silent"].astype(bool))
    silent = truth[truth["silent"]].reset_index(drop=True)
    injected: set[str] = set()
    first_seen: dict[str, datetime] = {}
    steps = args.days * 96
    t0 = time.perf_counter()
    for k in range(steps):
        clock.t = ANCHOR + STEP * (k + 1)
        if k % 96 == 0:
            # A day of samples and tickets at a time (cheaper than a quarter hour at a time): the
            # baseline pass reads only complete periods before the clock, and ticket counts stop at it.
            day_end = clock.t - STEP + timedelta(days=1)
            at, clock.t = clock.t, day_end
            ingestor.run(sim, streams=["kpis", "tickets"])
            clock.t = at
        ingestor.run(sim, streams=["faults"])
        if late_alarms is not None:
            due = silent[
                (silent["opened_at"] + timedelta(minutes=late_alarms) <= clock.t)
                & ~silent["id"].isin(injected)
            ]
            if len(due):
                records = []
                for f in due.itertuples(index=False):
                    injected.add(f.id)
                    raised = f.opened_at + timedelta(minutes=late_alarms)
                    cleared = f.ended_at + timedelta(minutes=1)
                    records.append(
                        {
                            "id": f"LATE-{f.id}",
                            "resource_id": f.root_resource_id,
                            "severity": "major",
                            "state": "raised" if cleared > clock.t else "cleared",
                            "probable_cause": "degradedSignal",
                            "specific_problem": "Degradation reported late by the network",
                            "raised_at": raised,
                            "changed_at": min(cleared, clock.t) if cleared <= clock.t else raised,
                            "cleared_at": cleared if cleared <= clock.t else None,
                        }
                    )
                ingestor.ingest("sim-late", [Batch(kind="alarms", records=records)])
            clearing = silent[
                silent["id"].isin(injected) & (silent["ended_at"] + timedelta(minutes=1) <= clock.t)
            ]
            clear_records = [
                {
                    "id": f"LATE-{f.id}",
                    "resource_id": f.root_resource_id,
                    "severity": "major",
                    "state": "cleared",
                    "probable_cause": "degradedSignal",
                    "specific_problem": "Degradation reported late by the network",
                    "raised_at": f.opened_at + timedelta(minutes=late_alarms),
                    "changed_at": f.ended_at + timedelta(minutes=1),
                    "cleared_at": f.ended_at + timedelta(minutes=1),
                }
                for f in clearing.itertuples(index=False)
                if f.ended_at + timedelta(minutes=1) > clock.t - STEP
            ]
            if clear_records:
                ingestor.ingest("sim-late", [Batch(kind="alarms", records=clear_records)])
        with store.begin() as conn:
            refresh_anomalies(conn, catalogue, now=clock.t)
        with store.begin() as conn:
            detect(conn, now=clock.t, labels=labels)
        with store.begin() as conn:
            correlate(conn, catalogue.scoring.correlation, now=clock.t)
            for (alarm_id,) in conn.execute(
                select(alarms.c.id).where(alarms.c.source == DETECTOR_SOURCE, alarms.c.ingested_at == clock.t)
            ):
                first_seen.setdefault(str(alarm_id), clock.t)
        if args.progress and (k + 1) % 96 == 0:
            print(f"seed {seed}: day {(k + 1) // 96} of {args.days}", file=sys.stderr, flush=True)
    loop_s = time.perf_counter() - t0
    with store.begin() as conn:
        det = read_frame(
            conn,
            select(alarms.c.id, alarms.c.resource_id, alarms.c.raised_at, alarms.c.cleared_at).where(
                alarms.c.source == DETECTOR_SOURCE
            ),
        )
        members = read_frame(
            conn,
            select(incident_alarms.c.incident_id, incident_alarms.c.alarm_id).where(
                incident_alarms.c.source == ENGINE_SOURCE
            ),
        )
        incs = read_frame(
            conn,
            select(incidents.c.id, incidents.c.kind, incidents.c.state, incidents.c.merged_into).where(
                incidents.c.source == ENGINE_SOURCE
            ),
        )
        below = cells_below(conn, set(det["resource_id"].astype(str)))
        n_cells = len(sim.world.cell_ids)
    if args.keep:
        print(f"store kept at {tmp}/silent.db", file=sys.stderr, flush=True)
    end = ANCHOR + timedelta(days=args.days)
    alarm_cells = {r.id: below.get(str(r.resource_id), set()) for r in det.itertuples(index=False)}
    alarm_span = {
        r.id: (pd.Timestamp(r.raised_at).to_pydatetime(), _end(r.cleared_at, end))
        for r in det.itertuples(index=False)
    }

    def matches(alarm_id: str, faults: pd.DataFrame) -> list[str]:
        cells_a, (a0, a1) = alarm_cells[alarm_id], alarm_span[alarm_id]
        out = []
        for f in faults.itertuples(index=False):
            if cells_a & set(f.cell_ids) and a0 <= f.ended_at + AFTER and f.opened_at <= a1:
                out.append(f.id)
        return out

    alarmed = truth[~truth["silent"]].reset_index(drop=True)
    member_of = dict(zip(members["alarm_id"], members["incident_id"], strict=True))
    # Each incident that held a detector alarm, followed through merges to the incident it ended in.
    final = {i: str(m) for i, m in zip(incs["id"], incs["merged_into"], strict=True) if pd.notna(m) and m}

    def last(i: str) -> str:
        seen = set()
        while final.get(i) and i not in seen:
            seen.add(i)
            i = str(final[i])
        return i

    kind = dict(zip(incs["id"], incs["kind"], strict=True))
    by_incident: dict[str, list[str]] = {}
    for a in det["id"]:
        inc = member_of.get(a)
        if inc is not None:
            by_incident.setdefault(last(inc), []).append(a)
    detected_incidents = [i for i, k in kind.items() if k == "detected" and i in by_incident]
    true_inc = false_inc = on_alarmed = 0
    for i in detected_incidents:
        if any(matches(a, silent) for a in by_incident[i]):
            true_inc += 1
        elif any(matches(a, alarmed) for a in by_incident[i]):
            on_alarmed += 1
        else:
            false_inc += 1
    found: dict[str, datetime] = {}
    for a in det["id"]:
        for f in matches(a, silent):
            seen_at = first_seen.get(a, alarm_span[a][0])
            found[f] = min(found.get(f, seen_at), seen_at)
    starts = dict(zip(silent["id"], silent["opened_at"], strict=True))
    delays = [(found[f] - starts[f]).total_seconds() / 60 for f in found]
    merged = None
    if late_alarms is not None:
        # Of the silent faults found before their alarm arrived, how many ended in an alarm incident.
        early = [f for f in found if found[f] < starts[f] + timedelta(minutes=late_alarms)]
        joined = 0
        for f in early:
            incs_f = {last(member_of[a]) for a in det["id"] if a in member_of and f in matches(a, silent)}
            if any(kind.get(i) == "alarm" for i in incs_f):
                joined += 1
        merged = {"found_before_alarm": len(early), "ended_in_alarm_incident": joined}
    n_det = true_inc + false_inc
    cell_days = n_cells * args.days
    return {
        "seed": seed,
        "cells": n_cells,
        "silent_faults": len(silent),
        "alarmed_faults": len(alarmed),
        "detected_incidents": len(detected_incidents),
        "true_incidents": true_inc,
        "false_incidents": false_inc,
        "detected_on_alarmed_faults": on_alarmed,
        "precision": round(true_inc / n_det, 3) if n_det else None,
        "recall": round(len(found) / len(silent), 3) if len(silent) else None,
        "median_delay_min": round(statistics.median(delays), 1) if delays else None,
        "p90_delay_min": round(sorted(delays)[int(0.9 * (len(delays) - 1))], 1) if delays else None,
        "false_per_1000_cell_days": round(1000 * false_inc / cell_days, 2),
        "merge": merged,
        "learn_s": round(learn_s, 1),
        "pass_ms": round(1000 * loop_s / steps, 1),
    }


def _end(v: Any, default: datetime) -> datetime:
    return default if v is None or pd.isna(v) else pd.Timestamp(v).to_pydatetime()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--learn-days", type=int, default=14)
    ap.add_argument("--subscribers", type=int, default=5000)
    ap.add_argument("--incident-rate", type=float, default=0.008, help="alarmed faults per resource-day")
    ap.add_argument("--silent-rate", type=float, default=0.004, help="silent faults per cell-day")
    ap.add_argument("--late-alarms", type=int, default=None, help="also run with late alarms (minutes)")
    ap.add_argument("--late-only", action="store_true", help="with --late-alarms: skip the plain runs")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--keep", action="store_true", help="say where each seed's store is (not removed)")
    args = ap.parse_args()
    runs = []
    for seed in args.seeds if not (args.late_only and args.late_alarms is not None) else ():
        r = run_seed(seed, args, None)
        print(json.dumps(r), file=sys.stderr, flush=True)
        runs.append(r)
    merge_runs = []
    if args.late_alarms is not None:
        for seed in args.seeds:
            r = run_seed(seed, args, args.late_alarms)
            print(json.dumps({"late_alarms": args.late_alarms, **r}), file=sys.stderr, flush=True)
            merge_runs.append(r)
    runs_scored = runs or merge_runs  # --late-only: the figures of the runs with late alarms
    true_inc = sum(r["true_incidents"] for r in runs_scored)
    false_inc = sum(r["false_incidents"] for r in runs_scored)
    faults = sum(r["silent_faults"] for r in runs_scored)
    found = sum(round((r["recall"] or 0) * r["silent_faults"]) for r in runs_scored)
    out = {
        "seeds": args.seeds,
        "days": args.days,
        "precision": round(true_inc / (true_inc + false_inc), 3) if true_inc + false_inc else None,
        "recall": round(found / faults, 3) if faults else None,
        "median_delay_min": statistics.median(
            [r["median_delay_min"] for r in runs_scored if r["median_delay_min"]]
        )
        if runs_scored
        else None,
        "false_per_1000_cell_days": round(
            1000 * false_inc / sum(r["cells"] * args.days for r in runs_scored), 2
        ),
        "pass_ms": round(statistics.mean(r["pass_ms"] for r in runs_scored), 1),
        "per_seed": runs,
        "merge_runs": merge_runs,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
