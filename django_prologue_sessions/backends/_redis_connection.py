"""The Redis engine's connections: made lazily, once per process, fork-safe.

``sync_redis()`` is the process's connection for the current ``SESSION_REDIS``;
``async_redis()`` is one ``redis.asyncio`` client per event loop, as asyncio
connections belong to the loop that opened them. Both are dropped when
``SESSION_REDIS`` or ``CACHES`` change (``override_settings`` in tests).

A sync command skips redis-py's client layer (its retry loop, callbacks and
observability hooks cost more than the round trip itself on loopback): it is
sent on a connection that the client's pool made, kept in a list of idle
connections that a forked child starts afresh. Through Sentinel those are
Sentinel-managed connections, which find the master when they reconnect.

On a Redis Cluster (``"cluster": True``) commands go through redis-py's
cluster clients, which route each one by its keys.

With ``wait_replicas``, every write is followed by ``WAIT``: pipelined with
it, so still one round trip (two on a Cluster).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from redis.backoff import NoBackoff
from redis.exceptions import (
    ConnectionError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry

from django_prologue_sessions.backends import _redis_options
from django_prologue_sessions.backends._redis_options import RedisOptions
from django_prologue_sessions.backends._redis_scripts import LuaScript
from django_prologue_sessions.backends._resp import pack, read_replies
from django_prologue_sessions.conf import app_settings

logger = logging.getLogger("django_prologue_sessions.redis")

#: Commands of the engine's that write (besides its scripts): with
#: ``wait_replicas`` each is followed by WAIT.
WRITE_COMMANDS = ("UNLINK", "DEL")

#: What the engine treats as "Redis is unavailable".
UNAVAILABLE_ERRORS = (ConnectionError, TimeoutError)

# redis-py 5.3 deprecated the command name argument of get_connection().
_GET_CONNECTION_ARGS: tuple[str, ...] = (
    ("EVALSHA",) if tuple(map(int, redis.__version__.split(".")[:2])) < (5, 3) else ()
)


class SyncRedis:
    """One Redis (or cache_alias connection) for sync code."""

    client: Any  # a redis.Redis here, a redis.cluster.RedisCluster below

    def __init__(self, client: redis.Redis, options: RedisOptions) -> None:
        self.client = client
        self.options = options
        self._pool = client.connection_pool
        # A cache_alias shares django-redis's pool. Our own connections wait
        # in a plain list instead: pool.get_connection() polls the socket and
        # takes locks, which cost half a loopback round trip.
        self._shared_pool = options.topology == "cache_alias"
        self._idle: list[Any] = []
        self._pid = os.getpid()
        # One immediate retry on a dropped connection; a timeout is retried
        # only when asked, as it may mean the server is just slow. The retry
        # is also what follows a Sentinel failover: the failed connection
        # reconnects to the master the sentinels name now.
        self._retry_on: tuple[type[Exception], ...] = (
            UNAVAILABLE_ERRORS if options.retry_on_timeout else (ConnectionError,)
        )

    def execute(self, *args: Any) -> Any:
        if self.options.wait_replicas and args[0] in WRITE_COMMANDS:
            return self._write_and_wait(args, args[1])
        return self._call(args)

    def run_script(
        self, script: LuaScript, keys: str | Sequence[str], *args: Any
    ) -> Any:
        """Run ``script`` on ``keys`` (one key, or several in one hash slot)."""
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        try:
            return self._run_script("EVALSHA", script.sha, keys, args)
        except NoScriptError:
            return self._run_script("EVAL", script.source, keys, args)

    def _run_script(
        self, command: str, body: str, keys: tuple[str, ...], args: tuple[Any, ...]
    ) -> Any:
        call = (command, body, len(keys), *keys, *args)
        if self.options.wait_replicas:
            return self._write_and_wait(call, keys[0])
        return self._call(call)

    def _call(self, call: tuple[Any, ...]) -> Any:
        return self._pipeline((call,))[0]

    def _write_and_wait(self, call: tuple[Any, ...], key: str) -> Any:
        """``call``, then ``WAIT`` for the replicas, in one round trip."""
        result, acknowledged = self._pipeline((call, wait_command(self.options)))
        check_replicas(acknowledged, self.options)
        return result

    def _pipeline(self, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
        try:
            return self._pipeline_once(commands)
        except self._retry_on:
            return self._pipeline_once(commands)

    def _pipeline_once(self, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
        if self._shared_pool:
            pool = self._pool
            connection: Any = pool.get_connection(*_GET_CONNECTION_ARGS)
            try:
                return _send(connection, commands)
            finally:
                pool.release(connection)
        if self._pid != os.getpid():
            # A forked child: the parent's sockets are not ours to use.
            self._idle = []
            self._pid = os.getpid()
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._pool.make_connection()
        try:
            return _send(connection, commands)
        finally:
            self._idle.append(connection)

    def close(self) -> None:
        if not self._shared_pool:  # that pool is django-redis's
            for connection in self._idle:
                connection.disconnect()
            self._pool.disconnect()


class SyncRedisCluster(SyncRedis):
    """A Redis Cluster through redis-py's cluster client, which routes each
    command (a script by its keys) to the node that holds its slot."""

    def __init__(self, client: Any, options: RedisOptions) -> None:
        self.client = client
        self.options = options

    def _call(self, call: tuple[Any, ...]) -> Any:
        return self.client.execute_command(*call)

    def _write_and_wait(self, call: tuple[Any, ...], key: str) -> Any:
        # WAIT names no key: it goes to the node that holds ``key``, in a
        # second round trip (the cluster client pipelines by key only).
        result = self.client.execute_command(*call)
        node = self.client.get_node_from_key(key)
        acknowledged = self.client.execute_command(
            *wait_command(self.options), target_nodes=node
        )
        check_replicas(acknowledged, self.options)
        return result

    def close(self) -> None:
        self.client.close()


def _send(connection: Any, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
    """Send ``commands`` at once, then read every reply: one round trip."""
    if connection._sock is None:
        # Connect through connect(), as redis-py's pool does: a Sentinel-
        # managed connection asks the sentinels for the master there, where
        # send_packed_command() would reconnect to the last address it had.
        connection.connect()
    connection.send_packed_command([pack(args) for args in commands], False)
    try:
        if connection.protocol == 2:
            replies = read_replies(
                connection._sock, len(commands), connection._parser.parse_error
            )
        else:
            replies = [_read_reply(connection) for _ in commands]
    except BaseException:
        # Never leave a half-read reply on the connection (a Sentinel-managed
        # one would not drop itself on a socket error unless told).
        connection.disconnect()
        raise
    # An error reply ends its command only: every reply is read all the same,
    # or the next command would get them.
    for reply in replies:
        if isinstance(reply, ReadOnlyError) and _talks_to_master(connection):
            # As redis-py's Sentinel-managed connections do: the master this
            # connection knew is a replica now; the retry asks the sentinels.
            connection.disconnect()
            raise ConnectionError("The previous master is now a replica")
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _read_reply(connection: Any) -> Any:
    """One reply, read by redis-py (RESP3), an error reply returned."""
    try:
        return connection.read_response(disconnect_on_error=True)
    except ResponseError as exc:
        return exc


def _talks_to_master(connection: Any) -> bool:
    pool = getattr(connection, "connection_pool", None)
    return bool(getattr(pool, "is_master", False))


def wait_command(options: RedisOptions) -> tuple[Any, ...]:
    return ("WAIT", options.wait_replicas, options.wait_timeout_ms)


def check_replicas(acknowledged: Any, options: RedisOptions) -> None:
    """Warn when fewer replicas than ``wait_replicas`` confirmed a write."""
    if int(acknowledged) < options.wait_replicas:
        logger.warning(
            "Session written, but only %s of %s replicas confirmed it within "
            "%s ms: a failover now could lose it.",
            acknowledged,
            options.wait_replicas,
            options.wait_timeout_ms,
        )


class AsyncRedis:
    """One ``redis.asyncio`` client, bound to the event loop that made it."""

    def __init__(self, client: Any, options: RedisOptions) -> None:
        self.client = client
        self.options = options
        self._retry_on: tuple[type[Exception], ...] = (
            UNAVAILABLE_ERRORS if options.retry_on_timeout else (ConnectionError,)
        )

    async def execute(self, *args: Any) -> Any:
        if self.options.wait_replicas and args[0] in WRITE_COMMANDS:
            return await self._write_and_wait(args, args[1])
        return await self._call(args)

    async def run_script(
        self, script: LuaScript, keys: str | Sequence[str], *args: Any
    ) -> Any:
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        try:
            return await self._run_script("EVALSHA", script.sha, keys, args)
        except NoScriptError:
            return await self._run_script("EVAL", script.source, keys, args)

    async def _run_script(
        self, command: str, body: str, keys: tuple[str, ...], args: tuple[Any, ...]
    ) -> Any:
        call = (command, body, len(keys), *keys, *args)
        if self.options.wait_replicas:
            return await self._write_and_wait(call, keys[0])
        return await self._call(call)

    async def _call(self, call: tuple[Any, ...]) -> Any:
        return await self._retried(self.client.execute_command, *call)

    async def _retried(self, send: Any, *args: Any) -> Any:
        # One immediate retry, as SyncRedis does, made here rather than by
        # redis-py: its retry reconnects a connection to the address it had,
        # ours takes one from the pool, which asks the sentinels for the
        # master when the connection is Sentinel-managed.
        try:
            return await send(*args)
        except self._retry_on:
            return await send(*args)

    async def _write_and_wait(self, call: tuple[Any, ...], key: str) -> Any:
        result, acknowledged = await self._retried(self._pipelined_wait, call)
        check_replicas(acknowledged, self.options)
        return result

    async def _pipelined_wait(self, call: tuple[Any, ...]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command(*call)
        pipe.execute_command(*wait_command(self.options))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies


class AsyncRedisCluster(AsyncRedis):
    """The cluster client retries by itself, refreshing its map of slots."""

    async def _call(self, call: tuple[Any, ...]) -> Any:
        return await self.client.execute_command(*call)

    async def _write_and_wait(self, call: tuple[Any, ...], key: str) -> Any:
        client = self.client
        result = await client.execute_command(*call)
        acknowledged = await client.execute_command(
            *wait_command(self.options), target_nodes=client.get_node_from_key(key)
        )
        check_replicas(acknowledged, self.options)
        return result


_lock = threading.Lock()
_options: RedisOptions | None = None
_sync: SyncRedis | None = None
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRedis] = (
    weakref.WeakKeyDictionary()
)


def current_options() -> RedisOptions:
    """The parsed ``SESSION_REDIS``; ``ImproperlyConfigured`` if it cannot work."""
    global _options
    options = _options
    if options is None:
        options = _options = _redis_options.parse(
            app_settings.SESSION_REDIS, settings.CACHES
        )
    return options


def sync_redis() -> SyncRedis:
    global _sync
    handle = _sync
    if handle is None:
        with _lock:
            handle = _sync
            if handle is None:
                options = current_options()
                if options.topology == "cluster":
                    handle = SyncRedisCluster(_make_sync_cluster(options), options)
                else:
                    handle = SyncRedis(_make_sync_client(options), options)
                _sync = handle
    return handle


def async_redis() -> AsyncRedis:
    loop = asyncio.get_running_loop()
    handle = _async.get(loop)
    if handle is None:
        options = current_options()
        if options.topology == "cluster":
            handle = AsyncRedisCluster(_make_async_cluster(options), options)
        else:
            handle = AsyncRedis(_make_async_client(options), options)
        _async[loop] = handle
    return handle


def reset() -> None:
    """Forget every connection, closing this engine's own sync pool."""
    global _options, _sync
    with _lock:
        if _sync is not None:
            _sync.close()
        _options = None
        _sync = None
        _async.clear()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SESSION_REDIS", "CACHES"):
        reset()


