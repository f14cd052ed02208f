"""The live story: a seed-drawn schedule of overlapping faults, so that any moment has a few active.

Faults drawn at the causal rates leave most moments of a small network without one. With the
``story`` option the simulator adds three *threads* of scheduled faults, each a chain in which
every fault starts before the one before it is restored:

* ``enterprise``: radio unit failures (one sector down) at the sites carrying the most enterprise
  and VIP lines, on a sector drawn by those lines: their accounts have SLA restore targets, so a
  clock counts down in the queue;
* ``consumer``: at the sites with the most consumer lines among the rest, a radio unit failure or,
  with ``ran_degradation_probability``, interference degrading one sector (magnitude as drawn
  degradations have it);
* ``minor``: slight interference on one sector (magnitude ``MINOR_RANGE``, below
  ``faults.MINOR_MAGNITUDE``: severity minor) at the other sites.

One sector rather than a whole site keeps what a thread that never stops costs in tickets and
churn within reason (each thread has one fault or two active at all times). Each thread has its own
sites (split in two halves that its faults alternate between), so faults that overlap in time are
on unrelated resources and stay separate incidents. Slot ``k`` of a thread starts ``k * SLOT_MIN``
minutes (plus the thread's phase) after 1970-01-01 plus a jitter drawn first from the generator of
``(seed, "story", thread, k)``: every slot, and so the scheduled faults of any day, is a pure
function of the seed and the world. Scheduled faults are faults of the world like the drawn ones:
``incidents_for`` returns both, so KPIs, alarms, tickets, dissatisfaction and churn follow from
them by the same causal model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connectors.simulator.causal import CausalParameters
from connectors.simulator.faults import DAY_S, Incident, draw_mix, make_incident
from connectors.simulator.world import CONSUMER, ENTERPRISE, World, rng_for

# Consecutive faults of a thread start SLOT_MIN minutes apart, each late by 0..JITTER_MIN - 1
# minutes: gaps of 46 to 78 minutes. Each fault outlasts the start of the next by OVERLAP_MIN.
SLOT_MIN = 62
JITTER_MIN = 17
# At least 18 minutes of overlap: a fault that starts late in a 15-minute KPI period shows only a
# little of itself in that period's samples, and its predecessor is still down when the next
# period has been measured. At most 26: the gap less the overlap leaves 20 minutes between a
# fault's clear and the start of the one after next on the same half of the sites, more than the
# correlation window (10 min) and the flap hold (15 min). Durations are thus 64-104 minutes,
# within the shortest enterprise SLA (120): the story's outages are restored in time.
OVERLAP_MIN = (18.0, 26.0)
MINOR_RANGE = (0.15, 0.35)
# The smallest network the story fits: two halves of at least one site for each thread.
MIN_SITES = 6

THREADS = ("enterprise", "consumer", "minor")
CODES = {"enterprise": "E", "consumer": "C", "minor": "M"}


@dataclass(frozen=True)
class Pools:
    """Per thread, its two halves of sites and the weight of each site in its half; per cell, the
    weight of each sector of a site in the thread's draw of the sector that fails."""

    sites: dict[str, tuple[np.ndarray, np.ndarray]]
    weights: dict[str, tuple[np.ndarray, np.ndarray]]
    cell_weight: dict[str, np.ndarray]


