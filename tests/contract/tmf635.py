"""Contract case for tmf635: the usage payload (a rated usage with a duration)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf635Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    usage = [ctx.tmf.json("usage")]
    serve_listing(ctx.http, "/tmf-api/usageManagement/v4/usage", usage)
    return tmf_connector(Tmf635Connector, ctx.http, "contract-tmf635")
