"""Flash messages through the real middleware, every message storage and engine."""

from __future__ import annotations

import importlib.util
import os
import random
import string
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.messages import constants
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from hypothesis import given
from hypothesis import settings as settings_for_hypothesis
from hypothesis import strategies as st

from django_prologue_sessions.flash import (
    flash,
    get_flashed,
    peek_flashed,
    pop_flashed,
    resolve_level,
)

# pytest-django's ``settings`` fixture (its class name changed across versions).
SettingsWrapper = Any

STORAGES = {
    "fallback": "django.contrib.messages.storage.fallback.FallbackStorage",
    "cookie": "django.contrib.messages.storage.cookie.CookieStorage",
    "session": "django.contrib.messages.storage.session.SessionStorage",
}


@dataclass(frozen=True)
class Engine:
    """A session engine, and the settings it needs, taken from fixtures."""

    module: str
    settings: Callable[[pytest.FixtureRequest], dict[str, Any]] = field(
        default=lambda fixtures: {}
    )

    @property
    def id(self) -> str:
        owner = "prologue" if self.module.startswith("django_prologue") else "django"
        return f"{owner}-{self.module.rpartition('.')[2]}"


# A new engine joins every test here by adding one entry. Engines whose module
# does not exist yet are left out of the run (the report says which ran).
ENGINES = [
    Engine("django.contrib.sessions.backends.signed_cookies"),
    Engine("django.contrib.sessions.backends.cache"),
    Engine("django_prologue_sessions.backends.signed_cookies"),
    Engine("django_prologue_sessions.backends.memory"),
    Engine(
        "django_prologue_sessions.backends.redis",
        lambda fixtures: {
            "SESSION_REDIS": {"url": fixtures.getfixturevalue("redis_url")}
        },
    ),
]
AVAILABLE_ENGINES = [e for e in ENGINES if importlib.util.find_spec(e.module)]


@pytest.fixture(params=list(STORAGES), ids=list(STORAGES))
def message_storage(request: pytest.FixtureRequest, settings: SettingsWrapper) -> str:
    settings.MESSAGE_STORAGE = STORAGES[request.param]
    return str(request.param)


@pytest.fixture(params=AVAILABLE_ENGINES, ids=[e.id for e in AVAILABLE_ENGINES])
def session_engine(request: pytest.FixtureRequest, settings: SettingsWrapper) -> str:
    engine: Engine = request.param
    settings.SESSION_ENGINE = engine.module
    for name, value in engine.settings(request).items():
        setattr(settings, name, value)
    return engine.module


class AsyncStack:
    """The test client's ``get`` and ``post``, through the async handler.

    Each request goes through Django's ``AsyncClient``, so the middleware run
    in async mode (ours: ``django_prologue_sessions.middleware``), and to the
    async twin of the view (``flash/async/...``), which calls the async flash
    functions.
    """

    def __init__(self) -> None:
        self.client = AsyncClient()

    @staticmethod
    def _async_twin(url: str) -> str:
        view = url.removeprefix("/flash/")
        assert view.startswith(("add/", "get/", "peek/", "pop/", "template/")), url
        return f"/flash/async/{view}"

    def get(self, url: str, data: Any = None) -> HttpResponse:
        return async_to_sync(self.client.get)(self._async_twin(url), data)

    def post(self, url: str, data: Any = None) -> HttpResponse:
        return async_to_sync(self.client.post)(self._async_twin(url), data)


