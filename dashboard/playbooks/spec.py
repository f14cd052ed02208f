"""The playbooks file (``playbooks.yaml``): triggers, conditions, steps, offers and the contact policy.

Validated with pydantic and then by hand, like the KPI catalogue: every problem names the file, the
exact path (``playbooks[1].steps[2].when``) and what was expected. Conditions use the catalogue's
safe expression language (:func:`dashboard.kpis.parse_condition`), templates are Jinja2 in its
sandbox, checked when the file is loaded so a typo stops start-up rather than a message.
"""

from __future__ import annotations

import ast
import re
from datetime import time
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateSyntaxError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.options import parse_duration
from dashboard.config import ActionConfig, ConfigError, read_yaml_mapping, validation_problems
from dashboard.kpis import ExpressionError, parse_condition
from dashboard.playbooks.render import template_environment

TriggerKind = Literal[
    "incident_opened",
    "incident_acknowledged",
    "incident_escalated",
    "incident_resolved",
    "sla_within",
    "sla_breached",
    "churn_risk_crossed",
    "kpi_status",
]
#: Whom a step addresses. ``incident``: once per incident (a ticket, a chat post); ``sla_accounts``,
#: ``business_accounts``, ``customers``: the affected accounts (with an SLA clock, smb/enterprise,
#: every segment); ``account_managers``: once per account manager of the affected business
#: accounts; ``lines``: every affected line; ``line``: the line a churn trigger fired for.
TargetKind = Literal[
    "incident", "sla_accounts", "business_accounts", "customers", "account_managers", "lines", "line"
]
#: Targets that are customers: the contact policy, opt-outs and quiet hours apply to them.
CUSTOMER_TARGETS = frozenset({"sla_accounts", "business_accounts", "customers", "lines", "line"})

_NAME = r"^[a-z][a-z0-9_\-]{0,63}$"

INCIDENT_FIELDS = (
    "id",
    "title",
    "severity",
    "severity_rank",
    "state",
    "kind",
    "rank",
    "score",
    "region",
    "opened_at",
    "resolved_at",
    "duration_minutes",
    "lines",
    "consumer_lines",
    "smb_lines",
    "enterprise_lines",
    "vip_lines",
    "accounts",
    "value",
    "revenue_at_risk",
    "penalty_per_hour",
    "sla_accounts",
    "sla_breached",
    "sla_minutes_left",
    "sla_state",
    "sentiment",
    "churn_risk",
    "reason",
    "owner",
    "ticket_id",
    "acked_by",
    "upstream_alarms",
)
CUSTOMER_FIELDS = (
    "id",
    "name",
    "segment",
    "vip",
    "account_manager",
    "sla_restore_minutes",
    "penalty_per_hour",
    "sla_state",
    "sla_minutes_left",
    "lines",
    "churn_risk",
    "sentiment",
    "arpu",
    "language",
)
LINE_FIELDS = (
    "id",
    "plan",
    "arpu",
    "segment",
    "vip",
    "churn_risk",
    "risk_at_hit",
    "sentiment",
    "tenure_days",
)
KPI_FIELDS = ("name", "label", "status", "previous", "level", "entity", "value")


def condition_names(target: str | None, trigger: str) -> set[str]:
    """The names a condition may read for a trigger and (for a step) its target."""
    names = {"credit", "offer.cost", "offer.value", "offer.expected_value"}
    if trigger == "kpi_status":
        names |= {f"kpi.{f}" for f in KPI_FIELDS}
    else:
        names |= {f"incident.{f}" for f in INCIDENT_FIELDS}
    if target in ("sla_accounts", "business_accounts", "customers", "account_managers"):
        names |= {f"customer.{f}" for f in CUSTOMER_FIELDS}
    if target in ("lines", "line"):
        names |= {f"line.{f}" for f in LINE_FIELDS} | {f"customer.{f}" for f in CUSTOMER_FIELDS}
    return names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _dur(v: Any) -> float:
    return parse_duration(v)


