"""Closed loop at scale: decision latency after a queue refresh, its cost on the refresh, and outbox delivery.

Builds a fresh store (a SQLite file in a temporary folder, or a disposable schema on the PostgreSQL
server of --database-url) with the simulator's world at --subscribers, churn signals, two KPIs per
cell and enough active alarms for about --incidents incidents (bench/_data.py), runs the real queue
refresh (``dashboard.incidents.refresh_queue``: correlation, impact on cells from the KPIs, SLA
clocks, ranking into ``incident_queue``) and evaluates the shipped ``playbooks.yaml`` after it
(``dashboard.playbooks.evaluate``, as the scheduler does), then measures, in the same run:

- decision latency: the duration of the evaluation (with its commit) right after a refresh, which is
  the time from the end of the refresh to every triggered action being queued. A cold evaluation
  first (it records which lines every open incident hits), then --refreshes refreshes, each
  ``STEP`` simulated minutes after the last, so a batch of SLA clocks enters the 30-minute window
  (sla-breach-enterprise: a ticket, the account managers, the SLA accounts); before each, a few
  critical and major incidents are resolved by clearing their alarms (resolved-apology), the churn
  risk of some lines they hit crosses 0.3 (retention-offer, SMS), and one interval's usual changes
  arrive (alarms raised and cleared, subscribers changed). Then --steady refreshes where nothing
  new fires. p50/p95/max ``decide_ms`` and the decisions of each refresh (``incidents`` is the
  number of active incidents the correlation actually made). One more triggering refresh runs with
  its evaluation under cProfile, outside these figures: ``decide_profile`` gives the cumulative time
  of the evaluation's parts (exposures, triggers, targets, rendering, contact policy);
- the added cost on the queue refresh: the refresh alone (``queue_refresh_ms``) against refresh plus
  evaluation (``with_playbooks_ms``), medians over the same refreshes, and their ``ratio``;
- delivery throughput: the actions the evaluations decided are delivered first (real rendered
  messages), then --messages synthetic actions per channel (e-mail over SMTP, SMS over the HTTP
  gateway, TMF621 tickets) are inserted as ``queued`` rows with unique keys and delivered by
  ``Deliverer.run_once()`` passes until drained, against the loopback sinks started in this process
  (``connectors.actions.loopback``). Reference: the same messages (other keys) sent straight
  through the action type (``Action.send``), no outbox. Outbox and reference alternate in rounds of
  ``ROUND`` messages, so both see the same load from whatever else runs on the machine (the 1-minute
  load average is reported). Each channel's time is split into the deliverer's steps (claim, mark
  sending, send, record); ``cpu_ms_per_msg`` counts every thread of this process (the in-process
  sinks too), ``deliverer_cpu_ms_per_msg`` the delivering thread alone. When the outbox misses
  ``GOAL_MSGS_PER_MIN`` (or with --profile), one drain per channel runs under cProfile and the
  heaviest functions go to stderr and the JSON. --parallel K adds a what-if in the same rounds: K
  deliverers in threads drain the queue together; --child-sinks measures everything again with the
  sinks in a child process (the receivers of a real deployment are elsewhere); --what-if measures
  two changes on their own: e-mail over one kept SMTP connection, and a batch of outcomes recorded
  in one transaction. No action has a rate limit here (the shipped vantage.yaml caps ``sms`` at
  100/s);
- peak RSS.

The dataset's build time is reported apart (``build_s``). The simulated clock starts at 10:00 UTC
(the day before when that is still ahead), outside the contact policy's quiet hours, so customer
messages are due at once. Prints progress to stderr, then one line of JSON.

    .venv/bin/python bench/playbooks.py [--subscribers 1000000] [--incidents 2000] [--refreshes 10]
        [--messages 20000] [--database-url postgresql+psycopg://USER@HOST:PORT/DB] [--keep] [--profile]
        [--steady 3] [--resolve N] [--crossings N] [--parallel K] [--child-sinks] [--what-if]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py shares its name with the standard library's ``queue`` (imported by SQLAlchemy and
# pandas): move this folder behind the standard library on the import path, then put the repository
# in front.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import cProfile
import hashlib
import io
import json
import logging
import multiprocessing
import os
import pstats
import resource
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, create_engine, func, select, text, update

from bench import _data
from connectors.actions import Message, build_action
from connectors.actions.email import SmtpAction, SmtpOptions
from connectors.actions.loopback import LoopbackSinks
from connectors.base import utcnow
from dashboard.config import ActionConfig, PlaybooksConfig
from dashboard.incidents.correlate import ENGINE_SOURCE
from dashboard.incidents.queue import refresh_queue
from dashboard.ingest import Ingestor
from dashboard.kpis import load_catalogue
from dashboard.playbooks import Deliverer, Loop, evaluate, load_playbooks
from dashboard.playbooks.decide import STATE_KEY, Decision, action_key
from dashboard.store import Store
from dashboard.store.schema import (
    actions,
    alarms,
    connector_state,
    incident_alarms,
    incident_queue,
    incidents,
    line_exposures,
    subscriber_signals,
)

ROOT = Path(__file__).resolve().parents[1]
#: Simulated minutes between two measured refreshes (the scheduler's interval is 30 s; a longer
#: step brings a batch of SLA clocks into the 30-minute window at every refresh).
STEP = timedelta(minutes=5)
#: Alarms per active incident once correlated (symptoms, and alarms on one resource, merge): about
#: 2.0 at 20,000 subscribers and 1.8 at 200,000 in this bench's alarm plan.
ALARMS_PER_INCIDENT = 1.9
GOAL_MSGS_PER_MIN = 10_000
GOAL_DECIDE_P95_MS = 5_000
#: Messages per alternating round of outbox, direct (and parallel) sends in the throughput figures.
ROUND = 500
BAND = 0.3  # retention-offer's band in playbooks.yaml
#: The actions the shipped playbooks name, at the loopback sinks, without rate limits.
ACTIONS = [
    ActionConfig(name="tickets", type="tmf621", loopback=True),
    ActionConfig(name="alarms", type="tmf642", loopback=True),
    ActionConfig(name="email", type="smtp", loopback=True),
    ActionConfig(name="sms", type="sms_http", loopback=True),
    ActionConfig(name="chat", type="webhook", loopback=True),
]
CHANNELS = {"email": "email", "sms": "sms", "ticket": "tickets"}  # channel -> configured action


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024, 1)


# --- the store ------------------------------------------------------------------------------------


def open_store(url: str | None, tmp: str) -> tuple[Store, Callable[[], None], str]:
    """A fresh, migrated store, its disposal and where it is: a SQLite file in ``tmp``, or a new
    schema in the PostgreSQL database of ``url``."""
    if url is None:
        path = Path(tmp) / "playbooks.db"
        store = Store(f"sqlite:///{path}")
        store.upgrade()
        return store, store.dispose, str(path)
    schema = f"bench_playbooks_{uuid.uuid4().hex[:10]}"
    store = Store(url, schema=schema)
    admin = create_engine(store.url)

    def drop() -> None:
        store.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    try:
        store.upgrade()
    except Exception:
        drop()
        raise
    return store, drop, f"schema {schema}"


def code_digest() -> str:
    """A digest of the closed loop's code as this run imported it (the figures belong to it)."""
    h = hashlib.sha256()
    for folder in ("dashboard/playbooks", "connectors/actions"):
        for f in sorted((ROOT / folder).glob("*.py")):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def anchor_time() -> datetime:
    """10:00 UTC today, or yesterday when that is still ahead: daytime in the policy's time zone."""
    now = utcnow()
    t = now.replace(hour=10, minute=0, second=0, microsecond=0)
    return t if t <= now else t - timedelta(days=1)


