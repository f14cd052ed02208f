"""As a new user: `vantage run` on the simulated operator serves every page, /healthz, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium, free_port, require_chromium, severe_console_errors

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = """
database_url: sqlite:///{db}
connectors:
  - name: simulator
    type: simulator
    interval: 1m
    options: {{seed: 7, subscribers: 600, days: 2, causal: {{incident_rate_per_resource_day: 0.2}}}}
"""


#: API tokens of the running servers, by base URL (made with `vantage tokens add` once each started).
TOKENS: dict[str, str] = {}


def _get(url: str) -> tuple[int, bytes]:
    base = "/".join(url.split("/", 3)[:3])
    request = urllib.request.Request(url)
    if base in TOKENS:
        request.add_header("Authorization", f"Bearer {TOKENS[base]}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


@contextmanager
def vantage_run(
    options: list[str], cwd: Path, log_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`vantage OPTIONS run` on a free port, as a user starts it; stopped with Ctrl-C afterwards."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VANTAGE_DATABASE_URL", "VANTAGE_CONFIG", "PORT", "VANTAGE_ADMIN_PASSWORD")
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", *options, "run", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            # The first start creates admin and prints its password once, on the terminal.
            printed = _wait(lambda: _admin_password(log_path), 60, "the first admin's password")
            PASSWORDS[url] = printed
            made = subprocess.run(
                [sys.executable, "-m", "dashboard.cli", *options, "tokens", "add", "e2e", "--user", "admin",
                 "--role", "admin", "--days", "1"],
                cwd=cwd, env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            TOKENS[url] = made.stdout.split("token (shown once):", 1)[1].split()[0]
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


#: The first admin's password as `vantage run` printed it, by base URL.
PASSWORDS: dict[str, str] = {}


def _admin_password(log_path: Path) -> str | None:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    if "Log in as  admin  with the password" not in text:
        return None
    return text.split("Log in as  admin  with the password", 1)[1].split()[0]


def sign_in_as_admin(driver: Any, url: str) -> None:
    """Log in through the login page with the password the first start printed."""
    driver.get(url + "/login")
    driver.find_element(By.ID, "vt-user").send_keys("admin")
    driver.find_element(By.ID, "vt-password").send_keys(PASSWORDS[url])
    driver.find_element(By.ID, "vt-login-submit").click()
    WebDriverWait(driver, 20).until(lambda d: "/login" not in d.current_url)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    config = tmp_path / "vantage.yaml"
    config.write_text(SETTINGS.format(db=tmp_path / "vantage.db"))
    with vantage_run(["--config", str(config)], tmp_path, tmp_path / "run.log") as started:
        yield started


@pytest.mark.slow
def test_vantage_run_serves_pages_and_health_on_the_simulator(
    running: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, proc = running
    started = time.monotonic()
    _wait(lambda: _get(url + "/healthz")[0] == 200, 60, "/healthz to answer 200")
    assert time.monotonic() - started < 60
    assert _get(url + "/")[0] == 200

    def fresh() -> bool:
        body = json.loads(_get(url + "/healthz")[1] or b"{}")
        return bool(body.get("sources", {}).get("simulator", {}).get("fresh"))

    _wait(fresh, 90, "the first simulator run to succeed")
    body = json.loads(_get(url + "/healthz")[1])
    assert body["status"] == "ok" and body["store"]["reachable"] is True

    # The scheduler's queue job correlates the backfilled alarms and ranks them.
    def queue_computed() -> dict[str, Any] | None:
        status, raw = _get(url + "/api/v1/incidents?state=open,acknowledged,resolved")
        queue = json.loads(raw or b"{}") if status == 200 else {}
        return queue if queue.get("computed_at") else None

    queue = _wait(queue_computed, 90, "the incident queue to be computed")
    ranks = [i["rank"] for i in queue["incidents"] if i["rank"] is not None]
    assert ranks == list(range(1, len(ranks) + 1))
    assert all(i["reason"] for i in queue["incidents"])

    require_chromium()
    with chromium() as driver:
        sign_in_as_admin(driver, url)
        for path, ready in (
            ("/", "#wall-panel-queue .vt-wall-row"),
            ("/incidents", "#incidents-grid .ag-root"),
            ("/linkage", "#linkage-tree .main-svg"),
            ("/subscribers", "#subscribers-page, .vt-page, body"),
            ("/sources", "#sources-status-grid .ag-row"),
        ):
            driver.get(url + path)
            WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, ready)))
            # The strip shows the simulated operator's numbers, not placeholders; the wall, which
            # hides the strip, its sources and money.
            shown = "REVENUE AT RISK NOW" if path == "/" else "SUBSCRIBERS"
            WebDriverWait(driver, 30).until(
                lambda d, shown=shown: shown in d.find_element(By.TAG_NAME, "body").text.upper()
            )
            errors = severe_console_errors(driver)
            assert errors == [], f"{path}: {errors}"
        driver.get(url + "/sources")
        WebDriverWait(driver, 30).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#sources-status-grid"), "healthy")
        )
    assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0


@pytest.fixture
def built_in(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`vantage run` on the operator `make run` shows (the checkout's vantage.yaml), on a fresh store."""
    db = f"sqlite:///{tmp_path / 'vantage.db'}"
    with vantage_run(["--database-url", db], ROOT, tmp_path / "run.log") as started:
        yield started


