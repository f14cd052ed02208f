"""Many screens at once: `vantage serve` (gunicorn, 2 workers) + Redis + a separate scheduler under the
load of a NOC, with the shared cache and without.

On a store (``--database-url``; without one, a small SQLite store built here with ``vantage
simulate``) it starts ``vantage scheduler`` (its writers bump the cache's versions) and, per
phase, ``vantage serve --workers 2`` with the shared cache on, then off (``cache.enabled: false``:
Redis then holds the store-query counts only). In each phase, for ``--minutes`` (the cached
phase) or ``--baseline-minutes`` (the uncached one), every client is logged in with a real account
(a session through the login form, or an API token):

- ``--walls`` wall screens (default 50): ``GET /api/v1/wall?have=...`` every 10 s, as assets/wall.js
  asks it (the versions it has, ``X-Vantage-Passive``);
- ``--noc`` NOC users on /incidents (default 20): the list callback and the overview strip's callback
  every 15 s (Dash POSTs, bodies built from ``/_dash-dependencies`` as the browser does), and an
  incident's detail callback every 30 s;
- ``--api`` API clients (default 10) with tokens: ``/api/v1/incidents?limit=100`` every 5 s, and
  every third time one incident ``/api/v1/incidents/<id>``;
- one analyst on the value-sorted subscriber list (``/api/v1/subscribers?sort=value``: the search
  the Subscribers page's grid runs) every 10 s.

Reports per phase the error rate, p50/p95 per route, the web workers' and the scheduler's store
queries per minute (counted per process by a SQLAlchemy event and summed in Redis), and the ratio of
the web store queries without and with the cache; the load generator's own CPU is printed so it can
be seen not to be the bottleneck. Goals (p95): wall <= 100 ms, incidents callback and API <= 150 ms,
incident detail <= 150 ms, subscriber value-sorted page <= 200 ms; error rate 0. Ends with one line of
JSON.

    .venv/bin/python bench/load.py [--database-url URL] [--subscribers 2000 --days 2] [--minutes 10]
                                   [--baseline-minutes 2] [--walls 50 --noc 20 --api 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import concurrent.futures
import json
import os
import random
import re
import resource
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import numpy as np
import redis
import yaml

from bench import _auth
from connectors.base import utcnow
from dashboard import ids
from dashboard.auth import users
from dashboard.store import Store

ROOT = Path(__file__).resolve().parents[1]
VANTAGE = str(Path(sys.executable).with_name("vantage"))
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
GOALS_P95_MS = {
    "wall": 100,
    "incidents_list_cb": 150,
    "api_incidents": 150,
    "api_incident": 150,
    "incident_detail_cb": 150,
    "subscribers_value": 200,
}
WARMUP_S = 20.0


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- what the clients record -------------------------------------------------------------------


@dataclass
class Record:
    """Latencies (ms) and failures per route, recorded from ``start`` on."""

    start: float = 0.0
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, route: str, began: float, ms: float, ok: bool, detail: str = "") -> None:
        if began < self.start:
            return
        with self.lock:
            self.times[route].append(ms)
            if not ok:
                self.errors[route] += 1
                self.samples.setdefault(route, detail[:200])

    def summary(self) -> dict[str, Any]:
        routes = {}
        for route, ts in sorted(self.times.items()):
            routes[route] = {
                "n": len(ts),
                "errors": self.errors.get(route, 0),
                "p50_ms": round(float(np.percentile(ts, 50)), 1),
                "p95_ms": round(float(np.percentile(ts, 95)), 1),
            }
        n = sum(len(t) for t in self.times.values())
        errors = sum(self.errors.values())
        return {
            "requests": n,
            "errors": errors,
            "error_rate": round(errors / n, 5) if n else None,
            "routes": routes,
            "error_samples": dict(self.samples),
        }


def _timed(rec: Record, route: str, call: Callable[[], httpx.Response]) -> httpx.Response | None:
    began = time.monotonic()
    try:
        resp = call()
    except httpx.HTTPError as err:
        rec.add(route, began, (time.monotonic() - began) * 1000, False, f"{type(err).__name__}: {err}")
        return None
    ok = 200 <= resp.status_code < 300
    rec.add(route, began, (time.monotonic() - began) * 1000, ok, f"{resp.status_code} {resp.text[:150]}")
    return resp


# --- Dash callbacks as the browser sends them -------------------------------------------------------


def _dependencies(client: httpx.Client) -> list[dict[str, Any]]:
    resp = client.get("/_dash-dependencies")
    resp.raise_for_status()
    return list(resp.json())


def _callback_body(
    deps: list[dict[str, Any]], output_part: str, values: dict[str, Any], changed: str
) -> dict[str, Any]:
    """The body of the callback whose output names ``output_part``, inputs and states set from
    ``values`` ("id.property" -> value; None otherwise), ``changed`` the input that fired it."""
    (dep,) = [d for d in deps if output_part in d["output"]]
    outputs = [
        {"id": part.rpartition(".")[0], "property": part.rpartition(".")[2]}
        for part in dep["output"].strip(".").split("...")
    ]

    def filled(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")}
            for i in items
        ]

    return {
        "output": dep["output"],
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": filled(dep["inputs"]),
        "state": filled(dep.get("state", [])),
        "changedPropIds": [changed],
    }


# --- the clients -----------------------------------------------------------------------------------


def _login(base: str, name: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30.0)
    form = client.get("/login")
    found = _CSRF.search(form.text)
    if form.status_code != 200 or found is None:
        raise SystemExit(f"login form: {form.status_code}")
    answer = client.post(
        "/login",
        data={"username": name, "password": password, "csrf": found.group(1), "next": "/"},
        headers={"Origin": base},
    )
    if answer.status_code != 303:
        raise SystemExit(f"login of {name}: {answer.status_code} {answer.text[:200]}")
    return client


@contextmanager
def _closing(client: httpx.Client) -> Iterator[httpx.Client]:
    try:
        yield client
    finally:
        client.close()


class Load:
    """The simulated screens and clients of one phase, each a thread with its own connection."""

    def __init__(self, base: str, accounts: dict[str, Any], args: argparse.Namespace, rec: Record) -> None:
        self.base, self.accounts, self.args, self.rec = base, accounts, args, rec
        self.stop = threading.Event()
        self.incident_ids: list[str] = []
        self.threads: list[threading.Thread] = []
        self.sessions: dict[str, httpx.Client] = {}

    def log_in(self) -> None:
        """Log every screen in first, two at a time (each login checks a password hash, made slow
        on purpose): seventy at once would measure the login, not the screens."""
        a = self.args
        who = [(f"wall-{i}", self.accounts["wall"]) for i in range(a.walls)]
        who += [(f"noc-{i}", self.accounts["noc"][i]) for i in range(a.noc)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            done = pool.map(lambda item: (item[0], _login(self.base, *item[1])), who)
            self.sessions = dict(done)

    def _pause(self, period_s: float) -> bool:
        return not self.stop.wait(period_s)

    def wall(self, i: int) -> None:
        client = self.sessions[f"wall-{i}"]
        with _closing(client):
            client.get("/wall")
            have = ""
            self.stop.wait(random.uniform(0, 10))  # screens switched on at different moments
            while True:
                resp = _timed(
                    self.rec,
                    "wall",
                    partial(
                        client.get, "/api/v1/wall", params={"have": have}, headers={"X-Vantage-Passive": "1"}
                    ),
                )
                if resp is not None and resp.status_code == 200:
                    have = ",".join(f"{k}:{v}" for k, v in resp.json()["versions"].items())
                if not self._pause(10.0):
                    return

    def noc(self, i: int) -> None:
        client = self.sessions[f"noc-{i}"]
        with _closing(client):
            client.get("/incidents")
            deps = _dependencies(client)
            origin = {"Origin": self.base}
            n = 0
            next_detail = time.monotonic() + random.uniform(0, 30)
            self.stop.wait(random.uniform(0, 15))
            while True:
                n += 1
                values = {
                    f"{ids.INCIDENTS_INTERVAL}.n_intervals": n,
                    f"{ids.INCIDENTS_REGION}.value": "any",
                    f"{ids.INCIDENTS_SEGMENT}.value": "any",
                    f"{ids.INCIDENTS_SEVERITY}.value": "any",
                    f"{ids.INCIDENTS_STATE}.value": ["open", "acknowledged"],
                    f"{ids.INCIDENTS_OWNER}.value": "any",
                }
                body = _callback_body(
                    deps, f"{ids.INCIDENTS_GRID}.rowData", values, f"{ids.INCIDENTS_INTERVAL}.n_intervals"
                )
                resp = _timed(
                    self.rec,
                    "incidents_list_cb",
                    partial(client.post, "/_dash-update-component", json=body, headers=origin),
                )
                if resp is not None and resp.status_code == 200:
                    rows = resp.json()["response"][ids.INCIDENTS_GRID]["rowData"]
                    if isinstance(rows, list) and rows:
                        self.incident_ids = [r["id"] for r in rows[:50]]
                strip = _callback_body(
                    deps,
                    f"{ids.SHELL_STRIP}.children",
                    {f"{ids.SHELL_INTERVAL}.n_intervals": n},
                    f"{ids.SHELL_INTERVAL}.n_intervals",
                )
                _timed(
                    self.rec,
                    "strip_cb",
                    partial(client.post, "/_dash-update-component", json=strip, headers=origin),
                )
                if time.monotonic() >= next_detail and self.incident_ids:
                    next_detail += 30.0
                    chosen = random.choice(self.incident_ids)
                    detail = _callback_body(
                        deps,
                        f"{ids.INCIDENTS_DETAIL}.className",
                        {f"{ids.INCIDENTS_SELECTED}.data": chosen},
                        f"{ids.INCIDENTS_SELECTED}.data",
                    )
                    _timed(
                        self.rec,
                        "incident_detail_cb",
                        partial(client.post, "/_dash-update-component", json=detail, headers=origin),
                    )
                if not self._pause(15.0):
                    return

    def api(self, i: int) -> None:
        headers = {"Authorization": f"Bearer {self.accounts['tokens'][i]}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30.0) as client:
            self.stop.wait(random.uniform(0, 5))
            n = 0
            while True:
                n += 1
                _timed(
                    self.rec, "api_incidents", lambda: client.get("/api/v1/incidents", params={"limit": 100})
                )
                if n % 3 == 0 and self.incident_ids:
                    chosen = random.choice(self.incident_ids)
                    _timed(self.rec, "api_incident", partial(client.get, f"/api/v1/incidents/{chosen}"))
                if not self._pause(5.0):
                    return

    def subscribers(self, i: int) -> None:
        headers = {"Authorization": f"Bearer {self.accounts['analyst_token']}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30.0) as client:
            while True:
                _timed(
                    self.rec,
                    "subscribers_value",
                    lambda: client.get("/api/v1/subscribers", params={"sort": "value", "limit": 50}),
                )
                if not self._pause(10.0):
                    return

    def start(self) -> None:
        a = self.args
        plan: list[tuple[Callable[[int], None], int]] = [
            (self.noc, a.noc),
            (self.wall, a.walls),
            (self.api, a.api),
            (self.subscribers, 1),
        ]
        for target, count in plan:
            for i in range(count):
                t = threading.Thread(target=self._guarded(target), args=(i,), daemon=True)
                t.start()
                self.threads.append(t)

    def _guarded(self, target: Callable[[int], None]) -> Callable[[int], None]:
        def run(i: int) -> None:
            try:
                target(i)
            except Exception as err:  # a client that died is an error of the run, said once
                self.rec.add("client_crashed", self.rec.start, 0.0, False, f"{type(err).__name__}: {err}")

        return run

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)


# --- the processes ------------------------------------------------------------------------------------


def _spawn(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_up(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vantage serve stopped: {log.read_text(errors='replace')[-1500:]}")
        try:
            if httpx.get(base + "/healthz", timeout=3.0).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"vantage serve did not answer in {timeout_s:.0f} s")


def _settings_file(path: Path, args: argparse.Namespace, url: str, prefix: str, cached: bool) -> None:
    data: dict[str, Any] = {
        "database_url": url,
        "scheduler": {"embedded": False},
        # Seventy logins from one address within a minute: the bench's, not an attack.
        "security": {"login_rate_limit": "1000/minute"},
        "cache": {"prefix": prefix, "enabled": cached},
        "connectors": [
            {
                "name": "simulator",
                "type": "simulator",
                "interval": "1m",
                "options": {"seed": args.seed, "subscribers": args.subscribers, "days": args.days},
            }
        ],
    }
    path.write_text(yaml.safe_dump(data))


def _accounts(url: str, args: argparse.Namespace, run: str) -> dict[str, Any]:
    """Accounts of this run (names end in ``run``): disabled again by :func:`_retire` at the end."""
    store = Store(url)
    try:
        return {
            "wall": _auth.user(store, "viewer", f"bench-wall-{run}"),
            "noc": [_auth.user(store, "operator", f"bench-noc{i:02d}-{run}") for i in range(args.noc)],
            "tokens": [_auth.token(store, "viewer", f"bench-api-{run}") for _ in range(args.api)],
            "analyst_token": _auth.token(store, "analyst", f"bench-analyst-{run}"),
        }
    finally:
        store.dispose()


def _retire(url: str, args: argparse.Namespace, run: str) -> None:
    """Disable this run's accounts (their sessions and tokens stop working at once)."""
    store = Store(url)
    names = [f"bench-{who}-{run}" for who in ("wall", "api", "analyst")]
    names += [f"bench-noc{i:02d}-{run}" for i in range(args.noc)]
    try:
        for name in names:
            users.set_disabled(store, name, True, now=utcnow(), actor=_auth.ACTOR)
    finally:
        store.dispose()


