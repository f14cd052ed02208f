"""The built-in simulated operator: a deterministic, causally wired source for every canonical kind."""

from connectors.simulator.causal import DEFAULT_CAUSAL, CausalParameters, TrueLink, linkage_truth
from connectors.simulator.connector import STREAMS, SimulatorConnector, SimulatorOptions, churn_probability
from connectors.simulator.inbox import Inbox, Receipt

__all__ = [
    "DEFAULT_CAUSAL",
    "STREAMS",
    "CausalParameters",
    "Inbox",
    "Receipt",
    "SimulatorConnector",
    "SimulatorOptions",
    "TrueLink",
    "churn_probability",
    "linkage_truth",
]
