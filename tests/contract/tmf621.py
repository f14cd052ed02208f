"""Contract case for tmf621: the reference trouble ticket (status "Pending", a note, a status change)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf621Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import reference, serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    tickets = [reference("tmf/TMF621_Trouble_Ticket/TroubleTicket.example.json")]
    serve_listing(ctx.http, "/tmf-api/troubleTicket/v4/troubleTicket", tickets)
    return tmf_connector(Tmf621Connector, ctx.http, "contract-tmf621")
