"""subscriber search keys and contact address

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 08:10:55.733649
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_address', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('name_key', sa.String(length=256), nullable=True))
        batch_op.create_index('ix_accounts_name_key', ['name_key'], unique=False, postgresql_ops={'name_key': 'text_pattern_ops'})

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('msisdn_digits', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('msisdn_rev', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_subscribers_msisdn_digits', ['msisdn_digits'], unique=False, postgresql_ops={'msisdn_digits': 'text_pattern_ops'})
        batch_op.create_index('ix_subscribers_msisdn_rev', ['msisdn_rev'], unique=False, postgresql_ops={'msisdn_rev': 'text_pattern_ops'})

    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.create_index('ix_audit_target', ['target_type', 'target_id'], unique=False)

    with op.batch_alter_table('subscriber_cells', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_cells_cell')
        batch_op.create_index('ix_subscriber_cells_cell', ['cell_id', 'subscriber_id'], unique=False)

    _backfill_keys()


BACKFILL_CHUNK = 50_000


def _backfill_keys() -> None:
    """Fill the search keys of the rows stored before this revision, a chunk at a time, in key order.

    The keys are computed by the functions ingest uses (dashboard.ingest.derive), so rows stored
    before and after this revision are found alike.
    """
    import pandas as pd

    from dashboard.ingest.derive import msisdn_keys, name_keys

    conn = op.get_bind()
    subs = sa.table(
        'subscribers', sa.column('id'), sa.column('source'), sa.column('msisdn'),
        sa.column('msisdn_digits'), sa.column('msisdn_rev'),
    )
    accs = sa.table('accounts', sa.column('id'), sa.column('source'), sa.column('name'), sa.column('name_key'))

    def chunks(table: sa.TableClause, value: str) -> object:
        last: tuple[str, str] | None = None
        while True:
            stmt = (
                sa.select(table.c.id, table.c.source, table.c[value])
                .where(table.c[value].is_not(None))
                .order_by(table.c.id, table.c.source)
                .limit(BACKFILL_CHUNK)
            )
            if last is not None:
                stmt = stmt.where(sa.tuple_(table.c.id, table.c.source) > sa.tuple_(*last))
            rows = conn.execute(stmt).all()
            if not rows:
                return
            yield pd.DataFrame(rows, columns=['id', 'source', value])
            last = (rows[-1][0], rows[-1][1])

    def write(table: sa.TableClause, params: list[dict[str, object]], **values: str) -> None:
        if params:
            conn.execute(
                sa.update(table)
                .where(table.c.id == sa.bindparam('b_id'), table.c.source == sa.bindparam('b_source'))
                .values({k: sa.bindparam(v) for k, v in values.items()}),
                params,
            )

    for df in chunks(subs, 'msisdn'):
        digits, rev = msisdn_keys(df['msisdn'])
        params = [
            {'b_id': i, 'b_source': src, 'b_digits': d, 'b_rev': r}
            for i, src, d, r in zip(df['id'], df['source'], digits, rev, strict=True)
        ]
        write(subs, params, msisdn_digits='b_digits', msisdn_rev='b_rev')
    for df in chunks(accs, 'name'):
        keys = name_keys(df['name'])
        params = [
            {'b_id': i, 'b_source': src, 'b_key': k}
            for i, src, k in zip(df['id'], df['source'], keys, strict=True)
        ]
        write(accs, params, name_key='b_key')


def downgrade() -> None:
    with op.batch_alter_table('subscriber_cells', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_cells_cell')
        batch_op.create_index('ix_subscriber_cells_cell', ['cell_id'], unique=False)

    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_target')

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_msisdn_rev', postgresql_ops={'msisdn_rev': 'text_pattern_ops'})
        batch_op.drop_index('ix_subscribers_msisdn_digits', postgresql_ops={'msisdn_digits': 'text_pattern_ops'})
        batch_op.drop_column('msisdn_rev')
        batch_op.drop_column('msisdn_digits')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_name_key', postgresql_ops={'name_key': 'text_pattern_ops'})
        batch_op.drop_column('name_key')
        batch_op.drop_column('contact_address')

