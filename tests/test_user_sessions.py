"""A user's sessions: listed and revoked through the API, on every engine
that keeps an index by user, and the memory engine's index itself.

The API tests run once per engine in ``ENGINES``. An engine's entry is a
context manager that takes pytest's ``request`` (for fixtures such as
``redis_client``), empties the engine's store and yields a harness:

- ``module``: the ``SESSION_ENGINE`` path;
- ``advance(seconds)``: move the engine's time on, both the clock that stamps
  when sessions are saved and the expiry of every stored session;
- ``now()``: the date the engine would stamp a save with now;
- ``tolerance``: how far the reported dates may be from the exact ones.

The Redis engine's own index is tested in ``tests/test_redis_user_index.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any, Protocol
from unittest import mock
from uuid import UUID

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.test import Client, override_settings
from django.test.utils import isolate_apps

from django_prologue_sessions.backends import _session_keys, memory
from django_prologue_sessions.backends.redis import store as redis_backend
from django_prologue_sessions.user_sessions import (
    UserSession,
    list_sessions,
    revoke_all,
    revoke_session,
    session_id,
    user_id_of,
)

START = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
COOKIE_AGE = timedelta(seconds=settings.SESSION_COOKIE_AGE)


class Harness(Protocol):
    module: str
    tolerance: timedelta

    def advance(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class MemoryHarness:
    """Stands in for both clocks of the memory engine; they move only when told."""

    module = "django_prologue_sessions.backends.memory"
    tolerance = timedelta(0)

    def __init__(self) -> None:
        self.monotonic = 50_000.0
        self.wall = START.timestamp()

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds
        self.wall += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall, UTC)

    def monotonic_clock(self) -> float:
        return self.monotonic

    def wall_clock(self) -> float:
        return self.wall


@contextmanager
def memory_engine(request: pytest.FixtureRequest) -> Iterator[MemoryHarness]:
    harness = MemoryHarness()
    memory.SessionStore.clear_all()
    with (
        mock.patch.object(memory, "_now", harness.monotonic_clock),
        mock.patch.object(memory, "_wall_now", harness.wall_clock),
    ):
        yield harness
    memory.SessionStore.clear_all()


class RedisHarness:
    """Stands in for the clock the Redis engine stamps saves with, and moves
    Redis's expiry on by shortening every key's TTL (deleting what runs out)."""

    module = "django_prologue_sessions.backends.redis"
    # Expiry is read back as Redis's TTL left, in milliseconds, when listing.
    tolerance = timedelta(seconds=1)

    def __init__(self, client: Any) -> None:
        self.client = client
        self.wall = START.timestamp()

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        for key in self.client.scan_iter():
            left = self.client.pttl(key) - round(seconds * 1000)
            if left <= 0:
                self.client.delete(key)
            else:
                self.client.pexpire(key, left)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall, UTC)

    def clock(self) -> float:
        return self.wall


@contextmanager
def redis_engine(request: pytest.FixtureRequest) -> Iterator[RedisHarness]:
    harness = RedisHarness(request.getfixturevalue("redis_client"))
    with (
        override_settings(SESSION_REDIS={"url": request.getfixturevalue("redis_url")}),
        mock.patch.object(redis_backend, "_now", harness.clock),
    ):
        yield harness


ENGINES: dict[
    str, Callable[[pytest.FixtureRequest], AbstractContextManager[Harness]]
] = {
    "memory": memory_engine,
    "redis": redis_engine,
}


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with (
        ENGINES[request.param](request) as harness,
        override_settings(SESSION_ENGINE=harness.module),
    ):
        yield harness


def store() -> SessionBase:
    session: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore()
    return session


def load(session_key: str | None) -> SessionBase:
    session: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore(
        session_key
    )
    return session


def login(user_id: str | int, **data: Any) -> SessionBase:
    """A saved session with the keys ``django.contrib.auth.login()`` sets."""
    session = store()
    session[SESSION_KEY] = user_id
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = "0" * 64
    session.update(data)
    session.save()
    return session


def ids(user_or_id: Any) -> list[str]:
    """The ids listed for the user: compare them with ``session_id(key)``."""
    return [s.id for s in list_sessions(user_or_id)]


def assert_listed(
    engine: Harness,
    got: UserSession,
    session: SessionBase,
    created: datetime,
    last_seen: datetime,
    expires: datetime,
) -> None:
    assert got.id == session_id(session.session_key)
    for name, want in (
        ("created", created),
        ("last_seen", last_seen),
        ("expires", expires),
    ):
        value = getattr(got, name)
        assert value.utcoffset() == timedelta(0), name
        assert abs(value - want) <= engine.tolerance, (name, value, want)


# The index follows every change of a session.


def test_a_login_is_listed_with_its_dates(engine: Harness) -> None:
    session = login("7")
    [listed] = list_sessions("7")
    assert_listed(engine, listed, session, START, START, START + COOKIE_AGE)


def test_anonymous_sessions_and_other_users_are_not_listed(engine: Harness) -> None:
    anonymous = store()
    anonymous["cart"] = ["book"]
    anonymous.save()
    other = login("8")
    assert list_sessions("7") == []
    assert ids("8") == [session_id(other.session_key)]


def test_a_save_moves_last_seen_and_expiry_not_created(engine: Harness) -> None:
    session = login("7")
    engine.advance(90)
    session["cart"] = ["book"]
    session.save()
    [listed] = list_sessions("7")
    later = START + timedelta(seconds=90)
    assert_listed(engine, listed, session, START, later, later + COOKIE_AGE)


def test_reading_is_not_seeing(engine: Harness) -> None:
    # last_seen is the last save: a request that only reads changes nothing.
    session = login("7")
    engine.advance(90)
    assert load(session.session_key)[SESSION_KEY] == "7"
    [listed] = list_sessions("7")
    assert_listed(engine, listed, session, START, START, START + COOKIE_AGE)


def test_set_expiry_is_reported(engine: Harness) -> None:
    session = login("7")
    session.set_expiry(300)
    session.save()
    [listed] = list_sessions("7")
    expires = START + timedelta(seconds=300)
    assert_listed(engine, listed, session, START, START, expires)


def test_most_recently_seen_first(engine: Harness) -> None:
    first = login("7")
    engine.advance(10)
    second = login("7")
    engine.advance(10)
    third = login("7")
    engine.advance(10)
    first["seen"] = True
    first.save()
    assert ids("7") == [
        session_id(first.session_key),
        session_id(third.session_key),
        session_id(second.session_key),
    ]


def test_a_login_as_another_user_moves_the_session(engine: Harness) -> None:
    session = login("7")
    session[SESSION_KEY] = "8"
    session.save()
    assert list_sessions("7") == []
    assert ids("8") == [session_id(session.session_key)]


def test_a_session_whose_user_id_is_removed_is_unlisted(engine: Harness) -> None:
    session = login("7", cart=["book"])
    del session[SESSION_KEY]
    session.save()
    assert list_sessions("7") == []
    assert load(session.session_key)["cart"] == ["book"]


def test_flush_unlists(engine: Harness) -> None:
    session = login("7")
    session.flush()
    assert list_sessions("7") == []


def test_logout_through_the_middleware_unlists(engine: Harness) -> None:
    client = Client()
    client.get("/session/set/", {SESSION_KEY: "7"})
    assert len(list_sessions("7")) == 1
    client.get("/session/flush/")
    assert list_sessions("7") == []


def test_cycle_key_lists_the_new_key_only(engine: Harness) -> None:
    session = login("7")
    old_key = session.session_key
    engine.advance(60)
    session.cycle_key()
    assert session.session_key != old_key
    [listed] = list_sessions("7")
    cycled = START + timedelta(seconds=60)
    assert_listed(engine, listed, session, cycled, cycled, cycled + COOKIE_AGE)


def test_delete_unlists(engine: Harness) -> None:
    kept, deleted, deleted_by_key = login("7"), login("7"), login("7")
    deleted.delete()
    store().delete(deleted_by_key.session_key)
    assert ids("7") == [session_id(kept.session_key)]


def test_expired_sessions_are_not_listed(engine: Harness) -> None:
    short = login("7")
    short.set_expiry(60)
    short.save()
    long = login("7")
    engine.advance(59)
    assert set(ids("7")) == {
        session_id(short.session_key),
        session_id(long.session_key),
    }
    engine.advance(1)
    assert ids("7") == [session_id(long.session_key)]


def test_a_user_id_stored_as_an_int_is_listed_by_its_string(engine: Harness) -> None:
    session = login(7)
    assert ids(7) == ids("7") == [session_id(session.session_key)]


def test_a_user_object_or_its_id(engine: Harness) -> None:
    with isolate_apps("tests"):

        class Member(models.Model):
            id = models.UUIDField(primary_key=True)

            class Meta:
                app_label = "tests"

            def __str__(self) -> str:
                return str(self.id)

        member_id = UUID("12345678-1234-5678-1234-567812345678")
        session = login(str(member_id))
        member = Member(id=member_id)
        assert user_id_of(member) == "12345678-1234-5678-1234-567812345678"
        assert ids(member) == ids(member_id) == [session_id(session.session_key)]
        assert revoke_all(member) == 1
        with pytest.raises(ValueError, match="not saved"):
            list_sessions(Member())


@pytest.mark.parametrize("bad", [True, None, 1.5, object()])
def test_what_is_not_a_user_nor_an_id_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="user object or a user's id"):
        user_id_of(bad)


# Revoking.


def test_revoke_one_session(engine: Harness) -> None:
    ended, kept = login("7"), login("7")
    assert revoke_session("7", ended.session_key) is True
    assert ids("7") == [session_id(kept.session_key)]
    assert store().exists(ended.session_key) is False
    assert revoke_session("7", ended.session_key) is False


def test_revoke_a_listed_session_by_its_id(engine: Harness) -> None:
    ended, kept = login("7"), login("7")
    (listed,) = [s for s in list_sessions("7") if s.id != session_id(kept.session_key)]
    assert revoke_session("7", listed.id) is True
    assert ids("7") == [session_id(kept.session_key)]
    assert store().exists(ended.session_key) is False
    assert revoke_session("7", listed) is False


def test_revoke_all_but_a_listed_session(engine: Harness) -> None:
    kept, _ended = login("7"), login("7")
    (listed,) = [s for s in list_sessions("7") if s.id == session_id(kept.session_key)]
    assert revoke_all("7", keep=listed) == 1
    assert revoke_all("7", keep=listed.id) == 0
    assert ids("7") == [listed.id]


def test_a_session_id_gives_nothing_of_the_key_but_its_tag(engine: Harness) -> None:
    session = login("7")
    key = session.session_key
    assert key is not None
    (listed,) = list_sessions("7")
    assert listed.id[:8] == key[:8]
    assert len(listed.id) == len(key) - 1
    assert all(key[i : i + 16] not in listed.id for i in range(len(key) - 15))
    with pytest.raises(TypeError, match="session key or id"):
        revoke_session("7", 42)  # type: ignore[arg-type]


def test_revoke_never_ends_another_users_session(engine: Harness) -> None:
    login("7")
    others = login("8")
    assert revoke_session("7", others.session_key) is False
    assert store().exists(others.session_key) is True
    assert revoke_all("7", keep=others.session_key) == 1
    assert ids("8") == [session_id(others.session_key)]


def test_revoke_an_unknown_session(engine: Harness) -> None:
    login("7")
    assert revoke_session("7", "nosuchsessionkeyatall00000000000") is False
    assert revoke_session("9", "nosuchsessionkeyatall00000000000") is False
    assert len(list_sessions("7")) == 1


def test_revoke_all(engine: Harness) -> None:
    mine = [login("7") for _ in range(3)]
    other = login("8")
    anonymous = store()
    anonymous["cart"] = ["book"]
    anonymous.save()
    assert revoke_all("7") == 3
    assert list_sessions("7") == []
    for session in mine:
        assert store().exists(session.session_key) is False
    assert store().exists(other.session_key) is True
    assert store().exists(anonymous.session_key) is True
    assert revoke_all("7") == 0


def test_revoke_all_but_the_current_session(engine: Harness) -> None:
    current, *others = [login("7") for _ in range(3)]
    assert revoke_all("7", keep=current.session_key) == 2
    assert ids("7") == [session_id(current.session_key)]
    for session in others:
        assert store().exists(session.session_key) is False


def test_expired_sessions_are_not_counted_as_revoked(engine: Harness) -> None:
    short = login("7")
    short.set_expiry(60)
    short.save()
    login("7")
    engine.advance(60)
    assert revoke_all("7") == 1


def test_revoked_users_are_logged_out_through_the_middleware(engine: Harness) -> None:
    auth = {
        SESSION_KEY: "7",
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: "0" * 64,
    }
    laptop, phone, someone_else = Client(), Client(), Client()
    laptop.get("/session/set/", auth)
    phone.get("/session/set/", auth)
    someone_else.get("/session/set/", {**auth, SESSION_KEY: "8"})
    laptop_key = laptop.cookies[settings.SESSION_COOKIE_NAME].value

    assert revoke_all("7", keep=laptop_key) == 1

    assert phone.get("/session/get/").json() == {}
    assert laptop.get("/session/get/").json() == auth
    assert someone_else.get("/session/get/").json()[SESSION_KEY] == "8"
    # Saving on the phone again starts a new, anonymous session.
    phone.get("/session/set/", {"cart": "book"})
    assert phone.get("/session/get/").json() == {"cart": "book"}
    assert ids("7") == [session_id(laptop_key)]


def test_a_request_running_during_revoke_cannot_undo_it(engine: Harness) -> None:
    session = login("7")
    running = load(session.session_key)
    assert running[SESSION_KEY] == "7"  # loaded before the revoke
    revoke_all("7")
    running["cart"] = ["book"]
    with pytest.raises(UpdateError):
        running.save()
    assert list_sessions("7") == []
    assert store().exists(session.session_key) is False


# A bounded number of sessions per user, listed and revoked a page at a time.


def max_sessions_per_user(limit: int) -> override_settings:
    """The engine's own setting for the most sessions a user may have."""
    if RedisHarness.module == settings.SESSION_ENGINE:
        return override_settings(
            SESSION_REDIS={**settings.SESSION_REDIS, "max_sessions_per_user": limit}
        )
    return override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER=limit)


