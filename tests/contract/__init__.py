"""Contract cases: per connector type T, ``tests.contract.T.build(ctx)`` returns a configured connector."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.loopback import LoopbackServer


@dataclass(frozen=True)
class ContractContext:
    """What a contract case may use: a temporary directory and a started loopback HTTP server."""

    tmp_path: Path
    http: LoopbackServer
