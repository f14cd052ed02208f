"""Retention: raw KPI samples kept for days, their roll-ups for longer, as a scheduled job.

On PostgreSQL ``kpi_samples`` is partitioned by day (partitions.py): a pass makes the partitions of
the days ahead, moves rows that landed in DEFAULT into partitions of their days, and drops the
partitions that expired. On SQLite the table stays simple and a pass deletes the expired rows. Both
delete hourly and daily roll-ups (``kpi_rollups``) past their own, longer, retention.

Raw samples are never dropped before they are rolled up: the cutoff never passes the roll-up pass's
watermark (the last sample period it saw, less the window it recomputes), so a stalled KPI
evaluation keeps the samples it has not read yet, and the pages, the API and linkage read the
dropped days from roll-ups.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, delete, func, insert, select, update

from dashboard.config import RetentionConfig, Settings
from dashboard.store.db import Store
from dashboard.store.partitions import (
    KPI_SAMPLES,
    PartitionReport,
    floor_day,
    is_partitioned,
    maintain_partitions,
)
from dashboard.store.schema import connector_state, kpi_rollups, kpi_sample_hours, kpi_samples

log = logging.getLogger(__name__)

#: Where the KPI roll-up pass (dashboard/kpi_eval/rollup.py) keeps its state.
ROLLUP_STATE = ("vantage", "kpi-rollups")
SAMPLE_PERIOD = timedelta(minutes=15)
#: Where each pass's report and the running totals are kept.
REPORT_STATE = ("vantage", "store-retention")
DAY = timedelta(days=1)


class _JobContext(Protocol):
    """What the job needs of the app's Context (dashboard/context.py, a layer above the store)."""

    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...

    def now(self) -> datetime: ...


#: Jobs for the scheduler: name -> (interval in seconds, what to run), as dashboard.context.Jobs.
Jobs = dict[str, tuple[float, Callable[[], object]]]


@dataclass
class RetentionReport:
    """What one retention pass did."""

    backend: str
    #: The oldest sample period kept (None: samples kept for ever, or not rolled up yet).
    samples_from: datetime | None = None
    #: Samples kept past their retention because the roll-up pass has not read them yet.
    samples_held: bool = False
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    default_rows_moved: int = 0
    #: Sample rows deleted: SQLite's expired rows, or expired rows found in PostgreSQL's DEFAULT.
    samples_deleted: int = 0
    hourly_rollups_deleted: int = 0
    daily_rollups_deleted: int = 0
    deferred: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples_from"] = self.samples_from.isoformat() if self.samples_from else None
        return out


def rolled_up_to(conn: Connection) -> datetime | None:
    """The latest sample period every roll-up is final for, or None before the first roll-up pass:
    the newest sample the last pass read, or the oldest hour samples were ingested into since then
    (dashboard/store/sample_marks.py), whichever is older."""
    state = conn.execute(
        select(connector_state.c.state).where(
            connector_state.c.connector == ROLLUP_STATE[0], connector_state.c.stream == ROLLUP_STATE[1]
        )
    ).scalar()
    seen = (state or {}).get("samples_to")
    if not seen:
        return None
    final = datetime.fromisoformat(str(seen))
    pending = conn.execute(select(func.min(kpi_sample_hours.c.hour))).scalar()
    return final if pending is None else min(final, pending - SAMPLE_PERIOD)


def samples_cutoff(
    policy: RetentionConfig, now: datetime, rolled: datetime | None
) -> tuple[datetime | None, bool]:
    """The oldest day of samples to keep, and whether it was held back for the roll-up pass.

    Whole days: a day goes when all of it is older than the policy and rolled up.
    """
    if not policy.samples_days:
        return None, False
    wanted = floor_day(now) - policy.samples_days * DAY
    if rolled is None:
        return None, True
    allowed = floor_day(rolled)
    if allowed < wanted:
        return allowed, True
    return wanted, False


def _delete_rollups(conn: Connection, grain_s: int, days: int, now: datetime) -> int:
    if not days:
        return 0
    cut = floor_day(now) - days * DAY
    r = kpi_rollups
    result = conn.execute(delete(r).where(r.c.grain_s == grain_s, r.c.period_start < cut))
    return max(int(result.rowcount or 0), 0)