def sites_per_half(n_sites: int) -> int:
    """Sites in each half of the enterprise and consumer threads: 1 per 100 sites, at least 1.

    A thread keeps one fault or two active at all times, about 32 hours of faults a day. On a small
    network few sites bear them: their customers' dissatisfaction is at its cap anyway, and fewer
    customers reach it than if every site took its turn. On the largest networks (6,667 sites at
    1,000,000 subscribers) each site's share, about 15 minutes a day, stays below what customers
    shrug off.
    """
    return max(1, n_sites // 100)


def pools(w: World) -> Pools:
    """The sites of each thread, a pure function of the world."""
    if w.n_sites < MIN_SITES:
        raise ValueError(f"the story needs at least {MIN_SITES} sites, the network has {w.n_sites}")
    segment = w.acc_segment[w.sub_account]
    vip = w.acc_vip[w.sub_account]
    cell_tracked = np.bincount(w.sub_home_cell, weights=(segment == ENTERPRISE) | vip, minlength=w.n_cells)
    cell_consumer = np.bincount(w.sub_home_cell, weights=(segment == CONSUMER) & ~vip, minlength=w.n_cells)
    tracked = cell_tracked.reshape(-1, 3).sum(axis=1)
    consumer = cell_consumer.reshape(-1, 3).sum(axis=1)
    n = 2 * sites_per_half(w.n_sites)
    ids = np.arange(w.n_sites)
    enterprise = np.lexsort((ids, -tracked))[:n]
    rest = np.setdiff1d(ids, enterprise)
    by_consumer = rest[np.lexsort((rest, -consumer[rest]))][:n]
    minor = np.setdiff1d(rest, by_consumer)
    chosen = {"enterprise": enterprise, "consumer": by_consumer, "minor": minor}
    weight = {"enterprise": tracked, "consumer": consumer, "minor": np.ones(w.n_sites)}
    sites: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, ranked in chosen.items():
        # Alternate ranks between the halves, so both carry sites of the same kind.
        halves = (ranked[0::2], ranked[1::2])
        sites[name] = halves
        ws = []
        for half in halves:
            wh = weight[name][half] + 1.0
            ws.append(wh / wh.sum())
        weights[name] = (ws[0], ws[1])
    cell_weight = {"enterprise": cell_tracked, "consumer": cell_consumer, "minor": np.ones(w.n_cells)}
    return Pools(sites=sites, weights=weights, cell_weight=cell_weight)


class Story:
    """The scheduled faults of a world, per day; cheap to build, every slot drawn on demand."""

    def __init__(self, w: World, c: CausalParameters) -> None:
        self.w = w
        self.c = c
        self.pools = pools(w)

    def _start_min(self, thread: int, k: int) -> int:
        """When slot ``k`` of ``thread`` starts, in minutes since 1970-01-01."""
        jitter = int(rng_for(self.w.seed, "story", thread, k).integers(JITTER_MIN))
        return k * SLOT_MIN + thread * SLOT_MIN // len(THREADS) + jitter

    def incidents_for_day(self, day: int) -> list[Incident]:
        """The scheduled faults that start on absolute day ``day``, thread by thread in time order."""
        out: list[Incident] = []
        lo, hi = day * DAY_S // 60, (day + 1) * DAY_S // 60
        for t in range(len(THREADS)):
            phase = t * SLOT_MIN // len(THREADS)
            for k in range((lo - phase - JITTER_MIN) // SLOT_MIN, (hi - phase) // SLOT_MIN + 1):
                start = self._start_min(t, k)
                if lo <= start < hi:
                    out.append(self._slot(day, t, k, start))
        return out

    def _slot(self, day: int, t: int, k: int, start: int) -> Incident:
        w, c = self.w, self.c
        name = THREADS[t]
        rng = rng_for(w.seed, "story", t, k)
        rng.integers(JITTER_MIN)  # the jitter, drawn first (see _start_min)
        minutes = self._start_min(t, k + 1) - start + round(rng.uniform(*OVERLAP_MIN))
        sites, weights = self.pools.sites[name][k % 2], self.pools.weights[name][k % 2]
        site = int(sites[rng.choice(len(sites), p=weights)])
        sector_w = self.pools.cell_weight[name][3 * site : 3 * site + 3] + 1.0
        sector: int | None = int(rng.choice(3, p=sector_w / sector_w.sum()))
        u = rng.random(2)
        outage, magnitude = True, 1.0
        if name == "minor":
            outage, magnitude = False, MINOR_RANGE[0] + (MINOR_RANGE[1] - MINOR_RANGE[0]) * float(u[1])
        elif name == "consumer" and u[0] < c.ran_degradation_probability:
            outage, magnitude = False, 0.4 + 0.6 * float(u[1])
        ack = min(rng.uniform(3, 25), minutes - 5)
        close = rng.uniform(30, 240)
        mix = draw_mix(rng, 1)[0]
        return make_incident(
            w,
            day,
            f"{day}-{CODES[name]}{k % 10_000:04d}",
            site,  # the site's RAN node
            outage,
            magnitude,
            start * 60,
            minutes,
            round(ack),
            round(close),
            tuple(float(m) for m in mix),
            story=name,
            sector=sector,
        )
