"""Churn risk: a generic, calibrated classifier for any table with a yes/no label, plus per-row drivers.

Nothing here knows a dataset. Features are detected from dtypes (numbers, booleans and dates are
numeric; text with few distinct values is categorical; identifiers and constants are dropped),
categories are integer-coded for the gradient-boosting model's native categorical splits (no target
encoding, so nothing leaks from the label), probabilities are calibrated on a split the trees never
saw, and each row's drivers come from one-dimensional partial-dependence tables computed once at fit
time, so explaining a million rows is a few vectorised lookups rather than a million model calls.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from dashboard.errors import VantageError

TRUE_LABELS = frozenset({"1", "1.0", "true", "t", "yes", "y", "churn", "churned", "left", "lost", "positive"})
FALSE_LABELS = frozenset(
    {"0", "0.0", "false", "f", "no", "n", "stay", "stayed", "retained", "active", "negative"}
)
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|key|msisdn|phone|email|imsi|imei)$|^(id|.*id)$", re.IGNORECASE)


class ChurnError(VantageError, ValueError):
    """The table cannot be used to train or score a churn model (bad label, no features...)."""


def parse_label(values: pd.Series) -> np.ndarray:
    """A yes/no column as booleans: true/false, yes/no, 1/0, churned/stayed... (case-insensitive).

    A two-valued column in other words takes its rarer value as the positive class. Missing
    labels are an error: drop those rows first.
    """
    if values.isna().any():
        raise ChurnError(f"label {values.name!r} has {int(values.isna().sum())} missing values")
    if pd.api.types.is_bool_dtype(values):
        return np.asarray(values.to_numpy(dtype=bool))
    text = values.astype(str).str.strip().str.lower()
    distinct = set(text.unique())
    if distinct <= TRUE_LABELS | FALSE_LABELS:
        return np.asarray(text.isin(TRUE_LABELS).to_numpy(dtype=bool))
    if len(distinct) != 2:
        shown = ", ".join(sorted(distinct)[:6])
        raise ChurnError(f"label {values.name!r} must have two values (yes/no, true/false, 1/0); got {shown}")
    counts = text.value_counts()
    positive = counts.index[-1]  # rarer value; ties broken by order of appearance
    return np.asarray((text == positive).to_numpy(dtype=bool))


@dataclass
class FeatureSpec:
    """Which columns the model uses and how: numeric as floats, categorical as integer codes."""

    numeric: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def _as_numeric(s: pd.Series) -> pd.Series | None:
    """The column as floats when it is numeric, boolean, a date or numeric text; else None."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float64")
    if pd.api.types.is_numeric_dtype(s):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = pd.to_datetime(s)
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_localize(None)
        days = (ts - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        return days.astype("float64")
    nonnull = s.dropna()
    if nonnull.empty:
        return None
    parsed = pd.to_numeric(nonnull.astype(str).str.replace(",", "", regex=False).str.strip(), errors="coerce")
    if parsed.notna().mean() >= 0.98:
        return pd.to_numeric(
            s.astype("string").str.replace(",", "", regex=False).str.strip(), errors="coerce"
        ).astype("float64")
    return None


def detect_features(
    frame: pd.DataFrame, *, exclude: Sequence[str] = (), max_categories: int = 64
) -> FeatureSpec:
    """Feature roles from the data alone; every dropped column is listed with the reason."""
    spec = FeatureSpec()
    n = len(frame)
    for name in frame.columns:
        if name in exclude:
            continue
        s = frame[name]
        distinct = s.nunique(dropna=True)
        if distinct <= 1:
            spec.dropped[str(name)] = "constant"
            continue
        numeric = _as_numeric(s)
        if numeric is not None:
            integral = bool(np.all(np.mod(numeric.dropna().to_numpy(), 1) == 0))
            if _ID_NAME.search(str(name)) and integral and distinct >= 0.9 * n:
                spec.dropped[str(name)] = "identifier"
                continue
            spec.numeric.append(str(name))
            continue
        text = s.astype("string").str.strip()
        if distinct >= max(0.5 * n, max_categories) or (_ID_NAME.search(str(name)) and distinct >= 0.9 * n):
            spec.dropped[str(name)] = "identifier or free text"
            continue
        counts = text.value_counts(dropna=True)
        # Keep the most frequent values; the long tail shares one "other" code.
        cats = [str(c) for c in counts.index[: max_categories - 1]]
        if len(counts) > len(cats):
            cats.append("__other__")
        spec.categorical[str(name)] = cats
    if not spec.names:
        raise ChurnError("no usable feature columns")
    return spec


def encode(frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The feature matrix: numeric columns as floats, categories as codes, missing/unseen as NaN."""
    out = np.full((len(frame), len(spec.names)), np.nan, dtype=np.float64)
    for j, name in enumerate(spec.numeric):
        if name in frame.columns:
            values = _as_numeric(frame[name])
            if values is not None:
                out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    base = len(spec.numeric)
    for k, (name, cats) in enumerate(spec.categorical.items()):
        if name not in frame.columns:
            continue
        text = frame[name].astype("string").str.strip()
        codes = pd.Categorical(text, categories=[c for c in cats if c != "__other__"]).codes.astype(
            np.float64
        )
        codes[codes < 0] = np.nan
        if "__other__" in cats:
            codes[np.isnan(codes) & text.notna().to_numpy()] = len(cats) - 1
        out[:, base + k] = codes
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)), dtype=float)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=float)


@dataclass
class _Dependence:
    """One feature's partial dependence (mean log-odds) over a grid, centred on the training mean."""

    grid: np.ndarray
    values: np.ndarray
    missing: float
    categorical: bool


@dataclass
class ChurnModel:
    """A fitted churn model: encoder, gradient boosting, calibrator and driver tables."""

    spec: FeatureSpec
    estimator: HistGradientBoostingClassifier
    calibrator: IsotonicRegression | LogisticRegression | None
    dependence: list[_Dependence]
    importance: dict[str, float]
    label: str = "churn"
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return self.spec.names

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype=float)

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibrator is None:
            return raw
        if isinstance(self.calibrator, IsotonicRegression):
            return np.asarray(self.calibrator.predict(raw), dtype=float)
        return np.asarray(self.calibrator.predict_proba(_logit(raw).reshape(-1, 1))[:, 1], dtype=float)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive label for each row."""
        return self._calibrate(self._raw(encode(frame, self.spec)))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per row and feature, the log-odds that feature's value adds against a typical row."""
        out = np.empty(x.shape, dtype=np.float32)
        for j, dep in enumerate(self.dependence):
            col = x[:, j]
            missing = np.isnan(col)
            if dep.categorical:
                idx = np.where(missing, 0, col).astype(np.int64).clip(0, len(dep.values) - 1)
                vals = dep.values[idx]
            else:
                vals = np.interp(np.where(missing, dep.grid[0], col), dep.grid, dep.values)
            out[:, j] = np.where(missing, dep.missing, vals)
        return out

    def score(self, frame: pd.DataFrame, *, top: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated risk, and per row the ``top`` features pushing it up (indices, risk points).

        A driver's impact is how much lower the row's risk would be with that feature at a typical
        value (from the partial-dependence tables); indices are -1 where fewer than ``top``
        features push the risk up.
        """
        x = encode(frame, self.spec)
        raw = self._raw(x)
        risk = self._calibrate(raw)
        contrib = self.contributions(x)
        k = min(top, contrib.shape[1])
        if k == 0:
            return risk, np.empty((len(x), 0), np.int64), np.empty((len(x), 0), np.float32)
        part = np.argpartition(-contrib, k - 1, axis=1)[:, :k]
        part_vals = np.take_along_axis(contrib, part, axis=1)
        order = np.argsort(-part_vals, axis=1)
        idx = np.take_along_axis(part, order, axis=1)
        logodds = np.take_along_axis(part_vals, order, axis=1)
        z = _logit(raw)[:, None]
        impact = (_sigmoid(z) - _sigmoid(z - logodds)).astype(np.float32)
        # Drivers worth naming: at least a tenth of a percentage point of risk.
        positive = (logodds > 0) & (impact >= 1e-3)
        return risk, np.where(positive, idx, -1), np.where(positive, impact, 0.0).astype(np.float32)

    def describe_drivers(self, frame: pd.DataFrame, idx: np.ndarray, impact: np.ndarray) -> list[str]:
        """Drivers as one JSON text per row: ``[{"feature", "value", "impact"}, ...]``."""
        names = np.array(self.features, dtype=object)
        cols: list[np.ndarray] = []
        for j in range(idx.shape[1]):
            feat = names[np.maximum(idx[:, j], 0)]
            feat[idx[:, j] < 0] = None
            cols.append(feat)
        out: list[str] = []
        shown = {name: frame[name].to_numpy(dtype=object) for name in self.features if name in frame.columns}
        for r in range(len(idx)):
            items = []
            for j in range(idx.shape[1]):
                f = cols[j][r]
                if f is None:
                    continue
                v = shown[f][r] if f in shown else None
                if isinstance(v, float | np.floating):
                    v = None if math.isnan(v) else round(float(v), 3)
                elif isinstance(v, np.integer | np.bool_):
                    v = v.item()
                elif v is not None and not isinstance(v, str | int | bool):
                    v = str(v)
                items.append({"feature": f, "value": v, "impact": round(float(impact[r, j]), 4)})
            out.append(json.dumps(items, ensure_ascii=False))
        return out

    def top_features(self, n: int = 10) -> list[tuple[str, float]]:
        return sorted(self.importance.items(), key=lambda kv: -kv[1])[:n]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        joblib.dump(self, buf, compress=3)
        return buf.getvalue()

    @staticmethod
    def from_bytes(blob: bytes) -> ChurnModel:
        # Only ever loads models this code wrote into the operator's own store (a trusted source).
        model = joblib.load(io.BytesIO(blob))
        if not isinstance(model, ChurnModel):
            raise ChurnError("stored object is not a churn model")
        return model


def _dependence(
    est: HistGradientBoostingClassifier,
    x: np.ndarray,
    spec: FeatureSpec,
    *,
    sample: int,
    grid_points: int,
    rng: np.random.Generator,
) -> tuple[list[_Dependence], np.ndarray]:
    """Partial dependence of every feature on a sample, centred so the sample's mean is zero."""
    s = x[rng.choice(len(x), size=min(sample, len(x)), replace=False)]
    n_num = len(spec.numeric)
    deps: list[_Dependence] = []
    spread = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        col = x[:, j]
        present = col[~np.isnan(col)]
        categorical = j >= n_num
        if categorical:
            grid = np.arange(len(spec.categorical[spec.names[j]]), dtype=float)
        else:
            grid = (
                np.unique(np.quantile(present, np.linspace(0, 1, grid_points)))
                if len(present)
                else np.zeros(1)
            )
        points = np.append(grid, np.nan)
        stacked = np.repeat(s[None, :, :], len(points), axis=0)
        stacked[:, :, j] = points[:, None]
        z = _logit(est.predict_proba(stacked.reshape(-1, x.shape[1]))[:, 1]).reshape(len(points), len(s))
        curve = z.mean(axis=1)
        values, missing = curve[:-1], float(curve[-1])
        # Centre on the sample's own values: a typical row has contributions near zero.
        own = s[:, j]
        if categorical:
            own_vals = np.where(np.isnan(own), missing, values[np.nan_to_num(own, nan=0).astype(int)])
        else:
            own_vals = np.where(
                np.isnan(own), missing, np.interp(np.nan_to_num(own, nan=grid[0]), grid, values)
            )
        centre = float(own_vals.mean())
        spread[j] = float(own_vals.std())
        deps.append(
            _Dependence(grid=grid, values=values - centre, missing=missing - centre, categorical=categorical)
        )
    return deps, spread


def fit(
    frame: pd.DataFrame,
    y: np.ndarray,
    *,
    label: str = "churn",
    seed: int = 0,
    spec: FeatureSpec | None = None,
    calibration_size: float = 0.2,
) -> ChurnModel:
    """Fit gradient boosting on most rows and a calibrator on the rest; build the driver tables."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        raise ChurnError("the label needs both classes among the training rows")
    spec = spec or detect_features(frame)
    x = encode(frame, spec)
    n = len(x)
    large = n >= 5_000
    idx_fit, idx_cal = train_test_split(
        np.arange(n), test_size=calibration_size, random_state=seed, stratify=y
    )
    estimator = HistGradientBoostingClassifier(
        learning_rate=0.05 if not large else 0.1,
        max_iter=300 if not large else 500,
        max_leaf_nodes=15 if not large else 31,
        min_samples_leaf=20 if not large else 100,
        l2_regularization=1.0,
        categorical_features=np.arange(x.shape[1]) >= len(spec.numeric),
        early_stopping=large,
        random_state=seed,
    )
    estimator.fit(x[idx_fit], y[idx_fit])
    raw_cal = estimator.predict_proba(x[idx_cal])[:, 1]
    y_cal = y[idx_cal]
    calibrator: IsotonicRegression | LogisticRegression
    # Isotonic needs many examples of each class; with few, a two-parameter (Platt) fit is safer
    # and, being monotone, keeps the ranking (AUC) of the trees intact.
    if min(y_cal.sum(), (~y_cal).sum()) >= 500:
        calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        calibrator.fit(raw_cal, y_cal)
    else:
        calibrator = LogisticRegression(C=100.0)
        calibrator.fit(_logit(raw_cal).reshape(-1, 1), y_cal)
    rng = np.random.default_rng(seed)
    deps, spread = _dependence(estimator, x[idx_fit], spec, sample=500, grid_points=24, rng=rng)
    importance = {name: round(float(v), 4) for name, v in zip(spec.names, spread, strict=True)}
    return ChurnModel(
        spec=spec,
        estimator=estimator,
        calibrator=calibrator,
        dependence=deps,
        importance=importance,
        label=label,
    )


def lift(y: np.ndarray, p: np.ndarray, fraction: float = 0.1) -> float:
    """Positive rate among the ``fraction`` highest-risk rows over the overall positive rate."""
    y = np.asarray(y, dtype=float)
    base = y.mean()
    if base == 0:
        return float("nan")
    k = max(1, math.ceil(len(y) * fraction))
    top = np.argsort(-np.asarray(p), kind="stable")[:k]
    return float(y[top].mean() / base)


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Held-out metrics: ROC AUC, PR AUC, Brier score, log loss, top-decile lift, base rate."""
    y = np.asarray(y, dtype=bool)
    both = bool(y.any() and not y.all())
    return {
        "roc_auc": round(float(roc_auc_score(y, p)), 4) if both else float("nan"),
        "pr_auc": round(float(average_precision_score(y, p)), 4) if both else float("nan"),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "log_loss": round(float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[False, True])), 4),
        "lift_top_decile": round(lift(y, p, 0.1), 3),
        "base_rate": round(float(y.mean()), 4),
        "mean_predicted": round(float(np.mean(p)), 4),
        "n": len(y),
        "positives": int(y.sum()),
    }


