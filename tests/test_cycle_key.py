"""cycle_key() racing the end of a logged-in session, through real requests
in two threads, on the memory and Redis engines.

Django's update_session_auth_hash() re-keys the session after a password
change. If the session was ended meanwhile (a logout in another tab, "log
out everywhere"), re-keying must not bring it back: the request gets what a
save of an ended session gets, ``UpdateError``, which Django's middleware
turns into a 400.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.test import Client, override_settings

from django_prologue_sessions.backends import memory
from django_prologue_sessions.user_sessions import (
    list_sessions,
    revoke_all,
    session_id,
)
from tests import views

ENGINES = ["memory", "redis"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.param
    more = {}
    if name == "redis":
        request.getfixturevalue("redis_client")  # flushed
        more["SESSION_REDIS"] = {"url": request.getfixturevalue("redis_url")}
    else:
        memory.SessionStore.clear_all()
    with override_settings(
        SESSION_ENGINE=f"django_prologue_sessions.backends.{name}", **more
    ):
        views.CYCLE_LOADED.clear()
        views.CYCLE_GO_ON.clear()
        yield name
        views.CYCLE_GO_ON.set()


def store(session_key: str | None = None) -> SessionBase:
    engine: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore(
        session_key
    )
    return engine


def end_while_a_request_rekeys(end: str) -> tuple[int, Client]:
    """Log in; a request loads the session, then the session is ended by
    ``end`` in another request; then the first request re-keys it."""
    first = Client()
    response = first.get("/session/set/", {"_auth_user_id": "7", "k": "v"})
    assert response.status_code == 200
    second = Client()
    second.cookies = first.cookies
    status: list[int] = []
    thread = threading.Thread(
        target=lambda: status.append(first.get("/session/cycle-later/").status_code)
    )
    thread.start()
    assert views.CYCLE_LOADED.wait(10)
    if end == "logout":
        assert second.get("/session/flush/").status_code == 200
    else:
        assert revoke_all("7") == 1
    views.CYCLE_GO_ON.set()
    thread.join(10)
    return status[0], first


@pytest.mark.parametrize("end", ["logout", "revoke_all"])
def test_a_session_ended_meanwhile_is_not_brought_back(engine: str, end: str) -> None:
    status, first = end_while_a_request_rekeys(end)
    assert status == 400
    assert list_sessions("7") == []
    assert first.get("/session/get/").json() == {}
    assert not store().exists(first.cookies["sessionid"].value)


def test_a_session_still_there_is_rekeyed(engine: str) -> None:
    first = Client()
    first.get("/session/set/", {"_auth_user_id": "7", "k": "v"})
    old = first.cookies["sessionid"].value
    views.CYCLE_GO_ON.set()
    assert first.get("/session/cycle-later/").status_code == 200
    new = first.cookies["sessionid"].value
    assert new != old
    assert first.get("/session/get/").json() == {
        "_auth_user_id": "7",
        "k": "v",
        "_auth_user_hash": "after a password change",
    }
    assert not store().exists(old)
    assert [s.id for s in list_sessions("7")] == [session_id(new)]


def test_acycle_key_of_an_ended_session_fails_its_save(engine: str) -> None:
    async def race() -> None:
        session = store()
        await session.aset("_auth_user_id", "7")
        await session.asave()
        request = store(session.session_key)
        assert await request.aget("_auth_user_id") == "7"
        await store(session.session_key).adelete()  # a logout elsewhere
        await request.acycle_key()
        with pytest.raises(UpdateError):
            await request.asave()
        assert not await store().aexists(request.session_key)

    asyncio.run(race())
    assert list_sessions("7") == []


def test_an_anonymous_session_is_rekeyed_as_django_does(engine: str) -> None:
    """login() re-keys the anonymous session before it names the user: that
    one is re-keyed as Django's engines do, whatever happened meanwhile."""
    session = store()
    session["cart"] = "book"
    session.save()
    request = store(session.session_key)
    assert request["cart"] == "book"
    store(session.session_key).delete()
    request.cycle_key()
    request["_auth_user_id"] = "7"
    request.save()
    assert store(request.session_key)["cart"] == "book"
