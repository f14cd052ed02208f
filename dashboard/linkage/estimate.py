"""How much a driver KPI moves a target KPI: lagged two-way fixed-effects regressions over a panel.

A panel is a DataFrame with one row per entity (cell, site, ...) and period: ``entity_id``,
``period_start``, one column per KPI and optional weight and control columns. For a driver and a
target the target is regressed on the driver lagged by 0..max_lag periods, one regression per lag:

    target[e, t] = b * driver[e, t - lag] + c' controls[e, t - lag] + a[e] + d[t] + error

* ``a[e]`` (entity fixed effects) absorbs what differs between cells for good (size, load, town);
  ``d[t]`` (period fixed effects) absorbs what moves every cell at once (weekday, holidays,
  network-wide trends). Both are removed by a weighted within transform (alternating projections,
  exact for unbalanced panels).
* Controls are the traffic, the target's other declared drivers and the technical KPIs that co-move
  with the driver (chosen by ``dashboard.linkage.run.link_controls``), so ``b`` is a partial effect:
  a drop-rate effect is not the latency or packet loss of the same incidents.
* Weighted by the lines served (a cell of 500 lines says more about tickets per line than one of
  5); standard errors are cluster-robust by entity (errors of one cell may be correlated over
  time; or by a coarser ``cluster`` column, e.g. the site whose cells share subscribers), by the
  delete-one-cluster jackknife, with t quantiles on clusters - 1 degrees of freedom.

The best lag is the one with the strongest evidence (largest |t|); its p-value is adjusted for the
lags tried (Bonferroni) before the strength is judged, so a null link does not turn strong by
picking the luckiest lag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

Strength = Literal["strong", "moderate", "weak", "contradicted", "no_data"]
STRENGTHS: tuple[str, ...] = ("strong", "moderate", "weak", "contradicted", "no_data")
STRONG_P = 0.001
"""Adjusted p-value below which a link with the expected sign is strong."""
MODERATE_P = 0.05
"""Adjusted p-value below which it is moderate (and, with the wrong sign, contradicted)."""
TINY_EFFECT = 0.02
"""A typical driver move (1 sd, after fixed effects) that moves the target by less than this share
of its typical move is a tiny effect: weak, however sure we are of it."""
MIN_N = 30
MIN_CLUSTERS = 5
BINS = 20


@dataclass(frozen=True)
class LagFit:
    """One lag's regression: the effect per step of the driver and its 95 % interval."""

    lag: int
    effect: float
    ci_low: float
    ci_high: float
    se: float
    t: float
    p_value: float
    n: int
    clusters: int
    r2: float


@dataclass
class LinkResult:
    """A measured link: what kpi_links stores, plus the lag in periods."""

    driver: str
    target: str
    step: float
    strength: Strength
    sentence: str
    n: int = 0
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    lag: int | None = None
    p_value: float | None = None
    r2: float | None = None
    scope: str = "all"
    declared: bool = True
    expected: str | None = None
    level: str = "cell"
    grain_s: int = 86400
    evidence: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    @property
    def lag_s(self) -> int | None:
        return None if self.lag is None else self.lag * self.grain_s

    def row(self, computed_at: datetime) -> dict[str, Any]:
        """The kpi_links row."""
        return {
            "driver": self.driver,
            "target": self.target,
            "scope": self.scope,
            "declared": self.declared,
            "expected": self.expected,
            "level": self.level,
            "grain_s": int(self.grain_s),
            "step": float(self.step),
            "effect": self.effect,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "lag_s": self.lag_s,
            "n": int(self.n),
            "p_value": self.p_value,
            "strength": self.strength,
            "sentence": self.sentence,
            "evidence": self.evidence,
            "since": self.since,
            "until": self.until,
            "computed_at": computed_at,
        }


@dataclass(frozen=True)
class WhatIf:
    """The expected change of the target for a change of the driver, with its 95 % interval."""

    change: float
    expected: float
    low: float
    high: float
    lag: int | None


