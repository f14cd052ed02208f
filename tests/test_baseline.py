"""Seasonal baselines (dashboard/kpi_eval/baseline.py): the slots, learning a daily rhythm, staying
blind to the anomalies they must find, adopting a lasting change, and the anomaly rule."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.kpi_eval.baseline import SLOTS, AnomalyRule, Baseline, advance_runs, slot_of

MONDAY = np.datetime64("2026-01-05T00:00")
Q = np.timedelta64(15, "m")


def rhythm(periods: int) -> np.ndarray:
    """A cell's throughput shape: quiet at night, a busy evening, weekends at 80 %."""
    t = np.arange(periods)
    hour = (t % 96) / 4.0
    weekday = (t // 96) % 7
    daily = 10 + 40 * np.exp(-(((hour - 20.0) / 4.0) ** 2))
    return daily * np.where(weekday >= 5, 0.8, 1.0)


def feed(model: Baseline, values: np.ndarray, start: int = 0) -> np.ndarray:
    """Feed a (series x periods) array period by period; the z-scores, same shape."""
    return feed_both(model, values, start)[0]


def feed_both(model: Baseline, values: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Feed a (series x periods) array period by period; z-scores and relative deviations."""
    series, periods = values.shape
    idx = np.arange(series)
    slots = slot_of(MONDAY + (start + np.arange(periods)) * Q)
    z, rel = np.empty_like(values), np.empty_like(values)
    for p in range(periods):
        z[:, p], rel[:, p] = model.update(idx, np.full(series, slots[p]), values[:, p])
    return z, rel


def test_slots_are_quarter_hours_of_weekdays_then_weekends() -> None:
    times = np.array(
        ["2026-01-05T00:00", "2026-01-05T00:15", "2026-01-09T23:59", "2026-01-10T12:00", "2026-01-11T23:45"],
        dtype="datetime64[m]",
    )
    assert list(slot_of(times)) == [0, 1, 95, 96 + 48, 191]
    assert SLOTS == 192


def test_a_daily_rhythm_is_learnt_per_slot() -> None:
    rng = np.random.default_rng(1)
    periods = 21 * 96
    truth = rhythm(periods)
    values = truth[None, :] * rng.lognormal(0, 0.05, size=(20, periods))
    model = Baseline(20)
    feed(model, values)
    for quarter in (8, 60, 80):  # 02:00, 15:00, 20:00 on a weekday
        level, scale, warm = model.expected(np.arange(20), np.full(20, quarter))
        assert warm.all()
        assert np.allclose(level, truth[quarter], rtol=0.06), (quarter, level.mean(), truth[quarter])
        assert np.all(scale < 0.15 * truth[quarter])


def test_nothing_is_said_before_a_slot_is_warm_and_missing_values_teach_nothing() -> None:
    model = Baseline(1, warmup=3)
    idx, slot = np.array([0]), np.array([5])
    zs = [model.update(idx, slot, np.array([v]))[0][0] for v in (10.0, 11.0, 9.0, 10.0)]
    assert np.isnan(zs[:3]).all() and np.isfinite(zs[3])
    before = (model.level.copy(), model.scale.copy(), model.count.copy())
    z, rel = model.update(idx, slot, np.array([np.nan]))
    assert np.isnan(z[0]) and np.isnan(rel[0])
    assert all(
        np.array_equal(a, b) for a, b in zip(before, (model.level, model.scale, model.count), strict=True)
    )


def test_a_degradation_is_seen_to_its_end_and_barely_moves_the_baseline() -> None:
    rng = np.random.default_rng(2)
    periods = 21 * 96
    values = rhythm(periods)[None, :] * rng.lognormal(0, 0.05, size=(1, periods))
    model = Baseline(1)
    feed(model, values[:, : 20 * 96])
    day = values[:, 20 * 96 :].copy()  # a Saturday: weekend slots
    level_before = model.level[0].copy()
    day[0, 68:76] *= 0.5  # 17:00-19:00 at half the usual throughput
    z = feed(model, day, start=20 * 96)[0]
    assert np.all(z[68:76] < -3.5), z[68:76]
    out = np.abs(z[:68]) >= 3.5
    assert not np.any(out[1:] & out[:-1])  # noise may stray one period, never two in a row
    moved = np.abs(model.level[0, 96 + 68 : 96 + 76] / level_before[96 + 68 : 96 + 76] - 1)
    assert moved.max() < 0.06  # the anomaly taught its own baseline little


def test_a_lasting_change_becomes_the_new_normal() -> None:
    rng = np.random.default_rng(3)
    periods = 42 * 96
    values = rhythm(periods)[None, :] * rng.lognormal(0, 0.05, size=(1, periods))
    values[0, 14 * 96 :] *= 0.7  # a new site takes 30 % of the traffic for good
    z = feed(Baseline(1), values)[0]
    flagged_per_week = [(z[w * 96 * 7 : (w + 1) * 96 * 7] < -3.5).sum() for w in range(6)]
    assert flagged_per_week[2] > 50  # the week of the change
    assert flagged_per_week[5] == 0  # three weeks later it is the normal


def test_clean_series_raise_almost_nothing() -> None:
    rng = np.random.default_rng(4)
    periods = 28 * 96
    values = rhythm(periods)[None, :] * rng.lognormal(0, 0.1, size=(100, periods))
    z, rel = feed_both(Baseline(100), values)
    rule = AnomalyRule()
    runs = np.zeros(100, dtype=np.int16)
    idx = np.arange(100)
    reported = 0
    for p in range(14 * 96, periods):
        reported += int((advance_runs(runs, idx, rule.breach(z[:, p], rel[:, p])) == rule.periods).sum())
    assert reported <= 1  # in 1,400 series-days of 10 % noise


@pytest.mark.parametrize(
    ("direction", "z", "rel", "expected"),
    [
        (
            "below",
            [-5.0, -5.0, 5.0, -2.0, np.nan],
            [-0.5, -0.1, 0.5, -0.5, -0.5],
            [True, False, False, False, False],
        ),
        ("above", [-5.0, 5.0, 5.0], [-0.5, 0.5, 0.1], [False, True, False]),
        ("both", [-5.0, 5.0, 1.0], [-0.5, 0.5, 0.5], [True, True, False]),
    ],
)
def test_the_rule_reads_direction_distance_and_share(
    direction: str, z: list[float], rel: list[float], expected: list[bool]
) -> None:
    rule = AnomalyRule(direction=direction, min_z=3.5, min_rel=0.2)
    assert list(rule.breach(np.array(z), np.array(rel))) == expected


def test_the_rule_ignores_quiet_periods_and_counts_runs() -> None:
    rule = AnomalyRule(min_traffic=5.0)
    hit = rule.breach(np.array([-9.0, -9.0]), np.array([-0.9, -0.9]), traffic=np.array([4.9, 5.0]))
    assert list(hit) == [False, True]
    runs = np.zeros(3, dtype=np.int16)
    idx = np.arange(3)
    for flags in ([1, 1, 0], [1, 0, 1], [1, 1, 1]):
        got = advance_runs(runs, idx, np.array(flags, dtype=bool))
    assert list(got) == [3, 1, 2]
