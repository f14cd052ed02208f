"""Impact metrics and SLA clocks of many incidents at once, as array arithmetic over cell aggregates.

The rules (see the ``scoring`` section of kpi_definitions.yaml) live here once; the frame functions
in :mod:`dashboard.incidents.scoring` and the queue refresh both call them. Inputs are one row per
(incident, affected cell) with its degraded share, and the rows of ``cell_value`` and
``cell_account_value`` of those cells, joined by position (:func:`expand`), so a pass over every
active incident costs a few vector operations over the affected cells' aggregates.

Sums run in row order (incident, then cell, then the aggregate's key), the same order whichever
path built the rows, so a refresh that kept its inputs and one that read them afresh agree to the
last bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from connectors.canonical import SEGMENTS
from dashboard.kpis import Scoring, segment_codes

# The additive columns of ``cell_value`` (per cell, segment and VIP).
VALUE_FIELDS = (
    "lines",
    "arpu",
    "risk",
    "risk_arpu",
    "risk_lines",
    "sentiment",
    "sentiment_lines",
    "negative_tickets",
)
# The columns of ``cell_account_value`` read (per cell and tracked account).
ACCOUNT_FIELDS = ("lines", "arpu", "services")
CONSUMER, SMB, ENTERPRISE = (SEGMENTS.index(s) for s in ("consumer", "smb", "enterprise"))


def positions(index: dict[Any, int], keys: Iterable[Any]) -> np.ndarray:
    """The positions of ``keys`` in ``index``; a new key is given the next free position."""
    return np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64)


def expand(row_cell: np.ndarray, start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (row, item) for every item of the row's cell, items of cell c being
    ``start[c] : start[c] + count[c]`` of a table: the join on cell, in row then item order."""
    n = count[row_cell]
    total = int(n.sum())
    rows = np.repeat(np.arange(len(row_cell)), n)
    first = np.cumsum(n) - n
    items = np.repeat(start[row_cell] - first, n) + np.arange(total)
    return rows, items


class CellRows:
    """Rows of a per-cell table as column arrays, each cell's rows contiguous (``start``, ``count``).

    Replacing a cell's rows appends the new ones and points the cell at them; the space of the old
    ones is reclaimed when it outgrows the live rows. Byte-string columns widen to the longest
    value given.
    """

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields  # name -> dtype
        self.cols: dict[str, np.ndarray] = {k: np.empty(0, dtype=t) for k, t in fields.items()}
        self.start = np.zeros(0, dtype=np.int64)
        self.count = np.zeros(0, dtype=np.int64)
        self.used = 0

    def grow(self, n_cells: int) -> None:
        """Room for cells 0..n_cells-1 (new ones without rows)."""
        if n_cells > len(self.start):
            extra = n_cells - len(self.start)
            self.start = np.concatenate([self.start, np.zeros(extra, dtype=np.int64)])
            self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])

    def replace(self, cells: np.ndarray, row_cell: np.ndarray, data: Mapping[str, np.ndarray]) -> None:
        """The rows of ``cells`` become ``data`` (one row per ``row_cell``, sorted by cell, each cell's
        rows in the table's order); a listed cell without rows is left with none."""
        self.grow(int(max(cells.max(initial=-1), row_cell.max(initial=-1))) + 1)
        self.count[cells] = 0
        n = len(row_cell)
        live = int(self.count.sum())
        if self.used + n > len(self.cols[next(iter(self.cols))]) and self.used - live > live:
            self._compact()
        self._reserve(self.used + n)
        at = self.used
        for k, col in self.cols.items():
            new = data[k]
            if col.dtype.kind == "S" and new.dtype.itemsize > col.dtype.itemsize:
                # Byte strings longer than any kept so far: widen the column, never truncate.
                col = self.cols[k] = col.astype(new.dtype)
            col[at : at + n] = new
        if n:
            first = np.flatnonzero(np.r_[True, row_cell[1:] != row_cell[:-1]])
            owners = row_cell[first]
            self.start[owners] = at + first
            self.count[owners] = np.diff(np.r_[first, n])
        self.used += n

    def _reserve(self, size: int) -> None:
        have = len(self.cols[next(iter(self.cols))])
        if size <= have:
            return
        new = max(size, 2 * have, 1024)
        for k, col in self.cols.items():
            grown = np.empty(new, dtype=col.dtype)
            grown[: self.used] = col[: self.used]
            self.cols[k] = grown

    def _compact(self) -> None:
        cells = np.flatnonzero(self.count)
        _rows, items = expand(cells, self.start, self.count)
        for k, col in self.cols.items():
            self.cols[k] = col[items].copy()
        self.start[cells] = np.cumsum(self.count[cells]) - self.count[cells]
        self.used = len(items)

    def take(self, items: np.ndarray) -> dict[str, np.ndarray]:
        return {k: col[items] for k, col in self.cols.items()}


