"""Listener endpoints for sources that push (TMF hub notifications, VES): mounted on the web server.

Each enabled connector's ``push_routes()`` is served at ``/push/<connector name><path>``. Every
sender proves the connector's listener secret first (:func:`sender_refusal`; ``listener`` in the
connector's settings), and requests from web pages are refused. What a
handler returns is ingested through the one ingest path; a handler that fails still leaves the
request body in quarantine with the reason, so a pushed event is never lost silently.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from connectors.base import Batch, PushRequest, PushResponse, PushRoute, Reject
from dashboard.config import ConnectorConfig, Settings
from dashboard.guard.rules import access
from dashboard.ingest.runner import PUSH_STREAM, Ingestor, load_state, save_state

log = logging.getLogger(__name__)


def handle_push(ingestor: Ingestor, connector: str, route: PushRoute, req: PushRequest) -> PushResponse:
    """Run a route's handler and ingest what it returns; never raises."""
    try:
        resp = route.handler(req)
    except RecursionError:  # JSON nested deeper than any parser should follow: the sender's fault
        reason = "body nested too deeply"
        resp = PushResponse(
            status=400,
            body={"code": "400", "reason": reason},
            batches=[Batch(kind="unknown", rejects=[Reject(raw=req.body[:65536], reason=reason)])],
        )
    except Exception as err:  # a handler bug must not lose the event
        log.exception("push handler %s%s failed", connector, route.path)
        resp = PushResponse(
            status=500,
            body={"code": "500", "reason": f"could not process the event: {type(err).__name__}"},
            batches=[Batch(kind="unknown", rejects=[Reject(raw=req.body, reason=f"handler error: {err}")])],
        )
    counts = ingestor.ingest(connector, resp.batches, stream=PUSH_STREAM)
    # Cumulative counts and the last event, for the Sources page and /healthz: read with a row lock
    # (PostgreSQL; SQLite serialises writers) and written in one transaction, so they stay exact.
    with ingestor.store.begin() as conn:
        now = ingestor.clock()
        prev = load_state(conn, connector, PUSH_STREAM, for_update=True)
        state = {
            "last_event_at": now.isoformat(),
            "last_path": route.path,
            "last_status": resp.status,
            "requests": int(prev.get("requests", 0)) + 1,
            "records_in": int(prev.get("records_in", 0)) + counts.records_in,
            "upserted": int(prev.get("upserted", 0)) + counts.upserted,
            "quarantined": int(prev.get("quarantined", 0)) + counts.quarantined,
        }
        save_state(conn, connector, PUSH_STREAM, state, now=now)
    log.debug("push %s%s: %s", connector, route.path, counts)
    return resp


READ_CHUNK = 64 * 1024


def read_bounded(limit: int) -> bytes | None:
    """The request body, read in chunks; None as soon as it is longer than ``limit`` (a declared
    Content-Length over the limit is refused before reading anything)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    parts: list[bytes] = []
    size = 0
    stream = request.stream
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)


SIGNATURE_HEADER = "X-Vantage-Signature"


def sender_refusal(cfg: ConnectorConfig, body: bytes | None) -> str | None:
    """Why this push request is refused before it is read as an event, or None to accept it.

    A request carrying an Origin header came from a web page: refused unless that origin is listed
    (sources are servers). Then the sender must prove the connector's listener secret: a bearer
    token (header, or RFC 6750's ``access_token`` query parameter) or an HMAC-SHA256 signature of
    the body, as the connector's ``listener.auth`` says.
    """
    origin = request.headers.get("Origin")
    if origin is not None and origin not in cfg.listener.allowed_origins:
        return "requests from web pages are refused"
    mode = cfg.listener.auth
    if mode == "none":
        return None
    secret = cfg.listener_secret()
    if secret is None:
        return f"no listener secret is configured (set ${cfg.listener_secret_env()})"
    if mode == "bearer":
        header = request.headers.get("Authorization", "")
        sent = header[7:].strip() if header[:7].lower() == "bearer " else request.args.get("access_token", "")
        if not sent or not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), secret.encode()):
            return "missing or wrong bearer token"
        return None
    signature = request.headers.get(SIGNATURE_HEADER, "")
    expected = "sha256=" + hmac.new(secret.encode(), body or b"", hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(
        signature.encode("utf-8", "surrogatepass"), expected.encode()
    ):
        return "missing or wrong body signature"
    return None


def _refused(ingestor: Ingestor, connector: str, route: PushRoute, reason: str) -> Any:
    """Count a refused sender in the listener's state (the Sources page and /healthz show it); the
    body of an unauthenticated request is not kept."""
    log.warning("push %s%s refused: %s", connector, route.path, reason)
    with ingestor.store.begin() as conn:
        prev = load_state(conn, connector, PUSH_STREAM, for_update=True)
        state = dict(prev)
        state["refused"] = int(prev.get("refused", 0)) + 1
        state["last_refused_at"] = ingestor.clock().isoformat()
        state["last_refused_reason"] = reason
        save_state(conn, connector, PUSH_STREAM, state, now=ingestor.clock())
    code = 403 if "web pages" in reason else 401
    out = jsonify({"code": str(code), "reason": reason})
    out.status_code = code
    if code == 401:
        out.headers["WWW-Authenticate"] = 'Bearer realm="vantage-listener"'
    return out


def _view(ingestor: Ingestor, cfg: ConnectorConfig, route: PushRoute) -> Callable[[], Any]:
    connector = cfg.name

    @access("push")
    def view() -> Any:
        signed = cfg.listener.auth == "hmac"
        # A bearer is checked before the body is read: an unauthenticated sender costs nothing.
        refusal = None if signed else sender_refusal(cfg, None)
        if refusal is not None:
            return _refused(ingestor, connector, route, refusal)
        body = read_bounded(route.max_body_bytes)
        refusal = sender_refusal(cfg, body) if signed and body is not None else None
        if refusal is not None:
            return _refused(ingestor, connector, route, refusal)
        if body is None:
            reason = f"body larger than {route.max_body_bytes} bytes: refused unread"
            log.warning("push %s%s: %s", connector, route.path, reason)
            resp = PushResponse(
                status=413,
                body={"code": "413", "reason": reason},
                batches=[Batch(kind="unknown", rejects=[Reject(raw=dict(request.headers), reason=reason)])],
            )
            ingestor.ingest(connector, resp.batches, stream=PUSH_STREAM)
            out = jsonify(resp.body)
            out.status_code = 413
            return out
        req = PushRequest(path=route.path, body=body, headers=dict(request.headers), query=dict(request.args))
        resp = handle_push(ingestor, connector, route, req)
        if resp.body is None:
            return Response(status=resp.status)
        out = jsonify(resp.body)
        out.status_code = resp.status
        return out

    return view


def mount_push_routes(server: Flask, settings: Settings, ingestor: Ingestor) -> list[str]:
    """Serve every enabled connector's push routes; return the mounted URL rules."""
    mounted: list[str] = []
    for cfg in settings.enabled_connectors:
        try:
            connector = cfg.build(ingestor.clock)
        except Exception:  # one misconfigured connector must not take the pages down with it
            log.exception("connector %s cannot be built; its listener routes are not served", cfg.name)
            continue
        for route in connector.push_routes():
            rule = f"/push/{cfg.name}{route.path}"
            server.add_url_rule(
                rule,
                endpoint=f"push:{cfg.name}:{route.path}",
                view_func=_view(ingestor, cfg, route),
                methods=list(route.methods),
            )
            mounted.append(rule)
    return mounted
