"""Retention offers on the simulator: the measured uplift (treated vs hold-out churn) against the true effect.

One seed of the simulated operator runs through the real path on a SQLite store, on a simulated clock:

- preparation, as ``vantage run`` prepares a fresh store (dashboard/scheduler.py, step by step): the
  connector's ``--backfill-days`` of history, a first queue refresh, the churn model trained and every
  line scored, the queue ranked again;
- then every ``--step-hours`` for ``--days``: the connector's run up to the clock (Ingestor), the queue
  refresh (``refresh_queue``) and a playbook evaluation after it, as the scheduler runs them (new open
  incidents record the lines they hit with their churn risk as last scored, ``line_exposures``); churn
  scoring (``score_subscribers``; ``retrain_and_score`` once a week); a second evaluation, which sees
  the lines whose fresh risk crossed the band; a delivery pass (``Deliverer``) to in-process loopback
  sinks. Each SMS offer the sink receives is handed to the same connector instance the ingest reads
  (its inbox is in memory), received at the simulated now (not the sink's wall-clock time);
- then ``--follow-days`` more of the connector alone, the loop off, so the churn of late decisions lands.

Only the ``retention-offer`` playbook of playbooks.yaml runs (its trigger ``churn_risk_crossed`` with
the band of ``--band``); offers, hold-out (20 %, a hash of the line) and contact policy are as shipped,
except quiet hours, which are off so the simulated clock never defers a message.

Knobs:

- ``incident_rate_per_resource_day`` 0.05 (default 0.008, as vantage.yaml's demo): enough incidents;
- ``--band`` 0.05, as playbooks.yaml ships it: the churn model (7-day horizon) scores few lines above
  0.1 on this operator (its baseline churn is about 1.2 % a month), and a band of 0.3 is crossed by
  almost no line;
- the ``kpis`` stream is not read: at 20,000 lines its 15-minute samples of every cell cost more than
  all the rest (280 s to load the 28-day backfill, about 10 s per simulated day after it, and each
  scoring pass reads their daily roll-up: about 65 s instead of 3); without them the queue takes an
  incident's cells as fully degraded (the impact rules' ``assumed_share``) and the churn model learns
  from incidents, tickets and churn history. Nothing the comparison needs depends on them.

Measured: ``measure_uplift(conn, "retention-offer", window_days=W, now=end)`` with W = 28 + 1 + 21 = 50
days (an offer acts on the churn decisions of the 28 days after the day it arrived; a decision lands as
a churn event 3 to 21 days later), on the decisions at least W days old at the end.

Truth: for every line the measurement counts (first decision per line, treated and held out), at its
decision time t (``actions.created_at``, which is also when its offer reached the simulator):
``sim.churn_probability([line], t, 29, treated=False) - ...(treated=True)``, the drop of the probability
of a churn decision in the 29 days after the day of t that an offer sent at t causes (acceptance folded
in). Its mean over all those lines is the intention-to-treat effect the randomised comparison
estimates (``true_effect``); the means over each arm are given too. The measurement counts churn
events, so it misses what the truth counts for lines that had already decided to leave before t
(their churn lands in the window in both arms): ``true_effect_measurable`` sets their effect to 0.
Two small departures remain, of opposite signs: churn decisions after the offer's span that still land
within W are counted in both arms, and treated lines that stayed are a little more exposed to them
(towards a smaller measured effect); a treated line whose risk crosses the band again more than 30 days
later (the step's ``dedupe``) gets a second offer within its window, a held-out line never
(``lines_offered_twice``; towards a larger one).

Decisions bunch up on the steps that retrain the model (``decisions_on_retrain_steps``): a line's risk
at the hit was scored by the previous model, its risk now by the new one. The hold-out is a hash of the
line, so the comparison is not biased by it.

Run: ``.venv/bin/python bench/retention.py [--seed 1] [--subscribers 20000] [--days 60] [--band 0.05]
[--step-hours 6] [--follow-days 50] [--keep]``. Progress goes to stderr; the last line is one JSON object.
The defaults take about 23 minutes on two cores (35 each when two seeds run side by side): a 6-hour
step costs about 5.4 s, half of it the churn scoring pass (``score_subscribers`` over 20,000 lines),
and a weekly retrain about 22 s. ``--step-hours 12`` takes 12 minutes and decides about a quarter
fewer lines (fewer incidents are seen open by an evaluation).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py and bench/connectors.py share their names with the standard library's ``queue`` and
# the ``connectors`` package: move this folder behind the standard library on the import path, then
# put the repository in front.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import resource
import shutil
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select

from connectors.actions.loopback import LoopbackSinks, Received
from connectors.simulator import SimulatorConnector
from connectors.simulator.faults import DAY_S, to_s
from connectors.simulator.inbox import line_of_subscriber_id
from dashboard import analytics
from dashboard.auth.keys import stored_secret
from dashboard.config import (
    ActionConfig,
    ConnectorConfig,
    PlaybooksConfig,
    Settings,
    read_yaml_mapping,
)
from dashboard.context import Context
from dashboard.incidents import kpi_labels, refresh_queue
from dashboard.ingest import Ingestor
from dashboard.playbooks import (
    LINK_SECRET,
    Deliverer,
    Loop,
    PlaybookFile,
    evaluate,
    measure_uplift,
    parse_playbooks,
)
from dashboard.playbooks.uplift import TREATED_STATES
from dashboard.store import Store
from dashboard.store.schema import actions, churn_events, line_exposures, offer_events

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = datetime(2026, 1, 5)  # a Monday: the end of the backfilled history
PLAYBOOK = "retention-offer"
#: Every stream of the simulator but the KPI samples (see the module's docstring).
STREAMS = ["topology", "customers", "faults", "tickets", "churn", "billing"]
#: The SMS action as vantage.yaml ships it, at the loopback sinks.
ACTIONS = [ActionConfig(name="sms", type="sms_http", loopback=True, rate_per_s=100)]
RETRAIN_EVERY = timedelta(days=7)
#: Days after the day of the decision whose churn decisions the truth counts: the offer's span
#: (dissatisfaction_lookback_days, 28) and one more day.
TRUTH_DAYS = 29


class Clock:
    """The simulated clock every part reads: naive UTC."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def retention_book(band: float) -> PlaybookFile:
    """playbooks.yaml with the retention playbook alone, its band set, quiet hours off."""
    file = ROOT / "playbooks.yaml"
    raw = read_yaml_mapping(file, "playbooks")
    raw["playbooks"] = [p for p in raw["playbooks"] if p.get("name") == PLAYBOOK]
    if not raw["playbooks"]:
        raise SystemExit(f"{file}: no playbook named {PLAYBOOK}")
    raw["playbooks"][0]["trigger"]["band"] = band
    raw.setdefault("contact_policy", {})["quiet_hours"] = None
    return parse_playbooks(raw, file=str(file), actions=ACTIONS)


