"""HTTP action types: ``sms_http`` (an SMS gateway), ``webhook`` (chat) and ``http`` (any JSON endpoint)."""

from __future__ import annotations

import json
import logging
import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, Field, field_validator, model_validator

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
from connectors.base import ConnectorError
from connectors.http import AuthConfig, HttpClient, RetryPolicy, safe_url

__all__ = [
    "BaseUrl",
    "HttpActionBase",
    "HttpActionOptions",
    "HttpEndpointAction",
    "HttpEndpointOptions",
    "SmsHttpAction",
    "SmsHttpOptions",
    "WebhookAction",
    "WebhookOptions",
    "check_base_url",
    "json_or_none",
    "text_id",
]

log = logging.getLogger(__name__)

#: Header names a static ``headers`` block may not set: credentials belong in the auth block (read
#: from the environment), and the idempotency key is the action's own.
_FORBIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "idempotency-key"})
_SECRET_HEADER_WORDS = ("token", "secret", "password", "passwd", "apikey", "api-key", "api_key", "signature")


def _default_retry() -> RetryPolicy:
    # Few, short in-run retries: the outbox has its own schedule, and a chat message that arrives a
    # minute late after a long in-run wait helps nobody.
    return RetryPolicy(attempts=3, backoff_initial_s=0.5, backoff_max_s=5.0, retry_after_max_s=10.0)


def check_base_url(value: str) -> str:
    """An absolute http(s) URL without credentials (those go in the auth block), else ValueError."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{safe_url(value)!r} is not an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValueError(f"{safe_url(value)} carries credentials; use an auth block instead")
    return value


def text_id(value: Any) -> str | None:
    """An id as a receiver sent it (text or integer) as text; None when absent or unusable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def json_or_none(response: httpx.Response) -> Any:
    """The JSON body of a 2xx response, or None: a delivery the receiver accepted stays delivered
    even when its answer is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def encode_json(value: Any, *, what: str) -> bytes:
    """``value`` as JSON bytes, or a FatalError: data that is not JSON will not become JSON on a retry."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as err:
        raise FatalError(f"{what} cannot be sent as JSON ({err})") from None


#: A base URL option: absolute http(s), no credentials.
BaseUrl = Annotated[str, AfterValidator(check_base_url)]


# --- redaction of URLs that are themselves secrets (chat webhooks) -------------------------------

_log_secrets: dict[str, str] = {}
_log_secrets_lock = threading.Lock()


