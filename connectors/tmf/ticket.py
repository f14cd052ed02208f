"""TMF621 Trouble Ticket: tickets with their notes and status history, pulled and pushed."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import Field

from connectors.base import JSONDict, Stream
from connectors.tmf._base import (
    MappingError,
    Rows,
    TmfPushConnector,
    TmfPushOptions,
    as_list,
    dig,
    parse_time,
    party_by_role,
    ref_id,
    required_id,
    text,
    text_id,
)


class Tmf621Options(TmfPushOptions):
    """Options of the TMF621 connector."""

    #: relatedParty roles that name the ticket's account (compared case-insensitively).
    account_roles: list[str] = Field(default_factory=lambda: ["customer", "account", "billingAccount"])
    #: relatedParty roles that name the subscriber (line) the ticket is about.
    subscriber_roles: list[str] = Field(default_factory=lambda: ["subscriber", "user", "serviceUser"])


class Tmf621Connector(TmfPushConnector[Tmf621Options]):
    """Trouble tickets from a TMF621 API: ``GET /troubleTicket`` plus hub notifications."""

    type = "tmf621"
    Options = Tmf621Options
    api = "troubleTicket"
    resource = "troubleTicket"
    cursor_field = "lastUpdate"
    stream = Stream(
        name="tickets",
        kinds=("tickets", "ticket_notes", "ticket_status_changes"),
        cursor_field="lastUpdate",
        description="TMF621 trouble tickets, notes and status history, incremental on lastUpdate",
    )
    listeners = (
        "troubleTicketCreateEvent",
        "troubleTicketStatusChangeEvent",
        "troubleTicketAttributeValueChangeEvent",
        "troubleTicketResolvedEvent",
    )
    event_key = "troubleTicket"

    def map_item(self, item: JSONDict, rows: Rows, *, when: datetime | None = None) -> datetime | None:
        record = self._ticket(item, when)
        partial = record["created_at"] is None
        record = self.merged(record["id"], record, "updated_at")
        if record["created_at"] is None or record["status"] is None:
            missing = "creationDate" if record["created_at"] is None else "status"
            raise MappingError(
                f"ticket {record['id']} has no {missing}"
                + (" (a partial event for a ticket not seen before)" if partial else "")
            )
        self.remember(record["id"], record, "updated_at")
        rows.add("tickets", record)
        self._notes(item, record, rows)
        self._history(item, record, rows)
        updated: datetime | None = record["updated_at"]
        return updated

    def _ticket(self, item: JSONDict, when: datetime | None) -> JSONDict:
        o = self.options
        ticket_id = required_id(item, "ticket")
        created = parse_time(item.get("creationDate"), "creationDate")
        updated = (
            parse_time(item.get("lastUpdate"), "lastUpdate")
            or when
            or parse_time(item.get("statusChangeDate"), "statusChangeDate")
            or created
        )
        if updated is None:
            raise MappingError(f"ticket {ticket_id} has no time (lastUpdate, creationDate, timeOcurred)")
        channel = item.get("channel")
        account = party_by_role(item.get("relatedParty"), o.account_roles)
        subscriber = party_by_role(item.get("relatedParty"), o.subscriber_roles)
        return {
            "id": ticket_id,
            "account_id": ref_id(account) if account else None,
            "subscriber_id": ref_id(subscriber) if subscriber else None,
            "incident_id": None,
            "status": text(item.get("status")),
            "channel": text(channel.get("name")) if isinstance(channel, dict) else text(channel),
            "category": text(item.get("ticketType")),
            "priority": text(item.get("priority")),
            "subject": text(item.get("name")),
            "description": text(item.get("description")),
            "created_at": created,
            "updated_at": updated,
            "resolved_at": parse_time(item.get("resolutionDate"), "resolutionDate"),
        }

    def _notes(self, item: JSONDict, ticket: JSONDict, rows: Rows) -> None:
        for note in as_list(item.get("note")):
            if not isinstance(note, dict) or not text(note.get("text")):
                rows.reject("ticket_notes", note, f"ticket {ticket['id']}: a note without text", ticket["id"])
                continue
            try:
                created = parse_time(note.get("date"), "note.date") or ticket["created_at"]
            except MappingError as err:
                rows.reject("ticket_notes", note, f"ticket {ticket['id']}: {err}", ticket["id"])
                continue
            note_id = text_id(note.get("id"))
            if note_id is None:
                # Without an id a note is known by what it says, so a re-read finds the same row.
                digest = f"{note.get('date')}|{note.get('author')}|{note.get('text')}".encode()
                note_id = hashlib.sha1(digest, usedforsecurity=False).hexdigest()[:16]
            rows.add(
                "ticket_notes",
                {
                    "id": f"{ticket['id']}:{note_id}",
                    "ticket_id": ticket["id"],
                    "author": text(note.get("author")),
                    "text": text(note.get("text")),
                    "created_at": created,
                },
            )

    def _history(self, item: JSONDict, ticket: JSONDict, rows: Rows) -> None:
        seen: set[tuple[datetime, str]] = set()
        for change in as_list(item.get("statusChange")):
            status = text(dig(change, "status"))
            try:
                at = parse_time(dig(change, "changeDate"), "statusChange.changeDate")
            except MappingError as err:
                rows.reject("ticket_status_changes", change, f"ticket {ticket['id']}: {err}", ticket["id"])
                continue
            if status is None or at is None:
                rows.reject(
                    "ticket_status_changes",
                    change,
                    f"ticket {ticket['id']}: a statusChange without status or changeDate",
                    ticket["id"],
                )
                continue
            seen.add((at, status))
        current = parse_time(item.get("statusChangeDate"), "statusChangeDate")
        if current is not None and text(item.get("status")):
            seen.add((current, str(text(item.get("status")))))
        for at, status in sorted(seen):
            rows.add("ticket_status_changes", {"ticket_id": ticket["id"], "changed_at": at, "status": status})
