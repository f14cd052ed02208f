"""Contract case for tmf635: the reference usage record (voicemail retrieval, 12 seconds)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf635Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import reference, serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    usage = [reference("tmf/TMF635_Usage/Usage.example.json")]
    serve_listing(ctx.http, "/tmf-api/usageManagement/v4/usage", usage)
    return tmf_connector(Tmf635Connector, ctx.http, "contract-tmf635")
