"""After a Redis restart the first request succeeds, whatever went stale."""

from __future__ import annotations

import threading

import pytest
from django.test import override_settings

from django_prologue_sessions.backends import _redis_connection
from django_prologue_sessions.backends.redis import SessionStore
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_first_request_after_a_restart_succeeds(
    private_redis_server: RedisServer,
) -> None:
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": private_redis_server.url},
    ):
        session = SessionStore()
        session["user"] = "alice"
        session.create()
        session.save()
        key = session.session_key
        # Open several connections at once, so that several wait idle.
        barrier = threading.Barrier(6)

        def hold_a_connection() -> None:
            handle = _redis_connection.sync_redis()
            connection = handle._pool.make_connection()
            connection.connect()
            barrier.wait()
            handle._idle.append(connection)

        threads = [threading.Thread(target=hold_a_connection) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert SessionStore(key).load()["user"] == "alice"
        assert len(_redis_connection.sync_redis()._idle) >= 6

        private_redis_server.restart()  # the data is gone, the sockets are stale

        fresh = SessionStore()
        fresh["user"] = "bob"
        fresh.save()
        assert SessionStore(fresh.session_key).load() == {"user": "bob"}
