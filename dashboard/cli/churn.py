"""``vantage churn train | score``: train a churn model on a CSV or the store's history; score the
store's subscribers or a CSV table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.analytics.churn import ChurnError, ChurnModel, TrainResult, train_table
from dashboard.analytics.signals import (
    load_history,
    retrain_and_score,
    save_model,
    score_subscribers,
    train_from_history,
)
from dashboard.cli import common
from dashboard.privacy import csv_safe


def train_csv(
    path: str | Path,
    label: str,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    out: str | Path | None = None,
    drop_missing: bool = False,
) -> TrainResult:
    """Train on a CSV file (any table with a yes/no label column) and optionally save the model."""
    frame = pd.read_csv(path, low_memory=False)
    result = train_table(frame, label, test_size=test_size, seed=seed, drop_missing=drop_missing)
    if out is not None:
        Path(out).write_bytes(result.model.to_bytes())
    return result


def cmd_train(args: argparse.Namespace) -> int:
    if args.csv:
        if not args.label:
            print("error: --label is required with --csv", file=sys.stderr)
            return 2
        try:
            result = train_csv(
                args.csv,
                args.label,
                test_size=0.0 if args.all else args.test_size,
                seed=args.seed,
                out=args.out,
                drop_missing=args.drop_missing_labels,
            )
        except (ChurnError, FileNotFoundError, pd.errors.ParserError, UnicodeDecodeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(result.report())
        if args.out:
            print(f"model written to {args.out}")
        return 0
    ctx = common.context(args)
    try:
        trained = train_from_history(load_history(ctx.store), horizon_days=args.horizon_days, seed=args.seed)
    except ChurnError as err:
        print(f"not trained: {err}", file=sys.stderr)
        return 1
    version = save_model(
        ctx.store, trained.model, trained_on="store", cutoff=trained.test_cutoff, now=ctx.now()
    )
    print(TrainResult(model=trained.model, metrics=trained.metrics).report())
    print(
        f"time split: held-out cutoff {trained.test_cutoff:%Y-%m-%d %H:%M},"
        f" horizon {trained.horizon_days:g} days,"
        f" {trained.metrics['snapshots']} training snapshots"
    )
    print(f"stored as churn model version {version}")
    if args.out:
        Path(args.out).write_bytes(trained.model.to_bytes())
    return 0


def score_csv(path: str | Path, model_path: str | Path, *, top: int = 3) -> pd.DataFrame:
    """The table of ``path`` with ``churn_risk`` and ``churn_drivers`` (JSON) added, scored by the
    model saved at ``model_path`` (``vantage churn train --out``: load only model files you wrote)."""
    model = ChurnModel.from_bytes(Path(model_path).read_bytes())
    frame = pd.read_csv(path, low_memory=False)
    missing = [name for name in model.features if name not in frame.columns]
    if missing:
        raise ChurnError(f"{path}: the model needs column(s) {', '.join(missing)}")
    risk, idx, impact = model.score(frame, top=top)
    out = frame.copy()
    out["churn_risk"] = np.round(risk, 4)
    out["churn_drivers"] = model.describe_drivers(frame, idx, impact)
    return out


def cmd_score(args: argparse.Namespace) -> int:
    if args.csv or args.model:
        if not (args.csv and args.model):
            print("error: --csv and --model go together", file=sys.stderr)
            return 2
        try:
            scored = score_csv(args.csv, args.model, top=args.top)
        except (ChurnError, FileNotFoundError, pd.errors.ParserError, UnicodeDecodeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        scored = scored.map(csv_safe)  # the table came from outside: its text must not run in a spreadsheet
        if args.out:
            scored.to_csv(args.out, index=False)
            print(f"{len(scored)} rows scored, written to {args.out}")
        else:
            scored.to_csv(sys.stdout, index=False)
        return 0
    ctx = common.context(args)
    now = ctx.now()
    report: dict[str, Any] = (
        retrain_and_score(ctx.store, now=now) if args.retrain else score_subscribers(ctx.store, now=now)
    )
    print(json.dumps(report, indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    churn = sub.add_parser("churn", help="train and apply the churn-risk model")
    csub = churn.add_subparsers(dest="churn_command", required=True)

    train = csub.add_parser("train", help="train on a CSV (--csv, --label) or on the store's history")
    train.add_argument("--csv", help="a table with one row per customer and a yes/no label column")
    train.add_argument("--label", help="the label column (yes/no, true/false, 1/0)")
    train.add_argument(
        "--test-size", type=float, default=0.25, help="held-out share for a CSV (default 0.25)"
    )
    train.add_argument(
        "--all", action="store_true", help="train on every row (same as --test-size 0: no held-out metrics)"
    )
    train.add_argument(
        "--drop-missing-labels", action="store_true", help="leave out rows with no label (refused otherwise)"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--horizon-days",
        type=float,
        default=7.0,
        help="store training: churn window after each cutoff (default 7)",
    )
    train.add_argument("--out", help="also write the model to this file (joblib)")
    # SUPPRESS: an absent sub-command option must not hide the main parser's --database-url.
    train.add_argument("--database-url", default=argparse.SUPPRESS, help="store URL")
    train.set_defaults(func=cmd_train)

    score = csub.add_parser(
        "score",
        help="score the store's active subscribers with the latest model (or a CSV with --csv --model)",
    )
    score.add_argument("--retrain", action="store_true", help="retrain from history first")
    score.add_argument("--csv", help="score this table instead of the store")
    score.add_argument("--model", help="a model file written by `vantage churn train --out`")
    score.add_argument("--out", help="write the scored table here (default: standard output)")
    score.add_argument("--top", type=int, default=3, help="drivers per row (default 3)")
    score.add_argument("--database-url", default=argparse.SUPPRESS, help="store URL")
    score.set_defaults(func=cmd_score)
