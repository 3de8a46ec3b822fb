"""What Redis holds of a session (``layout``): never its key.

A session key is a credential. Whoever reads Redis (a backup, a replica,
``MONITOR``, ``SCAN``) must not find one, nor any 16 characters of one, in a
key, a value or an index member; and the package's log lines carry none.
The flow runs through Django's real middleware, with activity recording on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress
from typing import Any
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from django_prologue_sessions.backends import _session_keys
from django_prologue_sessions.backends.redis import layout
from django_prologue_sessions.backends.redis import store as store_module
from django_prologue_sessions.backends.redis.store import SessionStore
from django_prologue_sessions.user_sessions import (
    list_sessions,
    revoke_all,
    revoke_session,
    session_id,
)
from tests.redis_server import free_port
from tests.test_activity import FIREFOX, MIDDLEWARE

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"
PIECE = 16


@pytest.fixture
def store(redis_client: redis.Redis, redis_url: str, db: None) -> Iterator[redis.Redis]:
    with override_settings(
        SESSION_ENGINE=ENGINE,
        SESSION_REDIS={"url": redis_url},
        MIDDLEWARE=MIDDLEWARE,
        PROLOGUE_SESSIONS_ACTIVITY=True,
        MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage",
        CSRF_USE_SESSIONS=True,
    ):
        yield redis_client


@pytest.fixture
def made_keys() -> Iterator[list[str]]:
    """Every session key the engine makes, sent as a cookie or not."""
    made: list[str] = []

    def recording(tag: str = "") -> str:
        key = _session_keys.new_session_key(tag)
        made.append(key)
        return key

    with mock.patch.object(SessionStore, "new_session_key", staticmethod(recording)):
        yield made


def everything_in(client: redis.Redis) -> list[bytes]:
    """Every key of the database, and all it holds, whatever its type (a
    session's value both as stored and inflated)."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == b"string":
            value = client.get(key)
            found.append(value)
            with suppress(ValueError):  # a session: deflated, maybe
                _, form, body = layout.parse(value)
                found.append(layout.SessionCodec.unpack(form, body, 1 << 30))
        elif kind == b"zset":
            found.extend(client.zrange(key, 0, -1))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found += [field, value]
        elif kind == b"set":
            found.extend(client.smembers(key))
        elif kind == b"list":
            found.extend(client.lrange(key, 0, -1))
        else:
            raise AssertionError(f"Unexpected {kind!r} at {key!r}")
    return found


def assert_no_piece_of(keys: list[str], texts: list[bytes] | list[str]) -> None:
    assert keys
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode()
        for key in keys:
            for start in range(len(key) - PIECE + 1):
                piece = key[start : start + PIECE].encode()
                assert piece not in data, (key, data)


def test_redis_never_holds_a_session_key(
    store: redis.Redis,
    made_keys: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="django_prologue_sessions")
    get_user_model().objects.create_user(username="ada")
    laptop, phone = Client(HTTP_USER_AGENT=FIREFOX), Client()
    seen: list[bytes] = []

    def step(response: Any, status: int = 200) -> None:
        assert response.status_code == status
        seen.extend(everything_in(store))

    step(laptop.get("/session/set/", {"cart": "book"}))  # anonymous
    step(laptop.get("/session/cycle/"))  # cycle_key() of an anonymous session
    step(laptop.post("/account/login/", {"username": "ada"}))  # login
    step(laptop.get("/session/set/", {"theme": "dark"}))  # a save
    step(laptop.post("/flash/add/", {"level": "info", "message": "Hi"}), 302)
    step(laptop.get("/account/sessions/"))  # a listing
    step(laptop.get("/session/cycle/"))  # cycle_key() of a user's session
    step(phone.post("/account/login/", {"username": "ada"}))
    (listed,) = [s for s in list_sessions("1") if s.id != cookie_id(laptop)]
    step(laptop.post("/account/sessions/end/", {"session": listed.id}), 302)
    step(phone.get("/session/get/"))  # revoked: a new, empty session
    step(phone.post("/account/login/", {"username": "ada"}))
    assert revoke_all("1", keep=laptop.cookies["sessionid"].value) == 1
    assert revoke_session("1", laptop.cookies["sessionid"].value) is True
    seen.extend(everything_in(store))
    # What the steps wrote, and whose keys they held: the Redis keys are ids.
    assert len(made_keys) >= 6
    assert any(b":user:" in item for item in seen)
    assert any(b"Firefox" in item for item in seen)  # activity recorded
    assert any(b"__json_message" in item for item in seen)  # the flash
    assert_no_piece_of(made_keys, seen)
    # The package's log lines: the warnings it can give on the way too.
    store.set(SessionStore.redis_key(made_keys[-1]), b"garbage")
    assert SessionStore(made_keys[-1]).load() == {}
    assert "could not be decoded" in caplog.text
    down = {"url": f"redis://127.0.0.1:{free_port()}/0", "on_unavailable": "empty"}
    with override_settings(SESSION_REDIS=down):
        session = SessionStore(made_keys[-1])
        session["cart"] = "lost"
        session.save()
    assert "Redis is unavailable" in caplog.text
    assert "not saved" in caplog.text
    assert_no_piece_of(made_keys, [r.getMessage() for r in caplog.records])


def cookie_id(client: Client) -> str:
    return session_id(client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_what_todays_main_wrote_is_unknown(store: redis.Redis) -> None:
    """The layout before ids (key and index member the session key in clear)
    is never read as a session: a clean, empty one, and listing drops it."""
    key = layout.user_tag("7") + "a" * 24
    old_key = f"session:{{{key[:8]}}}{key[8:]}"
    # As main wrote it before ids: @created,saved,length:user.
    value = b'1@1,1,1:7j{"_auth_user_id":"7"}'
    store.set(old_key, value, ex=300)
    index = layout.index_key("session:", key[:8], "7")
    store.zadd(index, {key: 9e15})
    session = SessionStore(key)
    assert session.load() == {}
    assert session.session_key is None  # the client's key is never adopted
    assert list_sessions("7") == []
    assert store.zrange(index, 0, -1) == []  # the old member is dropped
    assert revoke_all("7") == 0
    assert store.get(old_key) == value  # left to expire, never misread
    # An old key can never be an id's: ids have 23 characters after the tag.
    assert len(session_id(key)) == len(key) - 1
    assert len(layout.member(session_id(key))) == 23


def test_ids_survive_a_secret_key_rotation(store: redis.Redis) -> None:
    session = SessionStore()
    session["_auth_user_id"] = "7"
    session.save()
    key = session.session_key
    assert key is not None
    old_id = session_id(key)
    with override_settings(
        SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]
    ):
        assert session_id(key) == old_id
        assert SessionStore(key).load() == {"_auth_user_id": "7"}
        assert [s.id for s in list_sessions("7")] == [old_id]


def test_an_id_costs_no_more_bytes_than_the_key_in_clear_did(
    store: redis.Redis,
) -> None:
    session = SessionStore()
    session.update({"_auth_user_id": "7", "cart": ["book"]})
    session.save()
    key = session.session_key
    assert key is not None
    new_key, index = (
        SessionStore.redis_key(key),
        layout.index_key("session:", key[:8], "7"),
    )
    # The same session and index entry as the older layout held them (the
    # index under a name as long).
    old_key = f"session:{{{key[:8]}}}{key[8:]}"
    old_index = layout.index_key("session:", key[:8], "8")
    store.set(old_key, store.get(new_key), ex=300)
    store.zadd(old_index, {key: store.zrange(index, 0, -1, withscores=True)[0][1]})
    sizes = {
        name: store.memory_usage(name, samples=0)
        for name in (new_key, old_key, index, old_index)
    }
    assert sizes[new_key] <= sizes[old_key]
    assert sizes[index] <= sizes[old_index]


@pytest.fixture
def digests() -> Iterator[list[str]]:
    """The keys the engine digests (``session_id()``), one entry a digest."""
    digested: list[str] = []

    def counting(session_key: str) -> str:
        digested.append(session_key)
        return session_id(session_key)

    with (
        mock.patch.object(store_module, "session_id", counting),
        mock.patch.object(layout, "session_id", counting),
    ):
        yield digested


def test_a_request_digests_each_key_it_uses_once(
    store: redis.Redis, digests: list[str]
) -> None:
    """A SHA-256 costs CPU: each key a request loads, saves or deletes is
    digested once (login and cycle_key() use two keys, the old and the new)."""
    get_user_model().objects.create_user(username="ada")
    client = Client()
    counts: dict[str, int] = {}
    for name, request in [
        ("create", lambda: client.get("/session/set/", {"cart": "book"})),
        ("read", lambda: client.get("/session/read/")),
        ("modify", lambda: client.get("/session/set/", {"cart": "pen"})),
        ("login", lambda: client.post("/account/login/", {"username": "ada"})),
        ("modify", lambda: client.get("/session/set/", {"cart": "ink"})),
        ("cycle_key", lambda: client.get("/session/cycle/")),
    ]:
        digests.clear()
        assert request().status_code == 200
        assert len(set(digests)) == len(digests), name
        counts[name] = len(digests)
    assert counts == {"create": 1, "read": 1, "modify": 1, "login": 2, "cycle_key": 2}
