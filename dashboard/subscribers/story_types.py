"""The shape of a subscriber's story (:func:`dashboard.subscribers.story.subscriber_story`).

Each part is a JSON-ready record: times are ISO 8601 UTC strings with a ``Z``, dates ``YYYY-MM-DD``,
numbers rounded floats. The API returns the story as is and the 360 page reads it, so a key renamed
or retyped here is a change to both. ``None`` stands where the store has no value.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from dashboard.privacy import Role


class Profile(TypedDict):
    id: str
    source: str
    account_id: str | None
    msisdn: str | None  # personal: masked by dashboard.privacy.protect
    plan: str | None
    arpu: float | None
    status: str
    activated_at: str | None
    tenure_days: int | None
    home_cell_id: str | None


class Account(TypedDict):
    """The subscriber's account. One that only its lines name (no account record stored yet) carries
    the keys up to ``vip``, ``lines`` and ``link``, nothing else."""

    id: str
    name: str | None  # a company's name; None for a consumer, whose name is the contact name
    segment: str | None
    vip: bool | None
    account_manager: NotRequired[str | None]
    sla_restore_minutes: NotRequired[int | None]
    penalty_per_hour: NotRequired[float | None]
    contract_end: NotRequired[str | None]
    contact_name: NotRequired[str | None]  # personal, as the contact fields below
    contact_email: NotRequired[str | None]
    contact_phone: NotRequired[str | None]
    contact_address: NotRequired[str | None]
    lines: int
    link: str


class Service(TypedDict):
    id: str
    name: str
    kind: str | None
    status: str | None
    level: Literal["line", "account"]  # account: a service of the account as a whole


class ServingCell(TypedDict):
    """A cell that serves the subscriber, with its share of the subscriber's traffic."""

    cell_id: str
    share: float | None
    name: str | None  # None (as the place below) for a cell the topology does not know yet
    technology: str | None
    band: str | None
    site_id: str | None
    site: str | None
    region_id: str | None
    region: str | None


class KpiPoint(TypedDict):
    """One KPI over one period as the subscriber experienced it, weighted by traffic share."""

    kpi: str
    period_start: str | None
    value: float | None
    cells: int  # how many serving cells reported in the period


class KpiWindow(TypedDict):
    since: str | None
    until: str | None
    step_minutes: int
    series: list[KpiPoint]


class StoryIncident(TypedDict):
    id: str
    title: str
    severity: str
    state: str
    opened_at: str | None
    resolved_at: str | None
    merged_into: str | None
    cells: list[str]  # the subscriber's cells the incident degraded
    degraded_share: float | None
    impact: float | None  # share of the subscriber's traffic degraded
    link: str


class TicketNote(TypedDict):
    author: str | None
    text: str | None
    sentiment: float | None
    created_at: str | None


class StatusChange(TypedDict):
    status: str
    changed_at: str | None


class StoryTicket(TypedDict):
    id: str
    scope: Literal["line", "account"]  # account: a ticket of the account not about one line
    subject: str | None
    description: str | None
    channel: str | None
    status: str
    category: str | None
    priority: str | None
    sentiment: float | None
    created_at: str | None
    updated_at: str | None
    resolved_at: str | None
    incident_id: str | None
    incident_link: str | None
    notes: list[TicketNote]
    status_changes: list[StatusChange]


class Bill(TypedDict):
    id: str
    period_start: str | None
    period_end: str | None
    amount: float | None
    currency: str | None
    state: str | None
    issued_at: str | None


class UsageRow(TypedDict):
    """The line's usage of one type in one period, summed."""

    period_start: str | None
    usage_type: str
    unit: str | None
    currency: str | None
    quantity: float | None
    amount: float | None


class ChurnDriver(TypedDict):
    feature: str
    value: int | float | bool | str | None
    impact: float | None


class Churn(TypedDict):
    risk: float | None
    drivers: list[ChurnDriver]
    model_version: int | None
    scored_at: str | None
    sentiment_30d: float | None
    tickets_30d: int
    negative_tickets_30d: int


class ChurnEvent(TypedDict):
    id: str
    occurred_at: str | None
    reason: str | None


class Offer(TypedDict):
    id: str
    offer: str | None
    outcome: str
    occurred_at: str | None


class Action(TypedDict):
    """One audit record about the subscriber."""

    id: int
    at: str | None
    actor: str | None
    action: str
    detail: Any  # the audit record's JSON detail, whatever the action stored


class TimelineEvent(TypedDict):
    time: str
    kind: str
    title: str
    detail: str
    link: str | None


class Privacy(TypedDict):
    masked: bool
    role: Role
    may_unmask: bool


class StoryParts(TypedDict):
    """Everything the story reads from the store; :class:`Story` adds the timeline drawn from it."""

    id: str
    link: str
    as_of: str | None
    privacy: Privacy
    profile: Profile
    account: Account | None
    services: list[Service]
    cells: list[ServingCell]
    kpis: KpiWindow
    incidents: list[StoryIncident]
    tickets: list[StoryTicket]
    bills: list[Bill]
    usage: list[UsageRow]
    churn: Churn | None
    churn_events: list[ChurnEvent]
    offers: list[Offer]
    actions: list[Action]


class Story(StoryParts):
    timeline: list[TimelineEvent]
