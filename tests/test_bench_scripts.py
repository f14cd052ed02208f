"""Every benchmark under bench/ runs the way the README says: ``python bench/NAME.py [options]``.

Run as a script, a benchmark's own folder comes first on ``sys.path``, where ``bench/queue.py`` would
stand in for the standard library's ``queue`` (which pandas imports): each script moves that folder
last and puts the project's root first before it imports anything else. Checked on every script's
source, and by starting two of them (``--help`` imports everything a real run imports).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
#: What a script may import before it fixes its path.
BEFORE_THE_FIX = {"__future__", "sys", "pathlib"}


def _imports_before_the_fix(source: str) -> list[str]:
    seen: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            seen += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            seen.append((node.module or "").split(".")[0])
        elif "sys.path.sort" in ast.unparse(node):
            return [m for m in seen if m not in BEFORE_THE_FIX]
    raise AssertionError("no sys.path.sort(...) at the top level")


def test_the_benchmarks_are_found() -> None:
    assert {"scale.py", "load.py", "kpi_eval.py", "queue.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_fixes_its_path_before_it_imports(name: str) -> None:
    assert _imports_before_the_fix((ROOT / "bench" / name).read_text(encoding="utf-8")) == []


def test_the_check_sees_an_import_before_the_fix() -> None:
    late = "import pandas\nimport sys\nsys.path.sort(key=len)\n"
    assert _imports_before_the_fix(late) == ["pandas"]
    with pytest.raises(AssertionError):
        _imports_before_the_fix("import sys\n")


@pytest.mark.parametrize("name", ["kpi_eval.py", "scale.py"])
def test_a_benchmark_starts_as_a_script(name: str) -> None:
    done = subprocess.run(
        [sys.executable, f"bench/{name}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
