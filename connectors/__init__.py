"""OSS/BSS connectors: each maps one kind of source into the canonical model."""

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorError,
    ConnectorOptions,
    FatalError,
    PushRequest,
    PushResponse,
    PushRoute,
    Reject,
    RetriableError,
    Stream,
    VantageError,
)

__all__ = [
    "Batch",
    "CheckResult",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorOptions",
    "FatalError",
    "PushRequest",
    "PushResponse",
    "PushRoute",
    "Reject",
    "RetriableError",
    "Stream",
    "VantageError",
]
