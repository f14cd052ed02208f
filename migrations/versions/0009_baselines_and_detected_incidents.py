"""seasonal baselines, anomaly verdicts and the kind of an incident

``kpi_baselines`` keeps each KPI series' robust level and scale per quarter hour of a weekday or
weekend day; ``kpi_anomalies`` the latest verdict of each series against it; ``incidents.kind`` says
whether alarms opened an incident or KPI anomalies that no alarm explains (and ``incident_queue.kind``
repeats it for the pages).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'kpi_baselines',
        sa.Column('kpi', sa.String(length=64), nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('entity_id', sa.String(length=128), nullable=False),
        sa.Column('slot', sa.SmallInteger(), nullable=False),
        sa.Column('mean', sa.Float(), nullable=False),
        sa.Column('scale', sa.Float(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('slot', 'kpi', 'level', 'entity_id', name=op.f('pk_kpi_baselines')),
    )
    op.create_index('ix_kpi_baselines_series', 'kpi_baselines', ['kpi', 'level', 'entity_id'], unique=False)
    op.create_table(
        'kpi_anomalies',
        sa.Column('kpi', sa.String(length=64), nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('entity_id', sa.String(length=128), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('period_start', sa.DateTime(), nullable=True),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('expected', sa.Float(), nullable=True),
        sa.Column('scale', sa.Float(), nullable=True),
        sa.Column('z', sa.Float(), nullable=True),
        sa.Column('deviation', sa.Float(), nullable=True),
        sa.Column('run', sa.Integer(), nullable=False),
        sa.Column('calm', sa.Integer(), nullable=False),
        sa.Column('since', sa.DateTime(), nullable=True),
        sa.Column('worst_deviation', sa.Float(), nullable=True),
        sa.Column('evaluated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('kpi', 'level', 'entity_id', name=op.f('pk_kpi_anomalies')),
    )
    op.create_index('ix_kpi_anomalies_state', 'kpi_anomalies', ['state'], unique=False)
    with op.batch_alter_table('incidents') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=True))
    with op.batch_alter_table('incident_queue') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incident_queue') as batch:
        batch.drop_column('kind')
    with op.batch_alter_table('incidents') as batch:
        batch.drop_column('kind')
    op.drop_index('ix_kpi_anomalies_state', table_name='kpi_anomalies')
    op.drop_table('kpi_anomalies')
    op.drop_index('ix_kpi_baselines_series', table_name='kpi_baselines')
    op.drop_table('kpi_baselines')
