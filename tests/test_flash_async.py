"""The async flash functions: no session I/O on the event loop, nor any needless.

Their behaviour through the middleware, next to their sync twins, is in
``tests/test_flash.py`` (the ``async`` stack: every test there, for every
message storage and session engine). Here, on one request at a time: the
session is loaded through the engine's async methods (``tests.loop_guard``
makes any sync session I/O on the loop an error), only when the message
storage keeps messages in the session, and errors are the sync twins'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.messages import constants
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage.base import Message
from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.test import RequestFactory

from django_prologue_sessions import (
    aflash,
    aget_flashed,
    apeek_flashed,
    apop_flashed,
    flash,
    get_flashed,
    peek_flashed,
    pop_flashed,
)
from django_prologue_sessions.jinja2 import environment as jinja2_environment
from django_prologue_sessions.middleware import SessionMiddleware
from tests.test_flash import STORAGES, next_request, texts

# pytest-django's ``settings`` fixture.
SettingsWrapper = Any

TWINS = [
    (get_flashed, aget_flashed),
    (pop_flashed, apop_flashed),
    (peek_flashed, apeek_flashed),
]


@pytest.fixture
def guarded(settings: SettingsWrapper, redis_url: str) -> None:
    """Our Redis engine, raising SynchronousOnlyOperation for sync I/O on a loop."""
    settings.SESSION_ENGINE = "tests.loop_guard"
    settings.SESSION_REDIS = {"url": redis_url}
    settings.MESSAGE_STORAGE = STORAGES["session"]


def on_the_loop(call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()`` on an event loop, as an async view does."""

    async def awaited() -> Any:
        return await call()

    return async_to_sync(awaited)()


def sync_on_the_loop(call: Callable[[], Any]) -> Any:
    """Call ``call()`` on an event loop's thread, as sync code in an async view."""

    async def called() -> Any:
        return call()

    return async_to_sync(called)()


def new_request() -> HttpRequest:
    request = RequestFactory().get("/")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    MessageMiddleware(lambda r: HttpResponse()).process_request(request)
    return request


def stored_request(*pairs: tuple[str, str]) -> HttpRequest:
    """The next request of a visitor with a session, and these messages stored."""
    request = new_request()
    request.session["visits"] = 1
    for level, text in pairs:
        flash(request, text, level)
    return next_request(request)


def found(result: Message | list[Message] | None) -> list[str]:
    if isinstance(result, Message):
        return [str(result)]
    return texts(result or [])


@pytest.mark.usefixtures("guarded")
@pytest.mark.parametrize(("sync", "twin"), TWINS, ids=[t.__name__ for _, t in TWINS])
def test_a_reader_loads_the_session_through_aload(
    sync: Callable[..., Any], twin: Callable[..., Awaitable[Any]]
) -> None:
    stored = [("info", "i"), ("error", "e1"), ("error", "e2")]
    expected = found(sync(stored_request(*stored), "error"))
    request = stored_request(*stored)
    assert found(on_the_loop(lambda: twin(request, "error"))) == expected
    # The session is loaded: reading it on the loop now needs no I/O.
    assert sync_on_the_loop(lambda: request.session.get("visits")) == 1
    # The sync twin, first to touch the session on the loop, would block it.
    unloaded = stored_request(*stored)
    with pytest.raises(SynchronousOnlyOperation):
        sync_on_the_loop(lambda: sync(unloaded, "error"))


@pytest.mark.usefixtures("guarded")
def test_what_the_async_functions_take_is_saved_for_the_next_request() -> None:
    request = stored_request(("info", "i1"), ("warning", "w"), ("error", "e"))
    assert texts(on_the_loop(lambda: aget_flashed(request, "error"))) == ["e"]
    popped = on_the_loop(lambda: apop_flashed(request, "info"))
    assert str(popped) == "i1"
    on_the_loop(lambda: aflash(request, "i2"))
    assert texts(on_the_loop(lambda: apeek_flashed(request))) == ["w", "i2"]
    # The response's messages and session, saved as the middleware saves them.
    assert texts(get_flashed(next_request(request))) == ["w", "i2"]


@pytest.mark.usefixtures("guarded")
def test_aflash_loads_the_session_the_response_will_write() -> None:
    request = stored_request(("info", "old"))
    on_the_loop(lambda: aflash(request, "new", "warning"))
    # MessageMiddleware stores the messages in the session: in memory now.
    sync_on_the_loop(lambda: request._messages.update(HttpResponse()))
    assert texts(get_flashed(next_request(request))) == ["old", "new"]


