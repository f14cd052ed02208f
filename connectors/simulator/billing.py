"""Monthly bills per account and monthly usage (data, voice, SMS) per subscriber."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import numpy as np
import pandas as pd

from connectors.simulator.faults import EPOCH, to_s
from connectors.simulator.world import PLANS, ROW_CHUNK, World, rng_for

ISSUE_HOUR = 2
OVERAGE_PER_GB = 2.5
USAGE_TYPES = (("data", "GB"), ("voice", "min"), ("sms", "msg"))


def _month_index(d: date | datetime) -> int:
    return d.year * 12 + d.month - 1


def _month_date(m: int) -> date:
    return date(m // 12, m % 12 + 1, 1)


def issue_s(m: int) -> int:
    """When the bill of month index ``m`` is issued: 02:00 on the first day of the next month."""
    nxt = _month_date(m + 1)
    return to_s(datetime(nxt.year, nxt.month, 1, ISSUE_HOUR))


def _month_usage(w: World, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per subscriber: data GB, voice minutes, SMS and the charge for the month."""
    rng = rng_for(w.seed, "usage", m)
    n = w.n_subscribers
    plan_gb = np.array([p[3] for p in PLANS])[w.sub_plan]
    plan_min = np.array([p[4] for p in PLANS])[w.sub_plan]
    plan_sms = np.array([p[5] for p in PLANS])[w.sub_plan]
    data = np.round(plan_gb * rng.lognormal(-0.15, 0.55, n), 3)
    voice = np.round(plan_min * rng.lognormal(-0.1, 0.6, n))
    sms = rng.poisson(plan_sms).astype(float)
    overage = np.round(np.maximum(0.0, data - 1.6 * plan_gb) * OVERAGE_PER_GB, 2)
    charge = np.round(w.sub_arpu * rng.uniform(0.97, 1.03, n) + overage, 2)
    return data, voice, sms, np.stack([overage, charge])


def billing_frames(
    w: World, source: str, a_s: int, b_s: int, currency: str
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Bills issued (and their later settled/overdue versions) and usage, for [a_s, b_s)."""
    a_month = _month_index(EPOCH + pd.Timedelta(seconds=a_s)) - 3
    b_month = _month_index(EPOCH + pd.Timedelta(seconds=b_s))
    for m in range(a_month, b_month + 1):
        t_issue = issue_s(m)
        rng = rng_for(w.seed, "bill-state", m)
        n_acc = w.n_accounts
        settle_s = t_issue + (rng.uniform(10, 28, n_acc) * 86400).astype(np.int64)
        overdue = rng.random(n_acc) < 0.04
        settle_s[overdue] = t_issue + 31 * 86400
        issued_now = a_s <= t_issue < b_s
        changed = (settle_s >= a_s) & (settle_s < b_s)
        if not issued_now and not changed.any():
            continue
        data, voice, sms, money = _month_usage(w, m)
        amount = np.round(np.bincount(w.sub_account, weights=money[1], minlength=n_acc), 2)
        start, end = _month_date(m), _month_date(m + 1)
        period_end = date.fromordinal(end.toordinal() - 1)
        issued_at = np.datetime64(EPOCH, "us") + np.timedelta64(t_issue, "s")
        label = f"{start:%Y%m}"
        states = np.where(overdue, "overdue", "settled")
        for acc_idx, state in (
            (np.arange(n_acc) if issued_now else np.array([], dtype=np.int64), None),
            (np.flatnonzero(changed), "later"),
        ):
            for lo in range(0, len(acc_idx), ROW_CHUNK):
                idx = acc_idx[lo : lo + ROW_CHUNK]
                yield (
                    "bills",
                    pd.DataFrame(
                        {
                            "id": "BILL-" + label + "-" + w.acc_ids.iloc[idx].reset_index(drop=True),
                            "source": source,
                            "account_id": w.acc_ids.iloc[idx].reset_index(drop=True),
                            "period_start": pd.Series([start] * len(idx), dtype=object),
                            "period_end": pd.Series([period_end] * len(idx), dtype=object),
                            "amount": amount[idx],
                            "currency": currency,
                            "state": pd.Series(states[idx] if state else ["new"] * len(idx), dtype="str"),
                            "issued_at": np.full(len(idx), issued_at),
                        }
                    ).astype({"source": "str", "currency": "str"}),
                )
        if not issued_now:
            continue
        for lo in range(0, w.n_subscribers, ROW_CHUNK):
            idx = np.arange(lo, min(lo + ROW_CHUNK, w.n_subscribers))
            sub_ids = w.sub_ids.iloc[idx].reset_index(drop=True)
            acc_ids = w.acc_ids.iloc[w.sub_account[idx]].reset_index(drop=True)
            parts = []
            for (kind, unit), qty, amt in zip(
                USAGE_TYPES,
                (data, voice, sms),
                (money[0], np.zeros(w.n_subscribers), np.zeros(w.n_subscribers)),
                strict=True,
            ):
                parts.append(
                    pd.DataFrame(
                        {
                            "id": "USG-" + label + "-" + sub_ids + "-" + kind,
                            "subscriber_id": sub_ids,
                            "account_id": acc_ids,
                            "usage_type": kind,
                            "quantity": qty[idx],
                            "unit": unit,
                            "amount": amt[idx],
                        }
                    )
                )
            df = pd.concat(parts, ignore_index=True)
            df.insert(1, "source", source)
            df.insert(4, "period_start", pd.Series([start] * len(df), dtype=object))
            df["currency"] = currency
            yield "usage", df.astype({"source": "str", "usage_type": "str", "unit": "str", "currency": "str"})
