"""what an incident's detail shows of its cells and KPI means, kept by the queue refresh

``incident_detail_keys`` holds, per queued incident and part (cells, KPI means), a digest of the
inputs the part was measured from; ``incident_detail_cells`` its cells as the detail lists them
(with their sites and the lines they serve) and ``incident_detail_kpis`` the mean of each impact
KPI over its cells per period, so an incident's detail reads its own rows instead of its cells'
samples, sites and line values.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_detail_keys",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("part", sa.String(length=16), nullable=False),
        sa.Column("inputs_key", sa.String(length=64), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "part", name=op.f("pk_incident_detail_keys")),
    )
    op.create_table(
        "incident_detail_cells",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("cell_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("technology", sa.String(length=8), nullable=True),
        sa.Column("site_id", sa.String(length=128), nullable=True),
        sa.Column("site", sa.String(length=128), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("degraded_share", sa.Float(), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("measured_period", sa.DateTime(), nullable=True),
        sa.Column("lines", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "position", name=op.f("pk_incident_detail_cells")),
    )
    op.create_table(
        "incident_detail_kpis",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "position", name=op.f("pk_incident_detail_kpis")),
    )


def downgrade() -> None:
    op.drop_table("incident_detail_kpis")
    op.drop_table("incident_detail_cells")
    op.drop_table("incident_detail_keys")
