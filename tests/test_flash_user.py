"""``flash_user()``: a message to every session of a user, from outside its
requests, on the memory and Redis engines (a real server), read back through
Django's test client and the real middleware.

Ada signs in on a laptop and a phone, Bob on his own computer. Messages are
flashed from a thread, an async task, or while a request of the session is
saving it, and each client then reads its messages as any request does.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.messages.storage.session import SessionStorage
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from django_prologue_sessions.backends import memory
from django_prologue_sessions.backends.redis import store as redis_store
from django_prologue_sessions.backends.redis import user_changes
from django_prologue_sessions.backends.redis.connection import SyncRedis, async_redis
from django_prologue_sessions.backends.redis.store import SessionStore
from django_prologue_sessions.exceptions import (
    SessionStoreUnavailable,
    UserSessionsUnsupported,
)
from django_prologue_sessions.flash import aflash_user, flash_user
from django_prologue_sessions.user_sessions import (
    SessionChange,
    list_sessions,
    revoke_all,
)
from tests import views
from tests.redis_server import free_port
from tests.test_activity import ENGINES, recording_on
from tests.test_redis_layout import assert_no_piece_of, everything_in

# The module, which the package's flash() function hides.
flash = importlib.import_module("django_prologue_sessions.flash")

SESSION_STORAGE = "django.contrib.messages.storage.session.SessionStorage"


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, db: None) -> Iterator[str]:
    # The whole middleware stack, activity recording too: the sessions hold
    # what a site's do, and requests save them as a site's would.
    with recording_on(request, MESSAGE_STORAGE=SESSION_STORAGE) as name:
        yield name


@pytest.fixture
def users(engine: str) -> dict[str, AbstractBaseUser]:
    model = get_user_model()
    return {name: model.objects.create_user(username=name) for name in ("ada", "bob")}


@pytest.fixture
def ada(users: dict[str, AbstractBaseUser]) -> AbstractBaseUser:
    return users["ada"]


def log_in(username: str) -> Client:
    client = Client()
    assert client.post("/account/login/", {"username": username}).status_code == 200
    return client


def flashed(client: Client, *levels: str) -> list[list[Any]]:
    """What the client's next request reads: ``[level, text, tags]`` each."""
    response = client.get("/flash/get/", {"level": levels} if levels else {})
    assert response.status_code == 200
    found: list[list[Any]] = response.json()
    return found


def session(client: Client) -> dict[str, Any]:
    found: dict[str, Any] = client.get("/session/get/").json()
    return found


def in_a_thread(function: Callable[[], int]) -> int:
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(function()))
    thread.start()
    thread.join(30)
    [result] = results
    return result


@contextmanager
def around_each_change(hook: Callable[[str], None]) -> Iterator[None]:
    """Run ``hook(user_id)`` each time flash_user() has changed a session's
    data and before it writes it: between its read and its write."""
    user_flash = flash._user_flash

    def hooked(*args: Any) -> tuple[Any, str, SessionChange | None]:
        engine, user_id, change = user_flash(*args)
        assert change is not None

        def change_then_hook(data: dict[str, Any]) -> bool:
            changed: bool = change(data)
            hook(user_id)
            return changed

        return engine, user_id, change_then_hook

    with mock.patch.object(flash, "_user_flash", hooked):
        yield


# Delivery.


def test_from_a_thread_each_of_the_users_sessions_shows_it_once(
    users: dict[str, AbstractBaseUser],
) -> None:
    laptop, phone, bob = log_in("ada"), log_in("ada"), log_in("bob")
    reached = in_a_thread(lambda: flash_user(users["ada"], "Export ready", "success"))
    assert reached == 2
    for client in (laptop, phone):
        assert flashed(client) == [[25, "Export ready", "success"]]
        assert flashed(client) == []
    assert flashed(bob) == []


def test_shown_at_the_next_read_of_its_level(ada: AbstractBaseUser) -> None:
    laptop = log_in("ada")
    assert flash_user(ada.pk, "Password changed", "warning", extra_tags="security")
    assert flashed(laptop, "error") == []
    assert flashed(laptop, "warning") == [[30, "Password changed", "security warning"]]
    assert flashed(laptop, "warning") == []


