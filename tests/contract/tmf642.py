"""Contract case for tmf642: the reference alarm plus the two alarms of the clear example."""

from __future__ import annotations

from connectors.base import Connector
from connectors.tmf import Tmf642Connector
from tests.contract import ContractContext
from tests.contract.tmf_common import reference, serve_listing, tmf_connector


def build(ctx: ContractContext) -> Connector:
    alarms = [reference("tmf/TMF642_Alarm/Alarm.example.json")]
    alarms += reference("tmf/TMF642_Alarm/ClearAlarms.example.json")["clearedAlarm"][1:]
    serve_listing(ctx.http, "/tmf-api/alarmManagement/v4/alarm", alarms)
    return tmf_connector(Tmf642Connector, ctx.http, "contract-tmf642")