@pytest.fixture(params=["sync", "async"])
def stack(
    request: pytest.FixtureRequest,
    message_storage: str,
    session_engine: str,
    client: Client,
    settings: SettingsWrapper,
) -> Client | AsyncStack:
    """A test client over one message storage and one session engine.

    ``sync``: Django's middleware and the sync views and functions; ``async``:
    our middleware, the async views and the async functions.
    """
    if request.param == "sync":
        return client
    settings.MIDDLEWARE = [
        "django_prologue_sessions.middleware.SessionMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
    return AsyncStack()


def post(client: Client, *pairs: tuple[str, str], **data: str) -> HttpResponse:
    """Flash ``(level, message)`` pairs in a POST; the response redirects."""
    response = client.post(
        "/flash/add/",
        {
            "level": [level for level, _ in pairs],
            "message": [message for _, message in pairs],
            **data,
        },
    )
    assert response.status_code == 302, response.content
    return response


def read(client: Client, url: str, *levels: str | int) -> Any:
    response = client.get(url, {"level": [str(level) for level in levels]})
    assert response.status_code == 200, response.content
    return response.json()


# Through the real middleware, for each storage and session engine.


def test_post_redirect_get(stack: Client) -> None:
    # Prologue issue 165: the flash must survive the redirect, and only it.
    response = post(stack, ("success", "Saved."), next="/flash/get/")
    assert response["Location"] == "/flash/get/"
    assert read(stack, response["Location"]) == [[25, "Saved.", "success"]]
    assert read(stack, "/flash/get/") == []


def test_level_filter_leaves_the_others_for_the_next_request(stack: Client) -> None:
    post(stack, ("info", "i1"), ("warning", "w"), ("error", "e"), ("info", "i2"))
    assert read(stack, "/flash/get/", "error") == [[40, "e", "error"]]
    assert read(stack, "/flash/get/") == [
        [20, "i1", "info"],
        [30, "w", "warning"],
        [20, "i2", "info"],
    ]
    assert read(stack, "/flash/get/") == []


def test_several_levels_in_one_call(stack: Client) -> None:
    post(stack, ("info", "i"), ("error", "e"), ("debug", "d"), ("warning", "w"))
    assert read(stack, "/flash/get/", "warning", 40) == [
        [40, "e", "error"],
        [30, "w", "warning"],
    ]
    assert read(stack, "/flash/get/") == [[20, "i", "info"]]


def test_pop_takes_the_oldest_of_a_level_and_only_it(stack: Client) -> None:
    post(stack, ("info", "i1"), ("error", "e1"), ("error", "e2"), ("info", "i2"))
    assert read(stack, "/flash/pop/", "error") == [40, "e1", "error"]
    assert read(stack, "/flash/pop/", "error") == [40, "e2", "error"]
    assert read(stack, "/flash/pop/", "error") is None
    assert read(stack, "/flash/pop/") == [20, "i1", "info"]
    assert read(stack, "/flash/get/") == [[20, "i2", "info"]]


def test_peek_consumes_nothing(stack: Client) -> None:
    post(stack, ("info", "i"), ("error", "e"))
    assert read(stack, "/flash/peek/", "error") == [[40, "e", "error"]]
    assert read(stack, "/flash/peek/") == [[20, "i", "info"], [40, "e", "error"]]
    assert read(stack, "/flash/get/") == [[20, "i", "info"], [40, "e", "error"]]


def test_no_match_leaves_everything_stored(stack: Client) -> None:
    post(stack, ("info", "i"))
    assert read(stack, "/flash/get/", "error") == []
    assert read(stack, "/flash/pop/", "warning") is None
    assert read(stack, "/flash/get/") == [[20, "i", "info"]]


def test_flashed_messages_show_in_the_messages_loop(stack: Client) -> None:
    response = post(stack, ("info", "i"), ("error", "e"), next="/flash/template/loop/")
    page = stack.get(response["Location"])
    assert page.content.decode() == '<li class="info">i</li><li class="error">e</li>\n'
    assert read(stack, "/flash/get/") == []


def test_django_messages_are_read_by_level(stack: Client) -> None:
    post(stack, ("error", "e"), ("info", "i"), api="messages")
    assert read(stack, "/flash/get/", "error") == [[40, "e", "error"]]
    assert read(stack, "/flash/get/") == [[20, "i", "info"]]


def test_filtered_read_then_messages_loop_in_one_request(stack: Client) -> None:
    post(stack, ("info", "i"), ("error", "e"), ("warning", "w"))
    page = stack.get("/flash/template/errors_then_loop/")
    assert page.content.decode() == "errors:<li>e</li> rest:<li>i</li><li>w</li>\n"
    assert read(stack, "/flash/get/") == []


def test_messages_loop_then_filtered_read_in_one_request(stack: Client) -> None:
    # As with a second loop in Django, messages shown earlier in the request
    # are still there for this request, and none is kept for the next one.
    post(stack, ("info", "i"), ("error", "e"))
    page = stack.get("/flash/template/loop_then_errors/")
    assert page.content.decode() == "all:<li>i</li><li>e</li> errors:<li>e</li>\n"
    assert read(stack, "/flash/get/") == []


def test_safe_html_stays_safe_and_the_rest_is_escaped(stack: Client) -> None:
    post(stack, ("info", "<b>safe</b>"), safe="1")
    post(stack, ("error", "<i>unsafe</i>"))
    page = stack.get("/flash/template/loop/")
    assert page.content.decode() == (
        '<li class="info"><b>safe</b></li>'
        '<li class="error">&lt;i&gt;unsafe&lt;/i&gt;</li>\n'
    )


def test_flashes_accumulate_over_requests_until_read(stack: Client) -> None:
    post(stack, ("info", "first"))
    post(stack, ("error", "second"))
    assert read(stack, "/flash/pop/", "info") == [20, "first", "info"]
    post(stack, ("info", "third"))
    assert read(stack, "/flash/get/") == [
        [40, "second", "error"],
        [20, "third", "info"],
    ]


@pytest.mark.parametrize(
    "session_engine",
    AVAILABLE_ENGINES,
    indirect=True,
    ids=[e.id for e in AVAILABLE_ENGINES],
)
def test_fallback_storage_overflow_into_the_session(
    session_engine: str, settings: SettingsWrapper, client: Client
) -> None:
    # The messages cookie holds 2048 bytes: the rest go into the session, and
    # a filtered read takes one from there without losing the others.
    settings.MESSAGE_STORAGE = STORAGES["fallback"]
    # Random text, which the cookie's compression cannot shrink.
    noise = random.Random(165)
    big = {
        level: "".join(noise.choices(string.ascii_letters, k=900))
        for level in ("info", "warning", "error")
    }
    post(
        client,
        ("info", big["info"]),
        ("warning", big["warning"]),
        ("error", big["error"]),
    )
    in_cookie = CookieStorage(RequestFactory().get("/"))
    in_cookie.request.COOKIES["messages"] = client.cookies["messages"].value
    stored, all_in_cookie = in_cookie._get()
    assert (len(stored), all_in_cookie) == (2, False)
    assert read(client, "/flash/get/", "error") == [[40, big["error"], "error"]]
    assert read(client, "/flash/get/") == [
        [20, big["info"], "info"],
        [30, big["warning"], "warning"],
    ]
    assert read(client, "/flash/get/") == []


def test_messages_below_message_level_are_dropped(
    stack: Client, settings: SettingsWrapper
) -> None:
    settings.MESSAGE_LEVEL = constants.WARNING
    post(stack, ("debug", "d"), ("info", "i"), ("warning", "w"), ("error", "e"))
    assert read(stack, "/flash/get/") == [[30, "w", "warning"], [40, "e", "error"]]


def test_without_message_middleware_the_error_says_what_to_add(
    client: Client, settings: SettingsWrapper
) -> None:
    settings.MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
    with pytest.raises(ImproperlyConfigured, match="MessageMiddleware"):
        client.post("/flash/add/", {"level": "info", "message": "m"})
    with pytest.raises(ImproperlyConfigured, match="MessageMiddleware"):
        client.get("/flash/get/")


# The functions on one request, through the middleware's own hooks.


@pytest.fixture
def request_() -> HttpRequest:
    request = RequestFactory().get("/")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    MessageMiddleware(lambda r: HttpResponse()).process_request(request)
    return request


def next_request(request: HttpRequest) -> HttpRequest:
    """Save the request's messages and session, and start the next request."""
    response = HttpResponse()
    MessageMiddleware(lambda r: response).process_response(request, response)
    SessionMiddleware(lambda r: response).process_response(request, response)
    following = RequestFactory().get("/")
    # Like a browser: keep the cookies, apply what the response set or deleted.
    following.COOKIES.update(request.COOKIES)
    for name, cookie in response.cookies.items():
        if cookie["max-age"] == 0:
            following.COOKIES.pop(name, None)
        else:
            following.COOKIES[name] = cookie.value
    SessionMiddleware(lambda r: HttpResponse()).process_request(following)
    MessageMiddleware(lambda r: HttpResponse()).process_request(following)
    return following


def texts(found: list[Message]) -> list[str]:
    return [str(message) for message in found]


def test_flash_and_django_messages_share_one_store(request_: HttpRequest) -> None:
    flash(request_, "flashed", "error")
    messages.error(request_, "added")
    messages.info(request_, "info")
    assert texts(get_flashed(request_, "error")) == ["flashed", "added"]
    assert [str(m) for m in messages.get_messages(request_)] == ["info"]


def test_reading_after_the_messages_loop_keeps_only_new_messages(
    request_: HttpRequest,
) -> None:
    flash(request_, "old info")
    flash(request_, "old error", "error")
    request_ = next_request(request_)
    assert texts(list(messages.get_messages(request_))) == ["old info", "old error"]
    flash(request_, "new error", "error")
    flash(request_, "new info")
    assert texts(get_flashed(request_, "error")) == ["old error", "new error"]
    assert texts(get_flashed(next_request(request_))) == ["new info"]


def test_a_filtered_read_is_saved_for_the_next_request(request_: HttpRequest) -> None:
    for level in ("info", "warning", "error", "info"):
        flash(request_, f"{level} {len(messages.get_messages(request_))}", level)
    request_ = next_request(request_)
    assert texts(get_flashed(request_, "error")) == ["error 2"]
    request_ = next_request(request_)
    assert texts(peek_flashed(request_)) == ["info 0", "warning 1", "info 3"]
    assert texts(get_flashed(next_request(request_), "info")) == ["info 0", "info 3"]


LEVELS = [constants.DEBUG, constants.INFO, constants.SUCCESS, constants.WARNING, 40]


@settings_for_hypothesis(max_examples=60, deadline=None)
@given(
    flashed=st.lists(st.sampled_from(LEVELS[1:]), max_size=12),
    wanted=st.sets(st.sampled_from(LEVELS)),
    limit=st.sampled_from([None, 1]),
)
def test_a_read_takes_exactly_the_matches_and_keeps_the_rest_in_order(
    flashed: list[int], wanted: set[int], limit: int | None
) -> None:
    request = RequestFactory().get("/")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    MessageMiddleware(lambda r: HttpResponse()).process_request(request)
    for number, level in enumerate(flashed):
        flash(request, f"m{number}", level)
    expected = [f"m{n}" for n, level in enumerate(flashed) if level in wanted][:limit]
    rest = [f"m{n}" for n in range(len(flashed)) if f"m{n}" not in expected]

    request = next_request(request)
    if limit is None:
        assert texts(get_flashed(request, wanted)) == expected
    else:
        popped = pop_flashed(request, wanted)
        assert texts([popped] if popped else []) == expected
    assert texts(get_flashed(next_request(request))) == rest


def test_returned_messages_are_djangos(request_: HttpRequest) -> None:
    flash(request_, "m", "warning", extra_tags="urgent")
    (message,) = get_flashed(request_)
    assert isinstance(message, Message)
    assert (str(message), message.level, message.level_tag, message.tags) == (
        "m",
        constants.WARNING,
        "warning",
        "urgent warning",
    )


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("debug", constants.DEBUG),
        ("INFO", constants.INFO),
        (" Success ", constants.SUCCESS),
        ("warning", constants.WARNING),
        ("Error", constants.ERROR),
        (constants.ERROR, constants.ERROR),
        (35, 35),
    ],
)
def test_level_names_and_integers(name: str | int, level: int) -> None:
    assert resolve_level(name) == level


