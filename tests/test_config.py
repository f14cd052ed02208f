"""Settings and KPI catalogue: valid files load, bad ones name the file, the path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dashboard.cli import main
from dashboard.config import (
    ConfigError,
    load_settings,
    parse_duration,
    secret_from_env,
    settings_from_mapping,
)
from dashboard.kpis import ExpressionError, evaluate, load_catalogue, parse_expression

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_settings_and_catalogue_are_valid() -> None:
    settings = load_settings(ROOT / "vantage.yaml", environ={})
    assert [c.name for c in settings.enabled_connectors] == ["simulator"]
    assert settings.connector("simulator").interval == 60.0
    cat = load_catalogue(settings.kpi_definitions_path())
    assert {"drop_call_rate_pct", "latency_ms", "availability_pct", "churn_rate_pct"} <= set(cat.names)


def test_every_kpi_is_documented_and_every_link_resolves() -> None:
    cat = load_catalogue(ROOT / "kpi_definitions.yaml")
    text = (ROOT / "docs" / "kpis.md").read_text()
    for k in cat.kpis:
        assert k.label and k.description and k.unit, k.name
        assert f"`{k.name}`" in text, f"{k.name} is not described in docs/kpis.md"
        for link in k.drives:
            assert cat.get(link.kpi).domain in ("technical", "business")
    assert abs(cat.scoring.weights.total() - 1.0) < 1e-9


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("1h", 3600.0), ("1d", 86400.0), ("500ms", 0.5)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def _problems(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    f = tmp_path / "vantage.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(f, environ={})
    assert str(f) in str(info.value)
    return info.value.problems


def test_errors_name_the_path_and_what_was_expected(tmp_path: Path) -> None:
    problems = dict(
        _problems(
            tmp_path,
            """
connectors:
  - {name: a, type: simulator}
  - {name: b, type: simulator, options: {subscribers: lots}}
  - {name: c, type: simulator, interval: soon}
  - {name: d, type: no_such_thing}
""",
        )
    )
    assert "expected a duration" in problems["connectors[2].interval"]
    assert "unknown connector type 'no_such_thing'" in problems["connectors[3].type"]


def test_connector_options_are_checked_by_the_connector_type(tmp_path: Path) -> None:
    problems = dict(
        _problems(
            tmp_path,
            """
connectors:
  - {name: a, type: simulator, options: {subscribers: lots, colour: red}}
""",
        )
    )
    assert "connectors[0].options.subscribers" in problems
    assert "unknown key" in problems["connectors[0].options.colour"]


def test_yaml_syntax_and_shape_errors(tmp_path: Path) -> None:
    ((where, msg),) = _problems(tmp_path, "connectors: [\n  - name: x\n")
    assert "not valid YAML" in msg and where.startswith("line ")
    ((where, msg),) = _problems(tmp_path, "- just\n- a list\n")
    assert "expected a mapping" in msg
    problems = dict(
        _problems(tmp_path, "connectors:\n  - {name: a, type: simulator}\n  - {name: a, type: simulator}\n")
    )
    assert "used twice" in problems["connectors"]


def test_environment_overrides_the_store_url(tmp_path: Path) -> None:
    s = settings_from_mapping(
        {"database_url": "sqlite:///a.db"}, environ={"VANTAGE_DATABASE_URL": "sqlite:///b.db"}
    )
    assert s.database_url == "sqlite:///b.db"


def test_secrets_come_from_the_environment_and_errors_name_only_the_variable() -> None:
    assert secret_from_env("TMF_TOKEN", environ={"TMF_TOKEN": "s3cr3t"}) == "s3cr3t"
    with pytest.raises(ConfigError) as info:
        secret_from_env("TMF_TOKEN", environ={})
    assert "TMF_TOKEN" in str(info.value)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ROOT / "vantage.yaml"), "check-config"]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("connectors:\n  - {name: a, type: simulator, interval: -5}\n")
    assert main(["--config", str(bad), "check-config"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: connectors[0].interval: expected a positive duration" in err


SCORING = """scoring:
  weights: {severity: 1.0, subscriber_value: 0, revenue_at_risk: 0, sla_urgency: 0,
            sentiment: 0, churn_risk: 0}
  severity_points: {critical: 1.0}
  impact: {availability_kpi: a, throughput_kpi: a}
"""


def _catalogue_problems(tmp_path: Path, kpis: str) -> dict[str, str]:
    f = tmp_path / "kpis.yaml"
    f.write_text(kpis + "\n" + SCORING)
    with pytest.raises(ConfigError) as info:
        load_catalogue(f)
    return dict(info.value.problems)


BASE = (
    "  - {name: a, label: A, unit: x, description: d, domain: technical, type: simple,"
    " direction: higher_is_better}\n"
)


def test_catalogue_errors_have_exact_paths(tmp_path: Path) -> None:
    problems = _catalogue_problems(
        tmp_path,
        "kpis:\n"
        + BASE
        + """  - name: b
    label: B
    unit: x
    description: d
    domain: technical
    type: simple
    direction: lower_is_better
    thresholds: {critical: {op: "=~", value: 1}}
    drives: [{kpi: nowhere, direction: positive}]
""",
    )
    assert "kpis[1].thresholds.critical.op" in problems
    problems = _catalogue_problems(
        tmp_path,
        "kpis:\n"
        + BASE
        + """  - name: b
    label: B
    unit: x
    description: d
    domain: technical
    type: simple
    direction: lower_is_better
    drives: [{kpi: nowhere, direction: positive}]
