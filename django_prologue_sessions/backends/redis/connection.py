"""The Redis engine's connections: redis-py clients, made lazily, once per process.

``sync_redis()`` is the process's handle for the current ``SESSION_REDIS``;
``async_redis()`` is one ``redis.asyncio`` handle per event loop, as asyncio
connections belong to the loop that opened them. Both are dropped when
``SESSION_REDIS`` or ``CACHES`` change (``override_settings`` in tests).

Everything goes through redis-py's public API, the same way for sync and
async: ``execute_command()`` for one command (with the keyword options
redis-py's own methods give it, such as ``get=True`` for ``SET ... GET``),
``pipeline(transaction=False)`` for a write and its ``WAIT``, or for reads of
one key (``execute_all()``), in one round trip, a script by ``EVALSHA`` and
by ``EVAL`` when the server answers ``NOSCRIPT``. redis-py's pools do the
rest: fork safety, ``max_connections`` (a blocking pool that waits up to
``pool_timeout``), ``health_check_interval``, Sentinel's master discovery.

A command that fails because Redis is unreachable is tried once more at once
(a dropped connection, a failover); redis-py's own retries are switched off,
as their growing back-off would hold a request for seconds. What failed is
raised as ``RedisUnavailable``, which says whether the command may have
reached Redis: a write that timed out may still be applied.

On a Redis Cluster (``"cluster": True``) redis-py's cluster clients route
each command by its keys and retry once themselves.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
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
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry

from django_prologue_sessions.backends.redis import options as redis_options
from django_prologue_sessions.backends.redis.options import RedisOptions
from django_prologue_sessions.backends.redis.scripts import LuaScript
from django_prologue_sessions.conf import app_settings

logger = logging.getLogger("django_prologue_sessions.redis")

#: What the engine treats as "Redis is unavailable".
UNAVAILABLE_ERRORS = (ConnectionError, TimeoutError)

Command = tuple[Any, ...]

#: What ``set_if_equal()`` answers when the server has no ``SET ... IFEQ``.
NO_IFEQ = object()


class RedisUnavailable(Exception):
    """Redis could not be reached; ``maybe_sent`` if the command may have reached it."""

    def __init__(self, error: Exception, maybe_sent: bool) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.maybe_sent = maybe_sent


def never_sent(error: BaseException) -> bool:
    """True if ``error`` came before any command could leave for Redis.

    A refused or unresolvable connection, or no free connection in a full
    pool (redis-py's messages for those have not changed since 4.x). A
    timeout, or a connection lost after it was made, may have come after the
    command was sent.
    """
    cause = error.__cause__ or error.__context__
    return isinstance(cause, ConnectionRefusedError | socket.gaierror) or str(
        error
    ).startswith(_POOL_EXHAUSTED)


_POOL_EXHAUSTED = ("Too many connections", "No connection available")


class Call:
    """The decisions a command needs, made once for the sync and async handles."""

    #: Whether the server takes ``SET ... IFEQ``: None until its first answer.
    has_ifeq: bool | None = None

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        # Retried once at once: a connection the server dropped, a failover.
        # A timeout only when asked, as it may mean the server is just slow.
        self.retry_on: tuple[type[Exception], ...] = (
            UNAVAILABLE_ERRORS if options.retry_on_timeout else (ConnectionError,)
        )
        # How far Redis's clock is ahead of this process's, in milliseconds:
        # learnt when Redis refuses a write as late while its reply still
        # came in time (``refused_late()``).
        self.clock_ahead_ms = 0

    def deadline_ms(self) -> int:
        """When a write sent now is too late to apply, in Redis's clock (ms):
        by then this process has given up waiting for the reply, and told its
        client that the write failed. 0 for no deadline (no socket_timeout).

        A reply needs time to come back: the deadline is a little earlier
        than the timeout (a quarter of it, at most 100 ms).
        """
        timeout = self.options.socket_timeout
        if not timeout:
            return 0
        margin = min(timeout / 4, 0.1)
        return int((time.time() + timeout - margin) * 1000) + self.clock_ahead_ms

    def checked(self, script: LuaScript, reply: Any) -> Any:
        """``reply``, having learnt from it if it refuses a write as late."""
        if isinstance(reply, list) and "not_after" in script.head:
            self.refused_late(reply[0])
        return reply

    def refused_late(self, redis_ms: int) -> None:
        """Redis refused a write as late (at ``redis_ms``, its clock) and the
        reply came in time: its clock is ahead of ours by at least the gap."""
        ahead = redis_ms - int(time.time() * 1000)
        if ahead > self.clock_ahead_ms:
            if ahead > 0:
                logger.warning(
                    "The Redis server's clock is %d ms ahead of this "
                    "machine's: re-keys allow for it. Keep the clocks in sync "
                    "(NTP).",
                    ahead,
                )
            self.clock_ahead_ms = ahead

    def conditional_set(
        self, key: Any, value: Any, expected: Any, ttl: int | None
    ) -> Command:
        """``SET`` only if the value is ``expected``, replying the value found;
        with ``ttl`` None the key keeps its TTL."""
        expiry = ("KEEPTTL",) if ttl is None else ("EX", ttl)
        return ("SET", key, value, "IFEQ", expected, "GET", *expiry)

    def lacks_ifeq(self, error: ResponseError) -> bool:
        """Whether ``error``, the answer to ``conditional_set()``, says the
        server has no ``IFEQ`` (Redis before 8.4, Valkey before 8.1 answer
        "syntax error"); remembered for this pool."""
        if "syntax error" not in str(error).lower():
            return False
        if self.has_ifeq is None:
            logger.info(
                "This Redis server has no SET ... IFEQ: sessions are saved "
                "with a Lua script."
            )
        self.has_ifeq = False
        return True

    def commands(self, command: Command, write: bool) -> list[Command]:
        """``command``, and ``WAIT`` after it if it writes and replicas must confirm."""
        if write and self.options.wait_replicas:
            return [command, wait_command(self.options)]
        return [command]

    def result(self, replies: list[Any]) -> Any:
        """The first reply; an error reply raised; the replicas' count checked."""
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        if len(replies) > 1:
            check_replicas(replies[1], self.options)
        return replies[0]

    @staticmethod
    def replies(replies: list[Any]) -> list[Any]:
        """Every reply; an error reply raised."""
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def failed(self, error: Exception, attempt: int, maybe_sent: bool) -> bool:
        """Whether a command may have reached Redis so far, if it is to be
        tried once more; otherwise ``RedisUnavailable`` is raised."""
        maybe_sent = maybe_sent or not never_sent(error)
        if attempt == 0 and isinstance(error, self.retry_on):
            return maybe_sent
        raise RedisUnavailable(error, maybe_sent) from error


def first_key(command: Command) -> Any:
    """The first key a command names: after the script and the key count for
    ``EVALSHA``/``EVAL``, else its first argument (``SET``, ``UNLINK``...)."""
    if command[0] in ("EVALSHA", "EVAL"):
        return command[3]
    return command[1]


def script_command(
    script: LuaScript, keys: Sequence[str], args: Sequence[Any], by_sha: bool
) -> Command:
    if by_sha:
        return ("EVALSHA", script.sha, len(keys), *keys, *args)
    return ("EVAL", script.source, len(keys), *keys, *args)


class SyncRedis:
    """One Redis (or ``cache_alias`` connection) for sync code."""

    def __init__(self, client: Any, options: RedisOptions) -> None:
        self.client = client
        self.options = options
        self.call = Call(options)

    def execute(self, *command: Any, write: bool = False, **options: Any) -> Any:
        """Send ``command``; ``options`` go to redis-py with it, as its own
        methods pass them (``get=True`` for ``SET ... GET``)."""
        return self._send(self.call.commands(command, write), options)

    def set_if_equal(self, key: Any, value: Any, expected: Any, ttl: int | None) -> Any:
        """The value found at ``key`` (``value`` was set if it is ``expected``,
        never if it is None), or ``NO_IFEQ`` if the server lacks ``IFEQ``."""
        command = self.call.conditional_set(key, value, expected, ttl)
        try:
            found = self.execute(*command, write=True, get=True)
        except ResponseError as error:
            if self.call.lacks_ifeq(error):
                return NO_IFEQ
            raise
        self.call.has_ifeq = True
        return found

    def execute_all(self, *commands: Command) -> list[Any]:
        """Commands that only read one key, in one round trip: their replies."""
        return self._send(list(commands), {}, every_reply=True)  # type: ignore[no-any-return]

    def run_script(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run ``script`` on ``keys`` (all in one hash slot); scripts write.

        A script that takes a deadline is given one (``Call.deadline_ms()``).
        """
        args = script.with_deadline(list(args), self.call.deadline_ms())
        try:
            command = script_command(script, keys, args, by_sha=True)
            reply = self.execute(*command, write=True)
        except NoScriptError:
            command = script_command(script, keys, args, by_sha=False)
            reply = self.execute(*command, write=True)
        return self.call.checked(script, reply)

    def _send(
        self,
        commands: list[Command],
        options: dict[str, Any],
        every_reply: bool = False,
    ) -> Any:
        finish = self.call.replies if every_reply else self.call.result
        maybe_sent = False
        for attempt in range(2):
            try:
                return finish(self._round_trip(commands, options, every_reply))
            except UNAVAILABLE_ERRORS as error:
                maybe_sent = self.call.failed(error, attempt, maybe_sent)
        raise AssertionError("unreachable")  # pragma: no cover

    def _round_trip(
        self, commands: list[Command], options: dict[str, Any], same_key: bool
    ) -> list[Any]:
        if len(commands) == 1:
            return [self.client.execute_command(*commands[0], **options)]
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command(*commands[0], **options)
        for command in commands[1:]:
            pipe.execute_command(*command)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies

    def close(self) -> None:
        if self.options.topology != "cache_alias":  # that pool is django-redis's
            self.client.close()


class SyncRedisCluster(SyncRedis):
    """A Redis Cluster through redis-py's cluster client, which routes each
    command (a script by its keys) to the node that holds its slot."""

    def _round_trip(
        self, commands: list[Command], options: dict[str, Any], same_key: bool
    ) -> list[Any]:
        if same_key and len(commands) > 1:
            return super()._round_trip(commands, options, same_key)  # one node's
        # WAIT names no key: it goes to the node of the write's first key,
        # in a second round trip (the cluster client pipelines by key only).
        replies = [self.client.execute_command(*commands[0], **options)]
        if len(commands) > 1:
            node = self.client.get_node_from_key(first_key(commands[0]))
            replies.append(self.client.execute_command(*commands[1], target_nodes=node))
        return replies

    def _send(
        self,
        commands: list[Command],
        options: dict[str, Any],
        every_reply: bool = False,
    ) -> Any:
        finish = self.call.replies if every_reply else self.call.result
        try:
            return finish(self._round_trip(commands, options, every_reply))
        except UNAVAILABLE_ERRORS as error:
            raise RedisUnavailable(error, not never_sent(error)) from error


class AsyncRedis:
    """One ``redis.asyncio`` client, bound to the event loop that made it."""

    def __init__(self, client: Any, options: RedisOptions) -> None:
        self.client = client
        self.options = options
        self.call = Call(options)

    async def execute(self, *command: Any, write: bool = False, **options: Any) -> Any:
        return await self._send(self.call.commands(command, write), options)

    async def set_if_equal(
        self, key: Any, value: Any, expected: Any, ttl: int | None
    ) -> Any:
        command = self.call.conditional_set(key, value, expected, ttl)
        try:
            found = await self.execute(*command, write=True, get=True)
        except ResponseError as error:
            if self.call.lacks_ifeq(error):
                return NO_IFEQ
            raise
        self.call.has_ifeq = True
        return found

    async def execute_all(self, *commands: Command) -> list[Any]:
        """Commands that only read one key, in one round trip: their replies."""
        return await self._send(list(commands), {}, every_reply=True)  # type: ignore[no-any-return]

    async def run_script(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        args = script.with_deadline(list(args), self.call.deadline_ms())
        try:
            command = script_command(script, keys, args, by_sha=True)
            reply = await self.execute(*command, write=True)
        except NoScriptError:
            command = script_command(script, keys, args, by_sha=False)
            reply = await self.execute(*command, write=True)
        return self.call.checked(script, reply)

    async def _send(
        self,
        commands: list[Command],
        options: dict[str, Any],
        every_reply: bool = False,
    ) -> Any:
        finish = self.call.replies if every_reply else self.call.result
        maybe_sent = False
        for attempt in range(2):
            try:
                return finish(await self._round_trip(commands, options, every_reply))
            except UNAVAILABLE_ERRORS as error:
                maybe_sent = self.call.failed(error, attempt, maybe_sent)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _round_trip(
        self, commands: list[Command], options: dict[str, Any], same_key: bool
    ) -> list[Any]:
        if len(commands) == 1:
            return [await self.client.execute_command(*commands[0], **options)]
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command(*commands[0], **options)
        for command in commands[1:]:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


class AsyncRedisCluster(AsyncRedis):
    """The cluster client retries by itself, refreshing its map of slots."""

    async def _round_trip(
        self, commands: list[Command], options: dict[str, Any], same_key: bool
    ) -> list[Any]:
        if same_key and len(commands) > 1:
            return await super()._round_trip(commands, options, same_key)
        client = self.client
        replies = [await client.execute_command(*commands[0], **options)]
        if len(commands) > 1:
            node = client.get_node_from_key(first_key(commands[0]))
            replies.append(
                await client.execute_command(*commands[1], target_nodes=node)
            )
        return replies

    async def _send(
        self,
        commands: list[Command],
        options: dict[str, Any],
        every_reply: bool = False,
    ) -> Any:
        finish = self.call.replies if every_reply else self.call.result
        try:
            return finish(await self._round_trip(commands, options, every_reply))
        except UNAVAILABLE_ERRORS as error:
            raise RedisUnavailable(error, not never_sent(error)) from error


def wait_command(options: RedisOptions) -> Command:
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
        options = _options = redis_options.parse(
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
                    handle = SyncRedisCluster(_make_cluster(options, False), options)
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
            handle = AsyncRedisCluster(_make_cluster(options, True), options)
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


def _no_retry(asynchronous: bool) -> Any:
    """redis-py retries nothing itself: the handles retry a command once."""
    if asynchronous:
        return redis.asyncio.retry.Retry(NoBackoff(), 0)
    return Retry(NoBackoff(), 0)


def _connection_kwargs(options: RedisOptions) -> dict[str, Any]:
    """The options every connection the engine makes takes, as redis-py names them.

    RESP2 unless the URL asks otherwise (``?protocol=3`` wins, as every URL
    query parameter does): the engine needs nothing that only RESP3 has, and
    redis-py 8 made RESP3 its default.
    """
    kwargs: dict[str, Any] = {"protocol": 2}
    names: tuple[str, ...] = redis_options.CONNECTION_KWARGS
    if options.tls:
        names += redis_options.TLS_KEYS
    for name in names:
        value = getattr(options, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


def _pool_kwargs(options: RedisOptions, asynchronous: bool) -> dict[str, Any]:
    kwargs = _connection_kwargs(options)
    kwargs["retry"] = _no_retry(asynchronous)
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
        kwargs["timeout"] = options.pool_timeout
    return kwargs


def _make_sync_client(options: RedisOptions) -> Any:
    if options.topology == "cache_alias":
        assert options.cache_alias is not None
        from django_redis import get_redis_connection

        return get_redis_connection(options.cache_alias)
    return _make_client(options, asynchronous=False)


def _make_async_client(options: RedisOptions) -> Any:
    if options.topology == "cache_alias":
        return _async_client_like(sync_redis().client)
    return _make_client(options, asynchronous=True)


def _make_client(options: RedisOptions, asynchronous: bool) -> Any:
    """A ``redis.Redis`` or ``redis.asyncio.Redis`` for the engine's own
    topologies: sentinel, url, Unix socket, host and port."""
    module: Any = redis.asyncio if asynchronous else redis
    kwargs = _pool_kwargs(options, asynchronous)
    if options.topology == "sentinel":
        if asynchronous:
            from redis.asyncio.sentinel import Sentinel
        else:
            from redis.sentinel import Sentinel  # type: ignore[assignment]
        # A Sentinel-managed pool has no blocking variant: over
        # max_connections a command fails at once, never sent.
        kwargs.pop("timeout", None)
        if options.ssl:
            kwargs["ssl"] = True
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(options.sentinel_list),
            sentinel_kwargs=_sentinel_kwargs(options, asynchronous),
        )
        assert options.sentinel_master_alias is not None
        return sentinel.master_for(options.sentinel_master_alias, **kwargs)
    blocking = options.max_connections is not None
    pool_class = module.BlockingConnectionPool if blocking else module.ConnectionPool
    if not blocking:
        kwargs.pop("timeout", None)
    if options.topology == "url":
        assert options.url is not None
        pool = pool_class.from_url(options.url, **kwargs)
    elif options.topology == "unix_domain_socket_path":
        connection_class = module.UnixDomainSocketConnection
        pool = pool_class(
            connection_class=connection_class,
            path=options.unix_domain_socket_path,
            **kwargs,
        )
    else:
        if options.ssl:
            kwargs["connection_class"] = module.SSLConnection
        pool = pool_class(host=options.host, port=options.port, **kwargs)
    return module.Redis(connection_pool=pool)


def _sentinel_kwargs(options: RedisOptions, asynchronous: bool) -> dict[str, Any]:
    """How the engine talks to the sentinels themselves."""
    return {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "retry": _no_retry(asynchronous),
    }


def _make_cluster(options: RedisOptions, asynchronous: bool) -> Any:
    if asynchronous:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
    else:
        from redis.cluster import (  # type: ignore[assignment]
            ClusterNode,
            RedisCluster,
        )

    kwargs = _connection_kwargs(options)
    kwargs.pop("db", None)  # a cluster has database 0 only
    # One immediate retry (after refreshing the map of slots), as elsewhere;
    # redis-py's default of several with a growing backoff would hold a
    # request for seconds while a node is down.
    retry_class: Any = redis.asyncio.retry.Retry if asynchronous else Retry
    kwargs["retry"] = retry_class(NoBackoff(), 1)
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
    if options.ssl:
        kwargs["ssl"] = True
    if options.startup_nodes:
        kwargs["startup_nodes"] = [
            ClusterNode(host, port) for host, port in options.startup_nodes
        ]
    elif options.url is None:
        kwargs.update(host=options.host, port=options.port)
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


def _async_client_like(client: Any) -> Any:
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
    kwargs["retry"] = _no_retry(asynchronous=True)
    return redis.asyncio.Redis(
        connection_pool=redis.asyncio.ConnectionPool(
            connection_class=connection_class, **kwargs
        )
    )
