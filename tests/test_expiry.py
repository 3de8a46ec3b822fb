"""The idle and absolute timeouts and the anonymous age (docs/expiry.md), on
every engine, through Django's test client and its real ``SessionMiddleware``,
with a real Redis server.

The tests that wait do so for a second or three; what they assert is what
the server served, never how long anything took. Those that need no waiting
move the sign-in clock (``base._now``) or a TTL in Redis instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import AsyncClient, Client, override_settings

from django_prologue_sessions.backends import base, memory
from django_prologue_sessions.backends._session_keys import USER_ID_KEY, session_id
from django_prologue_sessions.backends.base import SIGNED_IN_KEY
from django_prologue_sessions.backends.redis import connection as redis_connection
from django_prologue_sessions.backends.redis import layout
from django_prologue_sessions.backends.redis import store as redis_store
from django_prologue_sessions.backends.redis.store import SessionStore as RedisStore
from django_prologue_sessions.user_sessions import list_sessions
from tests.redis_round_trips import count_round_trips
from tests.test_activity import Clock

ENGINES = [
    "signed_cookies",
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
]
COOKIE = "sessionid"
T = TypeVar("T")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, db: None) -> Iterator[str]:
    """The engine ``request.param`` names, emptied, behind Django's middleware."""
    name: str = request.param
    more: dict[str, Any] = {}
    if name == "redis":
        request.getfixturevalue("redis_client")  # flushed
        more["SESSION_REDIS"] = {"url": request.getfixturevalue("redis_url")}
    memory.SessionStore.clear_all()
    with override_settings(
        SESSION_ENGINE=f"django_prologue_sessions.backends.{name}", **more
    ):
        yield name
    memory.SessionStore.clear_all()


@pytest.fixture
def ada(db: None) -> AbstractBaseUser:
    user: AbstractBaseUser = get_user_model().objects.create_user(username="ada")
    return user


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The sign-in clock, which a test moves on."""
    clock = Clock()
    with mock.patch.object(base, "_now", clock):
        yield clock


def log_in(client: Client | None = None) -> Client:
    client = client or Client()
    assert client.post("/account/login/", {"username": "ada"}).status_code == 200
    return client


def served(client: Client) -> dict[str, Any]:
    """The session the server served to ``client``'s request."""
    response = client.get("/session/get/")
    assert response.status_code == 200
    session: dict[str, Any] = response.json()
    return session


def signed_in(client: Client) -> bool:
    return USER_ID_KEY in served(client)


def max_age(client: Client) -> str:
    return str(client.cookies[COOKIE]["max-age"])


def redis_key(client: Client) -> str:
    return RedisStore.redis_key(client.cookies[COOKIE].value)


def gone(engine: str, client: Client, key: str, redis_client: Any) -> bool:
    """Whether the store no longer holds the session of cookie value ``key``."""
    if engine == "redis":
        return not redis_client.exists(RedisStore.redis_key(key))
    if engine == "memory":
        return not memory.SessionStore.store.exists(key)
    return client.cookies[COOKIE].value == ""  # the cookie was deleted


