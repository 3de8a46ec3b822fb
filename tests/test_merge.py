"""Merging a session two requests changed at once: the rules, the messages'
merge function, and concurrent flashes through real requests on the Redis and
memory engines (a request still rendering its messages while another flashes
one)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import MessageEncoder
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.test import Client, override_settings
from django.urls import include, path

from django_prologue_sessions.backends import memory
from django_prologue_sessions.backends.base import FastJSONSerializer
from django_prologue_sessions.merge import (
    MISSING,
    merge,
    merge_function,
    merge_messages,
    register,
    unregister,
)

encode = FastJSONSerializer().dumps


# The rules -------------------------------------------------------------------


def test_changes_to_different_keys_all_stay() -> None:
    before = {"a": 1, "b": 2, "gone": 0}
    mine = {"a": 10, "b": 2, "new": "mine"}  # set a, added new, deleted gone
    theirs = {"a": 1, "b": 20, "gone": 0, "other": "theirs"}
    assert merge(before, mine, theirs, encode) == {
        "a": 10,
        "b": 20,
        "new": "mine",
        "other": "theirs",
    }


def test_a_key_both_changed_without_a_merge_function_takes_this_requests_change() -> (
    None
):
    assert merge({"k": 1}, {"k": 2}, {"k": 3}, encode) == {"k": 2}
    assert merge({"k": 1}, {}, {"k": 3}, encode) == {}
    assert merge({}, {"k": 2}, {"k": 3}, encode) == {"k": 2}


def test_a_value_compares_as_stored() -> None:
    # A tuple set back equal to the list loaded is no change.
    assert merge({"k": [1, 2]}, {"k": (1, 2)}, {"k": [3]}, encode) == {"k": [3]}


def test_a_registered_function_merges_a_key_both_changed() -> None:
    calls: list[tuple[Any, Any, Any]] = []

    def add(before: Any, mine: Any, theirs: Any) -> Any:
        calls.append((before, mine, theirs))
        return theirs + mine - before

    register("count", add)
    try:
        assert merge_function("count") is add
        assert merge({"count": 1}, {"count": 2}, {"count": 5}, encode) == {"count": 6}
        # Changed by this request only: no merge needed.
        assert merge({"count": 1}, {"count": 2}, {"count": 1}, encode) == {"count": 2}
        assert calls == [(1, 2, 5)]
    finally:
        unregister("count")
    assert merge_function("count") is None
    assert merge({"count": 1}, {"count": 2}, {"count": 5}, encode) == {"count": 2}


def test_a_merge_function_deletes_with_missing() -> None:
    register("k", lambda before, mine, theirs: MISSING)
    try:
        assert merge({"k": 1}, {"k": 2}, {"k": 3, "x": 0}, encode) == {"x": 0}
    finally:
        unregister("k")


def stored(*texts: str) -> Any:
    """``_messages`` as Django's SessionStorage writes it."""
    if not texts:
        return MISSING
    return MessageEncoder().encode([Message(20, text) for text in texts])


def texts(value: Any) -> list[str]:
    return [] if value is MISSING else [m[3] for m in json.loads(value)]


@pytest.mark.parametrize(
    ("before", "mine", "theirs", "merged"),
    [
        # The case: this request showed "old", another flashed "new".
        (["old"], [], ["old", "new"], ["new"]),
        # Two requests flash at once: both stay, theirs first.
        ([], ["a"], ["b"], ["b", "a"]),
        # This request consumed one and added one; the other consumed the rest.
        (["x", "y"], ["y", "z"], [], ["z"]),
        # Both showed the same message: it is gone once.
        (["m"], [], [], []),
        # Duplicates count: one of two equal messages consumed.
        (["m", "m"], ["m"], ["m", "m", "n"], ["m", "n"]),
    ],
)
def test_messages_merge(
    before: list[str], mine: list[str], theirs: list[str], merged: list[str]
) -> None:
    result = merge_messages(stored(*before), stored(*mine), stored(*theirs))
    assert texts(result) == merged
    if not merged:
        assert result is MISSING  # as SessionStorage: no key when none is left


def test_messages_not_in_djangos_format_are_not_merged() -> None:
    assert merge_messages(MISSING, ["not", "json text"], stored("a")) == [
        "not",
        "json text",
    ]
    assert merge_messages(MISSING, "{}", stored("a")) == "{}"


# Concurrent flashes through real requests --------------------------------------

RENDERED = threading.Event()
GO_ON = threading.Event()


def render_then_wait(request: HttpRequest) -> HttpResponse:
    """Render the messages, then wait before the response (and the save)."""
    template = engines["django"].from_string(
        "{% load flash %}{% get_flashed as msgs %}"
        "{% for m in msgs %}{{ m }};{% endfor %}"
    )
    body = template.render(request=request)
    RENDERED.set()
    assert GO_ON.wait(10)
    return HttpResponse(body)


urlpatterns = [
    path("merge/render-then-wait/", render_then_wait),
    path("", include("tests.urls")),
]


@pytest.fixture(params=["memory", "redis"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.param
    more: dict[str, Any] = {}
    if name == "redis":
        request.getfixturevalue("redis_client")  # flushed
        more["SESSION_REDIS"] = {"url": request.getfixturevalue("redis_url")}
    else:
        memory.SessionStore.clear_all()
    RENDERED.clear()
    GO_ON.clear()
    with override_settings(
        SESSION_ENGINE=f"django_prologue_sessions.backends.{name}",
        MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage",
        ROOT_URLCONF=__name__,
        **more,
    ):
        yield name
    GO_ON.set()


def flash_one(client: Client, text: str) -> None:
    response = client.post(
        "/flash/add/", {"level": "info", "message": text, "next": "/session/get/"}
    )
    assert response.status_code == 302


def shown(client: Client) -> list[str]:
    return [text for _, text, _ in client.get("/flash/get/").json()]


def while_rendering(browser: Client, action: Callable[[], object]) -> bytes:
    """Run ``action`` while another request of ``browser`` has rendered its
    messages and not yet saved; that request's page."""
    rendering = Client()
    rendering.cookies = browser.cookies
    bodies: list[bytes] = []
    thread = threading.Thread(
        target=lambda: bodies.append(rendering.get("/merge/render-then-wait/").content)
    )
    thread.start()
    try:
        assert RENDERED.wait(10)
        action()
    finally:
        GO_ON.set()
        thread.join(10)
    return bodies[0]


def test_a_message_flashed_while_another_request_renders_is_kept(
    engine: str,
) -> None:
    browser = Client()
    flash_one(browser, "old")
    assert while_rendering(browser, lambda: flash_one(browser, "new")) == b"old;"
    assert shown(browser) == ["new"]
    assert shown(browser) == []


def test_two_concurrent_renders_may_both_show_a_message(engine: str) -> None:
    """As documented (docs/flash.md): both loaded it before either saved."""
    browser = Client()
    flash_one(browser, "once")
    shown_meanwhile: list[list[str]] = []
    page = while_rendering(browser, lambda: shown_meanwhile.append(shown(browser)))
    assert page == b"once;"
    assert shown_meanwhile == [["once"]]
    assert shown(browser) == []  # and never again
