"""Every registered connector type honours the connector contract, and every one has a contract module."""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from connectors.base import Batch, Connector, PushRoute, Stream
from connectors.registry import available
from dashboard.ingest.validate import validate
from dashboard.store.schema import CANONICAL_KINDS
from tests.contract import ContractContext
from tests.loopback import LoopbackServer, loopback
from tests.reference import OWN, REFERENCE, payloads

TYPES = sorted(available())
# Every type on the suite's own payloads; the TMF ones again on the reference examples (conformance).
CASES = [pytest.param(t, OWN, id=t) for t in TYPES] + [
    pytest.param(t, REFERENCE, id=f"{t}-reference", marks=pytest.mark.conformance)
    for t in TYPES
    if t.startswith("tmf")
]


def _module_name(type_name: str) -> str:
    return f"tests.contract.{type_name}"


@pytest.fixture
def ctx(tmp_path: Path, origin: str) -> Iterator[ContractContext]:
    tmf = payloads("tmf", origin)
    server: LoopbackServer
    with loopback() as server:
        yield ContractContext(tmp_path=tmp_path, http=server, tmf=tmf)


def _build(type_name: str, ctx: ContractContext) -> Connector:
    if importlib.util.find_spec(_module_name(type_name)) is None:
        pytest.fail(f"connector type {type_name!r} has no contract module tests/contract/{type_name}.py")
    module = importlib.import_module(_module_name(type_name))
    connector = module.build(ctx)
    assert isinstance(connector, Connector), f"{_module_name(type_name)}.build() returned {connector!r}"
    assert connector.type == type_name
    return connector


def _check_batches(connector: Connector, stream: Stream, batches: list[Batch]) -> tuple[int, dict[str, Any]]:
    """Records validate with no rejects; each state round-trips through JSON. Returns (rows, final state)."""
    rows = 0
    state: dict[str, Any] = {}
    for i, batch in enumerate(batches):
        where = f"{connector.type}/{stream.name} batch {i}"
        assert batch.kind in stream.kinds, f"{where}: kind {batch.kind!r} not declared by the stream"
        assert not batch.rejects, f"{where}: connector rejected records: {batch.rejects[:3]}"
        if len(batch.records):
            checked = validate(CANONICAL_KINDS[batch.kind], batch.records, source=connector.name)
            assert not checked.rejected, f"{where}: invalid records: {checked.rejected[:3]}"
            rows += len(checked.rows)
        if batch.state is not None:
            assert isinstance(batch.state, dict), f"{where}: state is not a dict"
            assert json.loads(json.dumps(batch.state)) == batch.state, f"{where}: state does not round-trip"
            state = batch.state
    return rows, state


def test_every_registered_type_has_a_contract_module() -> None:
    missing = [t for t in TYPES if importlib.util.find_spec(_module_name(t)) is None]
    assert not missing, f"registered connector type(s) without tests/contract/<type>.py: {', '.join(missing)}"


@pytest.mark.parametrize(("type_name", "origin"), CASES)
def test_connector_contract(type_name: str, origin: str, ctx: ContractContext) -> None:
    connector = _build(type_name, ctx)
    try:
        result = connector.check()
        assert result.ok, f"{type_name}: check() failed: {result.detail}"
        assert isinstance(connector.Options.model_json_schema(), dict)

        streams = connector.streams()
        routes = connector.push_routes()
        assert all(
            isinstance(r, PushRoute) and r.path.startswith("/") and callable(r.handler) for r in routes
        )
        assert len({r.path for r in routes}) == len(routes), f"{type_name}: duplicate push route paths"
        if not streams:
            # A push-only connector: nothing to read, so it must listen somewhere.
            assert routes, f"{type_name}: declares no streams and no push routes"
            return
        names = [s.name for s in streams]
        assert len(set(names)) == len(names), f"{type_name}: duplicate stream names {names}"
        for s in streams:
            assert s.kinds, f"{type_name}/{s.name}: declares no kinds"
            unknown = [k for k in s.kinds if k not in CANONICAL_KINDS]
            assert not unknown, f"{type_name}/{s.name}: kinds {unknown} are not canonical"

        total = 0
        for s in streams:
            rows, state = _check_batches(connector, s, list(connector.read(s, {})))
            total += rows
            # A second read from the state reached must work (and validate) too.
            _check_batches(connector, s, list(connector.read(s, state)))
        assert total > 0, f"{type_name}: the contract fixture read no records at all"
    finally:
        connector.close()


def test_contract_checks_catch_a_bad_batch() -> None:
    """The helper above fails on invalid records, so the contract test can fail."""

    class _Fake:
        type = "fake"
        name = "fake"

    bad = Batch(
        "kpi_samples",
        pd.DataFrame(
            [
                {
                    "entity_type": "planet",
                    "entity_id": "x",
                    "kpi": "k",
                    "period_start": "2026-01-01",
                    "value": 1,
                }
            ]
        ),
    )
    with pytest.raises(AssertionError, match="invalid records"):
        _check_batches(_Fake(), Stream("s", ("kpi_samples",)), [bad])  # type: ignore[arg-type]


def test_documented_examples_are_valid_configuration() -> None:
    """Every YAML example in docs/connectors.md for a registered type passes the settings check."""
    import re

    import yaml

    from dashboard.config import settings_from_mapping

    doc = (Path(__file__).resolve().parents[1] / "docs" / "connectors.md").read_text(encoding="utf-8")
    checked: set[str] = set()
    for block in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S):
        if "options: {...}" in block:
            continue  # the schematic example
        text = block if block.startswith("connectors:") else "connectors:\n" + block
        data = yaml.safe_load(text)
        settings = settings_from_mapping(data, file="docs/connectors.md", environ={})
        checked.update(c.type for c in settings.connectors)
    assert {"ves", "pm_xml", "prometheus", "sql", "file", "simulator"} <= checked