@dataclass
class TrainResult:
    """A model with its held-out metrics."""

    model: ChurnModel
    metrics: dict[str, Any]

    def report(self, top: int = 10) -> str:
        m = self.metrics
        lines = [
            f"label: {self.model.label}    features: {len(self.model.features)}"
            f" ({len(self.model.spec.numeric)} numeric, {len(self.model.spec.categorical)} categorical)",
        ]
        if m.get("dropped_missing_labels"):
            lines.append(f"rows left out for a missing label: {m['dropped_missing_labels']}")
        if m["n_test"]:
            lines += [
                f"rows: {m['n_train']} train, {m['n_test']} held out ({m['positives']} positive,"
                f" base rate {m['base_rate']:.3f})",
                f"held-out ROC AUC:        {m['roc_auc']:.4f}",
                f"held-out PR AUC:         {m['pr_auc']:.4f}",
                f"held-out Brier score:    {m['brier']:.4f}",
                f"held-out log loss:       {m['log_loss']:.4f}",
                f"lift in the top decile:  {m['lift_top_decile']:.2f}x",
            ]
        else:
            lines.append(
                f"rows: {m['n_train']} train, none held out ({m['positives']} positive, base rate"
                f" {m['base_rate']:.3f}): trained on every row, so there are no held-out metrics"
            )
        lines.append("top features (spread of their effect on risk, log-odds):")
        lines += [f"  {name:<32} {value:.3f}" for name, value in self.model.top_features(top)]
        if self.model.spec.dropped:
            lines.append(
                "dropped columns: " + ", ".join(f"{k} ({v})" for k, v in self.model.spec.dropped.items())
            )
        return "\n".join(lines)


