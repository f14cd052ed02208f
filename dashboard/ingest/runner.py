"""The one ingest path every connector goes through: validate, enrich, upsert, quarantine, checkpoint.

Each batch is one transaction: its valid rows, its quarantined records and the stream state it
reached commit together, so a run that dies half-way resumes from its last committed batch and
nothing is counted that was not stored. Each run is recorded in ``connector_runs``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Insert, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connectors.base import Batch, Connector, ConnectorError, RetriableError, Stream, utcnow
from dashboard.config import IngestConfig
from dashboard.ingest.derive import derive_keys
from dashboard.ingest.enrich import Enricher, default_enrichers
from dashboard.ingest.validate import CUT_MARK, TimeGuard, dedupe, validate
from dashboard.store.db import Store
from dashboard.store.sample_marks import mark_sample_hours
from dashboard.store.schema import CANONICAL_KINDS, connector_runs, connector_state, kpi_samples, quarantine
from dashboard.store.upsert import upsert

log = logging.getLogger(__name__)

#: The stream name under which pushed events (listener endpoints) are ingested and counted.
PUSH_STREAM = "push"

Clock = Callable[[], datetime]


#: Characters of a quarantined record kept readable in ``raw`` (the whole of it is in ``payload``).
QUARANTINE_PREVIEW = 20_000


@dataclass
class Counts:
    records_in: int = 0
    upserted: int = 0
    quarantined: int = 0
    #: Records stored with a descriptive field cleaned or cut to fit (dashboard.ingest.validate).
    adjusted: int = 0

    def add(self, other: Counts) -> None:
        self.records_in += other.records_in
        self.upserted += other.upserted
        self.quarantined += other.quarantined
        self.adjusted += other.adjusted


@dataclass
class RunSummary:
    """What one run of one connector did."""

    run_id: int
    connector: str
    status: str
    started_at: datetime
    finished_at: datetime
    counts: Counts = field(default_factory=Counts)
    streams: dict[str, Counts] = field(default_factory=dict)
    error: str | None = None
    #: True when every failure of the run was transient (timeout, 429, 5xx): retry sooner.
    retriable: bool = False
    retry_after_s: float | None = None

    @property
    def records_in(self) -> int:
        return self.counts.records_in

    @property
    def upserted(self) -> int:
        return self.counts.upserted

    @property
    def quarantined(self) -> int:
        return self.counts.quarantined


def _raw_text(raw: Any) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        return raw
    try:
        return json.dumps(raw, default=str, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return repr(raw)


def fit(text: str | None, length: int | None = None) -> str | None:
    """``text`` as any database stores it: NULs and invalid UTF-8 escaped, cut to ``length``."""
    if text is None:
        return None
    clean = text.replace("\x00", "\\u0000").encode("utf-8", errors="backslashreplace").decode("utf-8")
    if length is not None and len(clean) > length:
        return clean[: length - len(CUT_MARK)] + CUT_MARK
    return clean


def preview(text: str) -> str:
    """The readable part of a quarantined record: all of it, or its start and how long it was."""
    clean = fit(text) or ""
    if len(clean) <= QUARANTINE_PREVIEW:
        return clean
    return clean[:QUARANTINE_PREVIEW] + f"{CUT_MARK} [truncated: {len(clean):,} characters; all in payload]"


def quarantine_row(
    *,
    run_id: int | None,
    connector: str,
    stream: str | None,
    kind: str | None,
    record_id: str | None,
    reason: str,
    raw: Any,
    now: datetime,
) -> dict[str, Any]:
    """One quarantine row that always fits its table, whatever the record held: short fields cut
    with a marker, a readable preview in ``raw``, the whole payload gzip-compressed in ``payload``."""
    text = _raw_text(raw)
    whole = text.encode("utf-8", errors="surrogatepass")
    identity = "\x1f".join([connector, stream or "", kind or "", record_id or "", reason]).encode(
        "utf-8", errors="surrogatepass"
    )
    return {
        "run_id": run_id,
        "connector": fit(connector, 64),
        "stream": fit(stream, 64),
        "kind": fit(kind, 64),
        "record_id": fit(record_id, 256),
        "reason": fit(reason, 4000),
        "raw": preview(text),
        "payload": gzip.compress(whole, compresslevel=6),
        "digest": hashlib.sha256(identity + b"\x1e" + whole).hexdigest(),
        "received_at": now,
    }


def quarantine_insert(conn: Connection) -> Insert:
    """An INSERT into quarantine that skips a rejection already stored (same digest)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(quarantine).on_conflict_do_nothing(index_elements=["connector", "digest"])
    if conn.dialect.name == "sqlite":
        return sqlite.insert(quarantine).on_conflict_do_nothing(index_elements=["connector", "digest"])
    return insert(quarantine)