@dataclass(frozen=True)
class ImpactRows:
    """One row per (incident, affected cell): the incident's position, the cell's and its degraded share,
    ordered by incident then cell id."""

    inc: np.ndarray
    cell: np.ndarray
    share: np.ndarray


@dataclass(frozen=True)
class Accounts:
    """Tracked accounts by position: id, name, segment code, VIP, SLA restore minutes and penalty per hour
    (NaN when the contract has none), and whether the position holds an account."""

    ids: np.ndarray  # object
    names: np.ndarray  # object
    segment: np.ndarray
    vip: np.ndarray
    restore: np.ndarray
    penalty: np.ndarray
    known: np.ndarray


def metrics(n_inc: int, ic: ImpactRows, values: CellRows, scoring: Scoring) -> dict[str, np.ndarray]:
    """Per incident position: affected cells, lines by segment and VIP, value, revenue per hour, churn
    risk and sentiment (NaN without scored lines or tickets).

    A line counts as affected by its traffic share on affected cells (degraded share > 0); its value
    and revenue at risk are further weighted by how degraded the cell is.
    """
    hit = ic.share > 0
    out: dict[str, np.ndarray] = {"cells": np.bincount(ic.inc[hit], minlength=n_inc).astype(float)}
    inc_hit, cell_hit, d_hit = ic.inc[hit], ic.cell[hit], ic.share[hit]
    rows, items = expand(cell_hit, values.start, values.count)
    inc = inc_hit[rows]
    d = d_hit[rows]
    v = values.take(items)
    seg = v["segment"]
    line_mult = scoring.line_multipliers(seg, v["vip"])
    r = scoring.revenue_at_risk

    def total(x: np.ndarray) -> np.ndarray:
        return np.bincount(inc, weights=x, minlength=n_inc)

    lines, arpu = v["lines"], v["arpu"]
    out["lines"] = total(lines)
    out["consumer_lines"] = total(np.where(seg == CONSUMER, lines, 0.0))
    out["smb_lines"] = total(np.where(seg == SMB, lines, 0.0))
    out["enterprise_lines"] = total(np.where(seg == ENTERPRISE, lines, 0.0))
    out["vip_lines"] = total(np.where(v["vip"], lines, 0.0))
    out["value"] = total(d * arpu * line_mult)
    out["service_revenue_per_hour"] = total(d * arpu / r.hours_per_month)
    out["churn_revenue_per_hour"] = total(
        d
        * r.churn_hazard_per_outage_hour
        * r.lifetime_months
        * (arpu + r.churn_risk_amplifier * v["risk_arpu"])
    )
    out["negative_tickets"] = total(v["negative_tickets"])
    with np.errstate(invalid="ignore", divide="ignore"):
        risk_lines, sent_lines = total(v["risk_lines"]), total(v["sentiment_lines"])
        out["churn_risk"] = np.where(risk_lines > 0, total(v["risk"]) / risk_lines, np.nan)
        out["sentiment"] = np.where(sent_lines > 0, total(v["sentiment"]) / sent_lines, np.nan)
    return out


