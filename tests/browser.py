"""Helpers for the dashboard tests: a small hand-made operator, a live server and a headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from werkzeug.serving import make_server

from connectors.base import Batch, CheckResult, Connector, ConnectorContext, Reject, RetriableError, Stream
from dashboard.config import ConnectorConfig, Settings
from dashboard.ingest import Ingestor
from dashboard.store.db import Store
from dashboard.store.schema import connector_runs

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


# --- A hand-made operator ------------------------------------------------------------------


class ListConnector(Connector):
    """A connector that yields the batches it was given, or raises the error it was given."""

    type = "test-list"

    def __init__(self, name: str, batches: list[Batch], error: Exception | None = None) -> None:
        super().__init__(self.Options(), ConnectorContext(name=name))
        self._batches = batches
        self._error = error

    def streams(self) -> list[Stream]:
        return [Stream(name="main", kinds=tuple({b.kind for b in self._batches}) or ("alarms",))]

    def check(self) -> CheckResult:
        return CheckResult(ok=True, detail="in memory")

    def read(self, stream: Stream, state: dict[str, Any]) -> Iterator[Batch]:
        yield from self._batches
        if self._error is not None:
            raise self._error


def fixed_clock(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def settings_for(store: Store) -> Settings:
    """Three configured connectors: alpha (runs, partial), beta (fails, retriable), gamma (never ran)."""
    return Settings(
        database_url=store.url,
        currency="EUR",
        connectors=[
            ConnectorConfig(name="alpha", type="simulator", interval=60),
            ConnectorConfig(name="beta", type="simulator", interval=300),
            ConnectorConfig(name="gamma", type="simulator", interval=600, enabled=False),
        ],
    )


@dataclass(frozen=True)
class Expected:
    """The numbers the seeded store must give, worked out by hand."""

    active_alarms: int = 3  # AL1, AL2, AL4 (AL3 is cleared)
    critical_alarms: int = 2
    major_alarms: int = 1
    open_incidents: int = 2  # I1 open, I2 acknowledged (I3 resolved, I4 closed)
    tickets_today: int = 2  # T1 at 00:00:00 today, T2 (T3 was yesterday 23:59:59)
    active_subscribers: int = 2  # S1, S2 (S3 suspended, S4 churned)
    revenue_month: float = 300.5  # B1 100.5 EUR + B2 200 no currency (B3 in USD, B4 last month)
    quarantined: int = 2  # alpha's reject + alpha's subscriber with negative ARPU


def seed(store: Store, now: datetime) -> Expected:
    """Write the hand-made operator through the ingest path, relative to ``now`` (naive UTC)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.date().replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    ing = Ingestor(store, clock=fixed_clock(now))
    t = now - timedelta(hours=1)

    def alarm(i: str, sev: str, state: str) -> dict[str, Any]:
        return {
            "id": i,
            "resource_id": "R1",
            "severity": sev,
            "state": state,
            "raised_at": t,
            "changed_at": t,
            "probable_cause": "linkDown",
        }

    def incident(i: str, sev: str, state: str, title: str) -> dict[str, Any]:
        return {
            "id": i,
            "title": title,
            "severity": sev,
            "state": state,
            "opened_at": t - timedelta(minutes=int(i[1:])),
            "changed_at": t,
            "root_resource_id": f"R{i[1:]}",
        }

    def ticket(i: str, created: datetime) -> dict[str, Any]:
        return {
            "id": i,
            "status": "new",
            "created_at": created,
            "updated_at": created,
            "subject": "no signal",
        }

    def bill(i: str, start: Any, amount: float, currency: str | None) -> dict[str, Any]:
        return {
            "id": i,
            "account_id": "A1",
            "period_start": start,
            "period_end": start + timedelta(days=27),
            "amount": amount,
            "currency": currency,
        }

    batches = [
        Batch(
            kind="accounts",
            records=[
                {"id": "A1", "name": "Acme Logistics", "segment": "enterprise", "vip": True},
                {"id": "A2", "name": "J. Doe", "segment": "consumer", "vip": False},
            ],
        ),
        Batch(
            kind="subscribers",
            records=[
                {
                    "id": "S1",
                    "account_id": "A1",
                    "msisdn": "31612345001",
                    "status": "active",
                    "plan": "Biz 50",
                    "arpu": 45.0,
                    "home_cell_id": "C1",
                },
                {"id": "S2", "account_id": "A2", "msisdn": "31612345002", "status": "active", "arpu": 20.0},
                {"id": "S3", "account_id": "A2", "msisdn": "31612345003", "status": "suspended"},
                {"id": "S4", "account_id": "A2", "msisdn": "31612345004", "status": "churned"},
            ],
        ),
        Batch(
            kind="alarms",
            records=[
                alarm("AL1", "critical", "raised"),
                alarm("AL2", "major", "updated"),
                alarm("AL3", "minor", "cleared"),
                alarm("AL4", "critical", "raised"),
            ],
        ),
        Batch(
            kind="incidents",
            records=[
                incident("I1", "critical", "open", "Core router R1 down"),
                incident("I2", "major", "acknowledged", "Packet loss on backhaul"),
                incident("I3", "minor", "resolved", "Fan failure"),
                incident("I4", "major", "closed", "Power flap"),
            ],
        ),
        Batch(
            kind="tickets",
            records=[
                ticket("T1", today),
                ticket("T2", now - timedelta(seconds=1)),
                ticket("T3", today - timedelta(seconds=1)),
            ],
        ),
        Batch(
            kind="bills",
            records=[
                bill("B1", month, 100.5, "EUR"),
                bill("B2", month, 200.0, None),
                bill("B3", month, 999.0, "USD"),
                bill("B4", last_month, 50.0, "EUR"),
            ],
        ),
        Batch(
            kind="kpi_samples",
            records=[
                {"entity_type": "cell", "entity_id": c, "kpi": "drop_rate", "period_start": p, "value": v}
                for c, p, v in [
                    ("C1", now - timedelta(days=2), 0.01),
                    ("C2", now - timedelta(days=2), 0.03),
                    ("C1", now - timedelta(days=1), 0.02),
                    ("C2", now - timedelta(days=1), 0.04),
                    ("C1", now - timedelta(hours=2), 0.05),
                    ("C1", now - timedelta(days=8), 0.9),  # outside the 7 days shown
                ]
            ],
        ),
    ]
    ing.ingest("seed", batches)

    # alpha: a failed run two days ago, then a partial run 30 s ago (1 reject, 1 invalid record).
    Ingestor(store, clock=fixed_clock(now - timedelta(days=2))).run(
        ListConnector("alpha", [], error=RetriableError("timeout after 10 s"))
    )
    alpha_batch = Batch(
        kind="subscribers",
        records=[
            {"id": "S9", "msisdn": "31699999999", "status": "active", "arpu": -5.0},
            {"id": "S10", "msisdn": "31611111111", "status": "suspended", "arpu": 5.0},
        ],
        rejects=[
            Reject(raw={"msisdn": "garbled", "note": "x" * 400}, reason="no subscriber id", record_id="row-7")
        ],
    )
    Ingestor(store, clock=fixed_clock(now - timedelta(seconds=30))).run(ListConnector("alpha", [alpha_batch]))
    # beta: failed 5 minutes ago with a transient error; the scheduler would retry at +1 min.
    summary = Ingestor(store, clock=fixed_clock(now - timedelta(minutes=5))).run(
        ListConnector("beta", [], error=RetriableError("HTTP 503 from tmf642.example", retry_after_s=60))
    )
    with store.begin() as conn:
        conn.execute(
            update(connector_runs)
            .where(connector_runs.c.id == summary.run_id)
            .values(retriable=True, next_attempt_at=now - timedelta(minutes=4))
        )
    # legacy: not configured any more, ran successfully an hour ago.
    Ingestor(store, clock=fixed_clock(now - timedelta(hours=1))).run(ListConnector("legacy", []))
    return Expected()


# --- A live server and a real browser ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(flask_app: Any) -> Iterator[str]:
    """Serve ``flask_app`` on a free loopback port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", free_port(), flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def require_chromium() -> None:
    """Skip without Chromium and chromedriver, except in CI where their absence is a failure."""
    from tests.conftest import IN_CI

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        if IN_CI:
            pytest.fail(f"headless browser tests need {', '.join(missing)} in CI")
        pytest.skip(f"not installed: {', '.join(missing)}")


@contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven by selenium, with the browser console log captured."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vt-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def severe_console_errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def full_screenshot(driver: Any, path: Path) -> None:
    """A screenshot of the whole page: the window grows to the document's height first."""
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(int(height) + 40, 600))
    driver.save_screenshot(str(path))


def screenshot_dir() -> Path:
    path = Path(os.environ.get("VANTAGE_SCREENSHOTS", tempfile.gettempdir())) / "vantage-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
