"""Contract fixture for ``type: sql``: a SQLite source table read incrementally by update time."""

from __future__ import annotations

import sqlite3

from connectors.base import Connector, ConnectorContext
from connectors.sql import SqlConnector, SqlOptions
from tests.contract import ContractContext


def build(ctx: ContractContext) -> Connector:
    path = ctx.tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE cell_kpi (cell TEXT, name TEXT, ts TEXT, val REAL, updated INTEGER)")
        db.executemany(
            "INSERT INTO cell_kpi VALUES (?, ?, ?, ?, ?)",
            [
                ("C1", "drop_rate_pct", "2026-01-01 10:00:00", 0.4, 1),
                ("C2", "drop_rate_pct", "2026-01-01 10:00:00", 1.2, 2),
                ("C1", "drop_rate_pct", "2026-01-01 10:15:00", 0.5, 3),
            ],
        )
    db.close()
    options = SqlOptions.model_validate(
        {
            "url": f"sqlite:///{path}",
            "table": "cell_kpi",
            "kind": "kpi_samples",
            "mapping": {
                "entity_type": "'cell'",
                "entity_id": "cell",
                "kpi": "name",
                "period_start": "ts",
                "value": "val",
            },
            "cursor": "updated",
            "batch_size": 2,
        }
    )
    return SqlConnector(options, ConnectorContext("contract_sql"))
