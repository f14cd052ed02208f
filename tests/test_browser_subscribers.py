"""The Subscribers page in a real headless Chromium: the list renders, a search narrows it, hostile text
stays text, the URL keeps the search, and the browser logs no errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from connectors.base import Batch
from dashboard.ingest import Ingestor
from dashboard.store.db import Store
from tests.apps import new_app
from tests.browser import (
    chromium,
    fixed_clock,
    full_screenshot,
    live_server,
    require_chromium,
    screenshot_dir,
    settings_for,
    severe_console_errors,
    sign_in,
    two_region_network,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = "<img src=x onerror=alert(1)>"
ROWS = "#subscribers-list .ag-center-cols-container .ag-row"
LINKS = "#subscribers-list .ag-pinned-left-cols-container .ag-row a"


def seed_customers(store: Store, now: datetime) -> None:
    """Two regions, four accounts (one named like an HTML tag) and 60 lines, 20 of them enterprise."""
    ing = Ingestor(store, clock=fixed_clock(now))
    accounts = [
        {"id": "ENT", "name": "Harbour Logistics SA", "segment": "enterprise", "vip": False},
        {"id": "CONS", "name": "Joana Silva", "segment": "consumer", "vip": True},
        {"id": "SMB", "name": "Silva & Filhos", "segment": "smb", "vip": False},
        {"id": "TAG", "name": HOSTILE, "segment": "smb", "vip": False},
    ]
    lines = [
        {
            "id": f"S{i:02d}",
            "account_id": ("ENT", "CONS", "SMB")[i % 3],
            "msisdn": f"+35191{i:07d}",
            "arpu": float(10 + i),
            "plan": "Biz" if i % 3 != 1 else "Smart",
            "home_cell_id": "c1" if i % 2 else "c2",
            "status": "active",
        }
        for i in range(60)
    ] + [{"id": "T1", "account_id": "TAG", "msisdn": "+351930000001", "arpu": 5.0, "home_cell_id": "c1"}]
    ing.ingest(
        "crm",
        [
            *two_region_network(),
            Batch(kind="accounts", records=accounts),
            Batch(kind="subscribers", records=lines),
        ],
    )


@pytest.fixture
def served(sqlite_store: Store, driver: Any) -> Iterator[str]:
    require_chromium()
    seed_customers(sqlite_store, datetime.now(UTC).replace(tzinfo=None))
    app = new_app(sqlite_store, settings_for(sqlite_store))
    with live_server(app.server) as url:
        sign_in(driver, url, sqlite_store, "viewer")
        yield url


@pytest.fixture
def driver() -> Iterator[Any]:
    require_chromium()
    with chromium() as d:
        yield d


def _wait_for(driver: Any, check: Any, timeout: float = 20) -> Any:
    """Wait until ``check`` holds; the grid redraws its rows, so elements read may go stale meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(check)


def _rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, ROWS))


def _texts(driver: Any, css: str) -> list[str]:
    """Texts of the matching elements read in one step in the page: the infinite grid re-renders
    its rows as blocks arrive, so an element found first may be gone when a second call reads it."""
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText);"
    return [str(t) for t in driver.execute_script(script, css)]


def _hrefs(driver: Any, css: str) -> list[str]:
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.href || '');"
    return [str(t) for t in driver.execute_script(script, css)]


def _count(driver: Any) -> str:
    found = _texts(driver, "#subscribers-list .vt-count")
    return found[0] if found else ""


def _type(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "subscribers-query")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text, Keys.ENTER)


def test_the_list_renders_a_search_narrows_it_and_hostile_text_stays_text(served: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.get(served + "/subscribers")
    _wait_for(driver, lambda d: _count(d).startswith("61 subscribers"))
    _wait_for(driver, lambda d: len(_rows(d)) >= 5)
    assert _texts(driver, LINKS)[0] == "S58"  # 68 x VIP 2
    assert _hrefs(driver, LINKS)[0].endswith("/subscribers/S58")
    msisdns = _texts(driver, f'{ROWS} [col-id="msisdn"]')
    assert msisdns and all("***" in m for m in msisdns)  # masked on the server

    _type(driver, "+351 91 000 0042")
    _wait_for(driver, lambda d: _count(d).startswith("1 subscriber"))
    _wait_for(driver, lambda d: _texts(d, LINKS) == ["S42"])
    assert "q=%2B351+91+000+0042" in driver.current_url

    _type(driver, HOSTILE)
    _wait_for(driver, lambda d: _texts(d, LINKS) == ["T1"])
    assert _count(driver).startswith("1 subscriber matches")
    assert _texts(driver, f'{ROWS} [col-id="account_link"]')[:1] == [HOSTILE]  # shown as the characters it is
    assert driver.find_elements(By.CSS_SELECTOR, "#subscribers-list img") == []  # not as markup
    assert driver.find_elements(By.CSS_SELECTOR, ".dash-fe-error__title") == []
    full_screenshot(driver, screenshot_dir() / "subscribers-search.png")
    assert severe_console_errors(driver) == []


def test_filters_and_sort_come_from_the_url_and_go_back_to_it(served: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(served + "/subscribers?segment=enterprise&region=North&sort=risk")
    _wait_for(driver, lambda d: _count(d).startswith("10 subscribers match"))  # odd i, i % 3 == 0
    assert (
        Select(driver.find_element(By.ID, "subscribers-segment")).first_selected_option.text == "Enterprise"
    )
    assert Select(driver.find_element(By.ID, "subscribers-region")).first_selected_option.text == "North"
    Select(driver.find_element(By.ID, "subscribers-region")).select_by_visible_text("All regions")
    _wait_for(driver, lambda d: _count(d).startswith("20 subscribers match"))
    query = parse_qs(urlparse(driver.current_url).query)
    assert query == {"segment": ["enterprise"], "sort": ["risk"]}
    full_screenshot(driver, screenshot_dir() / "subscribers-filtered.png")
    assert severe_console_errors(driver) == [], json.dumps(severe_console_errors(driver))[:500]