class Ingestor:
    """Writes connector batches into a store. One per process is enough; it holds no connection."""

    def __init__(
        self,
        store: Store,
        *,
        enrichers: Mapping[str, Enricher] | None = None,
        clock: Clock = utcnow,
        limits: IngestConfig | None = None,
    ) -> None:
        """``enrichers`` by record kind default to :func:`default_enrichers` (``{}``: none);
        ``limits`` bound the times records may carry (the settings' ``ingest`` section)."""
        self.store = store
        self.enrichers = dict(default_enrichers() if enrichers is None else enrichers)
        self.clock = clock
        self.limits = limits or IngestConfig()

    # --- one batch -----------------------------------------------------------------------

    def ingest_batch(
        self, conn: Connection, *, connector: str, stream: str, batch: Batch, run_id: int | None = None
    ) -> Counts:
        """Validate and store one batch inside the caller's transaction; return its counts."""
        now = self.clock()
        counts = Counts(records_in=len(batch))

        def held(raw: Any, reason: str, record_id: str | None) -> dict[str, Any]:
            return quarantine_row(
                run_id=run_id,
                connector=connector,
                stream=stream,
                kind=batch.kind,
                record_id=record_id,
                reason=reason,
                raw=raw,
                now=now,
            )

        bad = [held(r.raw, r.reason, r.record_id) for r in batch.rejects]
        table = CANONICAL_KINDS.get(batch.kind)
        if table is None:
            reason = f"unknown record kind {batch.kind!r} (known: {', '.join(sorted(CANONICAL_KINDS))})"
            records = (
                batch.records.to_dict("records")
                if isinstance(batch.records, pd.DataFrame)
                else list(batch.records)
            )
            bad.extend(held(r, reason, None) for r in records)
        elif len(batch.records):
            guard = TimeGuard(now=now, max_future_s=self.limits.max_future_s, earliest=self.limits.earliest)
            checked = validate(table, batch.records, source=connector, guard=guard)
            sources = batch.sources
            bad.extend(
                # What the source sent, when the connector says what a record was mapped from.
                held(
                    sources[r.index] if sources is not None and 0 <= r.index < len(sources) else r.raw,
                    r.reason,
                    r.record_id,
                )
                for r in checked.rejected
            )
            if checked.adjusted:
                counts.adjusted += checked.adjusted_rows
                log.warning(
                    "%s %s: descriptive fields cleaned or cut to fit: %s",
                    connector,
                    batch.kind,
                    ", ".join(f"{k} ({v})" for k, v in sorted(checked.adjusted.items())),
                )
            if batch.notes:
                counts.adjusted += len(batch.notes)
                log.warning(
                    "%s %s: %d record(s) kept that differ from the source's schema, e.g. %s",
                    connector,
                    batch.kind,
                    len(batch.notes),
                    batch.notes[0],
                )
            rows = derive_keys(batch.kind, dedupe(table, checked.rows))
            enrich = self.enrichers.get(batch.kind)
            if enrich is not None and not rows.empty:
                rows = enrich(rows)
            counts.upserted = upsert(conn, table, rows, now=now)
            if table is kpi_samples and counts.upserted:
                # The roll-up pass recomputes the hours marked here (dashboard/store/sample_marks.py).
                mark_sample_hours(conn, rows["period_start"], now=now)
        if bad:
            conn.execute(quarantine_insert(conn), bad)
        counts.quarantined = len(bad)
        return counts

    def ingest(self, connector: str, batches: Iterable[Batch], *, stream: str = PUSH_STREAM) -> Counts:
        """Store batches that arrived outside a scheduled run (push listeners), one transaction each."""
        total = Counts()
        for batch in batches:
            with self.store.begin() as conn:
                total.add(self.ingest_batch(conn, connector=connector, stream=stream, batch=batch))
                if batch.state is not None:
                    save_state(conn, connector, stream, batch.state, now=self.clock())
        return total

    # --- one run -------------------------------------------------------------------------

    def run(self, connector: Connector[Any], *, streams: Iterable[str] | None = None) -> RunSummary:
        """Read every (or the named) stream of a connector to its end and record the run."""
        wanted = set(streams) if streams is not None else None
        started = self.clock()
        with self.store.begin() as conn:
            run_id = int(
                conn.execute(
                    insert(connector_runs)
                    .values(
                        connector=connector.name,
                        started_at=started,
                        status="running",
                        records_in=0,
                        upserted=0,
                        quarantined=0,
                    )
                    .returning(connector_runs.c.id)
                ).scalar_one()
            )
        summary = RunSummary(
            run_id=run_id, connector=connector.name, status="running", started_at=started, finished_at=started
        )
        errors: list[str] = []
        fatal = False
        for stream in connector.streams():
            if wanted is not None and stream.name not in wanted:
                continue
            counts = summary.streams.setdefault(stream.name, Counts())
            try:
                self._read_stream(connector, stream, run_id, counts)
            except RetriableError as err:
                errors.append(f"{stream.name}: {err}")
                summary.retry_after_s = err.retry_after_s
            except ConnectorError as err:
                errors.append(f"{stream.name}: {err}")
                fatal = True
            except Exception as err:  # a connector bug must not take the scheduler down
                fatal = True
                log.error(
                    "connector %s stream %s failed:\n%s", connector.name, stream.name, traceback.format_exc()
                )
                errors.append(f"{stream.name}: {type(err).__name__}: {err}")
            summary.counts.add(counts)
        summary.finished_at = self.clock()
        summary.error = "; ".join(errors) or None
        summary.retriable = bool(errors) and not fatal
        if errors:
            summary.status = "failed"
        elif summary.counts.quarantined:
            summary.status = "partial"
        else:
            summary.status = "success"
        with self.store.begin() as conn:
            conn.execute(
                update(connector_runs)
                .where(connector_runs.c.id == run_id)
                .values(
                    finished_at=summary.finished_at,
                    status=summary.status,
                    records_in=summary.counts.records_in,
                    upserted=summary.counts.upserted,
                    quarantined=summary.counts.quarantined,
                    error=summary.error,
                    retriable=summary.retriable if errors else None,
                    streams={k: asdict(v) for k, v in summary.streams.items()},
                )
            )
        log.info(
            "connector %s run %s: %s, %d in, %d written, %d quarantined",
            connector.name,
            run_id,
            summary.status,
            summary.records_in,
            summary.upserted,
            summary.quarantined,
        )
        return summary

    def record_failure(
        self, connector: str, error: str, *, retriable: bool, retry_after_s: float | None = None
    ) -> RunSummary:
        """Record a run that failed before reading anything (the connector could not start)."""
        now = self.clock()
        with self.store.begin() as conn:
            run_id = int(
                conn.execute(
                    insert(connector_runs)
                    .values(
                        connector=connector,
                        started_at=now,
                        finished_at=now,
                        status="failed",
                        records_in=0,
                        upserted=0,
                        quarantined=0,
                        error=error[:2000],
                        retriable=retriable,
                    )
                    .returning(connector_runs.c.id)
                ).scalar_one()
            )
        return RunSummary(
            run_id=run_id,
            connector=connector,
            status="failed",
            started_at=now,
            finished_at=now,
            error=error,
            retriable=retriable,
            retry_after_s=retry_after_s,
        )

    def _read_stream(self, connector: Connector[Any], stream: Stream, run_id: int, counts: Counts) -> None:
        with self.store.connect() as conn:
            state = load_state(conn, connector.name, stream.name)
        for batch in connector.read(stream, state):
            with self.store.begin() as conn:
                counts.add(
                    self.ingest_batch(
                        conn, connector=connector.name, stream=stream.name, batch=batch, run_id=run_id
                    )
                )
                if batch.state is not None:
                    save_state(conn, connector.name, stream.name, batch.state, now=self.clock())


