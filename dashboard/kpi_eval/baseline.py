"""Seasonal baselines for KPI series and the anomaly test against them (pure numpy, no store I/O).

Each series (one KPI of one cell, site or region) keeps, per quarter hour of the day on weekdays and
on weekends (192 slots), a robust level and a robust scale. A new value is first compared with its
slot's level (one step ahead, so the value cannot hide itself), then folded in by robust exponential
smoothing: the residual is clipped at ``clip`` scales before it moves the level (a Huber step) and
the scale is an exponentially weighted mean absolute residual, clipped the same way. An anomaly
therefore moves its own baseline by at most ``alpha * clip`` scales per period, so a degradation of
an hour is still seen at its end, while a lasting change (a new site nearby, a retuned antenna)
becomes the new normal over weeks.
This is robust exponential smoothing per seasonal slot (Gelper, Fried and Croux, 2010), chosen over
static thresholds, a non-seasonal baseline and hour-of-week slots by the figures in docs/kpis.md
(``bench/anomaly.py``): hour-of-week slots learn from 4 values a week and blur the daily curve
within the hour; quarter-hour slots by day type learn from 5 (weekdays) and do not.

State is three arrays per series and slot (level, scale as float32; count as uint16): 20,000 cells
x 8 KPIs x 192 slots is 31 million slots, about 290 MB, and one 15-minute pass touches one slot of
each series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SLOTS = 192  # quarter hours of a weekday (0-95), then of a weekend day (96-191)
#: E|r| = sigma * sqrt(2 / pi) for normal residuals: this turns a mean absolute residual into a sigma.
_ABS_TO_SIGMA = float(np.sqrt(np.pi / 2))


def slot_of(times: np.ndarray) -> np.ndarray:
    """The slot of each time (numpy datetime64, in the operator's local time as given)."""
    quarter = np.asarray(times, dtype="datetime64[m]").astype(np.int64) // 15
    day = quarter // 96
    weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays
    return (quarter % 96 + 96 * weekend).astype(np.int16)


@dataclass
class Baseline:
    """Per series and hour-of-week slot: a robust level and scale, learnt one value at a time."""

    series: int
    slots: int = SLOTS  # columns kept; a pass that touches few slots maps them to fewer columns
    alpha: float = 0.2  # weight of a new value once warm (5 a weekday slot a week: about a week)
    clip: float = 2.5  # residuals beyond this many scales count as this many
    warmup: int = 3  # values a slot needs before it may flag anything
    rel_floor: float = 0.01  # the scale is at least this share of the level (flat series)
    abs_floor: float = 1e-6
    level: np.ndarray = field(init=False)
    scale: np.ndarray = field(init=False)
    count: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.level = np.zeros((self.series, self.slots), dtype=np.float32)
        self.scale = np.zeros((self.series, self.slots), dtype=np.float32)
        self.count = np.zeros((self.series, self.slots), dtype=np.uint16)

    def _floor(self, level: np.ndarray) -> np.ndarray:
        return np.asarray(np.maximum(np.abs(level) * self.rel_floor, self.abs_floor))

    def expected(self, idx: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Level, scale and whether the slot is warm, for series ``idx`` at ``slot``."""
        level = self.level[idx, slot]
        scale = np.maximum(self.scale[idx, slot], self._floor(level))
        return level, scale, self.count[idx, slot] >= self.warmup

    def update(self, idx: np.ndarray, slot: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compare ``value`` with its slot, then learn from it. Returns the z-score (residual over
        scale) and the relative deviation (residual over level), both NaN where the slot is not warm
        or the value is missing. ``idx`` must not repeat within one call."""
        idx = np.asarray(idx, dtype=np.int64)
        slot = np.asarray(slot, dtype=np.int64)
        x = np.asarray(value, dtype=np.float64)
        level, scale, warm = self.expected(idx, slot)
        level = level.astype(np.float64)
        scale = scale.astype(np.float64)
        seen = np.isfinite(x)
        resid = np.where(seen, x - level, 0.0)
        z = np.where(seen & warm, resid / scale, np.nan)
        n = self.count[idx, slot].astype(np.float64)
        # Warming up: running mean and mean absolute deviation from it (no clipping yet: no scale).
        cold = seen & ~warm
        w = np.where(cold, 1.0 / (n + 1.0), self.alpha)
        bound = self.clip * scale
        step = np.where(cold, resid, np.clip(resid, -bound, bound))
        new_level = level + w * step
        dev = np.where(cold, np.where(n > 0, np.abs(resid), 0.0), np.minimum(np.abs(resid), bound))
        prior_abs = np.where(n > 0, scale / _ABS_TO_SIGMA, 0.0)
        new_scale = ((1 - w) * prior_abs + w * dev) * _ABS_TO_SIGMA
        keep = seen
        self.level[idx[keep], slot[keep]] = new_level[keep]
        self.scale[idx[keep], slot[keep]] = new_scale[keep]
        self.count[idx[keep], slot[keep]] = np.minimum(n[keep] + 1, 65535).astype(np.uint16)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(np.isfinite(z) & (level != 0), resid / np.abs(level), np.nan)
        return z, rel


@dataclass(frozen=True)
class AnomalyRule:
    """When a value counts as anomalous: far enough from its baseline in the bad direction, for long
    enough, on enough traffic."""

    direction: str = "below"  # below, above or both
    min_z: float = 3.5  # scales from the level
    min_rel: float = 0.2  # and this share of the level (so a tiny, very regular series is not noise)
    periods: int = 2  # consecutive periods before it counts (2 x 15 min)
    min_traffic: float = 0.0  # periods with less traffic than this never count

    def breach(self, z: np.ndarray, rel: np.ndarray, traffic: np.ndarray | None = None) -> np.ndarray:
        """Whether each value is out of its band (one period; NaN z never is)."""
        if self.direction == "below":
            hit = (z <= -self.min_z) & (rel <= -self.min_rel)
        elif self.direction == "above":
            hit = (z >= self.min_z) & (rel >= self.min_rel)
        else:
            hit = (np.abs(z) >= self.min_z) & (np.abs(rel) >= self.min_rel)
        hit &= np.isfinite(z)
        if traffic is not None and self.min_traffic > 0:
            hit &= np.asarray(traffic) >= self.min_traffic
        return np.asarray(hit, dtype=bool)


@dataclass
class Verdicts:
    """Per series, the anomaly state machine: out-of-band and in-band runs, and whether anomalous.

    A series turns anomalous once ``periods`` consecutive periods were out of band and normal again
    after ``clear`` consecutive periods back in band; a period with no value, or whose slot is still
    learning, changes nothing. Rules may differ per series (arrays), so all KPIs go in one pass.
    """

    series: int
    run: np.ndarray = field(init=False)
    calm: np.ndarray = field(init=False)
    anomalous: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.run = np.zeros(self.series, dtype=np.int32)
        self.calm = np.zeros(self.series, dtype=np.int32)
        self.anomalous = np.zeros(self.series, dtype=bool)

    def step(
        self, z: np.ndarray, rel: np.ndarray, hit: np.ndarray, periods: np.ndarray, clear: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance one period (all series); returns which series turned anomalous and which normal."""
        seen = np.isfinite(z)
        self.run = np.where(seen, np.where(hit, self.run + 1, 0), self.run).astype(np.int32)
        self.calm = np.where(seen, np.where(hit, 0, self.calm + 1), self.calm).astype(np.int32)
        now = np.where(self.anomalous, self.calm < clear, self.run >= periods)
        now = np.where(seen, now, self.anomalous)
        opened = now & ~self.anomalous
        closed = ~now & self.anomalous
        self.anomalous = np.asarray(now, dtype=bool)
        return opened, closed


def breach_arrays(
    z: np.ndarray, rel: np.ndarray, sign: np.ndarray, min_z: np.ndarray, min_rel: np.ndarray
) -> np.ndarray:
    """Out of band per series, with per-series rules: ``sign`` -1 below, +1 above, 0 either way."""
    with np.errstate(invalid="ignore"):
        signed_z = np.where(sign == 0, np.abs(z), z * sign)
        signed_rel = np.where(sign == 0, np.abs(rel), rel * sign)
        hit = (signed_z >= min_z) & (signed_rel >= min_rel)
    return np.asarray(hit & np.isfinite(z), dtype=bool)


def advance_runs(runs: np.ndarray, idx: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Count consecutive breaching periods per series (in place) and return the new counts of ``idx``."""
    runs[idx] = np.where(hit, runs[idx] + 1, 0)
    return np.asarray(runs[idx])