def store_client(engine: str, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("redis_client") if engine == "redis" else None


# The tests on real servers, with timeouts of a few seconds ----------


def test_a_session_in_use_outlives_its_idle_timeout_several_times_over(
    engine: str, ada: AbstractBaseUser, request: pytest.FixtureRequest
) -> None:
    with override_settings(PROLOGUE_SESSIONS_IDLE_TIMEOUT=2):
        client = log_in()
        redis_client = store_client(engine, request)
        stored = redis_client.get(redis_key(client)) if redis_client else None
        started = time.monotonic()
        requests = 0
        while time.monotonic() - started < 3 * 2:
            time.sleep(0.4)  # well within half of the window: never idle
            assert signed_in(client)
            requests += 1
        assert requests >= 10
        if redis_client:
            # Pushed back by EXPIRE, never rewritten.
            assert redis_client.get(redis_key(client)) == stored
            assert 0 < redis_client.pttl(redis_key(client)) <= 2000


def test_a_session_left_idle_ends(
    engine: str, ada: AbstractBaseUser, request: pytest.FixtureRequest
) -> None:
    with override_settings(PROLOGUE_SESSIONS_IDLE_TIMEOUT=1):
        client = log_in()
        key = client.cookies[COOKIE].value
        assert signed_in(client)
        time.sleep(1.5)
        assert served(client) == {}
        assert gone(engine, client, key, store_client(engine, request))


def test_an_active_session_ends_at_the_absolute_timeout(
    engine: str,
    ada: AbstractBaseUser,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limit = 3
    with (
        override_settings(
            PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT=limit,
            PROLOGUE_SESSIONS_IDLE_TIMEOUT=2,
        ),
        caplog.at_level(logging.INFO, "django_prologue_sessions.expiry"),
    ):
        started = time.monotonic()
        client = log_in()
        key = client.cookies[COOKIE].value
        answers = []  # (seconds since the sign-in before, after, signed in)
        while not answers or answers[-1][0] < limit + 0.3:
            time.sleep(0.3)
            before = time.monotonic() - started
            answer = signed_in(client)
            answers.append((before, time.monotonic() - started, answer))
        # The sign-in time is kept to the second, rounded down: a session
        # may end up to a second early, never late.
        assert all(answer for _, after, answer in answers if after < limit - 1)
        assert not any(answer for before, _, answer in answers if before >= limit)
        ended = [answer for _, _, answer in answers].index(False)
        assert not any(answer for _, _, answer in answers[ended:])
        assert gone(engine, client, key, store_client(engine, request))
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("expiry")]
    assert len(lines) == 1
    assert "PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT (3 s) reached" in lines[0]
    assert f"user {ada.pk}" in lines[0]
    assert key not in lines[0]
    if engine != "signed_cookies":
        assert list_sessions(ada) == []


def test_an_anonymous_session_gets_the_anonymous_age_and_a_sign_in_the_normal_one(
    engine: str, ada: AbstractBaseUser, request: pytest.FixtureRequest
) -> None:
    age = settings.SESSION_COOKIE_AGE
    with override_settings(PROLOGUE_SESSIONS_ANONYMOUS_AGE=2):
        client = Client()
        client.get("/session/set/", {"key": "value"})
        assert max_age(client) == "2"
        redis_client = store_client(engine, request)
        if redis_client:
            assert 0 < redis_client.pttl(redis_key(client)) <= 2000
        log_in(client)
        assert max_age(client) == str(age)
        if redis_client:
            assert age - 5 <= redis_client.ttl(redis_key(client)) <= age
        time.sleep(2.5)
        assert signed_in(client)


def test_an_anonymous_session_ends_after_the_anonymous_age(engine: str) -> None:
    with override_settings(PROLOGUE_SESSIONS_ANONYMOUS_AGE=1):
        client = Client()
        client.get("/session/set/", {"key": "value"})
        assert served(client) == {"key": "value"}
        time.sleep(1.5)
        assert served(client) == {}


# The absolute timeout's clock -------------------------------------------------


def test_a_password_change_keeps_the_clock_and_a_new_sign_in_restarts_it(
    engine: str, ada: AbstractBaseUser, clock: Clock
) -> None:
    with override_settings(PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT=100):
        client = log_in()
        started = int(clock.now)
        assert served(client)[SIGNED_IN_KEY] == started
        clock.now += 60
        key = client.cookies[COOKIE].value
        assert client.post("/account/password/", {"password": "x"}).status_code == 200
        assert client.cookies[COOKIE].value != key  # re-keyed
        assert served(client)[SIGNED_IN_KEY] == started
        clock.now += 50
        assert served(client) == {}
        log_in(client)
        assert served(client)[SIGNED_IN_KEY] == int(clock.now)
        clock.now += 60
        assert signed_in(client)


def test_without_the_absolute_timeout_nothing_is_stamped(
    engine: str, ada: AbstractBaseUser
) -> None:
    client = log_in()
    assert SIGNED_IN_KEY not in served(client)


def test_a_session_signed_in_before_the_timeout_was_set_starts_its_clock(
    engine: str, ada: AbstractBaseUser, clock: Clock
) -> None:
    client = log_in()
    with override_settings(PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT=100):
        assert served(client)[SIGNED_IN_KEY] == int(clock.now)
        clock.now += 99
        assert signed_in(client)
        clock.now += 2
        assert served(client) == {}


def test_a_sign_in_time_that_is_not_a_number_ends_the_session(
    engine: str, ada: AbstractBaseUser
) -> None:
    with override_settings(PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT=100):
        client = log_in()
        client.get("/session/set/", {SIGNED_IN_KEY: "forever"})
        assert served(client) == {}


# How the settings meet set_expiry() and SESSION_EXPIRE_AT_BROWSER_CLOSE -------


@pytest.mark.parametrize(
    ("more", "seconds", "cookie_age", "store_ttl"),
    [
        # The shortest limit wins in the store; the cookie keeps its age.
        ({"PROLOGUE_SESSIONS_IDLE_TIMEOUT": 100}, 30, "30", 30),
        ({"PROLOGUE_SESSIONS_IDLE_TIMEOUT": 100}, 1000, "1000", 100),
        ({"PROLOGUE_SESSIONS_IDLE_TIMEOUT": 100}, None, "1209600", 100),
        (
            {
                "PROLOGUE_SESSIONS_IDLE_TIMEOUT": 100,
                "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
            },
            None,
            "",
            100,
        ),
        # An expiry of the view's own replaces the anonymous age.
        ({"PROLOGUE_SESSIONS_ANONYMOUS_AGE": 60}, 600, "600", 600),
        ({"PROLOGUE_SESSIONS_ANONYMOUS_AGE": 60}, None, "60", 60),
        (
            {
                "PROLOGUE_SESSIONS_ANONYMOUS_AGE": 60,
                "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
            },
            None,
            "",
            60,
        ),
        ({"PROLOGUE_SESSIONS_ANONYMOUS_AGE": 60}, 0, "", 60),
    ],
)
def test_which_expiry_wins(
    engine: str,
    request: pytest.FixtureRequest,
    more: dict[str, Any],
    seconds: int | None,
    cookie_age: str,
    store_ttl: int,
) -> None:
    with override_settings(**more):
        client = Client()
        if seconds is None:
            client.get("/session/set/", {"key": "value"})
        else:
            client.get("/session/expiry/", {"seconds": seconds})
        assert max_age(client) == cookie_age
        redis_client = store_client(engine, request)
        if redis_client:
            assert store_ttl - 2 <= redis_client.ttl(redis_key(client)) <= store_ttl
        if engine == "memory":
            key = client.cookies[COOKIE].value
            expires_at = memory.SessionStore.store._entries[key][1]
            assert store_ttl - 2 <= expires_at - memory._now() <= store_ttl


def test_the_async_middleware_sends_the_anonymous_age(engine: str) -> None:
    async def visit() -> str:
        client = AsyncClient()
        await client.get("/session/set/", {"key": "value"})
        return str(client.cookies[COOKIE]["max-age"])

    with override_settings(
        PROLOGUE_SESSIONS_ANONYMOUS_AGE=60,
        MIDDLEWARE=["django_prologue_sessions.middleware.SessionMiddleware"],
    ):
        assert asyncio.run(closing(visit()) if engine == "redis" else visit()) == "60"


# The slide: refreshed once per half window, never a rewrite ----------------


async def closing(work: Awaitable[T]) -> T:
    """``work``, then this event loop's Redis connections closed: a socket
    left to the garbage collector would close during a later test's count
    of round trips."""
    try:
        return await work
    finally:
        await redis_connection.async_redis().client.aclose()


def test_the_cookie_is_sent_again_only_when_a_refresh_is_due() -> None:
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.signed_cookies",
        PROLOGUE_SESSIONS_IDLE_TIMEOUT=4,
    ):
        client = Client()
        client.get("/session/set/", {"key": "value"})
        first = client.cookies[COOKIE].value
        assert COOKIE not in client.get("/session/read/").cookies
        # Less than half of the window left (the signing time is kept to the
        # second, rounded down: 2.2 to 3.2 s have passed by its count).
        time.sleep(2.2)
        response = client.get("/session/read/")
        assert response.cookies[COOKIE].value not in ("", first)
        assert response.cookies[COOKIE]["max-age"] == settings.SESSION_COOKIE_AGE
        assert COOKIE not in client.get("/session/read/").cookies