def login_in_turn(engine: Harness, user_id: str) -> SessionBase:
    """A login after the ones before, in the engine's clock and in Redis's."""
    engine.advance(1)
    time.sleep(0.002)  # Redis scores the index in milliseconds of its own
    return login(user_id)


def test_a_login_past_the_limit_ends_the_oldest_sessions(engine: Harness) -> None:
    other = login("8")
    with max_sessions_per_user(3):
        first, second, third = (login_in_turn(engine, "7") for _ in range(3))
        fourth = login_in_turn(engine, "7")
        assert sorted(ids("7")) == sorted(
            session_id(s.session_key) for s in (second, third, fourth)
        )
        assert dict(load(first.session_key).items()) == {}
        assert store().exists(first.session_key) is False
        assert ids("8") == [session_id(other.session_key)]


def test_the_new_session_is_never_the_one_ended(engine: Harness) -> None:
    with max_sessions_per_user(2):
        oldest, kept = login_in_turn(engine, "7"), login_in_turn(engine, "7")
        newest = store()
        newest.set_expiry(60)  # it expires before any other
        newest[SESSION_KEY] = "7"
        newest.save()
        assert sorted(ids("7")) == sorted(
            [session_id(kept.session_key), session_id(newest.session_key)]
        )
        assert store().exists(oldest.session_key) is False


