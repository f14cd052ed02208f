"""incident queue: correlation fields, value aggregates, impact, queue, notes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:22:18.819424
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cell_account_value',
    sa.Column('cell_id', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.String(length=128), nullable=False),
    sa.Column('lines', sa.Float(), nullable=False),
    sa.Column('arpu', sa.Float(), nullable=False),
    sa.Column('services', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('cell_id', 'account_id', name=op.f('pk_cell_account_value'))
    )
    with op.batch_alter_table('cell_account_value', schema=None) as batch_op:
        batch_op.create_index('ix_cell_account_value_account', ['account_id'], unique=False)

    op.create_table('cell_value',
    sa.Column('cell_id', sa.String(length=128), nullable=False),
    sa.Column('segment', sa.String(length=16), nullable=False),
    sa.Column('vip', sa.Boolean(), nullable=False),
    sa.Column('lines', sa.Float(), nullable=False),
    sa.Column('arpu', sa.Float(), nullable=False),
    sa.Column('risk', sa.Float(), nullable=False),
    sa.Column('risk_arpu', sa.Float(), nullable=False),
    sa.Column('risk_lines', sa.Float(), nullable=False),
    sa.Column('sentiment', sa.Float(), nullable=False),
    sa.Column('sentiment_lines', sa.Float(), nullable=False),
    sa.Column('negative_tickets', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('cell_id', 'segment', 'vip', name=op.f('pk_cell_value'))
    )
    op.create_table('incident_cells',
    sa.Column('incident_id', sa.String(length=128), nullable=False),
    sa.Column('cell_id', sa.String(length=128), nullable=False),
    sa.Column('degraded_share', sa.Float(), nullable=False),
    sa.Column('basis', sa.String(length=16), nullable=False),
    sa.Column('baseline_throughput', sa.Float(), nullable=True),
    sa.Column('measured_period', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('incident_id', 'cell_id', name=op.f('pk_incident_cells'))
    )
    with op.batch_alter_table('incident_cells', schema=None) as batch_op:
        batch_op.create_index('ix_incident_cells_cell', ['cell_id'], unique=False)

    op.create_table('incident_notes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.String(length=128), nullable=False),
    sa.Column('author', sa.String(length=128), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_notes'))
    )
    with op.batch_alter_table('incident_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_notes_incident_id'), ['incident_id'], unique=False)

    op.create_table('incident_queue',
    sa.Column('incident_id', sa.String(length=128), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=256), nullable=False),
    sa.Column('region_id', sa.String(length=128), nullable=True),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('cells', sa.Integer(), nullable=False),
    sa.Column('lines', sa.Float(), nullable=False),
    sa.Column('consumer_lines', sa.Float(), nullable=False),
    sa.Column('smb_lines', sa.Float(), nullable=False),
    sa.Column('enterprise_lines', sa.Float(), nullable=False),
    sa.Column('vip_lines', sa.Float(), nullable=False),
    sa.Column('accounts', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('revenue_at_risk_per_hour', sa.Float(), nullable=False),
    sa.Column('penalty_per_hour', sa.Float(), nullable=False),
    sa.Column('sla_accounts', sa.Integer(), nullable=False),
    sa.Column('sla_breached', sa.Integer(), nullable=False),
    sa.Column('sla_deadline', sa.DateTime(), nullable=True),
    sa.Column('sla_account_id', sa.String(length=128), nullable=True),
    sa.Column('sentiment', sa.Float(), nullable=True),
    sa.Column('churn_risk', sa.Float(), nullable=True),
    sa.Column('breakdown', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_incident_queue'))
    )
    with op.batch_alter_table('incident_queue', schema=None) as batch_op:
        batch_op.create_index('ix_incident_queue_rank', ['rank'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_ingested_at', ['ingested_at'], unique=False)

    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.create_index('ix_alarms_ingested_at', ['ingested_at'], unique=False)

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('root_alarm_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('region_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('flaps', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('merged_into', sa.String(length=128), nullable=True))

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index('ix_services_ingested_at', ['ingested_at'], unique=False)

    with op.batch_alter_table('subscriber_cells', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_cells_ingested_at', ['ingested_at'], unique=False)

    with op.batch_alter_table('subscriber_signals', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_signals_scored_at', ['scored_at'], unique=False)

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.create_index('ix_subscribers_ingested_at', ['ingested_at'], unique=False)

    with op.batch_alter_table('topology_edges', schema=None) as batch_op:
        batch_op.create_index('ix_topology_edges_ingested_at', ['ingested_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('topology_edges', schema=None) as batch_op:
        batch_op.drop_index('ix_topology_edges_ingested_at')

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_ingested_at')

    with op.batch_alter_table('subscriber_signals', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_signals_scored_at')

    with op.batch_alter_table('subscriber_cells', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_cells_ingested_at')

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_index('ix_services_ingested_at')

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_column('merged_into')
        batch_op.drop_column('flaps')
        batch_op.drop_column('region_id')
        batch_op.drop_column('root_alarm_id')

    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_index('ix_alarms_ingested_at')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_ingested_at')

    with op.batch_alter_table('incident_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_queue_rank')

    op.drop_table('incident_queue')
    with op.batch_alter_table('incident_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_notes_incident_id'))

    op.drop_table('incident_notes')
    with op.batch_alter_table('incident_cells', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_cells_cell')

    op.drop_table('incident_cells')
    op.drop_table('cell_value')
    with op.batch_alter_table('cell_account_value', schema=None) as batch_op:
        batch_op.drop_index('ix_cell_account_value_account')

    op.drop_table('cell_account_value')
