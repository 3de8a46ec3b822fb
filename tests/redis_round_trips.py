"""Count the round trips Redis serves, as a user could: from the server's side.

``INFO stats`` counts ``total_reads_processed``, one for each time the server
read a client's socket: one per round trip, a pipeline's commands arriving
together. The count is taken from the server the engine is configured for
(the master, through Sentinel; every node of a Cluster), less the reads of
the probe's own ``INFO``. Nothing else may talk to that server meanwhile, and
the engine's connections must be open already (a new connection's handshake
is a round trip of its own).

Others do talk to a replicated master: each ``WAIT`` makes the replica send
``REPLCONF ACK``, and sentinels ``PING``, ``INFO`` and ``PUBLISH`` on their
own schedule. The engine sends none of those commands, so each call of one
(``INFO commandstats``) is a read that is not the engine's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import redis
import redis.sentinel

from django_prologue_sessions.backends.redis.connection import current_options


class RoundTrips:
    """The number of round trips counted; compares equal to that int."""

    def __init__(self) -> None:
        self.count = 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RoundTrips):
            return self.count == other.count
        return self.count == other

    def __hash__(self) -> int:
        return hash(self.count)

    def __repr__(self) -> str:
        return f"{self.count} round trips"


# Commands the engine never sends while counted (the probe's INFO included).
OTHERS = ("replconf", "ping", "publish", "info", "subscribe")


def reads(client: redis.Redis) -> int:
    """The server's socket reads, less those of the commands in ``OTHERS``."""
    info = client.execute_command("INFO", "stats", "commandstats")
    others = sum(info.get(f"cmdstat_{name}", {"calls": 0})["calls"] for name in OTHERS)
    return int(info["total_reads_processed"]) - int(others)


@contextmanager
def count_round_trips() -> Iterator[RoundTrips]:
    """Yield the count of the round trips made meanwhile (filled in at the end)."""
    counted = RoundTrips()
    with ExitStack() as stack:
        clients = [stack.enter_context(client) for client in _servers()]
        before = [reads(client) for client in clients]
        yield counted
        after = [reads(client) for client in clients]
    counted.count = sum(after) - sum(before)


def open_pool() -> None:
    """Open the engine's pooled connection and let it learn whether the
    server has ``SET ... IFEQ``: a server without answers the first try with
    an error, one round trip more, once per pool."""
    from django_prologue_sessions.backends.redis.store import SessionStore

    session = SessionStore()
    for value in ("open", "learn"):
        session["pool"] = value
        session.save()
    session.delete()


async def aopen_pool() -> None:
    """``open_pool()`` for this event loop's async client."""
    from django_prologue_sessions.backends.redis.store import SessionStore

    session = SessionStore()
    for value in ("open", "learn"):
        await session.aset("pool", value)
        await session.asave()
    await session.adelete()


def has_ifeq(client: redis.Redis) -> bool:
    """Whether the server takes ``SET ... IFEQ`` (which never creates a key)."""
    try:
        client.execute_command("SET", "ifeq-probe", "", "IFEQ", "")
    except redis.ResponseError:
        return False
    return True


def fewest_round_trips(action: Callable[[], object], tries: int = 3) -> int:
    """The round trips of ``action``, run up to ``tries`` times: another
    client's read (a sentinel's connection closing, say) can only add to a
    count, so the fewest seen is the action's own."""
    counts = []
    for _ in range(tries):
        with count_round_trips() as counted:
            action()
        counts.append(counted.count)
    return min(counts)


async def afewest_round_trips(
    action: Callable[[], Awaitable[object]], tries: int = 3
) -> int:
    """``fewest_round_trips()`` of an async action."""
    counts = []
    for _ in range(tries):
        with count_round_trips() as counted:
            await action()
        counts.append(counted.count)
    return min(counts)


def _servers() -> list[redis.Redis]:
    """Plain clients to each server that the engine's settings point at."""
    options = current_options()
    kwargs: dict[str, Any] = {"password": options.password}
    if options.topology == "sentinel":
        sentinel = redis.sentinel.Sentinel(list(options.sentinel_list))
        assert options.sentinel_master_alias is not None
        host, port = sentinel.discover_master(options.sentinel_master_alias)
        return [redis.Redis(host=host, port=port, **kwargs)]
    if options.topology == "cluster":
        from redis.cluster import RedisCluster

        if options.url is not None:
            cluster = RedisCluster.from_url(options.url)
        else:
            host, port = (options.startup_nodes or ((options.host, options.port),))[0]
            cluster = RedisCluster(host=host, port=port)
        with cluster:
            nodes = cluster.get_primaries()
            return [redis.Redis(host=node.host, port=node.port) for node in nodes]
    if options.topology == "cache_alias":
        from django_redis import get_redis_connection

        pool = get_redis_connection(options.cache_alias).connection_pool
        given = pool.connection_kwargs
        return [redis.Redis(host=given["host"], port=given["port"], db=given["db"])]
    if options.topology == "url":
        assert options.url is not None
        return [redis.Redis.from_url(options.url)]
    if options.topology == "unix_domain_socket_path":
        return [redis.Redis(unix_socket_path=options.unix_domain_socket_path)]
    return [redis.Redis(host=options.host, port=options.port, **kwargs)]