def test_a_login_on_an_anonymous_session_counts(engine: Harness) -> None:
    """The middleware's way: a stored anonymous session gains the user."""
    auth = {
        SESSION_KEY: "7",
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: "0" * 64,
    }
    with max_sessions_per_user(2):
        oldest = login_in_turn(engine, "7")
        login_in_turn(engine, "7")
        engine.advance(1)
        time.sleep(0.002)
        browser = Client()
        browser.get("/session/set/", {"cart": "book"})
        browser.get("/session/set/", auth)
        assert len(ids("7")) == 2
        assert session_id(oldest.session_key) not in ids("7")


def test_the_default_limit_is_a_hundred(engine: Harness) -> None:
    sessions = [login("7") for _ in range(101)]
    listed = ids("7")
    assert len(listed) == 100
    assert session_id(sessions[-1].session_key) in listed


def test_many_sessions_are_listed_and_revoked_whole(engine: Harness) -> None:
    with max_sessions_per_user(1000):
        sessions = [login("7", n=n) for n in range(250)]
        wanted = sorted(session_id(s.session_key) for s in sessions)
        assert sorted(ids("7")) == wanted
        engine_store = import_module(settings.SESSION_ENGINE).SessionStore
        assert engine_store.revoke_user_sessions("7", wanted[:150]) == 150
        assert sorted(ids("7")) == wanted[150:]
        assert revoke_all("7", keep=wanted[200]) == 99
        assert ids("7") == [wanted[200]]