# --- what changes between refreshes ----------------------------------------------------------------


class Happenings:
    """Before each measured refresh: incidents resolved, churn crossings, one interval's changes."""

    def __init__(self, ds: _data.Dataset, store: Store, *, resolve: int, cross: int, seed: int) -> None:
        self.ds, self.store = ds, store
        self.resolve, self.cross = resolve, cross
        self.rng = np.random.default_rng(seed)
        self.changes = _data.Changes(ds, store, seed=seed + 1)
        self.clock = _data.Clock(ds.now)
        self.ingestor = Ingestor(store, clock=self.clock)
        self.sub_index = pd.Index(ds.world.sub_ids)

    def apply(self, t: datetime) -> dict[str, int]:
        done = self.changes.apply(t - timedelta(seconds=20))
        done["resolved"] = self._resolve(t - timedelta(seconds=10))
        done["crossed"] = self._cross(t - timedelta(seconds=5))
        return done

    def _resolve(self, t: datetime) -> int:
        """Clear every alarm of a few critical and major incidents open for more than 30 minutes."""
        i, ia = incidents.c, incident_alarms.c
        with self.store.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    select(i.id)
                    .where(
                        i.source == ENGINE_SOURCE,
                        i.state.in_(("open", "acknowledged")),
                        i.severity.in_(("critical", "major")),
                        i.opened_at <= t - timedelta(minutes=31),
                    )
                    .order_by(i.id)
                )
            ]
            if not ids:
                return 0
            chosen = set(self.rng.choice(ids, size=min(self.resolve, len(ids)), replace=False).tolist())
            members = conn.execute(
                select(ia.incident_id, ia.alarm_id)
                .join(alarms, alarms.c.id == ia.alarm_id)
                .where(ia.source == ENGINE_SOURCE, alarms.c.cleared_at.is_(None))
            ).all()
        alarm_ids = {a for inc, a in members if inc in chosen}
        plan = self.ds.alarms
        pos = np.flatnonzero(plan["id"].isin(alarm_ids).to_numpy() & plan["active"].to_numpy())
        if not len(pos):
            return 0
        plan.loc[plan.index[pos], "active"] = False
        cleared = pd.Series([pd.Timestamp(t)] * len(pos))
        self.clock.t = t
        _data._ingest(
            self.ingestor, [("alarms", _data.alarm_records(self.ds.world, plan.iloc[pos], cleared))]
        )
        return len(chosen)

    def _cross(self, t: datetime) -> int:
        """Re-score some lines an incident hit below the band to above it (what the hourly churn
        scoring writes)."""
        e, sig = line_exposures.c, subscriber_signals.c
        with self.store.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    select(e.subscriber_id)
                    .join(subscriber_signals, sig.subscriber_id == e.subscriber_id)
                    .where(e.risk_at_hit < BAND, sig.churn_risk < BAND)
                    .distinct()
                )
            ]
        if not ids:
            return 0
        take = self.rng.choice(np.asarray(ids, dtype=object), size=min(self.cross, len(ids)), replace=False)
        idx = np.sort(self.sub_index.get_indexer(take.tolist()))
        idx = idx[idx >= 0]
        frame = _data.signal_frame(self.ds.world, idx, self.rng, t)
        frame["churn_risk"] = np.round(self.rng.uniform(BAND + 0.01, 0.7, len(idx)), 4)
        _data.write_signals(self.store, frame, now=t)
        return len(idx)