def train_table(
    frame: pd.DataFrame, label: str, *, test_size: float = 0.25, seed: int = 0, drop_missing: bool = False
) -> TrainResult:
    """Train on any table with a yes/no ``label`` column; metrics come from a stratified held-out split.

    ``test_size`` 0 trains on every row (no held-out metrics). Rows with no label are refused,
    naming them, unless ``drop_missing`` leaves them out (and the metrics count them).
    """
    if label not in frame.columns:
        raise ChurnError(f"no column {label!r}; columns are: {', '.join(map(str, frame.columns))}")
    if not 0 <= test_size < 1:
        raise ChurnError(
            f"test size: expected a share from 0 (train on every row) to below 1, got {test_size:g}"
        )
    missing = frame[label].isna().to_numpy()
    if missing.any() and not drop_missing:
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(missing)[:5])  # +2: the header is line 1
        raise ChurnError(
            f"label {label!r} is missing on {int(missing.sum())} of {len(frame)} rows (lines {rows}"
            f"{', ...' if missing.sum() > 5 else ''}): fill them, or leave them out"
            " (drop_missing, --drop-missing-labels)"
        )
    frame = frame.loc[~missing].reset_index(drop=True)
    y = parse_label(frame[label])
    features = frame.drop(columns=[label])
    spec = detect_features(features)
    if test_size == 0:
        model = fit(features, y, label=label, seed=seed, spec=spec)
        metrics: dict[str, Any] = {
            "n": len(frame),
            "positives": int(y.sum()),
            "base_rate": float(y.mean()),
        }
        tr, te = np.arange(len(frame)), np.arange(0)
        split = "none: trained on every row"
    else:
        try:
            tr, te = train_test_split(
                np.arange(len(frame)), test_size=test_size, random_state=seed, stratify=y
            )
        except ValueError as err:
            raise ChurnError(
                f"test size {test_size:g} cannot be split by label from {len(frame)} rows: {err}"
            ) from None
        model = fit(features.iloc[tr], y[tr], label=label, seed=seed, spec=spec)
        metrics = evaluate(y[te], model.predict_proba(features.iloc[te]))
        split = "stratified random"
    metrics.update(
        n_train=len(tr),
        n_test=len(te),
        split=split,
        dropped_missing_labels=int(missing.sum()),
        top_features=dict(model.top_features(10)),
    )
    model.metrics = metrics
    return TrainResult(model=model, metrics=metrics)
