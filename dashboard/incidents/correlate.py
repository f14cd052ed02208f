"""Correlation of alarms into incidents: topology-related alarms close in time form one incident.

The core (:class:`Correlator`) is pure: it takes alarms, the incidents they may join and the
resource ancestry, and returns what changed. :func:`correlate` wraps it with the store: it reads
the alarms ingested since its last pass (a watermark with some overlap, so a late commit is never
missed; reprocessing an alarm is harmless), writes incidents and memberships, and closes resolved
incidents that stayed quiet. Processing is in (raised time, alarm id) order, so replaying the same
alarms, at once or in slices, builds the same incidents with the same ids.
"""

from __future__ import annotations

import hashlib
import uuid
import weakref
from collections import defaultdict, namedtuple
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, case, delete, insert, or_, select, update

from dashboard.ingest.runner import load_state, save_state
from dashboard.kpis import CorrelationRules
from dashboard.store.db import chunks, read_frame
from dashboard.store.schema import (
    alarms,
    cells,
    incident_alarms,
    incidents,
    resources,
    sites,
    topology_edges,
)

ENGINE_SOURCE = "vantage"
#: The source of the alarms Vantage raises itself on KPI anomalies no alarm explains (detect.py).
DETECTOR_SOURCE = "vantage-detect"
STATE_KEY = ("vantage", "correlation")
# Re-read alarms ingested this long before the watermark: a transaction that committed late is
# still seen, and an alarm seen twice changes nothing.
OVERLAP = timedelta(minutes=5)
ACTIVE_STATES = ("open", "acknowledged")
CANDIDATE_STATES = ("open", "acknowledged", "resolved")
SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2, "warning": 3, "indeterminate": 4, "cleared": 5}


@dataclass
class Alarm:
    id: str
    resource: str
    severity: str
    active: bool
    raised_at: datetime
    cleared_at: datetime | None
    probable_cause: str | None = None
    specific_problem: str | None = None
    detected: bool = False  # raised by Vantage on a KPI anomaly, not by the network

    def sort_key(self) -> tuple[datetime, str]:
        return (self.raised_at, self.id)


@dataclass
class Incident:
    id: str
    state: str
    opened_at: datetime
    alarms: dict[str, Alarm] = field(default_factory=dict)
    acked_at: datetime | None = None
    resolved_at: datetime | None = None
    owner: str | None = None
    flaps: int = 0
    merged_into: str | None = None
    root: Alarm | None = None
    severity: str = "indeterminate"
    is_new: bool = False
    merged_human: bool = False  # owner or acknowledgement taken over from a merged incident
    # As stored before this pass: (state, root alarm, severity, resolved_at, opened_at) and members.
    stored: tuple[Any, ...] | None = None
    stored_members: frozenset[str] = frozenset()

    def snapshot(self) -> tuple[Any, ...]:
        return (
            self.state,
            self.root.id if self.root else None,
            self.severity,
            self.resolved_at,
            self.opened_at,
        )


def incident_id(alarm: Alarm) -> str:
    """A readable id that only depends on the alarm that opened the incident."""
    digest = hashlib.sha1(alarm.id.encode()).hexdigest()[:4]
    return f"INC-{alarm.raised_at:%Y%m%d-%H%M}-{digest}"