def what_if(link: LinkResult, change: float) -> WhatIf:
    """The target's expected change when the driver changes by ``change`` (its own units).

    Linear in the measured effect; outside the range the panel covered it is an extrapolation.
    """
    if link.effect is None or link.ci_low is None or link.ci_high is None:
        nan = float("nan")
        return WhatIf(change, nan, nan, nan, None)
    k = change / link.step
    a, b = k * link.ci_low, k * link.ci_high
    return WhatIf(change, k * link.effect, min(a, b), max(a, b), link.lag)


# --- the regression ------------------------------------------------------------------------------


def _demean(
    m: np.ndarray, ent: np.ndarray, per: np.ndarray, w: np.ndarray, *, tol: float = 1e-9, max_iter: int = 500
) -> np.ndarray:
    """Weighted within transform for entity and period effects (alternating projections)."""
    out = m.astype(float).copy()
    n_e, n_p = int(ent.max()) + 1, int(per.max()) + 1
    we = np.bincount(ent, weights=w, minlength=n_e)
    wp = np.bincount(per, weights=w, minlength=n_p)
    we[we == 0] = 1.0
    wp[wp == 0] = 1.0
    scale = np.sqrt((w[:, None] * out**2).sum(axis=0)) + 1e-300
    for _ in range(max_iter):
        before = out.copy()
        for j in range(out.shape[1]):
            col = out[:, j]
            col -= (np.bincount(ent, weights=w * col, minlength=n_e) / we)[ent]
            col -= (np.bincount(per, weights=w * col, minlength=n_p) / wp)[per]
        change = np.sqrt((w[:, None] * (out - before) ** 2).sum(axis=0)) / scale
        if change.max() < tol:
            break
    return out


def _t_quantile(df: int, alpha: float = 0.05) -> float:
    return float(special.stdtrit(df, 1 - alpha / 2))


def _fit(
    y: np.ndarray, x: np.ndarray, w: np.ndarray, cluster: np.ndarray, n_absorbed: int
) -> tuple[np.ndarray, np.ndarray, float, int] | None:
    """WLS of demeaned y on demeaned x: coefficients, cluster-jackknife covariance, R2, clusters.

    The covariance is the delete-one-cluster jackknife (CR3): each cluster's influence on the
    coefficients is taken with its own leverage, so a few cells that carry most of the variation
    of a driver (the handful an incident hit) do not make the interval look tighter than it is;
    the plain sandwich (CR1) understates it in that case.
    """
    n, k = x.shape
    xw = x * w[:, None]
    bread = x.T @ xw
    if np.linalg.matrix_rank(bread) < k or n - k - n_absorbed <= 0:
        return None
    inv = np.linalg.inv(bread)
    beta = inv @ (xw.T @ y)
    e = y - x @ beta
    order = np.argsort(cluster, kind="stable")
    bounds = np.flatnonzero(np.diff(cluster[order])) + 1
    deltas = []
    for rows in np.split(order, bounds):
        xg, xwg = x[rows], xw[rows]
        bg = bread - xg.T @ xwg
        try:
            deltas.append(np.linalg.solve(bg, xwg.T @ e[rows]))
        except np.linalg.LinAlgError:
            deltas.append(inv @ (xwg.T @ e[rows]))
    d = np.asarray(deltas)
    g = len(d)
    d = d - d.mean(axis=0)
    cov = (g - 1) / g * (d.T @ d)
    sst = float((w * y**2).sum())
    r2 = 1.0 - float((w * e**2).sum()) / sst if sst > 0 else 0.0
    return beta, cov, r2, g


@dataclass
class _Grid:
    """The panel as (entity x period) matrices, so lags are shifts along the period axis."""

    entities: np.ndarray
    periods: pd.DatetimeIndex
    values: dict[str, np.ndarray]

    @classmethod
    def of(cls, panel: pd.DataFrame, columns: Sequence[str], grain_s: int) -> _Grid:
        ent_code, entities = pd.factorize(panel["entity_id"], sort=True)
        t = pd.to_datetime(panel["period_start"])
        t0 = t.min()
        k = np.rint((t - t0).dt.total_seconds().to_numpy() / grain_s).astype(np.int64)
        n_p = int(k.max()) + 1 if len(k) else 0
        periods = pd.DatetimeIndex([t0 + pd.Timedelta(seconds=grain_s * i) for i in range(n_p)])
        values: dict[str, np.ndarray] = {}
        for c in dict.fromkeys(columns):
            mat = np.full((len(entities), n_p), np.nan)
            mat[ent_code, k] = pd.to_numeric(panel[c], errors="coerce").to_numpy(dtype=float)
            values[c] = mat
        return cls(np.asarray(entities), periods, values)

    def lagged(self, column: str, lag: int) -> np.ndarray:
        """``column`` at period t - lag, aligned on period t (NaN where it falls before the panel)."""
        mat = self.values[column]
        if lag == 0:
            return mat
        out = np.full_like(mat, np.nan)
        out[:, lag:] = mat[:, :-lag]
        return out


