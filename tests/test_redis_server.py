"""The test harness's Redis is a real server."""

from __future__ import annotations

import pytest
import redis

from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_shared_server_answers_real_commands(redis_client: redis.Redis) -> None:
    redis_client.set("harness:probe", "1", ex=30)
    assert redis_client.get("harness:probe") == b"1"
    assert 0 < redis_client.ttl("harness:probe") <= 30
    info = redis_client.info("server")
    assert "redis_version" in info or "valkey_version" in info


def test_private_server_stops_and_restarts(
    private_redis_server: RedisServer,
) -> None:
    client = private_redis_server.client(socket_timeout=1, socket_connect_timeout=1)
    client.set("k", "v")
    private_redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    private_redis_server.start()
    # Nothing is persisted: a restarted throwaway server starts empty.
    assert client.ping()
    assert client.get("k") is None
