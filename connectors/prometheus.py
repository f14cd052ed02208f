"""Prometheus (``type: prometheus``): each PromQL ``query_range`` into one KPI, one entity per series label.

Each configured query is its own stream with its own cursor (the last evaluation time read), so
one failing query does not hold the others back. A long range is read in windows of at most
``max_points`` steps (Prometheus refuses more than 11,000 points per series); each window is one
batch and moves the cursor. Requests go through the shared HTTP client (auth, retries,
Retry-After). ``NaN`` and infinite values (a ratio over no traffic) are skipped: they are not
samples. A series without the entity label is quarantined with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorError,
    ConnectorOptions,
    FatalError,
    JSONDict,
    Reject,
    Stream,
)
from connectors.canonical import check_entity_type
from connectors.http import AuthConfig, HttpClient, RetryPolicy
from connectors.options import parse_duration


class PromQuery(BaseModel):
    """One PromQL expression -> one KPI; ``entity_label`` names the entity of each series."""

    model_config = ConfigDict(extra="forbid")

    query: str
    kpi: str
    entity_label: str
    entity_type: str = "cell"
    scale: float = 1.0
    #: Stream name (defaults to the KPI name).
    name: str | None = None

    @field_validator("entity_type")
    @classmethod
    def _etype(cls, v: str) -> str:
        return check_entity_type(v)

    @property
    def stream(self) -> str:
        return self.name or self.kpi


class PrometheusOptions(ConnectorOptions):
    """Options of ``type: prometheus``."""

    base_url: str
    queries: list[PromQuery] = Field(min_length=1)
    #: Resolution of the samples (``step`` of query_range).
    step: float = 60.0
    #: How far back the first read goes.
    lookback: float = 3600.0
    #: Evaluate no later than now minus this, so the newest point is complete.
    delay: float = 0.0
    #: Steps per request at most; longer ranges are read in several windows.
    max_points: int = Field(default=10_000, ge=1, le=11_000)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("step", "lookback", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("delay", mode="before")
    @classmethod
    def _delay(cls, v: Any) -> float:
        return 0.0 if v in (0, "0", "0s") else parse_duration(v)

    @model_validator(mode="after")
    def _unique(self) -> PrometheusOptions:
        names = [q.stream for q in self.queries]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"query stream names must be unique; set name: on {', '.join(dupes)}")
        return self


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


class PrometheusConnector(Connector[PrometheusOptions]):
    """Pulls ``query_range`` results incrementally, one stream per query."""

    type = "prometheus"
    Options = PrometheusOptions

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        super().__init__(options, context)
        self._client: HttpClient | None = None

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            self._client = HttpClient(
                self.options.base_url,
                auth=self.options.auth,
                retry=self.options.retry,
                timeout_s=self.options.timeout_s,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def streams(self) -> list[Stream]:
        return [
            Stream(q.stream, ("kpi_samples",), cursor_field="period_start", description=q.query)
            for q in self.options.queries
        ]

    def check(self) -> CheckResult:
        try:
            body = self.client.get_json("api/v1/query", params={"query": "vector(1)"})
        except ConnectorError as err:
            return CheckResult(False, str(err))
        if not isinstance(body, dict) or body.get("status") != "success":
            return CheckResult(False, f"unexpected answer to a test query: {str(body)[:200]}")
        return CheckResult(
            True, f"Prometheus API answers; {len(self.options.queries)} quer(y/ies) configured"
        )

    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        q = next((q for q in self.options.queries if q.stream == stream.name), None)
        if q is None:
            raise FatalError(f"no query for stream {stream.name!r}")
        step = self.options.step
        now = self.context.utcnow().replace(tzinfo=UTC).timestamp()
        end = math.floor((now - self.options.delay) / step) * step
        if isinstance(state.get("end"), int | float):
            start = float(state["end"]) + step
        else:
            start = math.floor((now - self.options.lookback) / step) * step
        while start <= end:
            w_end = min(end, start + step * (self.options.max_points - 1))
            body = self.client.get_json(
                "api/v1/query_range",
                params={"query": q.query, "start": _num(start), "end": _num(w_end), "step": _num(step)},
            )
            records, rejects, sources = self._samples(q, body)
            yield Batch("kpi_samples", records, rejects, state={"end": w_end}, sources=sources)
            start = w_end + step

    def _samples(
        self, q: PromQuery, body: Any
    ) -> tuple[list[dict[str, Any]], list[Reject], list[dict[str, Any]]]:
        """Samples of one answer, the series values refused, and each sample's series and value."""
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else None
            raise FatalError(f"query {q.stream!r} failed: {err or str(body)[:200]}")
        data = body.get("data") or {}
        if data.get("resultType") != "matrix":
            raise FatalError(f"query {q.stream!r}: expected a matrix, got {data.get('resultType')!r}")
        records: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        sources: list[dict[str, Any]] = []
        for series in data.get("result") or []:
            metric = series.get("metric") or {}
            entity = metric.get(q.entity_label)
            if not entity:
                rejects.append(
                    Reject(
                        {"metric": metric, "values": (series.get("values") or [])[:10]},
                        f"query {q.stream!r}: series has no label {q.entity_label!r} "
                        f"(labels: {', '.join(sorted(metric)) or 'none'})",
                    )
                )
                continue
            for ts, text in series.get("values") or []:
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    rejects.append(
                        Reject(
                            {"metric": metric, "value": [ts, text]},
                            f"query {q.stream!r}: value {text!r} is not a number",
                            entity,
                        )
                    )
                    continue
                if not math.isfinite(value):
                    continue
                records.append(
                    {
                        "entity_type": q.entity_type,
                        "entity_id": entity,
                        "kpi": q.kpi,
                        "period_start": _utc(float(ts)),
                        "value": value * q.scale,
                    }
                )
                sources.append({"metric": metric, "value": [ts, text]})
        return records, rejects, sources


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}"
