"""The Redis engine against a real server: the contract, in every configuration,
then what the contract does not say (layout, expiry, round trips, merging)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, UpdateError
from django.core.signing import JSONSerializer
from django.test import Client, SimpleTestCase, override_settings

from django_prologue_sessions.backends._session_keys import USER_ID_KEY, session_id
from django_prologue_sessions.backends.redis import layout
from django_prologue_sessions.backends.redis.connection import sync_redis
from django_prologue_sessions.backends.redis.store import SessionStore
from django_prologue_sessions.conf import DEFAULT_MAX_BYTES
from tests.redis_round_trips import (
    aopen_pool,
    count_round_trips,
    has_ifeq,
    open_pool,
)
from tests.redis_server import RedisServer
from tests.session_contract import SessionContractTests

pytestmark = pytest.mark.redis


@pytest.fixture(scope="class")
def _redis_url_on_class(request: pytest.FixtureRequest, redis_url: str) -> None:
    request.cls.redis_url = redis_url


@pytest.fixture(scope="class")
def _unix_socket_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """A server of the class's own that also listens on a Unix socket."""
    server = RedisServer()
    socket_path = server.dir / "redis.sock"
    server.extra_args += ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    server.start()
    request.cls.socket_path = socket_path
    try:
        yield
    finally:
        server.cleanup()


def django_redis_caches(url: str) -> dict[str, Any]:
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url},
    }


@pytest.mark.usefixtures("_redis_url_on_class")
class RedisContractTests(SessionContractTests, SimpleTestCase):
    """The contract with ``SESSION_REDIS = {"url": ...}``; subclasses vary it."""

    backend = SessionStore
    redis_url: ClassVar[str]

    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": {"url": self.redis_url}}


class RedisHostPortContractTests(RedisContractTests):
    def get_engine_settings(self) -> dict[str, Any]:
        url = urlsplit(self.redis_url)
        return {
            "SESSION_REDIS": {
                "host": url.hostname,
                "port": url.port,
                "db": int(url.path.strip("/") or 0),
                "socket_timeout": 2,
            }
        }


class RedisResp3ContractTests(RedisContractTests):
    """RESP2 is the default; a URL asking for RESP3 is read by redis-py."""

    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": {"url": f"{self.redis_url}?protocol=3"}}


class RedisCustomPrefixContractTests(RedisContractTests):
    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": {"url": self.redis_url, "prefix": "app1:sess"}}


class RedisNoPrefixContractTests(RedisContractTests):
    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": {"url": self.redis_url, "prefix": ""}}


class RedisCacheAliasContractTests(RedisContractTests):
    def get_engine_settings(self) -> dict[str, Any]:
        return {
            "CACHES": django_redis_caches(self.redis_url),
            "SESSION_REDIS": {"cache_alias": "sessions"},
        }


@pytest.mark.usefixtures("_unix_socket_server")
class RedisUnixSocketContractTests(RedisContractTests):
    socket_path: ClassVar[Path]

    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": {"unix_domain_socket_path": str(self.socket_path)}}


class RedisUnixUrlContractTests(RedisUnixSocketContractTests):
    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": {"url": f"unix://{self.socket_path}?db=3"}}


class RedisEmptyOnUnavailableContractTests(RedisContractTests):
    """The degraded mode changes nothing while Redis is up."""

    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": {"url": self.redis_url, "on_unavailable": "empty"}}


# Beyond the contract ----------------------------------------------------------

ENGINE = "django_prologue_sessions.backends.redis"
AUTH_SESSION = {
    "_auth_user_id": "1042",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "9f86d081884c7d659a2feaa0c55ad015"
    "a3bf4f1b2b0b822cd15d6c15b0f00a08",
}


@pytest.fixture
def store(redis_client: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    """The engine on the flushed test database; yields a plain client to look."""
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS={"url": redis_url}):
        yield redis_client


def saved_session(data: dict[str, Any] | None = None) -> SessionStore:
    session = SessionStore()
    session.update(data or {"k": "v"})
    session.save()
    return session


def stored_value(
    client: redis.Redis, session: SessionStore
) -> tuple[layout.Header, bytes, bytes]:
    """The stored value's header, format letter and serialized session."""
    assert session.session_key is not None
    value = client.get(SessionStore.redis_key(session.session_key))
    assert isinstance(value, bytes)
    header, form, body = layout.parse(value)
    return header, form, layout.SessionCodec.unpack(form, body, DEFAULT_MAX_BYTES)


