"""Contract case for tmf678: the customer bill payload (empty billingPeriod, billed on billDate)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf678Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    bills = [ctx.tmf.json("customer_bill")]
    serve_listing(ctx.http, "/tmf-api/customerBillManagement/v4/customerBill", bills)
    return tmf_connector(Tmf678Connector, ctx.http, "contract-tmf678")
