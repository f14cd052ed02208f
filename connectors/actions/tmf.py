"""TMF action types: ``tmf621`` (open or update trouble tickets) and ``tmf642`` (ack, comment alarms)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import Field

from connectors.actions.base import Delivery, FatalError, Message
from connectors.actions.http_actions import (
    BaseUrl,
    HttpActionBase,
    HttpActionOptions,
    json_or_none,
    text_id,
)

__all__ = [
    "Tmf621TicketAction",
    "Tmf621TicketOptions",
    "Tmf642AlarmAction",
    "Tmf642AlarmOptions",
    "TmfActionOptions",
]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TmfActionOptions(HttpActionOptions):
    """Options every TMF action type takes."""

    #: Scheme, host and port of the API server, e.g. ``https://oss.example.com:8443``.
    base_url: BaseUrl
    #: Where the server mounts the API; each type has the TMF default.
    api_path: str


TmfOptionsT = TypeVar("TmfOptionsT", bound=TmfActionOptions)


class _TmfAction(HttpActionBase[TmfOptionsT]):
    def base_url(self) -> str:
        o = self.options
        path = o.api_path.strip("/")
        return o.base_url.rstrip("/") + (f"/{path}" if path else "")

    def _fail(self, problem: str) -> FatalError:
        return FatalError(f"action {self.name!r} ({self.type_name}): {problem}")


# --- TMF621 Trouble Ticket ------------------------------------------------------------------------


class Tmf621TicketOptions(TmfActionOptions):
    """Options of the ``tmf621`` action type."""

    api_path: str = "/tmf-api/troubleTicket/v4"
    #: The query parameter that finds tickets by the key, for the lookup before each create.
    lookup_param: str = Field(default="externalId", min_length=1)
    #: Also send the key as ``externalId``, the field TMF621 v4 has (``externalIdentifier`` is v5's),
    #: so a v4 server can find the ticket by it.
    send_external_id: bool = True
    #: ``owner`` of the ``externalIdentifier`` entry.
    owner: str = "vantage"
    #: TMF621 v4 requires a severity on create; this one is used when the message names none.
    default_severity: str | None = "Minor"
    default_ticket_type: str = "incident"


def carries_key(ticket: Any, key: str) -> bool:
    """Whether a ticket names ``key`` as its ``externalId`` or in one of its ``externalIdentifier``."""
    if not isinstance(ticket, dict):
        return False
    if ticket.get("externalId") == key:
        return True
    found = ticket.get("externalIdentifier")
    return isinstance(found, list) and any(isinstance(e, dict) and e.get("id") == key for e in found)


class Tmf621TicketAction(_TmfAction[Tmf621TicketOptions]):
    """Opens a TMF621 trouble ticket (``data["operation"] = "create"``, the default) or patches one.

    create: ``name`` is the subject, ``description`` the body; ``data`` may give ``severity``,
    ``priority``, ``ticket_type``, ``related`` (relatedEntity refs), ``related_party`` and ``notes``
    (texts or TMF Note objects). The key is stored as the ticket's external identifier and looked up
    before every create, so a repeat finds the ticket the first attempt opened instead of opening
    another. update: ``data["ticket_id"]`` and ``data["patch"]`` (a JSON merge patch).
    """

    type_name = "tmf621"
    Options = Tmf621TicketOptions
    channel = "ticket"

    def idempotent(self, message: Message) -> bool:
        # create: query-before-create; update: the same merge patch twice leaves the same ticket.
        return True

    def send(self, message: Message) -> Delivery:
        operation = message.data.get("operation", "create")
        if operation == "create":
            return self._create(message)
        if operation == "update":
            return self._update(message)
        raise self._fail(f"data.operation must be create or update, got {operation!r}"[:200])

    def check(self) -> None:
        self.request("GET", "troubleTicket", key=None, retrying=True, params={"limit": 1})

    def find(self, key: str) -> dict[str, Any] | None:
        """The ticket that carries ``key``, if the server has one."""
        response = self.request(
            "GET", "troubleTicket", key=None, retrying=True, params={self.options.lookup_param: key}
        )
        found = json_or_none(response)
        if not isinstance(found, list):
            # Without an answer to look in, creating could duplicate the ticket: stop here.
            raise self._fail(f"looking up tickets by {self.options.lookup_param} did not answer a JSON array")
        for ticket in found:
            if carries_key(ticket, key):
                return dict(ticket)
        return None

    def ticket(self, message: Message) -> dict[str, Any]:
        """The body of the create request for ``message``."""
        o = self.options
        data = message.data
        body: dict[str, Any] = {
            "name": message.subject,
            "description": message.body,
            "severity": data.get("severity") or o.default_severity,
            "priority": data.get("priority"),
            "ticketType": data.get("ticket_type") or o.default_ticket_type,
            "externalId": message.key if o.send_external_id else None,
            "externalIdentifier": [
                {"id": message.key, "owner": o.owner, "externalIdentifierType": "idempotencyKey"}
            ],
            "relatedEntity": data.get("related") or None,
            "relatedParty": data.get("related_party") or None,
            "note": self._notes(data.get("notes")),
            "@type": "TroubleTicket",
        }
        return {k: v for k, v in body.items() if v is not None}

    def _notes(self, notes: Any) -> list[dict[str, Any]] | None:
        if not notes:
            return None
        if isinstance(notes, str | dict):
            notes = [notes]
        if not isinstance(notes, list):
            raise self._fail("data.notes must be a text, a note or a list of them")
        out: list[dict[str, Any]] = []
        for note in notes:
            if isinstance(note, str):
                out.append({"text": note, "author": "Vantage", "date": _now_iso()})
            elif isinstance(note, dict):
                out.append(dict(note))
            else:
                raise self._fail(f"a note must be a text or an object, got {type(note).__name__}")
        return out

    def _create(self, message: Message) -> Delivery:
        existing = self.find(message.key)
        if existing is not None:
            return Delivery(reference=text_id(existing.get("id")), detail={"existing": True})
        # One attempt: after a timeout only a new lookup can tell whether the ticket was opened, and
        # the outbox's next try does that lookup.
        response = self.request(
            "POST", "troubleTicket", key=message.key, retrying=False, body=self.ticket(message)
        )
        answer = json_or_none(response)
        reference = text_id(answer.get("id")) if isinstance(answer, dict) else None
        return Delivery(reference=reference, detail={"status": response.status_code, "existing": False})

    def _update(self, message: Message) -> Delivery:
        ticket_id = text_id(message.data.get("ticket_id"))
        if ticket_id is None:
            raise self._fail("an update needs data.ticket_id")
        patch = message.data.get("patch")
        if not isinstance(patch, dict) or not patch:
            raise self._fail("an update needs data.patch, a non-empty mapping of fields to change")
        response = self.request(
            "PATCH",
            f"troubleTicket/{quote(ticket_id, safe='')}",
            key=message.key,
            retrying=True,
            body=patch,
            content_type="application/merge-patch+json",
        )
        return Delivery(reference=ticket_id, detail={"status": response.status_code})


# --- TMF642 Alarm Management ----------------------------------------------------------------------


class Tmf642AlarmOptions(TmfActionOptions):
    """Options of the ``tmf642`` action type."""

    api_path: str = "/tmf-api/alarmManagement/v4"
    #: ``ackSystemId`` / ``systemId`` sent with acknowledgements and comments.
    system_id: str = Field(default="vantage", min_length=1)
    #: The user named when the message names none (``data["user"]``).
    default_user: str = Field(default="vantage", min_length=1)


_TASKS = {"ack": "ackAlarms", "comment": "commentAlarms"}


class Tmf642AlarmAction(_TmfAction[Tmf642AlarmOptions]):
    """Acknowledges (``data["operation"] = "ack"``) or comments (``"comment"``, the body is the
    comment) the alarms in ``data["alarm_ids"]`` through TMF642's task resources, as ``data["user"]``.

    The reference is the task's id. Acknowledging twice leaves the alarms acknowledged; commenting
    twice adds the comment twice.
    """

    type_name = "tmf642"
    Options = Tmf642AlarmOptions
    channel = "alarm"

    def idempotent(self, message: Message) -> bool:
        return message.data.get("operation") == "ack"

    def check(self) -> None:
        self.request("GET", "alarm", key=None, retrying=True, params={"limit": 1})

    def task(self, message: Message) -> tuple[str, dict[str, Any]]:
        """The task resource and the body of the request for ``message``."""
        o = self.options
        data = message.data
        operation = data.get("operation")
        if operation not in _TASKS:
            raise self._fail(f"data.operation must be ack or comment, got {operation!r}"[:200])
        ids = data.get("alarm_ids")
        if isinstance(ids, str | int):
            ids = [ids]
        pattern = [{"id": text_id(a)} for a in ids] if isinstance(ids, list) else []
        if not pattern or any(p["id"] is None for p in pattern):
            raise self._fail("data.alarm_ids must be a non-empty list of alarm ids")
        user = text_id(data.get("user")) or o.default_user
        if operation == "ack":
            # TMF642 v4 names the field ackUserId (AckAlarms_Create requires it).
            return _TASKS[operation], {"ackUserId": user, "ackSystemId": o.system_id, "alarmPattern": pattern}
        comment = {"comment": message.body, "userId": user, "systemId": o.system_id, "time": _now_iso()}
        return _TASKS[operation], {"comment": comment, "alarmPattern": pattern}

    def send(self, message: Message) -> Delivery:
        resource, body = self.task(message)
        response = self.request(
            "POST", resource, key=message.key, retrying=self.idempotent(message), body=body
        )
        answer = json_or_none(response)
        detail: dict[str, Any] = {"status": response.status_code}
        reference: str | None = None
        if isinstance(answer, dict):
            reference = text_id(answer.get("id"))
            state = answer.get("state")
            if isinstance(state, str):
                detail["state"] = state
                if state == "terminatedWithError":
                    raise self._fail(f"the server ran the {resource} task {reference} and it ended in error")
        return Delivery(reference=reference, detail=detail)