def test_layout_is_one_string_per_session_in_its_own_slot(store: redis.Redis) -> None:
    session = saved_session({"k": "v"})
    assert session.session_key is not None
    # Named by the session's id: the key's tag, then a digest of the key.
    sid = session_id(session.session_key)
    tag, rest = sid[:8], sid[8:]
    assert tag == session.session_key[:8]
    key = f"session:{{{tag}}}{rest}"
    assert store.keys("*") == [key.encode()]
    assert store.type(key) == b"string"
    # Version 1, no user part, the session as JSONSerializer writes it.
    assert store.get(key) == b'1j{"k":"v"}'
    # The hash tag, the key's first 8 characters, picks the slot.
    slot = redis.crc.key_slot(tag.encode())
    assert redis.crc.key_slot(key.encode()) == slot
    assert SessionStore.redis_key(session.session_key) == key


@pytest.mark.parametrize(
    ("expiry", "expected_ttl"),
    [(None, 300), (0, 300), (60, 60), (timedelta(minutes=2), 120)],
)
def test_redis_ttl_is_the_session_expiry(
    store: redis.Redis, expiry: Any, expected_ttl: int
) -> None:
    with override_settings(SESSION_COOKIE_AGE=300):
        session = SessionStore()
        session["k"] = "v"
        session.set_expiry(expiry)
        session.save()
        ttl = store.ttl(SessionStore.redis_key(session.session_key))
    assert expected_ttl - 2 <= ttl <= expected_ttl


def test_saving_an_existing_session_with_a_past_expiry_ends_it(
    store: redis.Redis,
) -> None:
    key = saved_session().session_key
    session = SessionStore(key)
    session.set_expiry(-timedelta(seconds=10))
    session.save()
    assert not store.exists(SessionStore.redis_key(key))
    assert SessionStore(key).load() == {}


@pytest.mark.parametrize(
    "data", [{"k": "v"}, {USER_ID_KEY: "7"}], ids=["anonymous", "logged in"]
)
def test_creating_a_session_with_a_past_expiry_stores_nothing(
    store: redis.Redis, data: dict[str, str]
) -> None:
    session = SessionStore()
    session.update(data)
    session.set_expiry(-timedelta(seconds=10))
    session.save()
    assert session.session_key is not None
    assert store.keys("*") == []


def test_every_save_resets_the_ttl(store: redis.Redis) -> None:
    session = saved_session()
    key = SessionStore.redis_key(session.session_key)
    store.expire(key, 5)
    again = SessionStore(session.session_key)
    again["k"] = "changed"
    again.save()
    assert store.ttl(key) > settings.SESSION_COOKIE_AGE - 5


def test_round_trips_of_each_operation(store: redis.Redis) -> None:
    open_pool()
    with count_round_trips() as created:
        session = saved_session({"a": 1})
    key = session.session_key
    with count_round_trips() as loaded:
        again = SessionStore(key)
        assert again["a"] == 1
    with count_round_trips() as updated:
        again["b"] = 2
        again.save()
    with count_round_trips() as checked:
        assert again.exists(key)
    with count_round_trips() as deleted:
        again.delete()
    assert (created, loaded, updated, checked, deleted) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert not store.exists(SessionStore.redis_key(key))


def test_keys_that_this_engine_cannot_have_made_never_reach_redis(
    store: redis.Redis,
) -> None:
    saved_session()
    for key in ["A" * 32, "a" * 31, "a" * 33, "é" * 32, "a" * 31 + ":", "*" * 32]:
        with count_round_trips() as sent:
            session = SessionStore(key)
            assert session.session_key is None
            assert session.get("k") is None
            assert session.exists(key) is False
            session.delete(key)
        assert sent == 0, key


def test_round_trips_through_the_middleware(store: redis.Redis) -> None:
    warm = Client()
    warm.get("/session/set/", {"warm": "up"})
    # The re-key's script too: a script's first use on a server costs a
    # NOSCRIPT round trip, which this test does not count.
    warm.get("/session/cycle/")
    open_pool()
    with count_round_trips() as new_session:
        client = Client()
        client.get("/session/set/", {"key": "value"})
    with count_round_trips() as untouched:
        client.get("/session/untouched/")
    with count_round_trips() as read:
        assert client.get("/session/read/").content == b'"value"'
    with count_round_trips() as modified:
        client.get("/session/set/", {"key": "other"})
    with count_round_trips() as cycled:
        client.get("/session/cycle/")  # load, create the new key, delete the old
    with count_round_trips() as flushed:
        client.get("/session/flush/")  # flush() does not load the session
    assert [new_session, untouched, read, modified, cycled, flushed] == [
        1,
        0,
        1,
        2,
        3,
        1,
    ]
    assert len(store.keys("*")) == 1  # the first client's; the rest are gone