class Inboxer:
    """The sinks' ``on_message``: each SMS offer reaches the simulated customer at the simulated now."""

    def __init__(self, sim: SimulatorConnector, clock: Clock) -> None:
        self.sim = sim
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, msg: Received) -> None:
        raw = msg.data.get("metadata")
        meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
        offer = meta.get("offer") or msg.headers.get("x-vantage-offer")
        if msg.channel != "sms" or not offer:
            with self._lock:
                self.counts["other"] += 1
            return
        reached = self.sim.receive(
            "offer",
            at=self.clock.t,  # msg.at is the wall clock; the simulator lives on the simulated one
            address=msg.to,
            subscriber_id=meta.get("subscriber_id"),
            offer=str(offer),
            key=msg.key,
        )
        with self._lock:
            self.counts["offers"] += 1
            self.counts["reached" if reached else "unreached"] += 1


class RetentionBench:
    """One seed: the store, the connector, the loop and the sinks, driven on the simulated clock."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.clock = Clock(ANCHOR)
        self.causal: dict[str, float] = {"incident_rate_per_resource_day": args.incident_rate}
        if args.churn_base is not None:
            self.causal["churn_base_daily"] = args.churn_base
        self.tmp = tempfile.mkdtemp(prefix="vantage-retention-")
        url = f"sqlite:///{self.tmp}/retention.db"
        self.settings = Settings(
            database_url=url,
            connectors=[
                ConnectorConfig(
                    name="simulator",
                    type="simulator",
                    interval=args.step_hours * 3600,
                    options={
                        "seed": args.seed,
                        "subscribers": args.subscribers,
                        "days": args.backfill_days,
                        "anchor": ANCHOR.isoformat(),
                        "causal": self.causal,
                    },
                )
            ],
            actions=ACTIONS,
            playbooks=PlaybooksConfig(enabled=True, loopback=True),
        )
        self.store = Store(url)
        self.store.upgrade()
        self.ctx = Context.build(self.settings, store=self.store, clock=self.clock)
        self.labels = kpi_labels(self.ctx)
        sim = self.settings.connectors[0].build(self.clock)
        assert isinstance(sim, SimulatorConnector)
        self.sim = sim
        sim.start()
        self.ingestor = Ingestor(self.store, clock=self.clock, limits=self.settings.ingest)
        self.loop = Loop(
            book=retention_book(args.band),
            actions={a.name: a for a in ACTIONS},
            currency=self.settings.currency,
            public_url=self.settings.playbooks.public_url,
            secret=stored_secret(self.store, LINK_SECRET, now=self.clock.t),
        )
        self.inbox = Inboxer(sim, self.clock)
        self.sinks = LoopbackSinks(on_message=self.inbox).start()
        self.deliverer = Deliverer(
            self.store,
            ACTIONS,
            self.settings.playbooks,
            clock=self.clock,
            loopback_options=self.sinks.action_options(),
        )
        self.times: defaultdict[str, float] = defaultdict(float)
        self.decided: Counter[str] = Counter()
        self.on_retrain = 0  # decisions of steps that retrained the model
        self.models: list[float | None] = []
        self.retrains = 0
        self.risks: list[float] = []
        self.steps = 0
        self.last_retrain = self.clock.t

    # --- the jobs, as the scheduler runs them ---

    def _timed(self, name: str, fn: Any, *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            self.times[name] += time.perf_counter() - t0

    def _ingest(self) -> None:
        summary = self.ingestor.run(self.sim, streams=STREAMS)
        if summary.status != "success":
            raise RuntimeError(f"simulator run {summary.status}: {summary.error}")

    def _queue(self) -> None:
        refresh_queue(
            self.store,
            self.ctx.scoring,
            now=self.clock.t,
            currency=self.settings.currency,
            labels=self.labels,
        )

    def _decide(self) -> Counter[str]:
        with self.store.begin() as conn:
            return evaluate(conn, self.loop, now=self.clock.t).decided

    def _retrain(self) -> dict[str, Any]:
        report: dict[str, Any] = self._timed(
            "retrain", analytics.retrain_and_score, self.store, now=self.clock.t
        )
        self.last_retrain = self.clock.t
        if "version" in report:
            self.models.append(report.get("metrics", {}).get("roc_auc"))
        return report

    def prepare(self) -> float:
        """The store made ready as vantage run prepares it (without the KPI steps); seconds taken."""
        t0 = time.perf_counter()
        self._timed("prepare_ingest", self._ingest)
        self._timed("prepare_queue", self._queue)
        self._retrain()
        self._timed("prepare_queue", self._queue)
        self.times["retrain"] = 0.0
        return time.perf_counter() - t0

    def step(self) -> Counter[str]:
        """One step with the loop on: ingest, queue and playbooks, scoring, playbooks, delivery."""
        self.steps += 1
        self.clock.t += timedelta(hours=self.args.step_hours)
        self._timed("ingest", self._ingest)
        self._timed("queue", self._queue)
        decided: Counter[str] = self._timed("evaluate", self._decide)
        retrained = self.clock.t - self.last_retrain >= RETRAIN_EVERY
        if retrained:
            self.retrains += 1
            scored = self._retrain()["scored"]
        else:
            scored = self._timed("score", analytics.score_subscribers, self.store, now=self.clock.t)
        if scored.get("mean_risk") is not None:
            self.risks.append(float(scored["mean_risk"]))
        after: Counter[str] = self._timed("evaluate", self._decide)
        decided.update(after)
        while self._timed("deliver", self.deliverer.run_once).claimed:
            pass
        if retrained:
            self.on_retrain += after["queued"] + after["held_out"]
        self.decided.update(decided)
        return decided

    def follow(self, days: float) -> None:
        """The connector alone for ``days`` more, the loop off."""
        end = self.clock.t + timedelta(days=days)
        while self.clock.t < end:
            self.clock.t = min(self.clock.t + timedelta(hours=self.args.follow_step_hours), end)
            self._timed("follow", self._ingest)

    # --- the figures ---

    def measure(self) -> dict[str, Any]:
        args, end = self.args, self.clock.t
        window = float(args.window_days)
        with self.store.connect() as conn:
            up = measure_uplift(conn, PLAYBOOK, window_days=window, now=end)
            states = {
                s: int(n)
                for s, n in conn.execute(
                    select(actions.c.state, func.count())
                    .where(actions.c.playbook == PLAYBOOK)
                    .group_by(actions.c.state)
                )
            }
            first_rows = _first_decisions(conn, end - timedelta(days=window))
            exposures = int(conn.execute(select(func.count()).select_from(line_exposures)).scalar() or 0)
            vof = conn.execute(
                select(offer_events.c.subscriber_id, offer_events.c.offer).where(
                    offer_events.c.outcome == "accepted", offer_events.c.id.like("VOF-%")
                )
            ).all()
            sent = conn.execute(
                select(actions.c.subscriber_id, actions.c.offer, actions.c.cost).where(
                    actions.c.playbook == PLAYBOOK, actions.c.state == "sent"
                )
            ).all()
            churns = int(conn.execute(select(func.count()).select_from(churn_events)).scalar() or 0)
            lines_decided = int(
                conn.execute(
                    select(func.count(func.distinct(actions.c.subscriber_id))).where(
                        actions.c.playbook == PLAYBOOK, actions.c.state.in_(("sent", "held_out"))
                    )
                ).scalar()
                or 0
            )
        treated_lines = {s for s, arm, _ in first_rows if arm == "treated"}
        t0 = time.perf_counter()
        truth = true_effect(self.sim, first_rows)
        self.times["truth"] += time.perf_counter() - t0
        accepted_lines = {(r.subscriber_id, r.offer) for r in vof}
        receipts = [r for r in self.sim.inbox.receipts if r.kind == "offer"]
        per_line = Counter(s for s, _, _ in sent)
        steps = max(self.steps, 1)
        loop_s = sum(self.times[k] for k in ("ingest", "queue", "score", "retrain", "evaluate", "deliver"))
        contains = None
        if up.ci_low is not None and up.ci_high is not None and truth["true_effect"] is not None:
            contains = bool(up.ci_low <= truth["true_effect"] <= up.ci_high)
        out: dict[str, Any] = {
            "seed": args.seed,
            "subscribers": args.subscribers,
            "days": args.days,
            "follow_days": args.follow_days,
            "step_hours": args.step_hours,
            "band": args.band,
            "causal": self.causal,
            "window_days": window,
            "treated": up.treated,
            "holdout": up.holdout,
            "treated_churned": up.treated_churned,
            "holdout_churned": up.holdout_churned,
            "treated_rate": _r(up.treated_rate),
            "holdout_rate": _r(up.holdout_rate),
            "effect": _r(up.effect),
            "ci_low": _r(up.ci_low),
            "ci_high": _r(up.ci_high),
            **{k: _r(v) if isinstance(v, float) else v for k, v in truth.items() if k != "n"},
            "ci_contains_truth": contains,
            "truth_lines": truth["n"],
            "decisions": states,
            "decisions_on_retrain_steps": self.on_retrain,
            "lines_decided": lines_decided,
            "holdout_share": _r(up.holdout / (up.treated + up.holdout)) if up.treated + up.holdout else None,
            "exposures": exposures,
            "offers_reached_simulator": self.inbox.counts["reached"],
            "offers_not_reached": self.inbox.counts["unreached"],
            "offers_accepted_inbox": sum(r.accepted for r in receipts),
            "offers_accepted_events": len(vof),
            "treated_accepted": len(treated_lines & {s for s, _ in accepted_lines}),
            # measure_uplift's own count: treated lines with any accepted offer event, the
            # operator's own offers (ids OFR-) included, at any time.
            "uplift_accepted": up.accepted,
            "lines_offered_twice": sum(1 for n in per_line.values() if n > 1),
            "cost_treated": up.cost,
            "cost_sent": round(sum(float(c or 0) for _, _, c in sent), 2),
            "cost_accepted": round(sum(float(c or 0) for s, o, c in sent if (s, o) in accepted_lines), 2),
            "churn_events": churns,
            "model_auc": [_r(a, 3) for a in self.models],
            "mean_risk": _r(float(np.mean(self.risks)) if self.risks else None),
            "steps": self.steps,
            "step_s": round(loop_s / steps, 2),
            "step_parts_s": {
                k: round(self.times[k] / steps, 3)
                for k in ("ingest", "queue", "score", "evaluate", "deliver")
            },
            "retrains": self.retrains,
            "retrain_s": round(self.times["retrain"] / max(1, self.retrains), 1),
            "loop_s": round(loop_s, 1),
            "follow_s": round(self.times["follow"], 1),
            "truth_s": round(self.times["truth"], 1),
            "peak_rss_mb": _peak_rss_mb(),
        }
        if window > args.follow_days:
            out["note"] = (
                f"follow-days {args.follow_days} < window {window:g}: only decisions made at least "
                f"{window:g} days before the end are measured"
            )
        return out

    def close(self) -> None:
        self.deliverer.close()
        self.sinks.stop()
        self.sim.close()
        self.store.engine.dispose()
        if self.args.keep:
            _say(f"store kept at {self.tmp}/retention.db")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    wall0 = time.perf_counter()
    bench = RetentionBench(args)
    try:
        prepare_s = bench.prepare()
        _say(f"seed {args.seed}: prepared in {prepare_s:.0f} s (model AUC {bench.models})")
        steps = round(args.days * 24 / args.step_hours)
        every = 1 if args.progress else max(1, round(5 * 24 / args.step_hours))
        t0 = time.perf_counter()
        for k in range(steps):
            bench.step()
            if (k + 1) % every == 0:
                _say(
                    f"seed {args.seed}: day {(k + 1) * args.step_hours / 24:g} of {args.days}: "
                    f"{dict(bench.decided)}, offers reached {bench.inbox.counts['reached']}, "
                    f"{(time.perf_counter() - t0) / (k + 1):.1f} s a step"
                )
        bench.follow(args.follow_days)
        out = bench.measure()
        out["prepare_s"] = round(prepare_s, 1)
        out["wall_s"] = round(time.perf_counter() - wall0, 1)
        return out
    finally:
        bench.close()


def _first_decisions(conn: Any, before: datetime) -> list[tuple[str, str, datetime]]:
    """(line, arm, decided at) of each line's first decision, as measure_uplift counts them."""
    a = actions.c
    rows = conn.execute(
        select(a.subscriber_id, a.state, a.created_at).where(
            a.playbook == PLAYBOOK,
            a.offer.is_not(None),
            a.subscriber_id.is_not(None),
            a.created_at <= before,
        )
    ).all()
    first: dict[str, tuple[str, datetime]] = {}
    for r in sorted(rows, key=lambda r: r.created_at):
        if r.state in TREATED_STATES or r.state == "held_out":
            first.setdefault(
                r.subscriber_id, ("holdout" if r.state == "held_out" else "treated", r.created_at)
            )
    return [(s, arm, at) for s, (arm, at) in first.items()]


