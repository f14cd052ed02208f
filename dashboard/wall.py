"""The NOC wall's data: small panels, each with a version, so a refresh sends only what changed.

``GET /api/v1/wall?have=queue:1a2b,kpis:9f..`` answers with every panel whose version differs from
the one the screen has (all of them on the first request) plus the time and the staleness verdict;
assets/wall.js renders them in place. Panels:

- ``queue``: the top of the value-weighted queue (rank, title, severity, revenue at risk per hour,
  SLA deadline, VIP/enterprise lines, reason, and kind: alarm or detected from KPIs with no alarm);
- ``alerts``: critical or VIP/enterprise incidents opened in the last ``ALERT_WINDOW`` (the screen
  jumps to the incidents view for one it has not seen);
- ``sites``: sites whose status is not OK (worst active alarm at the site, or ``impacted`` when an
  open incident degrades its cells); ``site_map``: every site's position, sent once;
- ``kpis``: the catalogue's headline KPIs, network-wide, with status and a sparkline, and for those
  with an anomaly rule how many cells and sites are outside their usual band now;
- ``money``: revenue at risk per hour now (sum over the open queue), and how many of the open
  incidents were detected from KPIs with no alarm;
- ``sources``: every enabled source's freshness; ``stale``: whether the wall must say DATA STALE.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, NotRequired, TypedDict

import pandas as pd
from sqlalchemy import Connection, and_, case, func, or_, select

from connectors.canonical import SEVERITIES
from dashboard import health, queries, readiness
from dashboard.cache import Cache
from dashboard.config import Settings
from dashboard.incidents.read import queue_computed_at
from dashboard.kpi_eval.bands import outside_counts, verdicts_mark
from dashboard.kpi_eval.read import current
from dashboard.kpis import Catalogue
from dashboard.store.db import Store, read_frame
from dashboard.store.rows import json_rows, json_value
from dashboard.store.schema import (
    alarms,
    cells,
    incident_cells,
    incident_queue,
    incidents,
    kpi_status,
    regions,
    resources,
    sites,
)

PANELS = ("queue", "alerts", "sites", "site_map", "kpis", "money", "sources")
#: Sent instead of ``sites`` when the screen's version is recent: only the sites that changed.
DELTAS = ("sites_delta",)
ALERT_WINDOW = timedelta(minutes=30)
OPEN_STATES = ("open", "acknowledged")
SITE_LEVELS = ("critical", "major", "minor", "warning", "impacted")


# --- The payload, as assets/wall.js reads it -----------------------------------------------------


class WallIncident(TypedDict):
    """A row of the ``queue`` and ``alerts`` panels."""

    id: str
    rank: int | None
    title: str
    severity: str
    state: str
    rar: float | None  # revenue at risk per hour
    sla: str | None  # the SLA deadline
    breached: int
    vip: float | None  # VIP lines affected
    ent: float | None  # enterprise lines affected
    accounts: int
    reason: str
    kind: str | None  # alarm, or detected (KPI anomalies no alarm explains)


class Money(TypedDict):
    rar: int  # revenue at risk per hour, over the open queue
    incidents: int
    breached: int
    detected: int  # of the open incidents, those KPI anomalies opened with no alarm
    currency: str


class Outside(TypedDict):
    """Series of a KPI outside their usual band now (anomalous), per level."""

    cell: int
    site: int


class KpiTile(TypedDict):
    name: str
    label: str
    unit: str
    value: float | None
    status: str
    spark: list[float | None]
    outside: Outside | None  # None: the KPI has no anomaly rule


class SourceFreshness(TypedDict):
    name: str
    fresh: bool
    freshness: str
    state: str
    last: str | None
    stale_since: str | None


class StaleVerdict(TypedDict):
    """``{"stale": False}`` alone, or stale with since when and why."""

    stale: bool
    since: NotRequired[str | None]
    text: NotRequired[str]


class SitesDelta(TypedDict):
    base: str  # the screen's version of ``sites`` this applies to
    set: dict[str, str]  # site -> status, new or changed
    clear: list[str]  # sites that are OK again


#: [id, name, lat, lon] of one site.
SitePosition = list[str | float | None]  # id, name, lat, lon, region
#: One panel's payload; which one is said by its name (PANELS and DELTAS).
Panel = (
    list[WallIncident]
    | dict[str, str]
    | list[SitePosition]
    | list[KpiTile]
    | Money
    | list[SourceFreshness]
    | SitesDelta
)


class WallState(TypedDict):
    now: str
    versions: dict[str, str]  # every panel's version, sent or not
    panels: dict[str, Panel]  # the panels that changed
    stale: StaleVerdict
    preparing: readiness.Progress | None  # a fresh store's preparation while it runs


def _iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _num(value: Any, digits: int = 1) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), digits)


def version(payload: object) -> str:
    """A short content hash: equal payloads, equal versions, whatever process computed them."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def _incident_rows(df: pd.DataFrame) -> list[WallIncident]:
    return [
        {
            "id": str(r.incident_id),
            "rank": None if pd.isna(r.rank) else int(r.rank),
            "title": str(r.title),
            "severity": str(r.severity),
            "state": str(r.state),
            "rar": _num(r.revenue_at_risk_per_hour, 0),
            "sla": _iso(r.sla_deadline),
            "breached": int(r.sla_breached or 0),
            "vip": _num(r.vip_lines, 0),
            "ent": _num(r.enterprise_lines, 0),
            "accounts": int(r.accounts or 0),
            "reason": str(r.reason),
            "kind": None if r.kind is None or pd.isna(r.kind) else str(r.kind),
        }
        for r in df.itertuples(index=False)
    ]


