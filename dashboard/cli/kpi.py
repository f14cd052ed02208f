"""``vantage kpi check | test FILE | evaluate [--full]``: the catalogue, threshold rule tests, the job."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from dashboard.cli import common
from dashboard.config import ConfigError
from dashboard.kpi_eval import evaluate
from dashboard.kpi_eval.fixtures import load_rule_file, run_rule_tests
from dashboard.kpis import load_catalogue


def _catalogue_path(args: argparse.Namespace) -> Path:
    if getattr(args, "catalogue", None):
        return Path(args.catalogue)
    return common.settings(args).kpi_definitions_path()


def cmd_check(args: argparse.Namespace) -> int:
    try:
        path = _catalogue_path(args)
        catalogue = load_catalogue(path)
    except ConfigError as err:
        print(f"invalid KPI catalogue:\n{err}", file=sys.stderr)
        return 1
    kinds = Counter(f"{k.domain} {k.type}" for k in catalogue.kpis)
    print(f"{path}: valid, {len(catalogue.kpis)} KPIs")
    for kind, n in sorted(kinds.items()):
        print(f"  {kind}: {n}")
    print(f"  headline: {', '.join(k.name for k in catalogue.kpis if k.headline) or 'none'}")
    with_thresholds = sum(1 for k in catalogue.kpis if k.thresholds.warning or k.thresholds.critical)
    links = sum(len(k.drives) for k in catalogue.kpis)
    print(f"  with thresholds: {with_thresholds}; links (drives): {links}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    try:
        catalogue = None
        if args.catalogue or not _has_own_catalogue(args.file):
            catalogue = load_catalogue(_catalogue_path(args))
        result = run_rule_tests(args.file, catalogue)
    except ConfigError as err:
        print(f"cannot run rule tests:\n{err}", file=sys.stderr)
        return 1
    for failure in result.failures:
        print(f"FAILED {result.file}: {failure}")
    state = "SUCCESS" if result.ok else "FAILED"
    print(f"{state}: {result.tests} tests, {result.checks} checks, {len(result.failures)} failed")
    return 0 if result.ok else 1


def _has_own_catalogue(file: str) -> bool:
    try:
        return load_rule_file(file).catalogue is not None
    except ConfigError:
        return False  # reported by run_rule_tests


def cmd_evaluate(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    result = evaluate(ctx.store, ctx.catalogue, now=ctx.now(), full=args.full)
    print(json.dumps(result.as_dict(), indent=2))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kpi = sub.add_parser("kpi", help="the KPI catalogue: validate, test threshold rules, evaluate")
    ksub = kpi.add_subparsers(dest="kpi_command", required=True)
    check = ksub.add_parser("check", help="validate the KPI catalogue and print a summary")
    check.add_argument("--catalogue", help="catalogue file (default: the configured kpi_definitions)")
    check.set_defaults(func=cmd_check)
    test = ksub.add_parser("test", help="run threshold rule tests (input series, expected statuses)")
    test.add_argument("file", help="a YAML file of tests (see docs/kpis.md)")
    test.add_argument("--catalogue", help="catalogue file (default: the file's own, else the configured one)")
    test.set_defaults(func=cmd_test)
    ev = ksub.add_parser("evaluate", help="bring KPI roll-ups and statuses up to date once")
    ev.add_argument("--full", action="store_true", help="rebuild every roll-up from the sources")
    ev.set_defaults(func=cmd_evaluate)
