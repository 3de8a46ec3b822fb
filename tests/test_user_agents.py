"""User agents described for people, with ua-parser and without it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from unittest import mock

import pytest

from django_prologue_sessions import user_agents
from django_prologue_sessions.user_agents import describe, parser_available

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture
def without_ua_parser() -> Iterator[None]:
    """ua-parser made impossible to import, as where it is not installed."""
    user_agents._parse.cache_clear()
    user_agents._describe.cache_clear()
    with mock.patch.dict(sys.modules, {"ua_parser": None}):
        yield
    user_agents._parse.cache_clear()
    user_agents._describe.cache_clear()


def test_ua_parser_is_installed_for_the_tests() -> None:
    assert parser_available()


@pytest.mark.parametrize(
    ("user_agent", "described"),
    [
        (FIREFOX_LINUX, "Firefox on Linux"),
        (SAFARI_IPHONE, "Safari on iPhone"),
        (CHROME_WINDOWS, "Chrome on Windows"),
        (CHROME_ANDROID, "Chrome on Android"),
    ],
)
def test_described(user_agent: str, described: str) -> None:
    assert describe(user_agent) == described


@pytest.mark.parametrize(
    "user_agent", ["curl/8.5.0", "garbage \x00 ((( ;;; )))", "x" * 256]
)
def test_what_is_not_a_browser_on_a_system_is_shown_as_it_is(user_agent: str) -> None:
    described = describe(user_agent)
    assert described in (user_agent, "curl")


def test_nothing_is_nothing() -> None:
    assert describe("") == ""


def test_without_ua_parser_the_raw_user_agent(without_ua_parser: None) -> None:
    assert not parser_available()
    assert describe(FIREFOX_LINUX) == FIREFOX_LINUX