@dataclass(frozen=True)
class Clocks:
    """Per (incident, tracked account) with affected lines or services: sums, SLA clock and penalty.
    ``deadline`` is NaT where no clock runs."""

    inc: np.ndarray
    acct: np.ndarray
    lines: np.ndarray
    services: np.ndarray
    arpu: np.ndarray
    degraded_share: np.ndarray
    restore_minutes: np.ndarray
    deadline: np.ndarray  # datetime64[ns]
    running: np.ndarray
    penalty_per_hour: np.ndarray


def clocks(
    ic: ImpactRows,
    rows_by_cell: CellRows,
    accounts: Accounts,
    opened: np.ndarray,
    scoring: Scoring,
) -> Clocks:
    """The SLA clocks of the incidents in ``ic`` (``opened``: datetime64[ns] per incident position).

    Every affected cell counts, degraded or not: an account's degraded share is its degraded lines and
    services over all of them on the incident's cells; its clock runs when it has a restore target
    (its own or its segment's default) and that share reaches ``sla.min_degraded_share``.
    """
    rows, items = expand(ic.cell, rows_by_cell.start, rows_by_cell.count)
    a = rows_by_cell.take(items)
    acct = a["account"]
    keep = accounts.known[acct]
    rows, acct = rows[keep], acct[keep]
    lines, services, arpu = a["lines"][keep], a["services"][keep].astype(float), a["arpu"][keep]
    inc, d = ic.inc[rows], ic.share[rows]
    n_acct = len(accounts.known)
    key, group = np.unique(inc.astype(np.int64) * n_acct + acct, return_inverse=True)
    group = group.ravel()

    def total(x: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=x, minlength=len(key))

    units = lines + services
    hit = d > 0
    g_units = total(units)
    g_degraded = total(units * d)
    g_lines = total(np.where(hit, lines, 0.0))
    g_services = total(np.where(hit, services, 0.0))
    g_arpu = total(arpu * d)
    affected = (g_lines > 0) | (g_services > 0)
    g_inc, g_acct = key // n_acct, key % n_acct
    sel = np.flatnonzero(affected)
    g_inc, g_acct = g_inc[sel], g_acct[sel]
    units_sel = g_units[sel]
    share = np.divide(g_degraded[sel], units_sel, out=np.zeros(len(sel)), where=units_sel > 0)
    sla = scoring.sla
    by_segment = cast(Mapping[str, float], sla.default_restore_minutes)
    defaults = np.array([by_segment.get(s, np.nan) for s in SEGMENTS], dtype=float)
    restore = accounts.restore[g_acct]
    restore = np.where(np.isnan(restore), defaults[accounts.segment[g_acct]], restore)
    running = ~np.isnan(restore) & (share >= sla.min_degraded_share)
    deadline = opened[g_inc] + pd.to_timedelta(restore, unit="m").to_numpy()
    penalty = np.where(running, np.nan_to_num(accounts.penalty[g_acct]), 0.0)
    return Clocks(
        inc=g_inc,
        acct=g_acct,
        lines=g_lines[sel],
        services=g_services[sel],
        arpu=g_arpu[sel],
        degraded_share=share,
        restore_minutes=restore,
        deadline=deadline,
        running=running,
        penalty_per_hour=penalty,
    )


@dataclass(frozen=True)
class ClockTotals:
    """Per incident position: accounts with a running clock, their penalties, the earliest deadline and
    its account (-1 when none), business and enterprise accounts; and each running clock's incident and
    deadline (to count the breached ones at any time)."""

    sla_accounts: np.ndarray
    penalty_per_hour: np.ndarray
    sla_deadline: np.ndarray  # datetime64[ns], NaT when no clock runs
    sla_account: np.ndarray
    accounts: np.ndarray
    enterprise_accounts: np.ndarray
    running_inc: np.ndarray
    running_deadline: np.ndarray

    def breached(self, n_inc: int, now: np.datetime64) -> np.ndarray:
        late = self.running_deadline <= now
        return np.bincount(self.running_inc[late], minlength=n_inc)


