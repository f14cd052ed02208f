"""Receivers on 127.0.0.1 for every action type, so the demo and the tests see messages arrive."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope

from connectors.base import utcnow

__all__ = ["ALARM_API", "TICKET_API", "LoopbackSinks", "Received"]

log = logging.getLogger(__name__)

#: Where the sinks mount the TMF APIs: the action types' default ``api_path``.
TICKET_API = "/tmf-api/troubleTicket/v4"
ALARM_API = "/tmf-api/alarmManagement/v4"
#: Larger bodies are refused (413): a sink must not be made to hold what a sender pleases.
MAX_BODY_BYTES = 1024 * 1024
CHANNELS = ("email", "sms", "ticket", "alarm", "chat", "http")


@dataclass(frozen=True)
class Received:
    """One message as a sink received it. ``headers`` names are lower case; HTTP sinks add the
    pseudo-headers ``:method`` and ``:path``."""

    channel: str
    #: Naive UTC.
    at: datetime
    to: str | None
    subject: str | None
    body: str
    #: The id the sink gave it (ticket id, message id, Message-ID).
    reference: str
    #: The idempotency key it carried (Idempotency-Key, client_ref, externalId, X-Vantage-Key).
    key: str | None
    headers: dict[str, str] = field(default_factory=dict)
    #: The parsed JSON body (for mail: envelope sender and recipients).
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Answer:
    status: int
    body: Any
    received: Received | None = None


class _SmtpHandler:
    def __init__(self, sinks: LoopbackSinks) -> None:
        self._sinks = sinks

    async def handle_DATA(self, server: SMTP, state: Any, envelope: Envelope) -> str:
        status = self._sinks._take_failure("email")
        if status is not None:
            return f"{status} 4.3.0 try later" if status < 500 else f"{status} 5.7.1 refused"
        try:
            received = self._sinks._mail(envelope)
        except Exception:
            log.exception("loopback SMTP sink: could not read a message")
            return "451 4.3.0 the sink could not read the message"
        self._sinks._record(received)
        return "250 2.0.0 OK"


class _Controller(Controller):
    """aiosmtpd's controller, able to listen on port 0 (any free port)."""

    def _trigger_server(self) -> None:
        # The controller connects to its own port to finish starting; with port 0 that is the port
        # the system picked, known only once the server listens.
        sockets = getattr(self.server, "sockets", None)
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sinks: LoopbackSinks) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sinks = sinks
        super().__init__(address, _HttpHandler)


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "VantageLoopback/1"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("loopback HTTP sink: " + format, *args)

    def _handle(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            # The unread body would be taken for the next request: answer and hang up.
            self.close_connection = True
            status, reason = (400, "bad Content-Length") if length < 0 else (413, "body too large")
            self._write(_Answer(status, _problem(status, reason)))
            return
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            answer = self.server.sinks._route(method, self.path, headers, raw)
        except Exception:
            log.exception("loopback HTTP sink: %s %s failed", method, self.path)
            answer = _Answer(500, _problem(500, "the sink failed"))
        # Recorded before answering: once the sender has its answer, the message is in received().
        if answer.received is not None:
            self.server.sinks._record(answer.received)
        self._write(answer)

    def _write(self, answer: _Answer) -> None:
        data = json.dumps(answer.body).encode() if answer.body is not None else b""
        self.send_response(answer.status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _problem(status: int, reason: str) -> dict[str, str]:
    """A TMF-style error body (``code``, ``reason``), which the HTTP client shows in its message."""
    return {"code": str(status), "reason": reason}


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds") + "Z"


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = _merge_patch(out.get(name), value)
    return out


def _ticket_key(ticket: Mapping[str, Any]) -> str | None:
    if isinstance(ticket.get("externalId"), str):
        return str(ticket["externalId"])
    for ident in ticket.get("externalIdentifier") or []:
        if isinstance(ident, dict) and isinstance(ident.get("id"), str):
            return str(ident["id"])
    return None


def _carries(ticket: Mapping[str, Any], key: str) -> bool:
    if ticket.get("externalId") == key:
        return True
    idents = ticket.get("externalIdentifier") or []
    return any(isinstance(i, dict) and i.get("id") == key for i in idents)


def _shown_headers(headers: Mapping[str, str], method: str, path: str) -> dict[str, str]:
    out = {":method": method, ":path": path}
    for name, value in headers.items():
        # The scheme shows that a request was authenticated; the credential stays out of the record.
        out[name] = value.split(" ", 1)[0] + " ***" if name == "authorization" else value
    return out


class LoopbackSinks:
    """An SMTP server and an HTTP server on ``host`` that accept what every action type sends.

    HTTP routes: ``POST /sms`` (dedupes on Idempotency-Key or client_ref), the TMF621 collection
    under ``/tmf-api/troubleTicket/v4/troubleTicket`` (POST, GET ``?externalId=``, GET and PATCH
    ``/{id}``), TMF642 ``POST .../ackAlarms`` and ``.../commentAlarms`` (and an empty ``GET
    .../alarm``), ``POST /hook`` (and ``/hook/...``: chat webhooks have per-channel paths) and
    ``POST|PUT|PATCH /http/...``. Everything is kept in memory, up to ``keep`` of each kind.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        smtp_port: int = 0,
        http_port: int = 0,
        on_message: Callable[[Received], None] | None = None,
        keep: int = 1000,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.host = host
        self._smtp_port = smtp_port
        self._http_port = http_port
        self._on_message = on_message
        self._keep = keep
        self._lock = threading.RLock()
        self._received: deque[Received] = deque(maxlen=keep)
        self._failures: dict[str, deque[int]] = {}
        self._tickets: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._sms: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._ids = itertools.count(1)
        self._smtp: _Controller | None = None
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> LoopbackSinks:
        if self._http is not None:
            return self
        http = _HttpServer((self.host, self._http_port), self)
        try:
            smtp = _Controller(
                _SmtpHandler(self), hostname=self.host, port=self._smtp_port, server_hostname="localhost"
            )
            smtp.start()
        except BaseException:
            http.server_close()
            raise
        self._smtp, self._http = smtp, http
        self._http_thread = threading.Thread(
            target=http.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-http", daemon=True
        )
        self._http_thread.start()
        log.info("loopback sinks: SMTP on %s:%d, HTTP on %s", self.host, self.smtp_port, self.http_base_url)
        return self

    def stop(self) -> None:
        smtp, self._smtp = self._smtp, None
        http, self._http = self._http, None
        thread, self._http_thread = self._http_thread, None
        if http is not None:
            http.shutdown()
            http.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if smtp is not None:
            smtp.stop()

    def __enter__(self) -> LoopbackSinks:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- where they listen ---

    @property
    def smtp_port(self) -> int:
        if self._smtp is None:
            raise RuntimeError("the sinks are not started")
        return int(self._smtp.port)

    @property
    def http_port(self) -> int:
        if self._http is None:
            raise RuntimeError("the sinks are not started")
        return int(self._http.server_address[1])

    @property
    def http_base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}"

    def action_options(self) -> dict[str, dict[str, Any]]:
        """Options per action type that deliver to these sinks."""
        base = self.http_base_url
        return {
            "smtp": {
                "host": self.host,
                "port": self.smtp_port,
                "security": "none",
                "from_address": "noc@vantage.local",
                "from_name": "Vantage NOC",
            },
            "sms_http": {"base_url": base, "path": "/sms", "sender": "Vantage"},
            "tmf621": {"base_url": base, "api_path": TICKET_API},
            "tmf642": {"base_url": base, "api_path": ALARM_API},
            "webhook": {"url": f"{base}/hook", "format": "plain"},
            "http": {"base_url": base, "path": "/http/requests"},
        }

    # --- what arrived ---

    def received(self, channel: str | None = None) -> list[Received]:
        """What arrived, oldest first (newest last), at most ``keep`` messages."""
        with self._lock:
            found = list(self._received)
        return [r for r in found if channel is None or r.channel == channel]

    def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """The ticket as the TMF621 sink holds it now."""
        with self._lock:
            found = self._tickets.get(ticket_id)
            return json.loads(json.dumps(found)) if found is not None else None

    def fail_next(self, channel: str, status: int, times: int = 1) -> None:
        """Make the next ``times`` requests of ``channel`` fail with ``status``.

        For ``email`` the status is the SMTP reply to DATA: 4xx is transient, 5xx permanent.
        """
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
        if not 400 <= status <= 599:
            raise ValueError(f"a failure status is 400 to 599, got {status}")
        with self._lock:
            self._failures.setdefault(channel, deque()).extend([status] * times)

    # --- internals ---

    def _take_failure(self, channel: str) -> int | None:
        with self._lock:
            queue = self._failures.get(channel)
            return queue.popleft() if queue else None

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}-{next(self._ids):06d}"

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
        if self._on_message is not None:
            try:
                self._on_message(received)
            except Exception:
                log.exception(
                    "loopback sinks: on_message failed for %s %s", received.channel, received.reference
                )

    def _mail(self, envelope: Envelope) -> Received:
        content = envelope.original_content or envelope.content or b""
        raw = content.encode() if isinstance(content, str) else content
        mail = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(mail, EmailMessage)
        part = mail.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if isinstance(part, EmailMessage) else ""
        body = body.replace("\r\n", "\n")
        if body.endswith("\n"):
            body = body[:-1]  # set_content ends the text with a line break the sender did not write
        headers: dict[str, str] = {}
        for name, value in mail.items():
            lowered = name.lower()
            text = " ".join(str(value).split())  # unfolded: a long header arrives on two lines
            headers[lowered] = f"{headers[lowered]}, {text}" if lowered in headers else text
        message_id = headers.get("message-id") or f"<{self._next_id('MAIL')}@loopback>"
        key = headers.get("x-vantage-key")
        if key is None and message_id.endswith("@vantage>"):
            key = message_id[1 : -len("@vantage>")]
        return Received(
            channel="email",
            at=utcnow(),
            to=", ".join(envelope.rcpt_tos),
            subject=headers.get("subject"),
            body=body,
            reference=message_id,
            key=key,
            headers=headers,
            data={"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)},
        )

    @staticmethod
    def _channel(path: str) -> str | None:
        if path == "/sms":
            return "sms"
        if path.startswith(TICKET_API + "/"):
            return "ticket"
        if path.startswith(ALARM_API + "/"):
            return "alarm"
        if path == "/hook" or path.startswith("/hook/"):
            return "chat"
        if path == "/http" or path.startswith("/http/"):
            return "http"
        return None

    def _route(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Answer:
        parts = urlsplit(target)
        path = unquote(parts.path).rstrip("/") or "/"
        query = dict(parse_qsl(parts.query))
        channel = self._channel(path)
        if channel is None:
            return _Answer(404, _problem(404, f"nothing at {path}"))
        status = self._take_failure(channel)
        if status is not None:
            return _Answer(status, _problem(status, "scripted failure"))
        body: Any = None
        if method in ("POST", "PUT", "PATCH"):
            try:
                body = json.loads(raw)
            except ValueError:
                return _Answer(400, _problem(400, "the body is not JSON"))
        shown = _shown_headers(headers, method, parts.path)
        key = headers.get("idempotency-key")
        if channel == "sms" and method == "POST":
            return self._sms_message(body, shown, key)
        if channel == "ticket":
            return self._ticket(method, path[len(TICKET_API) :], query, body, shown, key)
        if channel == "alarm":
            return self._alarm(method, path[len(ALARM_API) :], body, shown, key)
        if channel == "chat" and method == "POST":
            return self._hook(body, shown, key)
        if channel == "http" and method in ("POST", "PUT", "PATCH"):
            return self._http_request(body, shown, key)
        return _Answer(405, _problem(405, f"{method} is not served at {path}"))

    def _sms_message(self, body: Any, headers: dict[str, str], key: str | None) -> _Answer:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("to"), str)
            or not isinstance(body.get("text"), str)
        ):
            return _Answer(400, _problem(400, "an SMS needs to and text"))
        key = key or (body["client_ref"] if isinstance(body.get("client_ref"), str) else None)
        with self._lock:
            if key is not None and key in self._sms:
                return _Answer(200, self._sms[key])
            reference = self._next_id("SM")
            answer = {"id": reference, "status": "accepted"}
            if key is not None:
                self._sms[key] = answer
                while len(self._sms) > self._keep:
                    self._sms.popitem(last=False)
        received = Received("sms", utcnow(), body["to"], None, body["text"], reference, key, headers, body)
        return _Answer(201, answer, received)

    def _ticket(
        self,
        method: str,
        rest: str,
        query: dict[str, str],
        body: Any,
        headers: dict[str, str],
        key: str | None,
    ) -> _Answer:
        if rest == "/troubleTicket":
            if method == "GET":
                wanted = query.get("externalId") or query.get("externalIdentifier.id")
                with self._lock:
                    found = [t for t in self._tickets.values() if wanted is None or _carries(t, wanted)]
                    found = json.loads(json.dumps(found))
                if "limit" in query and query["limit"].isdigit():
                    found = found[: int(query["limit"])]
                return _Answer(200, found)
            if method == "POST":
                return self._new_ticket(body, headers, key)
        elif rest.startswith("/troubleTicket/"):
            ticket_id = rest[len("/troubleTicket/") :]
            if method == "GET":
                found_one = self.ticket(ticket_id)
                return (
                    _Answer(404, _problem(404, f"no ticket {ticket_id}"))
                    if found_one is None
                    else _Answer(200, found_one)
                )
            if method == "PATCH":
                return self._patch_ticket(ticket_id, body, headers, key)
        return _Answer(405, _problem(405, f"{method} is not served at {TICKET_API}{rest}"))

    def _new_ticket(self, body: Any, headers: dict[str, str], key: str | None) -> _Answer:
        if not isinstance(body, dict) or not isinstance(body.get("description"), str):
            return _Answer(400, _problem(400, "a ticket needs a description"))
        ticket_id = self._next_id("TT")
        now = _iso(utcnow())
        ticket = {
            **body,
            "id": ticket_id,
            "href": f"{self.http_base_url}{TICKET_API}/troubleTicket/{ticket_id}",
            "status": body.get("status") or "acknowledged",
            "creationDate": now,
            "lastUpdate": now,
        }
        with self._lock:
            self._tickets[ticket_id] = ticket
            while len(self._tickets) > self._keep:
                self._tickets.popitem(last=False)
        received = Received(
            "ticket",
            utcnow(),
            None,
            ticket.get("name"),
            ticket["description"],
            ticket_id,
            _ticket_key(ticket) or key,
            headers,
            json.loads(json.dumps(ticket)),
        )
        return _Answer(201, ticket, received)

    def _patch_ticket(self, ticket_id: str, patch: Any, headers: dict[str, str], key: str | None) -> _Answer:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/merge-patch+json", "application/json"):
            return _Answer(
                415, _problem(415, f"PATCH takes application/merge-patch+json, not {content_type!r}")
            )
        if not isinstance(patch, dict):
            return _Answer(400, _problem(400, "a merge patch is a JSON object"))
        with self._lock:
            ticket = self._tickets.get(ticket_id)
            if ticket is None:
                return _Answer(404, _problem(404, f"no ticket {ticket_id}"))
            fixed: dict[str, Any] = {k: ticket[k] for k in ("id", "href", "creationDate") if k in ticket}
            ticket = {**_merge_patch(ticket, patch), **fixed, "lastUpdate": _iso(utcnow())}
            self._tickets[ticket_id] = ticket
            answer = json.loads(json.dumps(ticket))
        changed = ", ".join(sorted(patch))
        received = Received(
            "ticket",
            utcnow(),
            None,
            None,
            f"update of {ticket_id}: {changed}",
            ticket_id,
            key,
            headers,
            patch,
        )
        return _Answer(200, answer, received)

    def _alarm(self, method: str, rest: str, body: Any, headers: dict[str, str], key: str | None) -> _Answer:
        if method == "GET" and rest == "/alarm":
            return _Answer(200, [])
        if method != "POST" or rest not in ("/ackAlarms", "/commentAlarms"):
            return _Answer(405, _problem(405, f"{method} is not served at {ALARM_API}{rest}"))
        pattern = body.get("alarmPattern") if isinstance(body, dict) else None
        if not isinstance(pattern, list) or not pattern:
            return _Answer(400, _problem(400, "a task needs a non-empty alarmPattern"))
        ack = rest == "/ackAlarms"
        task_id = self._next_id("ACK" if ack else "CMT")
        now = _iso(utcnow())
        task = {
            **body,
            "id": task_id,
            "href": f"{self.http_base_url}{ALARM_API}{rest}/{task_id}",
            "state": "done",
        }
        if ack:
            task.update(ackTime=now, ackedAlarm=pattern)
            text = f"{len(pattern)} alarm(s) acknowledged by {body.get('ackUserId') or body.get('ackUser')}"
        else:
            comment = body.get("comment")
            if not isinstance(comment, dict) or not isinstance(comment.get("comment"), str):
                return _Answer(400, _problem(400, "a comment task needs comment.comment"))
            task["commentedAlarm"] = pattern
            text = comment["comment"]
        received = Received("alarm", utcnow(), None, rest.lstrip("/"), text, task_id, key, headers, body)
        return _Answer(201, task, received)

    def _hook(self, body: Any, headers: dict[str, str], key: str | None) -> _Answer:
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return _Answer(400, _problem(400, "a chat message needs text"))
        reference = self._next_id("HK")
        to = body.get("channel") if isinstance(body.get("channel"), str) else None
        subject = body.get("title") if isinstance(body.get("title"), str) else None
        received = Received("chat", utcnow(), to, subject, body["text"], reference, key, headers, body)
        return _Answer(200, {"ok": True, "id": reference}, received)

    def _http_request(self, body: Any, headers: dict[str, str], key: str | None) -> _Answer:
        reference = self._next_id("REQ")
        if isinstance(body, dict):
            subject = body.get("subject") if isinstance(body.get("subject"), str) else None
            text = body["text"] if isinstance(body.get("text"), str) else json.dumps(body, sort_keys=True)
            data = body
        else:
            subject, text, data = None, json.dumps(body), {"value": body}
        received = Received("http", utcnow(), None, subject, text, reference, key, headers, data)
        return _Answer(201, {"id": reference, "status": "accepted"}, received)
