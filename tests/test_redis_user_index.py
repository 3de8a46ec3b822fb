"""The Redis engine's index of each user's sessions, against real servers:
its layout and slot, the key a login gets, what each operation costs, and
what keeps the index exact (the API itself runs in test_user_sessions.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from redis.cluster import RedisCluster

from django_prologue_sessions.backends._session_keys import USER_ID_KEY
from django_prologue_sessions.backends.redis import layout
from django_prologue_sessions.backends.redis import store as engine
from django_prologue_sessions.backends.redis.layout import user_tag
from django_prologue_sessions.backends.redis.store import SessionStore
from django_prologue_sessions.exceptions import SessionStoreUnavailable
from django_prologue_sessions.user_sessions import list_sessions, revoke_all
from tests.redis_round_trips import count_round_trips, open_pool
from tests.redis_server import ClusterSetup, RedisServer

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"
BACKEND_KEY = "_auth_user_backend"
HASH_KEY = "_auth_user_hash"


@pytest.fixture
def store(redis_client: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    """The engine on the flushed test database; yields a plain client to look."""
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS={"url": redis_url}):
        # Open the pooled connection and load every script.
        session = logged_in("0")
        session["cart"] = "book"
        session.save()
        session.cycle_key()
        list_sessions("0")
        revoke_all("0")
        redis_client.flushdb()
        yield redis_client


def login(session: SessionStore, user_id: str) -> None:
    """What django.contrib.auth.login() does to the session (the auth app,
    with its user model and database, is not installed in these tests)."""
    if USER_ID_KEY in session:
        if session[USER_ID_KEY] != user_id:
            session.flush()
    else:
        session.cycle_key()
    session[USER_ID_KEY] = user_id
    session[BACKEND_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_KEY] = "0" * 64


def logged_in(user_id: str, expiry: int | None = None) -> SessionStore:
    session = SessionStore()
    login(session, user_id)
    session.set_expiry(expiry)
    session.save()
    return session


def key_of(session: SessionStore) -> str:
    assert session.session_key is not None
    return session.session_key


def index_of(user_id: str) -> str:
    return SessionStore.index_key(user_tag(user_id), user_id)


def header_of(client: redis.Redis, session_key: str) -> layout.Header:
    value = client.get(SessionStore.redis_key(session_key))
    assert isinstance(value, bytes)
    return layout.parse(value)[0]


# Layout.


def test_a_users_session_and_index_share_one_slot(store: redis.Redis) -> None:
    session = logged_in("7")
    key = key_of(session)
    tag = user_tag("7")
    assert key.startswith(tag)
    assert len(key) == 32
    hash_key, index_key = f"session:{{{tag}}}{key[8:]}", f"session:{{{tag}}}:user:7"
    assert sorted(store.keys("*")) == sorted([hash_key.encode(), index_key.encode()])
    assert redis.crc.key_slot(hash_key.encode()) == redis.crc.key_slot(
        index_key.encode()
    )
    header = header_of(store, key)
    assert header.user == "7"
    assert header.created == header.saved
    assert header.created is not None
    assert store.type(index_key) == b"zset"
    [(member, score)] = store.zrange(index_key, 0, -1, withscores=True)
    assert member == key.encode()
    seconds, micros = store.time()
    now_ms = seconds * 1000 + micros // 1000
    ttl_ms = store.pttl(hash_key)
    # The entry ends twice the TTL from now, in Redis's clock; the header says
    # when in the app server's.
    assert abs(score - (now_ms + 2 * ttl_ms)) < 2000
    assert header.saved is not None
    assert header.indexed_until == header.saved + 2 * settings.SESSION_COOKIE_AGE
    assert store.ttl(index_key) >= 2 * store.ttl(hash_key) - 1


def test_an_anonymous_session_has_no_index_nor_user_part(store: redis.Redis) -> None:
    session = SessionStore()
    session["cart"] = "book"
    session.save()
    [hash_key] = store.keys("*")
    assert store.get(hash_key) == b'1j{"cart":"book"}'


def test_user_tags_are_eight_key_characters_keyed_by_secret_key() -> None:
    tags = {user_tag(str(n)) for n in range(500)}
    assert len(tags) == 500
    assert all(len(t) == 8 and set(t) <= set(VALID_KEY_CHARS) for t in tags)
    tag = user_tag("7")
    assert user_tag("7") == tag
    with override_settings(SECRET_KEY="another secret"):
        assert user_tag("7") != tag


def test_the_index_outlives_the_longest_session(store: redis.Redis) -> None:
    short = logged_in("7")
    short.set_expiry(60)
    short.save()
    assert store.ttl(index_of("7")) > 60
    long = logged_in("7")
    assert store.ttl(index_of("7")) >= store.ttl(SessionStore.redis_key(key_of(long)))


# A login's key.


def test_login_tags_the_new_key_before_the_save_in_three_round_trips(
    store: redis.Redis,
) -> None:
    for user in ("8", "7"):  # the first makes Redis load the scripts
        anonymous = SessionStore()
        anonymous["cart"] = "book"
        anonymous.save()
        old_key = key_of(anonymous)
        if user == "8":
            warm = SessionStore(old_key)
            login(warm, user)
            warm.save()
    with count_round_trips() as sent:
        session = SessionStore(old_key)
        login(session, "7")  # loads, deletes the old key, tags the new one
        key = key_of(session)  # what a view would read after login()
        assert key.startswith(user_tag("7"))
        session.save()  # the middleware's save creates it
    assert sent == 3
    assert key_of(session) == key
    assert not session.exists(old_key)
    assert [s.session_key for s in list_sessions("7")] == [key]
    assert dict(SessionStore(key).items())["cart"] == "book"


def test_a_new_session_that_logs_in_is_created_once_with_its_tag(
    store: redis.Redis,
) -> None:
    with count_round_trips() as sent:
        session = SessionStore()
        login(session, "7")  # no key yet: cycle_key() deletes nothing
        session.save()
    assert sent == 1
    assert key_of(session).startswith(user_tag("7"))


def test_cycle_key_of_a_logged_in_session_writes_the_new_key_at_once(
    store: redis.Redis,
) -> None:
    """update_session_auth_hash() cycles a logged-in session's key."""
    session = logged_in("7")
    old_key = key_of(session)
    with count_round_trips() as sent:
        session.cycle_key()  # renames the session, in the index too
    assert sent == 1
    assert key_of(session).startswith(user_tag("7"))
    assert store.zrange(index_of("7"), 0, -1) == [key_of(session).encode()]
    assert not session.exists(old_key)
    with count_round_trips() as sent:
        session.save()  # nothing changed since this instance created it
    assert sent == 0


