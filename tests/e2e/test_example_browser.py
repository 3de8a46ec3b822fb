"""The example project in headless Chromium, once per session engine.

Each test is what a visitor does, checked on what the page shows; the
``example_server`` fixture runs it for the signed-cookie, memory and Redis
engines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import Screenshots
from tests.e2e.server import ExampleServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

LEVEL_TEXTS = {
    "debug": "A debug message: the counter was read from the session.",
    "info": "An info message: the session engine is configurable.",
    "success": "A success message: the form was saved.",
    "warning": "A warning message: the session expires at some point.",
    "error": "An error message: something needs your attention.",
}


def click(driver: WebDriver, element_id: str) -> None:
    """Click a button or link and wait until the page it leads to has loaded."""
    # Imported here: without selenium, the browser fixture skips (or fails)
    # every test with a clear reason, which an import error would hide.
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # A mark on the old page's window: a new document does not have it.
    driver.execute_script("window.beforeClick = true")
    driver.find_element("id", element_id).click()
    # While the page changes, a script can fail with a transient error.
    WebDriverWait(driver, 10, ignored_exceptions=[WebDriverException]).until(
        lambda d: d.execute_script(
            "return !window.beforeClick && document.readyState === 'complete'"
        )
    )


def by_css(driver: WebDriver, selector: str) -> list[str]:
    return [element.text for element in driver.find_elements("css selector", selector)]


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def flashes(
    driver: WebDriver, within: str = "main > .flashes"
) -> list[tuple[str, str]]:
    """The flash messages shown, as ``(level, text)``, in order."""
    return [
        (
            str(item.get_attribute("data-level")),
            str(item.find_element("css selector", ".text").text),
        )
        for item in driver.find_elements("css selector", f"{within} .flash")
    ]


def waiting(driver: WebDriver) -> list[str]:
    """The levels of the messages the levels page lists as still waiting."""
    return [
        str(item.get_attribute("data-level"))
        for item in driver.find_elements("css selector", "#waiting li")
    ]


def session_keys(driver: WebDriver) -> list[str]:
    """The keys the session page lists, but those of the login itself
    (``django.contrib.auth``'s and the activity record)."""
    return [
        key
        for row in driver.find_elements("css selector", "#contents tr[data-key]")
        if not (key := str(row.get_attribute("data-key"))).startswith(
            ("_auth_", "_prologue_")
        )
    ]


def logged_in(driver: WebDriver) -> bool:
    """Whether the session page lists the user id ``login()`` stores."""
    rows = driver.find_elements(
        "css selector", '#contents tr[data-key="_auth_user_id"]'
    )
    return bool(rows)


def sign_in(driver: WebDriver, server: ExampleServer, name: str) -> None:
    driver.get(f"{server.url}/")
    driver.find_element("id", "name").send_keys(name)
    click(driver, "sign-in")
    assert text_of(driver, "who") == f"Signed in as {name}"


def test_sign_in_flashes_once_and_sign_out_deletes_the_session(
    site: WebDriver, example_server: ExampleServer, screenshots: Screenshots
) -> None:
    url = example_server.url
    site.get(f"{url}/")
    assert text_of(site, "who") == "Not signed in"
    assert text_of(site, "visits") == "1"
    assert flashes(site) == []
    screenshots.take("home")

    click(site, "sign-in")
    assert flashes(site) == [("error", "Please enter a name to sign in.")]
    assert text_of(site, "who") == "Not signed in"
    site.refresh()
    assert flashes(site) == []

    site.find_element("id", "name").send_keys("Ada")
    click(site, "sign-in")
    assert site.current_url == f"{url}/"
    assert flashes(site) == [("success", "Welcome! You are signed in.")]
    assert text_of(site, "who") == "Signed in as Ada"
    screenshots.take("home-signed-in")
    visits = int(text_of(site, "visits"))
    site.refresh()
    assert flashes(site) == []
    assert text_of(site, "who") == "Signed in as Ada"
    assert int(text_of(site, "visits")) == visits + 1

    site.get(f"{url}/session/")
    assert text_of(site, "engine-path") == (
        f"django_prologue_sessions.backends.{example_server.engine}"
    )
    assert text_of(site, "expiry").startswith("in 1209600 seconds, at ")
    assert session_keys(site) == ["name", "visits"]
    assert logged_in(site)
    assert by_css(site, '#contents tr[data-key="name"] td') == ['"Ada"']
    screenshots.take("session")
    signed_in_cookie = site.get_cookie("sessionid")
    assert signed_in_cookie is not None

    site.get(f"{url}/")
    click(site, "sign-out")
    assert flashes(site) == [("info", "Goodbye! Your session was deleted.")]
    assert text_of(site, "who") == "Not signed in"
    assert text_of(site, "visits") == "1"
    site.get(f"{url}/session/")
    assert session_keys(site) == ["visits"]
    assert not logged_in(site)
    new_cookie = site.get_cookie("sessionid")
    assert new_cookie is not None
    assert new_cookie["value"] != signed_in_cookie["value"]

    # Sending the signed-in cookie again, as someone who copied it would.
    site.delete_cookie("sessionid")
    site.add_cookie(
        {"name": "sessionid", "value": signed_in_cookie["value"], "path": "/"}
    )
    site.get(f"{url}/session/")
    if example_server.engine == "signed_cookies":
        # A signed cookie cannot be revoked: it stays valid until it expires.
        assert session_keys(site) == ["name", "visits"]
    else:
        # The server deleted the session: the old key opens nothing.
        assert session_keys(site) == []
        assert text_of(site, "who") == "Not signed in"


def test_posts_form_redirects_after_each_submission(
    site: WebDriver, example_server: ExampleServer, screenshots: Screenshots
) -> None:
    url = example_server.url
    site.get(f"{url}/posts/")
    click(site, "publish")
    assert site.current_url == f"{url}/"
    assert flashes(site) == [("warning", "Sign in first to write a post.")]

    sign_in(site, example_server, "Grace")
    site.get(f"{url}/posts/")
    click(site, "publish")
    assert site.current_url == f"{url}/posts/"
    assert flashes(site) == [
        ("error", "A post needs a title."),
        ("error", "A post needs some text."),
    ]

    site.find_element("id", "title").send_keys("Hello")
    click(site, "publish")
    assert flashes(site) == [("error", "A post needs some text.")]
    # The draft came back through the session, across the redirect.
    assert site.find_element("id", "title").get_attribute("value") == "Hello"

    site.find_element("id", "body").send_keys("A first post, kept in a session.")
    click(site, "publish")
    assert site.current_url == f"{url}/posts/"
    assert flashes(site) == [("success", "Your post was published.")]
    assert by_css(site, ".post h3") == ["Hello"]
    assert site.find_element("id", "title").get_attribute("value") == ""
    screenshots.take("posts")

    # Reloading repeats the GET after the redirect, never the POST.
    site.refresh()
    assert flashes(site) == []
    assert by_css(site, ".post h3") == ["Hello"]


def test_levels_are_read_one_level_at_a_time(
    site: WebDriver, example_server: ExampleServer, screenshots: Screenshots
) -> None:
    url = example_server.url
    site.get(f"{url}/levels/")
    assert text_of(site, "waiting") == "Nothing is waiting."

    click(site, "flash")
    assert site.current_url == f"{url}/levels/"
    assert waiting(site) == ["debug", "info", "success", "warning", "error"]
    assert text_of(site, "show-error") == "error 1"

    click(site, "show-error")
    assert flashes(site, within="main .card") == [("error", LEVEL_TEXTS["error"])]
    assert waiting(site) == ["debug", "info", "success", "warning"]
    assert text_of(site, "show-error") == "error 0"
    screenshots.take("levels")

    site.refresh()
    assert text_of(site, "none-shown") == "No error messages were waiting."
    assert waiting(site) == ["debug", "info", "success", "warning"]

    click(site, "show-warning")
    assert flashes(site, within="main .card") == [("warning", LEVEL_TEXTS["warning"])]
    assert waiting(site) == ["debug", "info", "success"]

    # Any other page shows, and so consumes, the rest, oldest first.
    site.get(f"{url}/")
    assert flashes(site) == [
        (level, LEVEL_TEXTS[level]) for level in ("debug", "info", "success")
    ]
    site.get(f"{url}/levels/")
    assert text_of(site, "waiting") == "Nothing is waiting."
