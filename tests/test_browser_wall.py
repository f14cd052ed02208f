"""The NOC wall in real headless Chromium at 1920x1080, fed by a real scheduler and a real HTTP source.

A TMF642 alarm source on a loopback HTTP server is polled every second; "stopping" it makes it
answer 503, so its runs fail, it goes stale and the wall must say so; restarting it clears the
banner. A new critical enterprise incident (alarms in, queue refreshed) brings the incidents view
to the front with the incident highlighted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dashboard.config import ConnectorConfig, SchedulerConfig, Settings, WallConfig, WallView
from dashboard.incidents.queue import refresh_queue
from dashboard.kpis import load_catalogue
from dashboard.scheduler import ConnectorJobs, background_scheduler
from dashboard.store.db import Store
from tests.apps import bearer, context_for, new_app
from tests.browser import (
    chromium,
    full_screenshot,
    live_server,
    require_chromium,
    screenshot_dir,
    seed_queue,
    severe_console_errors,
)
from tests.loopback import LoopbackServer, loopback

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ALARMS = "/tmf-api/alarmManagement/v4/alarm"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _settings(store: Store, source: LoopbackServer) -> Settings:
    return Settings(
        database_url=store.url,
        currency="EUR",
        scheduler=SchedulerConfig(retry_initial_s=1, retry_max_s=1, queue_refresh_s=3600),
        wall=WallConfig(
            refresh_s=1,
            playlist=[
                WallView(view="overview", seconds=30),
                WallView(view="map", seconds=30),
                WallView(view="incidents", seconds=30),
            ],
        ),
        connectors=[
            ConnectorConfig(
                name="alarms",
                type="tmf642",
                interval=1,
                options={"base_url": source.url, "retry": {"attempts": 1}, "timeout_s": 2},
            )
        ],
    )


@pytest.fixture
def wall(sqlite_store: Store, driver: Any) -> Iterator[tuple[str, Store, LoopbackServer, Settings]]:
    require_chromium()
    with loopback() as source:
        source.json_route("GET", ALARMS, [])
        settings = _settings(sqlite_store, source)
        app = new_app(sqlite_store, settings)
        jobs = ConnectorJobs(context_for(sqlite_store, settings))
        scheduler = background_scheduler(jobs)
        try:
            with live_server(app.server) as url:
                # A wall screen is set up once with a read-only token (kiosk): the session it opens
                # lives as long as the token.
                driver.get(f"{url}/wall?access_token={bearer(sqlite_store, 'viewer').split()[1]}")
                yield url, sqlite_store, source, settings
        finally:
            scheduler.shutdown(wait=False)
            jobs.close()


@pytest.fixture
def driver() -> Iterator[Any]:
    require_chromium()
    with chromium(1920, 1080) as d:
        # The viewport itself at 1920x1080, as on the TV (the window size includes no chrome headless,
        # but make it exact).
        d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False},
        )
        yield d


def _js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def _until(driver: Any, cond: Any, timeout: float = 20, what: str = "") -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: cond(d), message=what)


def _banner(driver: Any) -> str:
    return str(
        _js(
            driver,
            "const b = document.getElementById('wall-banner'); return b && !b.hidden ? b.innerText : '';",
        )
    )


def test_wall_kiosk_renders_goes_stale_when_a_source_stops_and_recovers(
    wall: tuple[str, Store, LoopbackServer, Settings], driver: Any
) -> None:
    url, _store, source, _ = wall
    driver.get(url + "/wall?kiosk=1")
    sources = "return document.getElementById('wall-sources')?.innerText || ''"
    _until(driver, lambda d: "alarms" in _js(d, sources), what="sources listed")
    _until(driver, lambda d: "fresh" in _js(d, "return document.getElementById('wall-sources').innerText"))
    assert _banner(driver) == ""
    # Kiosk: no navigation, no strip, no cursor; the wall fills the screen.
    hidden = _js(
        driver,
        "return [...document.querySelectorAll('.vt-navbar, .vt-strip')]"
        ".every(e => getComputedStyle(e).display === 'none');",
    )
    assert hidden is True
    assert _js(driver, "return getComputedStyle(document.getElementById('wall-root')).cursor") == "none"
    box = _js(
        driver,
        "const r = document.getElementById('wall-root').getBoundingClientRect(); return [r.width, r.height];",
    )
    assert box == [1920, 1080]
    assert _js(driver, "return document.documentElement.scrollHeight <= window.innerHeight") is True
    full_screenshot(driver, screenshot_dir() / "wall-kiosk.png")

    # Stop the source: its runs fail, it goes stale (2 intervals), the banner says so, figures grey.
    source.json_route("GET", ALARMS, {"code": "503", "reason": "stopped"}, status=503)
    _until(driver, lambda d: "DATA STALE" in _banner(d), timeout=30, what="stale banner")
    text = _banner(driver)
    assert "alarms source" in text and ("failing" in text or "retrying" in text), text
    assert _js(driver, "return document.getElementById('wall-root').classList.contains('vt-stale')") is True
    driver.save_screenshot(str(screenshot_dir() / "wall-stale.png"))

    # Restart it: the next successful run makes it fresh and the banner goes by itself.
    source.json_route("GET", ALARMS, [])
    _until(driver, lambda d: _banner(d) == "", timeout=30, what="banner cleared")
    assert _js(driver, "return document.getElementById('wall-root').classList.contains('vt-stale')") is False
    assert severe_console_errors(driver) == []


def test_new_critical_enterprise_incident_brings_its_view_to_the_front(
    wall: tuple[str, Store, LoopbackServer, Settings], driver: Any
) -> None:
    url, store, _source, settings = wall
    driver.get(url + "/wall")
    _until(
        driver,
        lambda d: _js(d, "return document.getElementById('wall-asof')?.innerText || ''").startswith("as of"),
    )
    assert _js(driver, "return document.getElementById('wall-root').dataset.view") == "overview"
    # Space pauses the rotation (and says so); Space again resumes.
    from selenium.webdriver.common.keys import Keys

    driver.find_element("tag name", "body").send_keys(Keys.SPACE)
    assert _js(driver, "return document.getElementById('wall-root').dataset.paused") == "1"
    driver.find_element("tag name", "body").send_keys(Keys.ARROW_RIGHT)
    assert _js(driver, "return document.getElementById('wall-root').dataset.view") == "map"
    driver.find_element("tag name", "body").send_keys(Keys.SPACE)
    assert _js(driver, "return document.getElementById('wall-root').dataset.paused") == "0"

    # A critical incident hitting an enterprise account with an SLA arrives.
    expected = seed_queue(store, _now())
    refresh_queue(store, load_catalogue(settings.kpi_definitions_path()).scoring, now=_now())
    view = "return document.getElementById('wall-root').dataset.view"
    _until(driver, lambda d: _js(d, view) == "incidents", timeout=45, what="jump to the incidents view")
    spot = _js(driver, "return document.getElementById('wall-panel-spotlight').innerText")
    assert expected.harbour_title in spot and "CRITICAL" in spot and "enterprise lines" in spot
    row = _js(
        driver, "const r = document.querySelector('.vt-wall-row.vt-new'); return r ? r.dataset.id : null;"
    )
    assert row in (expected.harbour, expected.hill)
    clock = _js(
        driver,
        f"return document.querySelector('.vt-wall-row[data-id=\"{expected.harbour}\"] .vt-q-sla').innerText",
    )
    time.sleep(2.2)
    later = _js(
        driver,
        f"return document.querySelector('.vt-wall-row[data-id=\"{expected.harbour}\"] .vt-q-sla').innerText",
    )
    assert clock != later and "m " in later  # the SLA countdown ticks in the browser
    # Past its 30 minutes the cell says so in white on red, whole within its column.
    cell = f"document.querySelector('.vt-wall-row[data-id=\"{expected.harbour}\"] .vt-q-sla')"
    breached = f"window.vantageWall.offsetMs = 31 * 60 * 1000; return {cell}.innerText"
    _until(driver, lambda d: _js(d, breached) == "BREACHED", what="the SLA shown as breached")
    shown = _js(
        driver,
        f"const c = {cell}; const s = getComputedStyle(c); return [c.scrollWidth <= c.clientWidth, s.color, "
        "getComputedStyle(c, '::before').content];",
    )
    assert shown == [True, "rgb(255, 255, 255)", "none"]
    # The sites arrived after the page loaded: the map learnt them and marks both by status.
    marks = (
        "return [...document.querySelectorAll('#wall-map .vt-site')].map(e => e.getAttribute('class')).sort()"
    )
    _until(driver, lambda d: len(_js(d, marks)) == 2, what="both sites marked on the map")
    assert _js(driver, marks) == ["vt-site vt-site-critical", "vt-site vt-site-major"]
    driver.save_screenshot(str(screenshot_dir() / "wall-incident.png"))
    assert severe_console_errors(driver) == []
