"""Real headless Chromium against a live server: every page renders, refreshes and logs no errors."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import Batch
from dashboard.ingest import Ingestor
from dashboard.store.db import Store
from tests.apps import new_app
from tests.browser import (
    QueueExpected,
    chromium,
    full_screenshot,
    live_server,
    require_chromium,
    screenshot_dir,
    seed,
    seed_queue,
    settings_for,
    severe_console_errors,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REFRESH_MS = 1000
PINNED_ROWS = "#sources-status-grid .ag-pinned-left-cols-container .ag-row"
STATE_CELLS = '#sources-status-grid .ag-center-cols-container [col-id="state"]'

#: path, a CSS selector of the page's main content once it has data, a file name.
PAGES = [
    ("/incidents", "#incidents-summary", "incidents-empty"),  # no ranked queue in this store
    ("/linkage", "#linkage-tree .main-svg", "linkage"),
    ("/subscribers?q=S1", "#subscribers-list .ag-row", "subscribers"),
    ("/sources", "#sources-status-grid .ag-row", "sources"),
]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def served(sqlite_store: Store, driver: Any) -> Iterator[tuple[str, Store]]:
    require_chromium()
    seed(sqlite_store, _now())
    app = new_app(sqlite_store, settings_for(sqlite_store), refresh_ms=REFRESH_MS)
    with live_server(app.server) as url:
        sign_in(driver, url, sqlite_store, "operator")
        yield url, sqlite_store


@pytest.fixture
def driver() -> Iterator[Any]:
    require_chromium()
    with chromium() as d:
        yield d


def _wait(driver: Any, css: str, timeout: float = 20) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _text_of(driver: Any, css: str) -> str:
    """An element's text read in one step in the page: the strip re-renders on its interval, so a
    found element may be replaced before a second call reads it."""
    return str(
        driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
        )
    )


def _strip_value(driver: Any, metric: str) -> str:
    return _text_of(driver, f'#shell-strip [id*=\'"metric":"{metric}"\'] .vt-strip-value')


@pytest.mark.parametrize(("path", "ready", "name"), PAGES, ids=[p[2] for p in PAGES])
def test_page_renders_without_errors(
    served: tuple[str, Store], driver: Any, path: str, ready: str, name: str
) -> None:
    from selenium.webdriver.common.by import By

    url, _ = served
    driver.get(url + path)
    _wait(driver, ready)
    _wait(driver, "#shell-strip.vt-strip--fresh")
    assert _strip_value(driver, "active_alarms") == "3"
    assert _strip_value(driver, "revenue_month") == "300 EUR"  # 300.5 shown without decimals
    assert "as of" in _text_of(driver, "#shell-strip .vt-strip-asof")
    assert driver.find_elements(By.CSS_SELECTOR, ".dash-fe-error__title") == []
    full_screenshot(driver, screenshot_dir() / f"{name}.png")
    assert severe_console_errors(driver) == []


def test_sources_page_shows_each_connector_state(served: tuple[str, Store], driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    driver.get(url + "/sources")
    _wait(driver, "#sources-status-grid .ag-row")

    def state(connector: str) -> str:
        cell = f'#sources-status-grid .ag-center-cols-container [row-id="{connector}"] [col-id="state"]'
        return str(driver.find_element(By.CSS_SELECTOR, cell).text)

    assert [state(c) for c in ("alpha", "beta", "gamma", "legacy")] == [
        "healthy",
        "retrying",
        "never run",
        "healthy",
    ]
    # The quarantine lists both records; clicking one shows its whole payload, not the cut preview.
    rows = driver.find_elements(By.CSS_SELECTOR, "#sources-q-grid .ag-center-cols-container .ag-row")
    assert len(rows) == 2
    cell = driver.find_element(By.CSS_SELECTOR, '#sources-q-grid [row-id="1"] [col-id="reason"]')
    driver.set_window_size(1600, 2400)  # the whole page in view, so nothing covers the row
    cell.click()
    detail = driver.find_element(By.CSS_SELECTOR, "#sources-q-detail")
    WebDriverWait(driver, 10).until(lambda d: "x" * 400 in detail.text)
    assert '"msisdn": "garbled"' in detail.text
    assert severe_console_errors(driver) == []


def test_strip_shows_a_store_change_after_the_interval(served: tuple[str, Store], driver: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    url, store = served
    driver.get(url + "/incidents")
    _wait(driver, "#shell-strip.vt-strip--fresh")
    assert _strip_value(driver, "active_alarms") == "3"
    t = _now() - timedelta(minutes=1)
    Ingestor(store).ingest(
        "seed",
        [Batch(kind="alarms", records=[{"id": "AL9", "severity": "major", "state": "raised", "raised_at": t,
                                          "changed_at": t}])],
    )  # fmt: skip
    WebDriverWait(driver, 10 * REFRESH_MS / 1000).until(lambda d: _strip_value(d, "active_alarms") == "4")
    assert severe_console_errors(driver) == []


@pytest.fixture
def served_queue(sqlite_store: Store, driver: Any) -> Iterator[tuple[str, Store, QueueExpected]]:
    require_chromium()
    expected = seed_queue(sqlite_store, _now())
    app = new_app(sqlite_store, settings_for(sqlite_store), refresh_ms=REFRESH_MS)
    with live_server(app.server) as url:
        sign_in(driver, url, sqlite_store, "operator")
        yield url, sqlite_store, expected


def test_incident_queue_ticks_refreshes_in_place_and_opens_the_detail(
    served_queue: tuple[str, Store, QueueExpected], driver: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, expected = served_queue
    row = '#incidents-grid .ag-center-cols-container [row-id="{}"]'
    driver.get(url + "/incidents")
    _wait(driver, row.format(expected.hill))
    ranks = driver.find_elements(By.CSS_SELECTOR, "#incidents-grid .ag-pinned-left-cols-container .ag-row")
    assert sorted((int(r.get_attribute("row-index")), r.text) for r in ranks) == [(0, "1"), (1, "2")]

    # The SLA clock counts down in the browser, between refreshes.
    sla = driver.find_element(By.CSS_SELECTOR, row.format(expected.harbour) + ' [col-id="sla_deadline"]')
    before = sla.text
    assert re.fullmatch(r"\d\d:\d\d", before), before  # about 20 minutes to go
    time.sleep(1.5)
    assert sla.text != before
    severity = driver.find_element(By.CSS_SELECTOR, row.format(expected.harbour) + ' [col-id="severity"]')
    assert severity.text.strip().lower() == "critical"  # the word, not only a colour

    # Clicking a row opens its detail and puts it in the URL; refreshes keep the selection.
    driver.find_element(By.CSS_SELECTOR, row.format(expected.hill) + ' [col-id="title"]').click()
    detail = driver.find_element(By.ID, "incidents-detail")
    WebDriverWait(driver, 10).until(lambda d: expected.hill_title in detail.text)
    assert "d-none" not in detail.get_attribute("class")
    WebDriverWait(driver, 10).until(lambda d: f"id={expected.hill}" in d.current_url)
    _wait(driver, "#incidents-detail .vt-subscribers-grid .ag-center-cols-container .ag-row")
    assert expected.script_ticket in detail.text  # shown as text, not run
    time.sleep(2.5 * REFRESH_MS / 1000)  # at least two grid refreshes
    selected = driver.find_elements(
        By.CSS_SELECTOR, "#incidents-grid .ag-center-cols-container .ag-row-selected"
    )
    assert [r.get_attribute("row-id") for r in selected] == [expected.hill]
    full_screenshot(driver, screenshot_dir() / "incidents.png")
    assert severe_console_errors(driver) == []


def test_incident_deep_link_and_acknowledge(
    served_queue: tuple[str, Store, QueueExpected], driver: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, _, expected = served_queue
    driver.get(f"{url}/incidents?id={expected.harbour}&severity=critical")
    _wait(driver, f'#incidents-grid .ag-row-selected[row-id="{expected.harbour}"]')
    detail = driver.find_element(By.ID, "incidents-detail")
    assert expected.harbour_title in detail.text and "Harbour Logistics" in detail.text
    driver.set_window_size(1600, 2400)  # the whole detail in view, so nothing covers the buttons
    driver.find_element(By.ID, "incidents-ack").click()
    WebDriverWait(driver, 10).until(
        lambda d: "Acknowledged by tester-operator." in d.find_element(By.ID, "incidents-action-result").text
    )
    state = f'#incidents-grid .ag-center-cols-container [row-id="{expected.harbour}"] [col-id="state"]'
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, state).text == "acknowledged")
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.ID, "incidents-ack").get_attribute("disabled") is not None
    )
    full_screenshot(driver, screenshot_dir() / "incidents-detail.png")
    # Widening a filter re-reads the queue in place and rewrites the deep link.
    Select(driver.find_element(By.ID, "incidents-severity")).select_by_value("any")
    _wait(driver, f'#incidents-grid .ag-center-cols-container [row-id="{expected.hill}"]')
    WebDriverWait(driver, 10).until(lambda d: "severity=" not in d.current_url)
    assert f"id={expected.harbour}" in driver.current_url
    assert severe_console_errors(driver) == []


def test_log_in_use_every_page_and_log_out(sqlite_store: Store, driver: Any) -> None:
    """As a person: the login page, every page of the navigation (the admin sees them all), log-out,
    and the next page asks for the login again."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from dashboard.app import NAV

    seed(sqlite_store, _now())
    app = new_app(sqlite_store, settings_for(sqlite_store), refresh_ms=REFRESH_MS)
    with live_server(app.server) as url:
        driver.get(f"{url}/incidents")
        WebDriverWait(driver, 20).until(lambda d: "/login?next=" in d.current_url)
        sign_in(driver, url, sqlite_store, "admin")
        assert driver.current_url.startswith(f"{url}/incidents")  # back where the login was asked
        for label, path, _ in NAV:
            driver.get(url + path)
            _wait(driver, "#_pages_content > *")
            WebDriverWait(driver, 20).until(
                lambda d: "tester-admin" in d.find_element(By.ID, "shell-who").text
            )
            assert driver.find_elements(By.CSS_SELECTOR, ".vt-forbidden") == [], label
            assert severe_console_errors(driver) == [], label
        driver.get(f"{url}/incidents")
        _wait(driver, "#shell-logout").click()
        WebDriverWait(driver, 20).until(lambda d: d.current_url.startswith(f"{url}/login"))
        driver.get(f"{url}/sources")
        WebDriverWait(driver, 20).until(lambda d: "/login?next=%2Fsources" in d.current_url)


def test_a_viewer_sees_the_read_pages_only_and_may_not_act(sqlite_store: Store, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    expected = seed_queue(sqlite_store, _now())
    app = new_app(sqlite_store, settings_for(sqlite_store), refresh_ms=REFRESH_MS)
    with live_server(app.server) as url:
        sign_in(driver, url, sqlite_store, "viewer")
        driver.get(f"{url}/sources")
        _wait(driver, ".vt-nav .nav-link")
        links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, ".vt-nav .nav-link")]
        assert "Audit" not in links and "Access" not in links and "Incidents" in links
        driver.get(f"{url}/audit")
        assert "may not see this page" in _wait(driver, ".vt-forbidden").text
        driver.get(f"{url}/incidents?id={expected.harbour}")
        _wait(driver, f'#incidents-grid .ag-row-selected[row-id="{expected.harbour}"]')
        assert driver.find_element(By.ID, "incidents-ack").get_attribute("disabled") is not None
        assert driver.find_element(By.ID, "incidents-note-add").get_attribute("disabled") is not None