""",
    )
    assert problems["kpis[1].drives[0].kpi"] == "unknown KPI 'nowhere'"


def test_catalogue_rejects_unknown_references_and_cycles(tmp_path: Path) -> None:
    derived = """  - {{name: {n}, label: L, unit: x, description: d, domain: technical, type: derived,
     direction: higher_is_better, expression: "{e}"}}
"""
    problems = _catalogue_problems(tmp_path, "kpis:\n" + BASE + derived.format(n="b", e="a / ghost"))
    assert problems["kpis[1].expression"] == "unknown KPI 'ghost'"
    problems = _catalogue_problems(
        tmp_path, "kpis:\n" + BASE + derived.format(n="b", e="c + a") + derived.format(n="c", e="b * 2")
    )
    assert "depends on itself" in problems["kpis[1].expression"]
    problems = _catalogue_problems(tmp_path, "kpis:\n" + BASE + derived.format(n="b", e="__import__('os')"))
    assert "not allowed" in problems["kpis[1].expression"]


def test_queue_scoring_rules_are_checked_with_paths(tmp_path: Path) -> None:
    f = tmp_path / "kpis.yaml"
    f.write_text(
        "kpis:\n"
        + BASE
        + """scoring:
  weights: {severity: 1.0, subscriber_value: -1, revenue_at_risk: 0, sla_urgency: 0,
            sentiment: 0, churn_risk: 0}
  severity_points: {critical: 1.0, catastrophic: 2.0}
  sla: {urgency_horizon: soon, min_degraded_share: 2}
  impact: {availability_kpi: a, throughput_kpi: ghost}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_catalogue(f)
    problems = dict(info.value.problems)
    assert "scoring.weights.subscriber_value" in problems
    assert "scoring.sla.urgency_horizon" in problems
    assert "scoring.sla.min_degraded_share" in problems
    f.write_text(
        f.read_text()
        .replace("subscriber_value: -1", "subscriber_value: 0")
        .replace("{urgency_horizon: soon, min_degraded_share: 2}", "{}")
    )
    with pytest.raises(ConfigError) as info:
        load_catalogue(f)
    problems = dict(info.value.problems)
    assert "unknown severity" in problems["scoring.severity_points.catastrophic"]
    assert problems["scoring.impact.throughput_kpi"] == "unknown KPI 'ghost'"


def test_safe_evaluator() -> None:
    s = pd.Series([10.0, 20.0, 0.0])
    out = evaluate("traffic_gb / (availability_pct / 100)", {"traffic_gb": s * 2, "availability_pct": s * 10})
    assert out.iloc[0] == pytest.approx(20.0) and out.iloc[1] == pytest.approx(20.0) and pd.isna(out.iloc[2])
    assert evaluate("-a + 2 * b", {"a": 1.0, "b": 3.0}) == 5.0
    for bad in ("a ** 2", "a.__class__", "f(a)", "a if b else c", "'text'"):
        with pytest.raises(ExpressionError):
            parse_expression(bad)


def test_a_connector_refuses_options_meant_for_another_type() -> None:
    from connectors.base import ConnectorContext, ConnectorOptions
    from connectors.files import FileConnector

    with pytest.raises(TypeError, match="FileConnector takes FileOptions, got ConnectorOptions"):
        FileConnector(ConnectorOptions(), ConnectorContext(name="f"))


def _kpi(name: str, direction: str = "lower_is_better", extra: str = "") -> str:
    return (
        f"  - {{name: {name}, label: L, unit: x, description: d, domain: technical, type: simple,"
        f" direction: {direction}{extra}}}\n"
    )


def test_thresholds_must_point_the_bad_way_and_hold_a_whole_number_of_periods(tmp_path: Path) -> None:
    wrong_way = ", thresholds: {warning: {op: '<', value: 1}}"
    problems = _catalogue_problems(tmp_path, "kpis:\n" + _kpi("a", extra=wrong_way))
    assert "a breach is > or >=, not <" in problems["kpis[0].thresholds.warning.op"]
    milder_critical = ", thresholds: {warning: {op: '<', value: 95}, critical: {op: '<', value: 98}}"
    problems = _catalogue_problems(tmp_path, "kpis:\n" + _kpi("b", "higher_is_better", milder_critical))
    assert "at least as bad as warning" in problems["kpis[0].thresholds.critical.value"]
    odd_for = ", thresholds: {critical: {op: '>', value: 3, for: 20m}}"
    problems = _catalogue_problems(tmp_path, "kpis:\n" + _kpi("c", extra=odd_for))
    assert "multiple of the KPI's grain (900 s)" in problems["kpis[0].thresholds.critical.for"]


def test_drives_links_must_not_form_a_cycle(tmp_path: Path) -> None:
    problems = _catalogue_problems(
        tmp_path,
        "kpis:\n"
        + _kpi("a", extra=", drives: [{kpi: b, direction: positive}]")
        + _kpi("b", extra=", drives: [{kpi: c, direction: positive}]")
        + _kpi("c", extra=", drives: [{kpi: a, direction: negative}]"),
    )
    assert problems["kpis[2].drives[0].kpi"] == "drives form a cycle: a -> b -> c -> a"


def test_ratio_formulas_refer_to_measures_only(tmp_path: Path) -> None:
    ratio = (
        "  - {name: r, label: R, unit: x, description: d, domain: business, type: ratio,"
        " direction: lower_is_better, formula: '1000 * tickets / lines'}\n"
    )
    problems = _catalogue_problems(tmp_path, "kpis:\n" + ratio)
    assert problems["kpis[0].formula"].startswith("unknown measure 'lines'; expected one of samples, tickets")
