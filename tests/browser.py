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
from sqlalchemy import select, update
from werkzeug.serving import make_server

from connectors.base import Batch, CheckResult, Connector, ConnectorContext, Reject, RetriableError, Stream
from dashboard.config import ConnectorConfig, Settings
from dashboard.ingest import Ingestor
from dashboard.privacy import Role
from dashboard.store.db import Store
from dashboard.store.schema import connector_runs, incident_queue

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


def two_region_network() -> list[Batch]:
    """Region North (site Harbour, cell c1) and South (site Hill, cell c2): the smallest network
    on which region filters mean something."""
    return [
        Batch(kind="regions", records=[{"id": "N", "name": "North"}, {"id": "S", "name": "South"}]),
        Batch(
            kind="sites",
            records=[
                {"id": "S1", "region_id": "N", "name": "Harbour"},
                {"id": "S2", "region_id": "S", "name": "Hill"},
            ],
        ),
        Batch(
            kind="cells",
            records=[
                {"id": "c1", "site_id": "S1", "name": "C1"},
                {"id": "c2", "site_id": "S2", "name": "C2"},
            ],
        ),
    ]


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


# --- A hand-made network with a ranked incident queue ------------------------------------------


@dataclass(frozen=True)
class QueueExpected:
    """What ``seed_queue`` builds, worked out by hand."""

    harbour: str  # the incident on ran-1: 5 enterprise lines with a 30-min SLA (rank 1)
    hill: str  # the incident on ran-2: 40 consumer and 2 VIP lines, no SLA (rank 2)
    harbour_title: str = "ran-1 down at Harbour gNodeB"
    hill_title: str = "ran-2 down at Hill eNodeB"
    hill_subscribers: int = 42
    script_ticket: str = "<script>alert('x')</script> no signal since 11:50"


