"""Measuring a retention playbook: churn of the lines it treated against its randomised hold-out.

Every line the offer step chose is either sent an offer (treated) or held out, by a hash of the
line that knows nothing of its risk, so the two groups differ only by chance and by the offer. The
effect is intention to treat: churn within ``window`` of the decision, hold-out minus treated, with
a Newcombe interval on the difference of the two proportions (Wilson intervals of each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from dashboard.store.schema import actions, churn_events, offer_events

TREATED_STATES = ("sent", "queued", "sending", "uncertain")


@dataclass(frozen=True)
class Uplift:
    playbook: str
    treated: int
    treated_churned: int
    holdout: int
    holdout_churned: int
    accepted: int
    window_days: float
    #: Churn rate of the hold-out minus the treated (positive: the offer kept customers).
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    cost: float

    @property
    def treated_rate(self) -> float | None:
        return self.treated_churned / self.treated if self.treated else None

    @property
    def holdout_rate(self) -> float | None:
        return self.holdout_churned / self.holdout if self.holdout else None


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def difference_interval(
    k0: int, n0: int, k1: int, n1: int, *, z: float = 1.959964
) -> tuple[float, float, float]:
    """p0 - p1 and its Newcombe (hybrid Wilson score) interval."""
    p0, p1 = k0 / n0, k1 / n1
    l0, u0 = _wilson(k0, n0, z)
    l1, u1 = _wilson(k1, n1, z)
    d = p0 - p1
    low = d - math.sqrt((p0 - l0) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u0 - p0) ** 2 + (p1 - l1) ** 2)
    return d, low, high


def measure_uplift(
    conn: Connection, playbook: str, *, window_days: float = 30.0, now: datetime | None = None
) -> Uplift:
    """Churn within ``window_days`` of each decision, treated vs hold-out (decisions old enough only)."""
    a = actions.c
    query = select(a.subscriber_id, a.state, a.created_at, a.cost, a.offer).where(
        a.playbook == playbook, a.offer.is_not(None), a.subscriber_id.is_not(None)
    )
    if now is not None:
        query = query.where(a.created_at <= now - timedelta(days=window_days))
    rows = conn.execute(query).all()
    lines = [r for r in rows if r.state in TREATED_STATES or r.state == "held_out"]
    first: dict[str, tuple[str, datetime, float, str]] = {}
    for r in sorted(lines, key=lambda r: r.created_at):
        first.setdefault(r.subscriber_id, (r.state, r.created_at, float(r.cost or 0.0), r.offer))
    churned: dict[str, list[datetime]] = {}
    # Acceptances of the very offer Vantage made, after it made it: the operator's own campaigns
    # offer the same lines other things, which are no measure of this playbook.
    accepts: dict[str, list[tuple[str, datetime]]] = {}
    ids = list(first)
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        for sid, at in conn.execute(
            select(churn_events.c.subscriber_id, churn_events.c.occurred_at).where(
                churn_events.c.subscriber_id.in_(chunk)
            )
        ):
            churned.setdefault(sid, []).append(at)
        o = offer_events.c
        for sid, offer, at in conn.execute(
            select(o.subscriber_id, o.offer, o.occurred_at).where(
                o.outcome == "accepted", o.subscriber_id.in_(chunk)
            )
        ):
            accepts.setdefault(sid, []).append((offer, at))
    window = timedelta(days=window_days)
    counts = {"treated": [0, 0], "holdout": [0, 0]}
    cost = 0.0
    accepted = 0
    for sid, (state, at, c, offer) in first.items():
        arm = "holdout" if state == "held_out" else "treated"
        counts[arm][0] += 1
        if any(at <= t <= at + window for t in churned.get(sid, [])):
            counts[arm][1] += 1
        if arm == "treated":
            cost += c
            accepted += any(name == offer and at <= t <= at + window for name, t in accepts.get(sid, []))
    (n1, k1), (n0, k0) = counts["treated"], counts["holdout"]
    effect = low = high = None
    if n0 and n1:
        effect, low, high = difference_interval(k0, n0, k1, n1)
    return Uplift(
        playbook=playbook,
        treated=n1,
        treated_churned=k1,
        holdout=n0,
        holdout_churned=k0,
        accepted=accepted,
        window_days=window_days,
        effect=effect,
        ci_low=low,
        ci_high=high,
        cost=round(cost, 2),
    )