def load_state(conn: Connection, connector: str, stream: str, *, for_update: bool = False) -> dict[str, Any]:
    """A stream's saved state; ``for_update`` locks the row until the transaction ends (PostgreSQL)."""
    query = select(connector_state.c.state).where(
        connector_state.c.connector == connector, connector_state.c.stream == stream
    )
    row = conn.execute(query.with_for_update() if for_update else query).first()
    return dict(row[0]) if row is not None and row[0] else {}


def save_state(
    conn: Connection, connector: str, stream: str, state: Mapping[str, Any], *, now: datetime
) -> None:
    # JSON round-trip first: state must be small and serialisable, and must fail loudly if not.
    value = json.loads(json.dumps(dict(state)))
    updated = conn.execute(
        update(connector_state)
        .where(connector_state.c.connector == connector, connector_state.c.stream == stream)
        .values(state=value, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(
            insert(connector_state).values(connector=connector, stream=stream, state=value, updated_at=now)
        )


def run_connector(
    store: Store,
    connector: Connector[Any],
    *,
    streams: Iterable[str] | None = None,
    enrichers: Mapping[str, Enricher] | None = None,
    clock: Clock = utcnow,
) -> RunSummary:
    """Run one connector through the ingest path (with the default enrichers unless given)."""
    return Ingestor(store, enrichers=enrichers, clock=clock).run(connector, streams=streams)


def abandon_runs(store: Store, *, now: datetime) -> int:
    """Mark runs still ``running`` as ``abandoned``: called when a scheduler starts, when no run of
    this deployment can be in progress, so a run its process died in does not stay "running" on the
    Sources page forever. Its batches committed so far stay; the next run resumes from its cursor."""
    with store.begin() as conn:
        result = conn.execute(
            update(connector_runs)
            .where(connector_runs.c.status == "running")
            .values(
                status="abandoned",
                finished_at=now,
                error="its process stopped before it finished; the next run resumes from its cursor",
                retriable=True,
            )
        )
    if result.rowcount:
        log.warning("%d run(s) left running by a stopped process marked abandoned", result.rowcount)
    return int(result.rowcount or 0)