def true_effect(sim: SimulatorConnector, rows: list[tuple[str, str, datetime]]) -> dict[str, Any]:
    """The simulator's true drop of the churn-decision probability an offer at each line's decision
    time causes: mean over all lines, per arm, and with lines already leaving at t counted as 0."""
    if not rows:
        return {
            "n": 0,
            "true_effect": None,
            "true_effect_treated_arm": None,
            "true_effect_holdout_arm": None,
            "true_effect_measurable": None,
            "leaving_at_decision": 0,
        }
    by_time: dict[datetime, list[int]] = defaultdict(list)
    for i, (_, _, at) in enumerate(rows):
        by_time[at].append(i)
    effect = np.zeros(len(rows))
    base = np.zeros(len(rows))
    for at, idx in sorted(by_time.items()):
        ids = [rows[i][0] for i in idx]
        untreated = sim.churn_probability(ids, at, TRUTH_DAYS, treated=False)
        treated = sim.churn_probability(ids, at, TRUTH_DAYS, treated=True)
        effect[idx] = untreated - treated
        base[idx] = untreated
    leaving = _leaving(sim, rows)
    arm = np.array([r[1] for r in rows])

    def mean_of(which: str) -> float | None:
        mask = arm == which
        return float(effect[mask].mean()) if mask.any() else None

    return {
        "n": len(rows),
        "true_effect": float(effect.mean()),
        "true_effect_treated_arm": mean_of("treated"),
        "true_effect_holdout_arm": mean_of("holdout"),
        "true_effect_measurable": float((effect * ~leaving).mean()),
        "true_untreated_decision_p": float(base.mean()),
        "leaving_at_decision": int(leaving.sum()),
    }


