"""Shared fixtures: fresh stores on SQLite and PostgreSQL, each migrated and removed afterwards."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import plotly.graph_objects as go
import pytest
from plotly.io.json import to_json_plotly
from sqlalchemy import create_engine, text

from dashboard import figures
from dashboard.store import Store
from tests.incident_net import build_network
from tests.loopback import LoopbackServer, loopback

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("VANTAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

_pg_reachable: bool | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests whose cases share one node id must be marked ``serial``: pytest-xdist schedules by node
    id, so on its workers all but one of those cases would silently never run."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item.nodeid] = seen.get(item.nodeid, 0) + 1
    unmarked = sorted(
        {item.nodeid for item in items if seen[item.nodeid] > 1 and item.get_closest_marker("serial") is None}
    )
    if unmarked:
        raise pytest.UsageError(
            "these tests collect several cases under one node id; mark them serial so that `make test` "
            "runs them in one process: " + ", ".join(unmarked)
        )


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON values first differ (``/layout/title: 'x' != {'text': 'x'}``), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r:.80} != {b!r:.80}"


@pytest.fixture(autouse=True)
def figures_as_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every figure dashboard/figures.py builds in any test (it builds them without plotly's
    validation) is built validated too, and both must send the browser the same JSON: a property
    plotly would refuse raises here, one it would rewrite (a title given as bare text) fails."""
    unvalidated = figures._figure

    def checked(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
        fig = unvalidated(data, layout)
        valid = go.Figure(data=data, layout=layout)
        sent, expected = json.loads(to_json_plotly(fig)), json.loads(to_json_plotly(valid))
        assert sent == expected, (
            f"a figure differs from its validated build at {_first_difference(sent, expected)}"
        )
        return fig

    monkeypatch.setattr(figures, "_figure", checked)


def pg_available() -> bool:
    """Whether the test PostgreSQL answers; in CI its absence is a failure, not a skip."""
    global _pg_reachable
    if _pg_reachable is None:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_reachable = True
        except Exception:
            _pg_reachable = False
    return _pg_reachable


def require_pg() -> None:
    if not pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_URL}")
        pytest.skip("PostgreSQL not reachable (set VANTAGE_TEST_PG_URL)")


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{tmp_path / 'vantage.db'}")
    store.upgrade()
    yield store
    store.dispose()


@pytest.fixture
def pg_store() -> Iterator[Store]:
    require_pg()
    schema = f"vt_{uuid.uuid4().hex[:12]}"
    store = Store(PG_URL, schema=schema)
    store.upgrade()
    try:
        yield store
    finally:
        store.dispose()
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request) -> Store:  # type: ignore[no-untyped-def]
    """The store suite runs once per backend."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1 with routes and scripted responses (tests/loopback.py)."""
    with loopback() as server:
        yield server


@pytest.fixture
def net(store: Store) -> Store:
    """The hand-made network of :mod:`tests.incident_net` on a fresh store."""
    build_network(store)
    return store
