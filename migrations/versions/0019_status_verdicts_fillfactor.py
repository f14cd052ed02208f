"""room in each page of ``kpi_status`` and ``kpi_anomalies`` for updates in place (PostgreSQL)

Every evaluation pass writes each status and each anomaly verdict again (a new value, period and
time). They are now written over the stored rows in place (``dashboard/kpi_eval/_write.py``,
``replace_columns``) instead of deleted and inserted; with half of each new page free, such an
update changes no index and stays on its page (a heap-only tuple), and the table no longer grows by
a dead copy of every row per pass until a vacuum. Pages written before the change keep their layout
until the table is rewritten (``VACUUM FULL``, which a deployment may run at a quiet hour); SQLite
has no fillfactor.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 02:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Percent of each new heap page filled by inserts; the rest is kept for in-place updates.
FILLFACTOR = 50
TABLES = ("kpi_status", "kpi_anomalies")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
