"""Contract case for tmf638: the service payload with its supporting resources."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf638Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    services = [ctx.tmf.json("service")]
    serve_listing(ctx.http, "/tmf-api/serviceInventory/v4/service", services)
    return tmf_connector(Tmf638Connector, ctx.http, "contract-tmf638")