def test_level_names_from_message_tags(
    settings: SettingsWrapper, request_: HttpRequest
) -> None:
    settings.MESSAGE_TAGS = {constants.ERROR: "danger", 50: "critical"}
    assert resolve_level("danger") == constants.ERROR
    assert resolve_level("error") == constants.ERROR
    flash(request_, "on fire", "Critical")
    flash(request_, "broken", "danger")
    found = get_flashed(request_, ["critical", "danger"])
    assert [(m.level, m.level_tag) for m in found] == [(50, "critical"), (40, "danger")]


def test_unknown_level_name_is_a_clear_value_error(request_: HttpRequest) -> None:
    message = (
        r"Unknown message level name 'fatal'\. Use a level integer or one of: "
        r"debug, error, info, success, warning"
    )
    with pytest.raises(ValueError, match=message):
        flash(request_, "m", "fatal")
    with pytest.raises(ValueError, match="'fatal'"):
        get_flashed(request_, ["error", "fatal"])
    with pytest.raises(ValueError, match="''"):
        peek_flashed(request_, "")
    assert len(messages.get_messages(request_)) == 0


def test_a_tag_of_several_levels_is_ambiguous(settings: SettingsWrapper) -> None:
    settings.MESSAGE_TAGS = {50: "alert", 60: "alert"}
    with pytest.raises(ValueError, match=r"several levels.*\[50, 60\]"):
        resolve_level("alert")


