"""The test harness's Redis is a real server."""

from __future__ import annotations

import pytest
import redis

from tests.redis_server import ClusterSetup, RedisServer, SentinelSetup

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


def test_sentinel_setup_fails_over_to_the_replica() -> None:
    from redis.sentinel import Sentinel

    with SentinelSetup() as setup:
        sentinel = Sentinel(setup.sentinel_list, socket_timeout=1)
        primary = sentinel.master_for(setup.master_name, socket_timeout=1)
        primary.set("written-before", "1")
        primary.wait(1, 2000)
        setup.kill_primary_and_wait_for_failover()
        assert setup.master_port() == setup.replica.port
        # A client asked after the failover (the old one's pooled connection
        # to the dead primary is redis-py's to recover, which 8.0.1 with
        # hiredis does not: the engine's own recovery is tested elsewhere).
        promoted = sentinel.master_for(setup.master_name, socket_timeout=1)
        assert promoted.get("written-before") == b"1"
        assert promoted.connection_pool.get_master_address() == (
            "127.0.0.1",
            setup.replica.port,
        )


def test_cluster_setup_spreads_slots_over_three_primaries() -> None:
    from redis.cluster import RedisCluster

    with ClusterSetup() as setup:
        cluster = RedisCluster(host="127.0.0.1", port=setup.nodes[0].port)
        try:
            keys = [f"key-{i}" for i in range(30)]
            for key in keys:
                cluster.set(key, key)
            assert [cluster.get(key) for key in keys] == [k.encode() for k in keys]
            owners = {cluster.get_node_from_key(key).port for key in keys}
            assert owners == {node.port for node in setup.nodes}
        finally:
            cluster.close()
