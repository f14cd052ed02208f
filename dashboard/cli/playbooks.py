"""``vantage playbooks check | test FILE | outbox | uplift NAME | deliver``: the closed loop."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from dashboard.auth.keys import stored_secret
from dashboard.cli import common
from dashboard.config import ConfigError
from dashboard.playbooks import LINK_SECRET, ClosedLoop, load_playbooks, measure_uplift, sent_counts
from dashboard.playbooks.fixtures import run_playbook_tests


def _path(args: argparse.Namespace) -> Path:
    return (
        Path(args.playbooks) if getattr(args, "playbooks", None) else common.settings(args).playbooks_path()
    )


def cmd_check(args: argparse.Namespace) -> int:
    settings = common.settings(args)
    path = _path(args)
    try:
        book = load_playbooks(path, actions=settings.actions)
    except ConfigError as err:
        print(f"invalid playbooks:\n{err}", file=sys.stderr)
        return 1
    triggers = Counter(p.trigger.event for p in book.playbooks)
    print(f"{path}: valid, {len(book.playbooks)} playbooks, {len(book.offers)} offers")
    for p in book.playbooks:
        state = "off" if not p.enabled else ("dry run" if p.dry_run or settings.playbooks.dry_run else "on")
        steps = ", ".join(f"{s.name} ({s.action} -> {s.target})" for s in p.steps)
        print(f"  {p.name} [{p.trigger.event}, {state}]: {steps}")
    print(f"  triggers: {dict(triggers)}; hold-out {book.holdout.share:.0%}")
    if not settings.playbooks.enabled:
        print("  note: playbooks are not enabled in the settings (playbooks.enabled: false)")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    settings = common.settings(args)
    try:
        book = None
        try:
            book = load_playbooks(_path(args), actions=settings.actions)
        except ConfigError:
            if not args.playbooks:
                book = None  # the fixture file may name its own
            else:
                raise
        result = run_playbook_tests(args.file, book=book, actions_cfg=settings.actions)
    except ConfigError as err:
        print(f"cannot run playbook tests:\n{err}", file=sys.stderr)
        return 1
    for failure in result.failures:
        print(f"FAILED {result.file}: {failure}")
    state = "SUCCESS" if result.ok else "FAILED"
    print(f"{state}: {result.tests} tests, {result.checks} checks, {len(result.failures)} failed")
    return 0 if result.ok else 1


def cmd_outbox(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    with ctx.store.connect() as conn:
        print(json.dumps(sent_counts(conn), indent=2))
    return 0


def cmd_uplift(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    with ctx.store.connect() as conn:
        u = measure_uplift(conn, args.name, window_days=args.window_days, now=ctx.now())
    out = {
        "playbook": u.playbook,
        "window_days": u.window_days,
        "treated": u.treated,
        "treated_churned": u.treated_churned,
        "holdout": u.holdout,
        "holdout_churned": u.holdout_churned,
        "accepted": u.accepted,
        "effect": u.effect,
        "ci_low": u.ci_low,
        "ci_high": u.ci_high,
        "cost": u.cost,
    }
    print(json.dumps(out, indent=2))
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    loop = ClosedLoop(ctx, secret=stored_secret(ctx.store, LINK_SECRET, now=ctx.now()))
    try:
        if args.evaluate:
            print(json.dumps({"decided": dict(loop.evaluate().decided)}))
        result = loop.deliver()
        print(
            json.dumps(
                {
                    "claimed": result.claimed,
                    "outcomes": dict(result.outcomes),
                    "reclaimed": dict(result.reclaimed),
                }
            )
        )
    finally:
        loop.close()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pb = sub.add_parser(
        "playbooks", help="the closed loop: validate, test, inspect the outbox, measure uplift"
    )
    psub = pb.add_subparsers(dest="playbooks_command", required=True)
    check = psub.add_parser("check", help="validate the playbooks file against the settings' actions")
    check.add_argument("--playbooks", help="playbooks file (default: the configured one)")
    check.set_defaults(func=cmd_check)
    test = psub.add_parser("test", help="run playbook scenario tests (a world in, expected decisions out)")
    test.add_argument("file", help="a YAML file of scenarios (see docs/playbooks.md)")
    test.add_argument("--playbooks", help="playbooks file (default: the file's own, else the configured one)")
    test.set_defaults(func=cmd_test)
    outbox = psub.add_parser("outbox", help="actions in the outbox per state")
    outbox.set_defaults(func=cmd_outbox)
    uplift = psub.add_parser("uplift", help="churn of treated lines vs the hold-out, with a 95%% interval")
    uplift.add_argument("name", help="the playbook")
    uplift.add_argument("--window-days", type=float, default=30.0, help="churn counted within this many days")
    uplift.set_defaults(func=cmd_uplift)
    deliver = psub.add_parser("deliver", help="deliver the outbox once (and evaluate first with --evaluate)")
    deliver.add_argument("--evaluate", action="store_true")
    deliver.set_defaults(func=cmd_deliver)
