"""The cost of authentication: the wall refresh and the Incidents grid's refresh, without credentials
and with them, in the same run.

Builds a fresh store (a SQLite file in a temporary folder, or a disposable schema on PostgreSQL) with
the simulator's world at --subscribers, churn signals, KPIs and --alarms active alarms ranked into the
queue (bench/_data.py, then one queue refresh), then two apps on it:
- before: ``security.anonymous_role: viewer`` and requests without credentials: the guard still
  runs every rule, but finds no credential to check and lets the anonymous viewer in;
- after: the default settings, with (a) ``token``: a viewer's API token (``Authorization: Bearer``),
  verified on every request; (b) ``session``: a viewer's session cookie from the login form.
For each, --requests of:
- ``wall``: ``GET /api/v1/wall?have=<versions of the previous answer>``, as the wall screen asks it
  (a timer's request, ``X-Vantage-Passive``), as bench/wall.py measures it;
- ``queue``: the Incidents grid's refresh callback (``POST /_dash-update-component``, its timer
  firing, the default filters), checked to answer 200 with rows.
The six (surface, variant) requests of a round go in an order rotated each round, so drift hits each
alike; every --change-every rounds one interval's changes arrive (a few alarms raised and cleared,
customers changed) and the queue is refreshed, between rounds. Also times ``tokens.verify`` alone
(``token_verify_p50_ms``). Prints progress, and ends with one line of JSON: p50 and p95 of each
(``wall_before_p95_ms``, ``wall_token_p95_ms``, ``queue_session_p50_ms``...), what authentication adds
(``overhead_wall_token_p95_ms``: after minus before), and ``ratio``: the worst p95 after over the p95
before of the same surface.

    .venv/bin/python bench/auth.py [--subscribers 100000] [--alarms 200] [--backend sqlite|postgresql]
                                   [--requests 300] [--change-every 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import itertools
import json
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import numpy as np
from sqlalchemy import select, text

from bench import _auth, _data
from dashboard import ids
from dashboard.app import create_app
from dashboard.auth import tokens
from dashboard.config import ConnectorConfig, SecurityConfig, Settings, WallConfig
from dashboard.context import Context
from dashboard.guard.session import PASSIVE_HEADER
from dashboard.incidents.queue import refresh_queue
from dashboard.kpis import load_catalogue
from dashboard.store.schema import connector_runs, incident_queue

ROOT = Path(__file__).resolve().parents[1]
CALLBACK_ROUTE = "/_dash-update-component"
SURFACES = ("wall", "queue")
VARIANTS = ("before", "token", "session")
AFTER = ("token", "session")
WARMUP_ROUNDS = 5


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _settings(store: Any, security: SecurityConfig) -> Settings:
    return Settings(
        database_url=store.url,
        connectors=[ConnectorConfig(name="bench", type="simulator", interval=3600)],
        wall=WallConfig(refresh_s=10),
        security=security,
    )


def _mark_source_fresh(store: Any, at: datetime) -> None:
    with store.begin() as conn:
        conn.execute(
            connector_runs.insert().values(
                connector="bench", started_at=at, finished_at=at, status="success", records_in=0
            )
        )


# --- the queue callback's request ------------------------------------------------------------------


def _endpoint(spec: str) -> dict[str, Any]:
    ident, _, prop = spec.rpartition(".")
    return {"id": ident, "property": prop}


def queue_callback(app: dash.Dash, store: Any) -> tuple[str, Callable[[int], dict[str, Any]]]:
    """The Incidents grid's refresh callback: its output key, and the body of its n-th timer firing
    with the page's default filters (what the browser sends, built from the callback map)."""
    from dashboard.pages import incidents as incidents_page  # a page registers itself: after the app

    [key] = [k for k in app.callback_map if f"{ids.INCIDENTS_GRID}.rowData" in k]
    cb = app.callback_map[key]
    facets = incidents_page.read_facets(store)
    shown: dict[str, Any] = {  # what the page holds, by "id.property"; the rest is None
        f"{ids.INCIDENTS_STATE}.value": list(incidents_page.DEFAULT_STATES),
        f"{ids.INCIDENTS_REGION}.options": incidents_page.region_options(facets),
        f"{ids.INCIDENTS_OWNER}.options": incidents_page.owner_options(facets),
    }
    timer = f"{ids.INCIDENTS_INTERVAL}.n_intervals"
    outputs = [_endpoint(p) for p in key.strip(".").split("...")]

    def body(n: int) -> dict[str, Any]:
        def value(item: dict[str, Any]) -> Any:
            name = f"{item['id']}.{item['property']}"
            return n if name == timer else shown.get(name)

        return {
            "output": key,
            "outputs": outputs,
            "inputs": [dict(i, value=value(i)) for i in cb["inputs"]],
            "state": [dict(s, value=value(s)) for s in cb.get("state", [])],
            "changedPropIds": [timer],
        }

    return key, body