def test_added_after_the_sessions_own_messages_which_stay(
    ada: AbstractBaseUser,
) -> None:
    laptop = log_in("ada")
    laptop.post("/flash/add/", {"level": ["info"], "message": ["mine"]})
    assert flash_user(str(ada.pk), "from a task") == 1
    assert flashed(laptop) == [[20, "mine", "info"], [20, "from a task", "info"]]


def test_the_async_twin_from_an_async_task(
    engine: str, users: dict[str, AbstractBaseUser]
) -> None:
    laptop, phone, bob = log_in("ada"), log_in("ada"), log_in("bob")

    async def task() -> int:
        reached = await asyncio.create_task(
            aflash_user(users["ada"].pk, "Done", "info")
        )
        if engine == "redis":
            # Closed with its loop, not whenever it is collected: other
            # tests count what the server reads.
            await async_redis().client.aclose()
        return reached

    assert asyncio.run(task()) == 2
    for client in (laptop, phone):
        assert flashed(client) == [[20, "Done", "info"]]
        assert flashed(client) == []
    assert flashed(bob) == []


def test_from_a_request_its_own_session_shows_it_next(ada: AbstractBaseUser) -> None:
    laptop, phone = log_in("ada"), log_in("ada")
    assert laptop.get("/messages/flash-own-user/").json() == 2
    for client in (laptop, phone):
        assert flashed(client) == [[20, "everywhere", "info"]]
    assert session(laptop)["cart"] == "book"  # the request's own change too


def test_a_user_with_no_session_is_reached_nowhere(ada: AbstractBaseUser) -> None:
    log_in("bob")
    assert flash_user(ada, "nobody there") == 0


def test_a_dropped_message_changes_no_session(ada: AbstractBaseUser) -> None:
    laptop = log_in("ada")
    before = session(laptop)
    with override_settings(MESSAGE_LEVEL=30):
        assert flash_user(ada, "below the level", "info") == 0
    assert flash_user(ada, "") == 0
    assert session(laptop) == before


def test_a_flash_is_not_a_visit(engine: str, ada: AbstractBaseUser) -> None:
    # The session keeps its dates and its expiry: a message from elsewhere
    # neither prolongs it nor shows it as seen.
    log_in("ada")
    [before] = list_sessions(ada)
    an_hour_on = {
        "memory": (memory, ("_now", "_wall_now")),
        "redis": (redis_store, ("_now",)),
    }
    module, clocks = an_hour_on[engine]
    with ExitStack() as stack:
        for name in clocks:
            later = getattr(module, name)() + 3600
            stack.enter_context(mock.patch.object(module, name, lambda t=later: t))
        assert flash_user(ada, "later") == 1
    [after] = list_sessions(ada)
    # (The memory engine's dates come from its monotonic clock, a little
    # apart each time they are read.)
    close = timedelta(seconds=1)
    assert abs(after.created - before.created) < close
    assert abs(after.last_seen - before.last_seen) < close
    assert after.expires < before.expires + close


def test_pages_through_many_sessions(ada: AbstractBaseUser) -> None:
    clients = [log_in("ada") for _ in range(7)]
    with mock.patch.object(user_changes, "PAGE", 2):
        assert flash_user(ada, "to all seven") == 7
    for client in clients:
        assert flashed(client) == [[20, "to all seven", "info"]]


# Atomic against the session's own requests and other flashes.


def test_a_save_between_its_read_and_its_write_keeps_both(
    ada: AbstractBaseUser,
) -> None:
    laptop = log_in("ada")
    saves: list[Any] = []

    def save_in_a_request(user_id: str) -> None:
        if not saves:  # the first time only: then it writes, and succeeds
            saves.append(laptop.get("/session/set/", {"cart": "book"}))

    with around_each_change(save_in_a_request):
        assert flash_user(ada, "both") == 1
    assert session(laptop)["cart"] == "book"
    assert flashed(laptop) == [[20, "both", "info"]]


@contextmanager
def held(client: Client, path: str, **params: str) -> Iterator[list[Any]]:
    """A request of ``client`` that has loaded its session and waits until
    the block ends, then saves; its response is in the list yielded."""
    answers: list[Any] = []
    views.HELD.clear()
    views.LET_GO.clear()
    request = threading.Thread(target=lambda: answers.append(client.get(path, params)))
    request.start()
    try:
        assert views.HELD.wait(10)
        yield answers
    finally:
        views.LET_GO.set()
        request.join(10)
    [response] = answers
    assert response.status_code == 200


