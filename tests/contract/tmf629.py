"""Contract case for tmf629: the customer payload as an account."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf629Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    customers = [ctx.tmf.json("customer")]
    serve_listing(ctx.http, "/tmf-api/customerManagement/v4/customer", customers)
    return tmf_connector(Tmf629Connector, ctx.http, "contract-tmf629")