class Correlator:
    """Groups alarms into incidents; ``ancestors[r]`` holds r's ancestors in the topology (not r)."""

    def __init__(
        self,
        rules: CorrelationRules,
        ancestors: Mapping[str, frozenset[str]],
        taken: Callable[[str], bool] = lambda _id: False,
    ) -> None:
        self.rules = rules
        self.ancestors = ancestors
        self.taken = taken  # whether an incident id is already stored (closed incidents are not loaded)
        self.incidents: dict[str, Incident] = {}
        self.alarm_incident: dict[str, str] = {}
        self._by_resource: dict[str, set[str]] = defaultdict(set)  # resource -> incidents with alarms on it
        self._by_ancestor: dict[str, set[str]] = defaultdict(
            set
        )  # resource -> incidents with alarms below it
        self.changed: set[str] = set()

    # --- state -----------------------------------------------------------------------------

    def load(self, incident: Incident) -> None:
        """Add a stored incident; its member alarms are read as they are now."""
        self.incidents[incident.id] = incident
        incident.stored_members = frozenset(incident.alarms)
        for a in incident.alarms.values():
            self._index(incident.id, a)

    def _index(self, inc_id: str, a: Alarm) -> None:
        self.alarm_incident[a.id] = inc_id
        self._by_resource[a.resource].add(inc_id)
        for anc in self.ancestors.get(a.resource, ()):
            self._by_ancestor[anc].add(inc_id)

    def _related(self, r1: str, r2: str) -> bool:
        return r1 == r2 or r1 in self.ancestors.get(r2, ()) or r2 in self.ancestors.get(r1, ())

    def _close_in_time(self, a: Alarm, m: Alarm) -> bool:
        hold = timedelta(seconds=self.rules.flap_hold_s if a.resource == m.resource else self.rules.window_s)
        window = timedelta(seconds=self.rules.window_s)
        if abs(a.raised_at - m.raised_at) <= window:
            return True
        a_end = None if a.active or a.cleared_at is None else a.cleared_at
        m_end = None if m.active or m.cleared_at is None else m.cleared_at
        return (m_end is None or a.raised_at <= m_end + hold) and (
            a_end is None or m.raised_at <= a_end + hold
        )

    # --- processing --------------------------------------------------------------------------

    def process(self, batch: Iterable[Alarm], now: datetime) -> set[str]:
        """Apply new or changed alarms; returns the ids of the incidents that changed."""
        for loaded in self.incidents.values():
            self._refresh(loaded, now)  # member alarms may have changed since the last pass
        for a in sorted(batch, key=Alarm.sort_key):
            known = self.alarm_incident.get(a.id)
            inc = self.incidents.get(known) if known else None
            if inc is not None and inc.state in CANDIDATE_STATES:
                inc.alarms[a.id] = a
                self._refresh(inc, now)
                continue
            if inc is not None and not a.active:
                continue  # a late update of an alarm whose incident is closed
            self._place(a, now)
        self.close_quiet(now)
        for inc in self.incidents.values():
            if inc.is_new or inc.id in self.changed:
                self.changed.add(inc.id)
                continue
            if inc.stored is not None and inc.stored[0] not in CANDIDATE_STATES:
                continue  # closed or merged: history
            if (inc.stored is not None and inc.stored != inc.snapshot()) or inc.stored_members != frozenset(
                inc.alarms
            ):
                if inc.stored is not None and inc.stored[0] == "resolved" and inc.state in ACTIVE_STATES:
                    inc.flaps += 1  # re-raised after it had cleared: a flap, not a new incident
                self.changed.add(inc.id)
        return self.changed

    def _candidates(self, a: Alarm) -> list[Incident]:
        ids = set(self._by_resource.get(a.resource, ())) | self._by_ancestor.get(a.resource, set())
        for anc in self.ancestors.get(a.resource, ()):
            ids |= self._by_resource.get(anc, set())
        out = []
        for inc_id in ids:
            inc = self.incidents[inc_id]
            if inc.state not in CANDIDATE_STATES:
                continue
            if any(
                self._related(a.resource, m.resource) and self._close_in_time(a, m)
                for m in inc.alarms.values()
            ):
                out.append(inc)
        return sorted(out, key=lambda i: (i.opened_at, i.id))

    def _place(self, a: Alarm, now: datetime) -> None:
        cands = self._candidates(a)
        if not cands:
            inc = Incident(id=incident_id(a), state="open", opened_at=a.raised_at, is_new=True)
            base, n = inc.id, 1
            while inc.id in self.incidents or self.taken(inc.id):  # e.g. the same alarm id re-raised
                n += 1
                inc.id = f"{base}-{n}"
            self.incidents[inc.id] = inc
        else:
            inc = cands[0]
            for other in cands[1:]:
                self._merge(other, into=inc, now=now)
        inc.alarms[a.id] = a
        self._index(inc.id, a)
        self._refresh(inc, now)

    def _merge(self, other: Incident, *, into: Incident, now: datetime) -> None:
        for a in other.alarms.values():
            into.alarms[a.id] = a
            self._index(into.id, a)
        for index in (self._by_resource, self._by_ancestor):
            for ids in index.values():
                ids.discard(other.id)
        if into.owner is None and other.owner is not None:
            into.owner, into.merged_human = other.owner, True
        if other.acked_at and (into.acked_at is None or other.acked_at < into.acked_at):
            into.acked_at, into.merged_human = other.acked_at, True
        into.flaps += other.flaps
        other.state, other.merged_into, other.resolved_at = "merged", into.id, now
        self.changed.add(other.id)
        self.changed.add(into.id)

    def _refresh(self, inc: Incident, now: datetime | None = None) -> None:
        """Root, severity and state from the member alarms."""
        if inc.state not in CANDIDATE_STATES or not inc.alarms:
            return  # closed and merged incidents are history
        members = list(inc.alarms.values())
        resources_with_alarms = {m.resource for m in members}
        tops = [
            m for m in members if not (self.ancestors.get(m.resource, frozenset()) & resources_with_alarms)
        ]
        active_tops = [m for m in tops if m.active]
        # An alarm from the network is the root before one Vantage raised on the same level.
        inc.root = min(active_tops or tops, key=lambda m: (m.detected, m.raised_at, m.id))
        active = [m for m in members if m.active]
        inc.severity = min((m.severity for m in (active or members)), key=lambda s: SEVERITY_ORDER.get(s, 9))
        inc.opened_at = min(m.raised_at for m in members)
        if active_tops:
            inc.state = "acknowledged" if inc.acked_at else "open"
            inc.resolved_at = None
        else:
            cleared = [m.cleared_at for m in tops if m.cleared_at is not None]
            inc.resolved_at = max(cleared) if cleared else (now or inc.opened_at)
            inc.state = "resolved"

    def close_quiet(self, now: datetime) -> None:
        after = timedelta(seconds=self.rules.close_after_s)
        for inc in self.incidents.values():
            if inc.state == "resolved" and inc.resolved_at is not None and now - inc.resolved_at >= after:
                inc.state = "closed"


