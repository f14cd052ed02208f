"""A real HTTP server on 127.0.0.1 for connector tests: routes, scripted failures, request log."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering (to provoke client timeouts)


Handler = Callable[[Request], Response]


class LoopbackServer:
    """Serve handlers by (method, path); ``script`` queues one-off responses that take precedence."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.scripted: dict[tuple[str, str], deque[Response]] = {}
        self.requests: list[Request] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def json_route(self, method: str, path: str, body: Any, status: int = 200) -> None:
        self.route(method, path, lambda _r: Response(status=status, body=body))

    def script(self, method: str, path: str, *responses: Response) -> None:
        self.scripted.setdefault((method.upper(), path), deque()).extend(responses)

    def hits(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def _dispatch(self, req: Request) -> Response:
        self.requests.append(req)
        key = (req.method, req.path)
        queue = self.scripted.get(key)
        if queue:
            return queue.popleft()
        handler = self.routes.get(key)
        if handler is None:
            return Response(404, {"code": "404", "reason": f"no route {req.method} {req.path}"})
        return handler(req)

    def start(self) -> LoopbackServer:
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                resp = server._dispatch(req)
                if resp.delay_s:
                    time.sleep(resp.delay_s)
                if isinstance(resp.body, bytes):
                    payload, ctype = resp.body, "application/octet-stream"
                elif isinstance(resp.body, str):
                    payload, ctype = resp.body.encode(), "application/json"
                elif resp.body is None:
                    payload, ctype = b"", "application/json"
                else:
                    payload, ctype = json.dumps(resp.body).encode(), "application/json"
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.headers.get("Content-Type", ctype))
                    for k, v in resp.headers.items():
                        if k != "Content-Type":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@contextmanager
def loopback() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    try:
        yield server
    finally:
        server.stop()
