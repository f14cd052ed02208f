"""``vantage serve``: the app on gunicorn with two worker processes, a login that holds on both, and
no job in any web worker. Real processes and HTTP on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from dashboard.auth import users
from dashboard.store.db import Store
from dashboard.store.schema import connector_runs

pytestmark = pytest.mark.slow

VANTAGE = str(Path(sys.executable).with_name("vantage"))
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ANSWERED = re.compile(r'pid=<?(\d+)>? .*"GET /api/v1/wall[^"]*" (\d{3}) ')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vantage serve stopped: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=2.0).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"vantage serve did not answer in {timeout_s:.0f} s: {log.read_text()[-2000:]}")


def test_a_login_on_one_worker_holds_on_the_other_and_no_worker_runs_jobs(tmp_path: Path) -> None:
    db = tmp_path / "vantage.db"
    config = tmp_path / "vantage.yaml"
    # A connector is configured and enabled: were any web worker running jobs, it would record runs.
    config.write_text(
        f"database_url: sqlite:///{db}\n"
        "connectors:\n"
        "  - {name: simulator, type: simulator, interval: 5s, options: {subscribers: 200, days: 1}}\n"
    )
    password = users.generate_password()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VANTAGE_")}
    env |= {"VANTAGE_ADMIN_PASSWORD": password, "PYTHONUNBUFFERED": "1"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [VANTAGE, "--config", str(config), "serve", "--workers", "2", "--threads", "2",
             "--bind", f"127.0.0.1:{port}", "--access-log"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_until_up(base, proc, log)
        origin = {"Origin": base}
        with httpx.Client(base_url=base, timeout=30.0) as browser:
            form = browser.get("/login")
            found = _CSRF.search(form.text)
            assert form.status_code == 200 and found is not None
            answer = browser.post(
                "/login",
                data={"username": "admin", "password": password, "csrf": found.group(1), "next": "/"},
                headers=origin,
            )
            assert answer.status_code == 303, answer.text[:300]
            cookies = dict(browser.cookies)

        def one_request(_i: int) -> int:
            # A new connection each time, so the kernel hands it to either worker.
            with httpx.Client(base_url=base, cookies=cookies, timeout=30.0) as fresh:
                return fresh.get("/api/v1/wall", headers={"X-Vantage-Passive": "1"}).status_code

        statuses: list[int] = []
        pids: set[int] = set()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for _round in range(30):
                statuses += list(pool.map(one_request, range(8)))
                answered = _ANSWERED.findall(log.read_text(errors="replace"))
                pids = {int(pid) for pid, status in answered if status == "200"}
                if len(pids) >= 2:
                    break
        assert statuses and set(statuses) == {200}, statuses
        # Both workers (not the master) answered for the session made on one of them.
        assert len(pids) == 2 and proc.pid not in pids, (pids, proc.pid)
        # And without the cookie, neither lets anyone in.
        assert httpx.get(base + "/api/v1/wall", timeout=10.0).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    store = Store(f"sqlite:///{db}")
    try:
        with store.connect() as conn:
            assert conn.execute(select(func.count()).select_from(connector_runs)).scalar_one() == 0
    finally:
        store.dispose()
