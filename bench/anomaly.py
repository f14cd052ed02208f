"""Seasonal baselines: how well they find degradations no alarm reports, against static thresholds
and a non-seasonal baseline, and what one 15-minute pass costs at national scale.

Part 1 (detection): synthetic cell throughput with a daily and weekly rhythm, per-cell levels and
noise, and injected degradations (35-65 % below normal for 30 min to 3 h, about one per cell a
week, their truth kept). The first two weeks only train; the rest is scored. A degradation counts as
found when a flagged run (``periods`` consecutive breaching periods) overlaps it; a flagged run that
overlaps none is a false incident. Three methods, each with the same run length:
- static: a fixed floor per cell at a share of its median, the share chosen after the fact for the
  best F1 (the most a static threshold could do);
- flat: the robust baseline with a single slot (no season);
- seasonal: the robust baseline per quarter hour of a weekday or weekend day
  (dashboard/kpi_eval/baseline.py).

Part 2 (cost): ``--cells`` x ``--kpis`` series (default 20,000 x 8) warmed over one week, then
timed passes of one period each (compare, learn, count runs), beside a reference measured in the
same run: a pandas group-by mean of the same period's samples per cell and KPI, the least a KPI
pass does with them.

Run: ``.venv/bin/python bench/anomaly.py [--cells 20000 --kpis 8 --eval-cells 400 --days 35]``.
The last line is one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd

from dashboard.kpi_eval.baseline import SLOTS, AnomalyRule, Baseline, advance_runs, slot_of

PER_DAY = 96
START = np.datetime64("2026-01-05T00:00")  # a Monday


def synthetic(cells: int, days: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Throughput (cells x periods) and the true degradations (cell, first period, last period)."""
    rng = np.random.default_rng(seed)
    periods = days * PER_DAY
    t = np.arange(periods)
    hour = (t % PER_DAY) / 4.0
    weekday = (t // PER_DAY) % 7
    daily = 0.25 + 0.75 * np.exp(-(((hour - 20.0) / 5.0) ** 2)) + 0.25 * np.exp(-(((hour - 12.5) / 3.0) ** 2))
    weekly = np.where(weekday >= 5, 0.8, 1.0)
    level = rng.lognormal(np.log(50.0), 0.6, size=cells)[:, None]
    noise = rng.lognormal(0.0, 0.08 + 0.06 * rng.random(cells)[:, None], size=(cells, periods))
    x = level * daily[None, :] * weekly[None, :] * noise
    truth = []
    for c in range(cells):
        for _ in range(rng.poisson(days / 7.0)):
            start = int(rng.integers(0, periods - 12))
            length = int(rng.integers(2, 13))
            x[c, start : start + length] *= 1.0 - rng.uniform(0.35, 0.65)
            truth.append((c, start, start + length - 1))
    return x, truth


def runs_of(flags: np.ndarray, periods: int) -> list[tuple[int, int, int]]:
    """Flagged runs of at least ``periods`` consecutive periods: (cell, first period, the period at
    which the run reached its length, i.e. when it would be reported)."""
    out = []
    for c in range(flags.shape[0]):
        row = flags[c]
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a >= periods:
                out.append((c, int(a), int(a + periods - 1)))
    return out


def score(
    flags: np.ndarray, truth: list[tuple[int, int, int]], periods: int, test_from: int
) -> dict[str, float]:
    runs = [r for r in runs_of(flags, periods) if r[1] >= test_from]
    events = [e for e in truth if e[1] >= test_from]
    by_cell: dict[int, list[tuple[int, int]]] = {}
    for c, a, b in events:
        by_cell.setdefault(c, []).append((a, b))
    found, delays, false = set(), [], 0
    for c, a, reported in runs:
        hit = [(s, e) for s, e in by_cell.get(c, []) if a <= e and reported >= s]
        if not hit:
            false += 1
            continue
        for s, _ in hit:
            if (c, s) not in found:
                found.add((c, s))
                delays.append((reported - s + 1) * 15)
    cell_days = flags.shape[0] * (flags.shape[1] - test_from) / PER_DAY
    true_runs = len(runs) - false
    return {
        "recall": round(len(found) / max(len(events), 1), 4),
        "precision": round(true_runs / max(len(runs), 1), 4),
        "false_per_1000_cell_days": round(1000 * false / cell_days, 3),
        "median_delay_min": float(np.median(delays)) if delays else float("nan"),
        "events": len(events),
    }


def baseline_flags(x: np.ndarray, rule: AnomalyRule, *, seasonal: bool) -> np.ndarray:
    cells, periods = x.shape
    model = Baseline(cells)
    idx = np.arange(cells)
    slots = slot_of(START + np.arange(periods) * np.timedelta64(15, "m"))
    flags = np.zeros_like(x, dtype=bool)
    for p in range(periods):
        slot = np.full(cells, slots[p] if seasonal else 0)
        z, rel = model.update(idx, slot, x[:, p])
        flags[:, p] = rule.breach(z, rel)
    return flags


def static_flags(x: np.ndarray, truth: list[tuple[int, int, int]], periods: int, test_from: int) -> tuple:
    median = np.median(x[:, :test_from], axis=1, keepdims=True)
    best: tuple[float, float, dict[str, float]] | None = None
    for share in np.arange(0.05, 0.95, 0.05):
        got = score(x < share * median, truth, periods, test_from)
        f1 = 2 * got["precision"] * got["recall"] / max(got["precision"] + got["recall"], 1e-9)
        if best is None or f1 > best[0]:
            best = (f1, float(share), got)
    assert best is not None
    return best[1], best[2]


def cost(cells: int, kpis: int, rule: AnomalyRule, passes: int) -> dict[str, float]:
    rng = np.random.default_rng(7)
    series = cells * kpis
    model = Baseline(series)
    idx = np.arange(series)
    runs = np.zeros(series, dtype=np.int16)
    level = rng.lognormal(np.log(50.0), 0.6, size=series)
    for p in range(SLOTS):  # one value per slot, three times over: every slot warm
        for _ in range(3):
            model.update(idx, np.full(series, p % SLOTS), level * rng.lognormal(0, 0.1, size=series))
    took, ref = [], []
    cell_ids = np.repeat(np.arange(cells), kpis)
    kpi_ids = np.tile(np.arange(kpis), cells)
    for p in range(passes):
        values = level * rng.lognormal(0, 0.1, size=series)
        frame = pd.DataFrame({"cell": cell_ids, "kpi": kpi_ids, "value": values})
        started = time.perf_counter()
        frame.groupby(["cell", "kpi"], sort=False)["value"].mean()
        ref.append(time.perf_counter() - started)
        started = time.perf_counter()
        z, rel = model.update(idx, np.full(series, p % SLOTS), values)
        advance_runs(runs, idx, rule.breach(z, rel))
        took.append(time.perf_counter() - started)
    return {
        "pass_ms": round(1000 * float(np.median(took)), 2),
        "p95_ms": round(1000 * float(np.percentile(took, 95)), 2),
        "reference_ms": round(1000 * float(np.median(ref)), 2),
        "state_mb": round((model.level.nbytes + model.scale.nbytes + model.count.nbytes) / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--kpis", type=int, default=8)
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--eval-cells", type=int, default=400)
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rule = AnomalyRule(direction="below", min_z=3.5, min_rel=0.2, periods=2)
    test_from = 14 * PER_DAY
    detection: dict[str, list[dict[str, float]]] = {"seasonal": [], "flat": [], "static": []}
    for seed in range(args.seeds):
        x, truth = synthetic(args.eval_cells, args.days, seed)
        for name, seasonal in (("seasonal", True), ("flat", False)):
            got = score(baseline_flags(x, rule, seasonal=seasonal), truth, rule.periods, test_from)
            detection[name].append(got)
            print(f"seed {seed} {name}: {got}", flush=True)
        share, got = static_flags(x, truth, rule.periods, test_from)
        detection["static"].append({**got, "share_of_median": round(share, 2)})
        print(f"seed {seed} static (best share {share:.2f}): {got}", flush=True)
    timing = cost(args.cells, args.kpis, rule, args.passes)
    print(f"cost: {timing}", flush=True)
    print(
        json.dumps(
            {
                "eval_cells": args.eval_cells,
                "days": args.days,
                "detection_per_seed": detection,
                "series": args.cells * args.kpis,
                "pass_ms": timing["pass_ms"],
                "p95_ms": timing["p95_ms"],
                "reference_ms": timing["reference_ms"],
                "ratio": round(timing["pass_ms"] / max(timing["reference_ms"], 1e-9), 3),
                "state_mb": timing["state_mb"],
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