def grid_rows(answer: Any) -> int:
    """The number of rows a refresh callback's answer puts in the grid (asserts it answered 200)."""
    assert answer.status_code == 200, (answer.status_code, answer.get_data(as_text=True)[:300])
    rows = answer.get_json()["response"][ids.INCIDENTS_GRID]["rowData"]
    return len(rows)


# --- the measurement -------------------------------------------------------------------------------


class Variant:
    """One way of asking: a test client, the headers its callbacks need, its own wall versions."""

    def __init__(self, name: str, client: Any, origin: bool) -> None:
        self.name, self.client = name, client
        self.post_headers = {"Origin": _auth.TEST_ORIGIN} if origin else {}
        self.have: dict[str, Any] = {}

    def wall(self) -> float:
        query = ",".join(f"{k}:{v}" for k, v in self.have.items())
        t0 = time.perf_counter()
        answer = self.client.get(f"/api/v1/wall?have={query}", headers={PASSIVE_HEADER: "1"})
        ms = (time.perf_counter() - t0) * 1000
        assert answer.status_code == 200, (self.name, answer.status_code, answer.get_data()[:300])
        self.have = answer.get_json()["versions"]
        return ms

    def queue(self, body: dict[str, Any]) -> tuple[float, int]:
        payload = json.dumps(body)
        t0 = time.perf_counter()
        answer = self.client.post(
            CALLBACK_ROUTE, data=payload, content_type="application/json", headers=self.post_headers
        )
        ms = (time.perf_counter() - t0) * 1000
        return ms, grid_rows(answer)


def variants(store: Any) -> tuple[dict[str, Variant], str, Callable[[int], dict[str, Any]]]:
    """The three ways of asking, each with its client (pages loaded once), and the queue callback."""
    before = create_app(Context.build(_settings(store, SecurityConfig(anonymous_role="viewer")), store=store))
    after = create_app(Context.build(_settings(store, SecurityConfig()), store=store))
    anonymous = before.server.test_client()
    with_token = after.server.test_client()
    _auth.authorize(with_token, store, "viewer")
    with_session = after.server.test_client()
    _auth.log_in(with_session, *_auth.user(store, "viewer"))
    out = {
        "before": Variant("before", anonymous, origin=True),
        "token": Variant("token", with_token, origin=False),
        "session": Variant("session", with_session, origin=True),
    }
    for v in out.values():
        page = v.client.get("/incidents")
        assert page.status_code == 200, (v.name, page.status_code, page.headers.get("Location"))
    bare = after.server.test_client().get("/api/v1/wall")
    assert bare.status_code == 401, f"the app after answers {bare.status_code} without credentials"
    key, body = queue_callback(after, store)
    return out, key, body