def test_async_methods_use_redis_asyncio_only(store: redis.Redis) -> None:
    asyncio.run(async_round_trips())


async def async_round_trips() -> None:
    await aopen_pool()
    with count_round_trips() as created:
        fresh = SessionStore()
        await fresh.aset("a", 1)
        await fresh.asave()
    with count_round_trips() as loaded:
        again = SessionStore(fresh.session_key)
        assert await again.aget("a") == 1
    with count_round_trips() as updated:
        await again.aset("b", 2)
        await again.asave()
    with count_round_trips() as checked:
        assert await again.aexists(fresh.session_key)
    with count_round_trips() as deleted:
        await again.adelete()
    assert (created, loaded, updated, checked, deleted) == (
        1,
        1,
        1,
        1,
        1,
    )


def test_a_flushed_script_cache_costs_one_more_round_trip_once(
    store: redis.Redis,
) -> None:
    """Re-keying a logged-in session runs a script, on every server."""
    session = saved_session({USER_ID_KEY: "7"})
    session.cycle_key()
    store.script_flush()
    with count_round_trips() as first:
        session.cycle_key()
    with count_round_trips() as second:
        session.cycle_key()
    assert (first, second) == (2, 1)


def test_concurrent_saves_of_different_keys_keep_both(store: redis.Redis) -> None:
    key = saved_session({"shared": 0, "gone": 1}).session_key
    first, second = SessionStore(key), SessionStore(key)
    assert first["shared"] == second["shared"] == 0  # both requests load
    first["cart"] = ["book"]
    del first["gone"]
    second["flash"] = "saved!"
    second["shared"] = 2
    first.save()
    second.save()
    assert dict(SessionStore(key).items()) == {
        "shared": 2,
        "cart": ["book"],
        "flash": "saved!",
    }


def test_each_save_adds_one_to_the_version(store: redis.Redis) -> None:
    session = saved_session({"a": 1})
    assert stored_value(store, session)[0].version == "1"
    session["a"] = 2
    session.save()
    again = SessionStore(session.session_key)
    again["a"] = 3
    again.save()
    assert stored_value(store, session)[0].version == "3"


def test_a_save_that_meets_another_costs_one_more_round_trip(
    store: redis.Redis,
) -> None:
    """The conflict is answered with the session as it is now: the second
    try needs no read of its own, and the other request's change stays."""
    key = saved_session({"a": 1, "b": 1}).session_key
    first, second = SessionStore(key), SessionStore(key)
    assert first["a"] == second["a"] == 1  # both requests load
    first["a"] = 2
    first.save()
    second["b"] = 2
    with count_round_trips() as sent:
        second.save()
    assert sent == 2
    assert dict(second.items()) == {"a": 2, "b": 2}  # as stored now
    assert dict(SessionStore(key).items()) == {"a": 2, "b": 2}
    assert stored_value(store, second)[0].version == "3"


def calls(client: redis.Redis) -> Counter[str]:
    """How many times the server ran each command since its stats were reset."""
    stats = client.info("commandstats")
    return Counter({name[8:]: int(stat["calls"]) for name, stat in stats.items()})


def test_a_save_is_one_native_set_where_the_server_has_ifeq(
    store: redis.Redis,
) -> None:
    """Valkey 8.1+ and Redis 8.4+ save with SET ... IFEQ, no Lua (the user's
    index is left alone while its entry outlasts the session); older servers
    run the UPDATE script."""
    native = has_ifeq(store)
    open_pool()
    anonymous = saved_session({"k": 0})
    logged_in = saved_session({USER_ID_KEY: "7", "k": 0})
    assert logged_in.session_key is not None
    index = SessionStore.index_key(logged_in.session_key[:8], "7")
    member = session_id(logged_in.session_key)[8:]  # its id after the tag
    entry = store.zscore(index, member)
    assert entry is not None
    store.config_resetstat()
    for n in range(1, 4):
        for session in (anonymous, logged_in):
            session["k"] = n
            session.save()
    sent = calls(store)  # a script's commands count too
    if native:
        assert (sent["set"], sent["evalsha"], sent["get"]) == (6, 0, 0)
    else:
        assert sent["evalsha"] == 6
    assert (sent["eval"], sent["zadd"]) == (0, 0)
    assert store.zscore(index, member) == entry
    assert SessionStore(anonymous.session_key)["k"] == 3
    assert SessionStore(logged_in.session_key)["k"] == 3
    assert stored_value(store, logged_in)[0].version == "4"


