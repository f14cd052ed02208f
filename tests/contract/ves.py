"""Contract fixture for ``type: ves``: a push-only listener with a measurement rule."""

from __future__ import annotations

from connectors.base import Connector, ConnectorContext
from connectors.ves import VesConnector, VesOptions
from tests.contract import ContractContext


def build(ctx: ContractContext) -> Connector:
    options = VesOptions.model_validate(
        {"measurements": [{"field": "cpuUsageArray[all].percentUsage", "kpi": "cpu_pct"}]}
    )
    return VesConnector(options, ConnectorContext("contract_ves"))
