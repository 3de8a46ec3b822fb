"""The in-process memory engine: the contract, isolation, expiry, bounds, threads."""

from __future__ import annotations

import asyncio
import heapq
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any
from unittest import mock

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, RequestFactory, SimpleTestCase, override_settings
from django.urls import path

from django_prologue_sessions.backends import memory
from django_prologue_sessions.backends._session_keys import new_session_key
from django_prologue_sessions.backends.memory import MemoryStore, SessionStore
from tests import views
from tests.session_contract import SessionContractTests

ENGINE = "django_prologue_sessions.backends.memory"


# Views of this module's own (ROOT_URLCONF="tests.test_memory").


def cart_add_in_place(request: HttpRequest) -> HttpResponse:
    """Change a value read from the session, without marking the session."""
    request.session["cart"].append(request.GET["item"])
    return HttpResponse("ok")


def cart_add(request: HttpRequest) -> HttpResponse:
    request.session["cart"] = [*request.session.get("cart", []), request.GET["item"]]
    return HttpResponse("ok")


def cart_get(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"cart": request.session.get("cart")})


def set_after_a_pause(request: HttpRequest) -> HttpResponse:
    """Load the session, let other threads run, then set the query's keys."""
    request.session.get("start")
    time.sleep(0.002)
    return views.session_set(request)


urlpatterns = [
    path("session/set-after-a-pause/", set_after_a_pause),
    path("session/set/", views.session_set),
    path("session/get/", views.session_get),
    path("session/flush/", views.session_flush),
    path("session/cycle/", views.session_cycle),
    path("cart/add-in-place/", cart_add_in_place),
    path("cart/add/", cart_add),
    path("cart/", cart_get),
]