def test_whether_the_server_has_ifeq_is_learnt_once_per_pool(
    store: redis.Redis,
) -> None:
    native = has_ifeq(store)
    session = saved_session({"k": 0})  # the pool is open, its answer unknown
    counts = []
    for n in (1, 2, 3):
        with count_round_trips() as sent:
            session["k"] = n
            session.save()
        counts.append(sent)
    assert counts == ([1, 1, 1] if native else [2, 1, 1])
    assert sync_redis().call.has_ifeq is native
    assert SessionStore(session.session_key)["k"] == 3

    async def async_saves() -> list[int]:
        assert await session.aexists(session.session_key)  # connects
        counts = []
        for n in (4, 5):
            with count_round_trips() as sent:
                await session.aset("k", n)
                await session.asave()
            counts.append(sent.count)
        return counts

    assert asyncio.run(async_saves()) == ([1, 1] if native else [2, 1])
    assert SessionStore(session.session_key)["k"] == 5


@pytest.mark.parametrize("native", [True, False], ids=["as the server can", "Lua"])
def test_a_save_never_brings_back_an_ended_session(
    store: redis.Redis, native: bool
) -> None:
    session = saved_session({"k": 0})
    if not native:
        sync_redis().call.has_ifeq = False
    key = session.session_key
    SessionStore(key).delete()
    session["k"] = 1
    with pytest.raises(UpdateError):
        session.save()
    assert store.keys("*") == []


def test_concurrent_changes_to_one_key_keep_the_last_save(store: redis.Redis) -> None:
    key = saved_session({"a": 1}).session_key
    first, second = SessionStore(key), SessionStore(key)
    assert first["a"] == second["a"] == 1  # both requests load
    first["a"] = 2
    second["a"] = 3
    first.save()
    second.save()
    assert SessionStore(key)["a"] == 3


def test_a_save_after_the_session_ended_meets_no_merge(store: redis.Redis) -> None:
    key = saved_session({"a": 1}).session_key
    first, second = SessionStore(key), SessionStore(key)
    assert first["a"] == second["a"] == 1  # both requests load
    first["a"] = 2
    first.save()
    first.delete()
    second["b"] = 2
    with pytest.raises(UpdateError):
        second.save()
    assert not store.exists(SessionStore.redis_key(key))


def test_strings_json_would_escape_round_trip(store: redis.Redis) -> None:
    values = {"lone surrogate": "\ud800", "nul": "a\x00b", "emoji": "🔑", "": "x"}
    session = saved_session(values)
    assert b'"lone surrogate":"\\ud800"' in stored_value(store, session)[2]
    assert dict(SessionStore(session.session_key).items()) == values


def test_a_session_is_deflated_only_where_that_is_shorter(
    store: redis.Redis,
) -> None:
    small = saved_session({"k": "v"})
    assert stored_value(store, small)[1] == layout.PLAIN
    login = saved_session(AUTH_SESSION)
    _header, form, body = stored_value(store, login)
    assert form == layout.DEFLATED
    value = store.get(SessionStore.redis_key(login.session_key))
    assert isinstance(value, bytes)
    deflated = layout.parse(value)[2]
    assert len(deflated) < len(body) - 100  # the preset dictionary's work
    assert dict(SessionStore(login.session_key).items()) == AUTH_SESSION


def test_a_session_emptied_before_loading_replaces_what_was_stored(
    store: redis.Redis,
) -> None:
    key = saved_session({"a": 1, "b": 2}).session_key
    session = SessionStore(key)
    session.clear()  # Django sets the cache without loading
    session["c"] = 3
    session.save()
    assert dict(SessionStore(key).items()) == {"c": 3}
    assert stored_value(store, session)[0].version == "2"


def test_an_emptied_session_still_exists(store: redis.Redis) -> None:
    key = saved_session({"a": 1}).session_key
    session = SessionStore(key)
    del session["a"]
    session.save()
    assert session.exists(key)
    assert SessionStore(key).load() == {}
    assert SessionStore(key).session_key == key


