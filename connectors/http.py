"""The one HTTP client every HTTP connector uses: timeouts, retries with backoff, auth, paging, no leaks."""

from __future__ import annotations

import base64
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.base import FatalError, RetriableError

__all__ = [
    "AuthConfig",
    "HttpClient",
    "HttpStatusError",
    "InvalidResponse",
    "MissingSecret",
    "Page",
    "RetriesExhausted",
    "RetryPolicy",
    "safe_url",
]

log = logging.getLogger(__name__)

#: Query parameters whose values are never shown in messages.
_SECRET_PARAMS = (
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "signature",
    "sig",
    "auth",
    "code",
    "credential",
    "session",
)
#: Statuses worth retrying: request timeout, too many requests, every 5xx.
_RETRY_STATUSES = frozenset({408, 429})

Sleep = Callable[[float], None]


# --- configuration --------------------------------------------------------------------------


class AuthConfig(BaseModel):
    """How to authenticate; secrets are named by environment variable, never written in the file.

    - ``{type: none}`` (default)
    - ``{type: bearer, token_env: TMF_TOKEN}``
    - ``{type: basic, username: vantage, password_env: TMF_PASSWORD}`` (or ``username_env``)
    - ``{type: oauth2, token_url: https://idp/oauth/token, client_id_env: ID, client_secret_env: SECRET,
      scope: "tmf642"}``: the client-credentials grant; the token is cached until it expires and
      fetched again once when the API answers 401.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["none", "bearer", "basic", "oauth2"] = "none"
    token_env: str | None = None
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_id_env: str | None = None
    client_secret_env: str | None = None
    scope: str | None = None
    #: How the OAuth2 client authenticates at the token endpoint (RFC 6749 2.3.1).
    client_auth: Literal["basic", "body"] = "basic"

    @model_validator(mode="after")
    def _complete(self) -> AuthConfig:
        need: list[str] = []
        if self.type == "bearer" and not self.token_env:
            need.append("token_env")
        elif self.type == "basic":
            if not (self.username or self.username_env):
                need.append("username or username_env")
            if not self.password_env:
                need.append("password_env")
        elif self.type == "oauth2":
            if not self.token_url:
                need.append("token_url")
            if not (self.client_id or self.client_id_env):
                need.append("client_id or client_id_env")
            if not self.client_secret_env:
                need.append("client_secret_env")
        if need:
            raise ValueError(f"auth type {self.type!r} needs {', '.join(need)}")
        return self


class RetryPolicy(BaseModel):
    """Retries of transient failures (timeouts, connection errors, 408, 429, 5xx)."""

    model_config = ConfigDict(extra="forbid")

    #: Tries in all, the first included.
    attempts: int = Field(default=4, ge=1, le=20)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    #: A Retry-After longer than this is not waited out in the run: the run fails as retriable and the
    #: scheduler comes back after the time the source asked for.
    retry_after_max_s: float = Field(default=60.0, ge=0)


# --- errors ---------------------------------------------------------------------------------


class HttpStatusError(FatalError):
    """The source answered a 4xx that retrying will not fix (bad URL, credentials, request)."""

    def __init__(self, message: str, *, status: int, method: str, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url


class InvalidResponse(FatalError):
    """The source answered 2xx with a body that is not what was expected (not JSON, not a list)."""

    def __init__(self, message: str, *, text: str, url: str) -> None:
        super().__init__(message)
        #: The body as received (truncated), for quarantine.
        self.text = text
        self.url = url


class MissingSecret(FatalError):
    """An environment variable named in the auth block is not set; the message names the variable."""


class RetriesExhausted(RetriableError):
    """A transient failure persisted through every retry; the scheduler should try again later."""

    def __init__(self, message: str, *, retry_after_s: float | None, status: int | None) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.status = status


# --- helpers --------------------------------------------------------------------------------


def safe_url(url: str | httpx.URL) -> str:
    """A URL fit for messages: no userinfo, and secret-looking query values replaced by ``***``."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = urlencode(
        [
            (k, "***" if any(s in k.lower() for s in _SECRET_PARAMS) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent or junk."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


class _RedactUrls(logging.Filter):
    """Rewrites URLs in httpx's own request log lines so they carry no userinfo or secret parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(safe_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def _install_log_filter() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrls) for f in logger.filters):
        logger.addFilter(_RedactUrls())


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items, where it started and what the source said about the rest."""

    items: list[Any]
    offset: int
    total: int | None
    response: httpx.Response


def _default_items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    raise ValueError(f"expected a JSON array, got {type(body).__name__}")


@dataclass
class _Token:
    value: str
    expires_at: float


# --- the client -----------------------------------------------------------------------------


class HttpClient:
    """An httpx client with timeouts, retries with backoff and jitter, auth and paging.

    Every failure is raised as ``FatalError`` (4xx, bad body, missing secret) or ``RetriableError``
    (timeouts, 429, 5xx after the retries), with messages that never carry credentials.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthConfig | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        sleep: Sleep = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.username or parts.password:
            raise FatalError(f"base URL {safe_url(base_url)} carries credentials; use an auth block instead")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FatalError(f"base URL {safe_url(base_url)!r} is not an absolute http(s) URL")
        _install_log_filter()
        self.base_url = base_url.rstrip("/")
        self.auth = auth or AuthConfig()
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._environ = environ
        self._secrets: set[str] = set()
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            headers={"Accept": "application/json", **dict(headers or {})},
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    # --- lifecycle ---

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public requests ---

    def url(self, path: str) -> str:
        """``path`` joined to the base URL (absolute URLs are kept as given)."""
        if path.startswith(("http://", "https://")):
            return path
        if not path:
            return self.base_url
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request with auth and retries; return the 2xx/3xx response or raise a typed error."""
        return self._send(
            method,
            self.url(path),
            params=params,
            json=json,
            content=content,
            headers=headers,
            authenticate=True,
        )

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> httpx.Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None) -> httpx.Response:
        return self.request("POST", path, json=json)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.json_of(self.get(path, params=params))

    def json_of(self, response: httpx.Response) -> Any:
        """The JSON body of a response, or ``InvalidResponse`` carrying the text for quarantine."""
        try:
            return response.json()
        except ValueError as err:
            url = safe_url(response.request.url)
            raise InvalidResponse(
                self._redact(f"{response.request.method} {url}: body is not valid JSON ({err})"),
                text=self._redact(response.text[:100_000]),
                url=url,
            ) from None

    def pages(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        limit: int = 100,
        offset: int = 0,
        offset_param: str = "offset",
        limit_param: str = "limit",
        items: Callable[[Any], list[Any]] = _default_items,
        max_pages: int = 100_000,
    ) -> Iterator[Page]:
        """Pages of a listing, by offset/limit until a short or empty page.

        ``X-Total-Count``, when the source sends it, also ends the listing once reached; a
        ``Link: <...>; rel="next"`` header, when present, is followed instead of computing offsets.
        """
        url: str = self.url(path)
        query: dict[str, Any] | None = {**dict(params or {}), offset_param: offset, limit_param: limit}
        seen_next: set[str] = set()
        for _ in range(max_pages):
            response = self._send(
                "GET", url, params=query, json=None, content=None, headers=None, authenticate=True
            )
            body = self.json_of(response)
            try:
                found = items(body)
            except (ValueError, TypeError, KeyError) as err:
                raise InvalidResponse(
                    self._redact(f"GET {safe_url(response.request.url)}: {err}"),
                    text=self._redact(response.text[:100_000]),
                    url=safe_url(response.request.url),
                ) from None
            total = _int_header(response.headers.get("X-Total-Count"))
            yield Page(items=found, offset=offset, total=total, response=response)
            offset += len(found)
            next_link = response.links.get("next", {}).get("url")
            if next_link:
                absolute = urljoin(str(response.request.url), next_link)
                if absolute in seen_next:
                    return  # a source that links a page to itself would loop forever
                seen_next.add(absolute)
                url, query = absolute, None
                continue
            if not found or len(found) < limit or (total is not None and offset >= total):
                return
            query = {**dict(params or {}), offset_param: offset, limit_param: limit}
        log.warning("listing %s stopped after %d pages", safe_url(url), max_pages)

    # --- internals ---

    def _secret(self, var: str) -> str:
        env = os.environ if self._environ is None else self._environ
        value = env.get(var)
        if not value:
            raise MissingSecret(
                f"environment variable {var} (named in the auth block) is not set or is empty"
            )
        self._secrets.add(value)
        return value

    def _redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def _basic(self, user: str, password: str) -> str:
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._secrets.add(encoded)
        return f"Basic {encoded}"

    def _auth_headers(self) -> dict[str, str]:
        a = self.auth
        if a.type == "bearer":
            assert a.token_env is not None
            return {"Authorization": f"Bearer {self._secret(a.token_env)}"}
        if a.type == "basic":
            user = self._secret(a.username_env) if a.username_env else (a.username or "")
            assert a.password_env is not None
            return {"Authorization": self._basic(user, self._secret(a.password_env))}
        if a.type == "oauth2":
            return {"Authorization": f"Bearer {self._oauth_token()}"}
        return {}

    def _oauth_token(self, *, force: bool = False) -> str:
        with self._token_lock:
            now = self._clock()
            if self._token is not None and not force and now < self._token.expires_at:
                return self._token.value
            a = self.auth
            assert a.token_url is not None and a.client_secret_env is not None
            client_id = self._secret(a.client_id_env) if a.client_id_env else (a.client_id or "")
            secret = self._secret(a.client_secret_env)
            form = {"grant_type": "client_credentials"}
            if a.scope:
                form["scope"] = a.scope
            headers: dict[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}
            if a.client_auth == "basic":
                headers["Authorization"] = self._basic(client_id, secret)
            else:
                form.update(client_id=client_id, client_secret=secret)
            response = self._send(
                "POST",
                self.url(a.token_url),
                params=None,
                json=None,
                content=urlencode(form).encode(),
                headers=headers,
                authenticate=False,
            )
            body = self.json_of(response)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise FatalError(f"token endpoint {safe_url(self.url(a.token_url))} sent no access_token")
            self._secrets.add(token)
            try:
                expires_in = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                expires_in = 3600.0
            # Renew a little early so a token does not expire between the check and the request.
            self._token = _Token(token, now + max(0.0, expires_in - min(30.0, expires_in / 10)))
            log.debug(
                "fetched an OAuth2 token from %s, valid %.0f s", safe_url(self.url(a.token_url)), expires_in
            )
            return token

    def _backoff(self, attempt: int) -> float:
        base = min(self.retry.backoff_max_s, self.retry.backoff_initial_s * 2 ** (attempt - 1))
        # "Equal jitter": half fixed, half random, so clients that failed together spread out.
        return float(base / 2 + base / 2 * self._rand())

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        authenticate: bool,
    ) -> httpx.Response:
        shown = f"{method} {safe_url(url)}"
        refreshed = False
        attempt = 0
        last_status: int | None = None
        while True:
            attempt += 1
            all_headers = dict(headers or {})
            if authenticate:
                all_headers.update(self._auth_headers())
            retry_after: float | None = None
            try:
                response = self._client.request(
                    method, url, params=params, json=json, content=content, headers=all_headers
                )
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout_s:g} s"
                last_status = None
            except httpx.TransportError as err:
                problem = f"connection failed ({type(err).__name__}: {self._redact(str(err))[:200]})"
                last_status = None
            except httpx.HTTPError as err:  # invalid URL and the like: retrying will not help
                raise FatalError(self._redact(f"{shown}: {type(err).__name__}: {err}")) from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status == 401 and authenticate and self.auth.type == "oauth2" and not refreshed:
                    # The cached token may have been revoked or expired early: fetch a new one, once.
                    refreshed = True
                    attempt -= 1
                    self._oauth_token(force=True)
                    continue
                if status not in _RETRY_STATUSES and status < 500:
                    raise HttpStatusError(
                        self._redact(f"{shown}: HTTP {status} {response.reason_phrase}{_detail(response)}"),
                        status=status,
                        method=method,
                        url=safe_url(url),
                    )
                last_status = status
                problem = f"HTTP {status} {response.reason_phrase}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > self.retry.retry_after_max_s:
                raise RetriesExhausted(
                    f"{shown}: {problem}; the source asks to retry after {retry_after:g} s",
                    retry_after_s=retry_after,
                    status=last_status,
                )
            if attempt >= self.retry.attempts:
                raise RetriesExhausted(
                    f"{shown}: {problem} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",
                    # Only the source's own Retry-After travels up: the scheduler has its own backoff,
                    # and this client's short in-run delays would make it retry in a storm.
                    retry_after_s=retry_after,
                    status=last_status,
                )
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.warning(
                "%s: %s; retry %d of %d in %.2f s", shown, problem, attempt, self.retry.attempts - 1, delay
            )
            self._sleep(delay)


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    """A short excerpt of an error body (TMF errors carry ``reason``/``message``)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:200]}" if text else ""
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("reason", "message", "error_description", "error") if body.get(k)]
        if parts:
            return ": " + "; ".join(parts)[:200]
    return ""
