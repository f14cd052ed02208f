"""TMF642 Alarm Management: alarms pulled incrementally and pushed by the source's hub."""

from __future__ import annotations

from datetime import datetime

from connectors.base import JSONDict, Stream
from connectors.tmf._base import (
    MappingError,
    Rows,
    TmfPushConnector,
    TmfPushOptions,
    parse_time,
    ref_id,
    required_id,
    text,
    text_id,
)

KIND = "alarms"


class Tmf642Options(TmfPushOptions):
    """Options of the TMF642 connector (all of them shared with every TMF connector)."""


def map_alarm(alarm: JSONDict, *, when: datetime | None = None) -> JSONDict:
    """The canonical fields an alarm payload carries; absent ones are None (fallbacks come later)."""
    alarm_id = required_id(alarm, "alarm")
    severity_raw = alarm.get("perceivedSeverity")
    if severity_raw is not None and not isinstance(severity_raw, str):
        raise MappingError(f"perceivedSeverity: expected text, got {severity_raw!r}"[:200])
    severity = severity_raw.strip().lower() if severity_raw else None
    state = text(alarm.get("state"))
    raised = parse_time(alarm.get("alarmRaisedTime"), "alarmRaisedTime")
    changed = parse_time(alarm.get("alarmChangedTime"), "alarmChangedTime")
    cleared_at = parse_time(alarm.get("alarmClearedTime"), "alarmClearedTime") or parse_time(
        alarm.get("clearedTime"), "clearedTime"
    )
    obj = alarm.get("alarmedObject")
    obj_id = ref_id(obj) if isinstance(obj, dict) else text_id(obj)
    affecting = alarm.get("serviceAffecting")
    if affecting is None:
        affecting = alarm.get("isServiceAffecting")
    changed = changed or when or raised
    if changed is None:
        raise MappingError(
            "no time in the alarm or its event (alarmChangedTime, timeOcurred/timeOccurred, "
            "eventTime, alarmRaisedTime)"
        )
    cleared = (state or "").lower() == "cleared" or severity == "cleared" or cleared_at is not None
    return {
        "id": alarm_id,
        "resource_id": obj_id,
        "alarmed_object": obj_id,
        "alarmed_object_type": text(alarm.get("alarmedObjectType")),
        "severity": severity,
        "state": "cleared" if cleared else state,
        "ack_state": text(alarm.get("ackState")),
        "alarm_type": text(alarm.get("alarmType")),
        "probable_cause": text(alarm.get("probableCause")),
        "specific_problem": text(alarm.get("specificProblem")),
        "service_affecting": affecting,
        "raised_at": raised,
        "changed_at": changed,
        "cleared_at": (cleared_at or changed) if cleared else None,
    }


def complete(record: JSONDict) -> JSONDict:
    """Fill what an alarm row needs and a payload may lack: state, severity, raise time."""
    out = dict(record)
    cleared = out.get("state") == "cleared"
    if cleared:
        out["severity"] = "cleared"
        out["cleared_at"] = out.get("cleared_at") or out["changed_at"]
    else:
        out["cleared_at"] = None  # a re-raise after a clear is active again
        out["state"] = out.get("state") or "raised"
        out["severity"] = out.get("severity") or "indeterminate"
    out["raised_at"] = out.get("raised_at") or out["changed_at"]
    return out


class Tmf642Connector(TmfPushConnector[Tmf642Options]):
    """Alarms from a TMF642 Alarm Management API: ``GET /alarm`` plus hub notifications."""

    type = "tmf642"
    Options = Tmf642Options
    api = "alarmManagement"
    resource = "alarm"
    cursor_field = "alarmChangedTime"
    stream = Stream(
        name="alarms",
        kinds=(KIND,),
        cursor_field="alarmChangedTime",
        description="TMF642 alarms, incremental on alarmChangedTime",
    )
    listeners = (
        "alarmCreateEvent",
        "alarmAttributeValueChangeEvent",
        "alarmStateChangeEvent",
        "alarmDeleteEvent",
    )
    event_key = "alarm"

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        record = complete(map_alarm(item, when=when))
        self.remember(record["id"], record, "changed_at")  # completes later partial notifications
        rows.add(KIND, record)
        changed: datetime | None = record["changed_at"]
        return changed

    def map_event(self, name: str, item: JSONDict, rows: Rows, *, when: datetime | None) -> None:
        fields = map_alarm(item, when=when)
        if name == "alarmDeleteEvent" and fields["state"] != "cleared":
            # A deleted alarm is gone from the source's active list: nobody needs to act on it any more.
            fields["state"] = "cleared"
            fields["cleared_at"] = fields["changed_at"]
        record = complete(self.merged(fields["id"], fields, "changed_at"))
        self.remember(record["id"], record, "changed_at")
        rows.add(KIND, record)
