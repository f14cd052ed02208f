"""Contract case for tmf621: the trouble ticket payload (with notes and status changes)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf621Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    tickets = [ctx.tmf.json("trouble_ticket")]
    serve_listing(ctx.http, "/tmf-api/troubleTicket/v4/troubleTicket", tickets)
    return tmf_connector(Tmf621Connector, ctx.http, "contract-tmf621")
