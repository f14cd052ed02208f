"""Quarter-hour rows of every status level, kept per hour between the passes of one evaluating process.

The status pass reads the last few hours of every cell's samples (the longest ``for`` plus the
periods that find when a status began, plus an hour of lateness) and rolls them up to every level.
From one pass to the next only the newest hour and any hour a late sample arrived in change, and the
roll-up pass that runs just before knows which: the hours it recomputed (``RollupSummary``'s
``sample_spans``: the hours after the newest sample it had seen and every hour the ingest path
marked as written). :class:`QuarterHours` keeps each hour's rows and reads again only those hours
and the hours it has not read yet; the rest come from memory. When only periods after the newest
one the pass before had read received samples (``added_after``: no sample came late), an hour kept
up to that period is not read again: the new periods' rows are read and added to it (quarter-hour
rows of different periods are independent). Reads stop at the newest period the roll-up pass read
(``samples_to``), so a kept hour never holds part of a period that a later pass reports as new.

It is the evaluating process's own and follows one line of roll-up passes: each pass leaves a token
in the roll-up state, and when the pass before this one is not the one it followed (another
scheduler led in between, so marks it never saw were taken) or was a full rebuild, it forgets
everything and reads the whole window again. Samples written into an hour already rolled up other
than through the ingest path leave no mark: the roll-ups miss them until ``--full``, and so does this
memory until the hour leaves the status window (a few hours).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from dashboard.kpi_eval._sql import floor_time
from dashboard.kpi_eval.rollup import RollupSummary

HOUR = timedelta(hours=1)
#: The smallest step of a stored time: ``t + _TICK`` as an exclusive bound takes in ``t``.
_TICK = timedelta(microseconds=1)
Reader = Callable[[datetime, datetime], dict[str, pd.DataFrame]]


@dataclass
class QuarterHours:
    """Rows per level (``read.fetch_levels``'s frames) of each hour read, for one set of series and
    levels; :meth:`follow` takes each roll-up pass's summary before the status pass reads."""

    token: str | None = None
    series: frozenset[str] = frozenset()
    levels: tuple[str, ...] = ()
    hours: dict[datetime, dict[str, pd.DataFrame]] = field(default_factory=dict)
    #: Hours recomputed by the roll-up passes followed and not read again since.
    changed: set[datetime] = field(default_factory=set)
    #: Per hour kept, the newest period its rows were read up to (None: as far as the read went).
    through: dict[datetime, datetime | None] = field(default_factory=dict)
    #: Hours kept whose periods after the given one are to be read and added.
    extend: dict[datetime, datetime] = field(default_factory=dict)
    #: Reads stop at this period (the newest the last roll-up pass followed read up to).
    bound: datetime | None = None
    #: Hours read from the store by the last :meth:`rows`, for the summary: whole, or (``added_hours``
    #: of them) only their periods after those kept.
    read_hours: int = 0
    added_hours: int = 0

    def clear(self) -> None:
        self.hours.clear()
        self.changed.clear()
        self.through.clear()
        self.extend.clear()

    def follow(self, rollups: RollupSummary) -> None:
        """Take one roll-up pass's summary: the token it followed and left, whether it rebuilt
        everything, and the hours of samples it recomputed."""
        if rollups.full or rollups.previous_pass is None or rollups.previous_pass != self.token:
            self.clear()
        self.token = rollups.pass_id
        self.bound = rollups.samples_to
        after = rollups.added_after
        for lo, hi in rollups.sample_spans:
            hour = floor_time(lo, 3600)
            while hour < hi:
                kept_to = self.through.get(hour)
                if after is not None and hour in self.hours and hour not in self.changed and kept_to == after:
                    self.extend[hour] = after
                else:
                    self.changed.add(hour)
                    self.extend.pop(hour, None)
                hour += HOUR

    def rows(
        self,
        read: Reader,
        *,
        series: Iterable[str],
        levels: Sequence[str],
        since: datetime,
        until: datetime,
    ) -> dict[str, pd.DataFrame]:
        """Each level's rows in [since, until): the hours kept and not changed from memory, the
        others through ``read(lo, hi)`` (whole hours, contiguous hours in one call)."""
        names, lvls = frozenset(series), tuple(levels)
        if (names, lvls) != (self.series, self.levels):
            self.clear()
            self.series, self.levels = names, lvls
        first = floor_time(since, 3600)
        window = []
        hour = first
        while hour < until:
            window.append(hour)
            hour += HOUR
        for old in [h for h in self.hours if h < first]:
            del self.hours[old]
        self.changed = {h for h in self.changed if h >= first}
        self.extend = {h: after for h, after in self.extend.items() if h >= first}
        self.through = {h: t for h, t in self.through.items() if h >= first}
        stale = [h for h in window if h not in self.hours or h in self.changed]
        grow = {h: self.extend.pop(h) for h in window if h not in stale and h in self.extend}
        self.read_hours, self.added_hours = len(stale) + len(grow), len(grow)
        end = None if self.bound is None else self.bound + _TICK
        for lo, hi in _spans(stale):
            by_level = {
                lvl: _by_hour(rows) for lvl, rows in read(lo, _before(hi, end)).items() if lvl in lvls
            }
            for h in _hours_between(lo, hi):
                self.hours[h] = {lvl: parts.get(h, empty) for lvl, (parts, empty) in by_level.items()}
                self.changed.discard(h)
                self.extend.pop(h, None)
                self.through[h] = self.bound
        if grow:
            # One read of the new periods of every hour kept up to an older one.
            lo, hi = min(grow.values()) + _TICK, _before(max(grow) + HOUR, end)
            by_level = (
                {lvl: _by_hour(rows) for lvl, rows in read(lo, hi).items() if lvl in lvls} if lo < hi else {}
            )
            for h, after in grow.items():
                for lvl, (added, _) in by_level.items():
                    new = added.get(h)
                    if new is not None:
                        new = new[new["period_start"] > pd.Timestamp(after)]
                        self.hours[h][lvl] = pd.concat([self.hours[h][lvl], new], ignore_index=True)
                self.through[h] = self.bound
        lo_ts, hi_ts = pd.Timestamp(since), pd.Timestamp(until)
        out = {}
        for lvl in lvls:
            parts = [self.hours[h][lvl] for h in window]
            rows = pd.concat(parts, ignore_index=True)
            out[lvl] = rows[(rows["period_start"] >= lo_ts) & (rows["period_start"] < hi_ts)].reset_index(
                drop=True
            )
        return out


def _before(hi: datetime, end: datetime | None) -> datetime:
    return hi if end is None else min(hi, end)


def _hours_between(lo: datetime, hi: datetime) -> list[datetime]:
    return [lo + i * HOUR for i in range(int((hi - lo) // HOUR))]


def _spans(hours: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    spans: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if spans and spans[-1][1] == h:
            spans[-1] = (spans[-1][0], h + HOUR)
        else:
            spans.append((h, h + HOUR))
    return spans


def _by_hour(rows: pd.DataFrame) -> tuple[dict[datetime, pd.DataFrame], pd.DataFrame]:
    """``rows`` split by the hour of their period (one pass), and an empty frame like them."""
    hour = rows["period_start"].dt.floor("h")
    parts = {pd.Timestamp(h).to_pydatetime(): part.reset_index(drop=True) for h, part in rows.groupby(hour)}
    return parts, rows.iloc[0:0]


__all__ = ["QuarterHours"]