def apply_retention(store: Store, policy: RetentionConfig, *, now: datetime) -> RetentionReport:
    """One pass: partitions ahead, DEFAULT's rows moved, expired samples and roll-ups gone."""
    started = time.perf_counter()
    report = RetentionReport(backend=store.dialect)
    with store.connect() as conn:
        rolled = rolled_up_to(conn)
        partitioned = is_partitioned(conn, KPI_SAMPLES.table)
    keep_from, held = samples_cutoff(policy, now, rolled) if policy.enabled else (None, False)
    report.samples_from, report.samples_held = keep_from, held
    if held:
        log.warning(
            "retention: samples older than %d days kept: the KPI roll-ups have only read them up to %s",
            policy.samples_days,
            rolled.isoformat() if rolled else "(no roll-up pass yet)",
        )
    if partitioned:
        parts: PartitionReport = maintain_partitions(
            store.engine, KPI_SAMPLES, now=now, ahead_days=policy.partitions_ahead_days, keep_from=keep_from
        )
        report.partitions_created = parts.created
        report.partitions_dropped = parts.dropped
        report.default_rows_moved = parts.moved_rows
        report.samples_deleted = parts.expired_default_rows
        report.deferred = parts.deferred
    elif keep_from is not None:
        with store.begin() as conn:
            result = conn.execute(delete(kpi_samples).where(kpi_samples.c.period_start < keep_from))
            report.samples_deleted = max(int(result.rowcount or 0), 0)
    with store.begin() as conn:
        if policy.enabled:
            report.hourly_rollups_deleted = _delete_rollups(conn, 3600, policy.hourly_rollups_days, now)
            report.daily_rollups_deleted = _delete_rollups(conn, 86400, policy.daily_rollups_days, now)
        report.elapsed_s = round(time.perf_counter() - started, 3)
        _record(conn, report, now=now)
    log.info(
        "retention: samples kept from %s; %d partition(s) created, %d dropped, %d row(s) moved out of "
        "DEFAULT, %d sample row(s) deleted, %d hourly and %d daily roll-up row(s) deleted in %.1f s%s",
        report.samples_from.isoformat() if report.samples_from else "(all)",
        len(report.partitions_created),
        len(report.partitions_dropped),
        report.default_rows_moved,
        report.samples_deleted,
        report.hourly_rollups_deleted,
        report.daily_rollups_deleted,
        report.elapsed_s,
        f"; left for the next run: {', '.join(report.deferred)}" if report.deferred else "",
    )
    return report


#: Counted totals since the first pass (saved with the last report in ``connector_state``).
TOTALS = (
    "runs",
    "partitions_created",
    "partitions_dropped",
    "default_rows_moved",
    "samples_deleted",
    "hourly_rollups_deleted",
    "daily_rollups_deleted",
)


def _record(conn: Connection, report: RetentionReport, *, now: datetime) -> None:
    """Keep the last pass's report and running totals where the Sources page and health can read them."""
    state = load_report(conn)
    totals = {k: int(state.get("totals", {}).get(k, 0)) for k in TOTALS}
    totals["runs"] += 1
    for key in TOTALS[1:]:
        value = getattr(report, key)
        totals[key] += len(value) if isinstance(value, list) else int(value)
    value = {"last": report.as_dict(), "totals": totals}
    updated = conn.execute(
        update(connector_state)
        .where(connector_state.c.connector == REPORT_STATE[0], connector_state.c.stream == REPORT_STATE[1])
        .values(state=value, updated_at=now)
    )
    if not updated.rowcount:
        conn.execute(
            insert(connector_state).values(
                connector=REPORT_STATE[0], stream=REPORT_STATE[1], state=value, updated_at=now
            )
        )


def load_report(conn: Connection) -> dict[str, Any]:
    """The last retention pass's report and the totals so far (``{}`` before the first pass)."""
    state = conn.execute(
        select(connector_state.c.state).where(
            connector_state.c.connector == REPORT_STATE[0], connector_state.c.stream == REPORT_STATE[1]
        )
    ).scalar()
    return dict(state or {})


def scheduled_jobs(ctx: _JobContext) -> Jobs:
    """The scheduler's retention job, every ``retention.interval``. With ``retention.enabled``
    false it still makes the PostgreSQL partitions ahead and moves DEFAULT's rows, and deletes nothing."""
    policy = ctx.settings.retention

    def job() -> RetentionReport:
        return apply_retention(ctx.store, policy, now=ctx.now())

    return {"store-retention": (policy.interval_s, job)}


__all__ = [
    "RetentionReport",
    "apply_retention",
    "load_report",
    "rolled_up_to",
    "samples_cutoff",
    "scheduled_jobs",
]
