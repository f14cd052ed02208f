"""Shared helpers of the TMF contract cases: payloads served with TMF paging."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, ConnectorContext
from tests.loopback import LoopbackServer, Request, Response


def serve_listing(http: LoopbackServer, path: str, items: list[Any]) -> None:
    """Serve ``items`` at ``GET path`` with TMF offset/limit paging and X-Total-Count."""

    def handler(req: Request) -> Response:
        offset = int(req.query.get("offset", ["0"])[0])
        limit = int(req.query.get("limit", ["100"])[0])
        return Response(200, items[offset : offset + limit], headers={"X-Total-Count": str(len(items))})

    http.route("GET", path, handler)


def tmf_connector(cls: type[Connector], http: LoopbackServer, name: str, **options: Any) -> Connector:
    """A TMF connector of ``cls`` pointed at the loopback server, with fast retries."""
    opts = cls.Options.model_validate(
        {"base_url": http.url, "retry": {"attempts": 2, "backoff_initial_s": 0.0}, **options}
    )
    connector = cls(opts, ConnectorContext(name=name))
    connector.sleep = lambda _s: None  # type: ignore[attr-defined]
    return connector
