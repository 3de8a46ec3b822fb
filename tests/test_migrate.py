"""PROLOGUE_SESSIONS_MIGRATE_FROM: sessions move in from the previous engine.

Each source is the real engine on a real store (SQLite, the test Redis, files),
each target one of ours; every request goes through Django's test client and
real middleware (sessions, auth, messages on the session). A client signs in
and gets a flash message under the source engine; then the site switches.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.test import AsyncClient, Client, override_settings

from django_prologue_sessions import migrate
from django_prologue_sessions.backends import memory
from django_prologue_sessions.backends._session_keys import new_session_key

T = TypeVar("T")
OURS = "django_prologue_sessions.backends."
DJANGO = "django.contrib.sessions.backends."
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


@dataclass
class Source:
    engine: str
    # Settings the engine needs, given the Redis URL and a private directory.
    needs: Callable[[str, Path], dict[str, Any]] = lambda url, path: {}
    # Whether it stores sessions server-side (a cookie engine has nothing to delete).
    stores: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _cache(backend: str) -> Callable[[str, Path], dict[str, Any]]:
    def needs(url: str, path: Path) -> dict[str, Any]:
        cache = {"BACKEND": backend, "LOCATION": url, "KEY_PREFIX": "old"}
        return {"CACHES": {"default": cache}}

    return needs


SOURCES = {
    "django-db": Source(DJANGO + "db"),
    "django-cache-django-redis": Source(
        DJANGO + "cache", _cache("django_redis.cache.RedisCache")
    ),
    "django-cache-redis": Source(
        DJANGO + "cache", _cache("django.core.cache.backends.redis.RedisCache")
    ),
    "django-cached-db": Source(
        DJANGO + "cached_db", _cache("django.core.cache.backends.redis.RedisCache")
    ),
    "django-file": Source(
        DJANGO + "file", lambda url, path: {"SESSION_FILE_PATH": str(path)}
    ),
    "django-signed-cookies": Source(DJANGO + "signed_cookies", stores=False),
    "django-redis-sessions": Source("redis_sessions.session"),
    "prologue-signed-cookies": Source(OURS + "signed_cookies", stores=False),
    "prologue-redis": Source(
        OURS + "redis",
        lambda url, path: {"SESSION_REDIS": {"url": url, "prefix": "old"}},
    ),
    "prologue-memory": Source(OURS + "memory"),
}
TARGETS = ["redis", "memory", "signed_cookies"]
PAIRS = [
    (source, target)
    for source in SOURCES
    for target in TARGETS
    if SOURCES[source].engine != OURS + target
    # Our signed-cookie engine reads Django's cookies as they are.
    and not (source == "django-signed-cookies" and target == "signed_cookies")
]


class Switch:
    """A site that runs ``source``, then ``target`` with the setting."""

    def __init__(
        self, source: str, target: str, redis_url: str, client: redis.Redis, tmp: Path
    ) -> None:
        self.source = SOURCES[source]
        self.target = OURS + target
        self.redis = client
        self.tmp = tmp
        common: dict[str, Any] = {
            "MIDDLEWARE": MIDDLEWARE,
            "MESSAGE_STORAGE": "django.contrib.messages.storage.session.SessionStorage",
            "SESSION_REDIS": {"url": redis_url},
        }
        self.before = {
            **common,
            "SESSION_ENGINE": self.source.engine,
            **self.source.needs(redis_url, tmp),
        }
        self.after = {
            **self.before,
            "SESSION_ENGINE": self.target,
            "PROLOGUE_SESSIONS_MIGRATE_FROM": self.source.engine,
        }
        if "SESSION_REDIS" in self.source.needs(redis_url, tmp) and target == "redis":
            raise AssertionError("one engine at a time on SESSION_REDIS")

    @contextmanager
    def running(self, which: str) -> Iterator[None]:
        with override_settings(**(self.before if which == "source" else self.after)):
            yield

    @staticmethod
    def store(session_key: str | None = None) -> SessionBase:
        engine = import_module(settings.SESSION_ENGINE)
        result: SessionBase = engine.SessionStore(session_key)
        return result

    def previous_store(self, session_key: str) -> SessionBase:
        result: SessionBase = import_module(self.source.engine).SessionStore(
            session_key
        )
        return result

    def snapshot(self) -> tuple[Any, ...]:
        """Everything every store holds: Redis, the database, files, memory."""
        from django.contrib.sessions.models import Session

        keys = sorted(self.redis.keys("*"))
        return (
            {key: self.redis.dump(key) for key in keys},
            sorted(Session.objects.values_list("session_key", "session_data")),
            sorted(path.name for path in self.tmp.iterdir()),
            sorted(memory.SessionStore.store.items()),
        )


@pytest.fixture
def redis_sessions_settings(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    # django-redis-sessions reads its settings when imported: set them there.
    from redis_sessions import settings as redis_sessions_settings

    monkeypatch.setattr(redis_sessions_settings, "SESSION_REDIS_URL", redis_url)
    monkeypatch.setattr(redis_sessions_settings, "SESSION_REDIS_PREFIX", "old")
    monkeypatch.setattr(redis_sessions_settings, "SESSION_REDIS_SOCKET_TIMEOUT", 5)


@pytest.fixture
def switch(
    request: pytest.FixtureRequest,
    redis_client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    redis_sessions_settings: None,
) -> Iterator[Switch]:
    source, target = request.param
    memory.SessionStore.clear_all()
    forget_file_storage_path(request.getfixturevalue("monkeypatch"))
    get_user_model().objects.create_user("ada")
    yield Switch(source, target, redis_url, redis_client, tmp_path)
    memory.SessionStore.clear_all()


def forget_file_storage_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Django's file engine keeps the first SESSION_FILE_PATH it read on its
    class: make it read this test's."""
    from django.contrib.sessions.backends.file import SessionStore as FileStore

    monkeypatch.delattr(FileStore, "_storage_path", raising=False)