_QUEUE_COLS = [
    incident_queue.c.incident_id,
    incident_queue.c.rank,
    incident_queue.c.title,
    incident_queue.c.severity,
    incident_queue.c.state,
    incident_queue.c.revenue_at_risk_per_hour,
    incident_queue.c.sla_deadline,
    incident_queue.c.sla_breached,
    incident_queue.c.vip_lines,
    incident_queue.c.enterprise_lines,
    incident_queue.c.accounts,
    incident_queue.c.reason,
    incident_queue.c.kind,
]


def queue_panel(conn: Connection, top: int) -> list[WallIncident]:
    stmt = (
        select(*_QUEUE_COLS)
        .where(incident_queue.c.rank.is_not(None), incident_queue.c.state.in_(OPEN_STATES))
        .order_by(incident_queue.c.rank)
        .limit(top)
    )
    return _incident_rows(read_frame(conn, stmt))


def alerts_panel(conn: Connection, now: datetime) -> list[WallIncident]:
    """Critical or VIP/enterprise incidents opened recently, newest first (at most five)."""
    return alerts_at(alert_candidates(conn, now), now)


#: Recent alerts read at once: enough that the five newest are still among them as time goes by.
_ALERT_CANDIDATES = 50


def alert_candidates(conn: Connection, now: datetime) -> list[tuple[str | None, WallIncident]]:
    """(opened at, row) of the incidents that are alerts at ``now``, newest first: what
    :func:`alerts_at` narrows to the window at any later time (a cached read stays right as the
    window moves; a new incident comes with a new queue, which reads them again)."""
    stmt = (
        select(*_QUEUE_COLS, incident_queue.c.opened_at)
        .where(
            incident_queue.c.rank.is_not(None),
            incident_queue.c.state.in_(OPEN_STATES),
            incident_queue.c.opened_at >= now - ALERT_WINDOW,
            or_(
                incident_queue.c.severity == "critical",
                incident_queue.c.vip_lines > 0,
                incident_queue.c.enterprise_lines > 0,
            ),
        )
        .order_by(incident_queue.c.opened_at.desc(), incident_queue.c.incident_id)
        .limit(_ALERT_CANDIDATES)
    )
    df = read_frame(conn, stmt)
    return list(zip([_iso(v) for v in df["opened_at"]], _incident_rows(df), strict=True))


def alerts_at(candidates: list[tuple[str | None, WallIncident]], now: datetime) -> list[WallIncident]:
    """The candidates still inside the alert window at ``now``: at most five, newest first."""
    start = _iso(now - ALERT_WINDOW) or ""
    return [row for opened, row in candidates if opened is not None and opened >= start][:5]


