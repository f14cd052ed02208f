"""The subscriber 360 in a real headless Chromium: it renders without errors, ticket text stays text,
personal data is masked in the DOM until an analyst unmasks it, and incident links drill through."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from dashboard.config import Settings
from dashboard.store.db import Store
from dashboard.store.schema import audit
from tests.apps import new_app
from tests.browser import (
    chromium,
    full_screenshot,
    live_server,
    require_chromium,
    screenshot_dir,
    severe_console_errors,
    sign_in,
)
from tests.test_subscriber_story import StoryExpected, seed_story

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MSISDN = "span.vt-personal[id*='\"msisdn\"']"
CONTACT = "span.vt-personal[id*='\"contact_name\"']"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _serve(store: Store) -> Any:
    settings = Settings(
        database_url=store.url,
        currency="EUR",
    )
    return new_app(store, settings, refresh_ms=60_000)


@pytest.fixture
def seeded(sqlite_store: Store) -> tuple[Store, StoryExpected]:
    require_chromium()
    return sqlite_store, seed_story(sqlite_store, _now())


@pytest.fixture
def driver() -> Iterator[Any]:
    require_chromium()
    with chromium() as d:
        yield d


def _wait(driver: Any, css: str, timeout: float = 20, *, visible: bool = True) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    found = ec.visibility_of_element_located if visible else ec.presence_of_element_located
    return WebDriverWait(driver, timeout).until(found((By.CSS_SELECTOR, css)))


def _no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018 - raises when no script opened an alert
    except NoAlertPresentException:
        return True
    return False


def test_the_360_view_renders_masked_with_script_text_as_text(
    seeded: tuple[Store, StoryExpected], driver: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    store, expected = seeded
    with live_server(_serve(store).server) as url:
        sign_in(driver, url, store, "viewer")
        driver.get(f"{url}/subscribers/E0")
        _wait(driver, "#subscriber-tabs")
        _wait(driver, "#subscriber-timeline .main-svg")
        assert driver.find_elements(By.CSS_SELECTOR, ".dash-fe-error__title") == []
        assert driver.find_element(By.CSS_SELECTOR, MSISDN).text == expected.masked_msisdn
        assert driver.find_element(By.CSS_SELECTOR, CONTACT).text == "J*** S***"
        assert not driver.find_element(By.ID, "subscriber-unmask").is_displayed()  # a viewer has no button
        source = driver.page_source
        for clear in expected.clear_strings:
            assert clear not in source, clear
        assert "churn risk 42% (high)" in driver.find_element(By.CSS_SELECTOR, ".vt-subscriber-header").text
        full_screenshot(driver, screenshot_dir() / "subscriber-overview.png")

        # The tickets tab: the script is shown as its own text and never runs; the URL follows the tab.
        driver.set_window_size(1600, 1000)
        driver.find_element(By.LINK_TEXT, "Tickets").click()
        text = _wait(driver, ".vt-ticket-text")
        assert "<script>alert(1)</script><b>x</b>" in text.text
        assert "<b>No signal</b>" in driver.find_element(By.CSS_SELECTOR, ".vt-ticket-subject").text
        assert driver.find_elements(By.CSS_SELECTOR, ".vt-tickets b") == []  # no element made from the text
        assert _no_alert(driver)
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/subscribers/E0?tab=tickets"))
        full_screenshot(driver, screenshot_dir() / "subscriber-tickets.png")

        # The deep link reopens a tab; the incident that hit the subscriber drills through.
        driver.set_window_size(1600, 1000)
        driver.get(f"{url}/subscribers/E0?tab=network")
        link = _wait(driver, "a.vt-incident-link")
        _wait(driver, "#subscriber-kpi-graph .main-svg")
        WebDriverWait(driver, 10).until(  # both panels drawn at their full height
            lambda d: d.find_element(By.CSS_SELECTOR, "#subscriber-kpi-graph .main-svg").size["height"] > 400
        )
        full_screenshot(driver, screenshot_dir() / "subscriber-network.png")
        for tab in ("revenue", "actions"):
            driver.set_window_size(1600, 1000)
            driver.get(f"{url}/subscribers/E0?tab={tab}")
            _wait(driver, "#subscriber-tab-body .vt-card")
            full_screenshot(driver, screenshot_dir() / f"subscriber-{tab}.png")
        driver.set_window_size(1600, 1000)
        driver.get(f"{url}/subscribers/E0?tab=network")
        link = _wait(driver, "a.vt-incident-link")
        assert link.text == "ran-1 down at Harbour gNodeB"
        link.click()
        WebDriverWait(driver, 10).until(lambda d: f"/incidents?id={expected.harbour}" in d.current_url)
        detail = _wait(driver, "#incidents-detail-header h2")
        assert "ran-1 down at Harbour gNodeB" in detail.text
        # ... and its affected subscribers link back to each one's 360 view.
        back = _wait(driver, "#incidents-detail a.vt-subscriber-link", visible=False)
        assert back.get_attribute("href").endswith("/subscribers/" + back.get_attribute("textContent"))
        assert severe_console_errors(driver) == []


def test_an_analyst_unmasks_one_subscriber_and_it_is_audited(
    seeded: tuple[Store, StoryExpected], driver: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    store, expected = seeded
    with live_server(_serve(store).server) as url:
        sign_in(driver, url, store, "analyst")
        driver.get(f"{url}/subscribers/E0")
        button = _wait(driver, "#subscriber-unmask")
        assert driver.find_element(By.CSS_SELECTOR, MSISDN).text == expected.masked_msisdn
        assert expected.msisdn not in driver.page_source
        button.click()
        WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, MSISDN).text == expected.msisdn
        )
        assert driver.find_element(By.CSS_SELECTOR, CONTACT).text == expected.contact_name
        result = driver.find_element(By.ID, "subscriber-unmask-result").text
        assert "Personal data shown to tester-analyst; this was written to the audit log." in result
        assert driver.find_element(By.ID, "subscriber-unmask").get_attribute("disabled") is not None
        full_screenshot(driver, screenshot_dir() / "subscriber-unmasked.png")
        driver.set_window_size(1600, 1000)
        driver.find_element(By.LINK_TEXT, "Tickets").click()  # only the tab's body is rebuilt
        _wait(driver, ".vt-ticket-text")
        assert driver.find_element(By.CSS_SELECTOR, MSISDN).text == expected.msisdn
        assert severe_console_errors(driver) == []
    with store.connect() as conn:
        rows = conn.execute(
            select(func.count()).select_from(audit).where(audit.c.action == "subscriber.unmask")
        ).scalar()
    assert rows == 1


def test_an_unknown_subscriber_says_so_and_links_back_to_search(sqlite_store: Store, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    with live_server(_serve(sqlite_store).server) as url:
        sign_in(driver, url, sqlite_store, "viewer")
        driver.get(f"{url}/subscribers/nobody")
        alert = _wait(driver, ".vt-not-found")
        assert "No subscriber with id 'nobody'" in alert.text
        assert alert.find_element(By.TAG_NAME, "a").get_attribute("href").endswith("/subscribers?q=nobody")
        assert severe_console_errors(driver) == []
