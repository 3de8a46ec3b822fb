"""Headless Chromium against the example project served on loopback.

The browser is Debian's ``chromium`` with its ``chromedriver`` (no download
at test time), driven by Selenium. Where either is missing the browser tests
are skipped, and the run's summary says so in a line of its own; with
``PROLOGUE_REQUIRE_BROWSER=1`` (set by ``.ci/browser``) they fail instead, so
that CI cannot pass without having run them.

The example runs as the README runs it, ``manage.py runserver``, in a
subprocess on a free loopback port, once per engine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.server import ExampleServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

NO_CHROMIUM = "Chromium not installed: apt-get install chromium chromium-driver"
NO_SELENIUM = "selenium not installed: pip install -e '.[browser]'"
REQUIRE_BROWSER = "PROLOGUE_REQUIRE_BROWSER"
SCREENSHOTS = "PROLOGUE_SCREENSHOTS_DIR"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
WINDOW_SIZE = (1000, 760)


def find_chromium() -> tuple[str, str] | None:
    """Return the paths of Chromium and its chromedriver, or ``None``."""
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    if find_chromium() is None:
        return NO_CHROMIUM
    try:
        import selenium  # noqa: F401
    except ImportError:
        return NO_SELENIUM
    return None


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium with a profile (and cookies) of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = find_chromium()
    assert paths is not None
    binary, chromedriver = paths
    with tempfile.TemporaryDirectory(prefix="prologue-chromium-") as profile:
        options = webdriver.ChromeOptions()
        # Both paths given: Selenium Manager, which would download, never runs.
        options.binary_location = binary
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(chromedriver))
        try:
            driver.set_window_size(*WINDOW_SIZE)
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the whole run; tests clear its cookies."""
    reason = missing_browser()
    if reason is not None:
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{REQUIRE_BROWSER}=1, but {reason}", pytrace=False)
        pytest.skip(reason)
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def second_browser(browser: WebDriver) -> Iterator[WebDriver]:
    """Another Chromium, for a second client of one user (started only by
    the tests that ask for it, after ``browser`` has checked for Chromium)."""
    with chromium() as driver:
        yield driver


@pytest.fixture(
    scope="module",
    params=[
        "signed_cookies",
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def example_server(
    request: pytest.FixtureRequest, browser: WebDriver
) -> Iterator[ExampleServer]:
    """The example served with each engine in turn (after the browser, so that
    a missing browser skips before any server starts)."""
    engine: str = request.param
    redis_url = request.getfixturevalue("redis_url") if engine == "redis" else ""
    server = ExampleServer(engine, redis_url)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


class Screenshots:
    """Saves a PNG of a page when ``$PROLOGUE_SCREENSHOTS_DIR`` is set.

    Only for one engine, the default unless ``take()`` names another (a page
    the default engine does not have), so that the docs show one of each.
    """

    def __init__(self, driver: WebDriver, engine: str) -> None:
        directory = os.environ.get(SCREENSHOTS, "")
        self.driver = driver
        self.directory = Path(directory) if directory else None
        self.engine = engine

    def take(
        self, name: str, engine: str = "signed_cookies", width: int = WINDOW_SIZE[0]
    ) -> None:
        if self.directory is None or self.engine != engine:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # Fit the whole page at that width, then go back to the usual window.
        self.driver.set_window_size(width, WINDOW_SIZE[1])
        height = self.driver.execute_script(
            "return document.documentElement.scrollHeight"
            " + window.outerHeight - window.innerHeight"
        )
        self.driver.set_window_size(width, max(WINDOW_SIZE[1], int(height)))
        try:
            self.driver.save_screenshot(str(self.directory / f"{name}.png"))
        finally:
            self.driver.set_window_size(*WINDOW_SIZE)


@pytest.fixture
def screenshots(browser: WebDriver, example_server: ExampleServer) -> Screenshots:
    return Screenshots(browser, example_server.engine)


@pytest.fixture
def site(browser: WebDriver, example_server: ExampleServer) -> Iterator[WebDriver]:
    """The browser, with no cookies, for one test against one engine's server."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    yield browser
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if any(reason in str(report.longrepr) for reason in (NO_CHROMIUM, NO_SELENIUM))
    ]
    if skipped:
        reason = NO_CHROMIUM if NO_CHROMIUM in str(skipped[0].longrepr) else NO_SELENIUM
        terminalreporter.write_sep(
            "!",
            f"{len(skipped)} browser tests NOT run. {reason}",
            yellow=True,
            bold=True,
        )
