"""kpi_samples partitioned by day on PostgreSQL

``kpi_samples`` becomes ``PARTITION BY RANGE (period_start)`` with one partition per day and a
DEFAULT partition, so retention drops a day of samples as one table instead of deleting its rows, and
no row is ever refused (dashboard/store/partitions.py keeps them: partitions made ahead, rows in
DEFAULT moved out, expired days dropped). Its key and index are unchanged: the primary key already
holds the partition column (period_start) and the column the table is sharded by on Citus
(entity_id).

A populated store is converted in place: the old table is renamed aside, the partitioned one created
with a partition for every day that has samples and for a week ahead, the rows copied across in one
INSERT .. SELECT (routed to their days by PostgreSQL), and the old table dropped. The copy writes the
table once more: on a large store expect it to take about as long as a bulk load of the same rows.
SQLite keeps its simple table: nothing changes there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = '"source", "entity_type", "entity_id", "kpi", "period_start", "value"'
#: Days of partitions made ahead of today; the retention job keeps the window moving after this.
AHEAD_DAYS = 7
DAY = timedelta(days=1)


def _columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('entity_type', sa.String(length=16), nullable=False),
        sa.Column('entity_id', sa.String(length=128), nullable=False),
        sa.Column('kpi', sa.String(length=64), nullable=False),
        sa.Column('period_start', sa.DateTime(), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
    ]


def _create(partitioned: bool) -> None:
    kwargs = {'postgresql_partition_by': 'RANGE (period_start)'} if partitioned else {}
    op.create_table(
        'kpi_samples',
        *_columns(),
        sa.PrimaryKeyConstraint(
            'entity_id', 'kpi', 'period_start', 'entity_type', 'source', name='pk_kpi_samples'
        ),
        **kwargs,
    )
    op.create_index('ix_kpi_samples_kpi_period', 'kpi_samples', ['kpi', 'period_start'], unique=False)


def _set_aside() -> None:
    op.execute('ALTER TABLE kpi_samples RENAME TO kpi_samples_old')
    op.execute('ALTER TABLE kpi_samples_old RENAME CONSTRAINT pk_kpi_samples TO pk_kpi_samples_old')
    op.execute('ALTER INDEX ix_kpi_samples_kpi_period RENAME TO ix_kpi_samples_old_kpi_period')


def _day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    _set_aside()
    _create(partitioned=True)
    op.execute('CREATE TABLE kpi_samples_default PARTITION OF kpi_samples DEFAULT')
    stored = bind.execute(
        sa.text('SELECT DISTINCT date_trunc(\'day\', period_start) FROM kpi_samples_old')
    ).scalars()
    today = _day(datetime.now(timezone.utc).replace(tzinfo=None))
    days = set(stored) | {today + i * DAY for i in range(AHEAD_DAYS + 1)}
    for day in sorted(days):
        # Named and bounded as dashboard/store/partitions.py names them (a test holds them equal).
        op.execute(
            f"CREATE TABLE kpi_samples_p{day:%Y%m%d} PARTITION OF kpi_samples "
            f"FOR VALUES FROM ('{day:%Y-%m-%d %H:%M:%S}') TO ('{day + DAY:%Y-%m-%d %H:%M:%S}')"
        )
    op.execute(f'INSERT INTO kpi_samples ({COLUMNS}) SELECT {COLUMNS} FROM kpi_samples_old')  # noqa: S608
    op.drop_table('kpi_samples_old')
    op.execute('ANALYZE kpi_samples')


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    _set_aside()
    _create(partitioned=False)
    op.execute(f'INSERT INTO kpi_samples ({COLUMNS}) SELECT {COLUMNS} FROM kpi_samples_old')  # noqa: S608
    # Dropping the partitioned table drops its partitions.
    op.drop_table('kpi_samples_old')