def _fit_lags(
    grid: _Grid,
    driver: str,
    target: str,
    max_lag: int,
    controls: Sequence[str],
    lagged_controls: Sequence[str],
    weight: str | None,
    step: float,
    cluster: str | None = None,
) -> tuple[list[LagFit], dict[str, Any]] | None:
    """One distributed-lag regression: the driver and the lagged controls at every lag 0..max_lag.

    Each lag's coefficient is the effect of the driver at that lag with its other lags (and the
    other drivers at every lag) held fixed, so an effect spread over two days is not counted twice.
    """
    y = grid.values[target]
    lags = range(max_lag + 1)
    cols = [grid.lagged(driver, lag) for lag in lags]
    for c in lagged_controls:
        cols += [grid.lagged(c, lag) for lag in lags]
    cols += [grid.values[c] for c in controls]
    w = grid.values[weight] if weight else np.ones_like(y)
    ok = np.isfinite(y) & np.isfinite(w) & (w > 0)
    for col in cols:
        ok &= np.isfinite(col)
    if cluster is not None:
        ok &= np.isfinite(grid.values[cluster])
    n = int(ok.sum())
    if n < MIN_N:
        return None
    ent_idx, per_idx = np.nonzero(ok)
    ent = pd.factorize(ent_idx)[0]
    per = pd.factorize(per_idx)[0]
    wv = w[ok]
    wv = wv / wv.mean()
    m = np.column_stack([y[ok], *(col[ok] for col in cols)])
    dm = _demean(m, ent, per, wv)
    yd, xd = dm[:, 0], dm[:, 1:]
    n_drv = len(lags)
    if any(np.abs(xd[:, j]).max() <= 1e-12 for j in range(n_drv)):
        return None
    # Controls constant after the fixed effects would make X singular: leave them out.
    keep = list(range(n_drv)) + [j for j in range(n_drv, xd.shape[1]) if np.abs(xd[:, j]).max() > 1e-12]
    xd = xd[:, keep]
    n_absorbed = int(ent.max()) + int(per.max())
    groups = ent if cluster is None else pd.factorize(grid.values[cluster][ok])[0]
    fitted = _fit(yd, xd, wv, groups, n_absorbed)
    if fitted is None:
        return None
    beta, cov, r2, clusters = fitted
    if clusters < MIN_CLUSTERS:
        return None
    df = clusters - 1
    q = _t_quantile(df)
    fits = []
    for j, lag in enumerate(lags):
        b = float(beta[j]) * step
        se = float(np.sqrt(max(cov[j, j], 0.0))) * step
        t = b / se if se > 0 else (np.inf if b else 0.0)
        p = float(2 * special.stdtr(df, -abs(t))) if np.isfinite(t) else 0.0
        fits.append(LagFit(lag, b, b - q * se, b + q * se, se, float(t), p, n, clusters, r2))
    best = max(fits, key=lambda f: (abs(f.t), -f.lag))
    # The residualised driver (at the best lag) and target, everything else partialled out
    # (Frisch-Waugh), for the binned scatter.
    j = best.lag
    others = np.delete(xd, j, axis=1)
    xr, yr = xd[:, j], yd
    if others.shape[1]:
        ow = others * wv[:, None]
        gram = others.T @ ow
        xr = xr - others @ np.linalg.lstsq(gram, ow.T @ xr, rcond=None)[0]
        yr = yr - others @ np.linalg.lstsq(gram, ow.T @ yr, rcond=None)[0]
    mx = float(np.average(m[:, 1 + j], weights=wv))
    my = float(np.average(m[:, 0], weights=wv))
    data = {"x": xr + mx, "y": yr + my, "w": wv, "x_sd": _wsd(xr, wv), "y_sd": _wsd(yd, wv), "best": best}
    return fits, data