def money_panel(conn: Connection, currency: str) -> Money:
    q = incident_queue
    stmt = select(
        func.coalesce(func.sum(q.c.revenue_at_risk_per_hour), 0.0),
        func.count(),
        func.coalesce(func.sum(q.c.sla_breached), 0),
        func.coalesce(func.sum(case((q.c.kind == "detected", 1), else_=0)), 0),
    ).where(q.c.rank.is_not(None), q.c.state.in_(OPEN_STATES))
    rar, n, breached, detected = conn.execute(stmt).one()
    return {
        "rar": round(float(rar)),
        "incidents": int(n),
        "breached": int(breached),
        "detected": int(detected),
        "currency": currency,
    }


_SITES_CACHE: dict[str, tuple[tuple[Any, ...], dict[str, str]]] = {}
_SITES_LOCK = threading.Lock()


def _sites_mark(conn: Connection) -> tuple[Any, ...]:
    """Changes whenever an alarm is stored or changed, or the queue (and its incidents) is recomputed."""
    alarm_mark = conn.execute(select(func.max(alarms.c.ingested_at), func.count()).select_from(alarms)).one()
    return (*alarm_mark, queue_computed_at(conn))


def cached_sites_panel(conn: Connection) -> dict[str, str]:
    """:func:`sites_panel`, re-read only when alarms or the queue changed since the last read."""
    mark = _sites_mark(conn)
    key = str(conn.engine.url)
    with _SITES_LOCK:
        hit = _SITES_CACHE.get(key)
    if hit is not None and hit[0] == mark:
        return hit[1]
    sites = sites_panel(conn)
    with _SITES_LOCK:
        _SITES_CACHE[key] = (mark, sites)
    return sites


def sites_panel(conn: Connection) -> dict[str, str]:
    """Site id -> status, for sites that are not OK: the worst active alarm there, else impacted."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    out: dict[str, str] = {}
    at_resource = (
        select(resources.c.site_id, alarms.c.severity)
        .join(resources, resources.c.id == alarms.c.resource_id)
        .where(alarms.c.state != "cleared", resources.c.site_id.is_not(None))
        .distinct()
    )
    at_cell = (
        select(cells.c.site_id, alarms.c.severity)
        .join(cells, cells.c.id == alarms.c.resource_id)
        .where(alarms.c.state != "cleared", cells.c.site_id.is_not(None))
        .distinct()
    )
    for stmt in (at_resource, at_cell):
        for site, sev in conn.execute(stmt):
            if sev not in rank or sev == "cleared":
                continue
            cur = out.get(site)
            if cur is None or rank[sev] < rank.get(cur, 99):
                out[str(site)] = str(sev)
    impacted = (
        select(cells.c.site_id)
        .join(incident_cells, incident_cells.c.cell_id == cells.c.id)
        .join(incidents, incidents.c.id == incident_cells.c.incident_id)
        .where(incidents.c.state.in_(OPEN_STATES), cells.c.site_id.is_not(None))
        .distinct()
    )
    for (site,) in conn.execute(impacted):
        out.setdefault(str(site), "impacted")
    return dict(sorted(out.items()))


def site_map_panel(conn: Connection) -> list[SitePosition]:
    """[id, name, lat, lon, region] of every site with a position: sent once, the screen keeps it and
    draws each region's outline and name around its sites."""
    region = select(func.max(regions.c.name)).where(regions.c.id == sites.c.region_id).scalar_subquery()
    stmt = (
        select(sites.c.id, sites.c.name, sites.c.lat, sites.c.lon, func.coalesce(region, sites.c.region_id))
        .where(and_(sites.c.lat.is_not(None), sites.c.lon.is_not(None)))
        .order_by(sites.c.id)
    )
    return [
        [str(i), str(n), round(float(la), 4), round(float(lo), 4), None if r is None else str(r)]
        for i, n, la, lo, r in conn.execute(stmt)
    ]


_KPI_CACHE: dict[tuple[str, int], tuple[tuple[Any, ...], list[KpiTile]]] = {}
_KPI_LOCK = threading.Lock()


