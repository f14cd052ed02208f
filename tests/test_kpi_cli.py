"""``vantage kpi check`` and ``vantage kpi test``: the catalogue check and the threshold rule tests."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dashboard.cli import main
from dashboard.kpi_eval.fixtures import SeriesError, expand_series

FIXTURE = Path(__file__).parent / "fixtures" / "kpi_rules.yaml"


def test_series_notation_expands_like_promtool() -> None:
    got = expand_series("0.5 _ 1+0.5x3 10-2x2 _x2")
    assert got[:1] == [0.5] and math.isnan(got[1])
    assert got[2:9] == [1.0, 1.5, 2.0, 2.5, 10.0, 8.0, 6.0]
    assert len(got) == 11 and all(math.isnan(v) for v in got[9:])
    with pytest.raises(SeriesError, match="'1x'"):
        expand_series("1 1x")


def test_shipped_rule_fixture_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kpi", "test", str(FIXTURE)]) == 0
    assert "SUCCESS" in capsys.readouterr().out


def test_a_crossing_shorter_than_for_does_not_change_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalogue = Path("kpi_definitions.yaml").resolve()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"catalogue: {catalogue}\n"
        "tests:\n"
        "  - name: one day above 3 is not yet a warning\n"
        "    kpi: tickets_per_1k_subscribers\n"  # warning > 3 for 1d: two daily periods
        "    series: '1 4 1'\n"
        "    expect:\n"
        "      - {at: 1d, status: warning}\n"  # wrong on purpose: it must stay ok
        "      - {at: 2d, status: ok}\n",
        encoding="utf-8",
    )
    assert main(["kpi", "test", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "one day above 3 is not yet a warning" in out
    assert "at 1d (2000-01-02 00:00): expected warning, got ok, value 4" in out
    assert "1 failed" in out


def test_rule_file_problems_name_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "tests:\n  - {name: x, kpi: no_such_kpi, series: '1 2', expect: [{at: 0, status: ok}]}\n"
        "  - {name: y, kpi: latency_ms, series: '1 2', expect: [{at: 0, status: fine}]}\n",
        encoding="utf-8",
    )
    assert main(["kpi", "test", str(rules), "--catalogue", "kpi_definitions.yaml"]) == 1
    assert "tests[1].expect[0].status" in capsys.readouterr().err


def test_kpi_check_summarises_and_fails_with_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kpi", "check", "--catalogue", "kpi_definitions.yaml"]) == 0
    out = capsys.readouterr().out
    assert "valid, 16 KPIs" in out and "headline:" in out
    broken = tmp_path / "kpis.yaml"
    text = Path("kpi_definitions.yaml").read_text(encoding="utf-8")
    broken.write_text(
        text.replace(
            'critical: {op: "<", value: 95.0, for: 15m}', 'critical: {op: ">", value: 95.0, for: 15m}', 1
        ),
        encoding="utf-8",
    )
    assert main(["kpi", "check", "--catalogue", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}: kpis[0].thresholds.critical.op" in err
