"""After a Redis restart the first request succeeds, whatever went stale."""

from __future__ import annotations

import threading

import pytest
import redis
from django.test import override_settings

from django_prologue_sessions.backends.redis import SessionStore
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

NAME = "reconnect-test"


def engine_connections(client: redis.Redis) -> int:
    return sum(1 for c in client.client_list() if c["name"] == NAME)


def test_first_request_after_a_restart_succeeds(
    private_redis_server: RedisServer,
) -> None:
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": private_redis_server.url, "client_name": NAME},
    ):
        session = SessionStore()
        session["user"] = "alice"
        session.save()
        key = session.session_key
        # Six loads at once while Redis holds every client: six connections
        # open, and then wait idle in the pool.
        probe = private_redis_server.client()
        probe.client_pause(300)
        barrier = threading.Barrier(6)

        def load() -> None:
            barrier.wait()
            assert SessionStore(key).load()["user"] == "alice"

        threads = [threading.Thread(target=load) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert engine_connections(probe) >= 6

        private_redis_server.restart()  # the data is gone, the sockets are stale

        fresh = SessionStore()
        fresh["user"] = "bob"
        fresh.save()
        assert SessionStore(fresh.session_key).load() == {"user": "bob"}
        assert SessionStore(key).load() == {}