def seed_queue(store: Store, now: datetime) -> QueueExpected:
    """Two regions, two sites, two RAN nodes with a cell each, customers on them, two alarms, a queue.

    ran-1 (site Harbour, region North) serves c1: enterprise account ENT (5 lines, ARPU 50, restore
    target 30 min, penalty 600/h). ran-2 (site Hill, region South) serves c2: 40 consumer lines
    (ARPU 20) and 2 lines of the VIP consumer account VIPC (ARPU 30). ran-1 went down 10 min before
    ``now`` (critical), ran-2 20 min before (major). No KPI arrived since, so both cells count as down.
    """
    from dashboard.incidents.queue import refresh_queue
    from dashboard.kpis import load_catalogue

    ing = Ingestor(store, clock=fixed_clock(now))
    subs = [
        {"id": f"E{i}", "account_id": "ENT", "msisdn": f"35191000000{i}", "arpu": 50.0, "plan": "Biz"}
        for i in range(5)
    ]
    subs += [
        {"id": f"V{i}", "account_id": "VIPC", "msisdn": f"35193000000{i}", "arpu": 30.0} for i in range(2)
    ]
    subs += [
        {"id": f"C{i:02d}", "account_id": "CONS", "msisdn": f"3519200000{i:02d}", "arpu": 20.0}
        for i in range(40)
    ]
    cell_of = {"E": "c1", "V": "c2", "C": "c2"}
    a1, b1 = now - timedelta(minutes=10), now - timedelta(minutes=20)

    def alarm(alarm_id: str, resource: str, raised: datetime, severity: str) -> dict[str, Any]:
        return {
            "id": alarm_id,
            "resource_id": resource,
            "severity": severity,
            "state": "raised",
            "probable_cause": "equipmentMalfunction",
            "specific_problem": f"{resource} down",
            "service_affecting": True,
            "raised_at": raised,
            "changed_at": raised,
        }

    kpis = [
        {
            "entity_type": "cell",
            "entity_id": "c1",
            "kpi": kpi,
            "period_start": now - timedelta(minutes=m),
            "value": v,
        }
        for m in (75, 60, 45, 30)
        for kpi, v in (("availability_pct", 100.0), ("dl_throughput_mbps", 40.0))
    ]
    edges = [("ran-1", "c1"), ("ran-2", "c2")]
    ing.ingest(
        "net",
        [
            Batch(kind="regions", records=[{"id": "N", "name": "North"}, {"id": "S", "name": "South"}]),
            Batch(
                kind="sites",
                records=[
                    {"id": "S1", "region_id": "N", "name": "Harbour", "lat": 41.15, "lon": -8.61},
                    {"id": "S2", "region_id": "S", "name": "Hill", "lat": 41.10, "lon": -8.55},
                ],
            ),
            Batch(
                kind="resources",
                records=[
                    {"id": "ran-1", "site_id": "S1", "name": "Harbour gNodeB", "kind": "ran"},
                    {"id": "ran-2", "site_id": "S2", "name": "Hill eNodeB", "kind": "ran"},
                ],
            ),
            Batch(
                kind="cells",
                records=[
                    {"id": "c1", "site_id": "S1", "name": "C1", "technology": "5g"},
                    {"id": "c2", "site_id": "S2", "name": "C2", "technology": "4g"},
                ],
            ),
            Batch(
                kind="topology_edges",
                records=[
                    {"parent_type": "resource", "parent_id": p, "child_type": "cell", "child_id": c}
                    for p, c in edges
                ],
            ),
            Batch(
                kind="accounts",
                records=[
                    {
                        "id": "ENT",
                        "name": "Harbour Logistics",
                        "segment": "enterprise",
                        "vip": False,
                        "account_manager": "Ana Costa",
                        "sla_restore_minutes": 30,
                        "penalty_per_hour": 600.0,
                    },
                    {"id": "VIPC", "name": "R. Mendes", "segment": "consumer", "vip": True},
                    {"id": "CONS", "name": "Consumers", "segment": "consumer", "vip": False},
                ],
            ),
            Batch(kind="subscribers", records=subs),
            Batch(
                kind="subscriber_cells",
                records=[
                    {"subscriber_id": s["id"], "cell_id": cell_of[s["id"][0]], "share": 1.0} for s in subs
                ],
            ),
            Batch(kind="kpi_samples", records=kpis),
            Batch(
                kind="alarms",
                records=[alarm("A1", "ran-1", a1, "critical"), alarm("B1", "ran-2", b1, "major")],
            ),
        ],
    )
    catalogue = load_catalogue("kpi_definitions.yaml")
    refresh_queue(store, catalogue.scoring, now=now, currency="EUR")
    with store.connect() as conn:
        queued = {r.title: r.incident_id for r in conn.execute(select(incident_queue))}
    expected = QueueExpected(
        harbour=queued[QueueExpected.harbour_title], hill=queued[QueueExpected.hill_title]
    )
    ticket = {
        "id": "T-X",
        "subscriber_id": "C01",
        "status": "new",
        "channel": "app",
        "subject": "<b>No signal</b>",
        "description": QueueExpected.script_ticket,
        "created_at": now - timedelta(minutes=5),
        "updated_at": now - timedelta(minutes=5),
    }
    ing.ingest("crm", [Batch(kind="tickets", records=[ticket])])
    return expected


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


def sign_in(driver: Any, url: str, store: Store, role: Role, name: str | None = None) -> None:
    """Log ``driver`` in through the login page as a user with ``role`` (made if needed)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.apps import PASSWORDS, user

    who = user(store, role, name)
    if "/login" not in driver.current_url:  # else: the login page a page sent us to, with its ?next=
        driver.get(f"{url}/login")
    driver.find_element(By.ID, "vt-user").send_keys(who)
    driver.find_element(By.ID, "vt-password").send_keys(PASSWORDS[who])
    driver.find_element(By.ID, "vt-login-submit").click()
    WebDriverWait(driver, 20).until(lambda d: "/login" not in d.current_url)


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
