"""who leads each scheduler job family

``scheduler_leaders`` has one row per job family (connectors, queue, kpi, ...): the scheduler
process leading it, since when, when it last beat, and its last job run, so /healthz can say who
runs what. The lock that makes a leader is a PostgreSQL advisory lock (or a file lock on SQLite),
not this table.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduler_leaders",
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("last_job", sa.String(length=64), nullable=True),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("family", name=op.f("pk_scheduler_leaders")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leaders")
