"""every line's value class, for the subscriber list sorted by value; each incident's reach

``line_values`` holds each line's account segment, VIP flag and ARPU, indexed by (segment, vip,
arpu descending, id): a list sorted by value merges one index walk per class instead of weighing
every line. The queue refresh's value pass fills it (the first pass after this migration builds it
whole); until then the list weighs the lines as before. ``incident_reach`` holds how many
subscribers each incident's degraded cells serve, counted by the queue refresh, so an incident's
detail reads one row instead of counting tens of thousands of lines.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 03:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'line_values',
        sa.Column('subscriber_id', sa.String(length=128), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('segment', sa.String(length=16), nullable=False),
        sa.Column('vip', sa.Boolean(), nullable=False),
        sa.Column('arpu', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('subscriber_id', 'source'),
    )
    op.create_index(
        'ix_line_values_rank',
        'line_values',
        ['segment', 'vip', sa.text('arpu DESC'), 'subscriber_id', 'source'],
        unique=False,
    )


    op.create_table(
        'incident_reach',
        sa.Column('incident_id', sa.String(length=128), nullable=False),
        sa.Column('subscribers', sa.Integer(), nullable=False),
        sa.Column('cells_key', sa.String(length=64), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('incident_id'),
    )


def downgrade() -> None:
    op.drop_table('incident_reach')
    op.drop_index('ix_line_values_rank', table_name='line_values')
    op.drop_table('line_values')