class Trigger(_Strict):
    """When a playbook is considered. Each (playbook, step, incident, target) acts at most once."""

    #: What fires it (``event``: YAML reads a bare ``on`` as true).
    event: TriggerKind
    #: sla_within: how close to the breach (e.g. 30m).
    within_s: float | None = Field(default=None, alias="within")
    #: incident_escalated: the severity it must reach (default: any rise).
    severity: str | None = None
    #: churn_risk_crossed: the band (a churn probability) a line's risk must cross from below
    #: after an incident hit it, within ``lookback`` of the hit.
    band: float | None = Field(default=None, gt=0, lt=1)
    lookback_s: float = Field(default=14 * 86400.0, alias="lookback")
    #: kpi_status: the KPI and the statuses that fire it.
    kpi: str | None = None
    to: list[str] = Field(default_factory=lambda: ["critical"])

    @field_validator("within_s", "lookback_s", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float | None:
        return None if v is None else _dur(v)


class Approval(_Strict):
    """A step that waits for a person when its condition holds (``always`` for every action)."""

    when: str = "true"


class Dedupe(_Strict):
    """One message of a group per customer per window: three incidents in a day, one apology."""

    group: str = Field(pattern=_NAME)
    per_s: float = Field(default=86400.0, alias="per")

    @field_validator("per_s", mode="before")
    @classmethod
    def _per(cls, v: Any) -> float:
        return _dur(v)


class Step(_Strict):
    name: str = Field(pattern=_NAME)
    #: The configured action this step uses (settings: ``actions[].name``).
    action: str
    target: TargetKind = "incident"
    when: str | None = None
    #: Address template; the default is the target's own (e-mail or MSISDN by channel).
    to: str | None = None
    subject: str | None = None
    body: str = ""
    #: Structured fields for the action type, each value a template (ticket severity, alarm ids...).
    data: dict[str, Any] = Field(default_factory=dict)
    #: A credit to the customer (money, a template evaluating to a number), shown and approved.
    credit: str | None = None
    #: ``auto``: the best eligible offer of the catalogue for this line, by expected value saved.
    offer: Literal["auto"] | None = None
    approval: Approval | None = None
    dedupe: Dedupe | None = None
    #: Lines to address at most (the most valuable first); the rest are recorded as suppressed.
    max_targets: int = Field(default=5000, ge=1)


class Playbook(_Strict):
    name: str = Field(pattern=_NAME)
    label: str = ""
    description: str = ""
    enabled: bool = True
    dry_run: bool = False
    trigger: Trigger
    when: str | None = None
    steps: list[Step] = Field(min_length=1)


class Offer(_Strict):
    """A retention offer: who may get it, what it costs the operator and what it is worth."""

    name: str = Field(pattern=_NAME)
    label: str
    when: str | None = None
    cost: float = Field(ge=0)  # to the operator, in the currency
    value: float = Field(ge=0)  # to the customer: what the message promises
    #: Not offered to a line whose remaining value is above this (a bigger save needs a person).
    value_cap: float | None = Field(default=None, gt=0)
    valid_s: float = Field(default=14 * 86400.0, alias="valid")

    @field_validator("valid_s", mode="before")
    @classmethod
    def _valid(cls, v: Any) -> float:
        return _dur(v)


class Holdout(_Strict):
    """A randomised share of eligible lines that get nothing, so the effect can be measured."""

    share: float = Field(default=0.2, ge=0, lt=1)
    #: Changing the salt draws a new hold-out group; the draw is a hash of (salt, line id).
    salt: str = "vantage-holdout"


class ChannelLimit(_Strict):
    max: int = Field(ge=0)
    per_s: float = Field(default=7 * 86400.0, alias="per")

    @field_validator("per_s", mode="before")
    @classmethod
    def _per(cls, v: Any) -> float:
        return _dur(v)


class QuietHours(_Strict):
    start: time
    end: time


class ContactPolicy(_Strict):
    """How often a customer may be contacted (docs/playbooks.md)."""

    overall: ChannelLimit = Field(
        default_factory=lambda: ChannelLimit.model_validate({"max": 2, "per": "7d"})
    )
    channels: dict[str, ChannelLimit] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    #: The customers' time zone (IANA name) for quiet hours; ``regions`` overrides it per region.
    timezone: str = "UTC"
    regions: dict[str, str] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        _check_tz(v)
        return v

    @field_validator("regions")
    @classmethod
    def _tzs(cls, v: dict[str, str]) -> dict[str, str]:
        for tz in v.values():
            _check_tz(tz)
        return v


def _check_tz(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Lisbon") from None


class AccountManagers(_Strict):
    """Where account managers are reached: by name, else first.last@domain."""

    directory: dict[str, str] = Field(default_factory=dict)
    domain: str | None = None

    def address(self, name: str | None) -> str | None:
        if not name:
            return None
        if name in self.directory:
            return self.directory[name]
        if self.domain:
            local = re.sub(r"[^a-z0-9]+", ".", name.lower()).strip(".")
            return f"{local}@{self.domain}"
        return None


class PlaybookFile(_Strict):
    playbooks: list[Playbook] = Field(default_factory=list)
    offers: list[Offer] = Field(default_factory=list)
    holdout: Holdout = Field(default_factory=Holdout)
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)
    account_managers: AccountManagers = Field(default_factory=AccountManagers)
    #: The customers' language when the store does not say (templates read ``language``).
    default_language: str = "en"

    def playbook(self, name: str) -> Playbook:
        for p in self.playbooks:
            if p.name == name:
                return p
        raise KeyError(name)


# --- checks beyond the models ---------------------------------------------------------------


def _condition_problem(text: str | None, names: set[str], where: str) -> list[tuple[str, str]]:
    if text is None:
        return []
    try:
        parse_condition(text, names | {"true", "false"})
    except ExpressionError as err:
        return [(where, str(err))]
    return []


def _template_problems(text: str | None, where: str) -> list[tuple[str, str]]:
    if text is None:
        return []
    try:
        template_environment().from_string(text)
    except TemplateSyntaxError as err:
        return [(where, f"not a valid template: {err.message} (line {err.lineno})")]
    return []


def _problems(book: PlaybookFile, actions: dict[str, ActionConfig] | None) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    offers = {o.name for o in book.offers}
    for i, o in enumerate(book.offers):
        if o.name in offers and [x.name for x in book.offers].count(o.name) > 1:
            found.append((f"offers[{i}].name", f"offer {o.name!r} is defined twice"))
        found += _condition_problem(
            o.when, condition_names("line", "churn_risk_crossed"), f"offers[{i}].when"
        )
    for i, p in enumerate(book.playbooks):
        where = f"playbooks[{i}]"
        if p.name in seen:
            found.append((f"{where}.name", f"playbook {p.name!r} is defined twice"))
        seen.add(p.name)
        t = p.trigger
        if t.event == "sla_within" and t.within_s is None:
            found.append((f"{where}.trigger.within", "sla_within needs `within`, e.g. 30m"))
        if t.event == "churn_risk_crossed" and t.band is None:
            found.append(
                (f"{where}.trigger.band", "churn_risk_crossed needs `band`, a churn probability such as 0.3")
            )
        if t.event == "kpi_status" and not t.kpi:
            found.append((f"{where}.trigger.kpi", "kpi_status needs `kpi`, a KPI name of the catalogue"))
        if t.severity is not None and t.severity not in ("critical", "major", "minor", "warning"):
            found.append(
                (
                    f"{where}.trigger.severity",
                    f"expected critical, major, minor or warning, got {t.severity!r}",
                )
            )
        found += _condition_problem(p.when, condition_names(None, t.event), f"{where}.when")
        step_names: set[str] = set()
        for j, s in enumerate(p.steps):
            sw = f"{where}.steps[{j}]"
            if s.name in step_names:
                found.append((f"{sw}.name", f"step {s.name!r} is used twice in this playbook"))
            step_names.add(s.name)
            if actions is not None and s.action not in actions:
                known = ", ".join(sorted(actions)) or "none configured"
                found.append(
                    (f"{sw}.action", f"no action named {s.action!r} in the settings' actions ({known})")
                )
            if t.event == "kpi_status" and s.target != "incident":
                found.append(
                    (f"{sw}.target", "a kpi_status playbook addresses the event only (target: incident)")
                )
            if t.event == "churn_risk_crossed" and s.target not in ("line", "incident"):
                found.append(
                    (f"{sw}.target", "a churn_risk_crossed playbook addresses the line (target: line)")
                )
            if t.event != "churn_risk_crossed" and s.target == "line":
                found.append(
                    (f"{sw}.target", "target `line` is for churn_risk_crossed playbooks; use `lines`")
                )
            if s.offer and s.target != "line":
                found.append((f"{sw}.offer", "offers go to one line at a time (target: line)"))
            if s.offer and not book.offers:
                found.append((f"{sw}.offer", "no offers in the file's `offers` catalogue"))
            names = condition_names(s.target, t.event)
            found += _condition_problem(s.when, names, f"{sw}.when")
            if s.approval is not None:
                found += _condition_problem(s.approval.when, names, f"{sw}.approval.when")
            for field, text in (("to", s.to), ("subject", s.subject), ("body", s.body), ("credit", s.credit)):
                found += _template_problems(text, f"{sw}.{field}")
            for k, v in s.data.items():
                if isinstance(v, str):
                    found += _template_problems(v, f"{sw}.data.{k}")
    return found


def parse_playbooks(
    raw: dict[str, Any], *, file: str = "<playbooks>", actions: list[ActionConfig] | None = None
) -> PlaybookFile:
    """Validate a playbooks mapping; ConfigError with every problem's exact path otherwise."""
    try:
        book = PlaybookFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(file, validation_problems(err)) from None
    problems = _problems(book, None if actions is None else {a.name: a for a in actions})
    if problems:
        raise ConfigError(file, problems)
    return book


def load_playbooks(path: str | Path, *, actions: list[ActionConfig] | None = None) -> PlaybookFile:
    """Load and validate a playbooks file (``actions``: the settings' actions steps may name)."""
    file = Path(path)
    return parse_playbooks(read_yaml_mapping(file, "playbooks"), file=str(file), actions=actions)


def compiled(text: str | None, names: set[str]) -> ast.expr | None:
    """A checked condition, or None for no condition."""
    return None if text is None else parse_condition(text, names | {"true", "false"})