# --- decisions --------------------------------------------------------------------------------------


def timed_refresh(store: Store, scoring: Any, now: datetime) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = refresh_queue(store, scoring, now=now, currency="EUR")
    return (time.perf_counter() - t0) * 1000, r


def timed_evaluate(store: Store, loop: Loop, now: datetime) -> tuple[float, Any]:
    """The evaluation as the scheduler runs it after a refresh: one transaction, committed."""
    t0 = time.perf_counter()
    with store.begin() as conn:
        result = evaluate(conn, loop, now=now)
    return (time.perf_counter() - t0) * 1000, result


def queue_summary(store: Store, now: datetime) -> dict[str, int]:
    q = incident_queue.c
    with store.connect() as conn:
        rows = conn.execute(
            select(q.state, q.severity, q.sla_accounts, q.sla_deadline, q.sla_breached, q.resolved_at)
        ).all()
    active = [r for r in rows if r.state in ("open", "acknowledged")]
    window = [
        r
        for r in active
        if r.sla_deadline is not None
        and not r.sla_breached
        and 0 < (r.sla_deadline - now).total_seconds() <= 1800
    ]
    return {
        "queued": len(rows),
        "active": len(active),
        "critical_major": sum(r.severity in ("critical", "major") for r in active),
        "with_sla_clock": sum(bool(r.sla_accounts) for r in active),
        "sla_within_30m": len(window),
        "sla_breached": sum(bool(r.sla_breached) for r in active),
        "resolved": sum(r.resolved_at is not None for r in rows),
    }


def decided_by_playbook(store: Store, now: datetime) -> dict[str, int]:
    """What the evaluation at ``now`` inserted, per playbook (every state)."""
    a = actions.c
    with store.connect() as conn:
        return {
            pb: int(n)
            for pb, n in conn.execute(
                select(a.playbook, func.count()).where(a.created_at == now).group_by(a.playbook)
            )
        }


def state_kb(store: Store) -> float:
    with store.connect() as conn:
        value = conn.execute(
            select(connector_state.c.state).where(
                connector_state.c.connector == STATE_KEY[0], connector_state.c.stream == STATE_KEY[1]
            )
        ).scalar()
    return round(len(json.dumps(value or {})) / 1024, 1)


#: The evaluation's parts, by (module file, function) as cProfile names them.
DECIDE_PARTS = {
    "record_exposures": ("decide.py", "_record_exposures"),
    "queue_incidents": ("targets.py", "queue_incidents"),
    "firing": ("decide.py", "_firing"),
    "crossed_lines": ("targets.py", "crossed_lines"),
    "expand": ("decide.py", "_expand"),
    "targets": ("decide.py", "_targets"),
    "affected_lines": ("targets.py", "affected_lines"),
    "account_rows": ("targets.py", "account_rows"),
    "render": ("render.py", "render"),
    "evaluate_condition": ("kpis.py", "evaluate_condition"),
    "new_only": ("decide.py", "_new_only"),
    "apply_policy": ("decide.py", "_apply_policy"),
    "save_state": ("runner.py", "save_state"),
    "load_state": ("runner.py", "load_state"),
}


def decide_profile(prof: cProfile.Profile, wall_ms: float, ev: Any) -> dict[str, Any]:
    raw: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out: dict[str, Any] = {"wall_ms_under_profiler": round(wall_ms, 1), "actions": sum(ev.decided.values())}
    for part, (file, fn) in DECIDE_PARTS.items():
        hits = [v for (f, _, name), v in raw.items() if name == fn and Path(f).name == file]
        if hits:
            out[f"{part}_ms"] = round(1000 * sum(v[3] for v in hits), 1)
            out[f"{part}_calls"] = int(sum(v[1] for v in hits))
    return out