def test_the_memory_store_is_touched_only_when_a_refresh_is_due() -> None:
    clock = Clock()
    start = clock.now
    with (
        override_settings(
            SESSION_ENGINE="django_prologue_sessions.backends.memory",
            PROLOGUE_SESSIONS_IDLE_TIMEOUT=100,
        ),
        mock.patch.object(memory, "_now", clock),
    ):
        session = memory.SessionStore()
        session["key"] = "value"
        session.save()
        assert session.session_key is not None
        entries = memory.SessionStore.store._entries
        assert entries[session.session_key][1] == start + 100
        clock.now += 40  # 60 s left
        assert memory.SessionStore(session.session_key).load() == {"key": "value"}
        assert entries[session.session_key][1] == start + 100
        clock.now += 20  # 40 s left
        assert memory.SessionStore(session.session_key).load() == {"key": "value"}
        assert entries[session.session_key][1] == start + 160
        memory.SessionStore.clear_all()


@pytest.fixture
def redis_idle(redis_client: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
        PROLOGUE_SESSIONS_IDLE_TIMEOUT=100,
    ):
        warm = RedisStore()  # opens the connection, loads the scripts
        warm[USER_ID_KEY] = "0"
        warm.save()
        redis_client.pexpire(RedisStore.redis_key(warm.session_key or ""), 1)
        RedisStore(warm.session_key).load()
        redis_client.flushdb()
        yield redis_client


