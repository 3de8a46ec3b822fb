""" "Where you're signed in" in two headless Chromiums, once per engine: one
user signs in from both, sees both, and ends the other from the first, which
is signed out at its next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import Screenshots
from tests.e2e.server import ExampleServer
from tests.e2e.test_example_browser import by_css, click, flashes, sign_in, text_of

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser


@pytest.fixture
def other(
    second_browser: WebDriver, example_server: ExampleServer
) -> Iterator[WebDriver]:
    second_browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    yield second_browser
    second_browser.execute_cdp_cmd("Network.clearBrowserCookies", {})


def rows(driver: WebDriver) -> list[tuple[str, bool]]:
    """The sessions listed: each row's id, and whether it is this session."""
    return [
        (
            str(row.get_attribute("data-session")),
            "current" in str(row.get_attribute("class")).split(),
        )
        for row in driver.find_elements("css selector", "li.prologue-session")
    ]


def test_end_the_other_session_from_the_first(
    site: WebDriver,
    other: WebDriver,
    example_server: ExampleServer,
    screenshots: Screenshots,
) -> None:
    url = example_server.url
    sign_in(site, example_server, "Ada")
    if example_server.engine == "signed_cookies":
        # No list of a user's sessions to show: no link to the page, and the
        # page, in the site's layout, says why (never a 500).
        assert site.find_elements("id", "sessions-link") == []
        site.get(f"{url}/account/sessions/")
        assert text_of(site, "who") == "Signed in as Ada"
        assert by_css(site, "#prologue-sessions .intro") == [
            "This site cannot list where you're signed in: it keeps no record "
            "of your sessions that it could show or end here."
        ]
        return
    sign_in(other, example_server, "Ada")

    click(site, "sessions-link")
    assert site.current_url == f"{url}/account/sessions/"
    listed = rows(site)
    assert [current for _, current in listed] == [True, False]
    assert text_of(site, "who") == "Signed in as Ada"
    devices = [
        cell.text
        for cell in site.find_elements("css selector", ".prologue-session .device")
    ]
    assert devices[0].endswith("This device")
    assert "Chrome" in devices[1]  # headless Chromium, described or raw
    assert [c.text for c in site.find_elements("css selector", "dd.ip")] == [
        "127.0.0.1",
        "127.0.0.1",
    ]

    screenshots.take("sessions", engine="memory")

    other.get(f"{url}/account/sessions/")
    assert [current for _, current in rows(other)] == [True, False]
    # The same two sessions, seen from the other side.
    assert {sid for sid, _ in rows(other)} == {sid for sid, _ in listed}

    # End the other one from the first.
    click(site, f"end-{listed[1][0]}")
    # Confirmed in the section, once: not again in the site's own messages,
    # nor on the next page.
    assert by_css(site, "#prologue-sessions .confirmation") == [
        "The session was ended."
    ]
    assert flashes(site) == []
    assert rows(site) == [listed[0]]
    click(site, "sessions-link")
    assert by_css(site, "#prologue-sessions .confirmation") == []
    assert flashes(site) == []

    # The second browser is signed out at its next request.
    other.get(f"{url}/account/sessions/")
    assert other.current_url.startswith(f"{url}/?next=")
    assert text_of(other, "who") == "Not signed in"