# --- the store ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorrelationSummary:
    alarms: int
    opened: int
    changed: int
    watermark: datetime | None


def ancestors_of(
    conn: Connection, resource_ids: Iterable[str], *, max_depth: int = 8
) -> dict[str, frozenset[str]]:
    """Each resource's ancestors through resource -> resource edges, walking up level by level.

    A cell (the resource of an alarm Vantage raises on a KPI anomaly) has the resources that serve it
    (resource -> cell edges) and theirs as its ancestors."""
    parents: dict[str, set[str]] = defaultdict(set)
    frontier = set(resource_ids)
    seen = set(frontier)
    for _ in range(max_depth):
        if not frontier:
            break
        nxt: set[str] = set()
        for part in chunks(sorted(frontier)):
            rows = conn.execute(
                select(topology_edges.c.child_id, topology_edges.c.parent_id).where(
                    topology_edges.c.child_type.in_(("resource", "cell")),
                    topology_edges.c.parent_type == "resource",
                    topology_edges.c.child_id.in_(part),
                )
            )
            for child, parent in rows:
                parents[child].add(parent)
                if parent not in seen:
                    seen.add(parent)
                    nxt.add(parent)
        frontier = nxt
    out: dict[str, frozenset[str]] = {}

    def up(r: str, depth: int = 0) -> frozenset[str]:
        if r in out:
            return out[r]
        acc: set[str] = set()
        if depth < max_depth:
            for p in parents.get(r, ()):
                acc.add(p)
                acc |= up(p, depth + 1)
        out[r] = frozenset(acc - {r})
        return out[r]

    for r in seen:
        up(r)
    return out


def _dt(v: Any) -> datetime | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return None
    return (
        pd.Timestamp(v).to_pydatetime() if not isinstance(v, datetime) or isinstance(v, pd.Timestamp) else v
    )


