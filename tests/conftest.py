from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.redis_server import (
    NoRedisServer,
    RedisServer,
    find_server_binary,
    server_url_from_environment,
    server_version,
)


def pytest_report_header() -> list[str]:
    """The Redis server and client the run uses, as CI runs several."""
    try:
        import hiredis

        reader = f"hiredis {hiredis.__version__}"
    except ImportError:
        reader = "no hiredis"
    lines = [f"redis-py {redis.__version__}, {reader}"]
    url = server_url_from_environment()
    if url:
        lines.append(f"Redis: $REDIS_URL {url}")
    else:
        try:
            binary = find_server_binary()
        except NoRedisServer:
            binary = ""
        if binary:
            lines.append(f"Redis: {server_version(binary)} ({binary})")
    return lines


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a real Redis server for the whole run.

    ``$REDIS_URL`` when set, otherwise a private server started here and
    stopped at the end. Never skips: without a server the test errors with
    instructions.
    """
    url = server_url_from_environment()
    if url:
        yield url
        return
    try:
        server = RedisServer().start()
    except NoRedisServer as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the shared test server, its database flushed before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def private_redis_server() -> Iterator[RedisServer]:
    """A server of this test's own, which the test may stop and restart."""
    try:
        server = RedisServer().start()
    except NoRedisServer as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.cleanup()
