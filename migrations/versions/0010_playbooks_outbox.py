"""the playbooks' outbox, contact opt-outs, line exposures and the loopback sinks' messages

``actions`` holds every action a playbook decided, once, keyed by (playbook, step, subject, target);
``contact_optouts`` the customers who asked not to be contacted; ``line_exposures`` the lines each
incident hit with their churn risk at the time; ``loopback_messages`` what the built-in demo sinks
received; ``incidents.ticket_id`` the trouble ticket a playbook opened for an incident.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'actions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('playbook', sa.String(length=64), nullable=False),
        sa.Column('step', sa.String(length=64), nullable=False),
        sa.Column('trigger', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('action_type', sa.String(length=32), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('incident_id', sa.String(length=128), nullable=True),
        sa.Column('account_id', sa.String(length=128), nullable=True),
        sa.Column('subscriber_id', sa.String(length=128), nullable=True),
        sa.Column('target', sa.String(length=192), nullable=False),
        sa.Column('party', sa.String(length=160), nullable=True),
        sa.Column('dedupe_group', sa.String(length=64), nullable=True),
        sa.Column('address', sa.String(length=256), nullable=True),
        sa.Column('subject', sa.String(length=256), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=True),
        sa.Column('state', sa.String(length=24), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('cost', sa.Float(), nullable=True),
        sa.Column('promised', sa.Float(), nullable=True),
        sa.Column('offer', sa.String(length=64), nullable=True),
        sa.Column('expected_value', sa.Float(), nullable=True),
        sa.Column('not_before', sa.DateTime(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('claimed_by', sa.String(length=64), nullable=True),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('reference', sa.String(length=256), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('decided_by', sa.String(length=128), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_actions')),
        sa.UniqueConstraint('key', name=op.f('uq_actions_key')),
    )
    op.create_index('ix_actions_state_due', 'actions', ['state', 'next_attempt_at'], unique=False)
    op.create_index('ix_actions_incident_id', 'actions', ['incident_id'], unique=False)
    op.create_index('ix_actions_subscriber_id', 'actions', ['subscriber_id'], unique=False)
    op.create_index('ix_actions_account_id', 'actions', ['account_id'], unique=False)
    op.create_index('ix_actions_party', 'actions', ['party', 'created_at'], unique=False)
    op.create_index('ix_actions_created_at', 'actions', ['created_at'], unique=False)
    op.create_table(
        'contact_optouts',
        sa.Column('party', sa.String(length=160), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('party', 'channel', name=op.f('pk_contact_optouts')),
    )
    op.create_table(
        'line_exposures',
        sa.Column('subscriber_id', sa.String(length=128), nullable=False),
        sa.Column('incident_id', sa.String(length=128), nullable=False),
        sa.Column('account_id', sa.String(length=128), nullable=True),
        sa.Column('risk_at_hit', sa.Float(), nullable=True),
        sa.Column('hit_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('subscriber_id', 'incident_id', name=op.f('pk_line_exposures')),
    )
    op.create_index('ix_line_exposures_hit_at', 'line_exposures', ['hit_at'], unique=False)
    op.create_index('ix_line_exposures_incident_id', 'line_exposures', ['incident_id'], unique=False)
    op.create_table(
        'loopback_messages',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('to', sa.String(length=256), nullable=True),
        sa.Column('subject', sa.String(length=256), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('reference', sa.String(length=256), nullable=True),
        sa.Column('key', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_loopback_messages')),
    )
    op.create_index('ix_loopback_messages_received_at', 'loopback_messages', ['received_at'], unique=False)
    with op.batch_alter_table('incidents') as batch:
        batch.add_column(sa.Column('ticket_id', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incidents') as batch:
        batch.drop_column('ticket_id')
    op.drop_index('ix_loopback_messages_received_at', table_name='loopback_messages')
    op.drop_table('loopback_messages')
    op.drop_index('ix_line_exposures_incident_id', table_name='line_exposures')
    op.drop_index('ix_line_exposures_hit_at', table_name='line_exposures')
    op.drop_table('line_exposures')
    op.drop_table('contact_optouts')
    for name in ('created_at', 'party', 'account_id', 'subscriber_id', 'incident_id', 'state_due'):
        op.drop_index(f'ix_actions_{name}', table_name='actions')
    op.drop_table('actions')