def _health(url: str) -> dict[str, Any]:
    status, raw = _get(url + "/healthz")
    return json.loads(raw) if status == 200 and raw else {}


@pytest.mark.slow
def test_the_first_minutes_show_a_living_operator(
    built_in: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """As a new user on a fresh store: the page answers at once and says what is being prepared;
    once ready, the wall has incidents with ticking SLA clocks and KPI values, the queue is ranked
    and the links are measured (the time each takes is bench/first_run.py's business)."""
    url, proc = built_in
    require_chromium()
    _wait(lambda: _health(url), 60, "/healthz to answer")
    with chromium(1920, 1080) as driver:
        sign_in_as_admin(driver, url)
        prep = _health(url).get("preparation")
        if prep is not None and not prep["ready"]:
            # While the store is prepared the wall says so, with a bar and the time left.
            driver.get(url + "/wall?kiosk=1")
            banner = WebDriverWait(driver, 30).until(
                ec.visibility_of_element_located((By.ID, "wall-preparing"))
            )
            assert "PREPARING" in banner.text and " of 7" in banner.text and "left" in banner.text
        _wait(lambda: (_health(url).get("preparation") or {}).get("ready"), 600, "the store to be ready")

        driver.get(url + "/wall?kiosk=1")
        WebDriverWait(driver, 30).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#wall-panel-queue .vt-wall-row[data-id]"))
        )
        assert not driver.find_element(By.ID, "wall-preparing").is_displayed()

        def clocks() -> list[str]:
            cells = driver.find_elements(By.CSS_SELECTOR, "#wall-panel-queue .vt-wall-row[data-id] .vt-q-sla")
            return [c.text for c in cells if c.text.endswith("s") and "m " in c.text]

        first = _wait(clocks, 30, "an incident with an SLA clock on the wall")
        time.sleep(2.2)
        assert clocks() != first, "the SLA clock does not tick"
        values = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#wall-kpis .vt-kpi-num")]
        assert values and all(v and v != "—" for v in values), values
        assert "PREPARING" not in driver.find_element(By.ID, "wall-kpis").text
        assert severe_console_errors(driver) == []

        driver.get(url + "/incidents")
        WebDriverWait(driver, 30).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#incidents-grid .ag-row[row-index='0']"))
        )
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "active incident" in body and "Preparing the operator" not in body

        driver.get(url + "/linkage")
        WebDriverWait(driver, 30).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#linkage-tree .main-svg"))
        )
        WebDriverWait(driver, 30).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#linkage-table .vt-link-row"))
        )
        assert "No measured links yet" not in driver.find_element(By.ID, "linkage-tree").text

    # The story keeps several incidents active: one with an SLA clock on enterprise lines.
    queue = json.loads(_get(url + "/api/v1/incidents")[1])
    active = [i for i in queue["incidents"] if i["rank"] is not None]
    assert len(active) >= 3
    assert any(i["enterprise_lines"] > 0 and i["sla_deadline"] for i in active)
    assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]


def test_make_run_starts_vantage_with_arguments_it_accepts() -> None:
    """The README's `make run` is this recipe; its command line must parse."""
    from dashboard.cli import build_parser

    recipe = Path(__file__).resolve().parents[1].joinpath("Makefile").read_text().split("\nrun:", 1)[1]
    line = recipe.splitlines()[1].strip()
    assert line.startswith("$(BIN)/vantage ")
    args = line.removeprefix("$(BIN)/vantage ").replace("$(PORT)", "8050").split()
    parsed = build_parser().parse_args(args)
    assert parsed.command == "run" and parsed.port == 8050