@pytest.mark.parametrize("level", [None, 2.5, True, b"error"])
def test_a_level_of_another_type_is_a_type_error(
    level: Any, request_: HttpRequest
) -> None:
    with pytest.raises(TypeError, match="integer or a level name"):
        flash(request_, "m", level)
    if level is not None:
        with pytest.raises(TypeError, match="integer or a level name"):
            get_flashed(request_, level)


def test_per_request_level_of_django_is_honoured(request_: HttpRequest) -> None:
    messages.set_level(request_, constants.ERROR)
    flash(request_, "dropped", "warning")
    flash(request_, "kept", "error")
    assert texts(get_flashed(request_)) == ["kept"]


def test_an_empty_list_of_levels_matches_nothing(request_: HttpRequest) -> None:
    flash(request_, "m")
    assert get_flashed(request_, []) == []
    assert pop_flashed(request_, ()) is None
    assert texts(get_flashed(request_)) == ["m"]


def test_without_the_message_framework_the_error_says_what_to_add() -> None:
    request = RequestFactory().get("/")
    for call in (
        lambda: flash(request, "m"),
        lambda: get_flashed(request),
        lambda: peek_flashed(request),
        lambda: pop_flashed(request, "error"),
    ):
        with pytest.raises(ImproperlyConfigured) as error:
            call()
        assert str(error.value) == (
            "Flash messages need Django's message framework: add "
            "'django.contrib.messages' to INSTALLED_APPS, and "
            "'django.contrib.sessions.middleware.SessionMiddleware' followed by "
            "'django.contrib.messages.middleware.MessageMiddleware' to MIDDLEWARE."
        )


