"""Contract case for tmf639: the resource payload plus a cell and a router around it."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf639Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    resources = [
        ctx.tmf.json("resource"),
        {"id": "44", "name": "router-44", "category": "router"},
        {
            "id": "C1",
            "name": "cell-1",
            "@type": "EUtranCell",
            "resourceRelationship": [{"relationshipType": "dependsOn", "resource": {"id": "44"}}],
        },
    ]
    serve_listing(ctx.http, "/tmf-api/resourceInventoryManagement/v4/resource", resources)
    return tmf_connector(Tmf639Connector, ctx.http, "contract-tmf639")
