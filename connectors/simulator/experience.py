"""What subscribers live through each day: exposure to incidents, tickets, offers and churn.

Everything here is a pure function of the seed and the day, with bounded memory:

* **Tickets** of a day (``DayOutcome``) are drawn for every line, churned or not (a *latent*
  ticket); a ticket is only emitted when its line is in service at the time (``in_service``).
* **Dissatisfaction** at the start of a day is a decaying sum of the degraded hours on a line's
  cells and of the negative tickets it filed over the ``dissatisfaction_lookback_days`` before it.
* **Churn decisions** of a day are drawn from a hazard driven by that dissatisfaction (plus
  baseline, tenure, ARPU and segment effects); each lands as a churn ``churn_lag_*`` days later.
* **Service status** follows from the landings alone: a line is out of service for
  ``resell_after_days`` after a landing and is then re-sold. A landing while it is out of service
  is no churn event but keeps it out longer. So the status at any time needs only the landings of
  the ``resell_after_days`` before it, and those only the decisions and tickets of a bounded past.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from connectors.simulator.causal import CausalParameters
from connectors.simulator.faults import DAY_S, DROP, LATENCY, Incident, to_dt
from connectors.simulator.inbox import Inbox
from connectors.simulator.kpis import KPIS, STEP_S, kpi_values
from connectors.simulator.world import ENTERPRISE, REFERENCE, World, rng_for

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
    """The latent tickets and offers of one absolute day, decided once and reused by every stream."""

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
    cell_score: np.ndarray  # degraded-hours score per cell on this day (outage hours count double)
    negative_sub: np.ndarray  # lines that filed a negative ticket (repeated per ticket)
    accepted_sub: np.ndarray  # lines that accepted a retention offer


@dataclass
class DayChurn:
    """The churn decisions taken on one absolute day and when each lands (epoch seconds)."""

    day: int
    sub: np.ndarray
    landing_s: np.ndarray
    reason: np.ndarray


@dataclass
class Landings:
    """Churn landings in a time range, sorted by (subscriber, time), with a searchable key."""

    sub: np.ndarray
    time_s: np.ndarray
    reason: np.ndarray
    key: np.ndarray  # sub << 34 | time_s, sorted

    def any_in(self, subs: np.ndarray, lo_s: np.ndarray, hi_s: np.ndarray) -> np.ndarray:
        """Whether each ``subs[i]`` has a landing in ``[lo_s[i], hi_s[i])``."""
        s = subs.astype(np.int64) << 34
        lo = np.searchsorted(self.key, s | np.maximum(lo_s, 0).astype(np.int64), side="left")
        hi = np.searchsorted(self.key, s | np.maximum(hi_s, 0).astype(np.int64), side="left")
        return np.asarray(hi > lo)


class Experience:
    """Latent tickets, dissatisfaction, churn decisions and service status; cached per day."""

    def __init__(
        self,
        w: World,
        c: CausalParameters,
        incidents_for: Callable[[int], list[Incident]],
        inbox: Inbox | None = None,
    ) -> None:
        self.w = w
        self.c = c
        self.incidents_for = incidents_for
        self.inbox = inbox if inbox is not None else Inbox(w, c)
        self._days: dict[int, DayOutcome] = {}
        self._churn: dict[int, DayChurn] = {}
        self._static: np.ndarray | None = None
        self._tenure0: np.ndarray | None = None
        lookback = int(c.dissatisfaction_lookback_days)
        ages = np.arange(1, lookback + 1)
        self._weights = np.exp2(-(ages - 1) / max(c.dissatisfaction_half_life_days, 1e-6))
        self.lag_min_s = round(c.churn_lag_min_days * DAY_S)
        self.lag_max_s = max(round(c.churn_lag_max_days * DAY_S), self.lag_min_s)
        self.resell_s = int(c.resell_after_days) * DAY_S

    @property
    def memory_days(self) -> int:
        """How far before a time its service status reaches: re-sell, lag and dissatisfaction."""
        c = self.c
        return (
            int(c.resell_after_days)
            + int(np.ceil(c.churn_lag_max_days))
            + int(c.dissatisfaction_lookback_days)
            + 2
        )

    def _trim(self, day: int) -> None:
        """Keep the caches bounded: a few memory spans of small per-day outcomes around ``day``."""
        keep = 3 * self.memory_days
        for cache in (self._days, self._churn):
            if len(cache) > 2 * keep:
                for d in [d for d in cache if abs(d - day) > keep]:
                    del cache[d]

    # --- tickets -------------------------------------------------------------------------------

    def day(self, day: int) -> DayOutcome:
        """The latent tickets and offers of ``day``: a pure function of (seed, day)."""
        out = self._days.get(day)
        if out is None:
            out = self._tickets(day)
            self._days[day] = out
            self._trim(day)
        return out

    def _cell_exposure(self, day: int) -> tuple[list[Incident], np.ndarray, np.ndarray, np.ndarray]:
        """Per cell: added ticket hazard, degraded-hours score and dominant incident on ``day``.

        The added hazard is linear in the day's cell KPIs as a daily roll-up sees them: per cell,
        ``ticket_per_outage_hour`` x the hours down (24 x the fall of mean availability / 100),
        plus ``24 x ticket_per_drop_pp_hour`` x the rise of the traffic-weighted daily mean drop
        rate and ``24 x ticket_per_latency_100ms_hour / 100`` x that of latency, each rise against
        the same day without incidents (same noise). Customers feel a degradation as they use the
        network (a busy-hour fault hurts more callers), and the roll-up weighs it the same way.
        Accessibility, throughput and packet loss add nothing (see causal.linkage_truth).
        """
        c = self.c
        incidents = self.incidents_for(day - 1) + self.incidents_for(day)
        n_c = self.w.n_cells
        lo_t, hi_t = day * DAY_S, (day + 1) * DAY_S
        hazard = np.zeros(n_c)
        outage_h = np.zeros(n_c)
        live = [inc for inc in incidents if inc.end_s > lo_t and inc.start_s < hi_t]
        if live:
            hit = np.zeros(n_c, dtype=bool)
            for inc in live:
                hit[inc.cell_lo : inc.cell_hi] = True
            cells = np.flatnonzero(hit)
            periods = np.arange(lo_t, hi_t, STEP_S, dtype=np.int64)
            rises = []
            for which in (live, []):
                v = kpi_values(self.w, c, periods, which, cells)
                traffic = v[KPIS.index("traffic_gb")]
                total = traffic.sum(axis=0)
                share = np.divide(traffic, total, out=np.zeros_like(traffic), where=total > 0)
                rises.append(
                    (
                        100 - v[KPIS.index("availability_pct")].mean(axis=0),
                        (share * v[KPIS.index("drop_call_rate_pct")]).sum(axis=0),
                        (share * v[KPIS.index("latency_ms")]).sum(axis=0),
                        total > 0,
                    )
                )
            (down, drop, lat, ok), (down0, drop0, lat0, _) = rises
            outage_h[cells] = 24 * np.maximum(down - down0, 0) / 100
            hazard[cells] = (
                c.ticket_per_outage_hour * outage_h[cells]
                + 24 * c.ticket_per_drop_pp_hour * np.where(ok, drop - drop0, 0)
                + 24 * c.ticket_per_latency_100ms_hour / 100 * np.where(ok, lat - lat0, 0)
            )
            # A day's traffic mix can shift (a busy-hour outage leaves the quieter hours): the
            # rise can be a little negative, never below no ticket hazard at all.
            hazard = np.maximum(hazard, -c.ticket_base_daily)
        # Which incident hurt each cell most (what its tickets are about), and the degraded-hours
        # score that customers remember (outage hours count double).
        score = np.zeros(n_c)
        dominant = np.full(n_c, -1, dtype=np.int64)
        best = np.zeros(n_c)
        for k, inc in enumerate(incidents):
            hours = (min(inc.end_s, hi_t) - max(inc.start_s, lo_t)) / 3600
            if hours <= 0:
                continue
            sl = slice(inc.cell_lo, inc.cell_hi)
            h = hours * inc.magnitude
            if inc.outage:
                add = c.ticket_per_outage_hour * h
                score[sl] += 2 * h
            else:
                add = (
                    c.ticket_per_drop_pp_hour * c.degraded_drop_rate_pp * inc.mix[DROP]
                    + c.ticket_per_latency_100ms_hour * c.degraded_latency_ms / 100 * inc.mix[LATENCY]
                ) * h
                score[sl] += h
            better = best[sl] < add
            dominant[sl] = np.where(better, k, dominant[sl])
            best[sl] = np.maximum(best[sl], add)
        return incidents, hazard, score, np.stack([outage_h, dominant.astype(float)])

    def _tickets(self, day: int) -> DayOutcome:
        w, c = self.w, self.c
        n = w.n_subscribers
        rng = rng_for(w.seed, "experience", day)
        incidents, cell_hazard, cell_score, extra = self._cell_exposure(day)
        cell_outage_h, cell_dom = extra[0], extra[1].astype(np.int64)
        u_ticket = rng.random(n)
        total = np.full(n, c.ticket_base_daily)
        hit = np.flatnonzero(cell_hazard != 0)
        if len(hit):
            rows = self._rows_of_cells(hit)
            total += np.bincount(
                w.sc_sub[rows], weights=w.sc_share[rows] * cell_hazard[w.sc_cell[rows]], minlength=n
            )
        subs = np.flatnonzero(u_ticket < -np.expm1(-total))
        m = len(subs)
        sub_hazard = total[subs] - c.ticket_base_daily
        from_incident = rng.random(m) < sub_hazard / total[subs]

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
        offered = negative & (rng.random(m) < c.offer_probability_after_negative_ticket)
        accepted = offered & (rng.random(m) < c.offer_acceptance_probability)
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
            cell_score=cell_score.astype(np.float32),
            negative_sub=subs[negative],
            accepted_sub=subs[accepted],
        )

    def _rows_of_cells(self, cells: np.ndarray) -> np.ndarray:
        """Rows of the subscriber-cell table whose cell is in ``cells`` (sorted, unique cells)."""
        order, indptr = self._cell_index()
        lo, hi = indptr[cells], indptr[cells + 1]
        counts = hi - lo
        if counts.sum() == 0:
            return np.zeros(0, dtype=np.int64)
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return np.asarray(order[starts + np.arange(int(counts.sum()))])

    def _cell_index(self) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "_by_cell"):
            w = self.w
            order = np.argsort(w.sc_cell, kind="stable")
            indptr = np.concatenate([[0], np.cumsum(np.bincount(w.sc_cell, minlength=w.n_cells))])
            self._by_cell = (order, indptr)
        return self._by_cell

    # --- dissatisfaction and churn decisions ---------------------------------------------------

    def static_log_hazard(self, day: int) -> np.ndarray:
        """Per line: the log churn hazard of tenure, ARPU and segment on ``day`` (no experience)."""
        w, c = self.w, self.c
        if self._static is None:
            arpu = np.log2(np.maximum(w.sub_arpu, 1.0) / 25.0)
            seg = np.where(
                w.acc_segment[w.sub_account] == ENTERPRISE,
                np.log(max(c.enterprise_churn_multiplier, 1e-9)),
                0.0,
            )
            self._static = c.churn_per_arpu_doubling * np.maximum(arpu, -2.0) + seg
            tenure_ref = rng_for(w.seed, "tenure").exponential(1100, w.n_subscribers)  # as subscriber_frame
            self._tenure0 = tenure_ref - day_of(REFERENCE)  # tenure on day d is tenure0 + d
        assert self._tenure0 is not None
        tenure = np.maximum(self._tenure0 + day, 0.0)
        fresh = np.exp(-tenure / max(c.churn_tenure_days, 1e-6))
        return np.asarray(self._static + c.churn_new_customer_log_hazard * fresh)

    def dissatisfaction(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per line at the start of ``day``: remembered degraded hours, negative tickets, offer taken."""
        w = self.w
        n = w.n_subscribers
        cell = np.zeros(w.n_cells)
        negs: list[np.ndarray] = []
        neg_w: list[np.ndarray] = []
        accepted: list[np.ndarray] = []
        for k, weight in enumerate(self._weights, start=1):
            out = self.day(day - k)
            cell += weight * out.cell_score
            negs.append(out.negative_sub)
            neg_w.append(np.full(len(out.negative_sub), weight))
            accepted.append(out.accepted_sub)
        hit = np.flatnonzero(cell > 0)
        degraded: np.ndarray = np.zeros(n)
        if len(hit):
            rows = self._rows_of_cells(hit)
            degraded = np.bincount(
                w.sc_sub[rows], weights=w.sc_share[rows] * cell[w.sc_cell[rows]], minlength=n
            )
        neg_sub = np.concatenate(negs) if negs else np.zeros(0, dtype=np.int64)
        negative = np.bincount(neg_sub, weights=np.concatenate(neg_w) if neg_w else None, minlength=n)
        offer = np.zeros(n, dtype=bool)
        if accepted:
            offer[np.concatenate(accepted)] = True
        return degraded, negative, offer

    def churn_hazard(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """Per line: the churn-decision hazard of ``day`` and the part of it with no experience."""
        c = self.c
        degraded, negative, offer = self.dissatisfaction(day)
        static = c.churn_base_daily * np.exp(self.static_log_hazard(day))
        excess = np.clip(degraded - c.churn_tolerated_degraded_hours, 0.0, c.churn_degraded_hours_cap)
        log_h = c.churn_per_degraded_hour * excess
        log_h += c.churn_per_negative_ticket * negative
        hazard = static * np.exp(log_h)
        hazard[offer] *= c.accepted_offer_churn_multiplier
        static[offer] *= c.accepted_offer_churn_multiplier
        return hazard, static

    def response_factor(self, day: int) -> np.ndarray | None:
        """Per line: the churn hazard multiplier of Vantage's messages on ``day`` (None when none
        applies). Asking draws the day: a message arriving later does not reach back into it."""
        offers, apologies = self.inbox.effects(day)
        if not len(offers) and not len(apologies):
            return None
        factor = np.ones(self.w.n_subscribers)
        factor[offers] *= self.c.vantage_offer_churn_multiplier
        factor[apologies] *= self.c.apology_churn_multiplier
        return factor

    def decisions(self, day: int) -> DayChurn:
        """The churn decisions of ``day`` and their landing times: a pure function of (seed, day) and
        of the messages from Vantage received before the day was first drawn."""
        out = self._churn.get(day)
        if out is not None:
            return out
        c, n = self.c, self.w.n_subscribers
        hazard, static = self.churn_hazard(day)
        factor = self.response_factor(day)
        if factor is not None:
            # Both parts, as for an accepted offer: the reason keeps the share bad experience added.
            hazard = hazard * factor
            static = static * factor
        rng = rng_for(self.w.seed, "churn", day)
        decide = rng.random(n) < -np.expm1(-hazard)
        subs = np.flatnonzero(decide)
        k = len(subs)
        mean_extra = max(c.churn_lag_mean_days - c.churn_lag_min_days, 0.0)
        lag = np.minimum(c.churn_lag_min_days + rng.exponential(mean_extra, k), c.churn_lag_max_days)
        decided = day * DAY_S + rng.integers(0, DAY_S, k)
        landing = decided + np.clip(np.round(lag * DAY_S), self.lag_min_s, self.lag_max_s).astype(np.int64)
        # The reason follows the part of the hazard that bad experience added.
        bad = rng.random(k) < 1.0 - static[subs] / hazard[subs]
        reason = np.where(bad, rng.integers(0, 3, k), rng.integers(3, len(CHURN_REASONS), k))
        out = DayChurn(day=day, sub=subs, landing_s=landing.astype(np.int64), reason=reason)
        self._churn[day] = out
        self._trim(day)
        return out

    def churn_probability(self, lines: np.ndarray, start_s: int, days: int, *, treated: bool) -> np.ndarray:
        """Per ``lines[i]``: the probability of a churn decision on one of the ``days`` days after the
        day of ``start_s``, from the hazards ``decisions`` draws with (tickets and incidents are
        fixed by the seed, so only the churn draws are left to chance).

        Vantage offers the line received from ``start_s`` on are left out; with ``treated`` one
        received at ``start_s`` is added, taken with ``vantage_offer_acceptance_probability``.
        Apologies and earlier accepted offers count as the inbox holds them.
        """
        c = self.c
        lines = np.asarray(lines, dtype=np.int64)
        d0 = start_s // DAY_S
        window = np.arange(d0 + 1, d0 + days + 1, dtype=np.int64)
        base = np.zeros((len(lines), len(window)))
        for j, d in enumerate(window.tolist()):
            base[:, j] = self.churn_hazard(d)[0][lines]
        offer, apology = self.inbox.active(lines, window, offers_before_s=start_s)
        h = base * np.where(apology, c.apology_churn_multiplier, 1.0)
        untreated = -np.expm1(-(h * np.where(offer, c.vantage_offer_churn_multiplier, 1.0)).sum(axis=1))
        if not treated:
            return np.asarray(untreated)
        first = self.inbox.effective_day(to_dt(start_s))
        new = (window >= first) & (window <= d0 + int(c.dissatisfaction_lookback_days))
        taken = h * np.where(offer | new[None, :], c.vantage_offer_churn_multiplier, 1.0)
        accepted = -np.expm1(-taken.sum(axis=1))
        a = c.vantage_offer_acceptance_probability
        return np.asarray(a * accepted + (1.0 - a) * untreated)

    # --- landings and service status -----------------------------------------------------------

    def landings(self, lo_s: int, hi_s: int) -> Landings:
        """Every churn landing (a decided churn taking effect) in ``[lo_s, hi_s)``."""
        first = (lo_s - self.lag_max_s) // DAY_S - 1
        last = (hi_s - 1 - self.lag_min_s) // DAY_S
        subs: list[np.ndarray] = []
        times: list[np.ndarray] = []
        reasons: list[np.ndarray] = []
        for d in range(first, last + 1):
            out = self.decisions(d)
            keep = (out.landing_s >= lo_s) & (out.landing_s < hi_s)
            subs.append(out.sub[keep])
            times.append(out.landing_s[keep])
            reasons.append(out.reason[keep])
        sub = np.concatenate(subs).astype(np.int64) if subs else np.zeros(0, np.int64)
        t = np.concatenate(times).astype(np.int64) if times else np.zeros(0, np.int64)
        r = np.concatenate(reasons) if reasons else np.zeros(0, np.int64)
        key = (sub << 34) | t
        order = np.argsort(key, kind="stable")
        return Landings(sub=sub[order], time_s=t[order], reason=r[order], key=key[order])

    def in_service(self, subs: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """Whether line ``subs[i]`` is in service at ``t_s[i]``: no landing in the re-sell span before."""
        subs = np.asarray(subs, dtype=np.int64)
        t_s = np.asarray(t_s, dtype=np.int64)
        if len(subs) == 0:
            return np.zeros(0, dtype=bool)
        lands = self.landings(int(t_s.min()) - self.resell_s, int(t_s.max()))
        return ~lands.any_in(subs, t_s - self.resell_s, t_s)

    def churned_at(self, t_s: int) -> np.ndarray:
        """Which lines are out of service just before ``t_s`` (a landing in the re-sell span before)."""
        mask = np.zeros(self.w.n_subscribers, bool)
        lands = self.landings(t_s - self.resell_s, t_s)
        mask[lands.sub] = True
        return mask

    def status_changes(self, a_s: int, b_s: int) -> tuple[Landings, np.ndarray, np.ndarray]:
        """Churn events and re-sales in ``[a_s, b_s)``.

        Returns the landings that are churn events (the line was in service just before), and the
        lines re-sold in the slice with the time of each re-sale (``resell_after_days`` after the
        last landing, when no landing came in between).
        """
        r = self.resell_s
        lands = self.landings(a_s - r, b_s)
        prev_same = np.concatenate([[False], lands.sub[1:] == lands.sub[:-1]])
        gap = np.concatenate([[np.iinfo(np.int64).max], np.diff(lands.time_s)])
        # A landing is a churn event when the same line had no landing in [t - r, t).
        event = ~(prev_same & (gap <= r)) & (lands.time_s >= a_s)
        nxt_same = np.concatenate([lands.sub[1:] == lands.sub[:-1], [False]])
        nxt_gap = np.concatenate([np.diff(lands.time_s), [np.iinfo(np.int64).max]])
        # A re-sale r after a landing when no landing came in (t, t + r].
        resold_t = lands.time_s + r
        resale = ~(nxt_same & (nxt_gap <= r)) & (resold_t >= a_s) & (resold_t < b_s)
        ev = Landings(
            sub=lands.sub[event], time_s=lands.time_s[event], reason=lands.reason[event], key=lands.key[event]
        )
        return ev, lands.sub[resale], resold_t[resale]


def day_of(t: datetime) -> int:
    """Days since 1970-01-01 of a naive UTC time."""
    return int((t - datetime(1970, 1, 1)).total_seconds() // DAY_S)