def kpis_panel(conn: Connection, catalogue: Catalogue, currency: str = "EUR") -> list[KpiTile]:
    """The headline KPI tiles; re-read only after an evaluation pass changed ``kpi_status`` or the
    anomaly verdicts."""
    status_mark = conn.execute(
        select(func.max(kpi_status.c.evaluated_at), func.count()).select_from(kpi_status)
    ).one()
    mark = (*status_mark, *verdicts_mark(conn))
    key = (str(conn.engine.url), id(catalogue))
    with _KPI_LOCK:
        hit = _KPI_CACHE.get(key)
    if hit is not None and hit[0] == mark:
        return hit[1]
    tiles = _kpi_tiles(conn, catalogue, currency)
    with _KPI_LOCK:
        _KPI_CACHE[key] = (mark, tiles)
    return tiles


def _kpi_tiles(conn: Connection, catalogue: Catalogue, currency: str) -> list[KpiTile]:
    outside = outside_counts(conn, catalogue, levels=("cell", "site"))
    out: list[KpiTile] = []
    for item in current(conn, catalogue, level="network", entity_id="all"):
        # Revenue at risk has its own live panel (the queue now); its hourly KPI would lag it.
        if not item.get("headline") or item.get("name") == "revenue_at_risk_per_hour":
            continue
        kpi = catalogue.get(str(item["name"]))
        out.append(
            {
                "name": kpi.name,
                "label": kpi.label,
                "unit": kpi.unit.replace("currency", currency),
                "value": _num(item.get("value"), 3),
                "status": str(item.get("status") or "no_data"),
                "spark": [_num(v, 3) for v in (item.get("sparkline") or [])],
                "outside": _outside(outside.get(kpi.name)),
            }
        )
    return out


def _outside(counts: Mapping[str, int] | None) -> Outside | None:
    if counts is None:
        return None
    return {"cell": int(counts.get("cell", 0)), "site": int(counts.get("site", 0))}


#: How :func:`run_rows` writes a time: ISO 8601, to the microsecond.
_ISO_US = "%Y-%m-%dT%H:%M:%S.%f"


def run_rows(conn: Connection, *, now: datetime) -> list[dict[str, Any]]:
    """The run summaries (``queries.run_summaries``) as JSON holds them (times as ISO text): what
    the wall reads of the sources, from the store or the cache alike."""
    return json_rows(queries.run_summaries(conn, now=now), time_format=_ISO_US, other=json_value)


def sources_panel(conn: Connection, settings: Settings, now: datetime) -> list[SourceFreshness]:
    return sources_from(run_rows(conn, now=now), settings, now)


def sources_from(
    runs: Sequence[Mapping[str, Any]], settings: Settings, now: datetime
) -> list[SourceFreshness]:
    """Every enabled source's freshness at ``now`` from its run summaries (:func:`run_rows`, which
    may be older: the verdict is always taken now)."""
    enabled = settings.enabled_connectors
    out: list[SourceFreshness] = []
    for row in health.source_rows(enabled, runs, now):
        if not row["enabled"]:
            continue
        last = row["last_success_at"]
        interval = row["interval_s"]
        stale_since = None
        if row["freshness"] != health.FRESH:
            stale_since = (
                _iso(pd.Timestamp(last) + timedelta(seconds=health.FRESH_INTERVALS * float(interval)))
                if last is not None and not pd.isna(last) and interval
                else None
            )
        out.append(
            {
                "name": str(row["connector"]),
                "fresh": row["freshness"] == health.FRESH,
                "freshness": str(row["freshness"]),
                "state": str(row["state"]),
                "last": _iso(last),
                "stale_since": stale_since,
            }
        )
    return out


def stale_verdict(sources: list[SourceFreshness]) -> StaleVerdict:
    """Whether the wall must say DATA STALE, since when and why ("alarms source failing")."""
    bad = [s for s in sources if not s["fresh"]]
    if not bad:
        return {"stale": False}
    since = min((s["stale_since"] for s in bad if s["stale_since"]), default=None)
    parts = []
    for s in bad:
        why = {"failing": "failing", "retrying": "retrying", "never run": "no data yet"}.get(
            s["state"], "late"
        )
        parts.append(f"{s['name']} source {why}")
    return {"stale": True, "since": since, "text": ", ".join(parts)}


