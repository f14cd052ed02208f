"""quarantine keeps the whole source payload, compressed, and each rejection once

A quarantined record keeps its whole payload as gzip-compressed JSON text (``payload``), whatever it
holds (a NUL, a 100 MB field); ``raw`` keeps a readable preview. ``digest`` identifies one rejection
(connector, stream, kind, record id, reason, payload), so a rerun that refuses the same record again
adds nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 02:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('digest', sa.String(length=64), nullable=True))
        batch_op.create_index('ux_quarantine_digest', ['connector', 'digest'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index('ux_quarantine_digest')
        batch_op.drop_column('digest')
        batch_op.drop_column('payload')