def test_non_string_keys_are_stored_as_json_would(store: redis.Redis) -> None:
    session = saved_session({1: "one", 2.5: "half", None: "none"})  # type: ignore[dict-item]
    assert dict(SessionStore(session.session_key).items()) == {
        "1": "one",
        "2.5": "half",
        "null": "none",
    }
    assert json.loads(json.dumps({1: "one", 2.5: "half", None: "none"})) == dict(
        SessionStore(session.session_key).items()
    )
    session[(1, 2)] = "tuple"  # type: ignore[index]
    with pytest.raises(TypeError, match="keys must be str"):
        session.save()


@pytest.mark.parametrize(
    "value", [b"4j\xff{not json", b"4z\xff\xff", b"4q{}", b"not ours", b""]
)
def test_a_value_that_cannot_be_decoded_is_an_empty_session_until_saved(
    store: redis.Redis, caplog: pytest.LogCaptureFixture, value: bytes
) -> None:
    session = saved_session({"good": 1})
    redis_key = SessionStore.redis_key(session.session_key)
    store.set(redis_key, value)
    again = SessionStore(session.session_key)
    assert dict(again.items()) == {}
    assert "could not be decoded" in caplog.text
    assert again.session_key == session.session_key
    again["good"] = 2
    again.save()
    assert dict(SessionStore(session.session_key).items()) == {"good": 2}


def test_a_huge_session_round_trips(store: redis.Redis) -> None:
    data = {f"key{i}": i for i in range(12_000)}
    session = saved_session(data)
    again = SessionStore(session.session_key)
    assert dict(again.items()) == data
    for i in range(0, 12_000, 2):
        del again[f"key{i}"]
    for i in range(5_000):
        again[f"new{i}"] = i
    again.save()
    expected = {f"key{i}": i for i in range(1, 12_000, 2)}
    expected.update({f"new{i}": i for i in range(5_000)})
    assert dict(SessionStore(session.session_key).items()) == expected


class TaggedJSONSerializer(JSONSerializer):
    """A SESSION_SERIALIZER whose output is recognisable in Redis."""

    def dumps(self, obj: Any) -> bytes:
        return b"T" + super().dumps(obj)

    def loads(self, data: bytes) -> Any:
        assert data[:1] == b"T"
        return super().loads(data[1:])


def test_session_serializer_is_honoured(store: redis.Redis) -> None:
    with override_settings(SESSION_SERIALIZER="tests.test_redis.TaggedJSONSerializer"):
        session = saved_session({"k": "v"})
        assert stored_value(store, session)[2] == b'T{"k":"v"}'
        assert SessionStore(session.session_key)["k"] == "v"


REALISTIC_SESSIONS = {
    "empty": {},
    "logged in": AUTH_SESSION,
    "logged in, cart, expiry": {
        **AUTH_SESSION,
        "cart": [{"sku": "B-1042", "qty": 2}, {"sku": "C-77", "qty": 1}],
        "_session_expiry": 3600,
    },
    "anonymous preferences": {"theme": "dark", "lang": "fr", "tz": "Europe/Paris"},
}


@pytest.mark.parametrize("data", REALISTIC_SESSIONS.values(), ids=REALISTIC_SESSIONS)
def test_uses_no_more_memory_than_django_redis_sessions(
    store: redis.Redis, data: dict[str, Any]
) -> None:
    """Compared with what django-redis-sessions stores for the same data: the
    string ``SessionBase.encode(data)`` at ``session:<key>``, with a TTL (its
    SessionStore class has the same name, so the same signing salt)."""
    ours = saved_session(data) if data else SessionStore()
    if not data:
        ours.save()
    key = ours.session_key
    assert key is not None
    store.set(f"session:{key[::-1]}", ours.encode(data), ex=300)
    our_bytes = store.memory_usage(SessionStore.redis_key(key), samples=0)
    their_bytes = store.memory_usage(f"session:{key[::-1]}", samples=0)
    assert our_bytes is not None
    assert their_bytes is not None
    assert our_bytes <= their_bytes


def test_new_keys_are_uniform_over_djangos_alphabet() -> None:
    keys = [SessionStore.new_session_key() for _ in range(9_000)]
    assert len(set(keys)) == len(keys)
    assert all(
        len(key) == 32 and SessionStore()._validate_session_key(key) for key in keys
    )
    counts = Counter("".join(keys))
    assert set(counts) == set(VALID_KEY_CHARS)
    expected = 9_000 * 32 / 36  # 8000 each; one standard deviation is about 90
    assert all(abs(count - expected) < 800 for count in counts.values()), counts