def _text(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def _alarm(row: Any) -> Alarm:
    raised = _dt(row.raised_at)
    cleared = _dt(row.cleared_at)
    assert raised is not None
    return Alarm(
        id=str(row.id),
        resource=str(_text(row.resource_id) or _text(row.alarmed_object) or f"alarm:{row.id}"),
        severity=str(row.severity),
        active=row.state != "cleared" and cleared is None,
        raised_at=raised,
        cleared_at=cleared,
        probable_cause=_text(row.probable_cause),
        specific_problem=_text(row.specific_problem),
        detected=row.source == DETECTOR_SOURCE,
    )


# Member alarms as last read (their columns, in _ALARM_COLS order) -> Alarm. An Alarm is never
# changed once made, so one read the same as before is not parsed again (bounded: cleared when full).
_MEMBERS: dict[tuple[Any, ...], Alarm] = {}
_MEMBERS_MAX = 200_000


def _member_alarm(values: tuple[Any, ...]) -> Alarm:
    a = _MEMBERS.get(values)
    if a is None:
        if len(_MEMBERS) >= _MEMBERS_MAX:
            _MEMBERS.clear()
        a = _MEMBERS[values] = _alarm(_Row(*values))
    return a


_ALARM_COLS = (
    alarms.c.id,
    alarms.c.resource_id,
    alarms.c.alarmed_object,
    alarms.c.severity,
    alarms.c.state,
    alarms.c.raised_at,
    alarms.c.cleared_at,
    alarms.c.probable_cause,
    alarms.c.specific_problem,
    alarms.c.ingested_at,
    alarms.c.source,
)


_Row = namedtuple("_Row", [c.name for c in _ALARM_COLS])  # type: ignore[misc]


def _changed_alarms(
    conn: Connection, since: datetime | None, now: datetime, rules: CorrelationRules
) -> pd.DataFrame:
    stmt = select(*_ALARM_COLS)
    if since is None:
        horizon = now - timedelta(seconds=rules.lookback_s)
        stmt = stmt.where(or_(alarms.c.raised_at >= horizon, alarms.c.cleared_at.is_(None)))
    else:
        stmt = stmt.where(alarms.c.ingested_at > since - OVERLAP)
    return read_frame(conn, stmt)


def _load_incidents(
    conn: Connection, ids: set[str] | None, *, candidates: bool = True
) -> dict[str, Incident]:
    """Engine incidents that may still change (unless not ``candidates``) and, by id, those the changed
    alarms belong to."""
    cond = and_(incidents.c.source == ENGINE_SOURCE, incidents.c.state.in_(CANDIDATE_STATES))
    stmt = select(
        incidents.c.id,
        incidents.c.state,
        incidents.c.opened_at,
        incidents.c.acked_at,
        incidents.c.resolved_at,
        incidents.c.owner,
        incidents.c.flaps,
        incidents.c.merged_into,
        incidents.c.root_alarm_id,
        incidents.c.severity,
    )
    out: dict[str, Incident] = {}

    def make(r: Any) -> Incident:
        inc = Incident(
            r.id, r.state, r.opened_at, {}, r.acked_at, r.resolved_at, r.owner, r.flaps or 0, r.merged_into
        )
        inc.stored = (r.state, r.root_alarm_id, r.severity, r.resolved_at, r.opened_at)
        return inc

    if candidates:
        for r in conn.execute(stmt.where(cond)):
            out[r.id] = make(r)
    extra = sorted((ids or set()) - set(out))
    for part in chunks(extra):
        for r in conn.execute(stmt.where(incidents.c.source == ENGINE_SOURCE, incidents.c.id.in_(part))):
            out[r.id] = make(r)
    members = list(out)
    for part in chunks(members):
        q = (
            select(incident_alarms.c.incident_id, *_ALARM_COLS)
            .join(alarms, alarms.c.id == incident_alarms.c.alarm_id)
            .where(incident_alarms.c.source == ENGINE_SOURCE, incident_alarms.c.incident_id.in_(part))
        )
        for row in conn.execute(q):
            out[row.incident_id].alarms[str(row.id)] = _member_alarm(tuple(row)[1:])
    return out


def _membership(conn: Connection, alarm_ids: list[str]) -> dict[str, str]:
    """alarm id -> the latest incident it belongs to."""
    found: dict[str, tuple[datetime, str]] = {}
    for part in chunks(alarm_ids):
        q = (
            select(incident_alarms.c.alarm_id, incidents.c.id, incidents.c.opened_at)
            .join(
                incidents,
                and_(incidents.c.id == incident_alarms.c.incident_id, incidents.c.source == ENGINE_SOURCE),
            )
            .where(incident_alarms.c.source == ENGINE_SOURCE, incident_alarms.c.alarm_id.in_(part))
        )
        for alarm_id, inc_id, opened in conn.execute(q):
            if alarm_id not in found or (opened, inc_id) > found[alarm_id]:
                found[alarm_id] = (opened, inc_id)
    return {a: v[1] for a, v in found.items()}


def _describe(conn: Connection, resource_ids: set[str]) -> dict[str, tuple[str, str | None]]:
    """resource id -> (name, region id); a cell (where Vantage raised an alarm) -> "cell at site"."""
    out: dict[str, tuple[str, str | None]] = {}
    for part in chunks(sorted(resource_ids)):
        q = (
            select(resources.c.id, resources.c.name, sites.c.region_id)
            .select_from(resources.outerjoin(sites, sites.c.id == resources.c.site_id))
            .where(resources.c.id.in_(part))
        )
        for rid, name, region in conn.execute(q):
            out[rid] = (name, region)
    for part in chunks(sorted(resource_ids - out.keys())):
        q = (
            select(cells.c.id, cells.c.name, sites.c.name, sites.c.region_id)
            .select_from(cells.outerjoin(sites, sites.c.id == cells.c.site_id))
            .where(cells.c.id.in_(part))
        )
        for row in conn.execute(q):
            cid, name, region = str(row[0]), str(row[1]), row[3]
            out[cid] = (f"{name} ({row[2]})" if row[2] else name, region)
    return out


@dataclass
class _Kept:
    """The incidents that may still change, as the last pass in this process left them (``generation``:
    the id it stored with its watermark). Their alarms change only through the alarms a pass reads, so
    a next pass re-reads only what operators own (state, acknowledgement, owner)."""

    generation: str
    incidents: dict[str, Incident]


_KEPT: weakref.WeakKeyDictionary[Any, _Kept] = weakref.WeakKeyDictionary()


def _reuse(conn: Connection, kept: _Kept, ids: set[str]) -> dict[str, Incident] | None:
    """The kept incidents with their operator-owned fields read afresh, and by id those of ``ids`` that
    are not kept (closed ones a late alarm update belongs to); None when the store holds other
    incidents that may change than those kept (another process correlated)."""
    i = incidents
    rows = conn.execute(
        select(i.c.id, i.c.state, i.c.acked_at, i.c.owner).where(
            i.c.source == ENGINE_SOURCE, i.c.state.in_(CANDIDATE_STATES)
        )
    ).all()
    if {r.id for r in rows} != kept.incidents.keys():
        return None
    out: dict[str, Incident] = {}
    for r in rows:
        inc = kept.incidents[r.id]
        assert inc.stored is not None
        inc.state, inc.acked_at, inc.owner = r.state, r.acked_at, r.owner
        inc.stored = (r.state, *inc.stored[1:])
        out[r.id] = inc
    extra = ids - out.keys()
    if extra:
        out.update(_load_incidents(conn, extra, candidates=False))
    return out


def correlate(
    conn: Connection,
    rules: CorrelationRules,
    *,
    now: datetime,
    ancestors_memo: dict[str, frozenset[str]] | None = None,
) -> CorrelationSummary:
    """One correlation pass in the caller's transaction.

    ``ancestors_memo``: resource -> ancestors found by earlier passes on the same topology; only the
    resources missing from it are walked up, and their answers are added to it. A pass that follows
    one of this process on the same store starts from the incidents that pass left (see _Kept).
    """
    state = load_state(conn, *STATE_KEY, for_update=True)
    since = datetime.fromisoformat(state["ingested_at"]) if state.get("ingested_at") else None
    changed = _changed_alarms(conn, since, now, rules)
    alarm_ids = changed["id"].astype(str).tolist()
    membership = _membership(conn, alarm_ids)
    kept = _KEPT.pop(conn.engine, None)
    loaded = None
    if kept is not None and state.get("generation") == kept.generation:
        loaded = _reuse(conn, kept, set(membership.values()))
    if loaded is None:
        loaded = _load_incidents(conn, set(membership.values()))
    batch = [_alarm(r) for r in changed.itertuples(index=False)]
    resources_seen = {a.resource for a in batch} | {
        a.resource for i in loaded.values() for a in i.alarms.values()
    }

    def taken(inc_id: str) -> bool:
        stmt = select(incidents.c.id).where(incidents.c.id == inc_id, incidents.c.source == ENGINE_SOURCE)
        return conn.execute(stmt).first() is not None

    if ancestors_memo is None:
        ancestry: Mapping[str, frozenset[str]] = ancestors_of(conn, resources_seen)
    else:
        missing = resources_seen - ancestors_memo.keys()
        if missing:
            ancestors_memo.update(ancestors_of(conn, missing))
        ancestry = ancestors_memo
    corr = Correlator(rules, ancestry, taken)
    for inc in loaded.values():
        corr.load(inc)
    for alarm_id, inc_id in membership.items():
        corr.alarm_incident[alarm_id] = inc_id
    touched = corr.process(batch, now)
    _write(conn, corr, touched, now)
    mark = changed["ingested_at"].max() if len(changed) else None
    new_mark = pd.Timestamp(mark).to_pydatetime() if mark is not None and pd.notna(mark) else (since or now)
    generation = uuid.uuid4().hex
    save_state(conn, *STATE_KEY, {"ingested_at": new_mark.isoformat(), "generation": generation}, now=now)
    opened = sum(1 for i in touched if corr.incidents[i].is_new)
    # What the store now holds, for the next pass (kept once this transaction commits: left_by_pass).
    left = {}
    for inc in corr.incidents.values():
        if inc.state in CANDIDATE_STATES:
            inc.stored, inc.stored_members = inc.snapshot(), frozenset(inc.alarms)
            inc.is_new = inc.merged_human = False
            left[inc.id] = inc
    conn.info["vantage.correlation"] = _Kept(generation, left)
    return CorrelationSummary(alarms=len(batch), opened=opened, changed=len(touched), watermark=new_mark)


def forget(engine: Any) -> None:
    """Start the next pass on ``engine`` from the store."""
    _KEPT.pop(engine, None)


def left_by_pass(conn: Connection) -> Callable[[], None]:
    """What the pass in ``conn``'s transaction left, to keep (by calling the result) once that
    transaction has committed; a pass whose transaction rolled back leaves nothing to reuse."""
    kept = conn.info.pop("vantage.correlation", None)
    engine = conn.engine

    def keep() -> None:
        if kept is not None:
            _KEPT[engine] = kept

    return keep


def _write(conn: Connection, corr: Correlator, touched: set[str], now: datetime) -> None:
    if not touched:
        return
    roots = {root.resource for i in touched if (root := corr.incidents[i].root) is not None}
    names = _describe(conn, roots)
    existing_members: dict[str, set[str]] = defaultdict(set)
    for part in chunks(sorted(touched)):
        for inc_id, alarm_id in conn.execute(
            select(incident_alarms.c.incident_id, incident_alarms.c.alarm_id).where(
                incident_alarms.c.source == ENGINE_SOURCE, incident_alarms.c.incident_id.in_(part)
            )
        ):
            existing_members[inc_id].add(alarm_id)
    for inc_id in sorted(touched):
        inc = corr.incidents[inc_id]
        values: dict[str, Any] = {
            "state": inc.state,
            "resolved_at": inc.resolved_at,
            "changed_at": now,
            "kind": "detected" if inc.alarms and all(a.detected for a in inc.alarms.values()) else "alarm",
        }
        if inc.state == "merged":
            values["merged_into"] = inc.merged_into
        root = inc.root
        if root is not None:
            name, region = names.get(root.resource, (root.resource, None))
            problem = root.specific_problem or root.probable_cause or "Alarm"
            values |= {
                "title": f"{problem} at {name}"[:256],
                "root_resource_id": root.resource,
                "root_alarm_id": root.id,
                "severity": inc.severity,
                "probable_cause": root.probable_cause,
                "opened_at": inc.opened_at,
                "region_id": region,
                "flaps": inc.flaps,
            }
        if inc.is_new or inc.merged_human:
            # Owner and acknowledgement belong to operators; only a merge carries them over.
            values |= {"owner": inc.owner, "acked_at": inc.acked_at}
        elif values["state"] == "open":
            # An operator may have acknowledged it since this pass read it.
            values["state"] = case((incidents.c.acked_at.is_not(None), "acknowledged"), else_="open")
        if inc.is_new:
            conn.execute(insert(incidents).values(id=inc.id, source=ENGINE_SOURCE, ingested_at=now, **values))
        else:
            conn.execute(
                update(incidents)
                .where(incidents.c.id == inc.id, incidents.c.source == ENGINE_SOURCE)
                .values(ingested_at=now, **values)
            )
        current = set(inc.alarms) if inc.state != "merged" else set()
        gone = existing_members[inc.id] - current
        added = current - existing_members[inc.id]
        if gone:
            conn.execute(
                delete(incident_alarms).where(
                    incident_alarms.c.source == ENGINE_SOURCE,
                    incident_alarms.c.incident_id == inc.id,
                    incident_alarms.c.alarm_id.in_(sorted(gone)),
                )
            )
        if added:
            conn.execute(
                insert(incident_alarms),
                [
                    {"source": ENGINE_SOURCE, "incident_id": inc.id, "alarm_id": a, "ingested_at": now}
                    for a in sorted(added)
                ],
            )
