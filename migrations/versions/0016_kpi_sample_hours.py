"""the hours the ingest path wrote KPI samples into, until the roll-up pass reads them

``kpi_sample_hours`` holds one row per hour that received samples since the last roll-up pass
(dashboard/store/sample_marks.py): the pass recomputes those hours, so a late sample is rolled up
whatever its age, and a pass recomputes only the hours that changed.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 07:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_sample_hours",
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_kpi_sample_hours")),
    )


def downgrade() -> None:
    op.drop_table("kpi_sample_hours")
