"""What simulated customers received from Vantage (apologies, retention offers) and how they answer."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from connectors.simulator.causal import CausalParameters
from connectors.simulator.faults import DAY_S, to_s
from connectors.simulator.world import World, account_of_email, line_of_msisdn, rng_for

MessageKind = Literal["offer", "apology"]
KINDS: tuple[MessageKind, ...] = ("offer", "apology")
DEFAULT_OFFER = "Retention offer"
OFFER_NAME_MAX = 128  # offer_events.offer
ACCEPT_DELAY_HOURS = (1.0, 6.0)


@dataclass(frozen=True)
class Receipt:
    """One message as one line received it, and what the customer does about it."""

    kind: MessageKind
    at_s: int
    line: int
    offer: str | None
    key: str | None
    accepted: bool
    """Offers only: whether the customer takes it (drawn from (seed, line, day), not arrival order)."""
    drawn_through: int | None
    """The last absolute day whose churn decisions were already drawn when it arrived (None: none)."""
    from_day: int
    """First absolute day whose churn decisions it affects: the day after ``at_s``, or after
    ``drawn_through`` (days already drawn are never redrawn)."""
    until_day: int
    """Last absolute day it affects: the dissatisfaction lookback after the day it arrived."""
    accepted_s: int
    """When an accepted offer is seen as a product order in the BSS (epoch seconds); -1 otherwise."""
    record_id: str
    """Id of the accepted offer's ``offer_events`` record, stable for a key and a line."""


def line_of_subscriber_id(w: World, subscriber_id: str) -> int | None:
    """The line whose id is ``subscriber_id`` (``sub-0001234``), or None."""
    m = re.fullmatch(r"sub-(\d+)", subscriber_id.strip())
    if m is None:
        return None
    line = int(m.group(1))
    return line if line < w.n_subscribers and f"sub-{line:07d}" == subscriber_id.strip() else None


def lines_of_account_id(w: World, account_id: str) -> np.ndarray:
    """The lines of the account whose id is ``account_id`` (``acc-0001234``); empty when unknown."""
    m = re.fullmatch(r"acc-(\d+)", account_id.strip())
    if m is None:
        return np.zeros(0, dtype=np.int64)
    acc = int(m.group(1))
    if acc >= w.n_accounts or f"acc-{acc:07d}" != account_id.strip():
        return np.zeros(0, dtype=np.int64)
    return _lines_of_account(w, acc)


def _lines_of_account(w: World, acc: int) -> np.ndarray:
    # An account's lines are contiguous (build_world).
    lo, hi = np.searchsorted(w.sub_account, [acc, acc + 1])
    return np.arange(lo, hi, dtype=np.int64)


def _first_day(day: int, through: int | None) -> int:
    return day + 1 if through is None else max(day + 1, through + 1)


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