def _wsd(v: np.ndarray, w: np.ndarray) -> float:
    return float(np.sqrt(np.average(v**2, weights=w)))


def _binned(x: np.ndarray, y: np.ndarray, w: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Weighted means of the residualised target in quantile bins of the residualised driver."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return [{"x": float(np.average(x, weights=w)), "y": float(np.average(y, weights=w)), "n": len(x)}]
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        sel = idx == b
        if sel.any():
            out.append(
                {
                    "x": float(np.average(x[sel], weights=w[sel])),
                    "y": float(np.average(y[sel], weights=w[sel])),
                    "n": int(sel.sum()),
                }
            )
    return out


# --- judging and saying it -----------------------------------------------------------------------


def _strength(effect: float, p_adj: float, expected: str | None, tiny: bool) -> Strength:
    sign = np.sign(effect)
    wrong = expected is not None and sign == (-1 if expected == "positive" else 1)
    if p_adj < MODERATE_P and wrong:
        return "contradicted"
    if tiny or p_adj >= MODERATE_P:
        return "weak"
    return "strong" if p_adj < STRONG_P else "moderate"


def _num(v: float) -> str:
    """A number in about 2-3 significant digits, with thousands separators."""
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:,.0f}"
    digits = max(0, 2 - int(np.floor(np.log10(a))))
    return f"{v:,.{digits}f}"


def _signed(v: float) -> str:
    return ("+" if v > 0 else "") + _num(v)


_PERIODS = {"h": "hour", "d": "day", "s": "second"}


def _quantity(value: float, label: str, unit: str, *, exact: bool = False) -> str:
    """ "+0.1 pp dropped call rate", "+10 ms latency", "+2.3 tickets per 1,000 subscribers per day"."""
    text = f"{value:+g}" if exact else _signed(value)
    if unit.startswith("%"):
        return f"{text} pp {label.lower()}"
    head, _, per = unit.partition("/")
    if per and (head == "currency" or head.lower() in label.lower()):
        # "tickets/day" on "Tickets per 1,000 subscribers": the label names what is counted.
        return f"{text} {label.lower()} per {_PERIODS.get(per, per)}"
    return f"{text} {unit} {label.lower()}" if unit else f"{text} {label.lower()}"


def _lag_text(lag: int, grain_s: int) -> str:
    if grain_s == 86400:
        return "same day" if lag == 0 else f"{lag} day{'s' if lag > 1 else ''} later"
    if grain_s == 3600:
        return "same hour" if lag == 0 else f"{lag} hour{'s' if lag > 1 else ''} later"
    return "same period" if lag == 0 else f"{lag} period{'s' if lag > 1 else ''} later"


def _grain_word(grain_s: int) -> str:
    return {86400: "day", 3600: "hour", 900: "quarter-hour", 604800: "week"}.get(grain_s, "period")


def sentence(result: LinkResult, names: Mapping[str, tuple[str, str]] | None = None) -> str:
    """One plain-language sentence, e.g. "+0.1 pp dropped call rate -> +2.3 tickets ... : strong"."""
    names = names or {}
    d_label, d_unit = names.get(result.driver, (result.driver, ""))
    t_label, t_unit = names.get(result.target, (result.target, ""))
    cause = _quantity(result.step, d_label, d_unit, exact=True)
    if result.strength == "no_data" or result.effect is None:
        return f"{cause} -> {t_label.lower()}: not enough data to measure (n = {result.n:,})."
    assert result.ci_low is not None and result.ci_high is not None and result.lag is not None
    effect = _quantity(result.effect, t_label, t_unit)
    obs = f"{result.level}-{_grain_word(result.grain_s)}s"
    return (
        f"{cause} -> {effect} (95% CI {_num(result.ci_low)} to {_num(result.ci_high)}), "
        f"{_lag_text(result.lag, result.grain_s)}, n = {result.n:,} {obs}: {result.strength}"
    )


