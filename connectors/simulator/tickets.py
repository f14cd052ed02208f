"""Ticket, offer and churn records for a time window, from the per-day experience outcomes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from connectors.simulator.experience import (
    ANGRY,
    CATEGORIES,
    CHURN_REASONS,
    MILD,
    POSITIVE,
    DayOutcome,
    Experience,
)
from connectors.simulator.faults import DAY_S, Event, Record, to_dt
from connectors.simulator.texts import agent_note, customer_note, ticket_text
from connectors.simulator.world import ENTERPRISE, World, rng_for, subscriber_frame

TICKET_LOOKBACK_DAYS = 6
OFFER_LOOKBACK_DAYS = 5
CHANNELS = ("phone", "email", "chat", "app", "social", "store")
CHANNEL_P = {
    ANGRY: (0.40, 0.10, 0.20, 0.08, 0.17, 0.05),
    MILD: (0.25, 0.15, 0.25, 0.25, 0.05, 0.05),
    POSITIVE: (0.10, 0.20, 0.15, 0.25, 0.20, 0.10),
}
NEUTRAL_CHANNEL_P = (0.20, 0.15, 0.25, 0.30, 0.02, 0.08)
ENTERPRISE_CHANNEL_P = (0.45, 0.45, 0.05, 0.05, 0.0, 0.0)
OFFERS = (
    "10 GB extra data for 3 months",
    "20% off for 6 months",
    "Free upgrade to Unlimited 5G for 2 months",
    "Loyalty device discount",
    "One month free",
    "Double data for 12 months",
)


def _channel(rng: np.random.Generator, tone: int, enterprise: bool) -> str:
    p = ENTERPRISE_CHANNEL_P if enterprise else CHANNEL_P.get(tone, NEUTRAL_CHANNEL_P)
    return CHANNELS[int(rng.choice(len(CHANNELS), p=p))]


def ticket_events(
    w: World, exp: Experience, source: str, a_s: int, b_s: int, currency: str
) -> Iterator[Event]:
    """(time, kind, record) of every ticket version, note and status change in [a_s, b_s)."""
    first = a_s // DAY_S - TICKET_LOOKBACK_DAYS
    for day in range(first, (b_s - 1) // DAY_S + 1):
        out = exp.day(day)
        # Tickets are drawn for every line; only lines in service when they write one file it.
        filed = exp.in_service(out.ticket_sub, out.ticket_created_s) & (out.ticket_created_s < b_s)
        for k in np.flatnonzero(filed):
            yield from _one_ticket(w, out, int(k), source, a_s, b_s, currency)


def _one_ticket(
    w: World, out: DayOutcome, k: int, source: str, a_s: int, b_s: int, currency: str
) -> Iterator[Event]:
    rng = rng_for(w.seed, "ticket", out.day, k)
    sub = int(out.ticket_sub[k])
    acc = int(w.sub_account[sub])
    tone = int(out.ticket_tone[k])
    inc_i = int(out.ticket_incident[k])
    inc = out.incidents[inc_i] if inc_i >= 0 else None
    created = int(out.ticket_created_s[k])
    t_ack = created + int(rng.uniform(2, 45) * 60)
    t_prog = t_ack + int(rng.uniform(10, 180) * 60)
    if inc is not None:
        t_res = max(inc.end_s + int(rng.uniform(5, 90) * 60), t_prog + 300)
    else:
        t_res = t_prog + int(min(rng.lognormal(np.log(6 * 3600), 0.8), 48 * 3600))
    pending = inc is None and rng.random() < 0.1
    t_closed = t_res + int(rng.uniform(24, 72) * 3600)
    if t_closed + 3 * 3600 < a_s:
        return
    statuses = [(created, "new"), (t_ack, "acknowledged"), (t_prog, "inprogress")]
    if pending:
        statuses.append(((t_prog + t_res) // 2, "pending"))
    statuses += [(t_res, "resolved"), (t_closed, "closed")]
    # Skip the wording when nothing of this ticket falls in the slice (a live slice is a minute):
    # its versions and notes are at these times, but for a thank-you note 10-180 minutes after
    # the resolution. The ticket's own generator makes skipping change nothing else.
    times = [t for t, _ in statuses] + [t_ack + 60, t_res]
    if tone == ANGRY and t_res - created > 3 * 3600:
        times.append(created + 2 * 3600)
    thanks_may_fall = tone != POSITIVE and t_res + 600 < b_s and t_res + 3 * 3600 >= a_s
    if not thanks_may_fall and not any(a_s <= t < b_s for t in times):
        return

    enterprise = bool(w.acc_segment[acc] == ENTERPRISE)
    channel = _channel(rng, tone, enterprise)
    place = w.site_place(int(w.sub_home_cell[sub]) // 3)
    hour = int((created % DAY_S) // 3600)
    subject, description = ticket_text(
        rng,
        int(out.ticket_category[k]),
        tone,
        place,
        float(out.ticket_outage_h[k]),
        float(w.sub_arpu[sub]),
        hour,
        currency,
    )
    vip = bool(w.acc_vip[acc])
    priority = "high" if tone == ANGRY or vip or enterprise else ("medium" if inc is not None else "low")
    tid = f"TT-{out.day}-{k:06d}"
    base: Record = {
        "id": tid,
        "source": source,
        "account_id": str(w.acc_ids.iloc[acc]),
        "subscriber_id": str(w.sub_ids.iloc[sub]),
        "incident_id": None,  # care does not see the NOC's incident numbers
        "channel": channel,
        "category": CATEGORIES[int(out.ticket_category[k])],
        "priority": priority,
        "subject": subject,
        "description": description,
        "sentiment": None,
        "created_at": to_dt(created),
    }
    for t, status in statuses:
        if a_s <= t < b_s:
            yield (
                t,
                "tickets",
                base
                | {
                    "status": status,
                    "updated_at": to_dt(t),
                    "resolved_at": to_dt(t_res) if t >= t_res else None,
                },
            )
            yield (
                t,
                "ticket_status_changes",
                {
                    "source": source,
                    "ticket_id": tid,
                    "changed_at": to_dt(t),
                    "status": status,
                },
            )
    # Care names the NOC's incident, not a silent fault: nothing told the NOC about it.
    named = inc.id if inc is not None and not inc.silent else None
    notes = [(t_ack + 60, "agent", agent_note(rng, "ack", place, named))]
    if tone == ANGRY and t_res - created > 3 * 3600:
        notes.append((created + 2 * 3600, "customer", customer_note(rng, "followup")))
    notes.append((t_res, "agent", agent_note(rng, "resolve", place, None)))
    if tone != POSITIVE and rng.random() < (0.25 if inc is not None else 0.1):
        notes.append((t_res + int(rng.uniform(10, 180) * 60), "customer", customer_note(rng, "thanks")))
    for j, (t, author, text) in enumerate(notes):
        if a_s <= t < b_s:
            yield (
                t,
                "ticket_notes",
                {
                    "id": f"{tid}-n{j}",
                    "source": source,
                    "ticket_id": tid,
                    "author": author if author == "customer" else "agent",
                    "text": text,
                    "sentiment": None,
                    "created_at": to_dt(t),
                },
            )


def vantage_offer_events(w: World, exp: Experience, source: str, a_s: int, b_s: int) -> list[Record]:
    """The offers Vantage sent that customers accepted, as the BSS sees them (a product order) in
    [a_s, b_s); a declined one leaves no trace, and nor does one taken on a line out of service."""
    got = exp.inbox.accepted_between(a_s, b_s)
    if not got:
        return []
    subs = np.array([r.line for r in got], dtype=np.int64)
    live = exp.in_service(subs, np.array([r.accepted_s for r in got], dtype=np.int64))
    return [
        {
            "id": r.record_id,
            "source": source,
            "subscriber_id": str(w.sub_ids.iloc[r.line]),
            "account_id": str(w.acc_ids.iloc[int(w.sub_account[r.line])]),
            "offer": r.offer,
            "outcome": "accepted",
            "occurred_at": to_dt(r.accepted_s),
        }
        for r, ok in zip(got, live.tolist(), strict=True)
        if ok
    ]


def churn_events(
    w: World, exp: Experience, source: str, a_s: int, b_s: int
) -> Iterator[tuple[str, list[Record] | pd.DataFrame]]:
    """Offer events, churn events and the subscribers whose status changed, for [a_s, b_s)."""
    first_day, last_day = a_s // DAY_S, (b_s - 1) // DAY_S
    offers: list[Record] = []
    for day in range(first_day - OFFER_LOOKBACK_DAYS, last_day + 1):
        out = exp.day(day)
        if not len(out.offer_sub):
            continue
        # An offer answers a ticket, so it exists only when the ticket was filed (line in service).
        filed = exp.in_service(out.offer_sub, out.ticket_created_s[out.offer_ticket])
        for j in np.flatnonzero(filed):
            k = int(out.offer_ticket[j])
            rng = rng_for(w.seed, "offer", day, k)
            t_offer = int(out.ticket_created_s[k]) + int(rng.uniform(1, 24) * 3600)
            t_outcome = t_offer + int(rng.uniform(2, 72) * 3600)
            sub = int(out.offer_sub[j])
            offer = OFFERS[int(rng.integers(len(OFFERS)))]
            outcome = "accepted" if out.offer_accepted[j] else "declined"
            for t, what, suffix in ((t_offer, "offered", "o"), (t_outcome, outcome, "r")):
                if a_s <= t < b_s:
                    offers.append(
                        {
                            "id": f"OFR-{day}-{k:06d}-{suffix}",
                            "source": source,
                            "subscriber_id": str(w.sub_ids.iloc[sub]),
                            "account_id": str(w.acc_ids.iloc[int(w.sub_account[sub])]),
                            "offer": offer,
                            "outcome": what,
                            "occurred_at": to_dt(t),
                        }
                    )
    offers.extend(vantage_offer_events(w, exp, source, a_s, b_s))
    if offers:
        yield "offer_events", offers

    events, resold, resold_s = exp.status_changes(a_s, b_s)
    churns: list[Record] = []
    for sub, t, reason in zip(
        events.sub.tolist(), events.time_s.tolist(), events.reason.tolist(), strict=True
    ):
        churns.append(
            {
                "id": f"CHN-{t // DAY_S}-{sub:07d}",
                "source": source,
                "subscriber_id": str(w.sub_ids.iloc[sub]),
                "account_id": str(w.acc_ids.iloc[int(w.sub_account[sub])]),
                "occurred_at": to_dt(t),
                "reason": CHURN_REASONS[reason],
            }
        )
    if churns:
        churns.sort(key=lambda r: (r["occurred_at"], r["id"]))
        yield "churn_events", churns
    # Status changes in time order (the store keeps the last of a line's versions in a batch):
    # churned at each churn event, active again when the line is re-sold.
    subs = np.concatenate([events.sub, resold]).astype(np.int64)
    if len(subs):
        times = np.concatenate([events.time_s, resold_s])
        churned = np.concatenate([np.ones(len(events.sub), bool), np.zeros(len(resold), bool)])
        order = np.lexsort((subs, times))
        yield "subscribers", subscriber_frame(w, source, subs[order], churned[order])
