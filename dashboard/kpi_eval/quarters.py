"""Quarter-hour rows of every status level, kept per hour between the passes of one evaluating process.

The status pass reads the last few hours of every cell's samples (the longest ``for`` plus the
periods that find when a status began, plus an hour of lateness) and rolls them up to every level.
From one pass to the next only the newest hour and any hour a late sample arrived in change, and the
roll-up pass that runs just before knows which: the hours it recomputed (``RollupSummary``'s
``sample_spans``: the hours after the newest sample it had seen and every hour the ingest path
marked as written). :class:`QuarterHours` keeps each hour's rows and reads again only those hours
and the hours it has not read yet; the rest come from memory.

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
    #: Hours read from the store by the last :meth:`rows`, for the summary.
    read_hours: int = 0

    def clear(self) -> None:
        self.hours.clear()
        self.changed.clear()

    def follow(self, rollups: RollupSummary) -> None:
        """Take one roll-up pass's summary: the token it followed and left, whether it rebuilt
        everything, and the hours of samples it recomputed."""
        if rollups.full or rollups.previous_pass is None or rollups.previous_pass != self.token:
            self.clear()
        self.token = rollups.pass_id
        for lo, hi in rollups.sample_spans:
            hour = floor_time(lo, 3600)
            while hour < hi:
                self.changed.add(hour)
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
            self.hours.clear()
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
        stale = [h for h in window if h not in self.hours or h in self.changed]
        self.read_hours = len(stale)
        for lo, hi in _spans(stale):
            by_level = {lvl: _by_hour(rows) for lvl, rows in read(lo, hi).items() if lvl in lvls}
            for h in _hours_between(lo, hi):
                self.hours[h] = {lvl: parts.get(h, empty) for lvl, (parts, empty) in by_level.items()}
                self.changed.discard(h)
        lo_ts, hi_ts = pd.Timestamp(since), pd.Timestamp(until)
        out = {}
        for lvl in lvls:
            parts = [self.hours[h][lvl] for h in window]
            rows = pd.concat(parts, ignore_index=True)
            out[lvl] = rows[(rows["period_start"] >= lo_ts) & (rows["period_start"] < hi_ts)].reset_index(
                drop=True
            )
        return out


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
