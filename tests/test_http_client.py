"""The shared HTTP client against a real loopback server: paging, retries, auth and no leaked secrets."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from connectors.base import FatalError, RetriableError
from connectors.http import (
    AuthConfig,
    HttpClient,
    HttpStatusError,
    InvalidResponse,
    MissingSecret,
    RetriesExhausted,
    RetryPolicy,
    parse_retry_after,
    safe_url,
)
from tests.loopback import LoopbackServer, Request, Response

TOKEN = "s3cr3t-bearer-token-value"
PASSWORD = "pa55-w0rd-never-shown"
CLIENT_SECRET = "client-secret-never-shown"


class Sleeps(list[float]):
    """An injected sleep that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(server: LoopbackServer, sleeps: Sleeps, **kw: object) -> HttpClient:
    kw.setdefault("retry", RetryPolicy(attempts=3, backoff_initial_s=1.0, backoff_max_s=8.0))
    return HttpClient(server.url + "/api", sleep=sleeps, rand=lambda: 1.0, **kw)  # type: ignore[arg-type]


def listing(n: int) -> list[dict[str, str]]:
    return [{"id": str(i)} for i in range(n)]


def paged(data: list[dict[str, str]], *, total_header: bool = False):  # type: ignore[no-untyped-def]
    def handler(req: Request) -> Response:
        offset = int(req.query.get("offset", ["0"])[0])
        limit = int(req.query.get("limit", ["100"])[0])
        headers = {"X-Total-Count": str(len(data))} if total_header else {}
        return Response(200, data[offset : offset + limit], headers=headers)

    return handler


def test_offset_paging_stops_on_short_page(http_server: LoopbackServer) -> None:
    http_server.route("GET", "/api/thing", paged(listing(25)))
    with make_client(http_server, Sleeps()) as client:
        pages = list(client.pages("thing", limit=10, params={"state": "raised"}))
    assert [len(p.items) for p in pages] == [10, 10, 5]
    assert [p.offset for p in pages] == [0, 10, 20]
    assert [i["id"] for p in pages for i in p.items] == [str(i) for i in range(25)]
    hits = http_server.hits("GET", "/api/thing")
    assert [h.query["offset"] for h in hits] == [["0"], ["10"], ["20"]]
    assert all(h.query["state"] == ["raised"] for h in hits)


def test_x_total_count_ends_the_listing_without_an_empty_page(http_server: LoopbackServer) -> None:
    http_server.route("GET", "/api/thing", paged(listing(20), total_header=True))
    with make_client(http_server, Sleeps()) as client:
        pages = list(client.pages("thing", limit=10))
    assert [len(p.items) for p in pages] == [10, 10]
    assert pages[0].total == 20
    assert len(http_server.hits("GET", "/api/thing")) == 2  # without the header a third, empty page


def test_link_next_is_followed(http_server: LoopbackServer) -> None:
    http_server.json_route("GET", "/api/thing", listing(2))
    http_server.script(
        "GET",
        "/api/thing",
        Response(200, listing(2), headers={"Link": '</api/cursor?after=abc>; rel="next"'}),
    )
    http_server.json_route("GET", "/api/cursor", [{"id": "last"}])
    with make_client(http_server, Sleeps()) as client:
        ids = [i["id"] for p in client.pages("thing", limit=2) for i in p.items]
    assert ids == ["0", "1", "last"]
    assert http_server.hits("GET", "/api/cursor")[0].query == {"after": ["abc"]}


def test_500_then_success_retries_with_backoff(http_server: LoopbackServer) -> None:
    http_server.json_route("GET", "/api/thing", {"ok": True})
    http_server.script("GET", "/api/thing", Response(500, {"reason": "boom"}), Response(503))
    sleeps = Sleeps()
    with make_client(http_server, sleeps) as client:
        assert client.get_json("thing") == {"ok": True}
    assert len(http_server.hits("GET", "/api/thing")) == 3
    assert sleeps == [1.0, 2.0]  # exponential: initial, then doubled (jitter pinned by rand=1)


