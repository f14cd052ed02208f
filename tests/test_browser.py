"""Real headless Chromium against a live server: every page renders, refreshes and logs no errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import Batch
from dashboard.app import create_app
from dashboard.ingest import Ingestor
from dashboard.store.db import Store
from tests.browser import (
    chromium,
    full_screenshot,
    live_server,
    require_chromium,
    screenshot_dir,
    seed,
    settings_for,
    severe_console_errors,
)

pytestmark = pytest.mark.browser

REFRESH_MS = 1000
PINNED_ROWS = "#sources-status-grid .ag-pinned-left-cols-container .ag-row"
STATE_CELLS = '#sources-status-grid .ag-center-cols-container [col-id="state"]'

#: path, a CSS selector of the page's main content once it has data, a file name.
PAGES = [
    ("/", "#wall-tiles .vt-tile", "wall"),
    ("/incidents", "#incidents-grid .ag-row", "incidents"),
    ("/linkage", "#linkage-graph .main-svg", "linkage"),
    ("/subscribers?id=S1", "#subscribers-result .vt-subscriber", "subscribers"),
    ("/sources", "#sources-status-grid .ag-row", "sources"),
]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def served(sqlite_store: Store) -> Iterator[tuple[str, Store]]:
    require_chromium()
    seed(sqlite_store, _now())
    app = create_app(settings_for(sqlite_store), store=sqlite_store, refresh_ms=REFRESH_MS)
    with live_server(app.server) as url:
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


def _strip_value(driver: Any, metric: str) -> str:
    from selenium.webdriver.common.by import By

    item = driver.find_element(By.CSS_SELECTOR, f'#shell-strip [id*=\'"metric":"{metric}"\'] .vt-strip-value')
    return str(item.text)


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
    assert "as of" in driver.find_element(By.CSS_SELECTOR, "#shell-strip .vt-strip-asof").text
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
