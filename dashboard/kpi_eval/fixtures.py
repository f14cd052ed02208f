"""Rule tests for KPI thresholds, like ``promtool test rules``: input series in, expected statuses out.

A fixture file::

    catalogue: ../kpi_definitions.yaml     # optional; default the configured catalogue
    tests:
      - name: a short dip does not warn
        kpi: latency_ms
        interval: 15m                      # optional; default the KPI's grain
        series: "40 70 40 70 70 _ 1+1x3"   # `_` no data; a+bxn expands to a, a+b, ... a+n*b
        expect:
          - {at: 15m, status: ok}          # offset from the first period
          - {at: 1h, status: warning}

Each expectation is checked against the status the KPI's thresholds, ``for`` and ``no_data`` rule
give at that period, using the same function as the evaluation job.

A test of a KPI's ``anomaly:`` rule gives the history its baseline learns from as a day's profile,
repeated over ``learn`` (default the rule's ``learn_days``) before ``start`` (default Monday
2024-01-01 00:00, a weekday), and expects learning, normal, anomalous or no_data::

      - name: throughput at half its usual for 30 minutes is anomalous
        kpi: dl_throughput_mbps
        rule: anomaly
        usual: "40"                        # one value, or a day's profile (cycled over 96 quarters)
        start: 2024-01-15T18:00
        series: "41 20 20 20 40 40 40"
        expect:
          - {at: 15m, status: normal}
          - {at: 30m, status: anomalous}
          - {at: 1h30m, status: normal}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.options import parse_duration
from dashboard.config import ConfigError, read_yaml_mapping, validation_problems
from dashboard.errors import VantageError
from dashboard.kpi_eval.anomaly import anomaly_states
from dashboard.kpi_eval.status import STATUSES, status_frame
from dashboard.kpis import Catalogue, load_catalogue
from dashboard.store.schema import ANOMALY_STATES

_START = datetime(2000, 1, 1)
_ANOMALY_START = datetime(2024, 1, 1)  # a Monday
_TERM = re.compile(r"^(?P<a>-?\d+(?:\.\d+)?(?:e-?\d+)?)(?:(?P<sign>[+-])(?P<b>\d+(?:\.\d+)?)x(?P<n>\d+))?$")
_BLANKS = re.compile(r"^_(?:x(?P<n>\d+))?$")


class SeriesError(VantageError, ValueError):
    """A series in the compact notation that cannot be read."""


def expand_series(text: str) -> list[float]:
    """``"0.5 _ 1+0.5x3 _x2"`` -> [0.5, nan, 1, 1.5, 2, 2.5, nan, nan] (promtool's notation)."""
    out: list[float] = []
    for token in str(text).split():
        blank = _BLANKS.match(token)
        if blank:
            out.extend([float("nan")] * int(blank.group("n") or 1))
            continue
        m = _TERM.match(token)
        if not m:
            raise SeriesError(f"cannot read {token!r}: expected a number, _, a+bxn, a-bxn or _xn")
        a = float(m.group("a"))
        if m.group("b") is None:
            out.append(a)
            continue
        b = float(m.group("b")) * (1 if m.group("sign") == "+" else -1)
        out.extend(a + i * b for i in range(int(m.group("n")) + 1))
    return out


def _dur(v: Any) -> float:
    return 0.0 if v in (0, "0", None) else parse_duration(v)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expectation(_Strict):
    at_s: float = Field(alias="at", ge=0)
    status: str

    @field_validator("at_s", mode="before")
    @classmethod
    def _at(cls, v: Any) -> float:
        return _dur(v)

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        known = dict.fromkeys([*STATUSES, *ANOMALY_STATES])
        if v not in known:
            raise ValueError(f"expected one of {', '.join(known)}")
        return v


class RuleTest(_Strict):
    name: str = Field(min_length=1)
    kpi: str
    interval_s: float | None = Field(default=None, alias="interval", gt=0)
    series: str
    expect: list[Expectation] = Field(min_length=1)
    rule: Literal["thresholds", "anomaly"] = "thresholds"
    usual: str | None = None
    learn_s: float | None = Field(default=None, alias="learn", gt=0)
    start: datetime | None = None

    @field_validator("learn_s", mode="before")
    @classmethod
    def _learn(cls, v: Any) -> float | None:
        return None if v is None else _dur(v)

    @field_validator("usual", mode="before")
    @classmethod
    def _usual(cls, v: Any) -> str | None:
        if v is None:
            return None
        return " ".join(str(x) for x in v) if isinstance(v, list) else str(v)

    @field_validator("interval_s", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> float | None:
        return None if v is None else _dur(v)

    @field_validator("series", mode="before")
    @classmethod
    def _series(cls, v: Any) -> str:
        return " ".join(str(x) for x in v) if isinstance(v, list) else str(v)


class RuleFile(_Strict):
    catalogue: str | None = None
    tests: list[RuleTest] = Field(min_length=1)


@dataclass(frozen=True)
class Failure:
    test: str
    at_s: float
    period_start: datetime | None
    expected: str
    got: str
    value: float | None

    def __str__(self) -> str:
        when = f"at {_fmt_offset(self.at_s)}"
        if self.period_start is not None:
            when += f" ({self.period_start:%Y-%m-%d %H:%M})"
        value = "" if self.value is None else f", value {self.value:g}"
        return f"test {self.test!r} {when}: expected {self.expected}, got {self.got}{value}"


def _fmt_offset(seconds: float) -> str:
    if seconds and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m"


@dataclass
class RuleResult:
    file: str
    tests: int
    checks: int
    failures: list[Failure]

    @property
    def ok(self) -> bool:
        return not self.failures


def load_rule_file(path: str | Path) -> RuleFile:
    file = Path(path)
    raw = read_yaml_mapping(file, "rule tests")
    try:
        rules = RuleFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(str(file), validation_problems(err)) from None
    problems = []
    for i, t in enumerate(rules.tests):
        try:
            expand_series(t.series)
        except SeriesError as err:
            problems.append((f"tests[{i}].series", str(err)))
        allowed = ANOMALY_STATES if t.rule == "anomaly" else STATUSES
        for j, e in enumerate(t.expect):
            if e.status not in allowed:
                problems.append((f"tests[{i}].expect[{j}].status", f"expected one of {', '.join(allowed)}"))
        if t.rule == "anomaly":
            if not t.usual:
                problems.append(
                    (f"tests[{i}].usual", "an anomaly test needs the usual day the baseline learns")
                )
            else:
                try:
                    usual = expand_series(t.usual)
                except SeriesError as err:
                    problems.append((f"tests[{i}].usual", str(err)))
                else:
                    if not 1 <= len(usual) <= 96 or 96 % len(usual) or any(v != v for v in usual):
                        problems.append(
                            (
                                f"tests[{i}].usual",
                                "expected 1 to 96 numbers that divide a day (1, 2, 4, ... 96)",
                            )
                        )
            if t.interval_s not in (None, 900):
                problems.append((f"tests[{i}].interval", "baselines are kept per 15 minutes"))
        elif t.usual is not None or t.learn_s is not None or t.start is not None:
            problems.append((f"tests[{i}].rule", "usual, learn and start belong to `rule: anomaly` tests"))
    if problems:
        raise ConfigError(str(file), problems)
    return rules


def run_rule_tests(path: str | Path, catalogue: Catalogue | None = None) -> RuleResult:
    """Run a fixture file's tests against the catalogue (the file's own ``catalogue:`` first)."""
    file = Path(path)
    rules = load_rule_file(file)
    if rules.catalogue:
        cat_path = Path(rules.catalogue)
        catalogue = load_catalogue(cat_path if cat_path.is_absolute() else file.parent / cat_path)
    if catalogue is None:
        raise ConfigError(str(file), [("catalogue", "no catalogue given and none configured")])
    problems = [
        (f"tests[{i}].kpi", f"unknown KPI {t.kpi!r}")
        for i, t in enumerate(rules.tests)
        if t.kpi not in catalogue.names
    ]
    problems += [
        (f"tests[{i}].rule", f"{t.kpi} has no anomaly rule in the catalogue")
        for i, t in enumerate(rules.tests)
        if t.rule == "anomaly" and t.kpi in catalogue.names and catalogue.get(t.kpi).anomaly is None
    ]
    if problems:
        raise ConfigError(str(file), problems)
    failures: list[Failure] = []
    checks = 0
    for t in rules.tests:
        kpi = catalogue.get(t.kpi)
        grain = t.interval_s or kpi.grain
        values = expand_series(t.series)
        if t.rule == "anomaly" and kpi.anomaly is not None:
            start = t.start or _ANOMALY_START
            learn = timedelta(seconds=t.learn_s) if t.learn_s else timedelta(days=kpi.anomaly.learn_days)
            index = pd.date_range(start, periods=len(values), freq=f"{grain:g}s")
            states = anomaly_states(kpi, expand_series(t.usual or ""), values, start=start, learn=learn)
            statuses = pd.Series(states, index=index)
        else:
            index = pd.date_range(_START, periods=len(values), freq=f"{grain:g}s")
            frame = pd.DataFrame({"v": np.asarray(values, dtype=float)}, index=index)
            statuses = status_frame(frame, kpi, grain_s=grain)["v"]
        for e in t.expect:
            checks += 1
            i = e.at_s / grain
            if i != int(i) or int(i) >= len(values):
                got = "outside the series" if i == int(i) else f"not on a period boundary ({grain:g} s)"
                failures.append(Failure(t.name, e.at_s, None, e.status, got, None))
                continue
            got = str(statuses.iloc[int(i)])
            if got != e.status:
                v = values[int(i)]
                failures.append(
                    Failure(
                        t.name, e.at_s, index[int(i)].to_pydatetime(), e.status, got, None if v != v else v
                    )
                )
    return RuleResult(file=str(file), tests=len(rules.tests), checks=checks, failures=failures)


__all__ = ["Failure", "RuleResult", "SeriesError", "expand_series", "load_rule_file", "run_rule_tests"]