@pytest.mark.usefixtures("guarded")
@pytest.mark.parametrize(
    ("text", "level"), [("", "error"), ("below MESSAGE_LEVEL", "info")]
)
def test_a_dropped_message_leaves_the_session_alone(
    settings: SettingsWrapper, text: str, level: str
) -> None:
    settings.MESSAGE_LEVEL = constants.WARNING
    request = stored_request(("error", "e"))
    on_the_loop(lambda: aflash(request, text, level))
    assert request.session.accessed is False
    on_the_loop(lambda: aflash(request, "kept", "warning"))
    assert request.session.accessed is True


@pytest.mark.usefixtures("guarded")
def test_with_the_cookie_storage_the_session_is_left_alone(
    settings: SettingsWrapper,
) -> None:
    settings.MESSAGE_STORAGE = STORAGES["cookie"]
    request = stored_request(("error", "e"))
    assert request.session.session_key is not None
    on_the_loop(lambda: aflash(request, "w", "warning"))
    assert texts(on_the_loop(lambda: aget_flashed(request))) == ["e", "w"]
    assert request.session.accessed is False


TAGS_AND_LOOP = (
    '{% load flash %}{% get_flashed "error" as errors %}'
    "{{ errors|join:',' }}|{% for m in messages %}{{ m }},{% endfor %}"
)


@pytest.mark.usefixtures("guarded")
@pytest.mark.parametrize("storage", ["session", "fallback"])
def test_after_apeek_the_template_tags_and_loop_need_no_io(
    settings: SettingsWrapper, storage: str
) -> None:
    settings.MESSAGE_STORAGE = STORAGES[storage]
    template = engines["django"].from_string(TAGS_AND_LOOP)

    async def page(request: HttpRequest) -> str:
        await apeek_flashed(request)
        return template.render(request=request)

    request = stored_request(("info", "i"), ("error", "e"))
    assert on_the_loop(lambda: page(request)) == "e|i,"


@pytest.mark.usefixtures("guarded")
def test_without_apeek_a_template_tag_reads_the_session_on_the_loop() -> None:
    # What docs/async.md warns of: the tag is the first to read the session.
    template = engines["django"].from_string(TAGS_AND_LOOP)
    request = stored_request(("error", "e"))
    with pytest.raises(SynchronousOnlyOperation):
        sync_on_the_loop(lambda: template.render(request=request))


@pytest.mark.parametrize(
    ("sync", "twin"),
    [*TWINS, (flash, aflash)],
    ids=[t.__name__ for _, t in [*TWINS, (flash, aflash)]],
)
@pytest.mark.parametrize(
    "arguments",
    [("nope",), (2.5,), (["error", b"error"],)],
    ids=["unknown-name", "float", "bytes-in-a-list"],
)
def test_bad_levels_raise_what_the_sync_twin_raises(
    sync: Callable[..., Any],
    twin: Callable[..., Awaitable[Any]],
    arguments: tuple[Any, ...],
) -> None:
    if sync is flash:
        arguments = ("a message", *arguments)
    with pytest.raises((ValueError, TypeError)) as expected:
        sync(new_request(), *arguments)
    with pytest.raises(expected.type) as raised:
        on_the_loop(lambda: twin(new_request(), *arguments))
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize(
    ("sync", "twin"),
    [*TWINS, (flash, aflash)],
    ids=[t.__name__ for _, t in [*TWINS, (flash, aflash)]],
)
def test_without_the_message_framework_the_error_is_the_sync_twins(
    sync: Callable[..., Any], twin: Callable[..., Awaitable[Any]]
) -> None:
    arguments = ("a message",) if sync is flash else ()
    for request in (RequestFactory().get("/"), object()):
        with pytest.raises((ImproperlyConfigured, TypeError)) as expected:
            sync(request, *arguments)
        with pytest.raises(expected.type) as raised:
            on_the_loop(lambda: twin(request, *arguments))  # noqa: B023
        assert str(raised.value) == str(expected.value)


@pytest.mark.usefixtures("guarded")
def test_jinja2_in_an_async_environment_reads_through_the_async_functions() -> None:
    source = (
        '{% for m in get_flashed("error") %}[{{ m.tags }}:{{ m }}]{% endfor %}'
        '|{{ pop_flashed("info") }}|{{ peek_flashed()|length }}'
    )
    stored = [("info", "<i>i</i>"), ("error", "e1"), ("warning", "w"), ("error", "e2")]
    template = jinja2_environment(enable_async=True, autoescape=True).from_string(
        source
    )
    request = stored_request(*stored)
    assert on_the_loop(lambda: template.render_async(request=request)) == (
        "[error:e1][error:e2]|&lt;i&gt;i&lt;/i&gt;|1"
    )
    assert texts(get_flashed(next_request(request))) == ["w"]
    # The same template in a sync environment reads the session with load().
    sync_template = jinja2_environment(autoescape=True).from_string(source)
    unloaded = stored_request(*stored)
    with pytest.raises(SynchronousOnlyOperation):
        sync_on_the_loop(lambda: sync_template.render(request=unloaded))