class Inbox:
    """What simulated customers received from Vantage; thread-safe.

    ``record`` files a message under the lines it reaches. The churn decisions of a day ask
    ``effects`` which lines are under an accepted offer or an apology that day; from then on that
    day counts as drawn, and a message arriving later never reaches back into it, so cached days
    and days recomputed after the cache dropped them agree.
    """

    def __init__(self, w: World, c: CausalParameters) -> None:
        self.w = w
        self.c = c
        self._lock = threading.Lock()
        self._receipts: list[Receipt] = []
        self._keys: set[str] = set()
        self._through: int | None = None
        self._arrays: dict[str, np.ndarray] | None = None

    # --- recording ------------------------------------------------------------------------------

    def lines_for(
        self,
        *,
        subscriber_id: str | None = None,
        account_id: str | None = None,
        address: str | None = None,
    ) -> np.ndarray:
        """The lines a message reaches: the line ``subscriber_id``, else the line whose MSISDN
        ``address`` is (any formatting) or every line of the account whose contact e-mail it is,
        else every line of ``account_id``; empty when none is known."""
        w = self.w
        if subscriber_id is not None:
            line = line_of_subscriber_id(w, subscriber_id)
            return np.array([line] if line is not None else [], dtype=np.int64)
        if address is not None:
            email = re.search(r"[^\s<>:,;]+@[^\s<>:,;]+", address)
            if email is not None:
                acc = account_of_email(w, email.group(0))
                return _lines_of_account(w, acc) if acc is not None else np.zeros(0, dtype=np.int64)
            line = line_of_msisdn(w, address)
            return np.array([line] if line is not None else [], dtype=np.int64)
        if account_id is not None:
            return lines_of_account_id(w, account_id)
        return np.zeros(0, dtype=np.int64)

    def record(
        self,
        kind: MessageKind,
        *,
        at: datetime,
        subscriber_id: str | None = None,
        account_id: str | None = None,
        address: str | None = None,
        offer: str | None = None,
        key: str | None = None,
    ) -> bool:
        """File a message received at ``at`` (naive UTC) and return whether it reached a simulated
        customer. A key already recorded is ignored (returns True: it did reach one); a message that
        reaches nobody is not recorded (and its key not kept)."""
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind!r}: expected one of {', '.join(KINDS)}")
        lines = self.lines_for(subscriber_id=subscriber_id, account_id=account_id, address=address)
        if not len(lines):
            return False
        at_s = to_s(_naive_utc(at))
        day = at_s // DAY_S
        name = (offer or DEFAULT_OFFER)[:OFFER_NAME_MAX] if kind == "offer" else None
        with self._lock:
            if key is not None:
                if key in self._keys:
                    return True
                self._keys.add(key)
            first = _first_day(day, self._through)
            last = day + int(self.c.dissatisfaction_lookback_days)
            for line in lines.tolist():
                accepted, accepted_s = self._answer(kind, line, day, at_s)
                ident = key if key is not None else f"{kind}|{at_s}|{name}"
                digest = hashlib.sha256(f"{ident}\x1f{line}".encode()).hexdigest()[:20]
                self._receipts.append(
                    Receipt(
                        kind=kind,
                        at_s=at_s,
                        line=line,
                        offer=name,
                        key=key,
                        accepted=accepted,
                        drawn_through=self._through,
                        from_day=first,
                        until_day=last,
                        accepted_s=accepted_s,
                        record_id=f"VOF-{digest}",
                    )
                )
            self._arrays = None
        return True

    def effective_day(self, at: datetime) -> int:
        """The first day whose churn decisions a message received at ``at`` affects: the day after,
        unless later days were already drawn when the first message received at or after ``at``
        arrived (when none has yet, now). So the answer stays what it was when messages were sent
        at ``at``, however far the simulator has run since."""
        at_s = to_s(_naive_utc(at))
        with self._lock:
            through = next((r.drawn_through for r in self._receipts if r.at_s >= at_s), self._through)
        return _first_day(at_s // DAY_S, through)

    def _answer(self, kind: MessageKind, line: int, day: int, at_s: int) -> tuple[bool, int]:
        """Whether the customer on ``line`` takes an offer received on ``day``, and when the BSS sees it."""
        if kind != "offer":
            return False, -1
        rng = rng_for(self.w.seed, "vantage-offer", line, day)
        accepted = bool(rng.random() < self.c.vantage_offer_acceptance_probability)
        delay = round(rng.uniform(*ACCEPT_DELAY_HOURS) * 3600)
        return accepted, at_s + delay if accepted else -1

    # --- reading --------------------------------------------------------------------------------

    @property
    def receipts(self) -> tuple[Receipt, ...]:
        """Every message as each line received it, in arrival order."""
        with self._lock:
            return tuple(self._receipts)

    def __len__(self) -> int:
        with self._lock:
            return len(self._receipts)

    def _table(self) -> dict[str, np.ndarray]:
        """The receipts as arrays (rebuilt after a record); call under the lock."""
        if self._arrays is None:
            r = self._receipts
            self._arrays = {
                "offer": np.array([x.kind == "offer" for x in r], dtype=bool),
                "accepted": np.array([x.accepted for x in r], dtype=bool),
                "line": np.array([x.line for x in r], dtype=np.int64),
                "at_s": np.array([x.at_s for x in r], dtype=np.int64),
                "from_day": np.array([x.from_day for x in r], dtype=np.int64),
                "until_day": np.array([x.until_day for x in r], dtype=np.int64),
            }
        return self._arrays

    def effects(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """The lines under an accepted Vantage offer and those under an apology on ``day`` (unique,
        sorted), for drawing that day's churn decisions: the day counts as drawn from now on."""
        with self._lock:
            self._through = day if self._through is None else max(self._through, day)
            if not self._receipts:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
            t = self._table()
            live = (t["from_day"] <= day) & (day <= t["until_day"])
            offers = np.unique(t["line"][live & t["offer"] & t["accepted"]])
            apologies = np.unique(t["line"][live & ~t["offer"]])
        return offers, apologies

    def active(
        self, lines: np.ndarray, days: np.ndarray, *, offers_before_s: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per ``lines[i]`` and ``days[j]``: under an accepted Vantage offer received before
        ``offers_before_s``, and under an apology (any received so far). Changes nothing."""
        lines = np.asarray(lines, dtype=np.int64)
        days = np.asarray(days, dtype=np.int64)
        uniq, inv = np.unique(lines, return_inverse=True)
        shape = (len(uniq), len(days))
        offer, apology = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
        with self._lock:
            if not self._receipts or not len(uniq):
                return offer[inv], apology[inv]
            t = {k: v.copy() for k, v in self._table().items()}
        k = np.minimum(np.searchsorted(uniq, t["line"]), len(uniq) - 1)
        mine = uniq[k] == t["line"]
        span = (days[None, :] >= t["from_day"][:, None]) & (days[None, :] <= t["until_day"][:, None])
        counted_offer = mine & t["offer"] & t["accepted"] & (t["at_s"] < offers_before_s)
        np.logical_or.at(offer, k[counted_offer], span[counted_offer])
        counted_apology = mine & ~t["offer"]
        np.logical_or.at(apology, k[counted_apology], span[counted_apology])
        return offer[inv], apology[inv]

    def accepted_between(self, a_s: int, b_s: int) -> list[Receipt]:
        """The accepted offers the BSS sees in ``[a_s, b_s)``, in time order."""
        with self._lock:
            got = [r for r in self._receipts if r.accepted and a_s <= r.accepted_s < b_s]
        return sorted(got, key=lambda r: (r.accepted_s, r.record_id))
