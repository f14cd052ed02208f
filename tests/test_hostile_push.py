"""Listeners under hostile senders: a body is never read past its limit, however it is sent, and
JSON nested past any sense is a 400, not a crash."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from dashboard.config import settings_from_mapping
from dashboard.push import READ_CHUNK
from dashboard.store import Store
from dashboard.store.schema import quarantine
from tests.apps import new_app
from tests.browser import live_server

LIMIT = 1024 * 1024  # the VES connector's smallest allowed max_body_bytes is 1 KiB; 1 MiB here
EVENT = "/push/ves/eventListener/v7"


SECRET = "listener-secret-for-tests"


@pytest.fixture
def base(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("VANTAGE_LISTENER_SECRET_VES", SECRET)
    settings = settings_from_mapping(
        {
            "database_url": sqlite_store.url,
            "connectors": [{"name": "ves", "type": "ves", "options": {"max_body_bytes": LIMIT}}],
        },
        environ={},
    )
    with live_server(new_app(sqlite_store, settings).server) as url:
        yield url


def _post(
    base: str, body: bytes | Iterator[bytes], *, chunked: bool = False
) -> tuple[int, dict[str, object]]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"}
    conn.request("POST", EVENT, body=body, headers=headers, encode_chunked=chunked)
    resp = conn.getresponse()
    payload = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, payload


def test_a_declared_oversize_body_is_refused_unread(base: str, sqlite_store: Store) -> None:
    status, body = _post(base, b"{" + b" " * (LIMIT + 10) + b"}")
    assert status == 413 and "refused unread" in str(body)
    with sqlite_store.connect() as conn:
        [row] = conn.execute(select(quarantine.c.reason, quarantine.c.connector)).all()
    assert row.connector == "ves" and "larger than" in row.reason


def test_a_chunked_body_stops_being_read_at_the_limit(base: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(4 * LIMIT // READ_CHUNK):  # four times the limit, with no length declared
            yield b" " * READ_CHUNK

    try:
        status, _ = _post(base, chunks(), chunked=True)
    except (ConnectionError, http.client.HTTPException):
        status = 413  # the server may close the connection once it has answered
    assert status == 413


def test_json_nested_past_any_sense_is_400(base: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    status, body = _post(base, deep)
    assert status == 400 and "nested too deeply" in str(body)