def _query_counts(r: redis.Redis, prefix: str) -> dict[str, int]:
    raw = r.hgetall(prefix + "stats:store_queries")
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}


def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def run_phase(
    name: str, cached: bool, minutes: float, args: argparse.Namespace, work: Path, url: str,
    accounts: dict[str, Any], r: redis.Redis, prefix: str, env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    config = work / f"web-{name}.yaml"
    _settings_file(config, args, url, prefix, cached)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / f"web-{name}.log"
    web = _spawn(
        [VANTAGE, "--config", str(config), "serve", "--workers", str(args.workers), "--threads",
         str(args.threads), "--bind", f"127.0.0.1:{port}", "--no-migrate"],
        log, env, work,
    )  # fmt: skip
    try:
        _wait_up(base, web, log)
        _say(f"{name}: gunicorn up on {base} ({args.workers} workers); logging clients in")
        rec = Record(start=float("inf"))
        load = Load(base, accounts, args, rec)
        load.log_in()
        load.start()
        time.sleep(WARMUP_S)
        rec.start = time.monotonic()
        before, cpu0, t0 = _query_counts(r, prefix), _cpu_s(), time.monotonic()
        _say(f"{name}: measuring for {minutes:g} min")
        deadline = t0 + minutes * 60
        while time.monotonic() < deadline:
            time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
            _say(
                f"{name}: {int(time.monotonic() - t0)} s, {sum(len(v) for v in rec.times.values())} requests"
            )
        elapsed = time.monotonic() - t0
        after, cpu1 = _query_counts(r, prefix), _cpu_s()
        load.finish()
    finally:
        _stop(web)
    per_min = {
        k: round((after.get(k, 0) - before.get(k, 0)) / (elapsed / 60), 1) for k in ("web", "scheduler")
    }
    out = rec.summary()
    out |= {
        "cache": cached,
        "measured_s": round(elapsed, 1),
        "web_store_queries_per_min": per_min["web"],
        "scheduler_store_queries_per_min": per_min["scheduler"],
        "requests_per_s": round(out["requests"] / elapsed, 2),
        "loadgen_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
    }
    return out


def build_store(work: Path, args: argparse.Namespace) -> str:
    url = f"sqlite:///{work / 'vantage.db'}"
    _say(f"building a store: vantage simulate --subscribers {args.subscribers} --days {args.days}")
    done = subprocess.run(
        [VANTAGE, "--database-url", url, "simulate", "--subscribers", str(args.subscribers),
         "--days", str(args.days), "--seed", str(args.seed)],
        cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"vantage simulate failed: {done.stderr[-1500:]}")
    return url


def _subscribers(url: str) -> int:
    """The store's lines (a given store's, not --subscribers, which sizes a store built here)."""
    from sqlalchemy import func, select

    from dashboard.store import Store
    from dashboard.store.schema import subscribers

    store = Store(url)
    try:
        with store.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(subscribers)).scalar_one())
    finally:
        store.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", help="an existing store (default: build a small SQLite one here)")
    p.add_argument(
        "--subscribers", type=int, default=2000, help="simulated subscribers (store and scheduler)"
    )
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--minutes", type=float, default=10.0, help="the cached phase")
    p.add_argument("--baseline-minutes", type=float, default=2.0, help="the uncached phase (0: none)")
    p.add_argument("--walls", type=int, default=50)
    p.add_argument("--noc", type=int, default=20)
    p.add_argument("--api", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--redis-url", default=os.environ.get("VANTAGE_CACHE_URL", "redis://127.0.0.1:6379/0"))
    args = p.parse_args()

    r = redis.Redis.from_url(args.redis_url)
    r.ping()
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-load-{run}:"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="vantage-load-") as tmp:
        work = Path(tmp)
        url = args.database_url or build_store(work, args)
        env = {k: v for k, v in os.environ.items() if k not in ("VANTAGE_CONFIG", "VANTAGE_DATABASE_URL")}
        env |= {"VANTAGE_CACHE_URL": args.redis_url, "PYTHONUNBUFFERED": "1"}
        env["VANTAGE_ADMIN_PASSWORD"] = env.get("VANTAGE_ADMIN_PASSWORD") or users.generate_password()
        accounts = _accounts(url, args, run)
        sched_config = work / "scheduler.yaml"
        _settings_file(sched_config, args, url, prefix, True)
        try:
            procs.append(
                _spawn(
                    [sys.executable, "-m", "dashboard.cli", "--config", str(sched_config), "scheduler"],
                    work / "scheduler.log",
                    env,
                    work,
                )
            )
            phases = {
                "cached": run_phase("cached", True, args.minutes, args, work, url, accounts, r, prefix, env)
            }
            if args.baseline_minutes > 0:
                phases["uncached"] = run_phase(
                    "uncached", False, args.baseline_minutes, args, work, url, accounts, r, prefix, env
                )
            sched_log = (work / "scheduler.log").read_text(errors="replace")
        finally:
            for proc in procs:
                _stop(proc)
            _retire(url, args, run)
            for key in r.scan_iter(match=prefix + "*"):
                r.delete(key)
    cached = phases["cached"]
    uncached = phases.get("uncached")
    routes = cached["routes"]
    report: dict[str, Any] = {
        "bench": "load",
        "store": "postgresql" if url.startswith("postgresql") else "sqlite",
        "subscribers": _subscribers(url),
        "workers": args.workers,
        "threads": args.threads,
        "clients": {"walls": args.walls, "noc": args.noc, "api": args.api, "subscribers": 1},
        "minutes": args.minutes,
        "error_rate": cached["error_rate"],
        **{f"{route}_p95_ms": routes.get(route, {}).get("p95_ms") for route in (*GOALS_P95_MS, "strip_cb")},
        "goals_p95_ms": GOALS_P95_MS,
        "web_store_queries_per_min_cached": cached["web_store_queries_per_min"],
        "web_store_queries_per_min_uncached": uncached["web_store_queries_per_min"] if uncached else None,
        "store_queries_ratio": (
            round(uncached["web_store_queries_per_min"] / cached["web_store_queries_per_min"], 2)
            if uncached and cached["web_store_queries_per_min"]
            else None
        ),
        "scheduler_runs": sched_log.count(": success,"),
        "phases": phases,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
