"""No lost updates: concurrent requests on one session keep each other's changes.

Eight threads and a second process each set keys of their own on one session,
through Django's test client and real SessionMiddleware, against the real
server. With this engine every key is there at the end. The same run against
Django's cache engine (on Django's RedisCache, same server) counts what it
loses: that figure is a documented comparison, not an assertion.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from django_prologue_sessions.backends.redis import SessionStore
from django_prologue_sessions.backends.redis.connection import Call
from tests.test_redis_topologies import (
    cluster_settings,
    cluster_setup,  # noqa: F401 (a fixture)
    sentinel_settings,
    sentinel_setup,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"
THREADS = 8
REQUESTS_PER_THREAD = 20
REQUESTS_BY_THE_PROCESS = 20
EXPECTED_KEYS = THREADS * REQUESTS_PER_THREAD + REQUESTS_BY_THE_PROCESS

# The second process: a fresh Django that sets keys p-0, p-1, ... on the
# session whose cookie it is given, starting when told to on stdin.
SECOND_PROCESS = """
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from django.conf import settings
from django.test import Client, override_settings
overrides, cookie, count = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with override_settings(**overrides):
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    client.get("/session/untouched/")  # everything imported and warm
    print("ready", flush=True)
    sys.stdin.readline()
    for j in range(count):
        response = client.get("/session/set/", {f"p-{j}": str(j)})
        assert response.status_code == 200, response.status_code
"""


def redis_engine(url: str) -> dict[str, Any]:
    return {"SESSION_ENGINE": ENGINE, "SESSION_REDIS": {"url": url}}


def django_cache_engine(url: str) -> dict[str, Any]:
    return {
        "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
            }
        },
    }


def concurrent_updates(overrides: dict[str, Any]) -> dict[str, Any]:
    """Run the workload on one session; return the session as it ends up."""
    with override_settings(**overrides):
        first = Client()
        assert first.get("/session/set/", {"start": "1"}).status_code == 200
        cookie = first.cookies[settings.SESSION_COOKIE_NAME].value
        second = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SECOND_PROCESS,
                json.dumps(overrides),
                cookie,
                str(REQUESTS_BY_THE_PROCESS),
            ],
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert second.stdout is not None
            assert second.stdin is not None
            assert second.stdout.readline().strip() == "ready"
            start = threading.Barrier(THREADS + 1)
            failures: list[BaseException] = []

            def worker(number: int) -> None:
                client = Client()
                client.cookies[settings.SESSION_COOKIE_NAME] = cookie
                start.wait()
                try:
                    for j in range(REQUESTS_PER_THREAD):
                        response = client.get("/session/set/", {f"t{number}-{j}": j})
                        assert response.status_code == 200
                except BaseException as exc:
                    failures.append(exc)

            threads = [
                threading.Thread(target=worker, args=(n,)) for n in range(THREADS)
            ]
            for thread in threads:
                thread.start()
            second.stdin.write("go\n")
            second.stdin.flush()
            start.wait()
            for thread in threads:
                thread.join()
            assert second.wait(120) == 0
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        assert failures == []
        stored: dict[str, Any] = first.get("/session/get/").json()
        return stored


def expected_session() -> dict[str, str]:
    expected = {"start": "1"}
    for number in range(THREADS):
        for j in range(REQUESTS_PER_THREAD):
            expected[f"t{number}-{j}"] = str(j)
    for j in range(REQUESTS_BY_THE_PROCESS):
        expected[f"p-{j}"] = str(j)
    return expected


@pytest.mark.parametrize(
    "topology", ["server", "server, Lua in the threads", "sentinel", "cluster"]
)
def test_no_update_is_lost(
    topology: str,
    redis_client: redis.Redis,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second process saves with SET ... IFEQ where the server has it;
    in the second run the threads save with the UPDATE script meanwhile."""
    if topology.startswith("server"):
        if topology != "server":
            monkeypatch.setattr(Call, "has_ifeq", False)
        options: dict[str, Any] = {"url": request.getfixturevalue("redis_url")}
    elif topology == "sentinel":
        options = sentinel_settings(request.getfixturevalue("sentinel_setup"))
    else:
        options = cluster_settings(request.getfixturevalue("cluster_setup"))
    stored = concurrent_updates({"SESSION_ENGINE": ENGINE, "SESSION_REDIS": options})
    assert stored == expected_session()
    assert len(stored) == EXPECTED_KEYS + 1


def test_djangos_cache_engine_for_comparison(
    redis_client: redis.Redis,
    redis_url: str,
    record_property: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same run against Django's cache engine: it saves the whole session,
    so the last request to save drops the keys others added meanwhile. How
    many is up to the scheduler; the figure is recorded, not asserted."""
    stored = concurrent_updates(django_cache_engine(redis_url))
    expected = expected_session()
    assert set(stored) <= set(expected)
    lost = len(expected) - len(stored)
    record_property("django_cache_engine_lost_updates", lost)
    # A figure, not a failure: shown with --log-cli-level=INFO, not in a green run.
    logging.getLogger(__name__).info(
        "Django's cache engine: %d of %d keys lost", lost, len(expected)
    )


# flush() and logout keep their meaning -----------------------------------------


def flush_meanwhile(request: HttpRequest) -> HttpResponse:
    """Change the session, then let another request flush it before this one
    saves (the middleware saves after the view returns)."""
    request.session["late"] = "write"
    other = Client()
    cookie = request.COOKIES[settings.SESSION_COOKIE_NAME]
    other.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert other.get("/session/flush/").status_code == 200
    return HttpResponse("saved?")


urlpatterns = [
    path("merge/flush-meanwhile/", flush_meanwhile),
    path("", include("tests.urls")),
]


@override_settings(ROOT_URLCONF=__name__)
def test_a_flushed_session_stays_gone(
    redis_client: redis.Redis, redis_url: str
) -> None:
    with override_settings(**redis_engine(redis_url)):
        client = Client()
        client.get("/session/set/", {"user": "ann"})
        key = client.cookies[settings.SESSION_COOKIE_NAME].value
        response = client.get("/merge/flush-meanwhile/")
        # Django's middleware turns the UpdateError into SessionInterrupted.
        assert response.status_code == 400
        assert not redis_client.exists(SessionStore.redis_key(key))
        assert client.get("/session/get/").json() == {}
        assert redis_client.keys("*") == []


def test_a_flush_racing_many_saves_is_never_undone(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """Threads keep saving while the session is flushed: every save after
    the flush fails or starts a new session, none brings the old one back."""
    with override_settings(**redis_engine(redis_url)):
        first = Client()
        first.get("/session/set/", {"user": "ann"})
        cookie = first.cookies[settings.SESSION_COOKIE_NAME].value
        start = threading.Barrier(THREADS + 1)
        statuses: list[int] = []

        def worker(number: int) -> None:
            client = Client()
            client.cookies[settings.SESSION_COOKIE_NAME] = cookie
            start.wait()
            for j in range(REQUESTS_PER_THREAD):
                response = client.get("/session/set/", {f"t{number}": j})
                statuses.append(response.status_code)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        start.wait()
        assert first.get("/session/flush/").status_code == 200
        for thread in threads:
            thread.join()
        assert not redis_client.exists(SessionStore.redis_key(cookie))
        assert set(statuses) <= {200, 400}
        again = Client()
        again.cookies[settings.SESSION_COOKIE_NAME] = cookie
        assert again.get("/session/get/").json() == {}
