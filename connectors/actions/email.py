"""The ``smtp`` action type: e-mail through an SMTP relay, with the idempotency key in its headers."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses
from typing import Any, Literal, NoReturn

from pydantic import Field, field_validator, model_validator

from connectors.actions.base import (
    Action,
    ActionOptions,
    Delivery,
    EnvName,
    FatalError,
    Message,
    RetriableError,
    require_to,
)

__all__ = ["SmtpAction", "SmtpOptions"]

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
#: An RFC 5322 field name: printable ASCII without a colon.
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_HEADER_PREFIX = "x-vantage-"


class SmtpOptions(ActionOptions):
    """Options of the ``smtp`` action type."""

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    #: ``starttls`` upgrades a plain connection (port 25 or 587); ``tls`` is implicit TLS (port 465).
    security: Literal["none", "starttls", "tls"] = "starttls"
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    from_address: str
    from_name: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    verify_tls: bool = True

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError(f"{value!r} is not a bare e-mail address (name@domain)")
        return value

    @field_validator("from_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n\x00"):
            raise ValueError("from_name must be one line")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SmtpOptions:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together: give both or neither")
        return self


class SmtpAction(Action[SmtpOptions]):
    """Sends ``message.body`` as a plain-text mail to ``message.to`` (one address or a list).

    ``Message-ID`` is ``<key@vantage>`` and ``X-Vantage-Key`` carries the key, so a receiver (or a
    person) can tell a repeat from a new message; ``data["headers"]`` adds ``X-Vantage-*`` headers.
    Plain SMTP receivers do not dedupe, so a repeat after an uncertain outcome may arrive twice.
    """

    type_name = "smtp"
    Options = SmtpOptions
    channel = "email"

    def send(self, message: Message) -> Delivery:
        mail = self._compose(message)
        recipients = [address for _, address in getaddresses([str(mail["To"])]) if address]
        with self._connect() as smtp:
            refused = smtp.send_message(mail)
        reference = str(mail["Message-ID"])
        detail: dict[str, Any] = {"recipients": len(recipients)}
        if refused:
            # Some recipients took it, so it was delivered; which ones did not is kept for the record.
            detail["refused"] = {
                addr: f"{code} {self._text(reply)}" for addr, (code, reply) in refused.items()
            }
        log.debug("action %s: sent mail %s", self.name, reference)
        return Delivery(reference=reference, detail=detail)

    def check(self) -> None:
        with self._connect() as smtp:
            code, reply = smtp.noop()
            if code >= 400:
                self._raise_for(code, f"NOOP refused ({code} {self._text(reply)})")

    # --- internals ---

    def _where(self, problem: str) -> str:
        o = self.options
        return f"action {self.name!r} (smtp {o.host}:{o.port}): {problem}"

    @staticmethod
    def _text(reply: bytes | str) -> str:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        return " ".join(text.split())[:200]

    def _raise_for(self, code: int, problem: str) -> NoReturn:
        text = self._where(problem)
        # RFC 5321: 4yz is a transient negative reply, 5yz a permanent one.
        if 400 <= code < 500:
            raise RetriableError(text)
        raise FatalError(text)

    def _compose(self, message: Message) -> EmailMessage:
        o = self.options
        to = require_to(message, self)
        addresses = getaddresses([to])
        if not addresses or any(not _ADDRESS.match(address) for _, address in addresses):
            raise FatalError(self._where("the address (to) is not a list of e-mail addresses"))
        mail = EmailMessage()
        try:
            mail["From"] = formataddr((o.from_name, o.from_address)) if o.from_name else o.from_address
            mail["To"] = to
            if message.subject is not None:
                mail["Subject"] = message.subject
            mail["Date"] = format_datetime(datetime.now(UTC))
            mail["Message-ID"] = f"<{message.key}@vantage>"
            mail["X-Vantage-Key"] = message.key
            for name, value in self._extra_headers(message).items():
                mail[name] = value
            mail.set_content(message.body)
        except ValueError as err:  # a line break in a header value, which would inject a header
            raise FatalError(self._where(f"the message cannot be written as mail ({err})")) from None
        return mail

    def _extra_headers(self, message: Message) -> dict[str, str]:
        headers = message.data.get("headers") or {}
        if not isinstance(headers, dict):
            raise FatalError(self._where("data.headers must be a mapping of header name to text"))
        out: dict[str, str] = {}
        for name, value in headers.items():
            # Only our own namespace: a caller must not be able to set From, Bcc or the key.
            if (
                not isinstance(name, str)
                or not _HEADER_NAME.match(name)
                or not name.lower().startswith(_HEADER_PREFIX)
                or name.lower() == "x-vantage-key"
            ):
                raise FatalError(self._where(f"header {name!r} is not allowed (only X-Vantage-* headers)"))
            if not isinstance(value, str):
                raise FatalError(self._where(f"header {name} must be text, got {type(value).__name__}"))
            out[name] = value
        return out

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.options.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> _Connection:
        o = self.options
        credentials: tuple[str, str] | None = None
        if o.username_env is not None and o.password_env is not None:
            # Read before connecting: a missing secret is a configuration error, not a network one.
            credentials = (
                self.secret(o.username_env, "the SMTP user name"),
                self.secret(o.password_env, "the SMTP password"),
            )
        return _Connection(self, credentials)


class _Connection:
    """An open, authenticated SMTP connection whose errors become Retriable/FatalError; quits on exit."""

    def __init__(self, action: SmtpAction, credentials: tuple[str, str] | None) -> None:
        self._action = action
        self._credentials = credentials
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> smtplib.SMTP:
        a = self._action
        o = a.options
        try:
            if o.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    o.host, o.port, timeout=o.timeout_s, context=a._tls_context()
                )
            else:
                smtp = smtplib.SMTP(o.host, o.port, timeout=o.timeout_s)
            self._smtp = smtp
            smtp.ehlo()
            if o.security == "starttls":
                smtp.starttls(context=a._tls_context())
                smtp.ehlo()
            if self._credentials is not None:
                smtp.login(*self._credentials)
        except BaseException as err:
            self._close()
            self._translate(err)
            raise
        return smtp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            # The mail was accepted before QUIT: a failing QUIT must not turn a delivery into an error.
            self._close()
            return
        self._close()
        if isinstance(exc, Exception) and not isinstance(exc, FatalError | RetriableError):
            self._translate(exc)

    def _close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _redact(self, text: str) -> str:
        for secret in self._credentials or ():
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def _translate(self, err: BaseException) -> None:
        """Raise ``err`` as a RetriableError or FatalError; other exceptions are left to propagate."""
        a = self._action
        where = a._where
        if isinstance(err, smtplib.SMTPAuthenticationError):
            raise FatalError(
                where(self._redact(f"authentication refused ({err.smtp_code} {a._text(err.smtp_error)})"))
            ) from None
        if isinstance(err, smtplib.SMTPNotSupportedError):
            raise FatalError(where(f"the server does not support what the options ask for ({err})")) from None
        if isinstance(err, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in err.recipients.values()]
            replies = "; ".join(f"{code} {a._text(reply)}" for code, reply in err.recipients.values())
            # Retry only when every refusal was transient; one permanent refusal will not go away.
            transient = bool(codes) and all(400 <= code < 500 for code in codes)
            a._raise_for(451 if transient else 550, f"every recipient was refused ({replies})")
        if isinstance(err, smtplib.SMTPResponseException):
            a._raise_for(
                err.smtp_code, self._redact(f"the server replied {err.smtp_code} {a._text(err.smtp_error)}")
            )
        if isinstance(err, smtplib.SMTPServerDisconnected):
            raise RetriableError(where(f"connection lost ({err})")) from None
        if isinstance(err, ssl.SSLCertVerificationError):
            raise FatalError(
                where(f"the server's TLS certificate is not trusted ({err.verify_message})")
            ) from None
        if isinstance(err, ssl.SSLError):
            # Mostly implicit TLS against a plain port, or the reverse: the options are wrong.
            raise FatalError(where(f"TLS failed ({err.reason or err}); check security and port")) from None
        if isinstance(err, TimeoutError):
            raise RetriableError(where(f"timed out after {a.options.timeout_s:g} s")) from None
        if isinstance(err, smtplib.SMTPException):
            raise RetriableError(where(self._redact(f"{type(err).__name__}: {err}"))) from None
        if isinstance(err, OSError):
            raise RetriableError(where(f"connection failed ({err.strerror or err})")) from None