def run_decisions(
    store: Store, ds: _data.Dataset, loop: Loop, args: argparse.Namespace
) -> tuple[dict[str, Any], datetime]:
    scoring = load_catalogue(ROOT / "kpi_definitions.yaml").scoring
    out: dict[str, Any] = {}
    now = ds.now
    ms, first = timed_refresh(store, scoring, now)
    out["cold_queue_refresh_ms"] = round(ms, 1)
    out["queue_at_start"] = queue_summary(store, now)
    out["incidents"] = out["queue_at_start"]["active"]
    _say(
        f"cold queue refresh {ms:,.0f} ms: {first.correlation.alarms:,} alarms -> {first.active:,} "
        f"active incidents; {out['queue_at_start']}"
    )
    ms, ev = timed_evaluate(store, loop, now)
    out["cold_decide_ms"] = round(ms, 1)
    out["cold_exposures"] = ev.exposures
    out["cold_actions"] = dict(ev.decided)
    _say(
        f"cold evaluation {ms:,.0f} ms: {ev.fired} fired, {ev.exposures:,} line exposures recorded, "
        f"decided {dict(ev.decided)}"
    )

    with store.connect() as conn:
        exposures = conn.execute(select(func.count()).select_from(line_exposures)).scalar() or 0
    happen = Happenings(
        ds,
        store,
        resolve=args.resolve or max(2, out["incidents"] // 100),
        cross=args.crossings or max(20, ds.world.n_subscribers // 2000),
        seed=args.seed + 100,
    )
    refresh_ms: list[float] = []
    decide_ms: list[float] = []
    per_refresh: list[dict[str, Any]] = []
    for k in range(1, args.refreshes + 1):
        now = ds.now + k * STEP
        changed = happen.apply(now)
        q_ms, _ = timed_refresh(store, scoring, now)
        d_ms, ev = timed_evaluate(store, loop, now)
        refresh_ms.append(q_ms)
        decide_ms.append(d_ms)
        by_playbook = decided_by_playbook(store, now)
        per_refresh.append(
            {
                "decide_ms": round(d_ms, 1),
                "queue_refresh_ms": round(q_ms, 1),
                "fired": ev.fired,
                "exposures": ev.exposures,
                "actions": sum(ev.decided.values()),
                "queued": ev.decided["queued"],
                "decided": dict(ev.decided),
                "by_playbook": by_playbook,
                "changes": changed,
            }
        )
        _say(
            f"refresh {k:>2} (+{k * STEP.total_seconds() / 60:.0f} min): queue {q_ms:7,.0f} ms, "
            f"decide {d_ms:7,.0f} ms; {ev.fired} fired, {ev.exposures} exposures, decided "
            f"{dict(ev.decided)} {by_playbook} after {changed}"
        )
    if not any(p["actions"] for p in per_refresh):
        _say("WARNING: no refresh triggered any action; the decision latency measures nothing")
    out["exposures_after_cold"] = exposures
    out["refreshes"] = args.refreshes
    out["decide_p50_ms"] = _p(decide_ms, 50)
    out["decide_p95_ms"] = _p(decide_ms, 95)
    out["decide_max_ms"] = round(max(decide_ms), 1) if decide_ms else 0.0
    out["decide_goal_p95_ms"] = GOAL_DECIDE_P95_MS
    out["actions_per_refresh"] = round(statistics.mean(p["actions"] for p in per_refresh), 1)
    out["queued_per_refresh"] = round(statistics.mean(p["queued"] for p in per_refresh), 1)
    out["actions_per_refresh_list"] = [p["actions"] for p in per_refresh]
    out["decide_ms_list"] = [p["decide_ms"] for p in per_refresh]
    total: Counter[str] = Counter()
    per_pb: Counter[str] = Counter()
    for p in per_refresh:
        total.update(p["decided"])
        per_pb.update(p["by_playbook"])
    out["decided_total"] = dict(total)
    out["decided_by_playbook"] = dict(per_pb)
    out["queue_refresh_ms"] = round(statistics.median(refresh_ms), 1)
    out["with_playbooks_ms"] = round(
        statistics.median(a + b for a, b in zip(refresh_ms, decide_ms, strict=True)), 1
    )
    out["ratio"] = round(out["with_playbooks_ms"] / out["queue_refresh_ms"], 3)

    steady_q: list[float] = []
    steady_d: list[float] = []
    steady_actions = 0
    for k in range(1, args.steady + 1):
        now += timedelta(seconds=1)
        q_ms, _ = timed_refresh(store, scoring, now)
        d_ms, ev = timed_evaluate(store, loop, now)
        steady_q.append(q_ms)
        steady_d.append(d_ms)
        steady_actions += sum(ev.decided.values())
        _say(
            f"steady {k}: queue {q_ms:,.0f} ms, decide {d_ms:,.0f} ms; {ev.fired} fired, "
            f"decided {dict(ev.decided)}"
        )
    if steady_d:
        out["steady_decide_ms"] = round(statistics.median(steady_d), 1)
        out["steady_decide_max_ms"] = round(max(steady_d), 1)
        out["steady_queue_refresh_ms"] = round(statistics.median(steady_q), 1)
        out["steady_with_playbooks_ms"] = round(
            statistics.median(a + b for a, b in zip(steady_q, steady_d, strict=True)), 1
        )
        out["steady_ratio"] = round(out["steady_with_playbooks_ms"] / out["steady_queue_refresh_ms"], 3)
        out["steady_actions"] = steady_actions
    # One more triggering refresh, its evaluation under cProfile (not in the figures above): where
    # the decision time goes, by the evaluation's own functions (cumulative, so they overlap).
    now += STEP
    happen.apply(now)
    timed_refresh(store, scoring, now)
    prof = cProfile.Profile()
    prof.enable()
    d_ms, ev = timed_evaluate(store, loop, now)
    prof.disable()
    out["decide_profile"] = decide_profile(prof, d_ms, ev)
    _say(f"profiled evaluation: {out['decide_profile']}")
    out["queue_at_end"] = queue_summary(store, now)
    out["decision_state_kb"] = state_kb(store)
    with store.connect() as conn:
        out["line_exposures"] = conn.execute(select(func.count()).select_from(line_exposures)).scalar()
        out["outbox_rows"] = conn.execute(select(func.count()).select_from(actions)).scalar()
    return out, now


# --- delivery ---------------------------------------------------------------------------------------


class Split:
    """Wall time spent in named calls of one deliverer (claim, send, record...)."""

    def __init__(self) -> None:
        self.s: defaultdict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.s[name] += time.perf_counter() - t0

        return run


def instrument(deliverer: Deliverer, split: Split) -> None:
    # Instance attributes shadow the methods the deliverer calls on itself (those it has).
    for method in ("_claim", "_reclaim", "_mark_sending", "_record", "_retry_or_fail"):
        found = getattr(deliverer, method, None)
        if found is not None:
            setattr(deliverer, method, split.wrap(method.lstrip("_"), found))
    for name in CHANNELS.values():
        act = deliverer.action(name)
        act.send = split.wrap("send", act.send)  # type: ignore[method-assign]


def synthetic(channel: str, i: int, tag: str, now: datetime) -> Decision:
    """One queued action of ``channel`` with a unique key, shaped like what the playbooks decide."""
    key = action_key("bench", tag, channel, str(i))
    if channel == "email":
        return Decision(
            key=key,
            playbook="bench",
            step=tag,
            trigger="incident_resolved",
            action="email",
            action_type="smtp",
            channel="email",
            target=f"account:BENCH-{i}",
            state="queued",
            party=f"account:BENCH-{i}",
            dedupe_group="apology",
            address=f"contact.person{i}@example.net",
            subject="Our apologies: service restored",
            body=(
                f"Dear Contact Person {i},\n\nThe incident that affected 12 of your lines since 05 Jan 08:14"
                " UTC is resolved.\nA credit of 120.00 EUR will appear on your next bill.\nWe are sorry"
                " for the disruption.\n\n" + "Vantage NOC, on behalf of your operator. " * 6
            ),
            payload={
                "metadata": {"kind": "apology", "subscriber_id": None, "account_id": f"BENCH-{i}"},
                "headers": {"X-Vantage-Kind": "apology"},
            },
        )
    if channel == "sms":
        return Decision(
            key=key,
            playbook="bench",
            step=tag,
            trigger="churn_risk_crossed",
            action="sms",
            action_type="sms_http",
            channel="sms",
            target=f"line:BENCH-{i}",
            state="queued",
            party=f"line:BENCH-{i}",
            subscriber_id=f"BENCH-{i}",
            address=f"+3519{i:08d}",
            subject="20 GB of extra data for 3 months",
            body=(
                "We are sorry about the recent problems on our network. As a thank you for staying with"
                " us: 20 GB of extra data for 3 months, valid until 19 Jan. Accept: http://127.0.0.1:8050"
                f"/offers/{key}/accept?t=0123456789abcdef Stop messages: http://127.0.0.1:8050/offers/"
                f"{key}/optout?t=0123456789abcdef"
            ),
            payload={
                "metadata": {"kind": "offer", "offer": "data-boost-20gb", "subscriber_id": f"BENCH-{i}"},
                "headers": {"X-Vantage-Offer": "data-boost-20gb"},
            },
        )
    return Decision(
        key=key,
        playbook="bench",
        step=tag,
        trigger="sla_within",
        action="tickets",
        action_type="tmf621",
        channel="ticket",
        target=f"event:BENCH-INC-{i}",
        state="queued",
        incident_id=f"BENCH-INC-{i}",
        subject=f"CRITICAL: BBU not responding at SITE-{i:05d}",
        body=(
            f"BBU not responding at SITE-{i:05d}: 1,240 lines, 38 enterprise, 3 VIP.\nSLA clock: 24 min"
            " left for 2 account(s); 1,830.00 EUR/h at risk."
        ),
        payload={
            "severity": "critical",
            "priority": "1",
            "related": [{"role": "incident", "name": "vantage"}],
        },
    )


def insert_queued(store: Store, rows: list[Decision], now: datetime) -> None:
    with store.begin() as conn:
        for lo in range(0, len(rows), 2000):
            conn.execute(actions.insert(), [d.row(now) for d in rows[lo : lo + 2000]])


def drain(deliverer: Deliverer, *, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """run_once() passes until a pass claims nothing: wall, CPU (all threads, this thread), outcomes."""
    outcomes: Counter[str] = Counter()
    passes = 0
    w0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
    if profile is not None:
        profile.enable()
    try:
        while True:
            r = deliverer.run_once()
            if not r.claimed:
                break
            passes += 1
            outcomes.update(r.outcomes)
    finally:
        if profile is not None:
            profile.disable()
    wall = time.perf_counter() - w0
    cpu, mine = time.process_time() - c0, time.thread_time() - t0
    return {"wall_s": wall, "cpu_s": cpu, "thread_cpu_s": mine, "passes": passes, "outcomes": outcomes}


def message_of(d: Decision) -> Message:
    """The message the deliverer would hand the action type for this row."""
    return Message(key=d.key, to=d.address, subject=d.subject, body=d.body or "", data=d.payload or {})


def direct(options: dict[str, dict[str, Any]], channel: str, rows: list[Decision]) -> dict[str, float]:
    """The same messages straight through the action type: no outbox, no store."""
    cfg = next(c for c in ACTIONS if c.name == CHANNELS[channel])
    act = build_action(cfg.type, options[cfg.type], name=cfg.name)
    try:
        w0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
        for d in rows:
            act.send(message_of(d))
        return {
            "wall_s": time.perf_counter() - w0,
            "cpu_s": time.process_time() - c0,
            "thread_cpu_s": time.thread_time() - t0,
        }
    finally:
        act.close()


def _serve_sinks(conn: Any) -> None:
    """The loopback sinks in a process of their own (the receivers of a real deployment are elsewhere)."""
    logging.basicConfig(level=logging.WARNING)
    with LoopbackSinks() as sinks:
        conn.send(sinks.action_options())
        conn.recv()  # until told to stop


class ChildSinks:
    """Loopback sinks in a child process; ``options`` as ``LoopbackSinks.action_options()``."""

    def __enter__(self) -> ChildSinks:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_sinks, args=(child,), daemon=True)
        self._proc.start()
        self.options: dict[str, dict[str, Any]] = self._pipe.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send("stop")
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)


def outbox_states(store: Store, playbook: str | None = None) -> dict[str, int]:
    a = actions.c
    q = select(a.state, func.count()).group_by(a.state)
    if playbook is not None:
        q = q.where(a.playbook == playbook)
    with store.connect() as conn:
        return {s: int(n) for s, n in conn.execute(q)}


def top_functions(prof: cProfile.Profile, n: int = 12) -> tuple[list[dict[str, Any]], str]:
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(30)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:n]
    top = [
        {
            "function": f"{Path(f).name}:{line}:{name}",
            "calls": int(v[1]),
            "tottime_s": round(v[2], 3),
            "share": round(v[2] / total, 3),
        }
        for (f, line, name), v in rows
    ]
    return top, buf.getvalue()