def test_a_loaded_session_saved_after_its_rekey_meets_no_conflict(
    store: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine knows the value as the re-key left it (new times in the
    header), so the save after update_session_auth_hash() is one round trip."""
    session = SessionStore(key_of(logged_in("7")))
    session["cart"] = "book"
    later = time.time() + 100
    monkeypatch.setattr(engine, "_now", lambda: later)
    session.cycle_key()
    session[HASH_KEY] = "1" * 64
    with count_round_trips() as sent:
        session.save()
    assert sent == 1
    header = header_of(store, key_of(session))
    assert (header.version, header.user, header.created) == ("2", "7", int(later))
    assert store.zrange(index_of("7"), 0, -1) == [key_of(session).encode()]
    assert SessionStore(key_of(session))[HASH_KEY] == "1" * 64


def test_a_stored_session_that_gains_a_user_moves_to_a_tagged_key(
    store: redis.Redis,
) -> None:
    anonymous = SessionStore()
    anonymous["cart"] = "book"
    anonymous.save()
    old_key = key_of(anonymous)
    other_request = SessionStore(old_key)
    assert other_request["cart"] == "book"  # loaded before the move
    session = SessionStore(old_key)
    session[USER_ID_KEY] = "7"  # loads; a login without cycle_key()
    with count_round_trips() as sent:
        session.save()  # deletes the old key, creates the new one
    assert sent == 2
    assert key_of(session) != old_key
    assert key_of(session).startswith(user_tag("7"))
    assert session.modified is True  # so the middleware sends the new cookie
    assert dict(SessionStore(key_of(session)).items()) == {
        "cart": "book",
        USER_ID_KEY: "7",
    }
    assert not session.exists(old_key)
    other_request["cart"] = "pen"
    with pytest.raises(UpdateError):
        other_request.save()


def test_a_move_cannot_bring_back_a_revoked_session(store: redis.Redis) -> None:
    running = SessionStore(key_of(logged_in("7")))
    assert running[USER_ID_KEY] == "7"  # loaded before the revoke
    assert revoke_all("7") == 1
    running[USER_ID_KEY] = "8"
    with pytest.raises(UpdateError):
        running.save()
    assert list_sessions("8") == []
    assert store.keys("*") == []


# What each operation costs, and what keeps the index exact.


def test_round_trips_of_a_users_session(store: redis.Redis) -> None:
    with count_round_trips() as created:
        key = key_of(logged_in("7"))
    with count_round_trips() as loaded:
        session = SessionStore(key)
        assert session[USER_ID_KEY] == "7"
    with count_round_trips() as updated:
        session["cart"] = "book"
        session.save()
    with count_round_trips() as listed:
        assert len(list_sessions("7")) == 1
    with count_round_trips() as deleted:
        session.delete()  # a logout: the session and its index entry
    assert (created, loaded, updated, listed, deleted) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert store.keys("*") == []  # the emptied index is gone too
    logged_in("7")
    with count_round_trips() as revoked:
        assert revoke_all("7") == 1
    assert revoked == 1


def entry_outlasts_session(client: redis.Redis, session_key: str, user: str) -> bool:
    """Whether the session's index entry, and the index, last as long as it."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    left_ms = client.pttl(SessionStore.redis_key(session_key))
    score = client.zscore(index_of(user), session_key)
    index_left_ms = client.pttl(index_of(user))
    return score is not None and score >= now_ms + left_ms and index_left_ms >= left_ms


def test_a_session_saved_past_its_ttl_stays_listed_and_revocable(
    store: redis.Redis,
) -> None:
    """Saved every 0.2 s for 2.5 times its 2 s TTL, while other sessions of
    the user come and go (each new one prunes the index): the session is
    listed and its entry outlasts it throughout, though most saves leave the
    index alone; then "log out everywhere" ends it."""
    session = logged_in("7", expiry=2)
    key = key_of(session)
    saves, entries = 0, set()
    start = time.monotonic()
    while time.monotonic() - start < 5:
        session["tick"] = saves
        session.save()
        saves += 1
        entries.add(store.zscore(index_of("7"), key))
        assert entry_outlasts_session(store, key, "7")
        listed = {s.session_key for s in list_sessions("7")}
        assert key in listed
        if saves % 5 == 0:
            logged_in("7", expiry=1)  # prunes the entries that have expired
        time.sleep(0.2)
    assert 1 < len(entries) < saves / 2
    assert revoke_all("7") >= 1
    assert not store.exists(SessionStore.redis_key(key))
    session["tick"] = "after"
    with pytest.raises(UpdateError):
        session.save()


def test_a_longer_expiry_rewrites_the_entry_at_once(store: redis.Redis) -> None:
    session = logged_in("7", expiry=60)
    key = key_of(session)
    before = store.zscore(index_of("7"), key)
    session["k"] = "v"
    session.save()  # within the entry: the index is left alone
    assert store.zscore(index_of("7"), key) == before
    session.set_expiry(3600)
    session.save()
    assert entry_outlasts_session(store, key, "7")
    assert header_of(store, key).indexed_until == header_of(store, key).saved + 7200


def test_a_logout_that_did_not_load_leaves_an_entry_that_listing_drops(
    store: redis.Redis,
) -> None:
    key = key_of(logged_in("7"))
    SessionStore(key).flush()  # not loaded: the user is unknown, UNLINK only
    assert store.zcard(index_of("7")) == 1
    assert list_sessions("7") == []
    assert store.keys("*") == []


def test_a_session_replaced_unread_loses_its_user(store: redis.Redis) -> None:
    key = key_of(logged_in("7"))
    session = SessionStore(key)
    session.clear()  # Django empties the cache without loading
    session["cart"] = "book"
    session.save()
    assert header_of(store, key).user is None
    assert list_sessions("7") == []
    assert dict(SessionStore(key).items()) == {"cart": "book"}


def test_a_logout_without_flush_leaves_the_index(store: redis.Redis) -> None:
    session = SessionStore(key_of(logged_in("7")))
    del session[USER_ID_KEY]
    session.save()
    assert store.exists(index_of("7")) == 0
    assert header_of(store, key_of(session)).user is None
    assert set(SessionStore(key_of(session)).keys()) == {BACKEND_KEY, HASH_KEY}


def test_expired_entries_are_pruned_by_the_next_write(store: redis.Redis) -> None:
    logged_in("7")
    store.zadd(index_of("7"), {"gone": 1})  # expired in 1970
    logged_in("7")
    assert store.zscore(index_of("7"), "gone") is None
    assert store.zcard(index_of("7")) == 2


def test_revoke_checks_each_sessions_owner_not_only_the_index(
    store: redis.Redis,
) -> None:
    """Even an index entry naming another user's session (two users whose tags
    are equal) never deletes it, nor lists it."""
    mine = logged_in("7")
    tag = user_tag("7")
    theirs = f"{tag}{'x' * 24}"
    value = b"1" + layout.user_header(1, 1, 1, "8") + b'j{"k":"v"}'
    store.set(SessionStore.redis_key(theirs), value, ex=300)
    store.zadd(index_of("7"), {theirs: 9e15})
    assert [s.session_key for s in list_sessions("7")] == [key_of(mine)]
    store.zadd(index_of("7"), {theirs: 9e15})
    assert revoke_all("7") == 1
    assert engine.SessionStore.revoke_user_sessions("7", [theirs]) == 0
    assert store.get(SessionStore.redis_key(theirs)) == value


def test_keys_that_cannot_be_the_users_never_reach_redis(store: redis.Redis) -> None:
    logged_in("7")
    untagged = "0" * 32 if not user_tag("7").startswith("0") else "1" * 32
    with count_round_trips() as sent:
        revoked = SessionStore.revoke_user_sessions(
            "7",
            ["short", "A" * 32, untagged, 7],  # type: ignore[list-item]
        )
    assert (revoked, sent) == (0, 0)
    assert len(list_sessions("7")) == 1


def test_sessions_keyed_under_a_fallback_secret_key(store: redis.Redis) -> None:
    with override_settings(SECRET_KEY="the old secret"):
        key = key_of(logged_in("7"))
    with override_settings(
        SECRET_KEY="the new secret", SECRET_KEY_FALLBACKS=["the old secret"]
    ):
        assert [s.session_key for s in list_sessions("7")] == [key]
        session = SessionStore(key)
        session["cart"] = "book"
        session.save()
        assert key_of(session) == key  # still valid: no move
        fresh = logged_in("7")
        assert fresh.session_key != key
        assert revoke_all("7", keep=key_of(fresh)) == 1
    with override_settings(SECRET_KEY="the new secret"):
        old = SessionStore(key_of(logged_in("7")))
    with override_settings(SECRET_KEY="a newer secret"):
        old["cart"] = "book"
        old.save()  # the old tag is no longer the user's: moved
        assert key_of(old).startswith(user_tag("7"))
        assert [s.session_key for s in list_sessions("7")] == [key_of(old)]


def test_async_login_and_logout(store: redis.Redis) -> None:
    asyncio.run(async_login_and_logout())


async def async_login_and_logout() -> None:
    anonymous = SessionStore()
    await anonymous.aset("cart", "book")
    await anonymous.asave()  # warms this event loop's client
    with count_round_trips() as logged:
        session = SessionStore(anonymous.session_key)
        await session.acycle_key()
        await session.aset(USER_ID_KEY, "7")
        key = key_of(session)
        await session.asave()
    assert logged == 3  # load, delete the old key, create
    assert key_of(session) == key
    assert key.startswith(user_tag("7"))
    assert not await session.aexists(anonymous.session_key)
    with count_round_trips() as cycled:
        await session.acycle_key()
    assert cycled == 1
    with count_round_trips() as moved:
        await session.aset(USER_ID_KEY, "8")
        await session.asave()
    assert moved == 2
    assert key_of(session).startswith(user_tag("8"))
    with count_round_trips() as deleted:
        await session.adelete()
    assert deleted == 1


def test_listing_and_revoking_need_redis(private_redis_server: RedisServer) -> None:
    with override_settings(
        SESSION_ENGINE=ENGINE,
        SESSION_REDIS={"url": private_redis_server.url, "socket_timeout": 2},
    ):
        logged_in("7")
        private_redis_server.stop()
        with pytest.raises(SessionStoreUnavailable):
            list_sessions("7")
        with pytest.raises(SessionStoreUnavailable):
            revoke_all("7")


# Redis Cluster: every script finds its keys in one slot.


def test_every_operation_runs_on_a_cluster() -> None:
    with ClusterSetup() as setup:
        cluster = RedisCluster(host="127.0.0.1", port=setup.nodes[0].port)
        try:
            with override_settings(
                SESSION_ENGINE=ENGINE,
                SESSION_REDIS={"cluster": True, "startup_nodes": setup.startup_nodes},
            ):
                run_on_cluster(cluster)
        finally:
            cluster.close()


def run_on_cluster(cluster: RedisCluster) -> None:
    users = [str(n) for n in range(12)]
    sessions = {user: [logged_in(user) for _ in range(2)] for user in users}
    nodes = set()
    for user, mine in sessions.items():
        node = cluster.get_node_from_key(index_of(user)).port
        nodes.add(node)
        for session in mine:
            redis_key = SessionStore.redis_key(key_of(session))
            assert cluster.get_node_from_key(redis_key).port == node
    assert len(nodes) > 1  # the users are spread over the primaries
    first, second = sessions["0"]
    again = SessionStore(key_of(first))
    again["cart"] = "book"
    again.save()
    again.cycle_key()
    again[USER_ID_KEY] = "1"  # moves to user 1's slot
    again.save()
    assert {s.session_key for s in list_sessions("1")} == {
        key_of(s) for s in sessions["1"]
    } | {key_of(again)}
    assert [s.session_key for s in list_sessions("0")] == [key_of(second)]
    assert revoke_all("1", keep=key_of(again)) == 2
    second.delete()
    assert list_sessions("0") == []
    assert [s.session_key for s in list_sessions("1")] == [key_of(again)]
    assert all(len(list_sessions(user)) == 2 for user in users[2:])


# Without the index: SESSION_REDIS["user_index"] = False.


@pytest.fixture
def no_index(store: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    with override_settings(SESSION_REDIS={"url": redis_url, "user_index": False}):
        open_pool()
        store.flushdb()
        yield store


def test_without_the_index_a_login_leaves_one_plain_key(no_index: redis.Redis) -> None:
    with count_round_trips() as created:
        session = logged_in("7")
    assert created == 1
    [key] = no_index.keys("*")
    assert key == SessionStore.redis_key(key_of(session)).encode()
    header = header_of(no_index, key_of(session))
    assert (header.version, header.user, header.created) == ("1", None, None)
    assert SessionStore(key_of(session))[USER_ID_KEY] == "7"


def test_without_the_index_listing_and_revoking_say_why_they_cannot(
    no_index: redis.Redis,
) -> None:
    logged_in("7")
    for call in (lambda: list_sessions("7"), lambda: revoke_all("7")):
        with pytest.raises(ImproperlyConfigured, match=r"\['user_index'\] = False"):
            call()


def test_without_the_index_each_operation_is_one_round_trip(
    no_index: redis.Redis,
) -> None:
    session = logged_in("7")
    with count_round_trips() as saved:
        session["cart"] = "book"
        session.save()
    with count_round_trips() as cycled:
        session.cycle_key()
    with count_round_trips() as deleted:
        session.delete()
    assert (saved, cycled, deleted) == (1, 1, 1)
    assert no_index.keys("*") == []


def test_without_the_index_a_rekey_never_brings_back_a_logout(
    no_index: redis.Redis,
) -> None:
    key = key_of(logged_in("7"))
    request = SessionStore(key)
    assert request[USER_ID_KEY] == "7"
    SessionStore(key).delete()  # a logout in another request
    request.cycle_key()
    with pytest.raises(UpdateError):
        request.save()
    assert no_index.keys("*") == []


def test_a_session_saved_without_the_index_joins_it_at_its_next_save(
    no_index: redis.Redis, redis_url: str
) -> None:
    key = key_of(logged_in("7"))
    with override_settings(SESSION_REDIS={"url": redis_url}):
        assert list_sessions("7") == []
        session = SessionStore(key)
        session["cart"] = "book"
        session.save()
        assert [s.session_key for s in list_sessions("7")] == [key]
        assert header_of(no_index, key).user == "7"


def test_user_ids_that_look_like_the_header_are_listed(store: redis.Redis) -> None:
    for user in ("7,8:9", "@1,2,3:", "é 😀"):
        key = key_of(logged_in(user))
        assert header_of(store, key).user == user
        assert [s.session_key for s in list_sessions(user)] == [key]
        assert revoke_all(user) == 1
