"""Redis going away in the middle of a run never logs anyone out nor loses data.

Each test has a server of its own, stops (or freezes) it between requests or
inside one, and starts it again; the server saves its data on shutdown, as a
production Redis does, so what was stored before the outage is there after.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path

from django_prologue_sessions.backends.redis import SessionStore
from django_prologue_sessions.backends.redis.connection import sync_redis
from django_prologue_sessions.exceptions import (
    SessionStoreUnavailable,
    SessionWriteOutcomeUnknown,
)
from django_prologue_sessions.user_sessions import list_sessions
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"
COOKIE = settings.SESSION_COOKIE_NAME

# The server that the views below stop or start in the middle of a request.
current_server: RedisServer | None = None


def start_redis_then_write(request: HttpRequest) -> HttpResponse:
    """Read the session while Redis is down, then write once it is back."""
    assert request.session.get("key") is None
    assert current_server is not None
    current_server.start()
    request.session["key"] = "overwritten"
    return HttpResponse("ok")


def stop_redis_then_write(request: HttpRequest) -> HttpResponse:
    """Read the session, then write it after Redis went down."""
    assert request.session.get("key") == "value"
    assert current_server is not None
    current_server.stop()
    request.session["key"] = "changed"
    return HttpResponse("ok")


# The timers that resume a server paused inside a request.
RESUMES: list[threading.Timer] = []


def pause_for_a_while() -> None:
    """Pause the server now, and resume it 1.5 s later."""
    assert current_server is not None
    assert current_server.process is not None
    pid = current_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(1.5, os.kill, (pid, signal.SIGCONT))
    RESUMES.append(resume)
    resume.start()


def rekey_while_paused(request: HttpRequest) -> HttpResponse:
    """Load a logged-in session, pause Redis for 1.5 s, then re-key the
    session as update_session_auth_hash() does (login() of a user already
    logged in, or Django's re-keying after a SECRET_KEY rotation, likewise)."""
    assert request.session.get("_auth_user_id") is not None
    pause_for_a_while()
    request.session.cycle_key()
    request.session["_auth_user_hash"] = "after a password change"
    return HttpResponse("re-keyed")


def log_in_then_pause(request: HttpRequest) -> HttpResponse:
    """What login() does to an anonymous session (re-key, then name the
    user), then Redis pauses before the middleware saves."""
    assert request.session.get("cart") == "book"
    request.session.cycle_key()
    request.session["_auth_user_id"] = "7"
    pause_for_a_while()
    return HttpResponse("signed in?")


def pause_then_log_in(request: HttpRequest) -> HttpResponse:
    """Load an anonymous session, pause Redis, then log in (re-key, then
    name the user, as login() does)."""
    assert request.session.get("cart") == "book"
    pause_for_a_while()
    request.session.cycle_key()
    request.session["_auth_user_id"] = "7"
    return HttpResponse("signed in?")


urlpatterns = [
    path("outage/pause-then-log-in/", pause_then_log_in),
    path("outage/log-in-then-pause/", log_in_then_pause),
    path("outage/rekey-while-paused/", rekey_while_paused),
    path("outage/start-then-write/", start_redis_then_write),
    path("outage/stop-then-write/", stop_redis_then_write),
    path("", include("tests.urls")),
]


@pytest.fixture
def server(private_redis_server: RedisServer) -> Iterator[RedisServer]:
    global current_server
    client = private_redis_server.client()
    client.config_set("save", "3600 1")  # save on shutdown, load on start
    client.close()
    current_server = private_redis_server
    try:
        yield private_redis_server
    finally:
        current_server = None
        if private_redis_server.process is not None:  # it may be frozen
            os.kill(private_redis_server.process.pid, signal.SIGCONT)


@contextmanager
def engine(server: RedisServer, **options: Any) -> Iterator[None]:
    with override_settings(
        SESSION_ENGINE=ENGINE,
        ROOT_URLCONF=__name__,
        # Generous, so that a busy test machine never looks like an outage.
        SESSION_REDIS={"url": server.url, "socket_timeout": 5, **options},
    ):
        yield


def client_with_session(**data: str) -> tuple[Client, str]:
    client = Client()
    assert client.get("/session/set/", data).status_code == 200
    return client, client.cookies[COOKIE].value


def client_with_cookie(cookie: str) -> Client:
    client = Client(raise_request_exception=False)
    client.cookies = SimpleCookie({COOKIE: cookie})
    return client


def test_the_server_keeps_its_data_across_a_restart(server: RedisServer) -> None:
    with engine(server):
        client, _ = client_with_session(key="value")
        server.stop()
        server.start()
        assert client.get("/session/get/").json() == {"key": "value"}


@pytest.mark.parametrize(
    "url", ["/session/get/", "/session/set/?key=overwritten", "/session/flush/"]
)
def test_by_default_a_request_fails_clearly_and_changes_nothing(
    server: RedisServer, url: str
) -> None:
    with engine(server):
        client, cookie = client_with_session(key="value")
        server.stop()
        with pytest.raises(SessionStoreUnavailable, match="Redis session store"):
            client.get(url)
        response = client_with_cookie(cookie).get(url)
        assert response.status_code == 500
        assert COOKIE not in response.cookies  # neither deleted nor replaced
        server.start()
        assert client.get("/session/get/").json() == {"key": "value"}
        client.get("/session/set/", {"after": "restart"})
        assert client.get("/session/get/").json() == {
            "key": "value",
            "after": "restart",
        }
        assert client.cookies[COOKIE].value == cookie


def test_the_message_names_the_setting_and_the_cause(server: RedisServer) -> None:
    with engine(server):
        client, _ = client_with_session(key="value")
        server.stop()
        with pytest.raises(SessionStoreUnavailable) as raised:
            client.get("/session/get/")
    message = str(raised.value)
    assert "ConnectionError" in message
    assert "SESSION_REDIS" in message
    assert "on_unavailable" in message


def test_empty_mode_serves_an_empty_session_and_never_overwrites(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with engine(server, on_unavailable="empty"):
        client, cookie = client_with_session(key="value")
        server.stop()
        with caplog.at_level(logging.WARNING, "django_prologue_sessions.redis"):
            response = client.get("/session/get/")
            assert response.json() == {}
            assert COOKIE not in response.cookies
            response = client.get("/session/set/", {"key": "overwritten"})
            assert response.status_code == 200
            assert response.cookies[COOKIE].value == cookie  # kept, not deleted
            # A new visitor gets a page too; nothing is stored for them.
            assert Client().get("/session/set/", {"new": "visitor"}).status_code == 200
        assert "serving an empty session" in caplog.text
        assert "Session not saved" in caplog.text
        assert "the session was not saved" in caplog.text
        server.start()
        assert client.get("/session/get/").json() == {"key": "value"}


def test_empty_mode_still_refuses_to_fake_a_logout(server: RedisServer) -> None:
    with engine(server, on_unavailable="empty"):
        client, cookie = client_with_session(key="value")
        server.stop()
        with pytest.raises(SessionStoreUnavailable):
            client.get("/session/flush/")
        server.start()
        response = client.get("/session/flush/")
        assert response.cookies[COOKIE].value == ""
        replay = client_with_cookie(cookie)
        assert replay.get("/session/get/").json() == {}


def test_empty_mode_never_saves_a_session_read_during_the_outage(
    server: RedisServer,
) -> None:
    """Redis comes back between reading and saving: the empty stand-in must
    not be written over the real session."""
    with engine(server, on_unavailable="empty"):
        client, cookie = client_with_session(key="value")
        server.stop()
        response = client.get("/outage/start-then-write/")
        assert response.status_code == 200
        assert response.cookies[COOKIE].value == cookie
        assert client.get("/session/get/").json() == {"key": "value"}


@pytest.mark.parametrize(("on_unavailable", "status"), [("raise", 500), ("empty", 200)])
def test_redis_going_down_before_the_save(
    server: RedisServer, on_unavailable: str, status: int
) -> None:
    with engine(server, on_unavailable=on_unavailable):
        client, cookie = client_with_session(key="value")
        response = client_with_cookie(cookie).get("/outage/stop-then-write/")
        assert response.status_code == status
        if status == 500:
            assert COOKIE not in response.cookies
        else:
            assert response.cookies[COOKIE].value == cookie
        server.start()
        assert client.get("/session/get/").json() == {"key": "value"}


@pytest.mark.parametrize(
    ("on_unavailable", "expected"), [("raise", None), ("empty", {})]
)
def test_a_server_slower_than_socket_timeout(
    server: RedisServer, on_unavailable: str, expected: dict[str, str] | None
) -> None:
    assert server.process is not None
    with engine(server, on_unavailable=on_unavailable):
        client, cookie = client_with_session(key="value")
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            with engine(server, on_unavailable=on_unavailable, socket_timeout=0.2):
                response = client_with_cookie(cookie).get("/session/get/")
                if expected is None:
                    assert response.status_code == 500
                else:
                    assert response.json() == expected
                assert COOKIE not in response.cookies
                response = client_with_cookie(cookie).get("/session/set/?key=lost")
                assert response.status_code == (500 if expected is None else 200)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert client.get("/session/get/").json() == {"key": "value"}


@pytest.mark.parametrize("on_unavailable", ["raise", "empty"])
def test_async_methods_during_an_outage(
    server: RedisServer, on_unavailable: str
) -> None:
    async def scenario() -> None:
        session = SessionStore()
        await session.aset("key", "value")
        await session.asave()
        key = session.session_key
        server.stop()
        during = SessionStore(key)
        if on_unavailable == "raise":
            with pytest.raises(SessionStoreUnavailable):
                await during.aload()
        else:
            assert await during.aload() == {}
            assert during.session_key == key
            await during.aset("key", "overwritten")
            await during.asave()  # writes nothing
        with pytest.raises(SessionStoreUnavailable):
            await during.aexists(key)
        with pytest.raises(SessionStoreUnavailable):
            await during.adelete(key)
        server.start()
        assert await SessionStore(key).aload() == {"key": "value"}

    with engine(server, on_unavailable=on_unavailable):
        asyncio.run(scenario())


# One timeout per request ------------------------------------------------------

ACTIVITY_MIDDLEWARE = [
    "django_prologue_sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_prologue_sessions.activity.ActivityMiddleware",
]


def attempts(server: RedisServer) -> tuple[int, int]:
    """The GETs the server has run, and the connections it has received.

    A command that timed out is run when Redis resumes, and its connection
    is dropped: a later command opens another, whose handshake times out
    before the command is sent. So each try after the first is a connection.
    """
    client = server.client()
    try:
        info = client.execute_command("INFO", "stats", "commandstats")
    finally:
        client.close()
    gets = int(info.get("cmdstat_get", {"calls": 0})["calls"])
    return gets, int(info["total_connections_received"]) - 1  # less ours


def tried_since(before: tuple[int, int], server: RedisServer) -> tuple[int, int]:
    """The GETs run and connections received since ``before``."""
    after = attempts(server)
    return after[0] - before[0], after[1] - before[1] - 1  # less the probe's


@contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    """Redis frozen (SIGSTOP) in the block: what was sent meanwhile waits."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


@pytest.mark.parametrize("on_unavailable", ["raise", "empty"])
def test_a_failed_load_is_not_retried_by_later_middleware(
    server: RedisServer, on_unavailable: str
) -> None:
    """The view's load times out; ActivityMiddleware, after the view, reads
    the session again: that read fails at once, with no second GET."""
    with (
        engine(server, on_unavailable=on_unavailable, socket_timeout=0.3),
        override_settings(
            MIDDLEWARE=ACTIVITY_MIDDLEWARE, PROLOGUE_SESSIONS_ACTIVITY=True
        ),
    ):
        client, cookie = client_with_session(_auth_user_id="1", key="value")
        client.get("/session/get/")  # the connection is open: the GET is sent
        before = attempts(server)
        with paused(server):
            response = client_with_cookie(cookie).get("/session/get/")
        assert response.status_code == (500 if on_unavailable == "raise" else 200)
        assert COOKIE not in response.cookies
        assert tried_since(before, server) == (1, 0)
        assert client.get("/session/get/").json()["key"] == "value"


def test_an_async_view_fails_after_one_timeout(server: RedisServer) -> None:
    """Through Django's ASGI handler: the view's aget() times out, then its
    aset() and ActivityMiddleware's aget() fail at once."""

    async def scenario() -> int:
        client = AsyncClient(raise_request_exception=False)
        assert (await client.get("/count/")).content == b"1"  # connected
        before = attempts(server)
        with paused(server):
            response = await client.get("/count/")
        assert tried_since(before, server) == (1, 0)
        return response.status_code

    with (
        engine(server, socket_timeout=0.3),
        override_settings(
            MIDDLEWARE=ACTIVITY_MIDDLEWARE,
            PROLOGUE_SESSIONS_ACTIVITY=True,
            ROOT_URLCONF="tests.asgi_urls",
        ),
    ):
        assert asyncio.run(scenario()) == 500


def test_after_a_failed_load_every_operation_fails_at_once(server: RedisServer) -> None:
    with engine(server, socket_timeout=0.3):
        _, cookie = client_with_session(key="value")
        SessionStore(cookie).load()  # the connection is open: the GET is sent
        before = attempts(server)
        session = SessionStore(cookie)
        with paused(server):
            for attempt in (
                lambda: session.get("key"),
                lambda: session.__setitem__("key", "changed"),
                session.save,
                session.cycle_key,
                session.delete,
                lambda: session.exists(cookie),
            ):
                with pytest.raises(SessionStoreUnavailable, match="Nothing was"):
                    attempt()
        assert tried_since(before, server) == (1, 0)
        assert SessionStore(cookie).load() == {"key": "value"}


# Re-keying while Redis stalls --------------------------------------------------


def scripts_loaded() -> None:
    """Re-key a session of another user: Redis then knows the RENAME script,
    and runs it from its socket on resuming (an unknown one it refuses)."""
    client, _ = client_with_session(_auth_user_id="8")
    assert client.get("/session/cycle/").status_code == 200
    client.get("/session/flush/")


def stored_sessions(server: RedisServer) -> list[str]:
    """The Redis keys of the sessions Redis holds (user indexes left out)."""
    client = server.client()
    try:
        keys = client.keys("*")
    finally:
        client.close()
    return sorted(key.decode() for key in keys if b":user:" not in key)


def test_a_rekey_while_redis_stalls_keeps_the_user_signed_in(
    server: RedisServer,
) -> None:
    """cycle_key() inside a request, Redis paused past socket_timeout and
    resumed 1.5 s later: the request fails, having re-keyed nothing. Redis,
    on resuming, refuses the re-key it finds in its socket: the user is
    still signed in under the cookie they hold, and no session is left under
    a key nobody holds. Once Redis answers, re-keying works, and the old key
    is dead as soon as the new one is reported."""
    with engine(server, socket_timeout=1):
        scripts_loaded()
        client, cookie = client_with_session(_auth_user_id="7", key="value")
        response = client_with_cookie(cookie).get("/outage/rekey-while-paused/")
        assert response.status_code == 500
        assert COOKIE not in response.cookies
        RESUMES.pop().join()  # Redis has resumed
        assert client.get("/session/get/").json() == {
            "_auth_user_id": "7",
            "key": "value",
        }
        assert [s.session_key for s in list_sessions("7")] == [cookie]
        assert stored_sessions(server) == [SessionStore.redis_key(cookie)]

        assert client.get("/session/cycle/").status_code == 200
        new = client.cookies[COOKIE].value
        assert new != cookie
        assert client_with_cookie(cookie).get("/session/get/").json() == {}
        assert client.get("/session/get/").json()["_auth_user_id"] == "7"
        assert [s.session_key for s in list_sessions("7")] == [new]
        assert stored_sessions(server) == [SessionStore.redis_key(new)]


def test_the_request_says_nothing_was_rekeyed(server: RedisServer) -> None:
    with engine(server, socket_timeout=1):
        _, cookie = client_with_session(_auth_user_id="7", key="value")
        with pytest.raises(SessionStoreUnavailable) as raised:
            Client().get(
                "/outage/rekey-while-paused/", HTTP_COOKIE=f"{COOKIE}={cookie}"
            )
        RESUMES.pop().join()
    assert not isinstance(raised.value, SessionWriteOutcomeUnknown)
    assert "Nothing was written" in str(raised.value)


def test_acycle_key_while_redis_stalls(server: RedisServer) -> None:
    async def scenario() -> str:
        session = SessionStore()
        await session.aset("_auth_user_id", "7")
        await session.asave()
        key = session.session_key
        assert key is not None
        request = SessionStore(key)
        assert await request.aget("_auth_user_id") == "7"
        assert server.process is not None
        with paused(server):
            with pytest.raises(SessionStoreUnavailable, match="Nothing was"):
                await request.acycle_key()
            await asyncio.sleep(0.5)  # Redis stays paused past the timeout
        assert await SessionStore(key).aload() == {"_auth_user_id": "7"}
        return key

    with engine(server, socket_timeout=0.5):
        scripts_loaded()
        key = asyncio.run(scenario())
        assert [s.session_key for s in list_sessions("7")] == [key]
        assert stored_sessions(server) == [SessionStore.redis_key(key)]


def test_a_redis_clock_ahead_is_learnt_not_a_refused_login(
    server: RedisServer,
) -> None:
    """Redis refuses a re-key that comes past its deadline, in Redis's
    clock. Where that clock runs ahead of the app server's, a refusal comes
    back in time: the engine learns by how much and re-keys."""
    with engine(server, socket_timeout=1):
        client, cookie = client_with_session(_auth_user_id="7", key="value")
        call = sync_redis().call
        # The engine's idea of Redis's clock a minute behind it: its first
        # deadline has passed when Redis runs the re-key.
        call.clock_ahead_ms = -60_000
        assert client.get("/session/cycle/").status_code == 200
        assert -60_000 < call.clock_ahead_ms <= 1000
        new = client.cookies[COOKIE].value
        assert new != cookie
        assert [s.session_key for s in list_sessions("7")] == [new]


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        # Redis stalls as login() re-keys: it refuses the late delete, so
        # the visitor keeps what the anonymous session held.
        ("/outage/pause-then-log-in/", {"cart": "book"}),
        # Redis stalls before the save creates the logged-in session: it
        # refuses the late create, so no session nobody holds is left
        # listed. (The re-key deleted the anonymous one: docs/redis.md.)
        ("/outage/log-in-then-pause/", {}),
    ],
)
def test_a_login_while_redis_stalls_leaves_no_session_behind(
    server: RedisServer, url: str, kept: dict[str, str]
) -> None:
    with engine(server, socket_timeout=1):
        scripts_loaded()
        client, cookie = client_with_session(cart="book")
        response = client_with_cookie(cookie).get(url)
        assert response.status_code == 500
        assert COOKIE not in response.cookies
        RESUMES.pop().join()
        assert client.get("/session/get/").json() == kept
        assert list_sessions("7") == []
        left = [SessionStore.redis_key(cookie)] if kept else []
        assert stored_sessions(server) == left
