"""Edges of the Redis engine found by trying it as a new user would, each
against the real server: fractional expiry, keys no UTF-8 codec accepts, a
write whose outcome is unknown, and the Lua scripts' arguments. (A re-key
racing a logout: tests/test_cycle_key.py, for the memory engine too.)"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import Client, override_settings

from django_prologue_sessions.backends.redis import scripts
from django_prologue_sessions.backends.redis.store import SessionStore
from django_prologue_sessions.exceptions import (
    SessionStoreUnavailable,
    SessionWriteOutcomeUnknown,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"


@pytest.fixture
def store(redis_client: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS={"url": redis_url}):
        yield redis_client


def stored_ttl_ms(client: redis.Redis, session: SessionStore) -> int:
    assert session.session_key is not None
    return int(client.pttl(SessionStore.redis_key(session.session_key)))


# Fractional expiry --------------------------------------------------------------


@pytest.mark.parametrize(("expiry", "whole"), [(300.5, 301), (2.7, 3), (0.5, 1)])
def test_a_fractional_expiry_is_rounded_up_to_whole_seconds(
    store: redis.Redis, expiry: float, whole: int
) -> None:
    session = SessionStore()
    session["k"] = "v"
    session.set_expiry(expiry)
    session.save()
    assert (whole - 1) * 1000 < stored_ttl_ms(store, session) <= whole * 1000
    assert SessionStore(session.session_key)["k"] == "v"  # not deleted
    session["k"] = "changed"
    session.save()  # the update script gets a whole number too
    assert (whole - 1) * 1000 < stored_ttl_ms(store, session) <= whole * 1000
    assert SessionStore(session.session_key)["k"] == "changed"


def test_a_fractional_expiry_async(store: redis.Redis) -> None:
    async def save() -> SessionStore:
        session = SessionStore()
        await session.aset("k", "v")
        await session.aset_expiry(0.5)
        await session.asave()
        return session

    session = asyncio.run(save())
    assert 0 < stored_ttl_ms(store, session) <= 1000
    assert SessionStore(session.session_key)["k"] == "v"


def test_a_fractional_expiry_through_the_middleware(store: redis.Redis) -> None:
    client = Client()
    response = client.get("/session/expiry/", {"seconds": "0.5"})
    assert response.status_code == 200
    [key] = store.keys("*")
    assert 0 < store.pttl(key) <= 1000


# Keys that are not UTF-8 --------------------------------------------------------

ODD_KEYS = {"\ud800k": 1, "a\udfffb": "x", "\udcff": ["\ud800"], "plain": "\ud83d"}


def test_keys_with_lone_surrogates_are_stored(store: redis.Redis) -> None:
    session = SessionStore()
    session.update(ODD_KEYS)
    session.save()
    assert dict(SessionStore(session.session_key).items()) == ODD_KEYS
    again = SessionStore(session.session_key)
    again["\ud800k"] = 2
    del again["a\udfffb"]
    again.save()
    expected = {**ODD_KEYS, "\ud800k": 2}
    del expected["a\udfffb"]
    assert dict(SessionStore(session.session_key).items()) == expected


def test_keys_with_lone_surrogates_are_stored_async(store: redis.Redis) -> None:
    async def round_trip() -> dict[str, Any]:
        session = SessionStore()
        for key, value in ODD_KEYS.items():
            await session.aset(key, value)
        await session.asave()
        return dict(await SessionStore(session.session_key).aitems())

    assert asyncio.run(round_trip()) == ODD_KEYS


# A write whose outcome is unknown --------------------------------------------------


@pytest.fixture
def paused_server(private_redis_server: RedisServer) -> Iterator[RedisServer]:
    """The private server, which the test may pause; always resumed."""
    yield private_redis_server
    if private_redis_server.process is not None:
        os.kill(private_redis_server.process.pid, signal.SIGCONT)


def pause(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def resume(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)


def wait_for(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_write_that_timed_out_is_reported_as_unknown_and_may_land(
    paused_server: RedisServer,
) -> None:
    """The write reached the paused server's socket: when Redis resumes it
    runs, so "nothing was written" would be false."""
    options = {"url": paused_server.url, "socket_timeout": 0.3}
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options):
        session = SessionStore()
        session["k"] = "before"
        session.save()
        session["warm"] = 1
        session.save()  # loads the update script: EVALSHA will find it
        request = SessionStore(session.session_key)
        request["k"] = "after"  # loaded
        pause(paused_server)
        with pytest.raises(SessionWriteOutcomeUnknown) as raised:
            request.save()
        resume(paused_server)
        assert wait_for(lambda: SessionStore(session.session_key)["k"] == "after")
    message = str(raised.value)
    assert "whether it was applied is unknown" in message
    assert "Nothing was" not in message


def test_a_read_that_timed_out_says_nothing_was_written(
    paused_server: RedisServer,
) -> None:
    options = {"url": paused_server.url, "socket_timeout": 0.3}
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options):
        session = SessionStore()
        session.save()
        pause(paused_server)
        with pytest.raises(SessionStoreUnavailable) as raised:
            SessionStore(session.session_key).load()
    assert not isinstance(raised.value, SessionWriteOutcomeUnknown)
    assert "Nothing was read or written" in str(raised.value)


def test_a_write_never_sent_says_so(paused_server: RedisServer) -> None:
    options = {"url": paused_server.url, "socket_timeout": 0.3}
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options):
        session = SessionStore()
        session["k"] = "before"
        session.save()
        request = SessionStore(session.session_key)
        request["k"] = "after"
        paused_server.stop()  # refused from now on
        with pytest.raises(SessionStoreUnavailable) as raised:
            request.save()
    assert not isinstance(raised.value, SessionWriteOutcomeUnknown)
    assert "Nothing was written" in str(raised.value)


def test_the_empty_mode_logs_an_unknown_outcome_as_such(
    paused_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    options = {
        "url": paused_server.url,
        "socket_timeout": 0.3,
        "on_unavailable": "empty",
    }
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options):
        session = SessionStore()
        session["k"] = "before"
        session.save()
        session["warm"] = 1
        session.save()  # loads the update script: EVALSHA will find it
        request = SessionStore(session.session_key)
        request["k"] = "after"
        pause(paused_server)
        with caplog.at_level(logging.WARNING, "django_prologue_sessions.redis"):
            request.save()  # no exception in this mode
        resume(paused_server)
        assert wait_for(lambda: SessionStore(session.session_key)["k"] == "after")
    assert "may or may not have been saved" in caplog.text
    assert "was not saved" not in caplog.text


def test_async_write_that_timed_out_is_unknown(paused_server: RedisServer) -> None:
    options = {"url": paused_server.url, "socket_timeout": 0.3}

    async def save() -> None:
        session = SessionStore()
        await session.aset("k", "before")
        await session.asave()
        request = SessionStore(session.session_key)
        await request.aset("k", "after")
        pause(paused_server)
        try:
            with pytest.raises(SessionWriteOutcomeUnknown):
                await request.asave()
        finally:
            resume(paused_server)

    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options):
        asyncio.run(save())


# The Lua scripts' arguments -----------------------------------------------------

_ARGV_READ = re.compile(r"^local (\w+) = (?:tonumber\()?ARGV\[(\d+)\]\)?$", re.M)


@pytest.mark.parametrize("name", sorted(scripts.SCRIPTS))
def test_each_script_reads_its_head_in_the_order_python_sends_it(name: str) -> None:
    script = scripts.SCRIPTS[name]
    read = [(int(i), var) for var, i in _ARGV_READ.findall(script.source)]
    assert read == list(enumerate(script.head, start=1)), name


def test_argv_takes_exactly_the_named_head() -> None:
    assert scripts.DELETE.argv(member="k") == ["k"]
    assert scripts.CREATE.argv(
        [b"x"], member="", ttl=5, value=b"1j{}", index_ttl=10, not_after=0
    ) == [5, "", b"1j{}", 10, 0, b"x"]
    with pytest.raises(TypeError):
        scripts.CREATE.argv(ttl=5)
    with pytest.raises(TypeError):
        scripts.DELETE.argv(member="k", ttl=5)
