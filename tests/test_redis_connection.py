"""The Redis engine's connections: lazy, once per process and configuration,
fork-safe, one asyncio client per event loop, every topology configurable,
each of redis-py's connection options working against the real server.

Connections are counted as a user could: by their name in ``CLIENT LIST``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.connection
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_prologue_sessions.backends.redis import SessionStore, connection
from django_prologue_sessions.backends.redis.connection import (
    AsyncRedis,
    async_redis,
    sync_redis,
)
from django_prologue_sessions.exceptions import (
    SessionStoreUnavailable,
    SessionWriteOutcomeUnknown,
)
from tests.redis_server import RedisServer, free_port
from tests.tls_proxy import TLSProxy, make_certificates

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"


@pytest.fixture
def engine(redis_client: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS={"url": redis_url}):
        yield redis_client


def configured(options: dict[str, Any], **more: Any) -> Any:
    return override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options, **more)


def named(client: redis.Redis, name: str) -> list[dict[str, Any]]:
    """The server's connections named ``name`` (``client_name``)."""
    return [c for c in client.client_list() if c["name"] == name]


def test_connections_are_made_lazily_and_reused(
    redis_client: redis.Redis, redis_url: str
) -> None:
    with configured({"url": redis_url, "client_name": "lazy"}):
        handle = sync_redis()
        session = SessionStore()
        session["k"] = "v"
        assert named(redis_client, "lazy") == []
        session.save()
        for _ in range(20):
            SessionStore(session.session_key).load()
        assert sync_redis() is handle
        assert len(named(redis_client, "lazy")) == 1


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


def test_db_and_socket_timeout_take_effect(
    private_redis_server: RedisServer,
) -> None:
    probe = private_redis_server.client()
    options = {
        "host": "127.0.0.1",
        "port": private_redis_server.port,
        "socket_timeout": 0.3,
        "db": 4,
    }
    with configured(options):
        session = SessionStore()
        session["k"] = "v"
        session.save()
        assert private_redis_server.client(db=4).dbsize() == 1
        assert probe.dbsize() == 0
        probe.client_pause(1500)
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable, match="Nothing was read"):
            SessionStore(session.session_key).load()
        # Given up after the socket timeout (and no retry: a timeout is retried
        # only with retry_on_timeout), not when the pause ended.
        assert time.monotonic() - started < 1.2
    probe.client_unpause()


@pytest.mark.parametrize("name", ["with-a-name", "sessions:web-1"])
def test_client_name_names_every_connection(
    redis_client: redis.Redis, redis_url: str, name: str
) -> None:
    with configured({"url": redis_url, "client_name": name}):
        session = SessionStore()
        session.save()
        asyncio.run(async_load(session.session_key))
        # One sync connection, one of the event loop's.
        assert len(named(redis_client, name)) == 2
    url = f"{redis_url}?client_name=from-the-url"
    with configured({"url": url}):
        SessionStore().save()
        assert len(named(redis_client, "from-the-url")) == 1


async def async_load(session_key: str | None) -> dict[str, Any]:
    try:
        return await SessionStore(session_key).aload()
    finally:
        await async_redis().client.aclose()


def keepalive_timer_on(local_port: int) -> bool:
    """Whether the kernel runs a keepalive timer for the socket (Linux).

    While a segment waits for its ACK (a busy machine) the socket shows the
    retransmit timer instead, whatever its keepalive: read again until the
    socket is idle.
    """
    deadline = time.monotonic() + 5
    while True:
        timer = _socket_timer(local_port)
        if timer not in ("01", "04") or time.monotonic() > deadline:
            return timer == "02"  # "tr" 2: keepalive timer
        time.sleep(0.05)