def _leaving(sim: SimulatorConnector, rows: list[tuple[str, str, datetime]]) -> np.ndarray:
    """Per line: whether a churn decision taken before its decision time lands after it (the line
    is leaving whatever it is sent)."""
    exp = sim.experience
    lag_days = int(np.ceil(exp.lag_max_s / DAY_S)) + 1
    lines = np.array([line_of_subscriber_id(sim.world, s) for s, _, _ in rows], dtype=np.int64)
    t_s = np.array([to_s(at) for _, _, at in rows], dtype=np.int64)
    out = np.zeros(len(rows), dtype=bool)
    for d in range(int(t_s.min()) // DAY_S - lag_days, int(t_s.max()) // DAY_S + 1):
        day = exp.decisions(d)
        if not len(day.sub):
            continue
        decided_s = day.landing_s  # landing; the decision itself is on day d
        k = np.searchsorted(day.sub, lines)
        k = np.minimum(k, len(day.sub) - 1)
        hit = day.sub[k] == lines
        # Decided on day d, before t (day d < day of t, or the same day: a decision that day is not
        # the offer's to change either), landing at or after t.
        out |= hit & (d <= t_s // DAY_S) & (decided_s[k] >= t_s)
    return out


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(float(v), digits)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--subscribers", type=int, default=20000)
    ap.add_argument("--days", type=int, default=60, help="days with the retention loop on")
    ap.add_argument("--band", type=float, default=0.05, help="the trigger's churn-risk band")
    ap.add_argument("--step-hours", type=float, default=6.0)
    ap.add_argument("--follow-days", type=int, default=50, help="days after the loop, for churn to land")
    ap.add_argument("--follow-step-hours", type=float, default=24.0)
    ap.add_argument("--backfill-days", type=int, default=28)
    ap.add_argument("--window-days", type=float, default=50.0, help="measure_uplift's window")
    ap.add_argument("--incident-rate", type=float, default=0.05, help="failures per resource-day")
    ap.add_argument("--churn-base", type=float, default=None, help="churn_base_daily (default 0.0004)")
    ap.add_argument("--progress", action="store_true", help="a line per step on stderr")
    ap.add_argument("--keep", action="store_true", help="keep the store and say where it is")
    return ap


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    if not 0 < args.band < 1:
        ap.error("--band is a churn probability, between 0 and 1")
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
