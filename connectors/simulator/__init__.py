"""The built-in simulated operator: a deterministic, causally wired source for every canonical kind."""

from connectors.simulator.causal import DEFAULT_CAUSAL, CausalParameters, TrueLink, linkage_truth
from connectors.simulator.connector import STREAMS, SimulatorConnector, SimulatorOptions

__all__ = [
    "DEFAULT_CAUSAL",
    "STREAMS",
    "CausalParameters",
    "SimulatorConnector",
    "SimulatorOptions",
    "TrueLink",
    "linkage_truth",
]
