"""The first minutes of a new user: clone, `make run`, and how long until each page has real content.

Clones this checkout (its committed ``HEAD``) into a temporary folder, runs ``make run`` there on a
free port as a new user would, and measures from the moment ``make run`` starts:
- ``install_s``: until the virtualenv is set up (the ``.venv/.installed`` stamp appears);
- ``first_answer_s``: until ``/healthz`` answers;
- ``wall_incidents_s``, ``incidents_page_s``, ``wall_kpis_s``, ``linkage_s``: until what each page
  shows is there, read through the API the page itself reads: an incident on the wall's queue, a
  ranked incident (``/incidents``), KPI tiles with values and a status (the wall's KPI panel), measured
  links (``/linkage``); ``ready_s``: until the preparation says ready (``/healthz``), with its steps;
- then the active incidents every --every-s seconds for --watch-s seconds (``active_incidents``, its
  ``active_min``; a living operator never shows zero).
As for a new user, ``make run`` creates the first user, admin, and prints its password once
(``admin_password_shown``); once the server answers, the bench makes a read-only API token of admin
with ``vantage tokens add`` on the same store and sends it on every request (``token_s``: until it
was made). Prints progress, and ends with one line of JSON. --venv PATH reuses an installed
virtualenv (linked into the clone) to measure everything but the install; --working-tree measures
this checkout as it is, its changes not yet committed (copied over the clone).

    .venv/bin/python bench/first_run.py [--watch-s 600] [--every-s 30] [--venv .venv] [--working-tree]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from bench import _auth

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, token: str | None = None) -> Any:
    """The JSON answer of ``url`` (with ``token`` when given), None when there is none."""
    request = _auth.bearer_request(url, token) if token else urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def overlay_working_tree(clone: Path) -> None:
    """Bring the clone to this checkout's working tree: changed and new files copied over, deleted
    ones removed (ignored files, such as .venv and var, stay out)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src, dst = ROOT / rel, clone / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif not src.exists():
            dst.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--watch-s", type=float, default=600.0, help="how long to count active incidents after ready"
    )
    ap.add_argument("--every-s", type=float, default=30.0, help="how often to count them")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="give up on a figure after this long")
    ap.add_argument("--venv", type=Path, help="an installed virtualenv to link instead of installing")
    ap.add_argument(
        "--working-tree", action="store_true", help="measure this checkout's uncommitted changes too"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vantage-first-run-"))
    clone = work / "vantage"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    if args.working_tree:
        overlay_working_tree(clone)
    if args.venv is not None:
        (clone / ".venv").symlink_to(args.venv.resolve())
        stamp = clone / ".venv" / ".installed"
        if stamp.exists():
            # The clone's pyproject.toml is newer than the stamp: `make run` would reinstall,
            # pointing the shared virtualenv at this throw-away clone. Date it as installed.
            installed = stamp.stat().st_mtime
            os.utime(clone / "pyproject.toml", (installed - 1, installed - 1))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # As a new user has it: no settings, store or first password of ours in the environment.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VANTAGE_DATABASE_URL", "VANTAGE_CONFIG", _auth.ADMIN_PASSWORD_ENV)
    }
    env["PORT"] = str(port)
    log_path = work / "make-run.log"
    print(f"make run in {clone} on port {port} (log {log_path})", flush=True)
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            figures = measure(base, clone, t0, args, env, log_path)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    print(json.dumps(figures))


def measure(
    base: str, clone: Path, t0: float, args: argparse.Namespace, env: dict[str, str], log_path: Path
) -> dict[str, Any]:
    seen: dict[str, float] = {}
    token: str | None = None

    def since() -> float:
        return round(time.monotonic() - t0, 1)

    def mark(name: str, ok: bool) -> None:
        if ok and name not in seen:
            seen[name] = since()
            print(f"{seen[name]:7.1f} s  {name}", flush=True)

    stamp = clone / ".venv" / ".installed"
    vantage = clone / ".venv" / "bin" / "vantage"  # what `make run` runs, so the same code and store
    wanted = (
        "install_s",
        "first_answer_s",
        "wall_incidents_s",
        "incidents_page_s",
        "wall_kpis_s",
        "linkage_s",
        "ready_s",
    )
    while time.monotonic() - t0 < args.timeout_s and not all(k in seen for k in wanted):
        mark("install_s", stamp.exists())
        health = get_json(base + "/healthz", token)
        mark("first_answer_s", health is not None)
        if health is not None and token is None:
            # The server made the first user before it answered: a token of it, read-only.
            token = _auth.cli_token([str(vantage)], cwd=clone, env=env, role="viewer")
            mark("token_s", True)
            continue
        if health is not None:
            prep = health.get("preparation") or {}
            mark("ready_s", bool(prep.get("ready")))
            wall = get_json(base + "/api/v1/wall", token) or {}
            panels = wall.get("panels") or {}
            mark("wall_incidents_s", bool(panels.get("queue")))
            tiles = panels.get("kpis") or []
            mark("wall_kpis_s", bool(tiles) and all(t.get("status") != "no_data" for t in tiles))
            queue = get_json(base + "/api/v1/incidents", token) or {}
            mark("incidents_page_s", any(i.get("rank") == 1 for i in queue.get("incidents") or []))
            links = get_json(base + "/api/v1/linkage", token) or {}
            mark("linkage_s", bool(links.get("count")))
        time.sleep(1.0)
    final = get_json(base + "/healthz", token) or {}
    prep_state = final.get("preparation") or {}
    active: list[int] = []
    watch_end = time.monotonic() + args.watch_s
    while time.monotonic() < watch_end:
        queue = get_json(base + "/api/v1/incidents", token) or {}
        n = sum(1 for i in queue.get("incidents") or [] if i.get("rank") is not None)
        active.append(n)
        print(f"{since():7.1f} s  active incidents: {n}", flush=True)
        time.sleep(args.every_s)
    steps = step_seconds(clone)
    return {
        **{k: seen.get(k) for k in wanted},
        "token_s": seen.get("token_s"),
        "admin_password_shown": _auth.printed_password(log_path.read_text(errors="replace")) is not None,
        "prepare_steps_s": steps,
        "ready": bool(prep_state.get("ready")),
        "active_incidents": active,
        "active_min": min(active) if active else None,
        "every_s": args.every_s,
        "watch_s": args.watch_s,
    }


def step_seconds(clone: Path) -> dict[str, float]:
    """Each preparation step's seconds, as the preparation recorded them in the store the run used
    (var/vantage.db in the clone)."""
    db = clone / "var" / "vantage.db"
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT state FROM connector_state WHERE connector = 'vantage' AND stream = 'preparation'"
        ).fetchone()
    if row is None:
        return {}
    out = {}
    for s in json.loads(row[0]).get("steps", []):
        if s.get("started_at") and s.get("finished_at"):
            took = datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["started_at"])
            out[s["key"]] = round(took.total_seconds(), 1)
    return out


if __name__ == "__main__":
    main()
