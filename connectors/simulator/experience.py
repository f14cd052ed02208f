"""What subscribers live through each day: exposure to incidents, tickets, offers and churn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from connectors.simulator.causal import CausalParameters
from connectors.simulator.faults import DAY_S, Incident
from connectors.simulator.world import ENTERPRISE, World, rng_for

# Ticket categories and tones (codes used in arrays; texts.py turns them into words).
CATEGORIES = (
    "outage",
    "slow_data",
    "dropped_calls",
    "billing",
    "plan_change",
    "device",
    "roaming",
    "compliment",
    "coverage",
)
OUTAGE, SLOW_DATA, DROPPED, BILLING, PLAN, DEVICE, ROAMING, COMPLIMENT, COVERAGE = range(9)
ANGRY, MILD, NEUTRAL, POSITIVE = range(4)
TONES = ("angry", "mild", "neutral", "positive")
BASE_CATEGORY_P = np.array([0.0, 0.10, 0.08, 0.28, 0.20, 0.10, 0.06, 0.06, 0.12])
CHURN_REASONS = (
    "network quality",
    "repeated outages",
    "poor customer service",
    "price",
    "competitor offer",
    "relocation",
    "no longer needed",
)


@dataclass
class DayOutcome:
    """The events of one absolute day, decided once and reused by every stream."""

    day: int
    incidents: list[Incident]
    ticket_sub: np.ndarray
    ticket_incident: np.ndarray  # index into ``incidents`` or -1
    ticket_category: np.ndarray
    ticket_tone: np.ndarray
    ticket_outage_h: np.ndarray
    ticket_created_s: np.ndarray
    offer_sub: np.ndarray
    offer_ticket: np.ndarray
    offer_accepted: np.ndarray
    churn_sub: np.ndarray
    churn_s: np.ndarray
    churn_reason: np.ndarray


@dataclass
class _EpochState:
    day: int  # the next day to simulate
    active: np.ndarray
    degraded_h: np.ndarray
    negative: np.ndarray
    offer_accepted: np.ndarray


class Experience:
    """Steps the subscriber base day by day within churn epochs; results are cached per day."""

    def __init__(self, w: World, c: CausalParameters, incidents_for: Callable[[int], list[Incident]]) -> None:
        self.w = w
        self.c = c
        self.incidents_for = incidents_for
        self._days: dict[int, DayOutcome] = {}
        self._state: _EpochState | None = None

    def epoch_start(self, day: int) -> int:
        return day - day % self.c.epoch_days

    def day(self, day: int) -> DayOutcome:
        if day in self._days:
            return self._days[day]
        start = self.epoch_start(day)
        st = self._state
        if st is None or st.day > day or st.day < start or self.epoch_start(st.day) != start:
            n = self.w.n_subscribers
            st = _EpochState(
                start, np.ones(n, bool), np.zeros(n, np.float32), np.zeros(n, np.int16), np.zeros(n, bool)
            )
        while st.day <= day:
            out = self._step(st)
            self._days[out.day] = out
            st.day += 1
        self._state = st
        # Keep the cache bounded: a few epochs of small per-day outcomes.
        for d in [d for d in self._days if d < day - 3 * self.c.epoch_days]:
            del self._days[d]
        return self._days[day]

    def churned_at(self, t_s: int) -> np.ndarray:
        """Which subscribers are churned at time ``t_s`` (churned earlier in the same epoch)."""
        day = int(t_s // DAY_S)
        mask = np.zeros(self.w.n_subscribers, bool)
        for d in range(self.epoch_start(day), day + 1):
            out = self.day(d)
            mask[out.churn_sub[out.churn_s < t_s]] = True
        return mask

    def _cell_exposure(self, day: int) -> tuple[list[Incident], np.ndarray, np.ndarray, np.ndarray]:
        """Per cell: added ticket hazard, degraded-hours score and dominant incident on ``day``."""
        c = self.c
        incidents = self.incidents_for(day - 1) + self.incidents_for(day)
        n_c = self.w.n_cells
        hazard = np.zeros(n_c)
        score = np.zeros(n_c)
        outage_h = np.zeros(n_c)
        dominant = np.full(n_c, -1, dtype=np.int64)
        best = np.zeros(n_c)
        lo_t, hi_t = day * DAY_S, (day + 1) * DAY_S
        for k, inc in enumerate(incidents):
            hours = (min(inc.end_s, hi_t) - max(inc.start_s, lo_t)) / 3600
            if hours <= 0:
                continue
            sl = slice(inc.cell_lo, inc.cell_hi)
            if inc.outage:
                h = hours * inc.magnitude
                add = c.ticket_per_outage_hour * h
                outage_h[sl] += h
                score[sl] += 2 * h
            else:
                h = hours * inc.magnitude
                add = (
                    c.ticket_per_drop_pp_hour * c.degraded_drop_rate_pp
                    + c.ticket_per_latency_100ms_hour * c.degraded_latency_ms / 100
                ) * h
                score[sl] += h
            hazard[sl] += add
            better = best[sl] < add
            dominant[sl] = np.where(better, k, dominant[sl])
            best[sl] = np.maximum(best[sl], add)
        return incidents, hazard, score, np.stack([outage_h, dominant.astype(float)])

    def _step(self, st: _EpochState) -> DayOutcome:
        w, c, day = self.w, self.c, st.day
        n = w.n_subscribers
        rng = rng_for(w.seed, "experience", day)
        incidents, cell_hazard, cell_score, extra = self._cell_exposure(day)
        cell_outage_h, cell_dom = extra[0], extra[1].astype(np.int64)
        sub_hazard: np.ndarray
        sub_score: np.ndarray
        if incidents:
            sub_hazard = np.bincount(w.sc_sub, weights=w.sc_share * cell_hazard[w.sc_cell], minlength=n)
            sub_score = np.bincount(w.sc_sub, weights=w.sc_share * cell_score[w.sc_cell], minlength=n)
        else:
            sub_hazard = np.zeros(n)
            sub_score = np.zeros(n)
        u_ticket, u_cause, u_churn = rng.random(n), rng.random(n), rng.random(n)
        total = c.ticket_base_daily + sub_hazard
        files = st.active & (u_ticket < -np.expm1(-total))
        subs = np.flatnonzero(files)
        from_incident = u_cause[subs] < sub_hazard[subs] / total[subs]
        m = len(subs)

        # Which incident, category and tone; ticket time.
        inc_idx = np.full(m, -1, dtype=np.int64)
        outage_h = np.zeros(m)
        for j in np.flatnonzero(from_incident):
            s = subs[j]
            lo, hi = w.sc_indptr[s], w.sc_indptr[s + 1]
            cells = w.sc_cell[lo:hi]
            contrib = w.sc_share[lo:hi] * cell_hazard[cells]
            cell = cells[int(np.argmax(contrib))]
            inc_idx[j] = cell_dom[cell]
            outage_h[j] = float(np.dot(w.sc_share[lo:hi], cell_outage_h[cells]))
        from_incident &= inc_idx >= 0
        category = rng.choice(len(BASE_CATEGORY_P), size=m, p=BASE_CATEGORY_P / BASE_CATEGORY_P.sum())
        tone = np.full(m, NEUTRAL)
        u_tone = rng.random(m)
        complaint = np.isin(category, (SLOW_DATA, DROPPED, COVERAGE))
        tone[complaint] = np.where(u_tone[complaint] < 0.2, ANGRY, MILD)
        billing = category == BILLING
        tone[billing] = np.where(u_tone[billing] < 0.4, MILD, NEUTRAL)
        tone[category == COMPLIMENT] = POSITIVE
        vip = w.acc_vip[w.sub_account[subs]]
        created = day * DAY_S + np.clip(rng.normal(14, 3.5, m), 7, 23.9) * 3600
        inc_outage = np.array([incidents[k].outage if k >= 0 else False for k in inc_idx], dtype=bool)
        for j in np.flatnonzero(from_incident):
            inc = incidents[inc_idx[j]]
            category[j] = OUTAGE if inc.outage else (SLOW_DATA if u_tone[j] < 0.6 else DROPPED)
            severe = outage_h[j] >= c.angry_outage_hours or vip[j] or u_tone[j] < 0.3
            tone[j] = ANGRY if severe and (inc_outage[j] or u_tone[j] < 0.5) else MILD
            begin = max(inc.start_s, day * DAY_S)
            created[j] = min(begin + 300 + rng.exponential(2400), (day + 1) * DAY_S - 1)
        inc_idx[~from_incident] = -1
        negative = (tone == ANGRY) | (tone == MILD)

        # Offers after negative tickets, churn after bad experience and negative tickets.
        np.add.at(st.negative, subs[negative], 1)
        st.degraded_h += sub_score.astype(np.float32)
        offered = negative & (rng.random(m) < c.offer_probability_after_negative_ticket)
        accepted = offered & (rng.random(m) < c.offer_acceptance_probability)
        st.offer_accepted[subs[accepted]] = True
        log_h = (
            c.churn_per_degraded_hour * np.minimum(st.degraded_h, c.churn_degraded_hours_cap)
            + c.churn_per_negative_ticket * st.negative
        )
        hazard = (
            c.churn_base_daily
            * np.exp(log_h)
            * np.where(st.offer_accepted, c.accepted_offer_churn_multiplier, 1.0)
        )
        hazard[w.acc_segment[w.sub_account] == ENTERPRISE] *= 0.5  # fleet contracts churn less
        churn = st.active & (u_churn < -np.expm1(-hazard))
        churn_sub = np.flatnonzero(churn)
        k = len(churn_sub)
        churn_s = day * DAY_S + rng.integers(0, DAY_S, k)
        bad = (st.degraded_h[churn_sub] > 0.5) | (st.negative[churn_sub] > 0)
        reason = np.where(bad, rng.integers(0, 3, k), rng.integers(3, len(CHURN_REASONS), k))
        st.active[churn_sub] = False
        return DayOutcome(
            day=day,
            incidents=incidents,
            ticket_sub=subs,
            ticket_incident=inc_idx,
            ticket_category=category,
            ticket_tone=tone,
            ticket_outage_h=outage_h,
            ticket_created_s=created.astype(np.int64),
            offer_sub=subs[offered],
            offer_ticket=np.flatnonzero(offered),
            offer_accepted=accepted[offered],
            churn_sub=churn_sub,
            churn_s=churn_s.astype(np.int64),
            churn_reason=reason,
        )