# Engines without an index by user.


@pytest.mark.parametrize(
    "engine_path",
    [
        "django_prologue_sessions.backends.signed_cookies",
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
def test_signed_cookies_cannot_and_say_what_to_do(engine_path: str) -> None:
    with (
        override_settings(SESSION_ENGINE=engine_path),
        pytest.raises(ImproperlyConfigured) as caught,
    ):
        list_sessions("7")
    message = str(caught.value)
    assert repr(engine_path) in message
    assert "django_prologue_sessions.backends.memory" in message
    assert "django_prologue_sessions.backends.redis" in message
    assert "no record on the server" in message
    assert "rotate SECRET_KEY" in message
    assert "per-user token" in message


@pytest.mark.parametrize("call", [list_sessions, revoke_all])
def test_other_engines_cannot(call: Callable[[str], Any]) -> None:
    with (
        override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache"),
        pytest.raises(
            ImproperlyConfigured,
            match=r"'django.contrib.sessions.backends.cache' cannot list or revoke",
        ) as caught,
    ):
        call("7")
    assert "SECRET_KEY" not in str(caught.value)


# The memory engine's index.


@pytest.fixture
def memory_engine_only(request: pytest.FixtureRequest) -> Iterator[MemoryHarness]:
    with (
        memory_engine(request) as harness,
        override_settings(SESSION_ENGINE=MemoryHarness.module),
    ):
        yield harness


def assert_index_matches_entries(store: memory.MemoryStore) -> None:
    by_user: dict[str, set[str]] = {}
    for key, entry in store._entries.items():
        if entry[2] is not None:
            by_user.setdefault(entry[2], set()).add(key)
    assert store._by_user == by_user


def test_the_user_id_key_is_djangos() -> None:
    assert _session_keys.USER_ID_KEY == SESSION_KEY


@override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=2)
def test_evicted_sessions_are_unlisted(memory_engine_only: MemoryHarness) -> None:
    oldest, middle = login("7"), login("7")
    newest = login("8")
    assert ids("7") == [session_id(middle.session_key)]
    assert ids("8") == [session_id(newest.session_key)]
    assert store().exists(oldest.session_key) is False
    assert_index_matches_entries(memory.SessionStore.store)


def test_expired_sessions_leave_the_index(memory_engine_only: MemoryHarness) -> None:
    for user_id in ("7", "7", "8"):
        session = login(user_id)
        session.set_expiry(60)
        session.save()
    memory_engine_only.advance(60)
    assert memory.SessionStore.store.clear_expired() == 3
    assert memory.SessionStore.store._by_user == {}


def test_listing_removes_the_expired_sessions_it_meets(
    memory_engine_only: MemoryHarness,
) -> None:
    session = login("7")
    session.set_expiry(60)
    session.save()
    memory_engine_only.advance(60)
    assert list_sessions("7") == []
    assert len(memory.SessionStore.store) == 0
    assert memory.SessionStore.store._by_user == {}


def test_an_expired_key_taken_by_another_user(
    memory_engine_only: MemoryHarness,
) -> None:
    key = "reusedsessionkey0000000000000000"
    first = load(key)
    first.update({SESSION_KEY: "7"})
    first.set_expiry(60)
    first.save(must_create=True)
    memory_engine_only.advance(60)
    # A session loads (dropping an expired key) before it saves: only the
    # store itself meets the expired entry.
    assert memory.SessionStore.store.add(key, b"{}", 60, 10, "8") is True
    assert list_sessions("7") == []
    assert ids("8") == [session_id(key)]
    assert_index_matches_entries(memory.SessionStore.store)


def test_reading_an_expired_session_drops_it_from_the_index(
    memory_engine_only: MemoryHarness,
) -> None:
    session = login("7")
    session.set_expiry(60)
    session.save()
    memory_engine_only.advance(60)
    assert load(session.session_key).load() == {}
    assert memory.SessionStore.store._by_user == {}


def test_clear_all_empties_the_index(memory_engine_only: MemoryHarness) -> None:
    login("7")
    memory.SessionStore.clear_all()
    assert list_sessions("7") == []
    assert memory.SessionStore.store._by_user == {}


def test_dates_follow_the_wall_clock_expiry_does_not(
    memory_engine_only: MemoryHarness,
) -> None:
    session = login("7")
    session.set_expiry(3600)
    session.save()
    memory_engine_only.wall -= 7200  # the system clock is set back two hours
    [listed] = list_sessions("7")
    back = START - timedelta(hours=2)
    assert_listed(
        memory_engine_only, listed, session, back, back, back + timedelta(hours=1)
    )
    assert store().exists(session.session_key) is True


@override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=40)
def test_the_index_stays_exact_under_threads() -> None:
    memory.SessionStore.clear_all()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for step in range(150):
                user_id = str((worker + step) % 5)
                session = login(user_id)
                if step % 2:
                    session[SESSION_KEY] = str((worker + step + 1) % 5)
                    with suppress(UpdateError):  # evicted, revoked meanwhile
                        session.save()
                if step % 3 == 0:
                    session.cycle_key()
                if step % 5 == 0:
                    session.flush()
                if step % 7 == 0:
                    revoke_all(user_id, keep=session.session_key)
                if step % 11 == 0:
                    for listed in list_sessions(user_id):
                        revoke_session(user_id, listed)
                if step % 13 == 0:
                    memory.SessionStore.clear_expired()
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    with override_settings(SESSION_ENGINE=MemoryHarness.module):
        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        store_ = memory.SessionStore.store
        assert_index_matches_entries(store_)
        listed = {s.id for user in "01234" for s in list_sessions(user)}
        assert listed == {
            session_id(k) for k, e in store_._entries.items() if e[2] is not None
        }
    memory.SessionStore.clear_all()
