"""The sessions pages as the app ships them (its own templates, no site
layout around them), in headless Chromium, on the memory engine: the
confirmation after ending a session, and the layout at a desktop's and at a
phone's width, in light and dark mode.

The suite's URLconf (``tests/urls.py``) serves them from a live server in
this process, so that the browser's session and the others of its user are
made here by the test client through the suite's login view, the real
``login()`` and activity recording.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from pytest_django.live_server_helper import LiveServer

from django_prologue_sessions import activity
from django_prologue_sessions.backends import memory
from tests.e2e.conftest import Screenshots
from tests.e2e.test_example_browser import by_css, click
from tests.test_activity import MIDDLEWARE

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

LIST = "/account/sessions/"
HOUR, DAY = 3600, 86400
PHONE = (390, 844)  # an iPhone 12 to 15, in CSS pixels
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
FIREFOX_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
)


@pytest.fixture(params=["memory"])
def pages(
    request: pytest.FixtureRequest, browser: WebDriver, transactional_db: None
) -> Iterator[str]:
    """A live server of the suite's URLconf on the memory engine, with
    recording on; the browser signed in as ada, who has two more sessions.
    Yields the server's URL."""
    memory.SessionStore.clear_all()
    with override_settings(
        SESSION_ENGINE=f"django_prologue_sessions.backends.{request.param}",
        MIDDLEWARE=MIDDLEWARE,
        PROLOGUE_SESSIONS_ACTIVITY=True,
        LOGIN_URL="/account/login/",
        STATIC_URL="/static/",  # the live server's static handler needs one
    ):
        # The server loads MIDDLEWARE when it starts: within the settings.
        server = LiveServer("127.0.0.1", start=False)
        # Its threads open connections of their own to the in-memory test
        # database (shared cache), rather than share this thread's: Chromium
        # keeps connections alive, and a thread that ends after the server
        # has stopped must be allowed to close its connection.
        server.thread.connections_override.clear()
        server.start()
        try:
            ada = "ada"
            get_user_model().objects.create_user(username=ada)
            user_agent = browser.execute_script("return navigator.userAgent")
            now = time.time()
            for remote_addr, agent, ago in [
                ("203.0.113.40", FIREFOX_WINDOWS, 3 * DAY + 5 * HOUR),
                ("198.51.100.7", SAFARI_IPHONE, 2 * HOUR),
                ("127.0.0.1", user_agent, 0),  # the browser's
            ]:
                client = Client(REMOTE_ADDR=remote_addr, HTTP_USER_AGENT=agent)
                # Signed in some time ago, as the page shows it.
                with mock.patch.object(activity, "_now", lambda ago=ago: now - ago):
                    signed_in = client.post("/account/login/", {"username": ada})
                assert signed_in.status_code == 200
            browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
            browser.get(f"{server.url}/flash/get/")  # a page of the site
            browser.add_cookie(
                {"name": "sessionid", "value": client.cookies["sessionid"].value}
            )
            yield server.url
        finally:
            browser.get("about:blank")  # no request left running on the server
            browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
            browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
            server.stop()
            memory.SessionStore.clear_all()


def box(driver: WebDriver, selector: str) -> list[dict[str, float]]:
    """The bounding boxes of the elements that ``selector`` finds."""
    boxes: list[dict[str, float]] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => {"
        " const r = e.getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
        " width: r.width, height: r.height}; })",
        selector,
    )
    return boxes


def style(driver: WebDriver, selector: str, prop: str) -> str:
    value: str = driver.execute_script(
        "return getComputedStyle(document.querySelector(arguments[0]))"
        ".getPropertyValue(arguments[1])",
        selector,
        prop,
    )
    return value


def dark_mode(driver: WebDriver, on: bool) -> None:
    features = [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})


