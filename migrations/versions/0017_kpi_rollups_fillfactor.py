"""room in each page of ``kpi_rollups`` for updates in place (PostgreSQL)

An incremental roll-up pass rewrites the current hour's and day's rows every 15 minutes. With half
of each new page left free, the update of a row that changes no indexed column stays on its page (a
heap-only tuple) and adds no index entry; a full page makes every update a new index entry on a
random leaf page of the primary key, whose whole image goes to the WAL (dashboard/kpi_eval/rollup.py,
``_Writer.merge``). Pages written before the change keep their layout. SQLite has no fillfactor.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 19:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Percent of each new heap page filled by inserts; the rest is kept for in-place updates.
FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE kpi_rollups SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE kpi_rollups RESET (fillfactor)")
