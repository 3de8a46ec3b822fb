"""The Redis engine's connections: lazy, once per process and configuration,
fork-safe, one asyncio client per event loop, every topology configurable."""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.connection
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_prologue_sessions.backends._redis_connection import (
    AsyncRedis,
    async_redis,
    sync_redis,
)
from django_prologue_sessions.backends.redis import SessionStore

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"


@pytest.fixture
def engine(redis_client: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS={"url": redis_url}):
        yield redis_client


def configured(options: dict[str, Any], **more: Any) -> Any:
    return override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options, **more)


def test_connections_are_made_lazily_and_reused(engine: redis.Redis) -> None:
    handle = sync_redis()
    pool = handle.client.connection_pool
    assert pool._created_connections == 0  # type: ignore[attr-defined]
    session = SessionStore()
    assert pool._created_connections == 0  # type: ignore[attr-defined]
    session["k"] = "v"
    session.save()
    for _ in range(20):
        SessionStore(session.session_key).load()
    assert sync_redis() is handle
    assert pool._created_connections == 1  # type: ignore[attr-defined]


def test_a_settings_change_makes_a_new_connection(redis_url: str) -> None:
    with configured({"url": redis_url}):
        first = sync_redis()
        with configured({"url": redis_url, "prefix": "other"}):
            second = sync_redis()
            assert second is not first
            assert second.options.prefix == "other"
        third = sync_redis()
        assert third is not second
        assert third.options.prefix == "session"
        caches = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
        with override_settings(CACHES=caches):
            assert sync_redis() is not third


def test_a_forked_child_gets_connections_of_its_own(engine: redis.Redis) -> None:
    session = SessionStore()
    session["from"] = "parent"
    session.save()  # the parent now holds a pooled connection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            child = SessionStore(session.session_key)
            if child["from"] == "parent":
                child["child"] = os.getpid()
                child.save()
                status = 0
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    # Had the child used the parent's socket, the replies would now be crossed.
    again = SessionStore(session.session_key)
    assert again["child"] == pid
    again["parent"] = "still fine"
    again.save()
    assert SessionStore(session.session_key)["parent"] == "still fine"


def test_one_asyncio_client_per_event_loop(engine: redis.Redis) -> None:
    async def clients() -> tuple[AsyncRedis, AsyncRedis]:
        session = SessionStore()
        await session.aset("k", "v")
        await session.asave()
        return async_redis(), async_redis()

    first, same = asyncio.run(clients())
    second, _ = asyncio.run(clients())
    assert first is same
    assert second is not first
    assert isinstance(first.client, redis.asyncio.Redis)


def test_a_connection_killed_by_the_server_is_replaced(engine: redis.Redis) -> None:
    session = SessionStore()
    session["k"] = "v"
    session.save()
    killed = engine.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert SessionStore(session.session_key)["k"] == "v"


@pytest.mark.parametrize(
    ("query", "resp"), [("", b"resp=2"), ("?protocol=3", b"resp=3")]
)
def test_resp2_unless_the_url_asks_for_resp3(
    redis_url: str, query: str, resp: bytes
) -> None:
    with configured({"url": redis_url + query}):
        session = SessionStore()
        session.update({"k": "v", "n": [1, None]})
        session.save()
        assert SessionStore(session.session_key).load() == {"k": "v", "n": [1, None]}
        info = sync_redis().execute("CLIENT", "INFO")  # of the engine's connection
    assert resp in bytes(info).split()


def test_connection_options_reach_the_pool(redis_url: str) -> None:
    with configured(
        {"url": redis_url, "socket_timeout": 0.3, "db": 4, "password": None}
    ):
        kwargs = sync_redis().client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.3
    assert kwargs["socket_connect_timeout"] == 0.3
    assert kwargs["retry"].get_retries() == 0  # SyncRedis retries a command once


def test_defaults_match_django_redis_sessions_where_it_matters() -> None:
    with configured({}):
        handle = sync_redis()
    kwargs = handle.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"]) == ("localhost", 6379)
    assert kwargs["socket_timeout"] == 1.0
    assert handle.options.prefix == "session"
    assert handle.options.on_unavailable == "raise"


def test_a_rediss_url_makes_tls_connections() -> None:
    async def async_connection_class() -> type[Any]:
        return async_redis().client.connection_pool.connection_class  # type: ignore[no-any-return]

    with configured({"url": "rediss://127.0.0.1:6390/0"}):
        sync_class = sync_redis().client.connection_pool.connection_class
        async_class = asyncio.run(async_connection_class())
    assert sync_class is redis.connection.SSLConnection
    assert async_class is redis.asyncio.connection.SSLConnection


def test_sentinel_settings_make_a_sentinel_managed_client() -> None:
    """Only the configuration: the failover itself is tested with sentinels."""
    options = {
        "sentinel_list": [("127.0.0.1", 26379), ("127.0.0.1", 26380)],
        "sentinel_master_alias": "sessions-master",
        "db": 2,
        "socket_timeout": 0.4,
    }

    async def async_pool() -> Any:
        return async_redis().client.connection_pool

    with configured(options):
        pool = sync_redis().client.connection_pool
        apool = asyncio.run(async_pool())
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "sessions-master"
    assert pool.connection_kwargs["db"] == 2
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [
        26379,
        26380,
    ]
    assert isinstance(apool, redis.asyncio.sentinel.SentinelConnectionPool)
    assert apool.service_name == "sessions-master"


def test_cache_alias_reuses_the_django_redis_connection(redis_url: str) -> None:
    from django_redis import get_redis_connection

    # django-redis keeps one pool per LOCATION for the whole process: a
    # LOCATION of this test's own makes sure these OPTIONS are the pool's.
    location = redis_url.rsplit("/", 1)[0] + "/5"
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": location,
            "OPTIONS": {"SOCKET_TIMEOUT": 0.7},
        },
    }

    async def async_kwargs() -> dict[str, Any]:
        return dict(async_redis().client.connection_pool.connection_kwargs)

    with configured({"cache_alias": "sessions"}, CACHES=caches):
        client = sync_redis().client
        assert (
            client.connection_pool is get_redis_connection("sessions").connection_pool
        )
        kwargs = asyncio.run(async_kwargs())
    sync_kwargs = client.connection_pool.connection_kwargs
    for name in ("host", "port", "db", "socket_timeout"):
        assert kwargs[name] == sync_kwargs[name]
    assert (kwargs["db"], kwargs["socket_timeout"]) == (5, 0.7)


def test_an_unusable_setting_fails_clearly_when_used() -> None:
    with configured({"url": "http://127.0.0.1:6379"}):
        session = SessionStore("a" * 32)
        with pytest.raises(
            ImproperlyConfigured, match="redis://, rediss:// or unix://"
        ):
            session.load()