def test_ending_a_session_is_confirmed_once_on_the_list(
    browser: WebDriver, pages: str
) -> None:
    browser.get(f"{pages}{LIST}")
    cards = browser.find_elements("css selector", "li.prologue-session")
    assert len(cards) == 3
    assert by_css(browser, ".confirmation") == []
    phone = cards[2] if "iPhone" in cards[2].text else cards[1]
    button = phone.find_element("css selector", "button.end-session")
    assert button.text == "Sign out of Safari on iPhone"

    click(browser, str(button.get_attribute("id")))
    # Back on the list (Post/Redirect/Get), which says what was done...
    assert browser.current_url == f"{pages}{LIST}"
    assert by_css(browser, ".confirmation") == ["The session was ended."]
    assert len(browser.find_elements("css selector", "li.prologue-session")) == 2
    assert "iPhone" not in browser.find_element("id", "prologue-sessions").text
    # ... once: a reload does not say it again, and no page finds it left.
    browser.refresh()
    assert by_css(browser, ".confirmation") == []
    browser.get(f"{pages}/flash/get/")
    assert "The session was ended." not in browser.page_source

    browser.get(f"{pages}{LIST}")
    click(browser, "end-other-sessions")
    assert by_css(browser, ".confirmation") == ["Signed out of 1 other session."]
    assert len(browser.find_elements("css selector", "li.prologue-session")) == 1


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_page_fits_a_phone(browser: WebDriver, pages: str, dark: bool) -> None:
    dark_mode(browser, dark)
    browser.set_window_size(*PHONE)
    try:
        browser.get(f"{pages}{LIST}")
        width = browser.execute_script("return window.innerWidth")
        assert width <= PHONE[0]
        # Nothing wider than the screen: no sideways scrolling.
        assert (
            browser.execute_script("return document.documentElement.scrollWidth")
            == width
        )
        cards = box(browser, "li.prologue-session")
        details = box(browser, "li.prologue-session dl")
        buttons = box(browser, "li.prologue-session button")
        assert len(cards) == len(details) == len(buttons) == 3
        for card, detail, button in zip(cards, details, buttons, strict=True):
            assert card["left"] >= 0
            assert card["right"] <= width
            # Stacked: the button under the details, as wide as the card's
            # content, and tall enough for a thumb (44 CSS pixels).
            assert button["top"] >= detail["bottom"]
            assert button["width"] >= card["width"] - 2 * 20
            assert button["height"] >= 44
        # This device comes first, marked so.
        marker = box(browser, "li.prologue-session.current .this-device")
        assert len(marker) == 1
        assert marker[0]["right"] <= cards[0]["right"]
        assert by_css(browser, ".this-device") == ["This device"]
        # The page follows the colour scheme, and its text and buttons read
        # well on it (WCAG AA: a contrast of 4.5 at least; 7 for the text).
        background = rgb(style(browser, "body", "background-color"))
        assert (luminance(background) < 0.1) if dark else (luminance(background) > 0.9)
        assert contrast(style(browser, "#prologue-sessions", "color"), background) >= 7
        for selector in ("button.end-session", ".this-device", "dt"):
            assert contrast(style(browser, selector, "color"), background) >= 4.5
        Screenshots(browser, "memory").take(
            f"sessions-default-phone{'-dark' if dark else ''}",
            engine="memory",
            width=PHONE[0],
        )
    finally:
        dark_mode(browser, False)
        browser.set_window_size(1000, 760)


def test_the_page_on_a_desktop(browser: WebDriver, pages: str) -> None:
    browser.get(f"{pages}{LIST}")
    details = box(browser, "li.prologue-session dl")
    buttons = box(browser, "li.prologue-session button")
    # Side by side: each button right of its session's details.
    for detail, button in zip(details, buttons, strict=True):
        assert button["left"] >= detail["right"]
    Screenshots(browser, "memory").take("sessions-default", engine="memory")


RGB = tuple[float, float, float]


def rgb(css_color: str, over: RGB = (1.0, 1.0, 1.0)) -> RGB:
    """A computed colour, ``rgb()``, ``rgba()`` or ``color(srgb ...)`` (what
    ``color-mix()`` computes to), as 0-1 channels, composited on ``over``."""
    inside = css_color[css_color.index("(") + 1 : css_color.rindex(")")]
    srgb = inside.startswith("srgb")
    parts = inside.removeprefix("srgb").replace(",", " ").replace("/", " ").split()
    channels = [float(part) if srgb else float(part) / 255 for part in parts[:3]]
    alpha = float(parts[3]) if len(parts) > 3 else 1.0
    r, g, b = (alpha * c + (1 - alpha) * o for c, o in zip(channels, over, strict=True))
    return r, g, b


def luminance(color: RGB) -> float:
    """WCAG's relative luminance, 0 (black) to 1 (white)."""
    r, g, b = (
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in color
    )
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(css_color: str, background: RGB) -> float:
    """WCAG's contrast ratio of a colour on a background."""
    pair = luminance(rgb(css_color, over=background)), luminance(background)
    lighter, darker = sorted(pair, reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
