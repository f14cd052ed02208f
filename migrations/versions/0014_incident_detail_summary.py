"""what an incident's detail shows of its accounts, measured by the queue refresh

``incident_detail_summary`` holds, per queued incident, a digest of the inputs its accounts were
measured from (opening time, cells and degraded shares, scoring rules) and their totals;
``incident_detail_accounts`` holds those accounts by value, with their SLA clocks' deadlines, so an
incident's detail reads its own rows instead of thousands of account and cell-account rows.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 04:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_detail_summary",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("inputs_key", sa.String(length=64), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Float(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incident_detail_summary")),
    )
    op.create_table(
        "incident_detail_accounts",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("segment", sa.String(length=16), nullable=False),
        sa.Column("vip", sa.Boolean(), nullable=False),
        sa.Column("lines", sa.Float(), nullable=False),
        sa.Column("services", sa.Integer(), nullable=False),
        sa.Column("arpu", sa.Float(), nullable=False),
        sa.Column("degraded_share", sa.Float(), nullable=False),
        sa.Column("restore_minutes", sa.Float(), nullable=True),
        sa.Column("deadline", sa.DateTime(), nullable=True),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("penalty_per_hour", sa.Float(), nullable=False),
        sa.Column("account_manager", sa.String(length=128), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "position", name=op.f("pk_incident_detail_accounts")),
    )
    op.create_index(
        "ix_incident_detail_accounts_account", "incident_detail_accounts", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_incident_detail_accounts_account", table_name="incident_detail_accounts")
    op.drop_table("incident_detail_accounts")
    op.drop_table("incident_detail_summary")