def _socket_timer(local_port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == local_port:
            return fields[5].split(":")[0]
    raise AssertionError(f"no socket on local port {local_port}")


@pytest.mark.parametrize(
    ("keepalive", "where"), [(True, "setting"), (False, "setting"), (True, "url")]
)
def test_socket_keepalive_reaches_the_socket(
    redis_client: redis.Redis, redis_url: str, keepalive: bool, where: str
) -> None:
    name = f"keepalive-{keepalive}-{where}"
    options: dict[str, Any] = {
        "url": redis_url,
        "client_name": name,
        "socket_keepalive": keepalive,
    }
    if where == "url":
        options = {"url": f"{redis_url}?socket_keepalive=true", "client_name": name}
    with configured(options):
        SessionStore().save()
        (conn,) = named(redis_client, name)
        assert keepalive_timer_on(int(conn["addr"].rsplit(":", 1)[1])) is keepalive


def pings(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_ping", {"calls": 0})
    return int(stats["calls"])


@pytest.mark.parametrize("where", ["setting", "url"])
def test_health_check_interval_pings_an_idle_connection(
    private_redis_server: RedisServer, where: str
) -> None:
    probe = private_redis_server.client()
    url = private_redis_server.url
    options: dict[str, Any] = {"url": url, "health_check_interval": 1}
    if where == "url":
        options = {"url": f"{url}?health_check_interval=1"}
    with configured(options):
        session = SessionStore()
        session.save()
        before = pings(probe)
        SessionStore(session.session_key).load()  # used at once: no check
        assert pings(probe) == before
        time.sleep(1.2)
        SessionStore(session.session_key).load()  # idle past the interval
        assert pings(probe) == before + 1


@pytest.mark.parametrize("where", ["setting", "url"])
def test_max_connections_waits_for_a_free_connection(
    private_redis_server: RedisServer, where: str
) -> None:
    """Over the cap a request waits for a connection (a blocking pool), up
    to pool_timeout, and the server never sees more connections."""
    probe = private_redis_server.client()
    options: dict[str, Any] = {
        "url": private_redis_server.url,
        "client_name": "capped",
        "max_connections": 2,
        "pool_timeout": 5,
    }
    if where == "url":
        options = {
            "url": f"{private_redis_server.url}?max_connections=2",
            "client_name": "capped",
        }
    with configured(options):
        session = SessionStore()
        session["k"] = "v"
        session.save()
        results: list[Any] = []
        probe.client_pause(300)
        threads = [
            threading.Thread(
                target=lambda: results.append(SessionStore(session.session_key)["k"])
            )
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == ["v"] * 6
        assert len(named(probe, "capped")) == 2


def test_a_request_that_finds_no_free_connection_in_time_fails_unsent(
    private_redis_server: RedisServer,
) -> None:
    probe = private_redis_server.client()
    options = {
        "url": private_redis_server.url,
        "max_connections": 1,
        "pool_timeout": 0.1,
    }
    with configured(options):
        session = SessionStore()
        session["k"] = "v"
        session.save()
        writer = SessionStore(session.session_key)
        writer["k"] = "w"  # loaded: the connection is back in the pool
        probe.client_pause(600)
        holder = threading.Thread(
            target=lambda: SessionStore(session.session_key).load()
        )
        holder.start()
        time.sleep(0.1)  # the one connection is taken, waiting on the pause
        with pytest.raises(SessionStoreUnavailable) as raised:
            writer.save()
        holder.join()
        assert SessionStore(session.session_key)["k"] == "v"
    assert not isinstance(raised.value, SessionWriteOutcomeUnknown)
    assert "Nothing was written" in str(raised.value)


def test_defaults_match_django_redis_sessions_where_it_matters() -> None:
    with configured({}):
        handle = sync_redis()
    kwargs = handle.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"]) == ("localhost", 6379)
    assert kwargs["socket_timeout"] == 1.0
    assert handle.options.prefix == "session"
    assert handle.options.on_unavailable == "raise"
    # No cap: redis-py's unbounded pool, as django-redis's default.
    assert type(handle.client.connection_pool) is redis.ConnectionPool


def test_a_refused_connection_fails_at_once_and_says_nothing_was_written(
    redis_url: str,
) -> None:
    """redis-py's own retries (three, with a growing back-off, in 6.x and
    later) are off: a closed port fails the request at once."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with configured({"url": closed, "socket_connect_timeout": 0.5}):
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable, match="Nothing was read"):
            SessionStore("a" * 32).load()
        session = SessionStore()
        session["k"] = "v"
        with pytest.raises(SessionStoreUnavailable) as raised:
            session.save()
        with pytest.raises(SessionStoreUnavailable, match="Nothing was read"):
            asyncio.run(async_load("a" * 32))
        assert time.monotonic() - started < 1.5
    assert not isinstance(raised.value, SessionWriteOutcomeUnknown)
    assert "Nothing was written" in str(raised.value)


def test_async_methods_never_touch_the_sync_client(engine: redis.Redis) -> None:
    async def everything() -> None:
        session = SessionStore()
        await session.aset("k", "v")
        await session.asave()
        again = SessionStore(session.session_key)
        assert await again.aget("k") == "v"
        await again.aset("k", "w")
        await again.asave()
        await again.acycle_key()
        await again.aflush()
        await async_redis().client.aclose()

    connection.reset()
    asyncio.run(everything())
    assert connection._sync is None


@pytest.fixture
def tls_server(
    private_redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[TLSProxy, Any]]:
    certificates = make_certificates(tmp_path)
    with TLSProxy(
        private_redis_server.port, certificates, require_client_cert=True
    ) as proxy:
        yield proxy, certificates


def round_trip_through(options: dict[str, Any]) -> None:
    with configured(options):
        session = SessionStore()
        session["over"] = "tls"
        session.save()
        assert SessionStore(session.session_key)["over"] == "tls"
        assert asyncio.run(async_load(session.session_key)) == {"over": "tls"}


def test_tls_with_host_and_ssl(tls_server: tuple[TLSProxy, Any]) -> None:
    proxy, certs = tls_server
    round_trip_through(
        {
            "host": "localhost",
            "port": proxy.port,
            "ssl": True,
            "ssl_ca_certs": str(certs.ca),
            "ssl_certfile": str(certs.client_cert),
            "ssl_keyfile": str(certs.client_key),
            "ssl_check_hostname": True,
        }
    )


def test_tls_with_a_rediss_url(tls_server: tuple[TLSProxy, Any]) -> None:
    proxy, certs = tls_server
    round_trip_through(
        {
            "url": f"rediss://127.0.0.1:{proxy.port}/0",
            "ssl_ca_certs": str(certs.ca),
            "ssl_certfile": str(certs.client_cert),
            "ssl_keyfile": str(certs.client_key),
            "ssl_cert_reqs": "required",
        }
    )


def test_tls_refuses_a_server_it_cannot_verify(
    tls_server: tuple[TLSProxy, Any],
) -> None:
    proxy, certs = tls_server
    options = {
        "url": f"rediss://127.0.0.1:{proxy.port}/0",
        "ssl_certfile": str(certs.client_cert),
        "ssl_keyfile": str(certs.client_key),
    }
    with configured(options), pytest.raises(SessionStoreUnavailable, match="SSL"):
        SessionStore("a" * 32).load()


def test_tls_without_a_client_certificate_is_refused_by_the_server(
    tls_server: tuple[TLSProxy, Any],
) -> None:
    proxy, certs = tls_server
    options = {
        "url": f"rediss://127.0.0.1:{proxy.port}/0",
        "ssl_ca_certs": str(certs.ca),
    }
    with configured(options), pytest.raises(SessionStoreUnavailable):
        SessionStore("a" * 32).load()
    assert proxy.handshakes_failed >= 1


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