def measure_channels(
    store: Store,
    deliverer: Deliverer,
    options: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    now: datetime,
    tag: str,
    split: Split,
) -> dict[str, Any]:
    """Per channel: ``args.messages`` queued actions drained by the outbox and the same number sent
    straight through the action type (and, with --parallel, drained by that many deliverers in
    threads), in alternating rounds of ``ROUND`` messages so that all of them share whatever else
    the machine is doing; rates, the outbox's split and CPU."""
    per: dict[str, Any] = {}
    totals: defaultdict[str, float] = defaultdict(float)
    for ch in CHANNELS:
        t: defaultdict[str, float] = defaultdict(float)
        outcomes: Counter[str] = Counter()
        passes = 0
        split.s.clear()
        for lo in range(0, args.messages, ROUND):
            hi = min(lo + ROUND, args.messages)
            insert_queued(store, [synthetic(ch, i, f"{tag}-outbox", now) for i in range(lo, hi)], now)
            r = drain(deliverer)
            outcomes.update(r["outcomes"])
            passes += r["passes"]
            t["outbox_s"] += r["wall_s"]
            t["outbox_cpu_s"] += r["cpu_s"]
            t["outbox_thread_cpu_s"] += r["thread_cpu_s"]
            ref = direct(options, ch, [synthetic(ch, i, f"{tag}-direct", now) for i in range(lo, hi)])
            t["direct_s"] += ref["wall_s"]
            t["direct_cpu_s"] += ref["cpu_s"]
            t["direct_thread_cpu_s"] += ref["thread_cpu_s"]
            if args.parallel > 1:
                insert_queued(store, [synthetic(ch, i, f"{tag}-parallel", now) for i in range(lo, hi)], now)
                par = parallel_drain(store, options, args.parallel, now)
                t["parallel_s"] += par["wall_s"]
                t["parallel_sent"] += par["outcomes"].get("sent", 0)
        sent = outcomes.get("sent", 0)
        rate = sent / t["outbox_s"]
        direct_rate = args.messages / t["direct_s"]
        other = t["outbox_s"] - sum(split.s.values())
        per[ch] = {
            "msgs": sent,
            "outcomes": dict(outcomes),
            "passes": passes,
            "wall_s": round(t["outbox_s"], 2),
            "msgs_per_s": round(rate, 1),
            "direct_msgs_per_s": round(direct_rate, 1),
            "direct_over_outbox_ratio": round(direct_rate / rate, 3),
            "split_ms_per_msg": {k: round(1000 * v / max(sent, 1), 3) for k, v in sorted(split.s.items())}
            | {"other": round(1000 * other / max(sent, 1), 3)},
            "cpu_ms_per_msg": round(1000 * t["outbox_cpu_s"] / max(sent, 1), 3),
            "deliverer_cpu_ms_per_msg": round(1000 * t["outbox_thread_cpu_s"] / max(sent, 1), 3),
            "direct_cpu_ms_per_msg": round(1000 * t["direct_cpu_s"] / args.messages, 3),
            "direct_sender_cpu_ms_per_msg": round(1000 * t["direct_thread_cpu_s"] / args.messages, 3),
        }
        if args.parallel > 1:
            per[ch]["parallel_msgs_per_s"] = round(t["parallel_sent"] / t["parallel_s"], 1)
        for k, v in (
            ("msgs", sent),
            *((k, t[k]) for k in ("outbox_s", "direct_s", "parallel_s", "parallel_sent")),
        ):
            totals[k] += v
        _say(
            f"[{tag}] {ch:>6}: outbox {rate:6,.0f} msgs/s ({sent:,} in {t['outbox_s']:.1f} s, "
            f"{passes} passes; "
            f"per msg ms {per[ch]['split_ms_per_msg']}; CPU per msg {per[ch]['cpu_ms_per_msg']} ms, "
            f"deliverer thread {per[ch]['deliverer_cpu_ms_per_msg']} ms) | direct {direct_rate:6,.0f} msgs/s"
            + (
                f" | {args.parallel} deliverers {per[ch]['parallel_msgs_per_s']:,.0f} msgs/s"
                if args.parallel > 1
                else ""
            )
        )
    out: dict[str, Any] = {"channels": per}
    out["msgs_per_min"] = round(60 * totals["msgs"] / totals["outbox_s"], 0)
    out["direct_msgs_per_min"] = round(60 * len(CHANNELS) * args.messages / totals["direct_s"], 0)
    out["direct_over_outbox_ratio"] = round(out["direct_msgs_per_min"] / out["msgs_per_min"], 3)
    if args.parallel > 1:
        out["parallel_deliverers"] = args.parallel
        out["parallel_msgs_per_min"] = round(60 * totals["parallel_sent"] / totals["parallel_s"], 0)
    _say(
        f"[{tag}] outbox overall {out['msgs_per_min']:,.0f} msgs/min (goal {GOAL_MSGS_PER_MIN:,}), "
        f"direct {out['direct_msgs_per_min']:,.0f} msgs/min"
        + (
            f", {args.parallel} deliverers {out['parallel_msgs_per_min']:,.0f} msgs/min"
            if args.parallel > 1
            else ""
        )
    )
    return out


