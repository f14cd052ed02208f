"""What an incident's detail shows of the accounts it affects, measured by the queue refresh.

An incident's accounts (business, VIP and SLA accounts on its cells, by value, with their SLA
clocks) are measured from every ``cell_account_value`` row of its cells and every such account:
thousands of rows for an incident that takes a transport link down, most of a second of its
detail at a million lines. The queue refresh measures them instead (:func:`refresh_summary`) for
the queued incidents whose inputs changed, and stores them with a digest of what the detail can
check cheaply (its opening time, cells and degraded shares, and the scoring rules):
``incident_detail_summary`` and ``incident_detail_accounts``. The detail reads those rows while the
digest still matches and measures live otherwise (:func:`dashboard.incidents.read.affected_accounts`),
so, as with ``incident_reach``, a change of the accounts or their lines shows at most one refresh
later. Only the clock's reading at a time (minutes to breach, breached) is left to the read.

Names are stored as every role is shown them (:func:`dashboard.privacy.account_name`: a consumer
account's name, its holder's, masked), so the table holds nothing the detail would mask.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, func, insert, select

from dashboard.incidents import kept
from dashboard.incidents.correlate import ENGINE_SOURCE
from dashboard.incidents.scoring import clock_inputs
from dashboard.incidents.value import ValueRefresh
from dashboard.ingest.runner import load_state, save_state
from dashboard.kpis import Scoring, segment_codes
from dashboard.privacy import account_name
from dashboard.store.db import chunks, read_frame, read_frame_in
from dashboard.store.schema import (
    accounts,
    cell_account_value,
    cells,
    incident_cells,
    incident_detail_accounts,
    incident_detail_cells,
    incident_detail_keys,
    incident_detail_kpis,
    incident_detail_summary,
    incident_queue,
    incidents,
    sites,
)

STATE_KEY = ("vantage", "incident-detail-summary")
#: The pass reads again the accounts ingested this long before its last one (a batch committed late).
OVERLAP = timedelta(minutes=5)
#: Above this many changed accounts since the last pass, every incident is measured afresh.
REMEASURE_ALL = 10_000
#: Incidents measured per round of statements.
PER_ROUND = 200
#: Cells whose incidents are measured per pass at most (one incident at least), the highest ranked
#: first: when every share changed (a new KPI period) the rest are measured by the next passes, and
#: their details measure live meanwhile. The cost follows the cells' accounts, not the incidents.
CELLS_PER_PASS = 2_000
#: The stored columns of an account row, in the order the detail returns them.
ACCOUNT_COLUMNS = [
    "account_id",
    "name",
    "segment",
    "vip",
    "lines",
    "services",
    "arpu",
    "degraded_share",
    "restore_minutes",
    "deadline",
    "running",
    "penalty_per_hour",
    "account_manager",
    "value",
]
#: The detail's columns: the incident, its stored columns and the clock read at a time.
DETAIL_COLUMNS = [
    "incident_id",
    *ACCOUNT_COLUMNS[: ACCOUNT_COLUMNS.index("running") + 1],
    "breached",
    "minutes_to_breach",
    *ACCOUNT_COLUMNS[ACCOUNT_COLUMNS.index("running") + 1 :],
]


def inputs_key(opened_at: datetime, cells: Iterable[tuple[str, float]], scoring_key: str) -> str:
    """A digest of what an incident's accounts are measured from that the detail can read by the
    incident's key: its opening time, its cells (id, degraded share), and the scoring rules. The same
    inputs give the same key, in any order of the cells."""
    pairs = sorted((str(c), float(d)) for c, d in cells)
    text = "\n".join([scoring_key, pd.Timestamp(opened_at).isoformat(), *(f"{c}\t{d!r}" for c, d in pairs)])
    return hashlib.sha256(text.encode()).hexdigest()


def frame_cells(cells: pd.DataFrame) -> list[tuple[str, float]]:
    """The (cell id, degraded share) pairs of a frame of ``incident_cells`` rows, for :func:`inputs_key`."""
    return list(zip(cells["cell_id"].tolist(), cells["degraded_share"].tolist(), strict=True))


def scoring_key(scoring: Scoring) -> str:
    """The scoring rules as text, for :func:`inputs_key` (other multipliers, other values)."""
    return hashlib.sha256(scoring.model_dump_json().encode()).hexdigest()


def incident_cells_frame(conn: Connection, incident_ids: list[str]) -> pd.DataFrame:
    """incident_id, cell_id, degraded_share of the incidents, by the incidents' keys."""
    ic = incident_cells
    return read_frame_in(
        conn, select(ic.c.incident_id, ic.c.cell_id, ic.c.degraded_share), ic.c.incident_id, incident_ids
    )


