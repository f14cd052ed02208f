"""the earliest sample period each hour's mark covers

A roll-up pass adds the samples of periods no pass has read to the rows of their hours and days
instead of adding every hour up again (dashboard/kpi_eval/rollup.py, ``_fold_periods``). It may do
so only when no sample went into a period a pass already read: ``first_period`` is the earliest
period the ingest path wrote into the hour since the mark was last taken. Marks written before this
revision have none, and their hours are added up again.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 23:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kpi_sample_hours") as batch:
        batch.add_column(sa.Column("first_period", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kpi_sample_hours") as batch:
        batch.drop_column("first_period")