def test_jitter_spreads_waits(http_server: LoopbackServer) -> None:
    http_server.json_route("GET", "/api/thing", {"ok": True})
    http_server.script("GET", "/api/thing", Response(500))
    sleeps = Sleeps()
    client = HttpClient(
        http_server.url, sleep=sleeps, rand=lambda: 0.0, retry=RetryPolicy(backoff_initial_s=4.0)
    )
    client.get("api/thing")
    assert sleeps == [2.0]  # equal jitter: half of the backoff is random


def test_429_retry_after_seconds_is_honoured(http_server: LoopbackServer) -> None:
    http_server.json_route("GET", "/api/thing", [])
    http_server.script("GET", "/api/thing", Response(429, headers={"Retry-After": "7"}))
    sleeps = Sleeps()
    with make_client(http_server, sleeps) as client:
        client.get("thing")
    assert sleeps == [7.0]


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after("12", now=now) == 12.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_retry_after_beyond_the_cap_fails_fast_as_retriable(http_server: LoopbackServer) -> None:
    http_server.script("GET", "/api/thing", Response(429, headers={"Retry-After": "3600"}))
    sleeps = Sleeps()
    with make_client(http_server, sleeps) as client, pytest.raises(RetriableError) as info:
        client.get("thing")
    assert info.value.retry_after_s == 3600.0
    assert sleeps == []  # not waited out inside the run: the scheduler backs off
    assert len(http_server.hits("GET", "/api/thing")) == 1


def test_timeout_then_success(http_server: LoopbackServer) -> None:
    http_server.json_route("GET", "/api/thing", {"ok": True})
    http_server.script("GET", "/api/thing", Response(200, {"late": True}, delay_s=0.5))
    sleeps = Sleeps()
    with make_client(http_server, sleeps, timeout_s=0.1) as client:
        assert client.get_json("thing") == {"ok": True}
    assert len(sleeps) == 1


def test_retries_exhausted_raise_retriable_with_retry_after(http_server: LoopbackServer) -> None:
    http_server.route("GET", "/api/thing", lambda _r: Response(503, headers={"Retry-After": "2"}))
    sleeps = Sleeps()
    with make_client(http_server, sleeps) as client, pytest.raises(RetriesExhausted) as info:
        client.get("thing")
    assert isinstance(info.value, RetriableError)
    assert info.value.retry_after_s == 2.0
    assert info.value.status == 503
    assert "gave up after 3 attempts" in str(info.value)
    assert len(http_server.hits("GET", "/api/thing")) == 3
    assert sleeps == [2.0, 2.0]


def test_404_is_fatal_and_not_retried(http_server: LoopbackServer) -> None:
    sleeps = Sleeps()
    with make_client(http_server, sleeps) as client, pytest.raises(FatalError) as info:
        client.get("missing")
    assert isinstance(info.value, HttpStatusError) and info.value.status == 404
    assert "HTTP 404" in str(info.value)
    assert sleeps == [] and len(http_server.requests) == 1


def test_body_that_is_not_json_is_invalid_response(http_server: LoopbackServer) -> None:
    http_server.json_route("GET", "/api/thing", "{not json")
    with make_client(http_server, Sleeps()) as client, pytest.raises(InvalidResponse) as info:
        list(client.pages("thing"))
    assert info.value.text == "{not json"


def test_bearer_and_basic_auth_headers(http_server: LoopbackServer) -> None:
    http_server.json_route("GET", "/api/thing", [])
    env = {"T": TOKEN, "P": PASSWORD}
    with make_client(http_server, Sleeps(), auth=AuthConfig(type="bearer", token_env="T"), environ=env) as c:
        c.get("thing")
    with make_client(
        http_server,
        Sleeps(),
        environ=env,
        auth=AuthConfig(type="basic", username="vantage", password_env="P"),
    ) as c:
        c.get("thing")
    first, second = http_server.hits("GET", "/api/thing")
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert (
        second.headers["authorization"]
        == "Basic " + base64.b64encode(f"vantage:{PASSWORD}".encode()).decode()
    )