def clock_totals(n_inc: int, c: Clocks, accounts: Accounts) -> ClockTotals:
    run = np.flatnonzero(c.running)
    r_inc, r_deadline, r_acct = c.inc[run], c.deadline[run], c.acct[run]
    first_deadline = np.full(n_inc, np.datetime64("NaT"), dtype="datetime64[ns]")
    first_account = np.full(n_inc, -1, dtype=np.int64)
    order = np.zeros(0, dtype=np.int64)
    if len(run):
        # Running clocks by incident, deadline and account id (the accounts ranked by id once).
        uniq, where = np.unique(r_acct, return_inverse=True)
        names = accounts.ids[uniq].tolist()
        id_rank = np.empty(len(uniq), dtype=np.int64)
        id_rank[sorted(range(len(uniq)), key=names.__getitem__)] = np.arange(len(uniq))
        order = np.lexsort((id_rank[where.ravel()], r_deadline, r_inc))
        # Earliest deadline per incident, ties to the smallest account id.
        lead = order[np.r_[True, r_inc[order][1:] != r_inc[order][:-1]]]
        first_deadline[r_inc[lead]] = r_deadline[lead]
        first_account[r_inc[lead]] = r_acct[lead]
    seg = accounts.segment[c.acct]
    return ClockTotals(
        sla_accounts=np.bincount(r_inc, minlength=n_inc),
        # Summed in that order, whatever positions the accounts were given.
        penalty_per_hour=np.bincount(r_inc[order], weights=c.penalty_per_hour[run][order], minlength=n_inc),
        sla_deadline=first_deadline,
        sla_account=first_account,
        accounts=np.bincount(c.inc[seg != CONSUMER], minlength=n_inc),
        enterprise_accounts=np.bincount(c.inc[seg == ENTERPRISE], minlength=n_inc),
        running_inc=r_inc,
        running_deadline=r_deadline,
    )


# --- the same from frames (one incident's detail, tests) ----------------------------------------


def accounts_from_frame(acc: pd.DataFrame, ids: Sequence[Any]) -> Accounts:
    """``acc`` (id, name, segment, vip, sla_restore_minutes, penalty_per_hour) laid out at the positions of
    ``ids``; an id missing from ``acc`` is not known."""
    acc = acc.drop_duplicates("id").set_index("id").reindex(pd.Index(ids, dtype=object))
    known = acc["segment"].notna().to_numpy() if len(acc) else np.zeros(0, dtype=bool)
    return Accounts(
        ids=np.asarray(ids, dtype=object),
        names=acc["name"].to_numpy(dtype=object),
        segment=segment_codes(acc["segment"].tolist()),
        vip=acc["vip"].astype(object).fillna(False).astype(bool).to_numpy(),
        restore=acc["sla_restore_minutes"].astype(float).to_numpy(),
        penalty=acc["penalty_per_hour"].astype(float).to_numpy(),
        known=known,
    )


def rows_from_frame(
    df: pd.DataFrame, cell_pos: np.ndarray, n_cells: int, fields: dict[str, Any], order: list[str]
) -> CellRows:
    """A :class:`CellRows` of ``df`` (its cells at ``cell_pos``), each cell's rows sorted by ``order``."""
    df = df.assign(_cell=cell_pos).sort_values(["_cell", *order], kind="stable")
    rows = CellRows(fields)
    row_cell = df["_cell"].to_numpy(dtype=np.int64)
    rows.replace(np.arange(n_cells), row_cell, {k: df[k].to_numpy(dtype=t) for k, t in fields.items()})
    return rows
