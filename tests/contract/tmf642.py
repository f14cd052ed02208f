"""Contract case for tmf642: the alarm payload plus the second alarm of the clear task."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf642Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    alarms = [ctx.tmf.json("alarm")]
    alarms += ctx.tmf.json("clear_alarms")["clearedAlarm"][1:]
    serve_listing(ctx.http, "/tmf-api/alarmManagement/v4/alarm", alarms)
    return tmf_connector(Tmf642Connector, ctx.http, "contract-tmf642")
