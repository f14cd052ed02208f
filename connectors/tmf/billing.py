"""TMF678 Customer Bill and TMF635 Usage: revenue per account and period."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from connectors.base import JSONDict, Stream
from connectors.tmf._base import (
    MappingError,
    Rows,
    TmfConnector,
    TmfOptions,
    as_list,
    dig,
    parse_time,
    party_by_role,
    ref_id,
    required_id,
    text,
)

Money = tuple[float | None, str | None]


def money(value: Any, name: str) -> Money:
    """``{"value": 50.0, "unit": "EUR"}`` as (amount, currency); numbers given as text are accepted."""
    if not isinstance(value, dict):
        return None, None
    amount = value.get("value")
    if amount is None or isinstance(amount, bool):
        return None, text(value.get("unit"))
    try:
        return float(amount), text(value.get("unit"))
    except (TypeError, ValueError):
        raise MappingError(f"{name}.value: expected a number, got {amount!r}"[:200]) from None


class Tmf678Options(TmfOptions):
    """Options of the TMF678 connector."""

    #: Which amount is the bill's revenue; the others are fallbacks in this order.
    amount_fields: list[Literal["taxIncludedAmount", "amountDue", "taxExcludedAmount", "remainingAmount"]] = (
        Field(
            default_factory=lambda: ["taxIncludedAmount", "amountDue", "taxExcludedAmount"]  # type: ignore[arg-type]
        )
    )
    #: relatedParty roles used for the account when a bill has no billingAccount.
    account_roles: list[str] = Field(default_factory=lambda: ["customer", "billReceiver", "payer"])


class Tmf635Options(TmfOptions):
    """Options of the TMF635 connector."""

    account_roles: list[str] = Field(default_factory=lambda: ["customer", "account", "billingAccount"])
    subscriber_roles: list[str] = Field(default_factory=lambda: ["subscriber", "user", "serviceUser"])
    #: usageCharacteristic names that carry the quantity, first found wins (case-insensitive).
    quantity_characteristics: list[str] = Field(
        default_factory=lambda: [
            "quantity",
            "duration",
            "duration-seconds",
            "volume",
            "data-volume",
            "bytes",
            "count",
            "messages",
        ]
    )


class Tmf678Connector(TmfConnector[Tmf678Options]):
    """Customer bills from a TMF678 Customer Bill Management API."""

    type = "tmf678"
    Options = Tmf678Options
    api = "customerBillManagement"
    resource = "customerBill"
    stream = Stream(name="bills", kinds=("bills",), description="TMF678 customer bills")

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        o = self.options
        bid = required_id(item, "bill")
        account = ref_id(item.get("billingAccount"))
        if account is None:
            party = party_by_role(item.get("relatedParty"), o.account_roles)
            account = ref_id(party) if party else None
        if account is None:
            raise MappingError(
                f"bill {bid} names no billingAccount (nor a relatedParty in {o.account_roles})"
            )
        amount: float | None = None
        currency: str | None = None
        for name in o.amount_fields:
            amount, currency = money(item.get(name), name)
            if amount is not None:
                break
        if amount is None:
            raise MappingError(f"bill {bid} has no amount (looked at {', '.join(o.amount_fields)})")
        bill_date = parse_time(item.get("billDate"), "billDate")
        start = parse_time(dig(item, "billingPeriod.startDateTime"), "billingPeriod.startDateTime")
        end = parse_time(dig(item, "billingPeriod.endDateTime"), "billingPeriod.endDateTime")
        # Without a billing period (the reference example has "billingPeriod": {}) the bill counts
        # for the day it was issued, so its revenue still lands in a period.
        start = start or bill_date
        end = end or bill_date or start
        if start is None or end is None:
            raise MappingError(f"bill {bid} has neither a billingPeriod nor a billDate")
        rows.add(
            "bills",
            {
                "id": bid,
                "account_id": account,
                "period_start": start,
                "period_end": end,
                "amount": amount,
                "currency": currency,
                "state": text(item.get("state")) or text(item.get("status")),
                "issued_at": bill_date,
            },
        )
        return None


class Tmf635Connector(TmfConnector[Tmf635Options]):
    """Usage records from a TMF635 Usage Management API, incremental on usageDate."""

    type = "tmf635"
    Options = Tmf635Options
    api = "usageManagement"
    resource = "usage"
    cursor_field = "usageDate"
    stream = Stream(
        name="usage",
        kinds=("usage",),
        cursor_field="usageDate",
        description="TMF635 usage, incremental on usageDate",
    )

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        o = self.options
        uid = required_id(item, "usage")
        date = parse_time(item.get("usageDate"), "usageDate")
        if date is None:
            raise MappingError(f"usage {uid} has no usageDate")
        usage_type = text(item.get("usageType")) or text(dig(item, "usageSpecification.name"))
        if usage_type is None:
            raise MappingError(f"usage {uid} has no usageType")
        chars = {
            str(c.get("name", "")).lower(): c
            for c in as_list(item.get("usageCharacteristic"))
            if isinstance(c, dict)
        }
        quantity: float | None = None
        unit: str | None = text(dig(chars.get("unit"), "value"))
        for name in o.quantity_characteristics:
            c = chars.get(name.lower())
            if c is None or c.get("value") is None:
                continue
            try:
                quantity = float(c["value"])
            except (TypeError, ValueError):
                raise MappingError(
                    f"usage {uid}: usageCharacteristic {c.get('name')!r} is not a number: {c['value']!r}"[
                        :200
                    ]
                ) from None
            unit = text(c.get("unit")) or unit or (name.split("-", 1)[1] if "-" in name else None)
            break
        if quantity is None:
            quantity, unit = 1.0, unit or "event"  # a usage without a measured quantity counts once
        amount: float | None = None
        currency: str | None = None
        for rated in as_list(item.get("ratedProductUsage")):
            for name in ("taxIncludedAmount", "taxExcludedAmount", "bucketValueConvertedInAmount"):
                value, unit_of_money = money(dig(rated, name), f"ratedProductUsage.{name}")
                if value is not None:
                    amount = (amount or 0.0) + value
                    currency = currency or unit_of_money
                    break
        account = party_by_role(item.get("relatedParty"), o.account_roles)
        subscriber = party_by_role(item.get("relatedParty"), o.subscriber_roles)
        rows.add(
            "usage",
            {
                "id": uid,
                "subscriber_id": ref_id(subscriber) if subscriber else None,
                "account_id": ref_id(account) if account else None,
                "period_start": date,
                "usage_type": usage_type,
                "quantity": quantity,
                "unit": unit,
                "amount": amount,
                "currency": currency,
            },
        )
        return date