setting_changed.connect(_on_setting_changed, dispatch_uid=__name__)


def _connection_kwargs(options: RedisOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
    }
    for name in ("db", "username", "password"):
        value = getattr(options, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


def _client_kwargs(options: RedisOptions) -> dict[str, Any]:
    """The connection settings of the engine's own (non-cluster) clients.

    RESP2 unless the URL asks otherwise (``?protocol=3`` wins): its flat
    replies are cheaper to parse than RESP3's maps, and the engine needs
    nothing that only RESP3 has. redis-py 8 made RESP3 its default.
    """
    kwargs = _connection_kwargs(options)
    kwargs["protocol"] = 2
    return kwargs


def _make_sync_client(options: RedisOptions) -> redis.Redis:
    if options.topology == "cache_alias":
        assert options.cache_alias is not None
        from django_redis import get_redis_connection

        client: redis.Redis = get_redis_connection(options.cache_alias)
        return client
    from redis.sentinel import Sentinel

    # SyncRedis retries a command; a connection attempt is made once.
    built: redis.Redis = _make_client(
        options, redis.Redis, Sentinel, Retry(NoBackoff(), 0)
    )
    return built


def _make_async_client(options: RedisOptions) -> redis.asyncio.Redis:
    if options.topology == "cache_alias":
        return _async_client_like(sync_redis().client, options)
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel

    built: redis.asyncio.Redis = _make_client(
        options, redis.asyncio.Redis, AsyncSentinel, _async_retry()
    )
    return built


def _make_client(
    options: RedisOptions, client_class: Any, sentinel_class: Any, retry: Any
) -> Any:
    """A client of ``client_class``, ``redis.Redis`` or ``redis.asyncio.Redis``
    (whose constructors and ``from_url`` take the same arguments), for the
    engine's own topologies: sentinel, url, Unix socket, host and port."""
    kwargs = _client_kwargs(options)
    kwargs["retry"] = retry
    if options.topology == "sentinel":
        sentinel = sentinel_class(
            list(options.sentinel_list),
            socket_timeout=options.socket_timeout,
            socket_connect_timeout=options.socket_connect_timeout,
        )
        assert options.sentinel_master_alias is not None
        return sentinel.master_for(options.sentinel_master_alias, **kwargs)
    if options.topology == "url":
        assert options.url is not None
        return client_class.from_url(options.url, **kwargs)
    if options.topology == "unix_domain_socket_path":
        return client_class(unix_socket_path=options.unix_domain_socket_path, **kwargs)
    return client_class(host=options.host, port=options.port, **kwargs)


def _cluster_kwargs(options: RedisOptions) -> dict[str, Any]:
    kwargs = _connection_kwargs(options)
    kwargs.pop("db", None)  # a cluster has database 0 only
    # One immediate retry (after refreshing the map of slots), as elsewhere;
    # redis-py's default of 10 with a growing backoff would hold a request for
    # seconds while a node is down.
    kwargs["retry"] = Retry(NoBackoff(), 1)
    if options.startup_nodes:
        kwargs["startup_nodes"] = list(options.startup_nodes)
    elif options.url is None:
        kwargs.update(host=options.host, port=options.port)
    return kwargs


def _make_sync_cluster(options: RedisOptions) -> Any:
    from redis.cluster import ClusterNode, RedisCluster

    kwargs = _cluster_kwargs(options)
    if "startup_nodes" in kwargs:
        kwargs["startup_nodes"] = [
            ClusterNode(*node)  # type: ignore[no-untyped-call]
            for node in options.startup_nodes
        ]
    if options.url is not None:
        return RedisCluster.from_url(options.url, **kwargs)
    return RedisCluster(**kwargs)


def _make_async_cluster(options: RedisOptions) -> Any:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    kwargs = _cluster_kwargs(options)
    kwargs["retry"] = redis.asyncio.retry.Retry(NoBackoff(), 1)
    if "startup_nodes" in kwargs:
        kwargs["startup_nodes"] = [ClusterNode(*node) for node in options.startup_nodes]
    if options.url is not None:
        return RedisCluster.from_url(options.url, **kwargs)
    return RedisCluster(**kwargs)


# The connection settings that mean the same to redis.asyncio's connections.
_PORTABLE_KWARGS = (
    "host",
    "port",
    "path",
    "db",
    "username",
    "password",
    "credential_provider",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "client_name",
    "health_check_interval",
    "protocol",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
)


def _async_retry() -> redis.asyncio.retry.Retry:
    """No retry by redis-py: AsyncRedis retries a command itself."""
    return redis.asyncio.retry.Retry(NoBackoff(), 0)


def _async_client_like(
    client: redis.Redis, options: RedisOptions
) -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client to the server a django-redis client talks to."""
    import redis.asyncio.connection as async_connection
    import redis.connection as sync_connection

    pool = client.connection_pool
    classes: dict[type[Any], type[Any]] = {
        sync_connection.Connection: async_connection.Connection,
        sync_connection.SSLConnection: async_connection.SSLConnection,
        sync_connection.UnixDomainSocketConnection: (
            async_connection.UnixDomainSocketConnection
        ),
    }
    connection_class = classes.get(pool.connection_class)
    if connection_class is None:
        raise ImproperlyConfigured(
            "SESSION_REDIS['cache_alias'] names a cache whose connections are "
            f"{pool.connection_class.__name__}, which the async session methods "
            "cannot mirror. Give SESSION_REDIS a url instead."
        )
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name in _PORTABLE_KWARGS
    }
    kwargs["retry"] = _async_retry()
    return redis.asyncio.Redis(
        connection_pool=redis.asyncio.ConnectionPool(
            connection_class=connection_class, **kwargs
        )
    )
