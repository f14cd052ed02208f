"""analytics: churn models and the signals on subscriber and account records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account_signals',
    sa.Column('account_id', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('subscribers', sa.Integer(), nullable=False),
    sa.Column('churn_risk_mean', sa.Float(), nullable=True),
    sa.Column('churn_risk_max', sa.Float(), nullable=True),
    sa.Column('expected_churners', sa.Float(), nullable=True),
    sa.Column('arpu_at_risk', sa.Float(), nullable=True),
    sa.Column('high_risk_subscribers', sa.Integer(), nullable=True),
    sa.Column('model_version', sa.Integer(), nullable=True),
    sa.Column('sentiment_30d', sa.Float(), nullable=True),
    sa.Column('tickets_30d', sa.Integer(), nullable=False),
    sa.Column('negative_tickets_30d', sa.Integer(), nullable=False),
    sa.Column('scored_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'source', name=op.f('pk_account_signals'))
    )
    op.create_table('churn_models',
    sa.Column('version', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('trained_at', sa.DateTime(), nullable=False),
    sa.Column('trained_on', sa.String(length=256), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('cutoff', sa.DateTime(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('model', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_churn_models'))
    )
    with op.batch_alter_table('churn_models', schema=None) as batch_op:
        batch_op.create_index('ix_churn_models_trained_at', ['trained_at'], unique=False)

    op.create_table('subscriber_signals',
    sa.Column('subscriber_id', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=128), nullable=True),
    sa.Column('churn_risk', sa.Float(), nullable=True),
    sa.Column('churn_drivers', sa.Text(), nullable=True),
    sa.Column('model_version', sa.Integer(), nullable=True),
    sa.Column('sentiment_30d', sa.Float(), nullable=True),
    sa.Column('tickets_30d', sa.Integer(), nullable=False),
    sa.Column('negative_tickets_30d', sa.Integer(), nullable=False),
    sa.Column('scored_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('subscriber_id', 'source', name=op.f('pk_subscriber_signals'))
    )
    with op.batch_alter_table('subscriber_signals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriber_signals_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_subscriber_signals_churn_risk', ['churn_risk'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('subscriber_signals', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_signals_churn_risk')
        batch_op.drop_index(batch_op.f('ix_subscriber_signals_account_id'))

    op.drop_table('subscriber_signals')
    with op.batch_alter_table('churn_models', schema=None) as batch_op:
        batch_op.drop_index('ix_churn_models_trained_at')

    op.drop_table('churn_models')
    op.drop_table('account_signals')