def test_missing_secret_names_the_variable_only() -> None:
    client = HttpClient("http://127.0.0.1:9", auth=AuthConfig(type="bearer", token_env="NOPE"), environ={})
    with pytest.raises(MissingSecret, match="NOPE"):
        client.get("x")


def test_auth_config_requires_its_fields() -> None:
    with pytest.raises(ValueError, match="token_env"):
        AuthConfig(type="bearer")
    with pytest.raises(ValueError, match="client_secret_env"):
        AuthConfig(type="oauth2", token_url="/token", client_id="x")


def test_oauth2_client_credentials_fetched_cached_and_refreshed(http_server: LoopbackServer) -> None:
    issued: list[str] = []

    def token(req: Request) -> Response:
        issued.append(f"tok-{len(issued) + 1}")
        return Response(200, {"access_token": issued[-1], "token_type": "Bearer", "expires_in": 100})

    http_server.route("POST", "/oauth/token", token)
    http_server.json_route("GET", "/api/thing", [])
    now = [1000.0]
    client = make_client(
        http_server,
        Sleeps(),
        clock=lambda: now[0],
        environ={"CID": "vantage", "CS": CLIENT_SECRET},
        auth=AuthConfig(
            type="oauth2",
            token_url=http_server.url + "/oauth/token",
            client_id_env="CID",
            client_secret_env="CS",
            scope="tmf642",
        ),
    )
    client.get("thing")
    client.get("thing")
    assert issued == ["tok-1"]  # cached
    form = http_server.hits("POST", "/oauth/token")[0]
    assert b"grant_type=client_credentials" in form.body and b"scope=tmf642" in form.body
    assert form.headers["authorization"].startswith("Basic ")
    now[0] += 95  # within the early-renewal margin of expires_in=100
    client.get("thing")
    assert issued == ["tok-1", "tok-2"]
    http_server.script("GET", "/api/thing", Response(401))  # revoked: refresh once and retry
    client.get("thing")
    assert issued == ["tok-1", "tok-2", "tok-3"]
    auths = [h.headers["authorization"] for h in http_server.hits("GET", "/api/thing")]
    assert auths == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2", "Bearer tok-3"]
    http_server.script("GET", "/api/thing", Response(401), Response(401))
    with pytest.raises(HttpStatusError) as info:  # a second 401 is not a token problem
        client.get("thing")
    assert info.value.status == 401


def test_secrets_never_in_errors_or_logs(
    http_server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    # A hostile source that echoes the credentials it received back in its error bodies.
    def echo(req: Request) -> Response:
        return Response(403, {"reason": f"denied for {req.headers.get('authorization')}"})

    http_server.route("GET", "/api/echo", echo)
    http_server.route("GET", "/api/down", lambda _r: Response(500, f"down {TOKEN}"))
    env = {"T": TOKEN, "P": PASSWORD}
    errors: list[str] = []
    for auth in (
        AuthConfig(type="bearer", token_env="T"),
        AuthConfig(type="basic", username="u", password_env="P"),
    ):
        with make_client(http_server, Sleeps(), auth=auth, environ=env) as client:
            for path in ("echo", "down", f"other?access_token={TOKEN}"):
                with pytest.raises((FatalError, RetriableError)) as info:
                    client.get(path)
                errors.append(str(info.value))
    assert any("denied for" in e for e in errors) and any("HTTP 500" in e for e in errors)
    basic = base64.b64encode(f"u:{PASSWORD}".encode()).decode()
    for text in [*errors, caplog.text]:
        assert TOKEN not in text and PASSWORD not in text and basic not in text
    assert "access_token=***" in errors[2]


def test_credentials_in_the_base_url_are_refused() -> None:
    with pytest.raises(FatalError) as info:
        HttpClient(f"https://user:{PASSWORD}@example.test/api")
    assert PASSWORD not in str(info.value)
    assert safe_url(f"https://user:{PASSWORD}@example.test:8443/a?apikey=k&x=1") == (
        "https://example.test:8443/a?apikey=***&x=1"
    )