# --- the public estimator ------------------------------------------------------------------------


def estimate_link(
    panel: pd.DataFrame,
    driver: str,
    target: str,
    *,
    step: float = 1.0,
    expected: str | None = None,
    max_lag: int = 0,
    controls: Sequence[str] = (),
    lagged_controls: Sequence[str] = (),
    weight: str | None = None,
    grain_s: int = 86400,
    declared: bool = True,
    scope: str = "all",
    level: str = "cell",
    names: Mapping[str, tuple[str, str]] | None = None,
    cluster: str | None = None,
) -> LinkResult:
    """Measure ``driver -> target`` on a panel (see the module docstring).

    ``controls`` enter at the target's period (traffic); ``lagged_controls`` at the driver's (the
    target's other drivers, so that their effects at that lag are held fixed). ``names`` maps KPI
    names to (label, unit) for the sentence. ``cluster`` names a numeric column grouping entities
    whose errors may be correlated (cells of one site sharing subscribers); default the entity.
    """
    controls = [c for c in controls if c in panel.columns and c not in (driver, target)]
    lagged_controls = [c for c in lagged_controls if c in panel.columns and c not in (driver, target)]
    since = until = None
    if len(panel):
        since = pd.Timestamp(panel["period_start"].min()).to_pydatetime()
        until = (pd.Timestamp(panel["period_start"].max()) + pd.Timedelta(seconds=grain_s)).to_pydatetime()
    base = LinkResult(
        driver=driver,
        target=target,
        step=step,
        strength="no_data",
        sentence="",
        scope=scope,
        declared=declared,
        expected=expected,
        level=level,
        grain_s=grain_s,
        since=since,
        until=until,
    )
    if driver not in panel.columns or target not in panel.columns or len(panel) == 0:
        base.sentence = sentence(base, names)
        return base
    cols = [driver, target, *controls, *lagged_controls] + [c for c in (weight, cluster) if c]
    grid = _Grid.of(panel, cols, grain_s)
    fitted = _fit_lags(
        grid,
        driver,
        target,
        max(0, min(max_lag, len(grid.periods) - 2)),
        controls,
        lagged_controls,
        weight,
        step,
    )
    if fitted is None:
        base.n = int(panel[[driver, target]].notna().all(axis=1).sum())
        base.sentence = sentence(base, names)
        return base
    fits, data = fitted
    best: LagFit = data["best"]
    p_adj = min(1.0, best.p_value * len(fits))
    # The interval of the chosen lag is simultaneous over the lags tried (Bonferroni), so picking
    # the luckiest lag does not make a null link's interval miss zero more than 5 % of the time.
    half = _t_quantile(best.clusters - 1, 0.05 / len(fits)) * best.se
    typical = abs(best.effect / step) * float(data["x_sd"])
    tiny = typical < TINY_EFFECT * float(data["y_sd"])
    strength = _strength(best.effect, p_adj, expected, tiny)
    result = replace(
        base,
        effect=best.effect,
        ci_low=best.effect - half,
        ci_high=best.effect + half,
        lag=best.lag,
        n=best.n,
        p_value=p_adj,
        r2=best.r2,
        strength=strength,
    )
    slope = best.effect / step
    mx = float(np.average(data["x"], weights=data["w"]))
    my = float(np.average(data["y"], weights=data["w"]))
    result.evidence = {
        "lag_profile": [
            {
                "lag": f.lag,
                "lag_s": f.lag * grain_s,
                "effect": f.effect,
                "ci_low": f.ci_low,
                "ci_high": f.ci_high,
                "p_value": f.p_value,
                "n": f.n,
            }
            for f in fits
        ],
        "binned": _binned(data["x"], data["y"], data["w"]),
        "fit": {"slope": slope, "intercept": my - slope * mx},
        "p_unadjusted": best.p_value,
        "lags_tried": len(fits),
        "clusters": best.clusters,
        "r2_within": best.r2,
        "controls": [*lagged_controls, *controls],
        "weight": weight,
    }
    result.sentence = sentence(result, names)
    return result
