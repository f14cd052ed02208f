"""kpi roll-up and ingest-time indexes

Roll-up rows are read and replaced per series, level, grain and period range, so the secondary index
on kpi_rollups leads with the series (the old one, without it, scanned every series' rows of a level
in the range: a one-measure change over a month read all the KPIs' cell hours). The KPI pass looks up
tickets and churn events ingested since its watermark, so both get an index on ingested_at.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 11:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('kpi_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_rollups_level_period')
        batch_op.create_index(
            'ix_kpi_rollups_series_period', ['series', 'level', 'grain_s', 'period_start'], unique=False
        )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_ingested_at', ['ingested_at'], unique=False)
    with op.batch_alter_table('churn_events', schema=None) as batch_op:
        batch_op.create_index('ix_churn_events_ingested_at', ['ingested_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('churn_events', schema=None) as batch_op:
        batch_op.drop_index('ix_churn_events_ingested_at')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_ingested_at')
    with op.batch_alter_table('kpi_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_rollups_series_period')
        batch_op.create_index(
            'ix_kpi_rollups_level_period', ['level', 'grain_s', 'period_start'], unique=False
        )