def measure_accounts(
    conn: Connection, cells: pd.DataFrame, opened_at: Mapping[str, datetime], scoring: Scoring
) -> pd.DataFrame:
    """Per incident of ``cells`` (incident_id, cell_id, degraded_share), its affected tracked accounts
    without the clock read at a time: the columns of :data:`ACCOUNT_COLUMNS` after ``incident_id``,
    names as shown, by incident, then value (highest first), then account id.

    Sums run in the same order whichever incidents are measured together (incident, cell id, then
    account), so one incident measured alone and among two hundred give the same figures.
    """
    cav = cell_account_value
    # By the cells' ids, then the accounts' ids, each a list the planner sees (joined, an incident
    # of hundreds of cells was planned as a scan of every account on PostgreSQL).
    acct_cells = read_frame_in(
        conn,
        select(cav.c.cell_id, cav.c.account_id, cav.c.lines, cav.c.arpu, cav.c.services),
        cav.c.cell_id,
        sorted({str(c) for c in cells["cell_id"]}),
    )
    acc = read_frame_in(
        conn,
        select(
            accounts.c.id,
            accounts.c.name,
            accounts.c.segment,
            accounts.c.vip,
            accounts.c.sla_restore_minutes,
            accounts.c.penalty_per_hour,
            accounts.c.account_manager,
        ),
        accounts.c.id,
        sorted({str(a) for a in acct_cells["account_id"]}),
    ).drop_duplicates("id")
    clocks = clock_inputs(cells, acct_cells, acc.drop(columns=["account_manager"]), opened_at, scoring)
    if clocks.empty:
        return pd.DataFrame(columns=["incident_id", *ACCOUNT_COLUMNS])
    managers = acc[["id", "account_manager"]].rename(columns={"id": "account_id"})
    out = clocks.merge(managers, on="account_id", how="left")
    mult = scoring.line_multipliers(segment_codes(out["segment"]), out["vip"].to_numpy())
    out["value"] = out["arpu"] * mult
    out["name"] = [
        account_name(None if n is None or n != n else str(n), seg)
        for n, seg in zip(out["name"].tolist(), out["segment"].tolist(), strict=True)
    ]
    out = out.sort_values(
        ["incident_id", "value", "account_id"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
    return out[["incident_id", *ACCOUNT_COLUMNS]]


def kept_accounts(conn: Connection, incident_id: str, key: str) -> pd.DataFrame | None:
    """The incident's stored accounts (the columns of :data:`ACCOUNT_COLUMNS`, by value) while they
    were measured from the inputs named by ``key``; None when missing or measured from others."""
    stored = conn.execute(
        select(incident_detail_summary.c.inputs_key).where(
            incident_detail_summary.c.incident_id == incident_id
        )
    ).scalar()
    if stored != key:
        return None
    a = incident_detail_accounts
    df = read_frame(
        conn,
        select(*(a.c[c] for c in ACCOUNT_COLUMNS))
        .where(a.c.incident_id == incident_id)
        .order_by(a.c.position),
    )
    return _typed(df)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Stored rows with the types the live measurement gives them."""
    out = df.copy()
    for col in ("lines", "arpu", "degraded_share", "restore_minutes", "penalty_per_hour", "value"):
        out[col] = out[col].astype(float)
    out["services"] = out["services"].astype(np.int64)
    out["vip"] = out["vip"].astype(bool)
    out["running"] = out["running"].astype(bool)
    out["deadline"] = pd.to_datetime(out["deadline"]).astype("datetime64[ns]")
    out["name"] = [None if n is None or n != n else str(n) for n in out["name"].tolist()]
    return out


def _queued(conn: Connection) -> dict[str, tuple[datetime, datetime | None]]:
    """The queued incidents and when each opened and was resolved, in queue order (ranked first, by
    rank)."""
    q = incident_queue
    rows = conn.execute(
        select(q.c.incident_id, incidents.c.opened_at, incidents.c.resolved_at)
        .join(incidents, (incidents.c.id == q.c.incident_id) & (incidents.c.source == ENGINE_SOURCE))
        .order_by(q.c.rank.is_(None), q.c.rank, q.c.incident_id)
    ).all()
    return {str(i): (o, r) for i, o, r in rows}


def _changed_accounts(conn: Connection, since: datetime) -> set[str] | None:
    """Accounts ingested since ``since`` (a name, manager, target or penalty may have changed); None
    when too many did."""
    ids = (
        conn.execute(select(accounts.c.id).where(accounts.c.ingested_at > since).limit(REMEASURE_ALL + 1))
        .scalars()
        .all()
    )
    return None if len(ids) > REMEASURE_ALL else {str(i) for i in ids}


def _changed_cells(conn: Connection, since: datetime) -> set[str] | None:
    """Cells ingested since ``since``, or on a site ingested since (a name, technology, site or
    coordinates may have changed); None when too many did."""
    found = (
        conn.execute(
            select(cells.c.id)
            .where(cells.c.ingested_at > since)
            .union(
                select(cells.c.id).where(
                    cells.c.site_id.in_(select(sites.c.id).where(sites.c.ingested_at > since))
                )
            )
            .limit(REMEASURE_ALL + 1)
        )
        .scalars()
        .all()
    )
    return None if len(found) > REMEASURE_ALL else {str(c) for c in found}


def refresh_summary(
    conn: Connection, scoring: Scoring, *, now: datetime, values: ValueRefresh | None = None
) -> int:
    """Measure again, in the caller's transaction, the parts of the detail (accounts, cells, KPI
    means) of the queued incidents whose inputs changed since the last pass (every incident on the
    first), as many incidents as :data:`CELLS_PER_PASS` allows, the highest ranked first; returns how
    many were measured.

    An incident's accounts are measured again when its digest (:func:`inputs_key`) changed, when the
    value pass ``values`` recomputed one of its cells' account rows (all of them after a full
    rebuild, or when a pass this one did not follow ran in between), or when one of its accounts
    was ingested again; its cells when their digest (:func:`dashboard.incidents.kept.cells_key`)
    changed, when the value pass recomputed one of its cells' lines, or when one of its cells or
    their sites was ingested again; its KPI means when their digest
    (:func:`dashboard.incidents.kept.kpis_key`) changed.
    """
    state = load_state(conn, *STATE_KEY, for_update=True)
    since = datetime.fromisoformat(state["changed_at"]) if state.get("changed_at") else None
    mark = conn.execute(select(func.max(accounts.c.ingested_at))).scalar()
    cells_since = datetime.fromisoformat(state["cells_changed_at"]) if state.get("cells_changed_at") else None
    newest = [conn.execute(select(func.max(t.c.ingested_at))).scalar() for t in (cells, sites)]
    cells_mark = max((t for t in newest if t is not None), default=None)
    queued = _queued(conn)
    ids = sorted(queued)
    ic, q = incident_cells, incident_queue
    # One statement through the queue (a few thousand rows), as plain tuples: this runs every pass.
    rows = conn.execute(
        select(ic.c.incident_id, ic.c.cell_id, ic.c.degraded_share, ic.c.basis, ic.c.measured_period).join(
            q, q.c.incident_id == ic.c.incident_id
        )
    ).all()
    rules = scoring_key(scoring)
    pairs: dict[str, list[tuple[str, float]]] = {iid: [] for iid in ids}
    measured_cells: dict[str, list[tuple[Any, ...]]] = {iid: [] for iid in ids}
    for iid, cid, share, basis, period in rows:
        if iid in pairs:
            pairs[iid].append((str(cid), float(share)))
            measured_cells[iid].append((cid, share, basis, period))
    keys = {iid: inputs_key(queued[iid][0], pairs[iid], rules) for iid in ids}
    kpis = kept.impact_kpis(scoring)
    marks = kept.kpi_marks(conn, kpis)
    part_keys = {
        "cells": {iid: kept.cells_key(measured_cells[iid]) for iid in ids},
        "kpis": {
            iid: kept.kpis_key(*queued[iid], [c for c, _ in pairs[iid]], kpis, kept.BEFORE, marks)
            for iid in ids
        },
    }
    s = incident_detail_summary
    stored = {str(i): k for i, k in conn.execute(select(s.c.incident_id, s.c.inputs_key)).all()}
    k = incident_detail_keys
    stored_parts: dict[str, dict[str, str]] = {"cells": {}, "kpis": {}}
    for iid, part, key in conn.execute(select(k.c.incident_id, k.c.part, k.c.inputs_key)).all():
        stored_parts.setdefault(str(part), {})[str(iid)] = str(key)
    follows = (
        values is not None
        and not values.full
        and values.previous is not None
        and values.previous == state.get("value_pass")
    )
    touched_accounts = _changed_accounts(conn, since) if since is not None and follows else None
    touched_cells = _changed_cells(conn, cells_since) if cells_since is not None and follows else None
    stale: dict[str, set[str]] = {
        "accounts": {iid for iid in ids if stored.get(iid) != keys[iid]},
        **{
            part: {iid for iid in ids if stored_parts[part].get(iid) != part_keys[part][iid]}
            for part in ("cells", "kpis")
        },
    }
    if values is None or touched_accounts is None:
        stale["accounts"] = set(ids)
    else:
        stale["accounts"].update(
            iid for iid, found in pairs.items() if any(c in values.touched for c, _ in found)
        )
        a = incident_detail_accounts
        for part in chunks(sorted(touched_accounts)):
            stale["accounts"].update(
                str(i)
                for i in conn.execute(
                    select(a.c.incident_id).where(a.c.account_id.in_(part)).distinct()
                ).scalars()
            )
        stale["accounts"] &= set(ids)
    if values is None or touched_cells is None:
        stale["cells"] = set(ids)
    else:
        changed = values.touched | touched_cells
        stale["cells"].update(iid for iid, found in pairs.items() if any(c in changed for c, _ in found))
    gone = sorted((set(stored) | set(stored_parts["cells"]) | set(stored_parts["kpis"])) - set(ids))
    _drop(conn, gone, ("accounts", "cells", "kpis"))
    todo: list[str] = []
    budget = CELLS_PER_PASS
    for iid in (i for i in queued if any(i in found for found in stale.values())):
        if todo and len(pairs[iid]) > budget:
            break
        todo.append(iid)
        budget -= len(pairs[iid])
    # Stale ones left for a later pass go (their details measure live): a later pass would not
    # know that a changed cell or account made them stale.
    kept_now = {"accounts": set(stored), **{part: set(found) for part, found in stored_parts.items()}}
    for part, found in stale.items():
        _drop(conn, sorted(found.difference(todo).intersection(kept_now[part])), (part,))
    accounts_todo = [iid for iid in todo if iid in stale["accounts"]]
    for lo in range(0, len(accounts_todo), PER_ROUND):
        part = accounts_todo[lo : lo + PER_ROUND]
        part_cells = pd.DataFrame(
            [(iid, c, d) for iid in part for c, d in pairs[iid]],
            columns=["incident_id", "cell_id", "degraded_share"],
        )
        measured = measure_accounts(conn, part_cells, {i: queued[i][0] for i in part}, scoring)
        _write(conn, part, measured, keys, now)
    cells_todo = [iid for iid in todo if iid in stale["cells"]]
    _write_part(conn, "cells", {iid: kept.measure_cells(conn, iid) for iid in cells_todo}, part_keys, now)
    kpis_todo = [iid for iid in todo if iid in stale["kpis"]]
    _write_part(
        conn,
        "kpis",
        {
            iid: kept.measure_kpis(
                conn,
                [c for c, _ in pairs[iid]],
                kpis,
                queued[iid][0] - kept.BEFORE,
                kept.kpi_span(*queued[iid], kept.BEFORE, now),
                marks,
            )
            for iid in kpis_todo
        },
        part_keys,
        now,
    )
    save_state(
        conn,
        *STATE_KEY,
        {
            "changed_at": _watermark(mark, since, now).isoformat(),
            "cells_changed_at": _watermark(cells_mark, cells_since, now).isoformat(),
            "value_pass": values.pass_id if values is not None else None,
        },
        now=now,
    )
    return len(todo)


def _watermark(mark: datetime | None, since: datetime | None, now: datetime) -> datetime:
    """Where the next pass reads changed rows from: the newest ingest seen, no later than
    :data:`OVERLAP` before ``now`` (a batch committed late)."""
    return min(mark, now - OVERLAP) if mark is not None else since or now - OVERLAP


#: Per part of the detail, the tables that keep it: its digest's and its rows'.
_PART_TABLES = {
    "accounts": (incident_detail_summary, incident_detail_accounts),
    "cells": (incident_detail_keys, incident_detail_cells),
    "kpis": (incident_detail_keys, incident_detail_kpis),
}


def _drop(conn: Connection, incident_ids: list[str], parts: Iterable[str]) -> None:
    """Delete the kept ``parts`` of the incidents ``incident_ids``."""
    for name in parts:
        head, rows = _PART_TABLES[name]
        for chunk in chunks(incident_ids):
            where = head.c.incident_id.in_(chunk)
            conn.execute(delete(head).where(where & (head.c.part == name) if "part" in head.c else where))
            conn.execute(delete(rows).where(rows.c.incident_id.in_(chunk)))


def _write_part(
    conn: Connection,
    name: str,
    measured: Mapping[str, pd.DataFrame],
    keys: Mapping[str, Mapping[str, str]],
    now: datetime,
) -> None:
    """Replace the kept part ``name`` (cells or KPI means) of the incidents measured by ``measured``."""
    if not measured:
        return
    ids = sorted(measured)
    _drop(conn, ids, (name,))
    _, table = _PART_TABLES[name]
    frames = [df.assign(incident_id=iid, position=range(len(df))) for iid, df in measured.items() if len(df)]
    if frames:
        df = pd.concat(frames, ignore_index=True)
        names = ["incident_id", "position", *(c for c in df.columns if c not in ("incident_id", "position"))]
        columns = [_plain(df[c]) for c in names]
        conn.execute(
            insert(table), [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        )
    conn.execute(
        insert(incident_detail_keys),
        [
            {"incident_id": iid, "part": name, "inputs_key": keys[name][iid], "computed_at": now}
            for iid in ids
        ],
    )


def _write(
    conn: Connection, part: list[str], measured: pd.DataFrame, keys: Mapping[str, str], now: datetime
) -> None:
    """Replace the stored accounts and totals of the incidents ``part`` by ``measured``."""
    s, a = incident_detail_summary, incident_detail_accounts
    conn.execute(delete(s).where(s.c.incident_id.in_(part)))
    conn.execute(delete(a).where(a.c.incident_id.in_(part)))
    names = ["incident_id", "position", *ACCOUNT_COLUMNS]
    columns = [
        _plain(measured["incident_id"]),
        measured.groupby("incident_id", sort=False).cumcount().tolist(),
    ]
    columns += [_plain(measured[c]) for c in ACCOUNT_COLUMNS]
    if len(measured) and conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        # COPY: one stream of rows (tens of thousands when every incident is measured again).
        raw = cast(Any, conn.connection.driver_connection)
        quoted = ", ".join(f'"{c}"' for c in names)
        with raw.cursor() as cur, cur.copy(f"COPY {a.name} ({quoted}) FROM STDIN") as copy:
            for values in zip(*columns, strict=True):
                copy.write_row(values)
    elif len(measured):
        conn.execute(
            insert(a), [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        )
    totals = measured.groupby("incident_id")["lines"].agg(["size", "sum"])
    conn.execute(
        insert(s),
        [
            {
                "incident_id": iid,
                "inputs_key": keys[iid],
                "accounts": int(totals.at[iid, "size"]) if iid in totals.index else 0,
                "lines": float(totals.at[iid, "sum"]) if iid in totals.index else 0.0,
                "computed_at": now,
            }
            for iid in part
        ],
    )


def _plain(values: pd.Series) -> list[Any]:
    """A frame's column as the driver takes it: Python values (a time as a datetime), None for NaN
    and NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return [None if pd.isna(v) else v.to_pydatetime() for v in values]
    return list(values.astype(object).where(values.notna(), None).tolist())
