"""Contract case for ``type: simulator``: a small simulated operator with a busy network."""

from __future__ import annotations

from connectors.base import Connector, ConnectorContext
from connectors.simulator import SimulatorConnector, SimulatorOptions
from tests.contract import ContractContext


def build(ctx: ContractContext) -> Connector:
    options = SimulatorOptions(subscribers=500, days=1, causal={"incident_rate_per_resource_day": 0.2})
    return SimulatorConnector(options, ConnectorContext(name="simulator"))
