"""15-minute cell KPIs with daily and weekly rhythm, degraded by the incidents behind each cell."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from connectors.simulator.causal import CausalParameters
from connectors.simulator.faults import CSSR, DAY_S, DROP, LATENCY, LOSS, THROUGHPUT, Incident, cell_impact
from connectors.simulator.world import World, rng_for

STEP_S = 900
KPIS = (
    "traffic_gb",
    "prb_utilisation_pct",
    "call_setup_success_pct",
    "drop_call_rate_pct",
    "latency_ms",
    "dl_throughput_mbps",
    "availability_pct",
    "packet_loss_pct",
)
TARGET_ROWS = 150_000
MAX_ROWS = 250_000
GB_PER_SUBSCRIBER_DAY = 0.45


def daily_profile(hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Relative load by hour of day (0..~1): night trough, morning, lunch and evening peaks."""
    morning = np.exp(-(((hour - 8.5) / 1.3) ** 2)) * np.where(weekend, 0.1, 0.35)
    midday = np.exp(-(((hour - 13.0) / 3.0) ** 2)) * np.where(weekend, 0.62, 0.5)
    evening = np.exp(-(((hour - 20.5) / 2.3) ** 2)) * 0.72
    return np.asarray(0.12 + morning + midday + evening)


def kpi_values(
    w: World, c: CausalParameters, ps: np.ndarray, incidents: list[Incident], cells: np.ndarray | None = None
) -> np.ndarray:
    """The KPIs (``KPIS`` order) of periods ``ps`` and ``cells`` (default all): (kpi, period, cell).

    A pure function of the seed, the periods and the incidents: the noise of a period is drawn for
    every cell from one generator per period, so values do not depend on chunking or on ``cells``.
    """
    n_c = w.n_cells
    sel = np.arange(n_c) if cells is None else np.asarray(cells, dtype=np.int64)
    p = len(ps)
    outage, degraded = cell_impact(incidents, n_c, ps, STEP_S)
    outage, degraded = outage[:, sel], degraded[:, :, sel]
    noise = np.empty((p, 6, len(sel)))
    blips = np.empty((p, len(sel)))
    for j, t in enumerate(ps):
        rng = rng_for(w.seed, "kpi", int(t // STEP_S))
        noise[j] = rng.standard_normal((6, n_c))[:, sel]
        blips[j] = rng.random(n_c)[sel]
    traffic_scale = ((w.cell_subs + 5) * GB_PER_SUBSCRIBER_DAY / 96 / 0.45)[sel]
    is5g = w.cell_5g[sel]
    base_latency = np.where(is5g, 14.0, 32.0)
    peak_tput = np.where(is5g, 320.0, 55.0)
    hour = (ps % DAY_S) / 3600.0 + 7.5 / 60
    weekday = ((ps // DAY_S) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekend = weekday >= 5
    prof = daily_profile(hour, weekend)[:, None]
    load = np.clip(prof * w.cell_load[sel][None, :] * (1 + 0.08 * noise[:, 0]), 0.02, 1.2)
    up = 1.0 - outage
    # An outage shows in availability (and lost traffic) only: the per-period ratios (drops,
    # latency, accessibility, throughput, loss) are counted over the time the cell was up, so
    # a degradation weighs by its share of that time; a cell down all period reports its
    # load-driven values.
    g = np.where(up > 0, degraded / np.maximum(up, 1e-9), 0.0)
    # Quality worsens with the cell's own load level and with the busy hour, additively: a day's
    # traffic-weighted mean then moves with the network-wide rhythm, not a cell-specific one.
    busy = 0.5 * (w.cell_load[sel][None, :] ** 2 + (prof * (1 + 0.08 * noise[:, 0])) ** 2)
    values = np.empty((len(KPIS), p, len(sel)))
    values[0] = traffic_scale * prof * np.exp(0.15 * noise[:, 1]) * up
    values[1] = np.clip(8 + 75 * load + 3 * noise[:, 2] + 15 * np.minimum(g[THROUGHPUT], 1), 0, 100)
    values[2] = np.clip(99.6 - 1.2 * busy - np.abs(0.2 * noise[:, 3]) - c.degraded_cssr_pp * g[CSSR], 0, 100)
    values[3] = np.clip(
        0.25 + 0.6 * busy + np.abs(0.08 * noise[:, 4]) + c.degraded_drop_rate_pp * g[DROP], 0, 100
    )
    values[4] = base_latency + 30 * busy + np.abs(3 * noise[:, 2]) + c.degraded_latency_ms * g[LATENCY]
    values[5] = (
        peak_tput
        * (1 - 0.65 * np.minimum(load, 1))
        * np.exp(0.1 * noise[:, 3])
        * np.clip(1 - c.degraded_throughput_loss * g[THROUGHPUT], 0.02, 1)
    )
    micro = np.where(blips < 0.002, blips * 5000, 0.0)  # rare short blips of up to 10 %
    values[6] = np.clip(100 * up - micro, 0, 100)
    values[7] = np.clip(
        0.05 + 0.3 * busy + np.abs(0.03 * noise[:, 5]) + c.degraded_packet_loss_pp * g[LOSS], 0, 100
    )
    return values


def kpi_frames(
    w: World,
    c: CausalParameters,
    source: str,
    a_s: int,
    b_s: int,
    incidents_for: Callable[[int], list[Incident]],
) -> Iterator[pd.DataFrame]:
    """kpi_samples for periods in [a_s, b_s), in frames of about ``TARGET_ROWS`` rows."""
    n_c = w.n_cells
    per_chunk = max(1, TARGET_ROWS // (len(KPIS) * n_c))
    periods = np.arange(a_s - a_s % STEP_S, b_s, STEP_S, dtype=np.int64)
    periods = periods[periods >= a_s]
    cell_pos = np.tile(np.arange(n_c), per_chunk * len(KPIS))
    kpi_names = pd.Series(KPIS, dtype="str")
    for i in range(0, len(periods), per_chunk):
        ps = periods[i : i + per_chunk]
        p = len(ps)
        days = sorted({int(d) for d in ps // DAY_S} | {int(ps[0] // DAY_S) - 1})
        incidents = [inc for d in days for inc in incidents_for(d)]
        values = kpi_values(w, c, ps, incidents)
        n = p * n_c
        frame = pd.DataFrame(
            {
                "source": pd.Series([source], dtype="str")
                .take(np.zeros(n * len(KPIS), dtype=np.int64))
                .reset_index(drop=True),
                "entity_type": pd.Series(["cell"], dtype="str")
                .take(np.zeros(n * len(KPIS), dtype=np.int64))
                .reset_index(drop=True),
                "entity_id": w.cell_ids.take(cell_pos[: n * len(KPIS)]).reset_index(drop=True),
                "kpi": kpi_names.take(np.repeat(np.arange(len(KPIS)), n)).reset_index(drop=True),
                "period_start": np.tile(np.repeat((ps * 1_000_000).astype("datetime64[us]"), n_c), len(KPIS)),
                "value": np.round(values.reshape(-1), 3),
            }
        )
        if len(frame) <= MAX_ROWS:
            yield frame
            continue
        # A very dense network (one period alone over the maximum) is cut along its rows.
        for lo in range(0, len(frame), TARGET_ROWS):
            yield frame.iloc[lo : lo + TARGET_ROWS].reset_index(drop=True)
