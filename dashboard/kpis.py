"""The KPI catalogue (``kpi_definitions.yaml``): validated definitions and a safe expression evaluator.

Derived expressions are parsed with ``ast`` into a small tree of arithmetic over KPI names and
numbers, never ``eval``; unknown references and cycles fail at start-up with the exact path.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement, Float, case, literal

from connectors.canonical import SEGMENTS, SEVERITIES
from connectors.options import parse_duration
from dashboard.config import ConfigError, read_yaml_mapping, validation_problems
from dashboard.errors import VantageError

_NAME = r"^[a-z][a-z0-9_]*$"
Segment = Literal["consumer", "smb", "enterprise"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Threshold(_Strict):
    op: Literal["<", "<=", ">", ">="]
    value: float
    for_s: float = Field(default=0.0, alias="for")

    @field_validator("for_s", mode="before")
    @classmethod
    def _for(cls, v: Any) -> float:
        return 0.0 if v in (0, "0", None) else parse_duration(v)

    def breached(self, values: Any) -> Any:
        """Where ``values`` (a Series, a frame or an array) meet the threshold's condition."""
        ops: dict[str, Callable[[Any, Any], Any]] = {
            "<": operator.lt,
            "<=": operator.le,
            ">": operator.gt,
            ">=": operator.ge,
        }
        return ops[self.op](values, self.value)


class Thresholds(_Strict):
    warning: Threshold | None = None
    critical: Threshold | None = None


ANOMALY_LEVELS = ("cell", "site", "region")
AnomalyLevel = Literal["cell", "site", "region"]


def _default_anomaly_levels() -> list[AnomalyLevel]:
    return ["cell", "site"]