def measure(store: Any, catalogue: Any, changes: Any, args: Any, start: datetime) -> dict[str, Any]:
    asking, key, body = variants(store)
    tasks = list(itertools.product(SURFACES, VARIANTS))
    times: dict[tuple[str, str], list[float]] = {t: [] for t in tasks}
    rows: list[int] = []
    t = start
    for i in range(WARMUP_ROUNDS + args.requests):
        if i > WARMUP_ROUNDS and args.change_every and (i - WARMUP_ROUNDS) % args.change_every == 0:
            t += timedelta(seconds=30)
            changes.apply(t)
            refresh_queue(store, catalogue.scoring, now=t)
        shift = i % len(tasks)
        for surface, name in tasks[shift:] + tasks[:shift]:
            v = asking[name]
            if surface == "wall":
                ms = v.wall()
            else:
                ms, n = v.queue(body(i + 1))
                assert n > 0, f"the grid refresh ({name}) answered no rows"
                rows.append(n)
            if i >= WARMUP_ROUNDS:
                times[(surface, name)].append(ms)
        done = i + 1 - WARMUP_ROUNDS
        if done > 0 and done % 50 == 0:
            _say(
                f"{done}/{args.requests} rounds: p95 "
                + ", ".join(f"{s} {n} {_p(times[(s, n)], 95)}" for s, n in tasks)
            )
    res: dict[str, Any] = {"queue_callback": key, "queue_rows": int(np.median(rows))}
    for (surface, name), values in times.items():
        res[f"{surface}_{name}_p50_ms"] = _p(values, 50)
        res[f"{surface}_{name}_p95_ms"] = _p(values, 95)
    ratios = []
    for surface in SURFACES:
        before = times[(surface, "before")]
        for name in AFTER:
            after = times[(surface, name)]
            for q in (50, 95):
                res[f"overhead_{surface}_{name}_p{q}_ms"] = round(
                    float(np.percentile(after, q) - np.percentile(before, q)), 1
                )
            ratios.append(float(np.percentile(after, 95) / np.percentile(before, 95)))
    res["ratio"] = round(max(ratios), 2)
    for surface in SURFACES:
        _say(
            f"{surface}: p95 before {res[f'{surface}_before_p95_ms']} ms, token "
            f"{res[f'{surface}_token_p95_ms']} ms (+{res[f'overhead_{surface}_token_p95_ms']}), "
            f"session {res[f'{surface}_session_p95_ms']} ms (+{res[f'overhead_{surface}_session_p95_ms']})"
        )
    return res


def time_verify(store: Any, n: int) -> dict[str, Any]:
    """``tokens.verify`` alone: what a bearer token costs a request at least."""
    bearer = _auth.token(store, "viewer")
    tokens.verify(store, bearer, now=_now())  # the first use is audited; later ones within the hour not
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert tokens.verify(store, bearer, now=_now()) is not None
        times.append((time.perf_counter() - t0) * 1000)
    return {"token_verify_p50_ms": _p(times, 50), "token_verify_p95_ms": _p(times, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--alarms", type=int, default=200)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=300, help="requests of each surface and variant")
    parser.add_argument("--change-every", type=int, default=10, help="rounds between changes (0: none)")
    args = parser.parse_args()

    catalogue = load_catalogue(ROOT / "kpi_definitions.yaml")
    out: dict[str, Any] = {
        "backend": args.backend,
        "subscribers": args.subscribers,
        "alarms": args.alarms,
        "requests": args.requests,
    }
    with tempfile.TemporaryDirectory() as tmp:
        store, drop = _data.open_store(args.backend, tmp, "auth")
        try:
            now = _now().replace(microsecond=0)
            t0 = time.perf_counter()
            ds = _data.build(store, subscribers=args.subscribers, alarms=args.alarms, now=now, say=_say)
            refresh_queue(store, catalogue.scoring, now=now)
            out["build_s"] = round(time.perf_counter() - t0, 1)
            _mark_source_fresh(store, now)
            if args.backend == "postgresql":
                with store.begin() as conn:
                    conn.execute(text("ANALYZE"))
            with store.connect() as conn:
                out["queued"] = len(conn.execute(select(incident_queue.c.incident_id)).all())
            _say(f"built in {out['build_s']} s; {out['queued']:,} incidents in the queue")
            out.update(measure(store, catalogue, _data.Changes(ds, store), args, now))
            out.update(time_verify(store, args.requests))
        finally:
            drop()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