def signed_in_with_a_message(switch: Switch, device: str = "laptop") -> Client:
    """A client signed in under the source engine, a flash message pending.

    Two signed cookies of the same data signed in the same second are the
    same cookie: ``device`` tells the sessions apart."""
    client = Client()
    with switch.running("source"):
        assert client.post("/account/login/", {"username": "ada"}).status_code == 200
        client.get("/session/set/", {"device": device})
        client.post("/flash/add/", {"level": "info", "message": "Welcome back"})
        session = client.get("/session/get/").json()
        assert "_auth_user_id" in session
        assert "Welcome back" in session["_messages"]
    return client


def cookie(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def with_cookie(value: str) -> Client:
    """A client of the site as it now runs (a client's handler keeps the
    middleware, and so the engine, it first loaded), holding ``value``."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = value
    return client


@pytest.mark.django_db
@pytest.mark.redis
@pytest.mark.parametrize("switch", PAIRS, indirect=True, ids="-to-".join)
def test_a_signed_in_client_stays_signed_in_and_sees_its_message_once(
    switch: Switch,
) -> None:
    client = signed_in_with_a_message(switch)
    old = cookie(client)
    with switch.running("source"):
        if switch.source.stores:
            assert switch.previous_store(old).exists(old)

    with switch.running("target"):
        client = with_cookie(old)
        first = client.get("/account/whoami/")
        assert first.json() == {"user": "ada", "messages": ["Welcome back"]}
        new = first.cookies[settings.SESSION_COOKIE_NAME].value
        assert new
        assert new != old
        # The cookie is ours: our engine reads it, as itself.
        ours = switch.store(new)
        assert ours.load()["_auth_user_id"] == str(get_user_model().objects.get().pk)
        assert ours.session_key == new
        # The previous store no longer holds it.
        if switch.source.stores:
            assert not switch.previous_store(old).exists(old)
        assert client.get("/account/whoami/").json() == {"user": "ada", "messages": []}
        # The old cookie, sent again, finds the same session of ours (not a
        # second one) while the move's claim lasts, never the old store's.
        if switch.source.stores:
            response = with_cookie(old).get("/account/whoami/")
            assert response.json()["user"] == (
                None if switch.target.endswith("signed_cookies") else "ada"
            )


@pytest.mark.django_db
@pytest.mark.redis
@pytest.mark.parametrize("switch", PAIRS, indirect=True, ids="-to-".join)
def test_a_forged_or_unknown_cookie_gets_a_new_empty_session_and_writes_nothing(
    switch: Switch,
) -> None:
    client = signed_in_with_a_message(switch)
    real = cookie(client)
    tampered = real[:-3] + ("aaa" if real[-3:] != "aaa" else "bbb")
    with switch.running("target"):
        for forged in (new_session_key(), tampered, "x" * 40, "!" * 9):
            before = switch.snapshot()
            response = with_cookie(forged).get("/account/whoami/")
            assert response.json() == {"user": None, "messages": []}, forged
            sent = response.cookies.get(settings.SESSION_COOKIE_NAME)
            assert sent is None or sent.value == ""  # no session, or deleted
            assert switch.snapshot() == before


# Async: aload() -----------------------------------------------------------

ASYNC_PAIRS = [
    ("django-db", "redis"),
    ("django-db", "memory"),
    ("django-db", "signed_cookies"),
    ("django-cache-django-redis", "redis"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
@pytest.mark.parametrize("switch", ASYNC_PAIRS, indirect=True, ids="-to-".join)
def test_async_views_move_sessions_through_aload(switch: Switch) -> None:
    client = signed_in_with_a_message(switch)
    old = cookie(client)
    with switch.running("target"):
        async_client = AsyncClient()
        async_client.cookies[settings.SESSION_COOKIE_NAME] = old
        first = async_to_sync(async_client.get)("/account/awhoami/")
        assert first.json()["user"] == "ada"
        assert "Welcome back" in first.json()["messages"]
        new = first.cookies[settings.SESSION_COOKIE_NAME].value
        assert new != old
        assert not switch.previous_store(old).exists(old)
        second = async_to_sync(async_client.get)("/account/awhoami/")
        assert second.json() == {"user": "ada", "messages": None}


# Two requests, one old cookie ---------------------------------------------

# Not the db engine: SQLite's shared in-memory test database locks its table
# against concurrent writers ("database table is locked").
CONCURRENT_PAIRS = [
    ("django-cache-redis", "redis"),
    ("django-cache-redis", "memory"),
    ("django-file", "redis"),
    ("django-redis-sessions", "memory"),
    ("prologue-signed-cookies", "redis"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
@pytest.mark.parametrize("switch", CONCURRENT_PAIRS, indirect=True, ids="-to-".join)
def test_concurrent_requests_with_one_old_cookie_end_with_one_session(
    switch: Switch,
) -> None:
    rounds, width = 8, 4
    olds = []
    for device in range(rounds):
        olds.append(cookie(signed_in_with_a_message(switch, str(device))))
    with switch.running("target"):
        before = len(ours_held(switch))
        for old in olds:

            def visit(old: str = old) -> tuple[int, str, Any]:
                try:
                    response = with_cookie(old).get("/account/whoami/")
                except Exception as exc:
                    return 500, repr(exc), None
                sent = response.cookies[settings.SESSION_COOKIE_NAME].value
                return response.status_code, sent, response.json()

            answers = race(width, visit)
            assert [status for status, _, _ in answers] == [200] * width, answers
            assert {sent for _, sent, _ in answers} != {old}
            assert len({sent for _, sent, _ in answers}) == 1  # one new key
            assert all(body["user"] == "ada" for _, _, body in answers)
            # Racing requests on one session each read it as it was when they
            # loaded it (as with any engine): the message shows at least once.
            shown = [body["messages"] for _, _, body in answers]
            assert ["Welcome back"] in shown, answers
            assert not switch.previous_store(old).exists(old)
        assert len(ours_held(switch)) == before + rounds


def race(width: int, call: Callable[[], T]) -> list[T]:
    """What ``call`` returns in each of ``width`` threads, released at once."""
    barrier = threading.Barrier(width)
    answers: list[T] = []

    def run() -> None:
        barrier.wait(10)
        answers.append(call())

    threads = [threading.Thread(target=run) for _ in range(width)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def ours_held(switch: Switch) -> list[Any]:
    if switch.target.endswith("memory"):
        return memory.SessionStore.store.items()
    return [key for key in switch.redis.keys("session:{*") if b":user:" not in key]


# The claim -----------------------------------------------------------------


def test_the_derived_key_is_one_of_ours_and_depends_on_cookie_and_nonce() -> None:
    with override_settings(SESSION_REDIS={}):
        from django_prologue_sessions.backends.redis.store import SessionStore

        key = migrate.derived_key("old-cookie", "abcdefgh.nonce1")
        assert key.startswith("abcdefgh")
        assert SessionStore()._validate_session_key(key)
        assert migrate.derived_key("old-cookie", "abcdefgh.nonce1") == key
        assert migrate.derived_key("old-cookie", "abcdefgh.nonce2") != key
        assert migrate.derived_key("other-cookie", "abcdefgh.nonce1") != key
        assert len(migrate.derived_key("c", ".n")) == 32


def test_the_marker_names_no_key() -> None:
    marker = migrate.marker_name("thecookievalue")
    assert "thecookievalue" not in marker
    assert marker == migrate.marker_name("thecookievalue")


def test_local_claims_hold_the_first_value() -> None:
    claims = migrate.LocalClaims()
    assert claims.claim("m", "first") is None
    assert claims.claim("m", "second") == "first"
    assert claims.recall("m") == "first"
    assert claims.recall("other") is None


def test_without_the_setting_an_unknown_cookie_reads_nothing_else() -> None:
    with override_settings(SESSION_ENGINE=OURS + "memory"):
        store = memory.SessionStore(new_session_key())
        assert store.load() == {}
        assert store.session_key is None
        assert not store.modified


# What cannot move stays where it is ---------------------------------------


@pytest.mark.django_db
@pytest.mark.redis
@pytest.mark.parametrize(
    "switch",
    [("django-cache-redis", target) for target in TARGETS],
    indirect=True,
    ids="-to-".join,
)
def test_a_session_json_cannot_hold_stays_in_the_previous_store(
    switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    import datetime

    # The cache engine stores the dict itself, pickled by the cache.
    key = previous_session(
        switch,
        _auth_user_id=str(get_user_model().objects.get().pk),
        seen=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    )
    with switch.running("target"):
        before = ours_snapshot(switch)
        response = with_cookie(key).get("/account/whoami/")
        assert response.json() == {"user": None, "messages": []}
        assert "SESSION_SERIALIZER cannot write it" in caplog.text
        assert key not in caplog.text
        assert switch.previous_store(key).exists(key)
        assert ours_snapshot(switch) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "switch", [("django-db", "signed_cookies")], indirect=True, ids="-to-".join
)
def test_a_session_too_large_for_a_cookie_stays_in_the_previous_store(
    switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    key = previous_session(switch, big="".join(new_session_key() for _ in range(200)))
    with switch.running("target"):
        response = with_cookie(key).get("/account/whoami/")
        assert response.json() == {"user": None, "messages": []}
        assert "Session not moved from the previous engine" in caplog.text
        assert switch.previous_store(key).exists(key)


def previous_session(switch: Switch, **data: Any) -> str:
    """The key of a session saved by the source engine, holding ``data``."""
    with switch.running("source"):
        old = import_module(switch.source.engine).SessionStore()
        old.update(data)
        old.save()
        assert old.session_key is not None
        return str(old.session_key)


def ours_snapshot(switch: Switch) -> tuple[Any, ...]:
    return (
        sorted(key for key in switch.redis.keys("*") if key.startswith(b"session:")),
        sorted(memory.SessionStore.store.items()),
    )


# A request that never touches the session ----------------------------------


@pytest.mark.django_db
@pytest.mark.redis
@pytest.mark.parametrize(
    "switch", [("django-signed-cookies", "redis")], indirect=True, ids="-to-".join
)
def test_a_request_that_does_not_read_the_session_keeps_the_old_cookie(
    switch: Switch,
) -> None:
    # A signed cookie is no key of our Redis engine (the engine refuses it
    # unread): the middleware would delete it as an empty session's.
    old = cookie(signed_in_with_a_message(switch))
    with switch.running("target"):
        client = with_cookie(old)
        response = client.get("/session/untouched/")
        assert settings.SESSION_COOKIE_NAME not in response.cookies
        assert client.get("/account/whoami/").json() == {
            "user": "ada",
            "messages": ["Welcome back"],
        }
    with override_settings(**{**switch.after, "PROLOGUE_SESSIONS_MIGRATE_FROM": None}):
        # Without the setting, such a cookie is deleted, as Django does.
        response = with_cookie(old).get("/session/untouched/")
        assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""


# The same over HTTP: a real server, one connection per request ------------

HTTP_PAIRS = [("django-cache-django-redis", "redis"), ("django-file", "memory")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
@pytest.mark.parametrize("switch", HTTP_PAIRS, indirect=True, ids="-to-".join)
def test_a_threaded_http_server_moves_each_old_cookie_once(switch: Switch) -> None:
    import http.client
    import json
    from http.cookies import SimpleCookie
    from wsgiref.simple_server import make_server

    from django.core.handlers.wsgi import WSGIHandler

    from bench.wsgiref_server import QuietHandler, ThreadingWSGIServer

    olds = [cookie(signed_in_with_a_message(switch, str(n))) for n in range(4)]
    width = 6
    with switch.running("target"):
        server = make_server(
            "127.0.0.1",
            0,
            WSGIHandler(),
            server_class=ThreadingWSGIServer,
            handler_class=QuietHandler,
        )
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()

        def get(old: str) -> tuple[int, str | None, Any]:
            connection = http.client.HTTPConnection(
                "127.0.0.1", server.server_port, timeout=30
            )
            name = settings.SESSION_COOKIE_NAME
            try:
                connection.request(
                    "GET", "/account/whoami/", headers={"Cookie": f"{name}={old}"}
                )
                response = connection.getresponse()
                body = json.loads(response.read())
                sent = SimpleCookie(response.getheader("Set-Cookie") or "").get(name)
                return response.status, None if sent is None else sent.value, body
            finally:
                connection.close()

        try:
            for old in olds:
                answers = race(width, functools.partial(get, old))
                assert [status for status, _, _ in answers] == [200] * width, answers
                keys = {sent for _, sent, _ in answers}
                assert len(keys) == 1, answers  # one session of ours, each sent it
                assert old not in keys
                assert None not in keys
                assert all(body["user"] == "ada" for _, _, body in answers)
                assert not switch.previous_store(old).exists(old)
                # The new cookie, over HTTP too: still signed in.
                (new,) = keys
                assert new is not None
                assert get(new)[2]["user"] == "ada"
        finally:
            server.shutdown()
            server.server_close()