@pytest.mark.redis
@pytest.mark.parametrize("user", [None, "7"])
def test_redis_pushes_the_expiry_back_without_rewriting_the_value(
    redis_idle: redis.Redis, user: str | None
) -> None:
    session = RedisStore()
    session["key"] = "value"
    if user:
        session[USER_ID_KEY] = user
    session.save()
    assert session.session_key is not None
    key = RedisStore.redis_key(session.session_key)
    stored = redis_idle.get(key)
    assert 99 <= redis_idle.ttl(key) <= 100
    redis_idle.pexpire(key, 60_000)  # more than half left: nothing to do
    with count_round_trips() as trips:
        assert RedisStore(session.session_key).load()["key"] == "value"
    assert trips == 1  # GET and PTTL together
    assert redis_idle.pttl(key) <= 60_000
    redis_idle.pexpire(key, 40_000)
    with count_round_trips() as trips:
        assert RedisStore(session.session_key).load()["key"] == "value"
    assert trips == 2  # and the EXPIRE
    assert redis_idle.ttl(key) >= 99
    redis_idle.pexpire(key, 40_000)
    asyncio.run(closing(RedisStore(session.session_key).aload()))
    assert redis_idle.ttl(key) >= 99
    assert redis_idle.get(key) == stored


@pytest.mark.redis
def test_the_index_entry_outlives_a_slid_session(redis_idle: redis.Redis) -> None:
    session = RedisStore()
    session[USER_ID_KEY] = "7"
    session.save()
    assert session.session_key is not None
    key = RedisStore.redis_key(session.session_key)
    index = RedisStore.index_key(layout.user_tag("7"), "7")
    member = layout.member(session_id(session.session_key))
    entry = redis_idle.zscore(index, member)
    # Early on, the entry (written for twice the TTL) outlasts the slide: a
    # bare EXPIRE, the index left alone.
    redis_idle.pexpire(key, 40_000)
    RedisStore(session.session_key).load()
    assert redis_idle.ttl(key) >= 99
    assert redis_idle.zscore(index, member) == entry
    # 170 s after the save, by the app's clock and by the index's: 30 s left
    # of the entry, 40 s of the session, which slides to 100 s.
    now_ms = int(redis_idle.time()[0]) * 1000
    redis_idle.zadd(index, {member: now_ms + 30_000}, xx=True)
    redis_idle.pexpire(key, 40_000)
    later = redis_store._now() + 170
    with mock.patch.object(redis_store, "_now", return_value=later):
        RedisStore(session.session_key).load()
    score = redis_idle.zscore(index, member)
    assert score is not None
    assert score >= now_ms + redis_idle.pttl(key)
    assert score >= now_ms + 190_000  # twice the TTL, as a save writes it
    assert redis_idle.ttl(index) >= redis_idle.ttl(key)
    # The header still says 30 s: the script reads the entry, leaves it.
    redis_idle.pexpire(key, 40_000)
    with mock.patch.object(redis_store, "_now", return_value=later):
        RedisStore(session.session_key).load()
    assert redis_idle.ttl(key) >= 99
    assert redis_idle.zscore(index, member) == score
    # Another sign-in prunes the index of expired entries, not of this one.
    other = RedisStore()
    other[USER_ID_KEY] = "7"
    other.save()
    assert {s.id for s in list_sessions("7")} == {
        session_id(session.session_key),
        session_id(other.session_key),
    }


@pytest.mark.redis
def test_redis_without_an_idle_timeout_loads_with_a_get_alone(
    redis_client: redis.Redis, redis_url: str
) -> None:
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
    ):
        session = RedisStore()
        session["key"] = "value"
        session.save()
        calls = redis_client.info("commandstats").get("cmdstat_pttl", {"calls": 0})
        RedisStore(session.session_key).load()
        after = redis_client.info("commandstats").get("cmdstat_pttl", {"calls": 0})
        assert after["calls"] == calls["calls"]
