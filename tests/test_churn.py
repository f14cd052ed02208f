"""The generic churn trainer: labels, feature detection, calibration, drivers and a labelled table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard.analytics.churn import (
    ChurnError,
    ChurnModel,
    detect_features,
    evaluate,
    lift,
    parse_label,
    train_table,
)
from dashboard.cli import main as cli_main
from dashboard.cli.churn import train_csv
from tests.reference import ORIGINS, OWN, payloads


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["Yes", "no", "YES", "No"], [True, False, True, False]),
        ([True, False, False], [True, False, False]),
        (["TRUE", "FALSE"], [True, False]),
        ([1, 0, 0], [True, False, False]),
        (["churned", "active"], [True, False]),
        (["gold", "gold", "lost_cause", "gold"], [False, False, True, False]),  # rarer value is positive
    ],
)
def test_labels_in_any_spelling(values: list[object], expected: list[bool]) -> None:
    assert parse_label(pd.Series(values, name="y")).tolist() == expected


def test_labels_that_are_not_binary_are_refused() -> None:
    with pytest.raises(ChurnError, match="two values"):
        parse_label(pd.Series(["a", "b", "c"], name="y"))
    with pytest.raises(ChurnError, match="missing"):
        parse_label(pd.Series(["yes", None], name="y"))


def test_feature_roles_are_detected_from_the_data() -> None:
    n = 200
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],  # identifier: dropped
            "row_id": np.arange(n),  # numeric identifier: dropped
            "minutes": np.linspace(0, 100, n),
            "plan": ["basic", "gold"] * (n // 2),
            "since": pd.date_range("2024-01-01", periods=n, freq="D"),
            "flag": [True, False] * (n // 2),
            "charges": [f"{v:,.2f}" for v in np.linspace(500, 5000, n)],  # numbers stored as text
            "constant": 1,
        }
    )
    spec = detect_features(frame)
    assert spec.numeric == ["minutes", "since", "flag", "charges"]
    assert list(spec.categorical) == ["plan"]
    assert spec.dropped == {
        "customer_id": "identifier or free text",
        "row_id": "identifier",
        "constant": "constant",
    }


def _synthetic(n: int, seed: int) -> pd.DataFrame:
    """Churn driven by complaints and a bad plan; 'noise' carries nothing."""
    rng = np.random.default_rng(seed)
    complaints = rng.poisson(1.0, n)
    plan = rng.choice(["basic", "premium", "legacy"], n)
    noise = rng.normal(size=n)
    logit = -2.5 + 1.1 * complaints + 1.5 * (plan == "legacy")
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {"complaints": complaints, "plan": plan, "noise": noise, "Churn": np.where(churn, "yes", "no")}
    )


@pytest.mark.slow
def test_trainer_learns_calibrated_risk_and_explains_it() -> None:
    result = train_table(_synthetic(6000, seed=1), "Churn", seed=0)
    m = result.metrics
    assert m["roc_auc"] > 0.75
    assert abs(m["mean_predicted"] - m["base_rate"]) < 0.03  # calibrated on average
    assert m["brier"] < m["base_rate"] * (1 - m["base_rate"])  # better than predicting the base rate
    top = [name for name, _ in result.model.top_features(3)]
    assert top[:2] == ["complaints", "plan"] and top[2] == "noise"

    rows = pd.DataFrame(
        {"complaints": [5, 0, 0], "plan": ["basic", "legacy", "basic"], "noise": [0.0, 0.0, 0.0]}
    )
    risk, idx, impact = result.model.score(rows, top=2)
    names = np.array(result.model.features)
    assert names[idx[0, 0]] == "complaints" and impact[0, 0] > 0.1  # many complaints push row 0 up
    assert names[idx[1, 0]] == "plan" and impact[1, 0] > 0.05  # the legacy plan pushes row 1 up
    assert idx[2, 0] == -1 or impact[2, 0] < 0.02  # a typical low-risk row has no real driver
    assert risk[0] > risk[1] > risk[2]
    drivers = result.model.describe_drivers(rows, idx, impact)
    assert '"feature": "complaints", "value": 5' in drivers[0]


def test_model_round_trips_through_bytes() -> None:
    result = train_table(_synthetic(1500, seed=2), "Churn", seed=0)
    frame = _synthetic(50, seed=3).drop(columns=["Churn"])
    again = ChurnModel.from_bytes(result.model.to_bytes())
    np.testing.assert_allclose(again.predict_proba(frame), result.model.predict_proba(frame))


def test_metrics_worked_by_hand() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    p = np.array([0.9, 0.1, 0.2, 0.1, 0.3, 0.1, 0.2, 0.1, 0.4, 0.35])
    # top decile = 1 row (p=0.9), a churner: 1.0 / base rate 0.2 = 5x
    assert lift(y, p, 0.1) == pytest.approx(5.0)
    m = evaluate(y, p)
    assert m["roc_auc"] == pytest.approx(15 / 16)  # one negative (0.4) outranks one positive (0.35)
    assert m["positives"] == 2 and m["n"] == 10


# The suite's own table (tests/fixtures/churn: 500 customers in the BigML table's columns), then, as
# a conformance run, the real BigML table (tests/reference.py).
@pytest.mark.slow
@pytest.mark.parametrize("origin", ORIGINS)
def test_labelled_table_reaches_the_auc_floor(
    origin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = payloads("churn", origin).path("table")
    result = train_csv(table, "Churn", test_size=0.25, seed=0, out=tmp_path / "model.joblib")
    # No dataset-specific code: columns and label spelling (TRUE/FALSE) are detected. Seed 0 gives
    # 0.96, 5.5x and 0.049 on the suite's table (0.80-0.96 AUC over seeds 0-7: 125 rows held out),
    # 0.90, 6.5x and 0.047 on the BigML one.
    m = result.metrics
    assert m["roc_auc"] >= 0.88
    assert m["lift_top_decile"] > 4
    assert m["brier"] < 0.08
    top = [name for name, _ in result.model.top_features(5)]
    assert {"Total day minutes", "Customer service calls"} <= set(top), top  # the known drivers
    assert (tmp_path / "model.joblib").stat().st_size > 0

    assert cli_main(["churn", "train", "--csv", str(table), "--label", "Churn"]) == 0
    out = capsys.readouterr().out
    auc = float(next(line for line in out.splitlines() if "ROC AUC" in line).split()[-1])
    assert auc >= 0.88 and "lift in the top decile" in out


def test_cli_reports_a_missing_label_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv"
    _synthetic(100, seed=0).to_csv(path, index=False)
    assert cli_main(["churn", "train", "--csv", str(path), "--label", "Exited"]) == 2
    assert "no column 'Exited'" in capsys.readouterr().err


def _table(tmp_path: Path, *, blank_labels: int = 0) -> Path:
    frame = pd.read_csv(payloads("churn", OWN).path("table"))
    if blank_labels:
        frame["Churn"] = frame["Churn"].astype(object)
        frame.loc[frame.index[:blank_labels], "Churn"] = None
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_trains_on_every_row_with_test_size_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _table(tmp_path)
    for flags in (["--test-size", "0"], ["--all"]):
        assert cli_main(["churn", "train", "--csv", str(table), "--label", "Churn", *flags]) == 0
        out = capsys.readouterr().out
        assert "500 train, none held out" in out and "no held-out metrics" in out
    assert cli_main(["churn", "train", "--csv", str(table), "--label", "Churn", "--test-size", "1.5"]) == 2
    assert "expected a share from 0" in capsys.readouterr().err


@pytest.mark.slow
def test_rows_without_a_label_are_refused_unless_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _table(tmp_path, blank_labels=3)
    assert cli_main(["churn", "train", "--csv", str(table), "--label", "Churn"]) == 2
    err = capsys.readouterr().err
    assert "missing on 3 of 500 rows (lines 2, 3, 4)" in err and "--drop-missing-labels" in err
    args = ["churn", "train", "--csv", str(table), "--label", "Churn", "--drop-missing-labels"]
    assert cli_main(args) == 0
    assert "rows left out for a missing label: 3" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_scores_a_table_with_a_saved_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, model, scored = _table(tmp_path), tmp_path / "churn.joblib", tmp_path / "scored.csv"
    assert cli_main(["churn", "train", "--csv", str(table), "--label", "Churn", "--out", str(model)]) == 0
    capsys.readouterr()
    args = ["churn", "score", "--csv", str(table), "--model", str(model), "--out", str(scored)]
    assert cli_main(args) == 0
    assert "500 rows scored" in capsys.readouterr().out
    out = pd.read_csv(scored)
    assert len(out) == 500 and out["churn_risk"].between(0, 1).all()
    # The riskiest rows churned far more often than the rest, and say why.
    top = out.nlargest(50, "churn_risk")
    assert top["Churn"].astype(str).str.lower().isin(["true", "1", "yes"]).mean() > 3 * (
        out["Churn"].astype(str).str.lower().isin(["true", "1", "yes"]).mean()
    )
    assert all(json.loads(d)[0]["feature"] for d in top["churn_drivers"])
    bare = tmp_path / "bare.csv"
    pd.read_csv(table).drop(columns=["Customer service calls"]).to_csv(bare, index=False)
    assert cli_main(["churn", "score", "--csv", str(bare), "--model", str(model)]) == 2
    assert "needs column(s) Customer service calls" in capsys.readouterr().err
