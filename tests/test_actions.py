"""Outbound action types against the loopback sinks: real SMTP and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import ValidationError

from connectors.actions import (
    ACTION_TYPES,
    Action,
    Delivery,
    FatalError,
    Message,
    RetriableError,
    build_action,
    get_action_class,
)
from connectors.actions.email import SmtpAction
from connectors.actions.http_actions import HttpEndpointAction, SmsHttpAction, WebhookAction
from connectors.actions.loopback import LoopbackSinks, Received
from connectors.actions.tmf import Tmf621TicketAction, Tmf642AlarmAction

KEY = "0123456789abcdef" * 4
FAST = {"attempts": 3, "backoff_initial_s": 0, "backoff_max_s": 0}
TOKEN = "tok-3x4mpl3-never-shown"
PASSWORD = "pa55-w0rd-never-shown"
BILLING = "https://billing.example.com"


@pytest.fixture
def sinks() -> Iterator[LoopbackSinks]:
    with LoopbackSinks() as started:
        yield started


def key(n: int) -> str:
    return f"{n:032x}"


def message(
    data: dict[str, Any] | None = None,
    *,
    k: str = KEY,
    to: str | None = None,
    subject: str | None = "Cell 12 down",
    body: str = "Site 12 lost power.\nRestoration in progress.",
) -> Message:
    return Message(key=k, to=to, subject=subject, body=body, data=data or {})


def action(sinks: LoopbackSinks, type_name: str, environ: dict[str, str] | None = None, **extra: Any) -> Any:
    options = sinks.action_options()[type_name]
    if type_name != "smtp":
        options["retry"] = FAST
    return build_action(type_name, {**options, **extra}, name=f"test-{type_name}", environ=environ or {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: every request times out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


# --- registry and options -------------------------------------------------------------------------


def test_registry_lists_every_type_and_builds_them(sinks: LoopbackSinks) -> None:
    assert set(ACTION_TYPES) == {"smtp", "sms_http", "webhook", "http", "tmf621", "tmf642"}
    channels = {name: cls.channel for name, cls in ACTION_TYPES.items()}
    assert channels == {
        "smtp": "email",
        "sms_http": "sms",
        "webhook": "chat",
        "http": "http",
        "tmf621": "ticket",
        "tmf642": "alarm",
    }
    for type_name, options in sinks.action_options().items():
        built = build_action(type_name, options, name="n")
        assert isinstance(built, get_action_class(type_name))
        assert built.type_name == type_name and built.name == "n"
        built.close()


def test_unknown_type_is_a_key_error_listing_the_known_ones() -> None:
    with pytest.raises(KeyError) as err:
        get_action_class("pager")
    assert "pager" in str(err.value) and "smtp" in str(err.value) and "tmf621" in str(err.value)
    with pytest.raises(KeyError, match="known: http, sms_http, smtp"):
        build_action("fax", {}, name="n")


def test_options_refuse_unknown_keys_and_bad_env_names() -> None:
    base = {"host": "mail.example.com", "from_address": "noc@example.com"}
    with pytest.raises(ValidationError, match="extra"):
        build_action("smtp", {**base, "hots": "x"}, name="n")
    with pytest.raises(ValidationError, match="pattern"):
        build_action("smtp", {**base, "username_env": "smtp-user", "password_env": "SMTP_PW"}, name="n")
    with pytest.raises(ValidationError, match="both or neither"):
        build_action("smtp", {**base, "password_env": "SMTP_PW"}, name="n")
    with pytest.raises(ValidationError, match="e-mail address"):
        build_action("smtp", {**base, "from_address": "noc"}, name="n")
    with pytest.raises(ValidationError, match="credentials"):
        build_action("sms_http", {"base_url": "https://u:p@sms.example.com", "sender": "V"}, name="n")
    with pytest.raises(ValidationError, match="absolute"):
        build_action("tmf621", {"base_url": "oss.example.com"}, name="n")
    with pytest.raises(ValidationError, match="exactly one of url and url_env"):
        build_action("webhook", {}, name="n")
    with pytest.raises(ValidationError, match="auth block"):
        build_action("http", {"base_url": BILLING, "headers": {"X-Api-Key": "k"}}, name="n")
    with pytest.raises(ValidationError, match="auth block"):
        build_action("http", {"base_url": BILLING, "headers": {"Authorization": "k"}}, name="n")
    with pytest.raises(ValidationError):
        build_action("sms_http", {"base_url": BILLING, "sender": "V", "retry": {"x": 1}}, name="n")


def test_message_key_must_be_hex() -> None:
    with pytest.raises(ValueError, match="hex"):
        Message(key="abc\r\nBcc: x", to=None, subject=None, body="", data={})
    with pytest.raises(ValueError, match="hex"):
        Message(key="a" * 65, to=None, subject=None, body="", data={})


def test_an_action_checks_its_options_type(sinks: LoopbackSinks) -> None:
    options = SmsHttpAction.Options.model_validate(sinks.action_options()["sms_http"])
    with pytest.raises(TypeError, match="SmtpOptions"):
        SmtpAction(options, name="n")  # type: ignore[arg-type]


# --- smtp -----------------------------------------------------------------------------------------


def test_smtp_delivers_with_key_headers_and_body(sinks: LoopbackSinks) -> None:
    mail = action(sinks, "smtp")
    assert isinstance(mail, SmtpAction)
    offer = {"headers": {"X-Vantage-Offer": "retention-10"}}
    sent = message(offer, to="ops@example.com", body="Grüße\nline 2")
    delivery = mail.send(sent)
    assert not mail.idempotent(sent)
    assert delivery.reference == f"<{KEY}@vantage>"
    [got] = sinks.received("email")
    assert got.to == "ops@example.com"
    assert got.subject == "Cell 12 down"
    assert got.body == "Grüße\nline 2"
    assert got.key == KEY and got.reference == delivery.reference
    assert got.headers["x-vantage-key"] == KEY
    assert got.headers["x-vantage-offer"] == "retention-10"
    assert got.headers["from"] == "Vantage NOC <noc@vantage.local>"
    assert got.data["mail_from"] == "noc@vantage.local"


def test_smtp_refuses_headers_outside_its_namespace(sinks: LoopbackSinks) -> None:
    mail = action(sinks, "smtp")
    for headers in ({"Bcc": "x@example.com"}, {"X-Vantage-Key": "00"}, {"X-Vantage-Bad": "a\r\nBcc: x@y"}):
        with pytest.raises(FatalError):
            mail.send(message({"headers": headers}, to="ops@example.com"))
    with pytest.raises(FatalError, match="no address"):
        mail.send(message())
    with pytest.raises(FatalError, match="e-mail addresses"):
        mail.send(message(to="not an address"))
    assert sinks.received() == []


def test_smtp_451_is_retriable_550_is_fatal(sinks: LoopbackSinks) -> None:
    mail = action(sinks, "smtp")
    sinks.fail_next("email", 451)
    with pytest.raises(RetriableError, match="451"):
        mail.send(message(to="ops@example.com"))
    sinks.fail_next("email", 550)
    with pytest.raises(FatalError, match="550") as err:
        mail.send(message(to="ops@example.com"))
    assert not isinstance(err.value, RetriableError)
    mail.send(message(to="ops@example.com"))
    assert len(sinks.received("email")) == 1


def test_smtp_missing_password_variable_is_fatal_and_named(sinks: LoopbackSinks) -> None:
    mail = action(
        sinks,
        "smtp",
        environ={"SMTP_USER": "alice-the-user"},
        username_env="SMTP_USER",
        password_env="SMTP_PASSWORD",
    )
    with pytest.raises(FatalError, match="SMTP_PASSWORD") as err:
        mail.send(message(to="ops@example.com"))
    assert "alice-the-user" not in str(err.value)
    assert sinks.received() == []


def test_smtp_refused_login_is_fatal_and_shows_no_secret() -> None:
    def refuse(*_args: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    port = free_port()
    server = Controller(
        _NullHandler(), hostname="127.0.0.1", port=port, authenticator=refuse, auth_require_tls=False
    )
    server.start()
    try:
        options = {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from_address": "noc@vantage.local",
            "username_env": "SMTP_USER",
            "password_env": "SMTP_PASSWORD",
        }
        environ = {"SMTP_USER": "noc", "SMTP_PASSWORD": PASSWORD}
        mail = build_action("smtp", options, name="relay", environ=environ)
        with pytest.raises(FatalError, match="authentication refused") as err:
            mail.send(message(to="ops@example.com"))
        assert PASSWORD not in str(err.value)
        with pytest.raises(FatalError, match="authentication refused"):
            mail.check()
    finally:
        server.stop()


class _NullHandler:
    async def handle_DATA(self, *_args: Any) -> str:
        return "250 OK"


def test_smtp_starttls_against_a_plain_server_is_fatal(sinks: LoopbackSinks) -> None:
    mail = action(sinks, "smtp", security="starttls")
    with pytest.raises(FatalError, match="not support"):
        mail.send(message(to="ops@example.com"))


def test_smtp_unreachable_or_silent_is_retriable(silent_port: int) -> None:
    base = {"host": "127.0.0.1", "security": "none", "from_address": "noc@vantage.local"}
    refused = build_action("smtp", {**base, "port": free_port()}, name="n")
    with pytest.raises(RetriableError, match="connection failed"):
        refused.send(message(to="ops@example.com"))
    with pytest.raises(RetriableError):
        refused.check()
    silent = build_action("smtp", {**base, "port": silent_port, "timeout_s": 0.3}, name="n")
    with pytest.raises(RetriableError, match="timed out"):
        silent.send(message(to="ops@example.com"))


def test_smtp_check_reaches_the_sink(sinks: LoopbackSinks) -> None:
    action(sinks, "smtp").check()
    assert sinks.received() == []


# --- sms_http -------------------------------------------------------------------------------------


def test_sms_delivers_and_a_repeat_is_recorded_once(sinks: LoopbackSinks) -> None:
    sms = action(sinks, "sms_http")
    assert isinstance(sms, SmsHttpAction)
    metadata = {"metadata": {"incident": "INC-7"}}
    sent = message(metadata, to="+4915112345678", subject=None, body="Outage fixed")
    first = sms.send(sent)
    again = sms.send(sent)
    assert sms.idempotent(sent)
    assert first.reference is not None and again.reference == first.reference
    [got] = sinks.received("sms")
    assert got.to == "+4915112345678" and got.body == "Outage fixed" and got.key == KEY
    assert got.reference == first.reference
    assert got.headers["idempotency-key"] == KEY
    assert got.data == {
        "to": "+4915112345678",
        "from": "Vantage",
        "text": "Outage fixed",
        "client_ref": KEY,
        "metadata": {"incident": "INC-7"},
    }
    sms.send(message(k=key(2), to="+4915112345678"))
    assert len(sinks.received("sms")) == 2
    plain = action(sinks, "sms_http", honours_idempotency_key=False)
    assert not plain.idempotent(sent)


def test_sms_transient_failures_retry_then_give_up(sinks: LoopbackSinks) -> None:
    sms = action(sinks, "sms_http")
    sinks.fail_next("sms", 503, times=2)
    assert sms.send(message(to="+491", k=key(1))).reference is not None
    sinks.fail_next("sms", 429, times=3)
    with pytest.raises(RetriableError, match="429"):
        sms.send(message(to="+491", k=key(2)))
    sinks.fail_next("sms", 400)
    with pytest.raises(FatalError, match="400") as err:
        sms.send(message(to="+491", k=key(3)))
    assert not isinstance(err.value, RetriableError)
    assert [r.key for r in sinks.received("sms")] == [key(1)]


def test_missing_token_variable_is_fatal_and_secrets_stay_out(sinks: LoopbackSinks) -> None:
    auth = {"type": "bearer", "token_env": "SMS_TOKEN"}
    without = action(sinks, "sms_http", auth=auth)
    with pytest.raises(FatalError, match="SMS_TOKEN"):
        without.send(message(to="+491"))
    with_token = action(sinks, "sms_http", environ={"SMS_TOKEN": TOKEN}, auth=auth)
    with_token.send(message(to="+491"))
    [got] = sinks.received("sms")
    assert got.headers["authorization"] == "Bearer ***"
    sinks.fail_next("sms", 401)
    with pytest.raises(FatalError) as err:
        with_token.send(message(to="+491", k=key(9)))
    assert TOKEN not in str(err.value)


def test_sms_without_address_is_fatal(sinks: LoopbackSinks) -> None:
    with pytest.raises(FatalError, match="no address"):
        action(sinks, "sms_http").send(message())


def test_unreachable_or_silent_http_is_retriable(silent_port: int) -> None:
    down = build_action(
        "sms_http", {"base_url": f"http://127.0.0.1:{free_port()}", "sender": "V", "retry": FAST}, name="n"
    )
    with pytest.raises(RetriableError, match="connection failed"):
        down.send(message(to="+491"))
    silent = build_action(
        "webhook", {"url": f"http://127.0.0.1:{silent_port}/hook", "timeout_s": 0.3, "retry": FAST}, name="n"
    )
    with pytest.raises(RetriableError, match="timed out"):
        silent.send(message())


# --- webhook --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("plain", {"text": "*Cell 12 down*\nPower lost", "channel": "#noc"}),
        ("slack", {"text": "*Cell 12 down*\nPower lost", "channel": "#noc"}),
        (
            "teams",
            {
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": "Cell 12 down",
                "title": "Cell 12 down",
                "text": "Power lost",
            },
        ),
    ],
)
def test_webhook_formats(sinks: LoopbackSinks, fmt: str, expected: dict[str, Any]) -> None:
    hook = action(sinks, "webhook", format=fmt)
    assert isinstance(hook, WebhookAction)
    sent = message(to="#noc", body="Power lost")
    delivery = hook.send(sent)
    assert not hook.idempotent(sent)
    [got] = sinks.received("chat")
    assert got.data == expected
    assert got.reference == delivery.reference
    assert got.key == KEY and got.headers["idempotency-key"] == KEY
    assert got.to == ("#noc" if fmt != "teams" else None)


def test_webhook_without_subject_sends_the_body(sinks: LoopbackSinks) -> None:
    action(sinks, "webhook").send(message(subject=None, body="just text"))
    assert sinks.received("chat")[0].data == {"text": "just text"}


def test_a_non_idempotent_request_is_tried_once(sinks: LoopbackSinks) -> None:
    hook = action(sinks, "webhook")
    sinks.fail_next("chat", 503)
    with pytest.raises(RetriableError, match="503"):
        hook.send(message())
    # The failure was used up by the one attempt: the next send goes through.
    hook.send(message())
    assert len(sinks.received("chat")) == 1
    retrying = action(sinks, "webhook", idempotent=True)
    sinks.fail_next("chat", 503)
    retrying.send(message(k=key(2)))
    assert len(sinks.received("chat")) == 2


def test_webhook_url_from_the_environment_never_shows(
    sinks: LoopbackSinks, caplog: pytest.LogCaptureFixture
) -> None:
    secret_path = "/hook/T0001/B0002/xoxb-s3cr3t-path-part"
    environ = {"CHAT_HOOK": sinks.http_base_url + secret_path}
    hook = build_action("webhook", {"url_env": "CHAT_HOOK", "retry": FAST}, name="chat", environ=environ)
    caplog.set_level(logging.DEBUG)
    hook.send(message())
    assert sinks.received("chat")[0].headers[":path"] == secret_path
    sinks.fail_next("chat", 404)
    with pytest.raises(FatalError) as err:
        hook.send(message(k=key(2)))
    assert "$CHAT_HOOK" in str(err.value)
    assert "s3cr3t" not in str(err.value)
    # The receiver's own access log shows its path, as a receiver's would; the sender's never does.
    sender_lines = [r.getMessage() for r in caplog.records if not r.name.endswith(".loopback")]
    assert any("$CHAT_HOOK" in line for line in sender_lines)
    assert not any("s3cr3t" in line for line in sender_lines)
    missing = build_action("webhook", {"url_env": "NO_SUCH_HOOK"}, name="chat", environ={})
    with pytest.raises(FatalError, match="NO_SUCH_HOOK"):
        missing.send(message())


# --- http (generic) -------------------------------------------------------------------------------


def test_http_sends_data_json_with_method_path_and_headers(sinks: LoopbackSinks) -> None:
    billing = action(
        sinks,
        "http",
        method="PUT",
        path="/http/creditNote/{key}",
        headers={"X-Source": "vantage"},
        idempotent=True,
    )
    assert isinstance(billing, HttpEndpointAction)
    sent = message({"json": {"account": "A-1", "amount": 12.5, "currency": "EUR"}})
    delivery = billing.send(sent)
    assert billing.idempotent(sent)
    [got] = sinks.received("http")
    assert got.headers[":method"] == "PUT"
    assert got.headers[":path"] == f"/http/creditNote/{KEY}"
    assert got.headers["x-source"] == "vantage"
    assert got.headers["idempotency-key"] == KEY
    assert got.data == {"account": "A-1", "amount": 12.5, "currency": "EUR"}
    assert delivery.reference == got.reference


def test_http_without_json_sends_subject_and_text(sinks: LoopbackSinks) -> None:
    endpoint = action(sinks, "http")
    assert not endpoint.idempotent(message())
    endpoint.send(message(body="hello"))
    [got] = sinks.received("http")
    assert got.data == {"subject": "Cell 12 down", "text": "hello"}
    assert got.subject == "Cell 12 down" and got.body == "hello"


def test_http_4xx_is_fatal_and_bad_data_never_leaves(sinks: LoopbackSinks) -> None:
    endpoint = action(sinks, "http")
    sinks.fail_next("http", 422)
    with pytest.raises(FatalError, match="422"):
        endpoint.send(message())
    with pytest.raises(FatalError, match="JSON"):
        endpoint.send(message({"json": {"when": object()}}))
    with pytest.raises(FatalError, match="JSON"):
        endpoint.send(message({"json": {"x": float("nan")}}))
    assert sinks.received() == []


# --- tmf621 ---------------------------------------------------------------------------------------


def test_tmf621_create_twice_with_one_key_opens_one_ticket(sinks: LoopbackSinks) -> None:
    tickets = action(sinks, "tmf621")
    assert isinstance(tickets, Tmf621TicketAction)
    related = [{"id": "cell-12", "role": "affected", "@referredType": "Cell"}]
    sent = message({"severity": "Major", "priority": "1", "related": related, "notes": "Opened by Vantage"})
    first = tickets.send(sent)
    again = tickets.send(sent)
    assert tickets.idempotent(sent)
    assert first.reference is not None and again.reference == first.reference
    assert first.detail["existing"] is False and again.detail["existing"] is True
    [got] = sinks.received("ticket")
    assert got.reference == first.reference and got.key == KEY
    assert got.subject == "Cell 12 down" and got.body == sent.body
    ticket = sinks.ticket(first.reference)
    assert ticket is not None
    assert ticket["severity"] == "Major" and ticket["priority"] == "1"
    assert ticket["ticketType"] == "incident" and ticket["@type"] == "TroubleTicket"
    assert ticket["externalId"] == KEY
    assert ticket["externalIdentifier"] == [
        {"id": KEY, "owner": "vantage", "externalIdentifierType": "idempotencyKey"}
    ]
    assert ticket["relatedEntity"] == related
    assert ticket["note"][0]["text"] == "Opened by Vantage"
    other = tickets.send(message(k=key(2)))
    assert other.reference != first.reference
    assert len(sinks.received("ticket")) == 2


def test_tmf621_finds_a_ticket_by_external_identifier_alone(sinks: LoopbackSinks) -> None:
    tickets = action(sinks, "tmf621", send_external_id=False)
    first = tickets.send(message())
    assert sinks.ticket(str(first.reference)) is not None
    assert "externalId" not in (sinks.ticket(str(first.reference)) or {})
    assert tickets.send(message()).reference == first.reference
    assert len(sinks.received("ticket")) == 1


def test_tmf621_update_patches_the_ticket(sinks: LoopbackSinks) -> None:
    tickets = action(sinks, "tmf621")
    ticket_id = tickets.send(message()).reference
    patch = {"status": "resolved", "statusChangeReason": "power restored"}
    update = message({"operation": "update", "ticket_id": ticket_id, "patch": patch}, k=key(5))
    delivery = tickets.send(update)
    assert tickets.idempotent(update)
    assert delivery.reference == ticket_id
    ticket = sinks.ticket(str(ticket_id))
    assert ticket is not None
    assert ticket["status"] == "resolved" and ticket["statusChangeReason"] == "power restored"
    got = sinks.received("ticket")[-1]
    assert got.headers[":method"] == "PATCH"
    assert got.headers["content-type"] == "application/merge-patch+json"
    assert got.data == patch and got.key == key(5)
    with pytest.raises(FatalError, match="ticket_id"):
        tickets.send(message({"operation": "update", "patch": patch}))
    with pytest.raises(FatalError, match="patch"):
        tickets.send(message({"operation": "update", "ticket_id": ticket_id}))
    with pytest.raises(FatalError, match="404"):
        tickets.send(message({"operation": "update", "ticket_id": "TT-404", "patch": patch}))
    with pytest.raises(FatalError, match="create or update"):
        tickets.send(message({"operation": "delete"}))


def test_tmf621_failures(sinks: LoopbackSinks) -> None:
    tickets = action(sinks, "tmf621")
    sinks.fail_next("ticket", 503, times=3)
    with pytest.raises(RetriableError, match="503"):
        tickets.send(message())
    sinks.fail_next("ticket", 400)
    with pytest.raises(FatalError, match="400"):
        tickets.send(message())
    assert sinks.received() == []
    sinks.fail_next("ticket", 503, times=2)
    assert tickets.send(message()).reference is not None
    tickets.check()


# --- tmf642 ---------------------------------------------------------------------------------------


def test_tmf642_ack_and_comment(sinks: LoopbackSinks) -> None:
    alarms = action(sinks, "tmf642")
    assert isinstance(alarms, Tmf642AlarmAction)
    ack = message({"operation": "ack", "alarm_ids": ["A-1", "A-2"], "user": "jdoe"})
    acked = alarms.send(ack)
    assert alarms.idempotent(ack)
    comment = message({"operation": "comment", "alarm_ids": ["A-1"], "user": "jdoe"}, k=key(2), body="On it")
    commented = alarms.send(comment)
    assert not alarms.idempotent(comment)
    first, second = sinks.received("alarm")
    assert first.headers[":path"] == "/tmf-api/alarmManagement/v4/ackAlarms"
    assert first.data == {
        "ackUserId": "jdoe",
        "ackSystemId": "vantage",
        "alarmPattern": [{"id": "A-1"}, {"id": "A-2"}],
    }
    assert first.reference == acked.reference and acked.detail["state"] == "done"
    assert second.headers[":path"] == "/tmf-api/alarmManagement/v4/commentAlarms"
    assert second.data["alarmPattern"] == [{"id": "A-1"}]
    assert {k: v for k, v in second.data["comment"].items() if k != "time"} == {
        "comment": "On it",
        "userId": "jdoe",
        "systemId": "vantage",
    }
    assert second.body == "On it" and second.reference == commented.reference
    with pytest.raises(FatalError, match="alarm_ids"):
        alarms.send(message({"operation": "ack", "alarm_ids": []}))
    with pytest.raises(FatalError, match="ack or comment"):
        alarms.send(message({"operation": "clear", "alarm_ids": ["A-1"]}))
    sinks.fail_next("alarm", 500, times=3)
    with pytest.raises(RetriableError, match="500"):
        alarms.send(ack)
    alarms.check()


# --- the sinks themselves -------------------------------------------------------------------------


def test_sinks_refuse_bad_json_and_unknown_paths(sinks: LoopbackSinks) -> None:
    base = sinks.http_base_url
    bad = httpx.post(f"{base}/sms", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert httpx.post(f"{base}/nowhere", json={}).status_code == 404
    assert httpx.post(f"{base}/sms", json={"to": "+491"}).status_code == 400
    patch = httpx.patch(f"{base}/tmf-api/troubleTicket/v4/troubleTicket/TT-1", json={"status": "x"})
    assert patch.status_code == 404
    assert sinks.received() == []


def test_sinks_call_on_message_and_survive_its_errors() -> None:
    seen: list[Received] = []

    def hook(received: Received) -> None:
        seen.append(received)
        raise RuntimeError("a broken listener")

    with LoopbackSinks(on_message=hook, keep=2) as sinks:
        sms = action(sinks, "sms_http")
        for n in range(3):
            sms.send(message(to="+491", k=key(n)))
        action(sinks, "smtp").send(message(to="ops@example.com"))
        assert [r.channel for r in seen] == ["sms", "sms", "sms", "email"]
        assert [r.channel for r in sinks.received()] == ["sms", "email"]
        assert [r.key for r in sinks.received("sms")] == [key(2)]


def test_sinks_on_given_ports() -> None:
    smtp_port, http_port = free_port(), free_port()
    with LoopbackSinks(smtp_port=smtp_port, http_port=http_port) as sinks:
        assert sinks.smtp_port == smtp_port and sinks.http_port == http_port
        assert sinks.http_base_url == f"http://127.0.0.1:{http_port}"
        assert sinks.action_options()["smtp"]["port"] == smtp_port


def test_concurrent_sends_are_each_recorded(sinks: LoopbackSinks) -> None:
    sms = action(sinks, "sms_http")
    mail = action(sinks, "smtp")
    results: list[Delivery] = []

    def send(n: int) -> None:
        chosen: Action[Any] = sms if n % 2 else mail
        to = "+491" if n % 2 else "ops@example.com"
        results.append(chosen.send(message(to=to, k=key(n))))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert len(sinks.received("sms")) == 4 and len(sinks.received("email")) == 4
