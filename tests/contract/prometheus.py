"""Contract fixture for ``type: prometheus``: a loopback Prometheus answering query and query_range."""

from __future__ import annotations

from connectors.base import Connector, ConnectorContext
from connectors.prometheus import PrometheusConnector, PrometheusOptions
from tests.contract import ContractContext
from tests.loopback import Request, Response


def _range(req: Request) -> Response:
    start, end, step = (float(req.query[k][0]) for k in ("start", "end", "step"))
    points = []
    t = start
    while t <= end:
        points.append([t, "12.5"])
        t += step
    result = [
        {"metric": {"cell": "C1"}, "values": points},
        {"metric": {"cell": "C2"}, "values": [[p[0], "NaN"] for p in points]},
    ]
    return Response(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})


def build(ctx: ContractContext) -> Connector:
    ctx.http.json_route(
        "GET",
        "/api/v1/query",
        {"status": "success", "data": {"resultType": "vector", "result": []}},
    )
    ctx.http.route("GET", "/api/v1/query_range", _range)
    options = PrometheusOptions.model_validate(
        {
            "base_url": ctx.http.url,
            "step": "5m",
            "lookback": "1h",
            "queries": [
                {
                    "query": "avg by (cell) (rate(latency_sum[5m]))",
                    "kpi": "latency_ms",
                    "entity_label": "cell",
                }
            ],
        }
    )
    return PrometheusConnector(options, ConnectorContext("contract_prometheus"))
