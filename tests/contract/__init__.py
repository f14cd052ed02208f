"""Contract cases: per connector type T, ``tests.contract.T.build(ctx)`` returns a configured connector."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.loopback import LoopbackServer
from tests.reference import OWN, Payloads, payloads


@dataclass(frozen=True)
class ContractContext:
    """What a contract case may use: a temporary directory, a started loopback HTTP server, payloads.

    ``tmf`` holds the suite's own TMF payloads, or the reference examples in a conformance run.
    """

    tmp_path: Path
    http: LoopbackServer
    tmf: Payloads = field(default_factory=lambda: payloads("tmf", OWN))