def test_something_else_than_a_request_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="need a Django HttpRequest, not 'dict'"):
        get_flashed({}, "error")  # type: ignore[arg-type]


def test_api_is_importable_from_the_package_in_a_fresh_interpreter() -> None:
    # A fresh interpreter, without settings: in this one the modules are
    # already imported, which would hide import-order problems. The package
    # root's ``flash`` is the function (it shadows the submodule's name);
    # ``from django_prologue_sessions.flash import ...`` names the same objects.
    code = (
        "import django_prologue_sessions as root\n"
        "from django_prologue_sessions import flash, get_flashed, peek_flashed\n"
        "from django_prologue_sessions import pop_flashed\n"
        "from django_prologue_sessions import aflash, aget_flashed\n"
        "from django_prologue_sessions import apeek_flashed, apop_flashed\n"
        "from django_prologue_sessions import aflash_user, flash_user\n"
        "from django_prologue_sessions.flash import flash_user as api_flash_user\n"
        "assert flash_user is api_flash_user\n"
        "from django_prologue_sessions.flash import aflash as api_aflash\n"
        "assert aflash is api_aflash\n"
        "from django_prologue_sessions.flash import flash as api_flash\n"
        "from django_prologue_sessions.flash import get_flashed as api_get\n"
        "assert callable(flash) and flash is api_flash and root.flash is flash\n"
        "assert get_flashed is api_get\n"
        "import django; django.setup()\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
