"""What the Incidents page, the wall and the API read: the ranked queue and one incident's story.

Every function takes a connection and returns plain frames or dicts; the queue itself is one
indexed read of ``incident_queue`` (written by :func:`dashboard.incidents.queue.refresh_queue`).

Personal data leaves masked, for every role (an incident has no audited way to unmask): MSISDNs
(:func:`dashboard.privacy.mask_msisdn`), consumer accounts' names, which are their holders'
(:func:`dashboard.privacy.account_name`; a business's name is shown as is), and the phone numbers,
emails and holders' names in tickets and notes (:func:`dashboard.privacy.redact_text`). Sorting
the affected subscribers by account orders business names only, so the order of holders' names
cannot be read from it. The CSV export neutralises what a spreadsheet would run as a formula.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import Connection, and_, case, func, literal, or_, select

from dashboard.incidents import kept, summary
from dashboard.incidents.correlate import ENGINE_SOURCE
from dashboard.incidents.queue import STATE_KEY
from dashboard.incidents.reach import cells_key, degraded_cells
from dashboard.incidents.scoring import clock_times
from dashboard.ingest.runner import load_state
from dashboard.kpis import Scoring
from dashboard.privacy import (
    BUSINESS_SEGMENTS,
    account_name,
    csv_safe,
    mask_msisdn,
    people_named,
    redact_optional,
)
from dashboard.store.db import read_frame
from dashboard.store.schema import (
    accounts,
    alarms,
    cell_account_value,
    incident_alarms,
    incident_cells,
    incident_notes,
    incident_queue,
    incident_reach,
    incidents,
    regions,
    resources,
    subscriber_cells,
    subscriber_signals,
    subscribers,
    tickets,
)

SEGMENT_COLUMNS = {"consumer": "consumer_lines", "smb": "smb_lines", "enterprise": "enterprise_lines"}
SORTABLE = (
    "value",
    "arpu",
    "share",
    "degraded",
    "churn_risk",
    "sentiment",
    "segment",
    "plan",
    "account",
    "id",
)


def _frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    return read_frame(conn, stmt)


def _holder_names(conn: Connection, account_ids: Iterable[Any]) -> dict[str, list[str]]:
    """Per account id, the people's names free text about it may mention: its contact's name, and
    its own name when it is a consumer's (its holder's)."""
    ids = sorted({t for t in map(_text_or_none, account_ids) if t is not None})
    out: dict[str, list[str]] = {}
    for part in range(0, len(ids), 500):
        rows = conn.execute(
            select(accounts.c.id, accounts.c.name, accounts.c.segment, accounts.c.contact_name).where(
                accounts.c.id.in_(ids[part : part + 500])
            )
        ).all()
        for aid, name, segment, contact in rows:
            out.setdefault(aid, []).extend(people_named(name, segment, contact))
    return out


def _text_or_none(value: Any) -> str | None:
    """A frame's cell as text, None where it is missing (None, NaN or NA)."""
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _shown_names(names: pd.Series, segments: pd.Series) -> list[str | None]:
    """Account names as they may be shown: :func:`dashboard.privacy.account_name` of each."""
    return [
        account_name(_text_or_none(n), seg) for n, seg in zip(names.tolist(), segments.tolist(), strict=True)
    ]


