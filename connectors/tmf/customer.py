"""TMF629 Customer: accounts with segment, VIP flag, account manager and contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from connectors.base import JSONDict, Stream
from connectors.tmf._base import (
    Rows,
    TmfConnector,
    TmfOptions,
    as_list,
    dig,
    party_by_role,
    ref_id,
    required_id,
    text,
    truthy,
)

DEFAULT_SEGMENT_MAP = {
    "consumer": "consumer",
    "residential": "consumer",
    "individual": "consumer",
    "retail": "consumer",
    "smb": "smb",
    "sme": "smb",
    "smallbusiness": "smb",
    "business": "smb",
    "soho": "smb",
    "enterprise": "enterprise",
    "corporate": "enterprise",
    "largeaccount": "enterprise",
    "wholesale": "enterprise",
    "government": "enterprise",
}


class Tmf629Options(TmfOptions):
    """Options of the TMF629 connector: where segment, VIP flag and contract terms are found."""

    #: Where the segment is read, first found wins: ``characteristic:<name>`` or a dotted field path.
    segment_from: list[str] = Field(
        default_factory=lambda: [
            "characteristic:segment",
            "customerRank",
            "category",
            "engagedParty.@referredType",
        ]
    )
    #: Source value (lower case, no spaces) -> consumer / smb / enterprise.
    segment_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_SEGMENT_MAP))
    default_segment: str = "consumer"
    #: Characteristics whose true value (true/yes/1) makes the account VIP ...
    vip_characteristics: list[str] = Field(default_factory=lambda: ["vip", "isVip"])
    #: ... and segment/rank values that do.
    vip_values: list[str] = Field(default_factory=lambda: ["vip", "gold", "platinum"])
    account_manager_roles: list[str] = Field(
        default_factory=lambda: ["accountManager", "salesRepresentative", "keyAccountManager"]
    )
    #: Characteristic name -> canonical column for contract terms.
    contract_characteristics: dict[str, str] = Field(
        default_factory=lambda: {
            "slaRestoreMinutes": "sla_restore_minutes",
            "penaltyPerHour": "penalty_per_hour",
            "contractEnd": "contract_end",
        }
    )


def _norm(value: Any) -> str:
    return str(value or "").strip().lower().replace(" ", "").replace("_", "").replace("-", "")


def _characteristics(item: JSONDict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in as_list(item.get("characteristic")):
        if isinstance(c, dict) and c.get("name") is not None:
            out.setdefault(_norm(c["name"]), c.get("value"))
    return out


#: MediumCharacteristic fields of a postal address, in the order an address is written.
_ADDRESS_PARTS = ("street1", "street2", "postCode", "city", "stateOrProvince", "country")


def _postal_address(ch: dict[str, Any]) -> str | None:
    """``15 Rue des Canards, 75014 Paris, France`` from a postal contact medium; None when empty."""
    street = ", ".join(t for t in (text(ch.get("street1")), text(ch.get("street2"))) if t)
    town = " ".join(t for t in (text(ch.get("postCode")), text(ch.get("city"))) if t)
    parts = [p for p in (street, town, text(ch.get("stateOrProvince")), text(ch.get("country"))) if p]
    return ", ".join(parts) or None


class Tmf629Connector(TmfConnector[Tmf629Options]):
    """Customers from a TMF629 Customer Management API, as accounts."""

    type = "tmf629"
    Options = Tmf629Options
    api = "customerManagement"
    resource = "customer"
    stream = Stream(
        name="customers", kinds=("accounts",), description="TMF629 customers as accounts (full read)"
    )

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        o = self.options
        cid = required_id(item, "customer")
        chars = _characteristics(item)
        raw_segment: str | None = None
        for source in o.segment_from:
            value = (
                chars.get(_norm(source.split(":", 1)[1]))
                if source.startswith("characteristic:")
                else dig(item, source)
            )
            if text(value) is not None:
                raw_segment = _norm(value)
                break
        segment_map = {_norm(k): v for k, v in o.segment_map.items()}
        segment = segment_map.get(raw_segment or "", o.default_segment)
        vip = any(truthy(chars.get(_norm(n))) for n in o.vip_characteristics) or (
            raw_segment is not None and raw_segment in {_norm(v) for v in o.vip_values}
        )
        manager = party_by_role(item.get("relatedParty"), o.account_manager_roles)
        email = phone = address = None
        media = sorted(
            (m for m in as_list(item.get("contactMedium")) if isinstance(m, dict)),
            key=lambda m: not truthy(m.get("preferred")),
        )
        for m in media:
            kind = _norm(m.get("mediumType"))
            ch: dict[str, Any] = m["characteristic"] if isinstance(m.get("characteristic"), dict) else {}
            if email is None and ("email" in kind or ch.get("emailAddress")):
                email = text(ch.get("emailAddress"))
            if (
                phone is None
                and ("phone" in kind or "mobile" in kind or "telephone" in kind)
                and ch.get("phoneNumber")
            ):
                phone = text(ch.get("phoneNumber"))
            postal = ("address" in kind and "email" not in kind) or any(ch.get(k) for k in _ADDRESS_PARTS)
            if address is None and postal:
                address = _postal_address(ch)
        party: dict[str, Any] = item["engagedParty"] if isinstance(item.get("engagedParty"), dict) else {}
        record: JSONDict = {
            "id": cid,
            "name": text(item.get("name")) or text(party.get("name")) or cid,
            "segment": segment,
            "vip": vip,
            "account_manager": (text(manager.get("name")) or ref_id(manager)) if manager else None,
            "sla_restore_minutes": None,
            "penalty_per_hour": None,
            "contract_end": None,
            "contact_name": text(party.get("name"))
            if _norm(party.get("@referredType")) == "individual"
            else None,
            "contact_email": email,
            "contact_phone": phone,
            "contact_address": address,
        }
        for name, column in o.contract_characteristics.items():
            value = chars.get(_norm(name))
            if value is not None and column in record:
                record[column] = value  # typed and range-checked by ingest validation
        rows.add("accounts", record)
        return None