def wall_state(
    store: Store,
    settings: Settings,
    catalogue: Catalogue,
    *,
    now: datetime,
    have: Mapping[str, str],
    cache: Cache | None = None,
) -> WallState:
    """Panels whose version differs from ``have``, every version, the staleness verdict and the time.

    With a shared ``cache`` each part is read from the store once per change of what it is read
    from (:func:`_cached_reads`), whichever worker and screen asks; without, from the store.
    """
    if cache is not None and cache.caching:
        reads = _cached_reads(store, settings, catalogue, cache, now=now, have=have)
    else:
        reads = _store_reads(store, settings, catalogue, now=now, have=have)
    sources = sources_from(reads.summaries, settings, now)
    panels: dict[str, Panel] = {
        "queue": reads.queue,
        "alerts": alerts_at(reads.alerts, now),
        "sites": reads.sites,
        "money": reads.money,
        "sources": sources,
        "kpis": reads.kpis,
    }
    if reads.site_map is not None:
        panels["site_map"] = reads.site_map
    versions = {name: version(payload) for name, payload in panels.items() if name != "sites"}
    # The largest panel's version comes with it from the cache (hashing it is most of a request).
    versions["sites"] = reads.sites_version or version(reads.sites)
    versions["site_map"] = reads.map_version
    changed = {name: payload for name, payload in panels.items() if have.get(name) != versions[name]}
    site_states = reads.sites
    _remember_sites(versions["sites"], site_states)
    if "sites" in changed and have.get("sites"):
        delta = sites_delta(have["sites"], site_states)
        if delta is not None:  # the screen's version is known: send what changed, not every site
            del changed["sites"]
            changed["sites_delta"] = delta
    prep = reads.preparation.progress(now) if reads.preparation is not None else None
    return {
        "now": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",  # ms: the screen sets its clock by it
        "versions": versions,
        "panels": changed,
        "stale": stale_verdict(sources),
        # While a fresh store is prepared: what step, how far along, how long still (else None).
        "preparing": prep if prep is not None and not prep["ready"] else None,
    }


class _Reads(NamedTuple):
    """What one wall refresh reads from the store (or the cache); the time-dependent verdicts
    (alert window, sources' freshness, preparation's estimate) are applied to it afterwards."""

    queue: list[WallIncident]
    alerts: list[tuple[str | None, WallIncident]]
    money: Money
    sites: dict[str, str]
    sites_version: str | None  # version(sites) when it came with them (the cache), else None
    kpis: list[KpiTile]
    summaries: list[dict[str, Any]]  # run_rows
    map_version: str
    site_map: list[SitePosition] | None  # None: the screen has this version already
    preparation: readiness.Preparation | None


def _store_reads(
    store: Store, settings: Settings, catalogue: Catalogue, *, now: datetime, have: Mapping[str, str]
) -> _Reads:
    with store.connect() as conn:
        map_version = _map_version(conn)
        return _Reads(
            queue=queue_panel(conn, settings.wall.top),
            alerts=alert_candidates(conn, now),
            money=money_panel(conn, settings.currency),
            sites=cached_sites_panel(conn),
            sites_version=None,
            kpis=_kpis_or_none(conn, catalogue, settings.currency),
            summaries=run_rows(conn, now=now),
            map_version=map_version,
            # Positions change rarely and are the largest panel: sent only when the screen's version
            # differs (first load, a site added).
            site_map=site_map_panel(conn) if have.get("site_map") != map_version else None,
            preparation=readiness.read(conn),
        )


_PREPARATION_TTL_S = 10.0