def queue(
    conn: Connection,
    *,
    states: list[str] | None = None,
    region: str | None = None,
    segment: str | None = None,
    severity: str | None = None,
    owner: str | None = None,
    kind: str | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """The ranked queue: active incidents by rank, then the resolved ones, newest first.

    ``kind`` keeps incidents opened by alarms (``alarm``) or by KPI anomalies alone (``detected``).
    ``segment`` keeps incidents that affect lines of that segment, or ``vip`` for VIP lines;
    ``owner`` ``"-"`` keeps unassigned incidents.
    """
    q = incident_queue
    stmt = select(q, regions.c.name.label("region")).select_from(
        q.outerjoin(regions, regions.c.id == q.c.region_id)
    )
    if states:
        stmt = stmt.where(q.c.state.in_(states))
    if region:
        stmt = stmt.where(or_(q.c.region_id == region, regions.c.name == region))
    if segment in SEGMENT_COLUMNS:
        stmt = stmt.where(q.c[SEGMENT_COLUMNS[segment]] >= 0.5)
    elif segment == "vip":
        stmt = stmt.where(q.c.vip_lines >= 0.5)
    if severity:
        stmt = stmt.where(q.c.severity == severity)
    if kind:
        stmt = stmt.where(q.c.kind == kind)
    if owner == "-":
        stmt = stmt.where(q.c.owner.is_(None))
    elif owner:
        stmt = stmt.where(q.c.owner == owner)
    unranked = case((q.c.rank.is_(None), 1), else_=0)
    stmt = stmt.order_by(unranked, q.c.rank, q.c.resolved_at.desc(), q.c.incident_id).limit(limit)
    return _frame(conn, stmt)


def queue_facets(conn: Connection) -> dict[str, list[Any]]:
    """Values the filters offer: regions (id, name) and owners present in the queue."""
    q = incident_queue
    regs = conn.execute(
        select(q.c.region_id, func.max(regions.c.name))
        .select_from(q.outerjoin(regions, regions.c.id == q.c.region_id))
        .where(q.c.region_id.is_not(None))
        .group_by(q.c.region_id)
        .order_by(func.max(regions.c.name))
    ).fetchall()
    owners = [
        r[0]
        for r in conn.execute(select(q.c.owner).where(q.c.owner.is_not(None)).distinct().order_by(q.c.owner))
    ]
    return {"regions": [(r[0], r[1] or r[0]) for r in regs], "owners": owners}


def queue_computed_at(conn: Connection) -> datetime | None:
    """When the queue was last computed (None: never), whether or not it holds any incident."""
    state = load_state(conn, *STATE_KEY)
    return datetime.fromisoformat(state["computed_at"]) if state.get("computed_at") else None


def incident(conn: Connection, incident_id: str) -> dict[str, Any] | None:
    """The incident record merged with its queue row (breakdown parsed), or None."""
    row = conn.execute(
        select(incidents).where(incidents.c.id == incident_id, incidents.c.source == ENGINE_SOURCE)
    ).first()
    if row is None:
        return None
    out: dict[str, Any] = dict(row._mapping)
    qrow = conn.execute(select(incident_queue).where(incident_queue.c.incident_id == incident_id)).first()
    if qrow is not None:
        qd = dict(qrow._mapping)
        qd.pop("incident_id")
        qd["breakdown"] = json.loads(qd["breakdown"])
        out["queue"] = qd
    else:
        out["queue"] = None
    if out.get("region_id"):
        out["region"] = conn.execute(select(regions.c.name).where(regions.c.id == out["region_id"])).scalar()
    return out


class Facts(NamedTuple):
    """What several parts of one incident's detail are read from, read once for all of them: when it
    opened and was resolved, and its ``incident_cells`` rows (cell, degraded share, basis, period
    measured; :func:`dashboard.incidents.kept.cell_rows`)."""

    opened_at: datetime
    resolved_at: datetime | None
    cells: list[tuple[Any, ...]]


def facts(conn: Connection, inc: Mapping[str, Any]) -> Facts:
    """The :class:`Facts` of ``inc``, the record :func:`incident` read."""
    return Facts(inc["opened_at"], inc.get("resolved_at"), kept.cell_rows(conn, str(inc["id"])))


def _facts(conn: Connection, incident_id: str, given: Facts | None) -> Facts | None:
    """``given``, else the incident's facts read now; None when there is no such incident."""
    if given is not None:
        return given
    inc = conn.execute(
        select(incidents.c.opened_at, incidents.c.resolved_at).where(
            incidents.c.id == incident_id, incidents.c.source == ENGINE_SOURCE
        )
    ).first()
    if inc is None:
        return None
    return Facts(inc.opened_at, inc.resolved_at, kept.cell_rows(conn, incident_id))


def alarm_timeline(conn: Connection, incident_id: str) -> pd.DataFrame:
    """The incident's alarms in raise order, with the resource they sit on and which is the root."""
    root = conn.execute(
        select(incidents.c.root_alarm_id).where(
            incidents.c.id == incident_id, incidents.c.source == ENGINE_SOURCE
        )
    ).scalar()
    a = alarms
    df = _frame(
        conn,
        select(
            a.c.id,
            a.c.source,
            a.c.severity,
            a.c.state,
            a.c.raised_at,
            a.c.cleared_at,
            a.c.resource_id,
            resources.c.name.label("resource"),
            resources.c.kind,
            a.c.probable_cause,
            a.c.specific_problem,
        )
        .select_from(
            incident_alarms.join(a, a.c.id == incident_alarms.c.alarm_id).outerjoin(
                resources, resources.c.id == a.c.resource_id
            )
        )
        .where(incident_alarms.c.source == ENGINE_SOURCE, incident_alarms.c.incident_id == incident_id)
        .order_by(a.c.raised_at, a.c.id),
    )
    df = df.drop_duplicates("id")
    df["root"] = df["id"] == root
    return df


def affected_cells(conn: Connection, incident_id: str, *, given: Facts | None = None) -> pd.DataFrame:
    """Cells the incident affects, with site coordinates, degraded share and lines served, the most
    degraded first.

    The cells the queue refresh kept (:mod:`dashboard.incidents.kept`) while they were measured from
    the incident's cells, shares and periods measured as they are now; otherwise measured here.
    ``given``: the incident's :class:`Facts`, when read already.
    """
    rows = given.cells if given is not None else kept.cell_rows(conn, incident_id)
    kept_rows = kept.kept_cells(conn, incident_id, kept.cells_key(rows))
    return kept_rows if kept_rows is not None else kept.measure_cells(conn, incident_id)


def affected_accounts(
    conn: Connection, incident_id: str, scoring: Scoring, *, now: datetime, given: Facts | None = None
) -> pd.DataFrame:
    """Business, VIP and SLA accounts the incident affects, by value, with their SLA clocks; a
    consumer account's name (its holder's) masked.

    The accounts the queue refresh measured (:mod:`dashboard.incidents.summary`) while they were
    measured from the incident's opening time, cells and shares as they are now; otherwise measured
    here. Either way only the clocks are read at ``now``. ``given``: the incident's :class:`Facts`,
    when read already.
    """
    found = _facts(conn, incident_id, given)
    if found is None:
        return pd.DataFrame()
    inc = found.opened_at
    cells_df = pd.DataFrame(
        [(incident_id, c, d) for c, d, *_ in found.cells],
        columns=["incident_id", "cell_id", "degraded_share"],
    )
    kept = summary.kept_accounts(
        conn,
        incident_id,
        summary.inputs_key(inc, summary.frame_cells(cells_df), summary.scoring_key(scoring)),
    )
    measured = (
        kept.assign(incident_id=incident_id)
        if kept is not None
        else summary.measure_accounts(conn, cells_df, {incident_id: inc}, scoring)
    )
    if measured.empty:
        return pd.DataFrame(columns=summary.DETAIL_COLUMNS)
    return clock_times(measured, now=now)[summary.DETAIL_COLUMNS].reset_index(drop=True)


def kpi_impact(
    conn: Connection,
    incident_id: str,
    kpis: list[str],
    *,
    now: datetime,
    before: timedelta = kept.BEFORE,
    given: Facts | None = None,
) -> pd.DataFrame:
    """Mean of each KPI over the affected cells per period, from ``before`` the incident to now (or
    to ``before`` after it was resolved): period_start, kpi, value, by period then KPI.

    Periods before the oldest raw sample retention keeps come from the cells' hourly roll-ups
    (:mod:`dashboard.incidents.samples`). The means the queue refresh kept
    (:mod:`dashboard.incidents.kept`) while they were measured from the same incident, cells, KPIs
    and samples; otherwise measured here. ``given``: the incident's :class:`Facts`, when read already.
    """
    inc = _facts(conn, incident_id, given)
    if inc is None:
        return pd.DataFrame(columns=kept.KPI_COLUMNS)
    cell_ids = [str(c) for c, *_ in inc.cells]
    marks = kept.kpi_marks(conn, kpis)
    key = kept.kpis_key(inc.opened_at, inc.resolved_at, cell_ids, kpis, before, marks)
    found = kept.kept_kpis(conn, incident_id, key, active=inc.resolved_at is None, marks=marks, now=now)
    if found is not None:
        return found
    end = kept.kpi_span(inc.opened_at, inc.resolved_at, before, now)
    return kept.measure_kpis(conn, cell_ids, kpis, inc.opened_at - before, end, marks)


def related_tickets(
    conn: Connection, incident_id: str, *, limit: int = 100, given: Facts | None = None
) -> pd.DataFrame:
    """Tickets opened since shortly before the incident by its affected accounts' or cells' customers,
    their subject and description redacted (:func:`dashboard.privacy.redact_text`, with the names of
    each ticket's account holder and contact). ``given``: the incident's :class:`Facts`, when read
    already (its times alone are used)."""
    inc = (
        given
        or conn.execute(
            select(incidents.c.opened_at, incidents.c.resolved_at).where(
                incidents.c.id == incident_id, incidents.c.source == ENGINE_SOURCE
            )
        ).first()
    )
    if inc is None:
        return pd.DataFrame()
    start = inc.opened_at - timedelta(minutes=30)
    ic = incident_cells
    affected_subs = (
        select(subscriber_cells.c.subscriber_id)
        .join(ic, and_(ic.c.cell_id == subscriber_cells.c.cell_id, ic.c.incident_id == incident_id))
        .where(ic.c.degraded_share > 0)
    )
    affected_accounts_q = (
        select(cell_account_value.c.account_id)
        .join(ic, and_(ic.c.cell_id == cell_account_value.c.cell_id, ic.c.incident_id == incident_id))
        .where(ic.c.degraded_share > 0)
    )
    t = tickets
    stmt = (
        select(
            t.c.id,
            t.c.created_at,
            t.c.channel,
            t.c.status,
            t.c.subject,
            t.c.description,
            t.c.sentiment,
            t.c.subscriber_id,
            t.c.account_id,
        )
        .where(
            t.c.created_at >= start,
            or_(
                t.c.incident_id == incident_id,
                t.c.subscriber_id.in_(affected_subs),
                t.c.account_id.in_(affected_accounts_q),
            ),
        )
        .order_by(t.c.created_at.desc(), t.c.id)
        .limit(limit)
    )
    if inc.resolved_at is not None:
        stmt = stmt.where(t.c.created_at <= inc.resolved_at + timedelta(hours=6))
    return _redact_tickets(conn, _frame(conn, stmt))


def _redact_tickets(conn: Connection, df: pd.DataFrame) -> pd.DataFrame:
    """The tickets' subject and description redacted with the names of each one's account."""
    if df.empty:
        return df
    subs = sorted({str(x) for x in df["subscriber_id"].dropna()})
    line_accounts: dict[str, str] = {}
    for part in range(0, len(subs), 500):
        line_accounts.update(
            (str(sid), str(aid))
            for sid, aid in conn.execute(
                select(subscribers.c.id, subscribers.c.account_id).where(
                    subscribers.c.id.in_(subs[part : part + 500]), subscribers.c.account_id.is_not(None)
                )
            ).all()
        )
    own = [
        [a for a in (_text_or_none(acc), line_accounts.get(str(sub))) if a is not None]
        for acc, sub in zip(df["account_id"].tolist(), df["subscriber_id"].tolist(), strict=True)
    ]
    names = _holder_names(conn, (a for ids in own for a in ids))
    per_ticket = [[n for a in ids for n in names.get(a, [])] for ids in own]
    out = df.copy()
    for col in ("subject", "description"):
        out[col] = [
            redact_optional(_text_or_none(v), who)
            for v, who in zip(df[col].tolist(), per_ticket, strict=True)
        ]
    return out


def notes(conn: Connection, incident_id: str) -> pd.DataFrame:
    """The incident's notes, oldest first, their text redacted (:func:`dashboard.privacy.redact_text`,
    with the names of the holders and contacts of the business, VIP and SLA accounts it affects:
    the people a note would name)."""
    n = incident_notes
    df = _frame(
        conn,
        select(n.c.id, n.c.author, n.c.text, n.c.created_at)
        .where(n.c.incident_id == incident_id)
        .order_by(n.c.created_at, n.c.id),
    )
    if df.empty:
        return df
    ic, cav = incident_cells, cell_account_value
    tracked = conn.execute(
        select(cav.c.account_id)
        .distinct()
        .join(ic, and_(ic.c.cell_id == cav.c.cell_id, ic.c.incident_id == incident_id))
    ).scalars()
    names = [name for found in _holder_names(conn, tracked).values() for name in found]
    df["text"] = [redact_optional(_text_or_none(v), names) for v in df["text"].tolist()]
    return df


def _affected_subscribers_stmt(incident_id: str, scoring: Scoring) -> Any:
    ic = incident_cells
    s, a, g = subscribers, accounts, subscriber_signals
    per_sub = (
        select(
            subscriber_cells.c.subscriber_id.label("sid"),
            func.sum(subscriber_cells.c.share).label("share"),
            func.sum(subscriber_cells.c.share * ic.c.degraded_share).label("degraded"),
        )
        .join(ic, and_(ic.c.cell_id == subscriber_cells.c.cell_id, ic.c.incident_id == incident_id))
        .where(ic.c.degraded_share > 0)
        .group_by(subscriber_cells.c.subscriber_id)
        .subquery()
    )
    segment = func.coalesce(a.c.segment, "consumer")
    mult = scoring.line_multiplier_sql(a.c.segment, a.c.vip)
    value = (func.coalesce(s.c.arpu, 0.0) * per_sub.c.degraded * mult).label("value")
    # Sorting by account orders business names; holders' names (masked when shown) all sort as one,
    # so where a masked name falls among the others says nothing about it.
    account_order = case((a.c.segment.in_(BUSINESS_SEGMENTS), a.c.name_key), else_=literal(""))
    return select(
        s.c.id,
        s.c.msisdn,
        s.c.plan,
        s.c.arpu,
        s.c.account_id,
        a.c.name.label("account"),
        account_order.label("account_order"),
        segment.label("segment"),
        func.coalesce(a.c.vip, False).label("vip"),
        per_sub.c.share,
        per_sub.c.degraded,
        value,
        g.c.churn_risk,
        g.c.sentiment_30d.label("sentiment"),
    ).select_from(
        per_sub.join(s, and_(s.c.id == per_sub.c.sid, s.c.status != "churned"))
        .outerjoin(a, a.c.id == s.c.account_id)
        .outerjoin(g, g.c.subscriber_id == s.c.id)
    )


def count_affected_subscribers(conn: Connection, incident_id: str, *, given: Facts | None = None) -> int:
    """How many (not churned) subscribers are served by the incident's degraded cells.

    The count the queue refresh stored (:mod:`dashboard.incidents.reach`) while it was counted for
    the cells the incident degrades now; otherwise counted here: the distinct subscribers of the
    incident's cells first, then one status check per subscriber (not one per subscriber and cell).
    """
    kept = conn.execute(
        select(incident_reach.c.subscribers, incident_reach.c.cells_key).where(
            incident_reach.c.incident_id == incident_id
        )
    ).first()
    degraded = (
        [str(c) for c, d, *_ in given.cells if d is not None and d > 0]
        if given is not None
        else degraded_cells(conn, incident_id)
    )
    if kept is not None and kept.cells_key == cells_key(degraded):
        return int(kept.subscribers)
    ic = incident_cells
    served = (
        select(subscriber_cells.c.subscriber_id)
        .join(ic, and_(ic.c.cell_id == subscriber_cells.c.cell_id, ic.c.incident_id == incident_id))
        .where(ic.c.degraded_share > 0)
    )
    stmt = select(func.count(func.distinct(subscribers.c.id))).where(
        subscribers.c.id.in_(served), subscribers.c.status != "churned"
    )
    return int(conn.execute(stmt).scalar_one())


def affected_subscribers(
    conn: Connection,
    incident_id: str,
    scoring: Scoring,
    *,
    sort: str = "value",
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
) -> tuple[pd.DataFrame, int]:
    """One page of the incident's affected subscribers (MSISDN and holders' names masked) and how
    many there are."""
    stmt = _affected_subscribers_stmt(incident_id, scoring).subquery()
    total = conn.execute(select(func.count()).select_from(stmt)).scalar_one()
    col = stmt.c[sort] if sort in SORTABLE else stmt.c.value
    if sort == "account":
        col = stmt.c.account_order
    order = [col.desc() if descending else col.asc(), stmt.c.id]
    df = _frame(conn, select(stmt).order_by(*order).offset(max(0, offset)).limit(max(1, min(limit, 1000))))
    return _masked_subscribers(df), int(total)


def _masked_subscribers(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=["account_order"])
    out["msisdn"] = out["msisdn"].map(mask_msisdn)
    out["account"] = _shown_names(out["account"], out["segment"])
    return out


def affected_subscribers_csv(conn: Connection, incident_id: str, scoring: Scoring) -> str:
    """Every affected subscriber, by value, as CSV: MSISDN and holders' names masked, text cells a
    spreadsheet would run as formulas neutralised (:func:`dashboard.privacy.csv_safe`)."""
    stmt = _affected_subscribers_stmt(incident_id, scoring).subquery()
    df = _masked_subscribers(_frame(conn, select(stmt).order_by(stmt.c.value.desc(), stmt.c.id)))
    for col in df.select_dtypes(exclude=["number", "bool"]).columns:
        df[col] = df[col].map(csv_safe)
    return str(df.to_csv(index=False))