def test_a_request_that_loaded_before_and_saves_after_keeps_both(
    ada: AbstractBaseUser,
) -> None:
    laptop = log_in("ada")
    with held(laptop, "/session/set-later/", cart="book"):
        assert flash_user(ada, "meanwhile") == 1
    assert session(laptop)["cart"] == "book"
    assert flashed(laptop) == [[20, "meanwhile", "info"]]


def test_a_request_showing_messages_meanwhile_leaves_the_new_one(
    ada: AbstractBaseUser,
) -> None:
    # The request consumes what it loaded; its save merges the messages
    # (django_prologue_sessions.merge): stored, less those it consumed, plus
    # those it added.
    laptop = log_in("ada")
    assert flash_user(ada, "old") == 1
    with held(laptop, "/messages/read-later/") as responses:
        assert flash_user(ada, "new") == 1
    assert responses[0].json() == ["old"]
    assert flashed(laptop) == [[20, "new", "info"]]
    assert flashed(laptop) == []


def test_racing_saves_and_flashes_lose_nothing(ada: AbstractBaseUser) -> None:
    laptop, phone = log_in("ada"), log_in("ada")
    flashes, saves = 20, 20
    start = threading.Barrier(3)
    failures: list[BaseException] = []

    def run(work: Callable[[int], None], count: int) -> None:
        start.wait()
        try:
            for i in range(count):
                work(i)
        except BaseException as exc:
            failures.append(exc)

    def flash_both(i: int) -> None:
        assert flash_user(ada, f"m{i}") == 2

    def save(i: int) -> None:
        assert laptop.get("/session/set/", {f"k{i}": "v"}).status_code == 200

    threads = [
        threading.Thread(target=run, args=(flash_both, flashes)),
        threading.Thread(target=run, args=(flash_both, flashes)),
        threading.Thread(target=run, args=(save, saves)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    stored = session(laptop)
    assert {f"k{i}" for i in range(saves)} <= stored.keys()
    for client in (laptop, phone):
        texts = sorted(text for _, text, _ in flashed(client))
        assert texts == sorted(f"m{i}" for i in range(flashes) for _ in range(2))


def test_a_session_revoked_meanwhile_stays_ended(ada: AbstractBaseUser) -> None:
    laptop = log_in("ada")

    def revoke(user_id: str) -> None:
        revoke_all(user_id)

    with around_each_change(revoke):
        assert flash_user(ada, "too late") == 0
    assert list_sessions(ada) == []
    assert session(laptop) == {}  # anonymous: the session was not brought back
    assert flashed(laptop) == []


def test_a_session_logged_out_meanwhile_stays_ended(ada: AbstractBaseUser) -> None:
    laptop = log_in("ada")

    def log_out(user_id: str) -> None:
        laptop.get("/session/flush/")

    with around_each_change(log_out):
        assert flash_user(ada, "too late") == 0
    assert list_sessions(ada) == []
    assert session(laptop) == {}


# What it needs.


@pytest.mark.parametrize(
    ("storage", "why"),
    [
        ("django.contrib.messages.storage.cookie.CookieStorage", "keeps no messages"),
        # It reads its session part only when its cookie says it overflowed.
        ("django.contrib.messages.storage.fallback.FallbackStorage", "overflowed"),
    ],
)
def test_a_storage_it_cannot_reach_names_what_would_work(
    ada: AbstractBaseUser, storage: str, why: str
) -> None:
    log_in("ada")
    with (
        override_settings(MESSAGE_STORAGE=storage),
        pytest.raises(ImproperlyConfigured) as raised,
    ):
        flash_user(ada, "x")
    assert f"MESSAGE_STORAGE {storage!r} " in str(raised.value)
    assert why in str(raised.value)
    assert f"Use MESSAGE_STORAGE = {SESSION_STORAGE!r}." in str(raised.value)


class SessionFirstStorage(FallbackStorage):
    """The session, then a cookie: the session part is read at every request."""

    storage_classes = (SessionStorage, CookieStorage)


def test_a_storage_whose_first_part_is_the_session(ada: AbstractBaseUser) -> None:
    storage = f"{__name__}.SessionFirstStorage"
    with override_settings(MESSAGE_STORAGE=storage):
        laptop = log_in("ada")
        assert flash_user(ada, "first part") == 1
        assert flashed(laptop) == [[20, "first part", "info"]]
        assert flashed(laptop) == []


@pytest.mark.parametrize(
    ("engine_name", "says"),
    [
        ("django_prologue_sessions.backends.signed_cookies", "kept by the browser"),
        ("django.contrib.sessions.backends.signed_cookies", "kept by the browser"),
        ("django.contrib.sessions.backends.cache", "keeps no index"),
    ],
)
def test_an_engine_without_a_user_index_names_those_with_one(
    engine_name: str, says: str
) -> None:
    with (
        override_settings(SESSION_ENGINE=engine_name, MESSAGE_STORAGE=SESSION_STORAGE),
        pytest.raises(UserSessionsUnsupported) as raised,
    ):
        flash_user("7", "x")
    message = str(raised.value)
    assert f"{engine_name!r} cannot flash messages to a user's sessions" in message
    assert says in message
    assert "django_prologue_sessions.backends.redis" in message


def test_the_redis_engine_needs_its_user_index(redis_url: str) -> None:
    with (
        override_settings(
            SESSION_ENGINE="django_prologue_sessions.backends.redis",
            SESSION_REDIS={"url": redis_url, "user_index": False},
            MESSAGE_STORAGE=SESSION_STORAGE,
        ),
        pytest.raises(UserSessionsUnsupported, match="needs the user index"),
    ):
        flash_user("7", "x")


# (The memory engine keeps the keys in the process that holds them anyway.)
@pytest.mark.parametrize("engine", ["redis"], indirect=True)
def test_redis_learns_no_session_key_from_it(
    engine: str, ada: AbstractBaseUser, redis_client: redis.Redis
) -> None:
    clients = [log_in("ada"), log_in("ada")]
    assert flash_user(ada, "from a task") == 2
    cookies = [client.cookies[settings.SESSION_COOKIE_NAME].value for client in clients]
    stored = everything_in(redis_client)
    assert any(b"from a task" in item for item in stored)
    assert_no_piece_of(cookies, stored)


@pytest.mark.parametrize("engine", ["redis"], indirect=True)
def test_many_sessions_a_bounded_page_per_command(
    engine: str, redis_client: redis.Redis
) -> None:
    # Past 128 members a sorted set is no longer one listpack, and ZSCAN
    # returns it a page at a time.
    many = 300
    # One user with more sessions than max_sessions_per_user allows by default.
    limit = {**settings.SESSION_REDIS, "max_sessions_per_user": many}
    with override_settings(SESSION_REDIS=limit):
        keys = []
        for _ in range(many):
            stored = SessionStore()
            stored["_auth_user_id"] = "7"
            stored.save()
            assert stored.session_key is not None
            keys.append(stored.session_key)
        sent: list[tuple[Any, ...]] = []
        execute = SyncRedis.execute

        def recording(self: SyncRedis, *command: Any, **options: Any) -> Any:
            sent.append(command)
            return execute(self, *command, **options)

        with mock.patch.object(SyncRedis, "execute", recording):
            assert flash_user("7", "to every one") == many
        scans = [c for c in sent if c[0] == "ZSCAN"]
        reads = [c for c in sent if c[0] == "MGET"]
        assert len(scans) > 1
        assert sum(len(c) - 1 for c in reads) == many
        assert max(len(c) - 1 for c in reads) <= 2 * user_changes.PAGE
        for key in keys:
            assert SessionStore(key).load()["_messages"].count("to every one") == 1


@pytest.mark.parametrize("on_unavailable", ["raise", "empty"])
def test_redis_down_is_a_clear_error(on_unavailable: str) -> None:
    # Even in "empty" mode, which serves requests: a task learns that its
    # message reached no one.
    down = {
        "url": f"redis://127.0.0.1:{free_port()}/0",
        "socket_timeout": 0.5,
        "on_unavailable": on_unavailable,
    }
    calls: list[Callable[[], int]] = [
        lambda: flash_user("7", "nobody hears"),
        lambda: asyncio.run(aflash_user("7", "nobody hears")),
    ]
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS=down,
        MESSAGE_STORAGE=SESSION_STORAGE,
    ):
        for call in calls:
            with pytest.raises(SessionStoreUnavailable, match="Nothing was written"):
                call()
