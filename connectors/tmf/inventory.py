"""TMF639 Resource and TMF638 Service Inventory: the topology resource -> cell -> service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import Field

from connectors.base import ConnectorContext, ConnectorOptions, JSONDict, Stream
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
)

#: Fields of a resource (or a reference to one) that may say it is a cell.
DEFAULT_CELL_FIELDS = [
    "category",
    "@type",
    "@referredType",
    "resourceSpecification.name",
    "resourceSpecification.@type",
    "resourceSpecification.@referredType",
]
#: A value names a cell when it equals or ends with one of these (case-insensitive): EUtranCell, NRCell...
DEFAULT_CELL_MARKERS = ["cell", "celldu", "cellcu"]

#: How a related resource stands to this one, by relationshipType (lower case, no spaces):
#: "parent" means it feeds this one (an alarm on it reaches this one), "child" the reverse.
DEFAULT_RELATIONSHIPS: dict[str, Literal["parent", "child"]] = {
    "contains": "child",
    "iscontainedin": "parent",
    "requires": "parent",
    "dependson": "parent",
    "dependenton": "parent",
    "issupportedby": "parent",
    "uses": "parent",
    "relieson": "parent",
    "supports": "child",
    "isrequiredby": "child",
    "serves": "child",
    "feeds": "child",
    "parent": "parent",
    "child": "child",
}


class InventoryOptions(TmfOptions):
    """How a resource is recognised as a cell."""

    cell_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_CELL_FIELDS))
    cell_markers: list[str] = Field(default_factory=lambda: list(DEFAULT_CELL_MARKERS))


class Tmf639Options(InventoryOptions):
    """Options of the TMF639 connector."""

    relationships: dict[str, Literal["parent", "child"]] = Field(
        default_factory=lambda: dict(DEFAULT_RELATIONSHIPS)
    )
    #: What an unknown relationshipType means.
    unknown_relationship: Literal["parent", "child"] = "parent"


class Tmf638Options(InventoryOptions):
    """Options of the TMF638 connector."""

    account_roles: list[str] = Field(
        default_factory=lambda: ["customer", "account", "billingAccount", "owner"]
    )
    subscriber_roles: list[str] = Field(default_factory=lambda: ["subscriber", "user", "serviceUser"])


def _characteristic(item: JSONDict, *names: str) -> str | None:
    wanted = {n.lower() for n in names}
    for c in as_list(item.get("characteristic")) + as_list(item.get("resourceCharacteristic")):
        if isinstance(c, dict) and str(c.get("name", "")).lower() in wanted:
            found = text(c.get("value"))
            if found is not None:
                return found
    return None


InventoryOptionsT = TypeVar("InventoryOptionsT", bound=InventoryOptions)


class _Inventory(TmfConnector[InventoryOptionsT]):
    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        super().__init__(options, context)
        self._cells: set[str] = set()
        self._edges: list[tuple[str, str]] = []

    def is_cell(self, obj: Any) -> bool:
        o = self.options
        markers = [m.lower() for m in o.cell_markers]
        for name in o.cell_fields:
            value = dig(obj, name)
            if isinstance(value, str):
                v = value.strip().lower().replace(" ", "").replace("_", "")
                if any(v == m or v.endswith(m) for m in markers):
                    return True
        return False


class Tmf639Connector(_Inventory[Tmf639Options]):
    """Resources and cells from a TMF639 Resource Inventory, with the edges between them."""

    type = "tmf639"
    Options = Tmf639Options
    api = "resourceInventoryManagement"
    resource = "resource"
    stream = Stream(
        name="resources",
        kinds=("resources", "cells", "topology_edges"),
        description="TMF639 resources and cells (full read) and their resourceRelationship edges",
    )

    def read(self, stream: Stream, state: JSONDict) -> Any:
        self._cells, self._edges = set(), []
        return super().read(stream, state)

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        o = self.options
        rid = required_id(item, "resource")
        name = text(item.get("name")) or text(item.get("value")) or rid
        place = next((p for p in as_list(item.get("place")) if isinstance(p, dict) and ref_id(p)), None)
        site_id = ref_id(place) if place else None
        if self.is_cell(item):
            self._cells.add(rid)
            rows.add(
                "cells",
                {
                    "id": rid,
                    "site_id": site_id,
                    "name": name,
                    "technology": _characteristic(item, "technology", "rat", "radioAccessTechnology"),
                    "band": _characteristic(item, "band", "frequencyBand"),
                },
            )
        else:
            maker = party_by_role(item.get("relatedParty"), ["manufacturer", "vendor"])
            rows.add(
                "resources",
                {
                    "id": rid,
                    "site_id": site_id,
                    "name": name,
                    "kind": text(item.get("category")) or text(item.get("@type")),
                    "vendor": _characteristic(item, "vendor", "manufacturer")
                    or (text(maker.get("name")) or ref_id(maker) if maker else None),
                },
            )
        for rel in as_list(item.get("resourceRelationship")):
            if not isinstance(rel, dict) or not rel:
                continue  # the reference examples carry an empty {} placeholder
            other = rel.get("resource")
            other_id = ref_id(other)
            if other_id is None:
                rows.reject(
                    "topology_edges",
                    rel,
                    f"resource {rid}: a resourceRelationship without a resource id",
                    rid,
                )
                continue
            kind = str(rel.get("relationshipType") or rel.get("type") or "").lower().replace(" ", "")
            side = o.relationships.get(kind, o.unknown_relationship)
            if self.is_cell(other):
                self._cells.add(other_id)
            self._edges.append((other_id, rid) if side == "parent" else (rid, other_id))
        for ref in as_list(item.get("supportingResource")):
            other_id = ref_id(ref)
            if other_id is not None:
                if self.is_cell(ref):
                    self._cells.add(other_id)
                self._edges.append((other_id, rid))
        return None

    def finish(self, rows: Rows) -> None:
        # Types are known only once every resource is read: a cell may be listed after its router.
        for parent, child in dict.fromkeys(self._edges):
            rows.add(
                "topology_edges",
                {
                    "parent_type": "cell" if parent in self._cells else "resource",
                    "parent_id": parent,
                    "child_type": "cell" if child in self._cells else "resource",
                    "child_id": child,
                },
            )


class Tmf638Connector(_Inventory[Tmf638Options]):
    """Services from a TMF638 Service Inventory, with edges from their supporting resources and cells."""

    type = "tmf638"
    Options = Tmf638Options
    api = "serviceInventory"
    resource = "service"
    stream = Stream(
        name="services",
        kinds=("services", "topology_edges"),
        description="TMF638 services (full read) and supportingResource edges",
    )

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        o = self.options
        sid = required_id(item, "service")
        account = party_by_role(item.get("relatedParty"), o.account_roles)
        subscriber = party_by_role(item.get("relatedParty"), o.subscriber_roles)
        rows.add(
            "services",
            {
                "id": sid,
                "subscriber_id": ref_id(subscriber) if subscriber else None,
                "account_id": ref_id(account) if account else None,
                "name": text(item.get("name")) or sid,
                "kind": text(item.get("serviceType"))
                or text(item.get("category"))
                or text(dig(item, "serviceSpecification.name")),
                "status": text(item.get("state")),
            },
        )
        for ref in as_list(item.get("supportingResource")):
            rid = ref_id(ref)
            if rid is None:
                rows.reject("topology_edges", ref, f"service {sid}: a supportingResource without an id", sid)
                continue
            rows.add(
                "topology_edges",
                {
                    "parent_type": "cell" if self.is_cell(ref) else "resource",
                    "parent_id": rid,
                    "child_type": "service",
                    "child_id": sid,
                },
            )
        return None