class AnomalyRule(_Strict):
    """When a KPI counts as anomalous against its seasonal baseline (docs/kpis.md, "Seasonal baselines").

    A period is out of band when its value is at least ``min_z`` robust scales and ``min_deviation``
    (a share of the usual level) away from the usual value for its quarter hour of a weekday or
    weekend day, in ``direction``; the series turns anomalous once that has held for ``for`` (in
    ``for / grain + 1`` consecutive periods, as thresholds read ``for``) and returns to normal after
    ``clear_after`` of periods back in band.
    """

    direction: Literal["below", "above", "both"] | None = None
    min_z: float = Field(default=3.5, gt=0)
    min_deviation: float = Field(default=0.2, ge=0, le=10)
    for_s: float = Field(default=900.0, alias="for", ge=0)
    clear_after_s: float = Field(default=1800.0, alias="clear_after", ge=0)
    min_traffic_gb: float = Field(default=0.0, ge=0)
    levels: list[AnomalyLevel] = Field(default_factory=_default_anomaly_levels, min_length=1)
    learn_days: int = Field(default=7, ge=1, le=400)

    @field_validator("for_s", "clear_after_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return _duration(v)

    def bad_way(self, kpi_direction: str) -> str:
        """The direction a deviation must take to count: the rule's own, else the KPI's bad way."""
        if self.direction is not None:
            return self.direction
        return "below" if kpi_direction == "higher_is_better" else "above"

    def periods(self, grain_s: float) -> int:
        """Consecutive out-of-band periods before the series counts as anomalous."""
        return int(self.for_s // grain_s) + 1

    def clear_periods(self, grain_s: float) -> int:
        """Consecutive in-band periods before an anomalous series is normal again (at least one)."""
        return max(1, int(self.clear_after_s // grain_s))


def deviation_words(rel: float) -> str:
    """A deviation from the usual value in words: ``46% below usual``, ``30% above usual``, ``2.1x
    usual`` (what detected incidents, bands and pages say)."""
    if rel < 0:
        return f"{abs(rel) * 100:.0f}% below usual"
    if rel >= 1:
        return f"{1 + rel:.1f}x usual"
    return f"{rel * 100:.0f}% above usual"


class Link(_Strict):
    kpi: str
    direction: Literal["positive", "negative"]
    max_lag_s: float = Field(default=7 * 86400.0, alias="max_lag", ge=0)

    @field_validator("max_lag_s", mode="before")
    @classmethod
    def _lag(cls, v: Any) -> float:
        return _duration(v)


# The additive quantities the store holds, which ``formula`` of simple and ratio KPIs refer to.
# Each is a sum per entity and period, so it rolls up to sites, regions, segments and the network
# by addition, and ratios are taken after the roll-up (a ratio of sums, never a mean of ratios).
# dashboard/kpi_eval computes them; docs/kpis.md says from which tables.
MEASURES: dict[str, str] = {
    "samples": "the KPI's own samples in kpi_samples (per cell and period), rolled up by `aggregate`",
    "tickets": "customer tickets opened in the period",
    "negative_tickets": "tickets opened in the period whose sentiment is negative",
    "positive_tickets": "tickets opened in the period whose sentiment is positive",
    "subscribers": "lines in service (each line counted once, spread over its cells by traffic share)",
    "churned": "lines that churned in the period",
    "revenue": "recurring revenue of the lines in service: ARPU per month / 30.44, per day",
    "revenue_at_risk": "revenue at risk per hour on open incidents, as the queue computed it",
}
AGGREGATES = ("mean", "sum", "traffic_weighted", "min", "max")
DEFAULT_GRAIN_S = {"technical": 900.0, "business": 86400.0}


class KpiDefinition(_Strict):
    name: str = Field(pattern=_NAME)
    label: str = Field(min_length=1)
    unit: str
    description: str = Field(min_length=1)
    domain: Literal["technical", "business"]
    type: Literal["simple", "ratio", "derived"]
    direction: Literal["higher_is_better", "lower_is_better"]
    thresholds: Thresholds = Field(default_factory=Thresholds)
    anomaly: AnomalyRule | None = None
    no_data: Literal["gap", "zero", "last"] = "gap"
    drives: list[Link] = Field(default_factory=list)
    expression: str | None = None
    formula: str | None = None
    aggregate: Literal["mean", "sum", "traffic_weighted", "min", "max"] = "mean"
    grain_s: float = Field(default=0.0, alias="grain", ge=0)
    headline: bool = False
    step: float = Field(default=1.0, gt=0)

    @field_validator("grain_s", mode="before")
    @classmethod
    def _grain(cls, v: Any) -> float:
        return _duration(v)

    @property
    def grain(self) -> float:
        """Seconds per period: the KPI's own ``grain``, else 15 minutes technical, 1 day business."""
        return self.grain_s or DEFAULT_GRAIN_S[self.domain]

    @property
    def source(self) -> str:
        """What a simple KPI reads: ``samples`` or a measure name (ratio/derived: their formula)."""
        return (self.formula or "samples").strip()


def _duration(v: Any) -> float:
    return 0.0 if v in (0, "0", None) else parse_duration(v)


class QueueWeights(_Strict):
    """How much each normalised factor (0..1) counts in the priority score."""

    severity: float = Field(ge=0)
    subscriber_value: float = Field(ge=0)
    revenue_at_risk: float = Field(ge=0)
    sla_urgency: float = Field(ge=0)
    sentiment: float = Field(ge=0)
    churn_risk: float = Field(ge=0)

    def total(self) -> float:
        return float(sum(self.model_dump().values()))


class SlaRules(_Strict):
    min_degraded_share: float = Field(default=0.2, ge=0, le=1)
    urgency_horizon_s: float = Field(default=7200.0, alias="urgency_horizon", gt=0)
    default_restore_minutes: dict[Segment, int] = Field(default_factory=dict)

    @field_validator("urgency_horizon_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return _duration(v)


class RevenueRules(_Strict):
    hours_per_month: float = Field(default=730.0, gt=0)
    churn_hazard_per_outage_hour: float = Field(default=0.001, ge=0, le=1)
    churn_risk_amplifier: float = Field(default=4.0, ge=0)
    lifetime_months: float = Field(default=24.0, ge=0)


class CorrelationRules(_Strict):
    window_s: float = Field(default=600.0, alias="window", ge=0)
    flap_hold_s: float = Field(default=900.0, alias="flap_hold", ge=0)
    close_after_s: float = Field(default=3600.0, alias="close_after", ge=0)
    lookback_s: float = Field(default=35 * 86400.0, alias="lookback", gt=0)

    @field_validator("window_s", "flap_hold_s", "close_after_s", "lookback_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return _duration(v)


class ImpactRules(_Strict):
    availability_kpi: str = "availability_pct"
    throughput_kpi: str = "dl_throughput_mbps"
    baseline_s: float = Field(default=3600.0, alias="baseline", gt=0)
    assumed_share: float = Field(default=1.0, ge=0, le=1)
    min_share: float = Field(default=0.05, ge=0, le=1)

    @field_validator("baseline_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return _duration(v)


CONSUMER = SEGMENTS.index("consumer")


def segment_codes(values: Iterable[Any]) -> np.ndarray:
    """Segment names as positions in SEGMENTS; a missing or unknown segment counts as consumer."""
    code = {s: i for i, s in enumerate(SEGMENTS)}
    return np.fromiter((code.get(v, CONSUMER) for v in values), dtype=np.int8)


class Scoring(_Strict):
    """The value-weighted incident priority: weights, multipliers, SLA and correlation rules.

    What a line is worth is defined here once (:meth:`line_value`), in Python, vectorised
    (:meth:`line_multipliers`) and as SQL (:meth:`line_multiplier_sql`), all from
    :meth:`segment_multiplier`: a line is worth its ARPU x its account's segment multiplier x the
    VIP multiplier when the account is VIP. A line with no account or an unknown segment counts as
    consumer; a segment the catalogue gives no multiplier has 1.
    """

    weights: QueueWeights
    severity_points: dict[str, float]
    segment_multipliers: dict[Segment, float] = Field(default_factory=dict)
    vip_multiplier: float = Field(default=1.0, ge=1.0)
    value_half_point: float = Field(default=5000.0, gt=0)
    revenue_half_point: float = Field(default=500.0, gt=0)
    sentiment_floor: float = Field(default=-0.5, lt=0, ge=-1)
    churn_risk_ceiling: float = Field(default=0.25, gt=0, le=1)
    sla: SlaRules = Field(default_factory=SlaRules)
    revenue_at_risk: RevenueRules = Field(default_factory=RevenueRules)
    correlation: CorrelationRules = Field(default_factory=CorrelationRules)
    impact: ImpactRules = Field(default_factory=ImpactRules)

    def segment_multiplier(self, segment: str | None) -> float:
        """The weight of a line of ``segment`` (consumer for a missing or unknown one)."""
        known = segment if segment in SEGMENTS else "consumer"
        return float(self.segment_multipliers.get(known, 1.0))  # type: ignore[call-overload]

    def line_multiplier(self, segment: str | None, vip: bool | None) -> float:
        return self.segment_multiplier(segment) * (self.vip_multiplier if vip is True else 1.0)

    def line_value(self, arpu: float | None, segment: str | None, vip: bool | None) -> float:
        """What one line is worth: ARPU (0 when unknown) x :meth:`line_multiplier`."""
        base = float(arpu) if arpu is not None and arpu == arpu else 0.0
        return base * self.line_multiplier(segment, vip)

    def line_multipliers(self, segment_code: np.ndarray, vip: np.ndarray) -> np.ndarray:
        """:meth:`line_multiplier` per row, segments given as :func:`segment_codes`."""
        table = np.array([self.segment_multiplier(s) for s in SEGMENTS], dtype=float)
        return np.asarray(table[segment_code] * np.where(vip == True, self.vip_multiplier, 1.0), dtype=float)  # noqa: E712

    def line_multiplier_sql(self, segment: Any, vip: Any) -> ColumnElement[float]:
        """:meth:`line_multiplier` as a SQL expression over an account's segment and VIP columns
        (NULL for a line without an account counts as consumer, not VIP)."""
        seg = case(
            *[(segment == s, literal(self.segment_multiplier(s), Float)) for s in SEGMENTS],
            else_=literal(self.segment_multiplier(None), Float),
        )
        vip_mult = case(
            (vip.is_(True), literal(float(self.vip_multiplier), Float)), else_=literal(1.0, Float)
        )
        return seg * vip_mult


class Catalogue(_Strict):
    kpis: list[KpiDefinition]
    scoring: Scoring

    def get(self, name: str) -> KpiDefinition:
        found = self.find(name)
        if found is None:
            raise KeyError(f"no KPI named {name!r}")
        return found

    def find(self, name: str) -> KpiDefinition | None:
        """The definition of ``name``, or None for a KPI the catalogue lacks."""
        return next((k for k in self.kpis if k.name == name), None)

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.kpis]


# --- expressions ------------------------------------------------------------------------------

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class ExpressionError(VantageError, ValueError):
    """A derived expression that is not plain arithmetic over KPI names and numbers."""


def parse_expression(text: str) -> ast.expr:
    """Parse and check an expression; only names, numbers, + - * /, unary minus and parentheses."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        raise ExpressionError(f"not a valid expression: {err.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) not in _BINOPS:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        if not isinstance(
            node,
            ast.BinOp | ast.UnaryOp | ast.Name | ast.Constant | ast.Load | ast.operator | ast.USub | ast.UAdd,
        ):
            raise ExpressionError(f"{type(node).__name__} is not allowed (only arithmetic over KPI names)")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise ExpressionError(f"constant {node.value!r} is not a number")
        if isinstance(node, ast.Name) and not re.match(_NAME, node.id):
            raise ExpressionError(f"{node.id!r} is not a KPI name")
    return tree


def references(text: str) -> set[str]:
    return {n.id for n in ast.walk(parse_expression(text)) if isinstance(n, ast.Name)}


def evaluate(text: str, values: Mapping[str, Any]) -> Any:
    """Evaluate an expression over scalars or aligned Series/arrays; division by zero gives NaN."""

    def ev(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Div):
                with np.errstate(divide="ignore", invalid="ignore"):
                    r = np.asarray(right, dtype=float)
                    out = np.divide(np.asarray(left, dtype=float), np.where(r == 0, np.nan, r))
                if isinstance(left, pd.Series) or isinstance(right, pd.Series):
                    idx = left.index if isinstance(left, pd.Series) else right.index
                    return pd.Series(out, index=idx)
                return out if np.ndim(out) else float(out)
            return _BINOPS[type(node.op)](left, right)
        raise ExpressionError(f"cannot evaluate {type(node).__name__}")

    return ev(parse_expression(text))


# --- conditions -------------------------------------------------------------------------------
# The same safe language, widened for playbooks' conditions: comparisons, and/or/not, strings,
# lists for ``in``, and dotted names (``incident.severity``, ``customer.segment``). Still parsed,
# checked and walked node by node; never ``eval``.

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_CONDITION_NODES = (
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.BinOp,
    ast.operator,
    ast.cmpop,
    ast.Name,
    ast.Attribute,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Load,
)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def parse_condition(text: str, known: Iterable[str] | None = None) -> ast.expr:
    """Parse and check a condition; ``known``: the names it may use (``incident.severity``...)."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        raise ExpressionError(f"not a valid condition: {err.msg}") from None
    allowed = set(known) if known is not None else None
    for node in ast.walk(tree):
        if not isinstance(node, _CONDITION_NODES):
            raise ExpressionError(
                f"{type(node).__name__} is not allowed (only comparisons, and/or/not, arithmetic and names)"
            )
        if isinstance(node, ast.BinOp) and type(node.op) not in _BINOPS:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.Compare) and any(type(op) not in _COMPARE for op in node.ops):
            raise ExpressionError("only == != < <= > >= in and not in compare")
        if isinstance(node, ast.Constant) and not isinstance(
            node.value, int | float | str | bool | type(None)
        ):
            raise ExpressionError(f"constant {node.value!r} is not a number, string, true/false or None")
        if isinstance(node, ast.Attribute | ast.Name):
            name = _dotted(node)
            if name is None:
                raise ExpressionError("only names and dotted names (incident.severity) may be read")
    if allowed is not None:
        for name in condition_names(tree):
            if name not in allowed:
                near = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ExpressionError(f"unknown name {name!r}{hint}")
    return tree


def condition_names(tree: ast.expr) -> set[str]:
    """The dotted names a parsed condition reads."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        name = _dotted(node) if isinstance(node, ast.Attribute | ast.Name) else None
        if name is not None:
            names.add(name)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def evaluate_condition(tree: ast.expr | str, values: Mapping[str, Any]) -> Any:
    """Evaluate a condition over scalars (``values``: dotted name -> value). A comparison with a
    missing value (None) is false, so a rule on churn risk does not fire for unscored lines."""
    if isinstance(tree, str):
        tree = parse_condition(tree)

    def ev(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name | ast.Attribute):
            return values.get(_dotted(node) or "")
        if isinstance(node, ast.List | ast.Tuple):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(ev(v) for v in node.values)
            return any(ev(v) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            if isinstance(node.op, ast.Not):
                return not v
            if v is None:
                return None
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Div) and right == 0:
                return None
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = ev(comp)
                if (left is None or right is None) and not isinstance(op, ast.Eq | ast.NotEq):
                    return False
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:
                    return False
                left = right
            return True
        raise ExpressionError(f"cannot evaluate {type(node).__name__}")

    return ev(tree)


# --- loading ----------------------------------------------------------------------------------


def _measures() -> str:
    return ", ".join(MEASURES)


def _threshold_problems(k: KpiDefinition, where: str) -> list[tuple[str, str]]:
    """Thresholds that contradict the KPI's direction, each other or its grain."""
    problems: list[tuple[str, str]] = []
    worse = (">", ">=") if k.direction == "lower_is_better" else ("<", "<=")
    levels = {lvl: getattr(k.thresholds, lvl) for lvl in ("warning", "critical")}
    for lvl, t in levels.items():
        if t is None:
            continue
        if t.op not in worse:
            problems.append(
                (
                    f"{where}.thresholds.{lvl}.op",
                    f"{k.name} is {k.direction.replace('_', ' ')}: "
                    f"a breach is {' or '.join(worse)}, not {t.op}",
                )
            )
        if t.for_s < 0 or t.for_s % k.grain:
            problems.append(
                (
                    f"{where}.thresholds.{lvl}.for",
                    f"expected 0 or a multiple of the KPI's grain ({k.grain:g} s), got {t.for_s:g} s",
                )
            )
    w, c = levels["warning"], levels["critical"]
    if w is not None and c is not None and w.op in worse and c.op in worse:
        ok = c.value >= w.value if k.direction == "lower_is_better" else c.value <= w.value
        if not ok:
            problems.append(
                (
                    f"{where}.thresholds.critical.value",
                    f"critical ({c.value:g}) must be at least as bad as warning ({w.value:g})",
                )
            )
    return problems


def _anomaly_problems(k: KpiDefinition, where: str) -> list[tuple[str, str]]:
    """An anomaly rule needs a KPI read from cell samples every 15 minutes, and durations in periods."""
    rule = k.anomaly
    if rule is None:
        return []
    problems: list[tuple[str, str]] = []
    if k.type != "simple" or k.source != "samples":
        problems.append(
            (f"{where}.anomaly", "only KPIs read from samples (formula: samples) take an anomaly rule")
        )
    if k.grain != 900:
        problems.append(
            (
                f"{where}.anomaly",
                f"baselines are kept per quarter hour: expected grain 15m, got {k.grain:g} s",
            )
        )
    for name, seconds in (("for", rule.for_s), ("clear_after", rule.clear_after_s)):
        if seconds % k.grain:
            problems.append(
                (
                    f"{where}.anomaly.{name}",
                    f"expected 0 or a multiple of the KPI's grain ({k.grain:g} s), got {seconds:g} s",
                )
            )
    if len(set(rule.levels)) != len(rule.levels):
        problems.append((f"{where}.anomaly.levels", "a level is named twice"))
    return problems


def _drive_cycles(cat: Catalogue) -> list[tuple[str, str]]:
    """``drives`` links must form a driver tree (a DAG): a cycle is reported at its closing link."""
    index = {k.name: i for i, k in enumerate(cat.kpis)}
    edges = {k.name: [link.kpi for link in k.drives if link.kpi in index] for k in cat.kpis}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    problems: list[tuple[str, str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for j, nxt in enumerate(edges[name]):
            if state.get(nxt) == 1:
                loop = " -> ".join([*path[path.index(nxt) :], name, nxt])
                problems.append((f"kpis[{index[name]}].drives[{j}].kpi", f"drives form a cycle: {loop}"))
            elif nxt not in state:
                visit(nxt, [*path, name])
        state[name] = 2

    for name in edges:
        if name not in state:
            visit(name, [])
    return problems


def _check_references(cat: Catalogue) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    known = set(cat.names)
    seen: set[str] = set()
    deps: dict[str, set[str]] = {}
    for i, k in enumerate(cat.kpis):
        where = f"kpis[{i}]"
        if k.name in seen:
            problems.append((f"{where}.name", f"KPI {k.name!r} is defined twice"))
        seen.add(k.name)
        for j, link in enumerate(k.drives):
            if link.kpi not in known:
                problems.append((f"{where}.drives[{j}].kpi", f"unknown KPI {link.kpi!r}"))
            elif link.kpi == k.name:
                problems.append((f"{where}.drives[{j}].kpi", "a KPI cannot drive itself"))
        problems.extend(_threshold_problems(k, where))
        problems.extend(_anomaly_problems(k, where))
        if k.type == "derived":
            if not k.expression:
                problems.append((f"{where}.expression", "a derived KPI needs an expression"))
                continue
            try:
                refs = references(k.expression)
            except ExpressionError as err:
                problems.append((f"{where}.expression", str(err)))
                continue
            for ref in sorted(refs - known):
                problems.append((f"{where}.expression", f"unknown KPI {ref!r}"))
            deps[k.name] = refs & known
        elif k.type == "ratio":
            if not k.formula:
                problems.append((f"{where}.formula", "a ratio KPI needs a formula over measures"))
                continue
            try:
                refs = references(k.formula)
            except ExpressionError as err:
                problems.append((f"{where}.formula", str(err)))
                continue
            for ref in sorted(refs - set(MEASURES) | refs & {"samples"}):
                expected = f"expected one of {_measures()}"
                problems.append((f"{where}.formula", f"unknown measure {ref!r}; {expected}"))
        else:
            if k.expression:
                problems.append((f"{where}.expression", "only derived KPIs take an expression"))
            if k.source not in MEASURES:
                problems.append(
                    (
                        f"{where}.formula",
                        f"a simple KPI reads 'samples' or one measure; expected one of {_measures()}",
                    )
                )
        if (k.type != "simple" or k.source != "samples") and "aggregate" in k.model_fields_set:
            problems.append((f"{where}.aggregate", "only KPIs read from samples take an aggregate"))
    index = {k.name: i for i, k in enumerate(cat.kpis)}
    for name in deps:  # cycles among derived and ratio KPIs
        stack, path = [name], {name}
        while stack:
            cur = stack.pop()
            for nxt in deps.get(cur, ()):
                if nxt == name:
                    problems.append((f"kpis[{index[name]}].expression", f"{name!r} depends on itself"))
                    stack.clear()
                    break
                if nxt not in path:
                    path.add(nxt)
                    stack.append(nxt)
    problems.extend(_drive_cycles(cat))
    if cat.scoring.weights.total() <= 0:
        problems.append(("scoring.weights", "at least one weight must be above 0"))
    for sev in cat.scoring.severity_points:
        if sev not in SEVERITIES:
            problems.append(
                (f"scoring.severity_points.{sev}", f"unknown severity; expected one of {SEVERITIES}")
            )
    for part in ("availability_kpi", "throughput_kpi"):
        ref = getattr(cat.scoring.impact, part)
        if ref not in known:
            problems.append((f"scoring.impact.{part}", f"unknown KPI {ref!r}"))
    return problems


def load_catalogue(path: str | Path) -> Catalogue:
    """Load and validate the KPI catalogue, raising ConfigError with file and path on any problem."""
    file = Path(path)
    raw = read_yaml_mapping(file, "KPI definitions")
    try:
        cat = Catalogue.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(str(file), validation_problems(err)) from None
    problems = _check_references(cat)
    if problems:
        raise ConfigError(str(file), problems)
    return cat
