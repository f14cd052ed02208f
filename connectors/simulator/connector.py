"""The built-in simulated operator, a connector like any other (``type: simulator``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorOptions,
    JSONDict,
    Stream,
)
from connectors.simulator.billing import billing_frames
from connectors.simulator.causal import DEFAULT_CAUSAL, CausalParameters, TrueLink, linkage_truth
from connectors.simulator.experience import Experience
from connectors.simulator.faults import (
    DAY_S,
    Event,
    Incident,
    Record,
    fault_events,
    incidents_for_day,
    silent_faults_for_day,
    to_dt,
    to_s,
)
from connectors.simulator.inbox import Inbox, MessageKind, line_of_subscriber_id
from connectors.simulator.kpis import kpi_frames
from connectors.simulator.story import MIN_SITES, Story
from connectors.simulator.tickets import churn_events, ticket_events
from connectors.simulator.world import World, build_world, customer_frames, topology_frames

STEP = timedelta(minutes=15)
EVENT_BATCH = 5_000


class SimulatorOptions(ConnectorOptions):
    """Options of the simulated operator."""

    seed: int = 42
    subscribers: int = Field(default=10_000, ge=100, le=1_000_000)
    days: int = Field(default=7, ge=1, le=90, description="history to backfill on the first run")
    subscribers_per_cell: int = Field(default=50, ge=5, le=5_000)
    anchor: datetime | None = Field(
        default=None, description="end of history; None = now floored to 15 minutes"
    )
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    causal: dict[str, float] = Field(default_factory=dict, description="overrides of CausalParameters")
    story: bool = Field(
        default=False,
        description="add a seed-drawn schedule of overlapping faults, so that any moment has a few active",
    )

    @field_validator("anchor")
    @classmethod
    def _naive_utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return v

    @field_validator("causal")
    @classmethod
    def _known_parameters(cls, v: dict[str, float]) -> dict[str, float]:
        DEFAULT_CAUSAL.with_overrides(v)  # raises on unknown names
        return v

    @model_validator(mode="after")
    def _room_for_the_story(self) -> SimulatorOptions:
        sites = -(-max(3, round(self.subscribers / self.subscribers_per_cell)) // 3)  # as build_world
        if self.story and sites < MIN_SITES:
            least = 3 * MIN_SITES * self.subscribers_per_cell
            raise ValueError(
                f"story: needs a network of at least {MIN_SITES} sites, these options give {sites} "
                f"(about {least} subscribers or more at {self.subscribers_per_cell} per cell)"
            )
        return self


def floor_15(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0) - timedelta(minutes=t.minute % 15)


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


STREAMS = [
    Stream(
        "topology",
        ("regions", "sites", "cells", "resources", "topology_edges"),
        None,
        "the network, emitted on the first run",
    ),
    Stream(
        "customers",
        ("accounts", "subscribers", "subscriber_cells", "services"),
        None,
        "the customer base, emitted on the first run with statuses as of its end",
    ),
    Stream("kpis", ("kpi_samples",), "period_start", "15-minute cell KPIs"),
    Stream(
        "faults",
        ("alarms",),
        "changed_at",
        "TMF642-shaped alarms: raised, acknowledged and cleared",
    ),
    Stream(
        "tickets",
        ("tickets", "ticket_notes", "ticket_status_changes"),
        "updated_at",
        "TMF621-shaped trouble tickets with notes and status history",
    ),
    Stream(
        "churn",
        ("offer_events", "churn_events", "subscribers"),
        "occurred_at",
        "retention offers, churn and the subscriber status changes they cause",
    ),
    Stream("billing", ("bills", "usage"), "issued_at", "monthly bills and usage"),
]


class SimulatorConnector(Connector[SimulatorOptions]):
    """A deterministic simulated mobile operator: network, customers, faults, tickets, churn, bills."""

    type = "simulator"
    Options = SimulatorOptions

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        if not isinstance(options, SimulatorOptions):
            options = SimulatorOptions.model_validate(options.model_dump())
        super().__init__(options, context)
        self.causal: CausalParameters = DEFAULT_CAUSAL.with_overrides(options.causal)
        self._world: World | None = None
        self._story: Story | None = None
        self._experience: Experience | None = None
        self._incidents = lru_cache(maxsize=256)(self._incidents_uncached)
        # One experience (and inbox) per connector even when messages and reads come from threads.
        self._lock = threading.Lock()

    # --- the world, built lazily (no work at construction or import) ---------------------------

    @property
    def world(self) -> World:
        if self._world is None:
            o = self.options
            self._world = build_world(o.seed, o.subscribers, o.subscribers_per_cell)
        return self._world

    @property
    def experience(self) -> Experience:
        if self._experience is None:
            with self._lock:
                if self._experience is None:
                    self._experience = Experience(self.world, self.causal, self.incidents_for)
        return self._experience

    # --- what the simulated customers receive from Vantage -------------------------------------

    @property
    def inbox(self) -> Inbox:
        """What the simulated customers received from Vantage (created with the experience)."""
        return self.experience.inbox

    def receive(
        self,
        kind: MessageKind,
        *,
        at: datetime,
        subscriber_id: str | None = None,
        account_id: str | None = None,
        address: str | None = None,
        offer: str | None = None,
        key: str | None = None,
    ) -> bool:
        """A message from Vantage (``offer`` or ``apology``) reaches the simulated customers at
        ``at`` (naive UTC): the line ``subscriber_id``, else the line or account whose MSISDN or
        contact e-mail ``address`` is, else every line of ``account_id``. Returns whether it
        reached any; a repeated ``key`` is ignored. It affects churn decisions from the day after
        ``at`` (never a day already drawn); an accepted offer shows in ``offer_events``."""
        return self.inbox.record(
            kind,
            at=at,
            subscriber_id=subscriber_id,
            account_id=account_id,
            address=address,
            offer=offer,
            key=key,
        )

    def churn_probability(
        self, subscriber_ids: Sequence[str], start: datetime, days: int, *, treated: bool
    ) -> np.ndarray:
        """Per line: the true probability of a churn decision on one of the ``days`` days after the
        day of ``start`` (naive UTC), without a Vantage offer from ``start`` on, or with one received
        at ``start`` (``treated``; its acceptance probability folded in). The true effect of offers
        sent to a group at ``start`` is the mean of the untreated minus the treated probabilities."""
        w = self.world
        lines = [line_of_subscriber_id(w, s) for s in subscriber_ids]
        unknown = [s for s, line in zip(subscriber_ids, lines, strict=True) if line is None]
        if unknown:
            raise ValueError(f"unknown subscriber id(s): {', '.join(unknown[:5])}")
        if days < 1:
            raise ValueError("days must be at least 1")
        if start.tzinfo is not None:
            start = start.astimezone(UTC).replace(tzinfo=None)
        return self.experience.churn_probability(
            np.array(lines, dtype=np.int64), to_s(start), days, treated=treated
        )

    @property
    def story(self) -> Story | None:
        """The scheduled faults (``story`` option), or None without them."""
        if self._story is None and self.options.story:
            self._story = Story(self.world, self.causal)
        return self._story

    def _incidents_uncached(self, day: int) -> list[Incident]:
        drawn = incidents_for_day(self.world, self.causal, day)
        story = self.story
        scheduled = story.incidents_for_day(day) if story is not None else []
        return drawn + scheduled + silent_faults_for_day(self.world, self.causal, day)

    def incidents_for(self, day: int) -> list[Incident]:
        """The incidents starting on absolute day ``day`` (days since 1970-01-01): the faults drawn at
        the causal rates, then the story's scheduled ones, then the silent faults (no alarms)."""
        return self._incidents(day)

    def incident_truth(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The simulated faults that started in [start, end): the ground truth correlation is tested on.

        One row per fault: id, root_resource_id, the ids of its alarms, severity, title, when it
        opened and when its root alarm cleared (resolved_at), whether it took its cells down, the
        story thread that scheduled it (empty for a drawn fault), whether it is silent (no alarm:
        root_alarm_id missing, alarm_ids empty, resolved_at its end), when the cells recovered
        (ended_at) and the ids of the cells it took down or degraded (cell_ids). Not emitted as
        records: only alarms leave the network, and Vantage groups them into incidents itself.
        """
        rows = []
        w = self.world
        for day in range(to_s(start) // DAY_S, to_s(end) // DAY_S + 1):
            for inc in self.incidents_for(day):
                if not to_s(start) <= inc.start_s < to_s(end):
                    continue
                root = inc.alarms[0] if inc.alarms else None
                rows.append(
                    {
                        "id": inc.id,
                        "root_resource_id": str(w.res_ids.iloc[inc.resource]),
                        "alarm_ids": [a.id for a in inc.alarms],
                        "root_alarm_id": root.id if root is not None else None,
                        "severity": inc.severity,
                        "title": inc.title,
                        "opened_at": to_dt(inc.start_s),
                        "resolved_at": to_dt(root.cleared_s if root is not None else inc.end_s),
                        "outage": inc.outage,
                        "story": inc.story,
                        "silent": inc.silent,
                        "ended_at": to_dt(inc.end_s),
                        "cell_ids": w.cell_ids.iloc[inc.cell_lo : inc.cell_hi].tolist(),
                    }
                )
        cols = ["id", "root_resource_id", "alarm_ids", "root_alarm_id", "severity", "title", "opened_at"]
        more = ["resolved_at", "outage", "story", "silent", "ended_at", "cell_ids"]
        return pd.DataFrame(rows, columns=[*cols, *more])

    def linkage_truth(self) -> list[TrueLink]:
        """The true KPI -> business links this simulator builds in, in catalogue units (daily grain)."""
        return linkage_truth(self.causal)

    # --- protocol ------------------------------------------------------------------------------

    def streams(self) -> list[Stream]:
        return list(STREAMS)

    def check(self) -> CheckResult:
        w = self.world
        return CheckResult(
            ok=True,
            detail=(
                f"simulated operator: {w.n_subscribers} subscribers, {w.n_cells} cells, "
                f"seed {self.options.seed}"
            ),
        )

    def history_end(self) -> datetime:
        return floor_15(self.options.anchor if self.options.anchor is not None else self.context.utcnow())

    def live_end(self, stream: Stream) -> datetime:
        """How far a live slice of ``stream`` reaches: the last closed KPI period for KPI samples,
        the last whole minute for events (alarms, tickets, churn, bills)."""
        now = self.context.utcnow()
        return floor_15(now) if stream.name == "kpis" else floor_minute(now)

    def window(self, stream: Stream, state: JSONDict) -> tuple[datetime, datetime] | None:
        """The slice of ``stream`` to generate: the backfill on the first run, else from the stream's
        cursor up to its live end."""
        if state.get("until"):
            start = datetime.fromisoformat(str(state["until"]))
            end = self.live_end(stream)
            return (start, end) if end > start else None
        end = self.history_end()
        return end - timedelta(days=self.options.days), end

    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        first_run = not state.get("until")
        win = self.window(stream, state)
        if win is None:
            return
        start, end = win
        new_state = {"until": end.isoformat()}
        a_s, b_s = to_s(start), to_s(end)
        src = self.name
        batches: Iterator[Batch]
        if stream.name == "topology":
            batches = (
                (Batch(kind=k, records=df) for k, df in topology_frames(self.world, src))
                if first_run
                else iter(())
            )
        elif stream.name == "customers":
            if first_run:
                churned = self.experience.churned_at(b_s)
                batches = (Batch(kind=k, records=df) for k, df in customer_frames(self.world, src, churned))
            else:
                batches = iter(())
        elif stream.name == "kpis":
            batches = (
                Batch(kind="kpi_samples", records=df)
                for df in kpi_frames(self.world, self.causal, src, a_s, b_s, self.incidents_for)
            )
        elif stream.name == "faults":
            batches = self._fault_batches(src, a_s, b_s)
        elif stream.name == "tickets":
            batches = self._event_batches(
                ticket_events(self.world, self.experience, src, a_s, b_s, self.options.currency)
            )
        elif stream.name == "churn":
            batches = (
                Batch(kind=k, records=r) for k, r in churn_events(self.world, self.experience, src, a_s, b_s)
            )
        elif stream.name == "billing":
            # The first run reaches back far enough to include the last two monthly bills.
            bill_a = a_s
            if first_run:
                prev = date(end.year - (end.month == 1), (end.month - 2) % 12 + 1, 1)
                bill_a = min(a_s, to_s(datetime(prev.year, prev.month, 1)))
            batches = (
                Batch(kind=k, records=df)
                for k, df in billing_frames(self.world, src, bill_a, b_s, self.options.currency)
            )
        else:
            raise ValueError(f"unknown stream {stream.name!r}")
        yield from _with_final_state(batches, stream.kinds[0], new_state)

    def _fault_batches(self, src: str, a_s: int, b_s: int) -> Iterator[Batch]:
        for day in range(a_s // DAY_S - 1, (b_s - 1) // DAY_S + 1):
            events = sorted(
                fault_events(self.world, self.incidents_for(day), a_s, b_s, src), key=lambda e: e[0]
            )
            yield from self._event_batches(iter(events))

    def _event_batches(self, events: Iterator[Event]) -> Iterator[Batch]:
        """Group (time, kind, record) events into per-kind batches, keeping versions in time order."""
        pending: dict[str, list[tuple[int, Record]]] = {}
        count = 0
        for t, kind, record in events:
            pending.setdefault(kind, []).append((t, record))
            count += 1
            if count >= EVENT_BATCH:
                yield from _flush(pending)
                count = 0
        yield from _flush(pending)


def _flush(pending: dict[str, list[tuple[int, Record]]]) -> Iterator[Batch]:
    for kind in list(pending):
        rows = sorted(pending.pop(kind), key=lambda r: r[0])
        yield Batch(kind=kind, records=[r for _, r in rows])


def _with_final_state(batches: Iterator[Batch], default_kind: str, state: JSONDict) -> Iterator[Batch]:
    """Attach the new cursor to the last batch only (an empty batch if the slice had no records)."""
    prev: Batch | None = None
    for b in batches:
        if prev is not None:
            yield prev
        prev = b
    if prev is None:
        prev = Batch(kind=default_kind, records=[])
    prev.state = state
    yield prev


def churn_probability(
    sim: SimulatorConnector, subscriber_ids: Sequence[str], start: datetime, days: int, *, treated: bool
) -> np.ndarray:
    """``sim.churn_probability(...)``: the simulator's true churn-decision probabilities per line."""
    return sim.churn_probability(subscriber_ids, start, days, treated=treated)


__all__ = ["STREAMS", "SimulatorConnector", "SimulatorOptions", "churn_probability", "floor_15"]
