"""Contract fixture for ``type: pm_xml``: a folder with one file of each 32.435 encoding."""

from __future__ import annotations

from connectors.base import Connector, ConnectorContext
from connectors.pm_xml import PmXmlConnector, PmXmlOptions
from tests.contract import ContractContext

_NS = "http://www.3gpp.org/ftp/specs/archive/32_series/32.435#measCollec"

_R_FORM = f"""<?xml version="1.0" encoding="UTF-8"?>
<measCollecFile xmlns="{_NS}">
  <fileHeader fileFormatVersion="32.435 V10.0"><measCollec beginTime="2026-01-01T10:00:00Z"/></fileHeader>
  <measData>
    <measInfo measInfoId="rrc">
      <granPeriod endTime="2026-01-01T10:15:00Z" duration="PT900S"/>
      <measType p="1">RRC.ConnEstab.Succ</measType>
      <measType p="2">RRC.ConnEstab.Att</measType>
      <measValue measObjLdn="ManagedElement=1,EUtranCellFDD=CELL-1">
        <r p="1">98</r><r p="2">100</r>
      </measValue>
    </measInfo>
  </measData>
</measCollecFile>
"""

_LIST_FORM = f"""<?xml version="1.0" encoding="UTF-8"?>
<measCollecFile xmlns="{_NS}">
  <fileHeader fileFormatVersion="32.435 V10.0"><measCollec beginTime="2026-01-01T10:15:00Z"/></fileHeader>
  <measData>
    <measInfo measInfoId="rrc">
      <granPeriod endTime="2026-01-01T10:30:00Z" duration="PT900S"/>
      <measTypes>RRC.ConnEstab.Succ RRC.ConnEstab.Att</measTypes>
      <measValue measObjLdn="ManagedElement=1,EUtranCellFDD=CELL-2"><measResults>7 9</measResults></measValue>
    </measInfo>
  </measData>
</measCollecFile>
"""


def build(ctx: ContractContext) -> Connector:
    folder = ctx.tmp_path / "pm"
    folder.mkdir()
    (folder / "a.xml").write_text(_R_FORM, encoding="utf-8")
    (folder / "b.xml").write_text(_LIST_FORM, encoding="utf-8")
    options = PmXmlOptions.model_validate(
        {
            "path": str(folder),
            "counters": [
                {"counter": "RRC.ConnEstab.Succ", "kpi": "rrc_success"},
                {"pattern": r"RRC\..*\.Att", "kpi": "rrc_attempts"},
            ],
            "entities": [{"pattern": r"EUtranCellFDD=(?P<id>[^,]+)", "entity_type": "cell"}],
        }
    )
    return PmXmlConnector(options, ConnectorContext("contract_pm"))