def parallel_drain(
    store: Store, options: dict[str, dict[str, Any]], workers: int, now: datetime
) -> dict[str, Any]:
    """What-if: ``workers`` deliverers (each its own worker id) in threads of this process drain the
    queue, 50 actions a pass, as a thread pool in the deliverer would (connections warm)."""
    global _PARALLEL
    if _PARALLEL is None or len(_PARALLEL[1]) != workers or _PARALLEL[0] is not options:
        _PARALLEL = (
            options,
            [
                Deliverer(store, ACTIONS, PlaybooksConfig(), clock=lambda: now, loopback_options=options)
                for _ in range(workers)
            ],
        )
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def work(d: Deliverer) -> None:
        while True:
            r = d.run_once(limit=50)
            if not r.claimed:
                return
            with lock:
                counts.update(r.outcomes)

    threads = [threading.Thread(target=work, args=(d,)) for d in _PARALLEL[1]]
    w0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"wall_s": time.perf_counter() - w0, "outcomes": counts}


def close_parallel() -> None:
    global _PARALLEL
    if _PARALLEL is not None:
        for d in _PARALLEL[1]:
            d.close()
    _PARALLEL = None


_PARALLEL: tuple[Any, list[Deliverer]] | None = None


def what_if(store: Store, options: dict[str, dict[str, Any]], n: int, now: datetime) -> dict[str, Any]:
    """Two changes the outbox could make, measured on their own: e-mail over one SMTP connection kept
    open (against a connection per message, as ``SmtpAction.send`` does), and the outcome of a batch
    of sends recorded in one transaction (against one transaction per message, as the deliverer does)."""
    out: dict[str, Any] = {"msgs": n}
    act = SmtpAction(SmtpOptions.model_validate(options["smtp"]), name="email")
    rows = [synthetic("email", i, "what-if-smtp", now) for i in range(n)]
    messages = [message_of(d) for d in rows]
    try:
        t0 = time.perf_counter()
        for m in messages[: n // 2]:
            act.send(m)
        per_message = (time.perf_counter() - t0) / (n // 2)
        t0 = time.perf_counter()
        with act._connect() as smtp:  # the action's own connection, kept for every message
            for m in messages[n // 2 :]:
                smtp.send_message(act._compose(m))
        kept = (time.perf_counter() - t0) / (n - n // 2)
    finally:
        act.close()
    out["smtp_connection_per_msg_msgs_per_s"] = round(1 / per_message, 1)
    out["smtp_connection_kept_msgs_per_s"] = round(1 / kept, 1)

    # Outcomes: rows the runs above left sent, set to sent again (harmless), one transaction per row
    # and then one transaction for all, in alternating halves.
    a = actions.c
    with store.connect() as conn:
        ids = [r[0] for r in conn.execute(select(a.id).where(a.state == "sent").order_by(a.id).limit(2 * n))]
    stmt = (
        update(actions)
        .where(a.id == bindparam("row_id"), a.state == "sent")
        .values(state="sent", updated_at=bindparam("at"), reason=None)
    )
    half = len(ids) // 2
    t0 = time.perf_counter()
    for i in ids[:half]:
        with store.begin() as conn:
            conn.execute(stmt, {"row_id": i, "at": now})
    single = (time.perf_counter() - t0) / max(half, 1)
    t0 = time.perf_counter()
    with store.begin() as conn:
        conn.execute(stmt, [{"row_id": i, "at": now} for i in ids[half:]])
    batched = (time.perf_counter() - t0) / max(len(ids) - half, 1)
    out["record_per_msg_transaction_ms"] = round(1000 * single, 3)
    out["record_batched_ms_per_msg"] = round(1000 * batched, 3)
    _say(f"what if: {out}")
    return out


def run_delivery(
    store: Store, loop_actions: list[ActionConfig], args: argparse.Namespace, now: datetime
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    with LoopbackSinks() as sinks:
        options = sinks.action_options()
        deliverer = Deliverer(
            store, loop_actions, PlaybooksConfig(), clock=lambda: now, loopback_options=options
        )
        try:
            # What the evaluations decided: real rendered messages, every channel mixed.
            before = outbox_states(store)
            r = drain(deliverer)
            n = sum(r["outcomes"].values())
            out["decided_delivery"] = {
                "before": before,
                "after": outbox_states(store),
                "msgs": n,
                "msgs_per_s": round(n / r["wall_s"], 1) if r["wall_s"] else None,
                "wall_s": round(r["wall_s"], 2),
            }
            _say(
                f"delivered what the evaluations queued ({before.get('queued', 0):,} queued): "
                f"{dict(r['outcomes'])} in {r['wall_s']:.1f} s "
                f"({out['decided_delivery']['msgs_per_s']} msgs/s)"
            )
            # Warm both paths (connections, lazy imports) on a few messages per channel.
            for ch in CHANNELS:
                insert_queued(store, [synthetic(ch, i, "warm", now) for i in range(20)], now)
                direct(options, ch, [synthetic(ch, i, "warm-direct", now) for i in range(20)])
            drain(deliverer)

            split = Split()
            instrument(deliverer, split)
            out["loadavg_1m_before"] = round(os.getloadavg()[0], 2)
            out |= measure_channels(store, deliverer, options, args, now, "in-process sinks", split)
            out["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
            out["messages_per_channel"] = args.messages
            out["goal_msgs_per_min"] = GOAL_MSGS_PER_MIN
            out["goal_met"] = out["msgs_per_min"] >= GOAL_MSGS_PER_MIN

            if args.what_if:
                out["what_if"] = what_if(store, options, min(args.messages, 2000), now)

            if args.profile or not out["goal_met"]:
                n = min(args.messages, 2000)
                profiles: dict[str, Any] = {}
                for ch in CHANNELS:
                    insert_queued(store, [synthetic(ch, i, "profile", now) for i in range(n)], now)
                    prof = cProfile.Profile()
                    r = drain(deliverer, profile=prof)
                    top, report = top_functions(prof)
                    profiles[ch] = {
                        "msgs": n,
                        "wall_s_under_profiler": round(r["wall_s"], 2),
                        "top_tottime": top,
                    }
                    _say(f"--- cProfile of the outbox, {ch}, {n} messages ---\n{report}")
                out["profile"] = profiles
        finally:
            deliverer.close()
            close_parallel()
    if args.child_sinks:
        with ChildSinks() as child:
            deliverer = Deliverer(
                store, loop_actions, PlaybooksConfig(), clock=lambda: now, loopback_options=child.options
            )
            try:
                for ch in CHANNELS:
                    insert_queued(store, [synthetic(ch, i, "warm-child", now) for i in range(20)], now)
                    direct(child.options, ch, [synthetic(ch, i, "warm-child-direct", now) for i in range(20)])
                drain(deliverer)
                split = Split()
                instrument(deliverer, split)
                out["child_process_sinks"] = measure_channels(
                    store, deliverer, child.options, args, now, "sinks in a child process", split
                )
            finally:
                deliverer.close()
                close_parallel()
    return out


# --- main -------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--incidents", type=int, default=2000, help="active incidents (about)")
    p.add_argument("--refreshes", type=int, default=10, help="measured refreshes that trigger actions")
    p.add_argument("--steady", type=int, default=3, help="refreshes after them where nothing new fires")
    p.add_argument("--messages", type=int, default=20_000, help="synthetic actions per channel")
    p.add_argument(
        "--resolve", type=int, default=0, help="incidents resolved per refresh (0: 1%%, 2 at least)"
    )
    p.add_argument(
        "--crossings",
        type=int,
        default=0,
        help="lines crossing the churn band per refresh (0: N/2000, 20 at least)",
    )
    p.add_argument("--database-url", default=None, help="a PostgreSQL database; a schema is made and dropped")
    p.add_argument("--keep", action="store_true", help="leave the store (file or schema) and say where")
    p.add_argument("--profile", action="store_true", help="cProfile the outbox even when it meets the goal")
    p.add_argument(
        "--child-sinks",
        action="store_true",
        help="also measure delivery against the sinks in a child process (receivers elsewhere)",
    )
    p.add_argument(
        "--parallel", type=int, default=0, help="also drain with this many deliverers in threads (a what-if)"
    )
    p.add_argument(
        "--what-if",
        action="store_true",
        help="also measure e-mail over a kept SMTP connection and outcomes recorded in one transaction",
    )
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tmp = tempfile.mkdtemp(prefix="vantage-bench-playbooks-")
    store, drop, where = open_store(args.database_url, tmp)
    backend = store.dialect
    result: dict[str, Any] = {
        "backend": backend,
        "code_sha256": code_digest(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        now = anchor_time()
        alarms_wanted = max(10, round(args.incidents * ALARMS_PER_INCIDENT))
        t0 = time.perf_counter()
        ds = _data.build(
            store, subscribers=args.subscribers, alarms=alarms_wanted, now=now, seed=args.seed, say=_say
        )
        result["build_s"] = round(time.perf_counter() - t0, 1)
        result["subscribers"] = ds.world.n_subscribers
        result["cells"] = ds.world.n_cells
        result["alarms"] = ds.counts["alarms"]
        _say(f"dataset built in {result['build_s']} s ({where})")
        if backend == "postgresql":
            t0 = time.perf_counter()
            with store.begin() as conn:
                conn.execute(text("ANALYZE"))
            _say(f"ANALYZE in {time.perf_counter() - t0:.1f} s")

        book = load_playbooks(ROOT / "playbooks.yaml", actions=ACTIONS)
        loop = Loop(book=book, actions={a.name: a for a in ACTIONS}, secret="bench")
        decisions, last = run_decisions(store, ds, loop, args)
        result.update(decisions)
        del ds
        result["delivery"] = run_delivery(store, ACTIONS, args, last)
        for k in ("msgs_per_min", "direct_msgs_per_min", "direct_over_outbox_ratio", "goal_met"):
            result[k] = result["delivery"][k]
        for ch, v in result["delivery"]["channels"].items():
            result[f"{ch}_msgs_per_s"] = v["msgs_per_s"]
            result[f"{ch}_direct_msgs_per_s"] = v["direct_msgs_per_s"]
    finally:
        if args.keep:
            _say(f"kept the store: {where}")
        else:
            drop()
            shutil.rmtree(tmp, ignore_errors=True)
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
