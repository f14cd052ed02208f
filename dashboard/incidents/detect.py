"""Silent failures: KPI anomalies that no alarm explains become alarms Vantage raises itself.

The KPI evaluation keeps each cell's and site's verdict against its seasonal baseline
(``kpi_anomalies``, :mod:`dashboard.kpi_eval.anomaly`). A pass here turns the anomalous series of each
site into at most one alarm of source ``vantage-detect``:

- from the anomalous series, and at once from two KPIs of one cell or site out of band together
  before either has held for its rule's ``for``;
- on the cell, when one cell alone is anomalous (the site's own series may be out of band because of
  it);
- on the resource that serves the anomalous cells (the site's RAN node) when several are, or when
  only the site's own series is;
- with a sentence that says what is wrong in words ("Downlink throughput 46% below usual for Tue
  18:00, latency 2.1x usual; tickets 5x normal from 212 lines"), the customers' tickets from the
  lines those cells serve counted against their usual rate (the queue's reason adds how long);
- cleared once every series of the site is back in its band.

The correlation then treats these alarms like any other: one opens an incident of kind ``detected``
ranked by the same value rules, and an alarm from the network on the same resources or the resources
above them (a transport link, the site's RAN node) joins the same incident, which becomes an
``alarm`` incident. An anomaly already covered by an active alarm therefore adds its evidence to that
alarm's incident instead of opening one of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from scipy import special
from sqlalchemy import Connection, and_, case, func, insert, or_, select, update

from dashboard.incidents.correlate import DETECTOR_SOURCE, ancestors_of
from dashboard.kpis import deviation_words
from dashboard.sentiment import NEGATIVE_BELOW
from dashboard.store.db import chunks, read_frame
from dashboard.store.schema import alarms, cells, kpi_anomalies, subscriber_cells, tickets, topology_edges

LEVELS = ("cell", "site")
GRAIN = timedelta(minutes=15)
#: Out-of-band KPIs of one cell or site that count at once, before any of them has held for ``for``.
CORROBORATING_KPIS = 2
#: Tickets in this window before now, from the lines of the anomalous cells, against their usual rate.
TICKET_WINDOW = timedelta(hours=2)
TICKET_HISTORY = timedelta(days=14)
#: Said in words from this many times the usual ticket rate (and at least this many tickets).
TICKET_RATIO = 2.0
TICKET_MIN = 3
#: Customers as sensors: a site whose lines opened at least SPIKE_MIN tickets in TICKET_WINDOW, at
#: least SPIKE_RATIO times their usual rate and with a Poisson tail below SPIKE_P, opens a finding of
#: its own when its KPIs are in band, unless an alarm on the resources serving it was active within
#: EXPLAINED_FOR (the calls after an outage the network did report).
SPIKE_MIN = 6
SPIKE_RATIO = 5.0
SPIKE_P = 1e-6
EXPLAINED_FOR = timedelta(hours=6)
#: The probable cause of Vantage's own alarms: KPIs out of band, or a burst of tickets alone.
CAUSE_KPIS = "kpiAnomaly"
CAUSE_TICKETS = "customerComplaints"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class DetectSummary:
    raised: int
    updated: int
    cleared: int
    active: int

    def as_dict(self) -> dict[str, int]:
        return {
            "raised": self.raised,
            "updated": self.updated,
            "cleared": self.cleared,
            "active": self.active,
        }


@dataclass
class _Finding:
    site: str
    cells: list[str]
    site_level: bool
    since: datetime
    rows: pd.DataFrame  # the site's anomalous series (empty for a ticket spike alone)
    spike: str = ""  # the words of a ticket spike that opened it without a KPI anomaly


def _dt(v: Any) -> datetime:
    out: datetime = pd.Timestamp(v).to_pydatetime()
    return out


def describe(finding: _Finding, labels: Mapping[str, str], tickets_text: str = "") -> str:
    """The sentence of a detected alarm: the worst series first, each KPI once."""
    rows = finding.rows.assign(mag=finding.rows["worst_deviation"].abs()).sort_values(
        ["mag", "kpi"], ascending=[False, True]
    )
    parts: list[str] = []
    seen: set[str] = set()
    for r in rows.itertuples(index=False):
        if r.kpi in seen or r.worst_deviation is None or pd.isna(r.worst_deviation):
            continue
        seen.add(r.kpi)
        parts.append(f"{labels.get(r.kpi, r.kpi)} {deviation_words(float(r.worst_deviation))}")
    if not parts and finding.spike:
        return finding.spike[:256]
    if not parts:
        parts.append("KPIs outside their usual band")
    at = finding.since
    head = f"{parts[0]} for {_WEEKDAYS[at.weekday()]} {at:%H:%M}"
    return (", ".join([head, *parts[1:3]]) + tickets_text)[:256]


def _findings(conn: Connection) -> dict[str, _Finding]:
    a = kpi_anomalies
    rows = read_frame(
        conn,
        select(
            a.c.kpi,
            a.c.level,
            a.c.entity_id,
            a.c.state,
            a.c.since,
            a.c.worst_deviation,
            a.c.deviation,
            a.c.run,
            a.c.period_start,
        ).where(a.c.level.in_(LEVELS), or_(a.c.state == "anomalous", a.c.run > 0)),
    )
    if not len(rows):
        return {}
    rows = _corroborated(rows)
    if not len(rows):
        return {}
    cell_ids = sorted(set(rows.loc[rows["level"] == "cell", "entity_id"].astype(str)))
    site_of: dict[str, str] = {}
    for part in chunks(cell_ids):
        for cid, sid in conn.execute(select(cells.c.id, cells.c.site_id).where(cells.c.id.in_(part))):
            site_of[str(cid)] = str(sid) if sid is not None else str(cid)
    rows["site"] = [
        site_of.get(str(e), str(e)) if lvl == "cell" else str(e)
        for lvl, e in zip(rows["level"], rows["entity_id"], strict=True)
    ]
    out: dict[str, _Finding] = {}
    for site, group in rows.groupby("site", sort=True):
        cell_rows = group[group["level"] == "cell"]
        out[str(site)] = _Finding(
            site=str(site),
            cells=sorted(set(cell_rows["entity_id"].astype(str))),
            site_level=bool((group["level"] == "site").any()),
            since=min(_dt(v) for v in group["since"]),
            rows=group.reset_index(drop=True),
        )
    return out


def _corroborated(rows: pd.DataFrame) -> pd.DataFrame:
    """The anomalous series, and the series out of band for fewer periods than their rule's ``for``
    when another KPI of the same cell or site is out of band at the same period: two KPIs that agree
    count at once (a backhaul running hot shows in latency and packet loss together), one alone only
    once it has held."""
    anomalous = rows[rows["state"] == "anomalous"]
    early = rows[(rows["state"] != "anomalous") & (rows["run"] > 0)]
    if len(early):
        out_of_band = pd.concat([anomalous, early])
        kpis_per_entity = out_of_band.groupby(["level", "entity_id"])["kpi"].transform("nunique")
        agreed = out_of_band[kpis_per_entity >= CORROBORATING_KPIS]
        early = agreed[agreed["state"] != "anomalous"].copy()
        if len(early):
            start = pd.to_datetime(early["period_start"]) - GRAIN * (early["run"].astype(int) - 1)
            early["since"] = start
            early["worst_deviation"] = early["deviation"]
    return (
        pd.concat([anomalous, early], ignore_index=True) if len(early) else anomalous.reset_index(drop=True)
    )


def _site_cells(conn: Connection, sites: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for part in chunks(sites):
        for cid, sid in conn.execute(select(cells.c.id, cells.c.site_id).where(cells.c.site_id.in_(part))):
            out[str(sid)].append(str(cid))
    return {k: sorted(v) for k, v in out.items()}


def _serving(conn: Connection, cell_ids: list[str]) -> dict[str, set[str]]:
    """cell -> the resources with an edge to it."""
    out: dict[str, set[str]] = defaultdict(set)
    e = topology_edges
    for part in chunks(cell_ids):
        q = select(e.c.parent_id, e.c.child_id).where(
            e.c.parent_type == "resource", e.c.child_type == "cell", e.c.child_id.in_(part)
        )
        for parent, child in conn.execute(q):
            out[str(child)].add(str(parent))
    return out


def _resource(f: _Finding, site_cells: list[str], serving: Mapping[str, set[str]]) -> str:
    """Where the alarm sits: the cell itself, or the resource serving most of the anomalous cells."""
    if len(f.cells) == 1:
        return f.cells[0]  # the site's own series may be out of band because of this cell alone
    wanted = f.cells or site_cells
    counts: dict[str, int] = defaultdict(int)
    for c in wanted:
        for r in serving.get(c, ()):
            counts[r] += 1
    if counts:
        # The most specific resource that covers the most cells: fewest cells served breaks ties.
        served: dict[str, int] = defaultdict(int)
        for s in serving.values():
            for r in s:
                served[r] += 1
        return min(counts, key=lambda r: (-counts[r], served[r], r))
    return wanted[0] if wanted else f.site


def _ticket_words(conn: Connection, cell_ids: list[str], now: datetime) -> str:
    """ "; tickets 5x normal from 212 lines" when the lines of these cells call more than usual."""
    if not cell_ids:
        return ""
    sc = subscriber_cells
    lines = select(sc.c.subscriber_id).where(sc.c.cell_id.in_(cell_ids)).distinct().subquery()
    n_lines = conn.execute(select(func.count()).select_from(lines)).scalar() or 0
    if not n_lines:
        return ""
    t = tickets
    since_hist = now - TICKET_HISTORY
    recent_from = now - TICKET_WINDOW
    q = select(
        func.sum(case((t.c.created_at >= recent_from, 1), else_=0)).label("recent"),
        func.count().label("all"),
    ).where(
        t.c.subscriber_id.in_(select(lines.c.subscriber_id)),
        t.c.created_at >= since_hist,
        t.c.created_at < now,
    )
    row = conn.execute(q).first()
    recent = int(row.recent or 0) if row is not None else 0
    total = int(row.all or 0) if row is not None else 0
    before = total - recent
    usual = before / ((TICKET_HISTORY - TICKET_WINDOW) / TICKET_WINDOW)
    if recent < TICKET_MIN:
        return ""
    ratio = recent / max(usual, 0.5)
    if ratio < TICKET_RATIO:
        return ""
    return f"; tickets {ratio:.0f}x normal from {n_lines:,} lines"


def _site_tickets(
    conn: Connection, since: datetime, until: datetime, sites: list[str] | None
) -> pd.DataFrame:
    """Per site: tickets opened in [since, until) by the lines its cells serve, negative ones, lines."""
    t, sc = tickets, subscriber_cells
    q = (
        select(
            cells.c.site_id.label("site"),
            func.count(func.distinct(t.c.id)).label("tickets"),
            func.count(func.distinct(case((t.c.sentiment < NEGATIVE_BELOW, t.c.id)))).label("negative"),
            func.count(func.distinct(t.c.subscriber_id)).label("lines"),
        )
        .select_from(
            t.join(sc, sc.c.subscriber_id == t.c.subscriber_id).join(cells, cells.c.id == sc.c.cell_id)
        )
        .where(t.c.created_at >= since, t.c.created_at < until)
        .group_by(cells.c.site_id)
    )
    if sites is not None:
        q = q.where(cells.c.site_id.in_(sites))
    return read_frame(conn, q)


def _explained(conn: Connection, site_cells: list[str], now: datetime) -> bool:
    """Whether an alarm on the cells or the resources serving them (or above them) was active within
    EXPLAINED_FOR: from the network, or Vantage's own on a KPI anomaly (customers still calling about
    a degradation that has ended are not a new failure; a burst of tickets alone goes on counting)."""
    serving = _serving(conn, site_cells)
    resources = {r for rs in serving.values() for r in rs}
    above = ancestors_of(conn, resources)
    wanted = sorted(resources | {a for r in resources for a in above.get(r, ())} | set(site_cells))
    for part in chunks(wanted):
        hit = conn.execute(
            select(alarms.c.id)
            .where(
                alarms.c.resource_id.in_(part),
                or_(alarms.c.source != DETECTOR_SOURCE, alarms.c.probable_cause != CAUSE_TICKETS),
                or_(alarms.c.cleared_at.is_(None), alarms.c.cleared_at >= now - EXPLAINED_FOR),
                alarms.c.raised_at < now,
            )
            .limit(1)
        ).first()
        if hit is not None:
            return True
    return False


def _spikes(conn: Connection, now: datetime, skip: set[str]) -> dict[str, _Finding]:
    """Sites whose lines call far more than usual while their KPIs look fine and no alarm explains it."""
    recent = _site_tickets(conn, now - TICKET_WINDOW, now, None)
    recent = recent[(recent["tickets"] >= SPIKE_MIN) & ~recent["site"].astype(str).isin(skip)]
    if not len(recent):
        return {}
    sites = sorted(recent["site"].astype(str))
    history = _site_tickets(conn, now - TICKET_HISTORY, now - TICKET_WINDOW, sites).set_index("site")
    windows = (TICKET_HISTORY - TICKET_WINDOW) / TICKET_WINDOW
    site_cells = _site_cells(conn, sites)
    out: dict[str, _Finding] = {}
    for r in recent.itertuples(index=False):
        site = str(r.site)
        usual = float(history["tickets"].get(site, 0)) / windows if len(history) else 0.0
        expected = max(usual, 0.2)
        n = int(r.tickets)
        # P(X >= n) for a Poisson count with mean ``expected``: the regularised lower incomplete gamma.
        tail = float(special.gammainc(n, expected))
        if n < SPIKE_RATIO * expected or tail >= SPIKE_P:
            continue
        if _explained(conn, site_cells.get(site, []), now):
            continue
        words = f"Tickets {n / expected:.0f}x normal from {int(r.lines):,} lines"
        if int(r.negative):
            words += f" ({int(r.negative)} negative)"
        first = conn.execute(
            select(func.min(tickets.c.created_at))
            .select_from(
                tickets.join(
                    subscriber_cells, subscriber_cells.c.subscriber_id == tickets.c.subscriber_id
                ).join(cells, cells.c.id == subscriber_cells.c.cell_id)
            )
            .where(
                cells.c.site_id == site,
                tickets.c.created_at >= now - TICKET_WINDOW,
                tickets.c.created_at < now,
            )
        ).scalar()
        out[site] = _Finding(
            site=site,
            cells=[],
            site_level=True,
            since=_dt(first) if first is not None else now - TICKET_WINDOW,
            rows=pd.DataFrame(columns=["kpi", "worst_deviation"]),
            spike=f"{words}, KPIs in their usual band",
        )
    return out


def _severity(f: _Finding) -> str:
    if f.spike:
        return "minor"
    kpis = f.rows["kpi"].nunique()
    worst = f.rows["worst_deviation"].abs().max()
    wide = len(f.cells) > 1 or f.site_level
    return "major" if kpis >= 2 or wide or (pd.notna(worst) and worst >= 0.5) else "minor"


def detect(conn: Connection, *, now: datetime, labels: Mapping[str, str] | None = None) -> DetectSummary:
    """Raise, update and clear Vantage's own alarms from the current KPI verdicts (caller's transaction)."""
    labels = labels or {}
    findings = _findings(conn)
    findings |= _spikes(conn, now, set(findings))
    active = read_frame(
        conn,
        select(
            alarms.c.id,
            alarms.c.alarmed_object,
            alarms.c.resource_id,
            alarms.c.severity,
            alarms.c.specific_problem,
            alarms.c.raised_at,
        ).where(alarms.c.source == DETECTOR_SOURCE, alarms.c.cleared_at.is_(None)),
    )
    by_site = {str(r.alarmed_object): r for r in active.itertuples(index=False)}
    site_cells = _site_cells(conn, sorted(findings))
    wanted_cells = sorted({c for f in findings.values() for c in (f.cells or site_cells.get(f.site, []))})
    serving = _serving(conn, sorted({c for cs in site_cells.values() for c in cs} | set(wanted_cells)))
    raised = updated = cleared = 0
    for site, f in sorted(findings.items()):
        involved = f.cells or site_cells.get(site, [])
        text = describe(f, labels, "" if f.spike else _ticket_words(conn, involved, now))
        resource = _resource(f, site_cells.get(site, []), serving)
        severity = _severity(f)
        have = by_site.get(site)
        if have is None:
            alarm_id = f"DET-{site}-{f.since:%Y%m%d%H%M}"
            conn.execute(
                insert(alarms).values(
                    id=alarm_id,
                    source=DETECTOR_SOURCE,
                    resource_id=resource,
                    alarmed_object=site,
                    alarmed_object_type="site",
                    severity=severity,
                    state="raised",
                    alarm_type="qualityOfServiceAlarm",
                    probable_cause=CAUSE_TICKETS if f.spike else CAUSE_KPIS,
                    specific_problem=text,
                    service_affecting=True,
                    raised_at=min(f.since, now),
                    changed_at=now,
                    cleared_at=None,
                    ingested_at=now,
                )
            )
            raised += 1
            continue
        if (have.resource_id, have.severity, have.specific_problem) != (resource, severity, text):
            conn.execute(
                update(alarms)
                .where(and_(alarms.c.id == have.id, alarms.c.source == DETECTOR_SOURCE))
                .values(
                    resource_id=resource,
                    severity=severity,
                    specific_problem=text,
                    state="updated",
                    changed_at=now,
                    ingested_at=now,
                )
            )
            updated += 1
    for site, have in sorted(by_site.items()):
        if site in findings:
            continue
        conn.execute(
            update(alarms)
            .where(and_(alarms.c.id == have.id, alarms.c.source == DETECTOR_SOURCE))
            .values(state="cleared", cleared_at=now, changed_at=now, ingested_at=now)
        )
        cleared += 1
    return DetectSummary(raised=raised, updated=updated, cleared=cleared, active=len(findings))


__all__ = ["DETECTOR_SOURCE", "DetectSummary", "describe", "detect"]
