"""An hour of faults in minutes: a TMF642 source and the PostgreSQL store misbehave on a script while
the source emits alarm changes to `vantage run`; nothing may be lost or duplicated.

Starts a TMF642 mock source on 127.0.0.1 (offset/limit paging, honours ``alarmChangedTime.gt``) that
emits --changes alarm changes (raises, updates, clears of a few hundred alarms) spread over the run,
a TCP proxy in front of PostgreSQL, and `vantage run` on a fresh database behind the proxy with the
source polled every --interval-s seconds. Then it plays the script, one phase every --phase-s:
source 500s, source 429 with Retry-After, source hangs past the client's timeout, source answers
garbage, store stalls (connections accepted, nothing answered), store refuses and cuts every
connection; with a normal phase between each. While it plays, ``/healthz`` and ``/api/v1/incidents``
are timed every half second, with a read-only API token of the first user (``vantage run`` creates
admin with a password the bench gives it; the token is made with ``vantage tokens add`` on the same
store once the server answers). Afterwards it waits for the ingest to catch up and prints:
- ``sent`` (changes emitted), ``stored`` (alarms whose stored version is the last one sent),
  ``lost`` (alarms whose last change is not stored; must be 0), ``duplicates`` (rows per key beyond
  one; must be 0), ``quarantined`` with its reasons;
- ``requests_per_min_failing`` per source-fault phase (what the failing source had to bear);
- ``recover_s`` per phase: from its end to the next successful run;
- ``healthz_p95_ms``, ``incidents_p95_ms`` during faults (``*_timeouts``: requests past 15 s;
  ``*_refused``: answers 401 or 403, which a valid token never gets).
Ends with one line of JSON.

    .venv/bin/python bench/faults.py [--changes 10000] [--phase-s 30] [--interval-s 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import create_engine, func, select, text

from bench import _auth
from dashboard.store.schema import alarms, connector_runs, quarantine
from tests.browser import free_port
from tests.faults import TcpProxy
from tests.loopback import LoopbackServer, Request, Response

ALARMS = "/tmf-api/alarmManagement/v4/alarm"
PG = os.environ.get("VANTAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCRIPT = ["source_500", "source_429", "source_hang", "source_garbage", "store_stall", "store_refuse"]


class Source:
    """The TMF642 source: a growing list of alarm changes, and a fault mode the script sets."""

    def __init__(self, changes: int, alarms_n: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.total = changes
        self.alarms_n = alarms_n
        self.events: list[dict[str, Any]] = []  # every change emitted, in order
        self.latest: dict[str, dict[str, Any]] = {}  # alarm id -> its last emitted state
        self.mode = "normal"
        self.hits: list[tuple[float, str]] = []  # (monotonic time, mode) of every GET
        self.lock = threading.Lock()
        self.clock = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=30)

    def emit(self, n: int) -> None:
        with self.lock:
            for _ in range(min(n, self.total - len(self.events))):
                self.clock += timedelta(milliseconds=self.rng.randint(1, 40))
                aid = f"A{self.rng.randrange(self.alarms_n):05d}"
                prev = self.latest.get(aid)
                cleared = prev is not None and prev["state"] != "cleared" and self.rng.random() < 0.3
                raised = prev["alarmRaisedTime"] if prev is not None and prev["state"] != "cleared" else None
                when = self.clock.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                item = {
                    "id": aid,
                    "alarmType": "equipmentAlarm",
                    "perceivedSeverity": "cleared"
                    if cleared
                    else self.rng.choice(["critical", "major", "minor"]),
                    "probableCause": "powerProblem",
                    "specificProblem": f"change {len(self.events)}",
                    "state": "cleared" if cleared else "raised",
                    "alarmRaisedTime": raised or when,
                    "alarmChangedTime": when,
                    "alarmClearedTime": when if cleared else None,
                    "alarmedObject": {"id": f"r{self.rng.randrange(50)}"},
                    "sourceSystemId": "bench",
                }
                self.events.append(item)
                self.latest[aid] = item

    def handle(self, req: Request) -> Response:
        self.hits.append((time.monotonic(), self.mode))
        if self.mode == "source_500":
            return Response(500, {"code": "500", "reason": "internal error"})
        if self.mode == "source_429":
            return Response(429, {"code": "429"}, headers={"Retry-After": "20"})
        if self.mode == "source_hang":
            return Response(200, [], delay_s=40)
        if self.mode == "source_garbage":
            return Response(200, "<html>this is not JSON", headers={"Content-Type": "application/json"})
        since = (req.query.get("alarmChangedTime.gt") or [""])[0]
        offset = int((req.query.get("offset") or ["0"])[0])
        limit = int((req.query.get("limit") or ["100"])[0])
        with self.lock:
            current = {}
            for item in self.latest.values():
                if not since or item["alarmChangedTime"] > since:
                    current[item["id"]] = item
            page = sorted(current.values(), key=lambda i: (i["alarmChangedTime"], i["id"]))
        return Response(200, page[offset : offset + limit])


#: Answers that say the bench's credentials were refused: not a fault's doing, the bench's.
REFUSED = (401, 403)


def timed_get(url: str, token: str | None = None, timeout_s: float = 15.0) -> tuple[float | None, int]:
    """Milliseconds until ``url`` answered (None: no answer in ``timeout_s``), and its status."""
    request = _auth.bearer_request(url, token) if token else urllib.request.Request(url)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        status = err.code  # a 503 answered quickly is what a fault should give
    except OSError:
        return None, 0
    return (time.perf_counter() - started) * 1000, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--alarms", type=int, default=800, help="distinct alarms the changes touch")
    ap.add_argument("--phase-s", type=float, default=30.0)
    ap.add_argument("--interval-s", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    db = f"vt_faults_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    pg_host, pg_port = "127.0.0.1", int(PG.rsplit("@", 1)[1].split("/")[0].split(":")[1])
    proxy = TcpProxy(pg_host, pg_port)
    base_url = PG.rsplit("/", 1)[0]
    direct_url = f"{base_url}/{db}"
    proxied_url = direct_url.replace(f":{pg_port}/", f":{proxy.port}/")
    source = Source(args.changes, args.alarms, args.seed)
    server = LoopbackServer().start()
    server.route("GET", ALARMS, source.handle)
    work = Path(tempfile.mkdtemp(prefix="vantage-faults-"))
    config = work / "vantage.yaml"
    config.write_text(
        f"database_url: {proxied_url}\n"
        "scheduler: {retry_initial_s: 2, retry_max_s: 20, circuit_after: 5, kpi_refresh_s: 600}\n"
        "connectors:\n"
        "  - name: noc\n    type: tmf642\n"
        f"    interval: {args.interval_s}s\n"
        f"    options: {{base_url: '{server.url}', page_size: 500, timeout_s: 5,"
        " retry: {attempts: 2, backoff_initial_s: 0.5}}\n"
    )
    port = free_port()
    log = (work / "run.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k not in ("VANTAGE_DATABASE_URL", "VANTAGE_CONFIG", "PORT")}
    env, _ = _auth.with_admin_password(env)
    vantage = [sys.executable, "-m", "dashboard.cli", "--config", str(config)]
    proc = subprocess.Popen(
        [*vantage, "run", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    web = f"http://127.0.0.1:{port}"
    print(
        f"vantage run on {web}, database {db} behind proxy :{proxy.port}, log {work / 'run.log'}", flush=True
    )
    figures: dict[str, Any] = {}
    try:
        make_token = partial(_auth.cli_token, vantage, cwd=work, env=env, role="viewer")
        figures = play(args, source, proxy, web, direct_url, make_token)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        server.stop()
        proxy.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
    print(json.dumps(figures))


def play(
    args: argparse.Namespace,
    source: Source,
    proxy: TcpProxy,
    web: str,
    direct_url: str,
    make_token: Callable[[], str],
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while timed_get(web + "/healthz", timeout_s=2)[0] is None:
        if time.monotonic() > deadline:
            raise SystemExit("vantage run did not answer within 120 s")
        time.sleep(0.5)
    token = make_token()
    for path in ("/healthz", "/api/v1/incidents"):
        _, status = timed_get(web + path, token)
        if status != 200:
            raise SystemExit(f"{path} answered {status} with the bench's token")
    phases = [p for fault in SCRIPT for p in ("normal", fault)] + ["normal"]
    per_phase = max(args.changes // len(phases), 1)
    latencies: dict[str, list[float | None]] = {"healthz": [], "incidents": []}
    refused: dict[str, int] = {"healthz": 0, "incidents": 0}
    windows: list[tuple[str, float, float]] = []
    stop = threading.Event()
    faulty = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if faulty.is_set():
                for name, path in (("healthz", "/healthz"), ("incidents", "/api/v1/incidents")):
                    ms, status = timed_get(web + path, token)
                    latencies[name].append(ms)
                    refused[name] += status in REFUSED
            stop.wait(0.5)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    for phase in phases:
        print(f"{time.strftime('%H:%M:%S')}  {phase}", flush=True)
        source.mode = phase if phase.startswith("source_") else "normal"
        proxy.set({"store_stall": "stall", "store_refuse": "refuse"}.get(phase, "pass"))
        if phase == "store_refuse":
            proxy.set("cut")
            proxy.set("refuse")
        faulty.set() if phase != "normal" else faulty.clear()
        started = time.monotonic()
        steps = 10
        for _ in range(steps):
            source.emit(per_phase // steps)
            time.sleep(args.phase_s / steps)
        windows.append((phase, started, time.monotonic()))
        if phase == "store_stall":
            proxy.set("cut")  # stalled connections are dropped when the store comes back
    source.emit(args.changes)
    source.mode = "normal"
    proxy.set("pass")
    faulty.clear()
    stop.set()
    poller.join(timeout=20)

    engine = create_engine(direct_url)
    caught_up = catch_up(engine, source, timeout_s=300)
    with engine.connect() as conn:
        stored = {r.id: r.changed_at for r in conn.execute(select(alarms.c.id, alarms.c.changed_at))}
        dupes = conn.execute(
            select(func.count()).select_from(
                select(alarms.c.id).group_by(alarms.c.id, alarms.c.source).having(func.count() > 1).subquery()
            )
        ).scalar_one()
        reasons = dict(
            conn.execute(select(quarantine.c.reason, func.count()).group_by(quarantine.c.reason)).all()
        )
        runs = conn.execute(
            select(connector_runs.c.status, connector_runs.c.finished_at).order_by(connector_runs.c.id)
        ).all()
    engine.dispose()
    lost = [aid for aid, item in source.latest.items() if _ts(item["alarmChangedTime"]) != stored.get(aid)]
    wall_start = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=time.monotonic())
    recover: dict[str, float | None] = {}
    per_min: dict[str, float] = {}
    for phase, start, end in windows:
        if phase == "normal":
            continue
        end_wall = wall_start + timedelta(seconds=end)
        ok = [
            r.finished_at
            for r in runs
            if r.status == "success" and r.finished_at and r.finished_at > end_wall
        ]
        recover[phase] = round((min(ok) - end_wall).total_seconds(), 1) if ok else None
        if phase.startswith("source_"):
            hits = sum(1 for t, mode in source.hits if start <= t <= end and mode == phase)
            per_min[phase] = round(hits / ((end - start) / 60), 1)

    def p95(values: list[float | None]) -> float | None:
        done = sorted(v for v in values if v is not None)
        return round(statistics.quantiles(done, n=20)[-1], 1) if len(done) >= 20 else None

    return {
        "sent": len(source.events),
        "alarms": len(source.latest),
        "stored": len(source.latest) - len(lost),
        "lost": len(lost),
        "duplicates": int(dupes),
        "caught_up": caught_up,
        "quarantined": sum(reasons.values()),
        "quarantine_reasons": {k[:120]: v for k, v in reasons.items()},
        "requests_per_min_failing": per_min,
        "recover_s": recover,
        "healthz_p95_ms": p95(latencies["healthz"]),
        "incidents_p95_ms": p95(latencies["incidents"]),
        "healthz_timeouts": sum(1 for v in latencies["healthz"] if v is None),
        "incidents_timeouts": sum(1 for v in latencies["incidents"] if v is None),
        "healthz_refused": refused["healthz"],
        "incidents_refused": refused["incidents"],
        "phase_s": args.phase_s,
    }


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(tzinfo=None)


def catch_up(engine: Any, source: Source, timeout_s: float) -> bool:
    """Wait until every alarm's last change is stored (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    want = {aid: _ts(item["alarmChangedTime"]) for aid, item in source.latest.items()}
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            stored = {r.id: r.changed_at for r in conn.execute(select(alarms.c.id, alarms.c.changed_at))}
        if all(stored.get(aid) == t for aid, t in want.items()):
            return True
        time.sleep(2)
    return False


if __name__ == "__main__":
    main()
