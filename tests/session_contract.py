"""The session contract every engine of this project satisfies.

``SessionContractTests`` is mixed into ``django.test.SimpleTestCase`` by each
engine's test module::

    class MemoryContractTests(SessionContractTests, SimpleTestCase):
        backend = SessionStore

It covers every public method of ``SessionBase``, sync and async, and the
engine's behaviour through Django's real ``SessionMiddleware``. Django's own
engines pass it too (``tests/test_session_contract.py``), which keeps the
contract honest: it asks for Django's semantics, nothing stricter, except
where a test says so.

A store that keeps nothing on the server (the signed cookie) sets
``server_side = False``: the tests about server-side records are then skipped,
each with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any, ClassVar, TypeVar
from unittest import mock

from django.conf import settings
from django.contrib.sessions.backends.base import (
    CreateError,
    SessionBase,
    UpdateError,
)
from django.http import HttpResponse
from django.test import Client, SimpleTestCase, override_settings
from django.utils import timezone

F = TypeVar("F", bound=Callable[..., Any])

NO_SERVER_RECORD = (
    "this engine keeps no server-side record: the session lives in the cookie"
)


def server_side_only(test: F) -> F:
    """Skip, with the reason, a test about server-side records."""

    @functools.wraps(test)
    def wrapper(self: SessionContractTests, *args: Any, **kwargs: Any) -> Any:
        if not self.server_side:
            self.skipTest(NO_SERVER_RECORD)
        return test(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def async_server_side_only(test: F) -> F:
    @functools.wraps(test)
    async def wrapper(self: SessionContractTests, *args: Any, **kwargs: Any) -> Any:
        if not self.server_side:
            self.skipTest(NO_SERVER_RECORD)
        return await test(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class SessionContractTests(SimpleTestCase):
    """Mix into a test case; set ``backend`` (and ``server_side`` if needed)."""

    backend: ClassVar[type[SessionBase]]
    server_side: ClassVar[bool] = True
    #: Settings applied around every test (e.g. ``SESSION_REDIS``).
    engine_settings: ClassVar[dict[str, Any]] = {}

    # Keep the mixin itself from being collected as a test case.
    __test__ = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    def get_engine_settings(self) -> dict[str, Any]:
        return dict(self.engine_settings)

    def setUp(self) -> None:
        super().setUp()
        self.enterContext(
            override_settings(
                SESSION_ENGINE=self.backend.__module__, **self.get_engine_settings()
            )
        )
        self.session = self.backend()

    def tearDown(self) -> None:
        self.session.delete()
        super().tearDown()

    def reload(self, session: SessionBase | None = None) -> SessionBase:
        """A fresh store for the key of ``session``, as the next request gets."""
        return self.backend((session or self.session).session_key)

    # The dict API -----------------------------------------------------------

    def test_new_session(self) -> None:
        self.assertIs(self.session.modified, False)
        self.assertIs(self.session.accessed, False)

    def test_get_empty(self) -> None:
        self.assertIsNone(self.session.get("cat"))
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, False)

    def test_store(self) -> None:
        self.session["cat"] = "dog"
        self.assertIs(self.session.modified, True)
        self.assertEqual(self.session.pop("cat"), "dog")

    def test_pop(self) -> None:
        self.session["some key"] = "exists"
        # Pretend we didn't change it, to see whether pop() marks the change.
        self.session.accessed = False
        self.session.modified = False
        self.assertEqual(self.session.pop("some key"), "exists")
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, True)
        self.assertIsNone(self.session.get("some key"))

    def test_pop_default(self) -> None:
        self.assertEqual(
            self.session.pop("some key", "does not exist"), "does not exist"
        )
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, False)

    def test_pop_no_default_raises_key_error(self) -> None:
        with self.assertRaises(KeyError):
            self.session.pop("some key")

    def test_setdefault(self) -> None:
        self.assertEqual(self.session.setdefault("foo", "bar"), "bar")
        self.assertEqual(self.session.setdefault("foo", "baz"), "bar")
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, True)

    def test_update(self) -> None:
        self.session.update({"update key": 1})
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, True)
        self.assertEqual(self.session.get("update key"), 1)

    def test_has_key_and_contains(self) -> None:
        self.session["some key"] = 1
        self.session.modified = False
        self.session.accessed = False
        self.assertIn("some key", self.session)
        self.assertIs(self.session.has_key("some key"), True)
        self.assertNotIn("other", self.session)
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, False)

    def test_keys_values_items(self) -> None:
        self.session["x"] = 1
        self.session["y"] = [1, 2]
        self.session.modified = False
        self.session.accessed = False
        self.assertEqual(sorted(self.session.keys()), ["x", "y"])
        self.assertEqual(list(self.session.values()), [1, [1, 2]])
        self.assertEqual(list(self.session.items()), [("x", 1), ("y", [1, 2])])
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, False)

    def test_delitem(self) -> None:
        self.session["x"] = 1
        self.session.modified = False
        del self.session["x"]
        self.assertIs(self.session.modified, True)
        self.assertNotIn("x", self.session)
        with self.assertRaises(KeyError):
            del self.session["x"]

    def test_clear(self) -> None:
        self.session["x"] = 1
        self.session.modified = False
        self.session.accessed = False
        self.session.clear()
        self.assertEqual(list(self.session.items()), [])
        self.assertIs(self.session.accessed, True)
        self.assertIs(self.session.modified, True)

    def test_is_empty(self) -> None:
        self.assertIs(self.session.is_empty(), True)
        self.session["x"] = 1
        self.assertIs(self.session.is_empty(), False)

    def test_test_cookie(self) -> None:
        self.assertIs(self.session.test_cookie_worked(), False)
        self.session.set_test_cookie()
        self.assertIs(self.session.test_cookie_worked(), True)
        self.session.delete_test_cookie()
        self.assertIs(self.session.test_cookie_worked(), False)

    def test_session_key_is_read_only(self) -> None:
        with self.assertRaises(AttributeError):
            self.session.session_key = "x" * 32  # type: ignore[misc]

    def test_encode_decode_round_trip(self) -> None:
        data = {"a test key": "a test value", "n": [1, 2.5, None, True]}
        self.assertEqual(self.session.decode(self.session.encode(data)), data)

    def test_decode_failure_is_empty_and_logged(self) -> None:
        bad = self.session.encode({"a": 1})[:-3] + "xyz"
        with self.assertLogs("django.security.SuspiciousSession", "WARNING"):
            self.assertEqual(self.session.decode(bad), {})
        self.assertEqual(self.session.decode("not even base64 !"), {})

    # The async dict API ------------------------------------------------------

    async def test_aget_aset(self) -> None:
        self.assertIsNone(await self.session.aget("cat"))
        self.assertEqual(await self.session.aget("cat", "default"), "default")
        await self.session.aset("cat", "dog")
        self.assertIs(self.session.modified, True)
        self.assertEqual(await self.session.aget("cat"), "dog")

    async def test_apop(self) -> None:
        await self.session.aset("k", "v")
        self.session.modified = False
        self.assertEqual(await self.session.apop("k"), "v")
        self.assertIs(self.session.modified, True)
        self.assertEqual(await self.session.apop("k", "gone"), "gone")
        with self.assertRaises(KeyError):
            await self.session.apop("k")

    async def test_asetdefault_aupdate(self) -> None:
        self.assertEqual(await self.session.asetdefault("foo", "bar"), "bar")
        self.assertEqual(await self.session.asetdefault("foo", "baz"), "bar")
        await self.session.aupdate({"u": 1})
        self.assertIs(self.session.modified, True)
        self.assertEqual(await self.session.aget("u"), 1)

    async def test_ahas_key_akeys_avalues_aitems(self) -> None:
        await self.session.aset("x", 1)
        self.assertIs(await self.session.ahas_key("x"), True)
        self.assertIs(await self.session.ahas_key("y"), False)
        self.assertEqual(list(await self.session.akeys()), ["x"])
        self.assertEqual(list(await self.session.avalues()), [1])
        self.assertEqual(list(await self.session.aitems()), [("x", 1)])

    async def test_atest_cookie(self) -> None:
        self.assertIs(await self.session.atest_cookie_worked(), False)
        await self.session.aset_test_cookie()
        self.assertIs(await self.session.atest_cookie_worked(), True)
        await self.session.adelete_test_cookie()
        self.assertIs(await self.session.atest_cookie_worked(), False)

    # Keys --------------------------------------------------------------------

    def test_invalid_keys_are_discarded(self) -> None:
        for key in ("", "1", "short", None):
            with self.subTest(key=key):
                session = self.backend(key)
                self.assertIsNone(session.session_key)
                self.assertEqual(session.load(), {})

    def test_unknown_key_is_not_adopted(self) -> None:
        unknown = "a" * 32
        session = self.backend(unknown)
        self.assertIsNone(session.get("cat"))
        session["cat"] = "dog"
        session.save()
        try:
            self.assertIsNotNone(session.session_key)
            self.assertNotEqual(session.session_key, unknown)
            self.assertEqual(self.reload(session).get("cat"), "dog")
        finally:
            session.delete()

    async def test_aunknown_key_is_not_adopted(self) -> None:
        unknown = "b" * 32
        session = self.backend(unknown)
        await session.aset("cat", "dog")
        await session.asave()
        try:
            self.assertNotEqual(session.session_key, unknown)
            self.assertEqual(await self.reload(session).aget("cat"), "dog")
        finally:
            await session.adelete()

    @server_side_only
    def test_load_does_not_create_record(self) -> None:
        session = self.backend("someunknownkey")
        session.load()
        self.assertIsNone(session.session_key)
        self.assertIs(session.exists(session.session_key), False)
        self.assertIs(self.backend().exists("someunknownkey"), False)

    @async_server_side_only
    async def test_aload_does_not_create_record(self) -> None:
        session = self.backend("someunknownkey")
        await session.aload()
        self.assertIsNone(session.session_key)
        self.assertIs(await session.aexists(session.session_key), False)
        self.assertIs(await self.backend().aexists("someunknownkey"), False)

    # Persistence ---------------------------------------------------------------

    def test_save_and_load(self) -> None:
        self.session["x"] = {"nested": [1, "two"]}
        self.session.save()
        reloaded = self.reload()
        self.assertEqual(reloaded["x"], {"nested": [1, "two"]})
        self.assertIs(reloaded.modified, False)

    async def test_asave_and_aload(self) -> None:
        await self.session.aset("x", "y")
        await self.session.asave()
        reloaded = self.reload()
        self.assertEqual(await reloaded.aget("x"), "y")
        self.assertEqual(await self.reload().aload(), {"x": "y"})

    def test_save_does_not_clear_data(self) -> None:
        self.session["a"] = "b"
        self.session.save()
        self.assertEqual(self.session["a"], "b")

    def test_save_empty_session(self) -> None:
        self.session.save()
        self.assertIsNotNone(self.session.session_key)
        self.assertEqual(self.reload().load(), {})

    def test_create(self) -> None:
        self.session.create()
        self.assertIs(self.session.modified, True)
        if self.server_side:
            self.assertIsNotNone(self.session.session_key)
            self.assertIs(self.session.exists(self.session.session_key), True)

    async def test_acreate(self) -> None:
        await self.session.acreate()
        self.assertIs(self.session.modified, True)
        if self.server_side:
            self.assertIsNotNone(self.session.session_key)
            self.assertIs(await self.session.aexists(self.session.session_key), True)

    @server_side_only
    def test_exists(self) -> None:
        self.assertIs(self.session.exists("x" * 32), False)
        self.session["x"] = 1
        self.session.save()
        self.assertIs(self.session.exists(self.session.session_key), True)

    @async_server_side_only
    async def test_aexists(self) -> None:
        self.assertIs(await self.session.aexists("x" * 32), False)
        await self.session.aset("x", 1)
        await self.session.asave()
        self.assertIs(await self.session.aexists(self.session.session_key), True)

    @server_side_only
    def test_save_must_create_raises_on_clash(self) -> None:
        self.session["x"] = 1
        self.session.save()
        clash = self.reload()
        clash["y"] = 2
        with self.assertRaises(CreateError):
            clash.save(must_create=True)
        self.assertEqual(self.reload().load(), {"x": 1})

    @async_server_side_only
    async def test_asave_must_create_raises_on_clash(self) -> None:
        await self.session.aset("x", 1)
        await self.session.asave()
        clash = self.reload()
        await clash.aset("y", 2)
        with self.assertRaises(CreateError):
            await clash.asave(must_create=True)

    @server_side_only
    def test_save_does_not_resurrect_session_deleted_elsewhere(self) -> None:
        s1 = self.backend()
        s1["test_data"] = "value1"
        s1.save(must_create=True)
        # Logout in another context.
        s2 = self.backend(s1.session_key)
        s2.delete()
        s1["test_data"] = "value2"
        with self.assertRaises(UpdateError):
            s1.save()
        self.assertEqual(s1.load(), {})
        self.assertIs(self.backend().exists(s1.session_key), False)

    @async_server_side_only
    async def test_asave_does_not_resurrect_session_deleted_elsewhere(self) -> None:
        s1 = self.backend()
        await s1.aset("test_data", "value1")
        await s1.asave(must_create=True)
        s2 = self.backend(s1.session_key)
        await s2.adelete()
        await s1.aset("test_data", "value2")
        with self.assertRaises(UpdateError):
            await s1.asave()
        self.assertEqual(await s1.aload(), {})

    @server_side_only
    def test_delete(self) -> None:
        self.session["x"] = 1
        self.session.save()
        key = self.session.session_key
        self.session.delete(key)
        self.assertIs(self.session.exists(key), False)
        self.assertEqual(self.backend(key).load(), {})

    @async_server_side_only
    async def test_adelete(self) -> None:
        await self.session.aset("x", 1)
        await self.session.asave()
        key = self.session.session_key
        await self.session.adelete(key)
        self.assertIs(await self.session.aexists(key), False)
        self.assertEqual(await self.backend(key).aload(), {})

    def test_delete_unknown_or_no_key_is_harmless(self) -> None:
        self.session.delete("z" * 32)
        self.backend().delete()

    def test_flush(self) -> None:
        self.session["foo"] = "bar"
        self.session.save()
        prev_key = self.session.session_key
        self.session.flush()
        self.assertIsNone(self.session.session_key)
        self.assertIs(self.session.modified, True)
        self.assertIs(self.session.accessed, True)
        self.assertEqual(list(self.session.items()), [])
        if self.server_side:
            self.assertIs(self.session.exists(prev_key), False)

    async def test_aflush(self) -> None:
        await self.session.aset("foo", "bar")
        await self.session.asave()
        prev_key = self.session.session_key
        await self.session.aflush()
        self.assertIsNone(self.session.session_key)
        self.assertIs(self.session.modified, True)
        self.assertEqual(list(await self.session.aitems()), [])
        if self.server_side:
            self.assertIs(await self.session.aexists(prev_key), False)

    def test_cycle_key(self) -> None:
        self.session["a"], self.session["b"] = "c", "d"
        self.session.save()
        prev_key = self.session.session_key
        prev_data = list(self.session.items())
        self.session.cycle_key()
        self.assertIs(self.session.modified, True)
        if self.server_side:
            # A cookie store's "key" is its signed data: it need not change.
            self.assertNotEqual(self.session.session_key, prev_key)
        self.assertEqual(list(self.session.items()), prev_data)
        self.session.save()
        self.assertEqual(list(self.reload().items()), prev_data)
        if self.server_side:
            self.assertIs(self.session.exists(prev_key), False)

    async def test_acycle_key(self) -> None:
        await self.session.aset("a", "c")
        await self.session.asave()
        prev_key = self.session.session_key
        await self.session.acycle_key()
        self.assertIs(self.session.modified, True)
        if self.server_side:
            self.assertNotEqual(self.session.session_key, prev_key)
        self.assertEqual(list(await self.session.aitems()), [("a", "c")])
        await self.session.asave()
        self.assertEqual(await self.reload().aget("a"), "c")
        if self.server_side:
            self.assertIs(await self.session.aexists(prev_key), False)

    def test_cycle_key_without_a_key(self) -> None:
        self.session["a"] = "b"
        self.session.cycle_key()
        self.session.save()
        self.assertEqual(self.reload().get("a"), "b")

    def test_clear_expired(self) -> None:
        self.session["x"] = 1
        self.session.save()
        self.backend.clear_expired()
        self.assertEqual(self.reload().get("x"), 1)

    async def test_aclear_expired(self) -> None:
        await self.session.aset("x", 1)
        await self.session.asave()
        await self.backend.aclear_expired()
        self.assertEqual(await self.reload().aget("x"), 1)

    # Expiry --------------------------------------------------------------------

    def test_default_expiry(self) -> None:
        self.assertEqual(self.session.get_expiry_age(), settings.SESSION_COOKIE_AGE)
        # An expiry of 0 ends at browser close; the age stays the default.
        self.session.set_expiry(0)
        self.assertEqual(self.session.get_expiry_age(), settings.SESSION_COOKIE_AGE)

    def test_custom_expiry_seconds(self) -> None:
        modification = timezone.now()
        self.session.set_expiry(10)
        date = self.session.get_expiry_date(modification=modification)
        self.assertEqual(date, modification + timedelta(seconds=10))
        self.assertEqual(self.session.get_expiry_age(modification=modification), 10)

    def test_custom_expiry_timedelta(self) -> None:
        modification = timezone.now()
        with mock.patch("django.utils.timezone.now", return_value=modification):
            self.session.set_expiry(timedelta(seconds=10))
        date = self.session.get_expiry_date(modification=modification)
        self.assertEqual(date, modification + timedelta(seconds=10))
        self.assertEqual(self.session.get_expiry_age(modification=modification), 10)

    def test_custom_expiry_datetime(self) -> None:
        modification = timezone.now()
        self.session.set_expiry(modification + timedelta(seconds=10))
        date = self.session.get_expiry_date(modification=modification)
        self.assertEqual(date, modification + timedelta(seconds=10))
        self.assertEqual(self.session.get_expiry_age(modification=modification), 10)

    def test_custom_expiry_reset(self) -> None:
        self.session.set_expiry(None)
        self.session.set_expiry(10)
        self.session.set_expiry(None)
        self.assertEqual(self.session.get_expiry_age(), settings.SESSION_COOKIE_AGE)

    async def test_aset_expiry_and_ages(self) -> None:
        modification = timezone.now()
        await self.session.aset_expiry(10)
        self.assertEqual(
            await self.session.aget_expiry_age(modification=modification), 10
        )
        self.assertEqual(
            await self.session.aget_expiry_date(modification=modification),
            modification + timedelta(seconds=10),
        )
        self.assertIs(await self.session.aget_expire_at_browser_close(), False)
        await self.session.aset_expiry(0)
        self.assertIs(await self.session.aget_expire_at_browser_close(), True)
        await self.session.aset_expiry(None)
        self.assertEqual(
            await self.session.aget_expiry_age(), settings.SESSION_COOKIE_AGE
        )

    def test_custom_expiry_survives_save(self) -> None:
        self.session["x"] = 1
        self.session.set_expiry(120)
        self.session.save()
        reloaded = self.reload()
        self.assertEqual(reloaded.get_expiry_age(modification=timezone.now()), 120)
        self.assertEqual(reloaded["x"], 1)

    def test_get_expire_at_browser_close(self) -> None:
        for at_close in (False, True):
            with (
                self.subTest(SESSION_EXPIRE_AT_BROWSER_CLOSE=at_close),
                override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=at_close),
            ):
                self.session.set_expiry(10)
                self.assertIs(self.session.get_expire_at_browser_close(), False)
                self.session.set_expiry(0)
                self.assertIs(self.session.get_expire_at_browser_close(), True)
                self.session.set_expiry(None)
                self.assertIs(self.session.get_expire_at_browser_close(), at_close)

    def test_actual_expiry(self) -> None:
        """A session whose expiry date has passed loads as empty."""
        self.session["foo"] = "bar"
        self.session.set_expiry(-timedelta(seconds=10))
        self.session.save()
        old_key = self.session.session_key
        expired = self.backend(old_key)
        self.assertNotIn("foo", expired)
        expired.delete()

    def test_unexpired_custom_expiry_loads(self) -> None:
        self.session["foo"] = "bar"
        self.session.set_expiry(60)
        self.session.save()
        self.assertEqual(self.reload().get("foo"), "bar")

    def test_expiry_datetime_in_the_future_loads(self) -> None:
        self.session["foo"] = "bar"
        self.session.set_expiry(timezone.now() + timedelta(minutes=5))
        self.session.save()
        reloaded = self.reload()
        self.assertEqual(reloaded.get("foo"), "bar")
        self.assertIsInstance(reloaded.get_expiry_date(), datetime)

    # Through Django's SessionMiddleware ---------------------------------------

    def session_cookie(self, response: HttpResponse) -> Any:
        return response.cookies.get(settings.SESSION_COOKIE_NAME)

    def client_with_session(self, **data: str) -> Client:
        client = Client()
        response = client.get("/session/set/", data)
        self.assertEqual(response.status_code, 200)
        return client

    def test_middleware_round_trip(self) -> None:
        client = self.client_with_session(key="value", other="x")
        response = client.get("/session/get/")
        self.assertEqual(response.json(), {"key": "value", "other": "x"})

    def test_middleware_untouched_session_sets_no_cookie(self) -> None:
        response = Client().get("/session/untouched/")
        self.assertIsNone(self.session_cookie(response))
        self.assertNotIn("Cookie", response.get("Vary", ""))

    def test_middleware_untouched_existing_session_is_left_alone(self) -> None:
        client = self.client_with_session(key="value")
        response = client.get("/session/untouched/")
        self.assertIsNone(self.session_cookie(response))
        self.assertEqual(client.get("/session/get/").json(), {"key": "value"})

    def test_middleware_read_only_request_resends_no_cookie(self) -> None:
        client = self.client_with_session(key="value")
        response = client.get("/session/read/")
        self.assertEqual(response.content, b'"value"')
        self.assertIsNone(self.session_cookie(response))
        self.assertIn("Cookie", response["Vary"])

    def test_middleware_cookie_flags_follow_settings(self) -> None:
        with override_settings(
            SESSION_COOKIE_NAME="sid",
            SESSION_COOKIE_SECURE=True,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Strict",
            SESSION_COOKIE_DOMAIN=".example.com",
            SESSION_COOKIE_PATH="/app/",
            SESSION_COOKIE_AGE=3600,
        ):
            response = Client().get("/session/set/", {"key": "value"})
            cookie = response.cookies["sid"]
        self.assertTrue(cookie.value)
        self.assertIs(cookie["secure"], True)
        self.assertIs(cookie["httponly"], True)
        self.assertEqual(cookie["samesite"], "Strict")
        self.assertEqual(cookie["domain"], ".example.com")
        self.assertEqual(cookie["path"], "/app/")
        self.assertEqual(cookie["max-age"], 3600)
        self.assertTrue(cookie["expires"])
        self.assertIn("Cookie", response["Vary"])

    def test_middleware_default_cookie_flags(self) -> None:
        response = Client().get("/session/set/", {"key": "value"})
        cookie = self.session_cookie(response)
        self.assertEqual(cookie["httponly"], True)
        self.assertEqual(cookie["samesite"], settings.SESSION_COOKIE_SAMESITE)
        self.assertEqual(cookie["max-age"], settings.SESSION_COOKIE_AGE)
        self.assertEqual(cookie["secure"], "")

    def test_middleware_browser_close_cookie(self) -> None:
        response = Client().get("/session/expiry/", {"seconds": "0"})
        cookie = self.session_cookie(response)
        self.assertTrue(cookie.value)
        self.assertEqual(cookie["max-age"], "")
        self.assertEqual(cookie["expires"], "")

    def test_middleware_custom_expiry_cookie(self) -> None:
        response = Client().get("/session/expiry/", {"seconds": "60"})
        self.assertEqual(self.session_cookie(response)["max-age"], 60)

    def test_middleware_flush_deletes_cookie(self) -> None:
        client = self.client_with_session(key="value")
        old_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        response = client.get("/session/flush/")
        cookie = self.session_cookie(response)
        self.assertEqual(cookie.value, "")
        self.assertEqual(cookie["max-age"], 0)
        self.assertEqual(cookie["expires"], "Thu, 01 Jan 1970 00:00:00 GMT")
        self.assertIn("Cookie", response["Vary"])
        if self.server_side:
            # The old cookie, replayed, finds nothing.
            replay = Client()
            replay.cookies = SimpleCookie({settings.SESSION_COOKIE_NAME: old_cookie})
            self.assertEqual(replay.get("/session/get/").json(), {})

    def test_middleware_cycle_key(self) -> None:
        client = self.client_with_session(key="value")
        old_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        response = client.get("/session/cycle/")
        self.assertTrue(self.session_cookie(response).value)
        self.assertEqual(client.get("/session/get/").json(), {"key": "value"})
        if self.server_side:
            self.assertNotEqual(self.session_cookie(response).value, old_cookie)
            replay = Client()
            replay.cookies = SimpleCookie({settings.SESSION_COOKIE_NAME: old_cookie})
            self.assertEqual(replay.get("/session/get/").json(), {})

    def test_middleware_garbage_cookie_is_a_new_session(self) -> None:
        for garbage in ("x", "a" * 32, "!!not-a-key!!" * 10, "é" * 40):
            with self.subTest(garbage=garbage):
                client = Client()
                client.cookies = SimpleCookie({settings.SESSION_COOKIE_NAME: garbage})
                self.assertEqual(client.get("/session/get/").json(), {})
                response = client.get("/session/set/", {"key": "v"})
                self.assertNotEqual(self.session_cookie(response).value, garbage)