class Clock:
    """Stands in for ``memory._now``; moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryContractTests(SessionContractTests, SimpleTestCase):
    backend = SessionStore

    def setUp(self) -> None:
        SessionStore.clear_all()
        super().setUp()


@override_settings(SESSION_ENGINE=ENGINE, ROOT_URLCONF="tests.test_memory")
class MemoryTestCase(SimpleTestCase):
    def setUp(self) -> None:
        super().setUp()
        SessionStore.clear_all()
        self.clock = Clock()
        self.enterContext(mock.patch.object(memory, "_now", self.clock))

    def saved(self, **data: Any) -> SessionStore:
        session = SessionStore()
        session.update(data)
        session.save()
        return session

    def client_for(self, session_key: str | None) -> Client:
        client = Client()
        client.cookies = SimpleCookie({settings.SESSION_COOKIE_NAME: session_key or ""})
        return client


class IsolationTests(MemoryTestCase):
    def test_changing_a_loaded_value_changes_nothing_stored(self) -> None:
        key = self.saved(cart=["apple"]).session_key
        reader = SessionStore(key)
        reader["cart"].append("pear")
        self.assertEqual(SessionStore(key)["cart"], ["apple"])

    def test_changing_a_value_after_save_changes_nothing_stored(self) -> None:
        session = self.saved(cart=["apple"])
        session["cart"].append("pear")
        self.assertEqual(SessionStore(session.session_key)["cart"], ["apple"])

    def test_two_loads_of_one_session_share_no_object(self) -> None:
        key = self.saved(cart=["apple"], user={"id": 1}).session_key
        first, second = SessionStore(key), SessionStore(key)
        self.assertEqual(first["cart"], second["cart"])
        self.assertIsNot(first["cart"], second["cart"])
        self.assertIsNot(first["user"], second["user"])

    def test_in_place_change_in_a_view_is_not_stored_without_marking(self) -> None:
        client = Client()
        client.get("/cart/add/", {"item": "apple"})
        client.get("/cart/add-in-place/", {"item": "pear"})
        self.assertEqual(client.get("/cart/").json(), {"cart": ["apple"]})

    def test_assigned_change_in_a_view_is_stored(self) -> None:
        client = Client()
        client.get("/cart/add/", {"item": "apple"})
        client.get("/cart/add/", {"item": "pear"})
        self.assertEqual(client.get("/cart/").json(), {"cart": ["apple", "pear"]})


class ExpiryTests(MemoryTestCase):
    def test_expired_session_is_never_returned(self) -> None:
        session = SessionStore()
        session["x"] = 1
        session.set_expiry(60)
        session.save()
        key = session.session_key
        self.clock.advance(59)
        self.assertIs(SessionStore().exists(key), True)
        self.assertEqual(SessionStore(key).load(), {"x": 1, "_session_expiry": 60})
        self.clock.advance(1)
        self.assertIs(SessionStore().exists(key), False)
        expired = SessionStore(key)
        self.assertEqual(expired.load(), {})
        self.assertIsNone(expired.session_key)

    def test_expiry_counts_from_the_last_save_not_the_last_read(self) -> None:
        key = self.saved(x=1).session_key
        age = settings.SESSION_COOKIE_AGE
        self.clock.advance(age - 10)
        reread = SessionStore(key)
        self.assertEqual(reread["x"], 1)
        self.clock.advance(10)
        self.assertEqual(SessionStore(key).load(), {})

        key = self.saved(x=1).session_key
        self.clock.advance(age - 10)
        resaved = SessionStore(key)
        resaved["x"] = 2
        resaved.save()
        self.clock.advance(age - 10)
        self.assertEqual(SessionStore(key)["x"], 2)

    @override_settings(SESSION_COOKIE_AGE=100)
    def test_browser_close_session_lives_cookie_age_on_the_server(self) -> None:
        session = SessionStore()
        session["x"] = 1
        session.set_expiry(0)
        session.save()
        self.clock.advance(99)
        self.assertIs(SessionStore().exists(session.session_key), True)
        self.clock.advance(1)
        self.assertIs(SessionStore().exists(session.session_key), False)

    def test_expiry_date_in_the_past_is_expired_at_once(self) -> None:
        session = SessionStore()
        session["x"] = 1
        session.set_expiry(-timedelta(seconds=1))
        session.save()
        self.assertEqual(SessionStore(session.session_key).load(), {})

    def test_saving_a_session_that_expired_meanwhile_is_an_update_error(self) -> None:
        session = SessionStore()
        session.set_expiry(60)
        session.save()
        loaded = SessionStore(session.session_key)
        loaded["x"] = 1
        self.clock.advance(60)
        with self.assertRaises(UpdateError):
            loaded.save()

    def test_clear_expired_removes_expired_sessions_only(self) -> None:
        live = self.saved(x="live")
        for _ in range(3):
            short = SessionStore()
            short.set_expiry(10)
            short.save()
        self.assertEqual(len(SessionStore.store), 4)
        self.clock.advance(10)
        SessionStore.clear_expired()
        self.assertEqual(len(SessionStore.store), 1)
        self.assertEqual(SessionStore(live.session_key)["x"], "live")

    def test_clear_expired_cost_grows_with_the_expired_not_the_total(self) -> None:
        for _ in range(1000):
            self.saved(x="live")
        for _ in range(5):
            short = SessionStore()
            short.set_expiry(10)
            short.save()
        self.clock.advance(10)
        with mock.patch("heapq.heappop", wraps=heapq.heappop) as heappop:
            SessionStore.clear_expired()
        self.assertEqual(heappop.call_count, 5)
        self.assertEqual(len(SessionStore.store), 1000)

        with mock.patch("heapq.heappop", wraps=heapq.heappop) as heappop:
            SessionStore.clear_expired()
        self.assertEqual(heappop.call_count, 0)

    def test_aclear_expired(self) -> None:
        session = SessionStore()
        session.set_expiry(10)
        session.save()
        self.clock.advance(10)
        asyncio.run(SessionStore.aclear_expired())
        self.assertEqual(len(SessionStore.store), 0)

    def test_clearsessions_command(self) -> None:
        live = self.saved(x=1)
        expired = SessionStore()
        expired.set_expiry(10)
        expired.save()
        self.clock.advance(10)
        call_command("clearsessions")
        self.assertEqual(len(SessionStore.store), 1)
        self.assertIs(SessionStore().exists(live.session_key), True)

    def test_resaving_does_not_grow_the_expiry_index_without_bound(self) -> None:
        session = self.saved(n=0)
        for n in range(1000):
            session["n"] = n
            session.save()
        self.assertEqual(len(SessionStore.store), 1)
        self.assertLessEqual(len(SessionStore.store._expiries), 2 + 64)


class BoundTests(MemoryTestCase):
    @override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=3)
    def test_least_recently_used_session_is_evicted_first(self) -> None:
        a, b, c = self.saved(n="a"), self.saved(n="b"), self.saved(n="c")
        SessionStore(a.session_key).load()  # a is now the most recently used
        d = self.saved(n="d")
        self.assertEqual(len(SessionStore.store), 3)
        exists = SessionStore().exists
        self.assertIs(exists(b.session_key), False)
        for kept in (a, c, d):
            self.assertIs(exists(kept.session_key), True)

    @override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=3)
    def test_saving_marks_a_session_recently_used(self) -> None:
        a, b, c = self.saved(n="a"), self.saved(n="b"), self.saved(n="c")
        a["n"] = "a2"
        a.save()
        self.saved(n="d")
        exists = SessionStore().exists
        self.assertIs(exists(a.session_key), True)
        self.assertIs(exists(b.session_key), False)
        self.assertIs(exists(c.session_key), True)

    @override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=3)
    def test_expired_sessions_go_before_live_ones(self) -> None:
        oldest = self.saved(n="oldest")
        short = SessionStore()
        short.set_expiry(10)
        short.save()
        newest = self.saved(n="newest")
        self.clock.advance(10)
        self.saved(n="another")
        self.assertEqual(len(SessionStore.store), 3)
        self.assertIs(SessionStore().exists(oldest.session_key), True)
        self.assertIs(SessionStore().exists(newest.session_key), True)

    def test_a_lowered_cap_applies_at_the_next_new_session(self) -> None:
        for _ in range(10):
            self.saved(n=1)
        with override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=4):
            last = self.saved(n="last")
        self.assertEqual(len(SessionStore.store), 4)
        self.assertIs(SessionStore().exists(last.session_key), True)

    def test_updating_a_session_evicts_nothing(self) -> None:
        sessions = [self.saved(n=n) for n in range(3)]
        with override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=3):
            for session in sessions:
                session["n"] = "updated"
                session.save()
        self.assertEqual(len(SessionStore.store), 3)

    @override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=1)
    def test_an_evicted_user_is_logged_out(self) -> None:
        alice = Client()
        alice.get("/session/set/", {"_auth_user_id": "1"})
        evicted_key = alice.cookies[settings.SESSION_COOKIE_NAME].value
        Client().get("/session/set/", {"_auth_user_id": "2"})
        self.assertEqual(alice.get("/session/get/").json(), {})
        # The evicted key is not adopted: her next session gets a new one.
        alice.get("/session/set/", {"_auth_user_id": "1"})
        self.assertNotEqual(
            alice.cookies[settings.SESSION_COOKIE_NAME].value, evicted_key
        )


class CreateUpdateTests(MemoryTestCase):
    def test_logout_is_not_undone_by_a_slower_concurrent_request(self) -> None:
        client = Client()
        client.get("/session/set/", {"_auth_user_id": "1"})
        key = client.cookies[settings.SESSION_COOKIE_NAME].value

        slow = RequestFactory().get("/")
        slow.COOKIES[settings.SESSION_COOKIE_NAME] = key
        middleware = SessionMiddleware(lambda request: HttpResponse())
        middleware.process_request(slow)
        self.assertEqual(slow.session["_auth_user_id"], "1")

        client.get("/session/flush/")  # the logout, in another request

        slow.session["cart"] = ["apple"]
        with self.assertRaises(SessionInterrupted):
            middleware.process_response(slow, HttpResponse())
        self.assertEqual(self.client_for(key).get("/session/get/").json(), {})
        self.assertEqual(len(SessionStore.store), 0)

    def test_cycled_key_leaves_the_old_key_dead(self) -> None:
        client = Client()
        client.get("/session/set/", {"_auth_user_id": "1"})
        old_key = client.cookies[settings.SESSION_COOKIE_NAME].value
        client.get("/session/cycle/")
        self.assertEqual(len(SessionStore.store), 1)
        self.assertEqual(self.client_for(old_key).get("/session/get/").json(), {})

    def test_unknown_client_key_is_never_adopted(self) -> None:
        client = self.client_for("k" * 32)
        client.get("/session/set/", {"key": "value"})
        new_key = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.assertNotEqual(new_key, "k" * 32)
        self.assertIs(SessionStore().exists("k" * 32), False)
        self.assertEqual([key for key, _ in SessionStore.store.items()], [new_key])

    def test_undecodable_entry_reads_as_a_new_session(self) -> None:
        key = self.saved(x=1).session_key
        assert key is not None
        SessionStore.store.replace(key, b"\xff not json", 60)
        session = SessionStore(key)
        self.assertEqual(session.load(), {})
        self.assertIsNone(session.session_key)


class AsyncTests(MemoryTestCase):
    def test_async_methods_run_in_place_without_a_thread_hop(self) -> None:
        loop_threads: set[int] = set()
        real_get = SessionStore.store.get

        def get(key: str) -> tuple[bytes, int] | None:
            loop_threads.add(threading.get_ident())
            return real_get(key)

        async def use_every_async_method() -> None:
            session = SessionStore()
            await session.aset("x", 1)
            await session.asave()
            key = session.session_key
            assert key is not None
            self.assertIs(await session.aexists(key), True)
            reloaded = SessionStore(key)
            self.assertEqual(await reloaded.aload(), {"x": 1})
            await reloaded.aset("x", 2)
            await reloaded.asave()
            await reloaded.acycle_key()
            await reloaded.asave()
            await SessionStore.aclear_expired()
            await reloaded.aflush()
            await SessionStore().acreate()
            await SessionStore().adelete(key)

        fail = mock.Mock(side_effect=AssertionError("thread hop"))
        with (
            mock.patch("django.contrib.sessions.backends.base.sync_to_async", fail),
            mock.patch.object(SessionStore.store, "get", get),
        ):
            asyncio.run(use_every_async_method())
        fail.assert_not_called()
        self.assertEqual(loop_threads, {threading.get_ident()})


class StoreTests(MemoryTestCase):
    def test_clear_all_empties_the_store(self) -> None:
        self.saved(x=1)
        SessionStore.clear_all()
        self.assertEqual(len(SessionStore.store), 0)
        self.assertEqual(SessionStore.store.items(), [])

    def test_items_lists_live_sessions_least_recently_used_first(self) -> None:
        a = self.saved(n="a")
        expired = SessionStore()
        expired.set_expiry(10)
        expired.save()
        b = self.saved(n="b")
        self.clock.advance(10)
        SessionStore(a.session_key).load()
        keys = [key for key, _ in SessionStore.store.items()]
        self.assertEqual(keys, [b.session_key, a.session_key])

    def test_new_keys_are_like_djangos_and_evenly_spread(self) -> None:
        keys = {new_session_key() for _ in range(1000)}
        self.assertEqual(len(keys), 1000)
        for key in keys:
            self.assertRegex(key, re.compile(r"\A[a-z0-9]{32}\Z"))
        counts = Counter("".join(keys))
        self.assertEqual(len(counts), 36)
        # About 889 each; 600 or 1200 would be ten standard deviations off.
        for char, count in counts.items():
            self.assertTrue(600 < count < 1200, (char, count))

    def test_stores_are_separate(self) -> None:
        class OtherSessionStore(SessionStore):
            store = MemoryStore()

        other = OtherSessionStore()
        other["x"] = 1
        other.save()
        self.assertIs(SessionStore().exists(other.session_key), False)
        self.assertEqual(len(SessionStore.store), 0)


@contextmanager
def frequent_thread_switches() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    with frequent_thread_switches():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return errors


@override_settings(SESSION_ENGINE=ENGINE, ROOT_URLCONF="tests.test_memory")
class ThreadTests(SimpleTestCase):
    def setUp(self) -> None:
        super().setUp()
        SessionStore.clear_all()

    def assert_store_is_sound(
        self, max_sessions: int, shared: list[str | None]
    ) -> None:
        store = SessionStore.store
        self.assertLessEqual(len(store), max_sessions)
        heap = store._expiries
        for child in range(1, len(heap)):
            self.assertLessEqual(heap[(child - 1) // 2][0], heap[child][0])
        indexed = {key for _, key in heap}
        for key, data in store.items():
            value = json.loads(data)
            self.assertIn(key, indexed)
            if key in shared:
                # Merged key by key: each key holds one writer's value.
                self.assertIn(value["check"][0], range(-1, 8))
            else:
                # One writer: its value's two halves agree.
                self.assertEqual(value["check"], [value["owner"], value["step"]])

    @override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=60)
    def test_concurrent_sessions_end_sound(self) -> None:
        shared_keys = []
        for n in range(4):
            shared = SessionStore()
            shared.update({"owner": -1, "step": n, "check": [-1, n]})
            shared.save()
            shared_keys.append(shared.session_key)

        def work(owner: int) -> None:
            for step in range(200):
                own = SessionStore()
                own.update({"owner": owner, "step": step, "check": [owner, step]})
                own.save()
                again = SessionStore(own.session_key)
                # Another thread may have evicted it: then it reads as new.
                if again.get("owner") is not None:
                    self.assertEqual(again["check"], [owner, step])
                again.update(
                    {"owner": owner, "step": step + 1, "check": [owner, step + 1]}
                )
                with suppress(UpdateError):  # evicted since the load
                    again.save()
                again.cycle_key()
                if step % 3 == 0:
                    again.delete()
                if step % 7 == 0:
                    again.set_expiry(-1)
                    with suppress(UpdateError):  # deleted above, or evicted
                        again.save()

                shared = SessionStore(shared_keys[step % len(shared_keys)])
                if shared.get("owner") is not None:
                    # Merged key by key, as on Redis: each key is one writer's.
                    self.assertIn(shared["owner"], range(-1, 8))
                shared.update({"owner": owner, "step": step, "check": [owner, step]})
                with suppress(UpdateError):  # evicted by another thread
                    shared.save()
                if step % 10 == 0:
                    SessionStore.clear_expired()
                    SessionStore.store.items()

        errors = run_threads(8, work)
        self.assertEqual(errors, [])
        self.assert_store_is_sound(60, shared_keys)

    def test_concurrent_saves_of_one_session_lose_nothing(self) -> None:
        """Nine threads set keys of their own on one session through the
        middleware: every key stays, as on Redis (tests/test_redis_merge.py)."""
        first = Client()
        first.get("/session/set/", {"start": "1"})
        cookie = first.cookies[settings.SESSION_COOKIE_NAME].value

        def work(n: int) -> None:
            client = Client()
            client.cookies = SimpleCookie({settings.SESSION_COOKIE_NAME: cookie})
            for step in range(10):
                response = client.get(
                    "/session/set-after-a-pause/", {f"t{n}-{step}": "x"}
                )
                assert response.status_code == 200

        errors = run_threads(9, work)
        self.assertEqual(errors, [])
        stored = first.get("/session/get/").json()
        self.assertEqual(len(stored), 1 + 9 * 10)

    def test_concurrent_requests_through_the_middleware(self) -> None:
        def work(n: int) -> None:
            client = Client()
            for step in range(25):
                client.get("/session/set/", {"owner": str(n), "step": str(step)})
                got = client.get("/session/get/").json()
                assert got == {"owner": str(n), "step": str(step)}, got
                client.get("/session/cycle/")
                assert client.get("/session/get/").json() == got
                if step % 5 == 0:
                    client.get("/session/flush/")
                    assert client.get("/session/get/").json() == {}

        errors = run_threads(8, work)
        self.assertEqual(errors, [])
        self.assertEqual(len(SessionStore.store), 8)
