"""Contract fixture for ``type: file``: a CSV and a Parquet file of KPI samples, in seconds."""

from __future__ import annotations

import pandas as pd

from connectors.base import Connector, ConnectorContext
from connectors.files import FileConnector, FileOptions
from tests.contract import ContractContext


def build(ctx: ContractContext) -> Connector:
    folder = ctx.tmp_path / "files"
    folder.mkdir()
    (folder / "a.csv").write_text(
        "cell,metric,ts,seconds\nC1,latency_ms,2026-01-01T10:00:00Z,0.020\nC2,latency_ms,2026-01-01T10:00:00Z,0.031\n",
        encoding="utf-8",
    )
    pd.DataFrame(
        {
            "cell": ["C3"],
            "metric": ["latency_ms"],
            "ts": [pd.Timestamp("2026-01-01T10:00:00")],
            "seconds": [0.012],
        }
    ).to_parquet(folder / "b.parquet")
    options = FileOptions.model_validate(
        {
            "path": str(folder),
            "kind": "kpi_samples",
            "mapping": {"entity_id": "cell", "kpi": "metric", "period_start": "ts", "value": "seconds"},
            "defaults": {"entity_type": "cell"},
            "units": {"value": {"from": "s", "to": "ms"}},
        }
    )
    return FileConnector(options, ConnectorContext("contract_file"))