def _cached_reads(
    store: Store,
    settings: Settings,
    catalogue: Catalogue,
    cache: Cache,
    *,
    now: datetime,
    have: Mapping[str, str],
) -> _Reads:
    snap = cache.versions()

    def read(name: str, families: tuple[str, ...], compute: Callable[[Connection], Any], **kw: Any) -> Any:
        def on_store() -> Any:
            with store.connect() as conn:
                return compute(conn)

        return cache.read(f"wall-{name}", families, on_store, versions=snap, **kw)

    top, currency = settings.wall.top, settings.currency
    head = read(
        "queue",
        ("queue",),
        lambda conn: {
            "queue": queue_panel(conn, top),
            "alerts": alert_candidates(conn, now),
            "money": money_panel(conn, currency),
        },
        parts=(top, currency),
    )
    map_version = read("map-version", ("ingest",), _map_version)
    # A preparation's steps bump no version: the record is read again every _PREPARATION_TTL_S (a
    # preparation may start on a fresh store at any moment), and one under way at every request
    # (its banner must move).
    prep_state = read(
        "preparation",
        ("queue", "kpis"),
        lambda conn: _prep_state(readiness.read(conn)),
        ttl_s=_PREPARATION_TTL_S,
    )
    preparation = readiness.Preparation.from_state(prep_state) if prep_state else None
    if preparation is not None and preparation.finished_at is None:
        preparation = _fresh_preparation(store)
    # (Named apart from the earlier formats of these values, which a Redis may still hold.)
    sites = read("site-states", ("queue", "ingest"), _versioned_sites)
    return _Reads(
        queue=head["queue"],
        alerts=[(opened, row) for opened, row in head["alerts"]],
        money=head["money"],
        sites=sites["sites"],
        sites_version=sites["version"],
        kpis=read(
            "kpis", ("kpis",), lambda conn: _kpis_or_none(conn, catalogue, currency), parts=(currency,)
        ),
        summaries=read("run-rows", ("runs",), lambda conn: run_rows(conn, now=now)),
        map_version=map_version,
        site_map=read("site-map", ("ingest",), site_map_panel)
        if have.get("site_map") != map_version
        else None,
        preparation=preparation,
    )


def _versioned_sites(conn: Connection) -> dict[str, Any]:
    """:func:`sites_panel` with its version, kept together in the cache."""
    sites = sites_panel(conn)
    return {"sites": sites, "version": version(sites)}


def _fresh_preparation(store: Store) -> readiness.Preparation | None:
    with store.connect() as conn:
        return readiness.read(conn)


def _prep_state(prep: readiness.Preparation | None) -> dict[str, Any] | None:
    return prep.to_state() if prep is not None else None


def _map_version(conn: Connection) -> str:
    """A cheap mark of the sites table: changes when a site is added or changed."""
    return version(list(conn.execute(select(func.count(), func.max(sites.c.ingested_at))).one()))


def _kpis_or_none(conn: Connection, catalogue: Catalogue, currency: str) -> list[KpiTile]:
    try:
        return kpis_panel(conn, catalogue, currency)
    except Exception:  # KPIs not evaluated yet (or evaluation failing): the rest still shows
        return []


# Recent site panels by version, so a screen that has one gets only the sites that changed since.
_SITES_SEEN: dict[str, dict[str, str]] = {}
_SITES_SEEN_MAX = 16


def _remember_sites(ver: str, sites: dict[str, str]) -> None:
    with _SITES_LOCK:
        if ver in _SITES_SEEN:
            return
        _SITES_SEEN[ver] = sites
        while len(_SITES_SEEN) > _SITES_SEEN_MAX:
            del _SITES_SEEN[next(iter(_SITES_SEEN))]


def sites_delta(base: str, sites: dict[str, str]) -> SitesDelta | None:
    """{"base": version, "set": {site: status}, "clear": [site]} from ``base`` to ``sites``, or None."""
    with _SITES_LOCK:
        old = _SITES_SEEN.get(base)
    if old is None:
        return None
    return {
        "base": base,
        "set": {k: v for k, v in sites.items() if old.get(k) != v},
        "clear": sorted(k for k in old if k not in sites),
    }


def parse_have(text: str | None) -> dict[str, str]:
    """``queue:1a2b,kpis:9f`` -> {"queue": "1a2b", "kpis": "9f"}; unknown panels are ignored."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        name, _, ver = part.partition(":")
        if name in PANELS and ver:
            out[name] = ver[:32]
    return out
