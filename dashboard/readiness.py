"""How far a fresh store is from ready: the steps of its first preparation, kept in the store.

A fresh store is prepared once, in order (``dashboard.scheduler.ConnectorJobs.prepare``): the
connectors' history (events first, KPI samples last), a first incident queue, KPI roll-ups and
statuses, the measured links, the churn model and scores, and the queue again with all of them.
The running preparation writes its progress here after every step and stream; every page, the
wall and ``/healthz`` read it, so a screen says what is being prepared and how long it should take
instead of showing "no data" for data that is merely not computed yet. The record is the
``preparation`` state of the ``vantage`` pseudo-connector, so the web and a separate scheduler
process see the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict

from sqlalchemy.engine import Connection

from dashboard.ingest.runner import load_state, save_state
from dashboard.store.db import Store

STATE_CONNECTOR = "vantage"
STATE_STREAM = "preparation"

StepState = Literal["pending", "running", "done", "failed", "skipped"]

#: The steps in order, what a reader is told about each, and the seconds each took on a 2-core
#: machine for the built-in simulated operator (10,000 subscribers, 28 days: 4.3 million KPI samples),
#: the estimate until the preparation has measured something better.
STEPS: tuple[tuple[str, str, float], ...] = (
    ("events", "Loading inventory, customers, alarms, tickets and bills", 6.0),
    ("queue", "Correlating alarms into a first incident queue", 1.5),
    ("samples", "Loading KPI history", 30.0),
    ("evaluation", "Rolling up KPIs and setting their status", 37.0),
    ("linkage", "Measuring how network KPIs drive business KPIs", 7.0),
    ("churn", "Training the churn model and scoring every line", 19.0),
    ("ranking", "Ranking incidents with churn risk and measured impact", 1.0),
)
LABELS = {key: label for key, label, _ in STEPS}

#: Which pages need which steps before they show real content (the rest of a page fills in as it can).
PAGE_NEEDS: dict[str, tuple[str, ...]] = {
    "incidents": ("events", "queue"),
    "wall": ("events", "queue", "evaluation"),
    "kpis": ("samples", "evaluation"),
    "linkage": ("samples", "evaluation", "linkage"),
    "churn": ("churn",),
}


@dataclass
class Step:
    key: str
    label: str
    expected_s: float
    state: StepState = "pending"
    fraction: float = 0.0
    started_at: str | None = None
    finished_at: str | None = None
    detail: str | None = None

    def elapsed_s(self, now: datetime) -> float:
        if self.started_at is None:
            return 0.0
        end = datetime.fromisoformat(self.finished_at) if self.finished_at else now
        return max((end - datetime.fromisoformat(self.started_at)).total_seconds(), 0.0)

    def remaining_s(self, now: datetime, pace: float = 1.0) -> float:
        """Seconds this step still needs: its expected time at the pace seen so far until it has
        moved, then the rate it moves at."""
        if self.state in ("done", "failed", "skipped"):
            return 0.0
        expected = self.expected_s * pace
        if self.state == "pending":
            return expected
        elapsed = self.elapsed_s(now)
        if self.fraction >= 0.15:
            return elapsed * (1 - self.fraction) / self.fraction
        return max(expected - elapsed, expected * 0.1)


class Progress(TypedDict):
    """What a page, the wall and ``/healthz`` show about the preparation."""

    ready: bool
    started_at: str | None
    finished_at: str | None
    step: int
    steps: int
    key: str | None
    label: str
    percent: int
    remaining_s: int
    done: list[str]
    failed: list[str]


@dataclass
class Preparation:
    started_at: str
    steps: list[Step] = field(default_factory=list)
    finished_at: str | None = None

    @classmethod
    def start(cls, now: datetime, *, expected: dict[str, float] | None = None) -> Preparation:
        plan = expected or {}
        return cls(
            started_at=now.isoformat(),
            steps=[Step(key, label, plan.get(key, seconds)) for key, label, seconds in STEPS],
        )

    @property
    def ready(self) -> bool:
        return self.finished_at is not None

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def done(self, keys: Iterable[str]) -> bool:
        """Whether every step of ``keys`` has run (done, failed or had nothing to do)."""
        return self.ready or all(self.step(k).state in ("done", "failed", "skipped") for k in keys)

    def pace(self, now: datetime) -> float:
        """How long the finished steps took against their estimate (this machine, this data), once
        enough has finished to tell; later estimates are scaled by it."""
        finished = [s for s in self.steps if s.state == "done"]
        expected = sum(s.expected_s for s in finished)
        if expected < 5.0:
            return 1.0
        return min(max(sum(s.elapsed_s(now) for s in finished) / expected, 0.5), 4.0)

    def progress(self, now: datetime) -> Progress:
        total = sum(s.expected_s for s in self.steps) or 1.0
        pace = self.pace(now)
        remaining = sum(s.remaining_s(now, pace) for s in self.steps)
        current = next((s for s in self.steps if s.state == "running"), None)
        current = current or next((s for s in self.steps if s.state == "pending"), None)
        done_s = sum(s.expected_s for s in self.steps if s.state in ("done", "failed", "skipped"))
        if current is not None and current.state == "running":
            done_s += current.expected_s * min(current.fraction, 0.99)
        ready = self.ready
        return {
            "ready": ready,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "step": self.steps.index(current) + 1 if current is not None and not ready else len(self.steps),
            "steps": len(self.steps),
            "key": None if ready or current is None else current.key,
            "label": "Ready" if ready or current is None else current.label,
            "percent": 100 if ready else min(int(100 * done_s / total), 99),
            "remaining_s": 0 if ready else round(remaining),
            "done": [s.key for s in self.steps if s.state in ("done", "skipped")],
            "failed": [s.key for s in self.steps if s.state == "failed"],
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "steps": [asdict(s) for s in self.steps],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preparation | None:
        if not state.get("started_at"):
            return None
        known = {key for key, _, _ in STEPS}
        steps = [Step(**s) for s in state.get("steps", []) if isinstance(s, dict) and s.get("key") in known]
        return cls(started_at=str(state["started_at"]), steps=steps, finished_at=state.get("finished_at"))


def read(conn: Connection) -> Preparation | None:
    """The store's preparation record; None for a store no preparation has started on."""
    return Preparation.from_state(load_state(conn, STATE_CONNECTOR, STATE_STREAM))


def write(store: Store, prep: Preparation, *, now: datetime) -> None:
    with store.begin() as conn:
        save_state(conn, STATE_CONNECTOR, STATE_STREAM, prep.to_state(), now=now)


def progress(conn: Connection, now: datetime) -> Progress | None:
    """The preparation's progress, or None when the store was never prepared (nothing to say: a
    store filled by connectors alone, or by an older version, is as ready as it gets)."""
    prep = read(conn)
    return prep.progress(now) if prep is not None else None


def waiting_text(p: Progress) -> str:
    """One line for a page: the step, how far along and an honest estimate of the time left."""
    left = p["remaining_s"]
    eta = f"about {left} s left" if left < 90 else f"about {round(left / 60)} min left"
    return f"Preparing the operator, step {p['step']} of {p['steps']}: {p['label']} ({p['percent']}%, {eta})"


def waiting(conn: Connection, part: str, now: datetime) -> str | None:
    """What ``part`` (a key of :data:`PAGE_NEEDS`) of a page waits for while the store is prepared,
    as :func:`waiting_text`; None once the steps it needs have run (or on a store never prepared)."""
    prep = read(conn)
    if prep is None or prep.done(PAGE_NEEDS[part]):
        return None
    return waiting_text(prep.progress(now))
