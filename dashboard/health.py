"""Freshness and health of sources, as pure functions of configuration, run summaries and a clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select

from dashboard import queries, readiness
from dashboard.config import ConnectorConfig, Settings
from dashboard.store.db import Store, statement_limit
from dashboard.store.schema import scheduler_leaders

#: A source is fresh while its last success is at most this many intervals old.
FRESH_INTERVALS = 2.0
#: A leader that has not beaten for this many standby retries (scheduler.standby_retry_s) is presumed
#: gone: a standby takes its family at its next try.
LEADER_BEATS = 3.0
#: Seconds the /healthz store check may take (PostgreSQL; a hung store answers 503 by then plus a grace).
HEALTH_TIMEOUT_S = 3.0

FRESH, STALE, NEVER, UNKNOWN = "fresh", "stale", "never", "unknown"
HEALTHY, RETRYING, FAILING, RUNNING, NEVER_RUN = "healthy", "retrying", "failing", "running", "never run"
#: A source that only pushes, and has pushed: its listener is receiving.
LISTENING = "listening"
#: The status of a run its process died in (dashboard.ingest.runner.abandon_runs).
ABANDONED_STATUS = "abandoned"

STATUS_COLUMNS = [
    "connector",
    "type",
    "enabled",
    "configured",
    "interval_s",
    "state",
    "freshness",
    "last_status",
    "last_started_at",
    "last_finished_at",
    "last_success_at",
    "last_records_in",
    "last_upserted",
    "last_quarantined",
    "runs_24h",
    "records_in_24h",
    "upserted_24h",
    "quarantined_24h",
    "last_error",
    "next_attempt_at",
    "last_push_at",
    "push_requests",
    "push_records_in",
    "push_upserted",
    "push_quarantined",
]


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | bool) and bool(pd.isna(value)))


def _dt(value: Any) -> datetime | None:
    return None if _missing(value) else pd.Timestamp(value).to_pydatetime()


def freshness(last_success: datetime | None, interval_s: float | None, now: datetime) -> str:
    """``fresh`` if the last success is within 2 intervals of ``now``, else ``stale``.

    ``never`` without any success; ``unknown`` when there is no interval to judge by (a connector
    seen in the runs but no longer configured).
    """
    if last_success is None:
        return NEVER
    if interval_s is None:
        return UNKNOWN
    return FRESH if now - last_success <= timedelta(seconds=FRESH_INTERVALS * interval_s) else STALE


def source_state(last_status: str | None, retriable: bool | None) -> str:
    """What an operator should read from the last run: healthy, retrying, failing, running or never run."""
    if last_status is None:
        return NEVER_RUN
    if last_status == "running":
        return RUNNING
    if last_status == "failed":
        return RETRYING if retriable else FAILING
    if last_status == ABANDONED_STATUS:
        return RETRYING  # cut short by a stopped process: the next run reads again from its cursor
    return HEALTHY


def source_statuses(
    connectors: Sequence[ConnectorConfig], summaries: pd.DataFrame, now: datetime
) -> pd.DataFrame:
    """One row per configured connector, then per connector only seen in the runs, with its verdicts.

    ``summaries`` has the columns of ``dashboard.queries.RUN_SUMMARY_COLUMNS``.
    """
    return pd.DataFrame(source_rows(connectors, summaries.to_dict("records"), now), columns=STATUS_COLUMNS)


def source_rows(
    connectors: Sequence[ConnectorConfig], runs: Iterable[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """The rows of :func:`source_statuses` from run summaries given as mappings (a frame's records,
    or the same as JSON holds them: times as ISO text, missing as None)."""
    by_name: dict[str, Mapping[str, Any]] = {str(row["connector"]): row for row in runs}
    names = [c.name for c in connectors] + sorted(set(by_name) - {c.name for c in connectors})
    configs = {c.name: c for c in connectors}
    rows: list[dict[str, Any]] = []
    for name in names:
        cfg = configs.get(name)
        run = by_name.get(name, {})
        last_status = None if _missing(run.get("last_status")) else str(run["last_status"])
        retriable = None if _missing(run.get("last_retriable")) else bool(run["last_retriable"])
        interval = cfg.interval if cfg is not None else None
        last_success = _dt(run.get("last_success_at"))
        last_push = _dt(run.get("last_push_at"))
        state = source_state(last_status, retriable)
        fresh = freshness(last_success, interval, now)
        if last_status is None and last_push is not None:
            # A source that only pushes has no runs: its events are its life sign, and a quiet
            # listener is not an unhealthy one.
            state, fresh = LISTENING, FRESH
        rows.append(
            {
                "connector": name,
                "type": cfg.type if cfg is not None else None,
                "enabled": cfg.enabled if cfg is not None else False,
                "configured": cfg is not None,
                "interval_s": interval,
                "state": state,
                "freshness": fresh,
                "last_status": last_status,
                "last_started_at": _dt(run.get("last_started_at")),
                "last_finished_at": _dt(run.get("last_finished_at")),
                "last_success_at": last_success,
                "last_records_in": _int(run.get("last_records_in")),
                "last_upserted": _int(run.get("last_upserted")),
                "last_quarantined": _int(run.get("last_quarantined")),
                "runs_24h": _int(run.get("runs_24h")) or 0,
                "records_in_24h": _int(run.get("records_in_24h")) or 0,
                "upserted_24h": _int(run.get("upserted_24h")) or 0,
                "quarantined_24h": _int(run.get("quarantined_24h")) or 0,
                "last_error": None if _missing(run.get("last_error")) else str(run["last_error"]),
                "next_attempt_at": _dt(run.get("last_next_attempt_at")) if state == RETRYING else None,
                "last_push_at": last_push,
                "push_requests": _int(run.get("push_requests")),
                "push_records_in": _int(run.get("push_records_in")),
                "push_upserted": _int(run.get("push_upserted")),
                "push_quarantined": _int(run.get("push_quarantined")),
            }
        )
    return rows


def _int(value: Any) -> int | None:
    return None if _missing(value) else int(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def health_report(
    *,
    reachable: bool,
    dialect: str,
    statuses: pd.DataFrame | None,
    connectors: Sequence[ConnectorConfig],
    now: datetime,
    error: str | None = None,
) -> tuple[dict[str, Any], int]:
    """The /healthz body and HTTP status.

    ``down`` (503) when the store is unreachable; ``degraded`` (200) when it answers but an enabled
    configured source is not fresh or the runs could not be read; ``ok`` (200) otherwise.
    """
    sources: dict[str, dict[str, Any]] = {}
    if statuses is not None:
        for row in statuses.to_dict("records"):
            sources[str(row["connector"])] = {
                "last_success": _iso(_dt(row["last_success_at"])),
                "fresh": row["freshness"] == FRESH,
                "interval_s": None if _missing(row["interval_s"]) else float(row["interval_s"]),
                "state": row["state"],
                "enabled": bool(row["enabled"]),
                "last_push": _iso(_dt(row["last_push_at"])),
            }
    else:
        for c in connectors:
            sources[c.name] = {
                "last_success": None,
                "fresh": False,
                "interval_s": c.interval,
                "state": UNKNOWN,
                "enabled": c.enabled,
            }
    if not reachable:
        status = "down"
    elif statuses is None or any(
        not sources[c.name]["fresh"] for c in connectors if c.enabled and c.name in sources
    ):
        status = "degraded"
    else:
        status = "ok"
    body: dict[str, Any] = {
        "status": status,
        "store": {"reachable": reachable, "dialect": dialect},
        "sources": sources,
        "time": _iso(now),
    }
    if error:
        body["error"] = error
    return body, (200 if reachable else 503)


def leaders(conn: Connection, now: datetime, *, beat_s: float) -> dict[str, dict[str, Any]]:
    """Who leads each scheduler job family (dashboard.leader), from ``scheduler_leaders``: the
    process (host:pid, None when nobody does), since when, whether it beat within
    ``LEADER_BEATS`` x ``beat_s``, and its last job run."""
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(scheduler_leaders).order_by(scheduler_leaders.c.family)).mappings():
        seen = row["seen_at"]
        out[str(row["family"])] = {
            "leader": row["holder"],
            "since": _iso(row["since"]),
            "seen": _iso(seen),
            "alive": row["holder"] is not None
            and seen is not None
            and now - seen <= timedelta(seconds=LEADER_BEATS * beat_s),
            "runs": int(row["runs"] or 0),
            "last_job": row["last_job"],
            "last_run": _iso(row["last_run_at"]),
        }
    return out


def check_health(store: Store, settings: Settings, *, now: datetime) -> tuple[dict[str, Any], int]:
    """The /healthz body and status: whether the store answers and how fresh each source is.

    Its statements are capped at ``HEALTH_TIMEOUT_S`` whatever the request's own limit, so a probe
    learns that a hung store is down before the probe itself gives up.
    """
    with statement_limit(HEALTH_TIMEOUT_S):
        return _check_health(store, settings, now=now)


def _check_health(store: Store, settings: Settings, *, now: datetime) -> tuple[dict[str, Any], int]:
    reachable = store.ping()
    statuses = None
    error = None
    preparation = None
    schedulers = None
    if reachable:
        try:
            with store.connect() as conn:
                summaries = queries.run_summaries(conn, now=now)
                preparation = readiness.progress(conn, now)
                schedulers = leaders(conn, now, beat_s=settings.scheduler.standby_retry_s)
            statuses = source_statuses(settings.connectors, summaries, now)
        except Exception as err:  # reachable but not readable (e.g. not migrated)
            error = f"connector runs could not be read: {type(err).__name__}"
    body, status = health_report(
        reachable=reachable,
        dialect=store.dialect,
        statuses=statuses,
        connectors=settings.connectors,
        now=now,
        error=error,
    )
    # A fresh store's first preparation: its step and the time left (None on a store never prepared).
    body["preparation"] = preparation
    # Which scheduler process leads each job family ({} before any scheduler ran on this store).
    body["schedulers"] = schedulers
    return body, status