def _redact(text: str, secrets: Mapping[str, str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, secrets[secret])
    return text


class _RedactSecrets(logging.Filter):
    """Rewrites log lines of the HTTP client and httpx that would show a secret URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _log_secrets_lock:
            secrets = dict(_log_secrets)
        if secrets:
            text = record.getMessage()
            redacted = _redact(text, secrets)
            if redacted != text:
                record.msg, record.args = redacted, ()
        return True


def _hide_in_logs(secrets: Mapping[str, str]) -> None:
    with _log_secrets_lock:
        _log_secrets.update(secrets)
    for name in ("httpx", "connectors.http"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
            logger.addFilter(_RedactSecrets())


def _secret_url_forms(url: str, shown: str) -> dict[str, str]:
    """The ways a secret URL can appear in a message, each mapped to what to show instead."""
    forms = {url, url.rstrip("/"), safe_url(url), safe_url(url.rstrip("/"))}
    parts = urlsplit(url)
    # The path and query of a chat webhook are the credential; the host alone is not.
    forms.update(p for p in (parts.path.rstrip("/"), parts.query) if len(p) >= 8)
    return {form: shown for form in forms if form}


# --- the shared base ----------------------------------------------------------------------------


class HttpActionOptions(ActionOptions):
    """Options every HTTP action type takes."""

    auth: AuthConfig = Field(default_factory=AuthConfig)
    timeout_s: float = Field(default=10.0, gt=0)
    retry: RetryPolicy = Field(default_factory=_default_retry)
    verify_tls: bool = True


HttpOptionsT = TypeVar("HttpOptionsT", bound=HttpActionOptions)


class HttpActionBase(Action[HttpOptionsT]):
    """What the HTTP action types share: the project's ``HttpClient``, the key as ``Idempotency-Key``.

    A request whose repeat could act twice is tried once: the in-run retries of the client would
    otherwise re-send after a timeout, behind the back of the outbox, which re-sends an action
    whose outcome is unknown only when ``idempotent()`` says it may.
    """

    def __init__(self, options: HttpOptionsT, *, name: str, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(options, name=name, environ=environ)
        self._clients: dict[bool, HttpClient] = {}
        self._clients_lock = threading.Lock()
        #: Texts never shown in errors, mapped to what is shown instead.
        self._hidden: dict[str, str] = {}

    @abstractmethod
    def base_url(self) -> str:
        """Where the requests go; paths given to ``request`` are relative to it."""

    def static_headers(self) -> dict[str, str]:
        return {}

    def client(self, *, retrying: bool) -> HttpClient:
        with self._clients_lock:
            found = self._clients.get(retrying)
            if found is None:
                o = self.options
                retry = o.retry if retrying else o.retry.model_copy(update={"attempts": 1})
                with self._redacting():
                    found = HttpClient(
                        self.base_url(),
                        auth=o.auth,
                        timeout_s=o.timeout_s,
                        retry=retry,
                        headers=self.static_headers(),
                        verify=o.verify_tls,
                        environ=self._environ,
                    )
                self._clients[retrying] = found
            return found

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None,
        retrying: bool,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """One request with auth (and retries when ``retrying``): 4xx -> FatalError, 429/5xx -> Retriable."""
        headers: dict[str, str] = {}
        if key is not None:
            headers["Idempotency-Key"] = key
        content: bytes | None = None
        if body is not None:
            content = encode_json(body, what=f"action {self.name!r}: the request body")
            headers["Content-Type"] = content_type
        with self._redacting():
            client = self.client(retrying=retrying)
            return client.request(method, path, params=params, content=content, headers=headers)

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    @contextmanager
    def _redacting(self) -> Iterator[None]:
        try:
            yield
        except RetriableError as err:
            text = _redact(str(err), self._hidden)
            if text == str(err):
                raise
            raise RetriableError(text, retry_after_s=err.retry_after_s) from None
        except ConnectorError as err:
            text = _redact(str(err), self._hidden)
            if text == str(err):
                raise
            raise FatalError(text) from None

    def hide(self, secret_url: str, shown: str) -> None:
        """Never show ``secret_url`` (or its path) in errors and logs: ``shown`` stands in for it."""
        forms = _secret_url_forms(secret_url, shown)
        self._hidden.update(forms)
        _hide_in_logs(forms)


# --- sms_http -------------------------------------------------------------------------------------


class SmsHttpOptions(HttpActionOptions):
    """Options of the ``sms_http`` action type."""

    base_url: BaseUrl
    path: str = "/sms"
    #: The sender id or number the gateway shows.
    sender: str = Field(min_length=1)
    #: Whether the gateway answers a repeated ``Idempotency-Key`` (or ``client_ref``) with the first
    #: message instead of sending another; only then is a repeat after an uncertain outcome safe.
    honours_idempotency_key: bool = True


class SmsHttpAction(HttpActionBase[SmsHttpOptions]):
    """POSTs ``{"to", "from", "text", "client_ref", "metadata"}`` to an HTTP SMS gateway.

    ``message.to`` is the MSISDN; ``data["metadata"]`` (a mapping) travels as is. The reference is
    the gateway's ``id`` (or ``message_id``).
    """

    type_name = "sms_http"
    Options = SmsHttpOptions
    channel = "sms"

    def base_url(self) -> str:
        return self.options.base_url

    def idempotent(self, message: Message) -> bool:
        return self.options.honours_idempotency_key

    def send(self, message: Message) -> Delivery:
        to = require_to(message, self)
        metadata = message.data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise FatalError(f"action {self.name!r}: data.metadata must be a mapping")
        payload = {
            "to": to,
            "from": self.options.sender,
            "text": message.body,
            "client_ref": message.key,
            "metadata": metadata,
        }
        response = self.request(
            "POST", self.options.path, key=message.key, retrying=self.idempotent(message), body=payload
        )
        answer = json_or_none(response)
        reference: str | None = None
        detail: dict[str, Any] = {"status": response.status_code}
        if isinstance(answer, dict):
            reference = text_id(answer.get("id")) or text_id(answer.get("message_id"))
            if isinstance(answer.get("status"), str):
                detail["gateway_status"] = answer["status"]
        return Delivery(reference=reference, detail=detail)


# --- webhook ---------------------------------------------------------------------------------------


class WebhookOptions(HttpActionOptions):
    """Options of the ``webhook`` action type: ``url``, or ``url_env`` when the URL is a credential."""

    url: BaseUrl | None = None
    #: The environment variable holding the URL, for chat webhooks whose URL is the credential
    #: (Slack, Teams): it is then never written in configuration, errors or logs.
    url_env: EnvName | None = None
    format: Literal["plain", "slack", "teams"] = "plain"
    #: Whether the receiver dedupes on ``Idempotency-Key``; chat webhooks usually do not.
    idempotent: bool = False

    @model_validator(mode="after")
    def _one_url(self) -> WebhookOptions:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


class WebhookAction(HttpActionBase[WebhookOptions]):
    """POSTs a chat message: ``{"text"}`` (plain, slack; subject in bold) or a Teams MessageCard.

    ``message.to``, when set, is sent as ``channel`` (plain and slack formats).
    """

    type_name = "webhook"
    Options = WebhookOptions
    channel = "chat"

    def base_url(self) -> str:
        o = self.options
        if o.url is not None:
            return o.url
        assert o.url_env is not None
        url = self.secret(o.url_env, "the webhook URL")
        self.hide(url, f"${o.url_env}")
        return url

    def idempotent(self, message: Message) -> bool:
        return self.options.idempotent

    def payload(self, message: Message) -> dict[str, Any]:
        subject, body, to = message.subject, message.body, message.to
        if self.options.format == "teams":
            card: dict[str, Any] = {
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": (subject or body)[:120],
                "text": body,
            }
            if subject:
                card["title"] = subject
            return card
        out: dict[str, Any] = {"text": f"*{subject}*\n{body}" if subject else body}
        if to:
            out["channel"] = to
        return out

    def send(self, message: Message) -> Delivery:
        response = self.request(
            "POST", "", key=message.key, retrying=self.idempotent(message), body=self.payload(message)
        )
        answer = json_or_none(response)
        reference = text_id(answer.get("id")) if isinstance(answer, dict) else None
        return Delivery(reference=reference, detail={"status": response.status_code})


# --- http (generic) --------------------------------------------------------------------------------


class HttpEndpointOptions(HttpActionOptions):
    """Options of the ``http`` action type: any JSON endpoint (a credit-note request to billing...)."""

    base_url: BaseUrl
    #: Appended to ``base_url``; ``{key}`` is replaced by the idempotency key (``PUT /requests/{key}``
    #: makes a request idempotent by nature).
    path: str = ""
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    #: Static, non-secret headers; credentials go in ``auth``.
    headers: dict[str, str] = Field(default_factory=dict)
    #: Whether the endpoint dedupes on ``Idempotency-Key`` (or the request is idempotent by nature).
    idempotent: bool = False

    @field_validator("headers")
    @classmethod
    def _no_secrets(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in _FORBIDDEN_HEADERS or any(w in lowered for w in _SECRET_HEADER_WORDS):
                raise ValueError(
                    f"header {name!r} is not allowed in headers: credentials go in the auth block, "
                    "read from the environment, and Idempotency-Key is set by the action"
                )
            if any(c in name + value for c in "\r\n\x00"):
                raise ValueError(f"header {name!r} contains a line break")
        return headers


class HttpEndpointAction(HttpActionBase[HttpEndpointOptions]):
    """Sends ``data["json"]`` (else ``{"subject", "text"}``) with the configured method.

    The reference is the ``id`` of the JSON answer, when there is one.
    """

    type_name = "http"
    Options = HttpEndpointOptions
    channel = "http"

    def base_url(self) -> str:
        return self.options.base_url

    def static_headers(self) -> dict[str, str]:
        return dict(self.options.headers)

    def idempotent(self, message: Message) -> bool:
        return self.options.idempotent

    def send(self, message: Message) -> Delivery:
        o = self.options
        if "json" in message.data:
            body = message.data["json"]
        else:
            body = {"subject": message.subject, "text": message.body}
        if body is None:
            raise FatalError(f"action {self.name!r}: data.json is null; there is nothing to send")
        response = self.request(
            o.method,
            o.path.replace("{key}", message.key),
            key=message.key,
            retrying=self.idempotent(message),
            body=body,
        )
        answer = json_or_none(response)
        reference = text_id(answer.get("id")) if isinstance(answer, dict) else None
        return Delivery(reference=reference, detail={"status": response.status_code})
