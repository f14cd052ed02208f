"""Contract case for tmf638: the reference service with its supporting resources."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf638Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import reference, serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    services = [reference("tmf/TMF638_Service_Inventory/Service.example.json")]
    serve_listing(ctx.http, "/tmf-api/serviceInventory/v4/service", services)
    return tmf_connector(Tmf638Connector, ctx.http, "contract-tmf638")
