"""What every engine shares (``backends/base.py``): the refusal of pickle,
the create loop, the JSON serializer and dates.

The refusal is shown the way it matters: a pickle payload signed with the real
``SECRET_KEY`` (a forged cookie) or stored on the server, whose unpickling
would record a side effect, sent through Django's real ``SessionMiddleware``.
Django's own signed-cookie engine runs the same cookie, which shows that the
payload is live.
"""

from __future__ import annotations

import functools
import json
import pickle
from datetime import UTC, datetime, timedelta
from pickle import loads as imported_loads
from typing import Any
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase
from django.core import signing
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, SimpleTestCase, override_settings

from django_prologue_sessions.backends._session_keys import new_session_key
from django_prologue_sessions.backends.base import (
    CREATE_ATTEMPTS,
    FastJSONSerializer,
    ServerSessionBase,
    date_from_timestamp,
    refuse_unpickling,
    unpickling_reason,
)
from django_prologue_sessions.backends.memory import SessionStore as MemoryStore
from django_prologue_sessions.backends.redis.store import SessionStore as RedisStore
from django_prologue_sessions.backends.signed_cookies import (
    SessionStore as CookieStore,
)

SIDE_EFFECTS: list[str] = []
SALT = "django.contrib.sessions.backends.signed_cookies"
MEMORY = "django_prologue_sessions.backends.memory"
DJANGO_SIGNED = "django.contrib.sessions.backends.signed_cookies"


def record(what: str) -> str:
    SIDE_EFFECTS.append(what)
    return what


class Exploit:
    """Unpickling it calls ``record()``: any code could run in its place."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return record, ("unpickled",)


# Serializers that unpickle, each in its own way --------------------------


class PickleSerializer:
    """Django's, as it was before 5.0 removed it."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class Session(PickleSerializer):
    """Named like nothing, a subclass of one that unpickles."""


class CallsPickleLoads:
    def dumps(self, obj: Any) -> bytes:
        return b""

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class IsPickleLoads:
    dumps = staticmethod(pickle.dumps)
    loads = staticmethod(pickle.loads)


class ImportedLoads:
    def dumps(self, obj: Any) -> bytes:
        return b""

    def loads(self, data: bytes) -> Any:
        return imported_loads(data)


class ThroughAHelper:
    def dumps(self, obj: Any) -> bytes:
        return b""

    def loads(self, data: bytes) -> Any:
        return self._decode(data)

    def _decode(self, data: bytes) -> Any:
        import io

        return pickle.Unpickler(io.BytesIO(data)).load()


class PartialLoads:
    dumps = staticmethod(json.dumps)
    loads = staticmethod(functools.partial(pickle.loads, fix_imports=False))


class InALambda:
    def dumps(self, obj: Any) -> bytes:
        return b""

    def loads(self, data: bytes) -> Any:
        decode = lambda raw: pickle.loads(raw)  # noqa: E731
        return decode(data)


UNPICKLING = (
    PickleSerializer,
    Session,
    CallsPickleLoads,
    IsPickleLoads,
    ImportedLoads,
    ThroughAHelper,
    PartialLoads,
    InALambda,
)


class TaggedJSON:
    """Not pickle: JSON behind a tag, with json.loads."""

    def dumps(self, obj: Any) -> bytes:
        return b"t" + json.dumps(obj).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data[1:])


def dotted(serializer: type) -> str:
    return f"{__name__}.{serializer.__qualname__}"


class UnpicklingReasonTests(SimpleTestCase):
    def test_each_way_of_unpickling_is_recognised(self) -> None:
        for serializer in UNPICKLING:
            with self.subTest(serializer.__name__):
                self.assertIsNotNone(unpickling_reason(serializer))
                with self.assertRaises(ImproperlyConfigured) as raised:
                    refuse_unpickling(serializer)
                message = str(raised.exception)
                self.assertIn(dotted(serializer), message)
                self.assertIn(
                    "'django.contrib.sessions.serializers.JSONSerializer'", message
                )

    def test_a_partial_of_one_is_recognised(self) -> None:
        self.assertIsNotNone(unpickling_reason(functools.partial(IsPickleLoads)))
        self.assertIsNone(unpickling_reason(functools.partial(TaggedJSON)))

    def test_json_serializers_are_not_refused(self) -> None:
        for serializer in (signing.JSONSerializer, FastJSONSerializer, TaggedJSON):
            with self.subTest(serializer.__name__):
                self.assertIsNone(unpickling_reason(serializer))

    def test_djangos_json_serializer_is_replaced_by_its_faster_equal(self) -> None:
        from django.contrib.sessions.serializers import JSONSerializer

        self.assertIs(refuse_unpickling(JSONSerializer), FastJSONSerializer)
        self.assertIs(refuse_unpickling(TaggedJSON), TaggedJSON)


class RefusalTests(SimpleTestCase):
    """A pickle SESSION_SERIALIZER never decodes a payload, on any engine."""

    def setUp(self) -> None:
        SIDE_EFFECTS.clear()
        MemoryStore.clear_all()
        self.addCleanup(MemoryStore.clear_all)

    def forged_cookie(self) -> str:
        return signing.dumps(
            {"x": Exploit()}, salt=SALT, serializer=PickleSerializer, compress=True
        )

    def test_the_forged_cookie_runs_code_on_djangos_engine(self) -> None:
        # The control: the payload is live, and the settings let it through.
        with override_settings(
            SESSION_ENGINE=DJANGO_SIGNED,
            SESSION_SERIALIZER=dotted(PickleSerializer),
        ):
            client = Client()
            client.cookies[settings.SESSION_COOKIE_NAME] = self.forged_cookie()
            client.get("/session/get/")
        self.assertEqual(SIDE_EFFECTS, ["unpickled"])

    def test_signed_cookie_engine_never_unpickles_a_forged_cookie(self) -> None:
        for serializer in UNPICKLING:
            with (
                self.subTest(serializer.__name__),
                override_settings(SESSION_SERIALIZER=dotted(serializer)),
            ):
                client = Client()
                client.cookies[settings.SESSION_COOKIE_NAME] = self.forged_cookie()
                with self.assertRaisesMessage(ImproperlyConfigured, "unpickles"):
                    client.get("/session/get/")
        self.assertEqual(SIDE_EFFECTS, [])

    def test_memory_engine_never_unpickles_a_stored_payload(self) -> None:
        key = new_session_key()
        payload = pickle.dumps({"x": Exploit()})
        self.assertTrue(MemoryStore.store.add(key, payload, 60, 100))
        with override_settings(
            SESSION_ENGINE=MEMORY, SESSION_SERIALIZER=dotted(PickleSerializer)
        ):
            client = Client()
            client.cookies[settings.SESSION_COOKIE_NAME] = key
            with self.assertRaisesMessage(ImproperlyConfigured, "unpickles"):
                client.get("/session/get/")
        self.assertEqual(SIDE_EFFECTS, [])

    @override_settings(SESSION_SERIALIZER=dotted(PickleSerializer))
    def test_every_engine_refuses_when_built(self) -> None:
        for store in (CookieStore, MemoryStore, RedisStore):
            with self.subTest(store.__module__):
                with self.assertRaises(ImproperlyConfigured):
                    store()
                with self.assertRaises(ImproperlyConfigured):
                    store("any-key")

    def test_the_system_check_still_reports_it(self) -> None:
        with override_settings(SESSION_SERIALIZER=dotted(PickleSerializer)):
            ids = [message.id for message in run_checks()]
        self.assertIn("django_prologue_sessions.E004", ids)


class FlakyStore(ServerSessionBase):
    """Refuses the first ``clashes`` keys as in use; counts the keys it saw."""

    def __init__(self, clashes: int) -> None:
        super().__init__()
        self.clashes = clashes
        self.keys: list[str] = []

    def _new_key(self) -> str:
        return f"key{len(self.keys):029d}"

    def save(self, must_create: bool = False) -> None:
        assert must_create
        assert self.session_key is not None
        self.keys.append(self.session_key)
        if len(self.keys) <= self.clashes:
            raise CreateError

    async def asave(self, must_create: bool = False) -> None:
        self.save(must_create)


class CreateTests(SimpleTestCase):
    def test_create_tries_new_keys_until_one_is_free(self) -> None:
        store = FlakyStore(clashes=CREATE_ATTEMPTS - 1)
        store.create()
        self.assertEqual(store.session_key, f"key{CREATE_ATTEMPTS - 1:029d}")
        self.assertEqual(len(store.keys), CREATE_ATTEMPTS)
        self.assertIs(store.modified, True)

    def test_create_gives_up_after_the_last_attempt(self) -> None:
        store = FlakyStore(clashes=CREATE_ATTEMPTS)
        with self.assertRaisesMessage(RuntimeError, "Unable to create"):
            store.create()
        self.assertEqual(len(store.keys), CREATE_ATTEMPTS)

    async def test_acreate_does_the_same(self) -> None:
        store = FlakyStore(clashes=2)
        await store.acreate()
        self.assertEqual(store.keys, [f"key{n:029d}" for n in range(3)])
        self.assertEqual(store.session_key, f"key{2:029d}")
        failing = FlakyStore(clashes=CREATE_ATTEMPTS)
        with self.assertRaises(RuntimeError):
            await failing.acreate()
        self.assertEqual(len(failing.keys), CREATE_ATTEMPTS)

    def test_memory_engine_creates_through_it(self) -> None:
        self.assertTrue(issubclass(MemoryStore, ServerSessionBase))
        taken = new_session_key()
        MemoryStore.store.add(taken, b"{}", 60, 100)
        self.addCleanup(MemoryStore.clear_all)
        keys = iter([taken, taken, "a" * 32])
        store = MemoryStore()
        store._new_key = lambda: next(keys)  # type: ignore[method-assign]
        store.create()
        self.assertEqual(store.session_key, "a" * 32)


class FastJSONSerializerTests(SimpleTestCase):
    def test_same_bytes_as_djangos(self) -> None:
        values: list[Any] = [
            {},
            {"k": "v", "n": 1, "f": 1.5, "l": [1, None, True], "d": {"x": {}}},
            {"unicode": "é中\U0001f600", "escape": '"\\\n\t', "surrogate": "\ud800"},
            {"big": 10**30, "neg": -0.0},
        ]
        for value in values:
            with self.subTest(value=value):
                ours = FastJSONSerializer().dumps(value)
                self.assertEqual(ours, signing.JSONSerializer().dumps(value))
                self.assertEqual(FastJSONSerializer().loads(ours), value)

    def test_what_json_cannot_hold_is_refused(self) -> None:
        with self.assertRaises(TypeError):
            FastJSONSerializer().dumps({"when": datetime.now(UTC)})


class DateTests(SimpleTestCase):
    def test_aware_utc(self) -> None:
        date = date_from_timestamp(1_750_000_000.5)
        self.assertEqual(date, datetime(2025, 6, 15, 15, 6, 40, 500000, tzinfo=UTC))
        self.assertIs(date.tzinfo, UTC)


class ExpiryMethodTests(SimpleTestCase):
    """The expiry methods answer as SessionBase's, from settings read once."""

    stores = (CookieStore, MemoryStore)
    now = datetime(2025, 6, 15, tzinfo=UTC)

    def test_same_answers_as_sessionbase(self) -> None:
        expiries: list[Any] = [
            None,
            0,
            60,
            timedelta(hours=2),
            self.now + timedelta(days=3),
        ]
        for store_class in self.stores:
            for expiry in expiries:
                with (
                    self.subTest(store_class.__module__, expiry=expiry),
                    mock.patch("django.utils.timezone.now", return_value=self.now),
                ):
                    store = store_class()
                    store["k"] = "v"
                    if expiry is not None:
                        store.set_expiry(expiry)
                    for method in (
                        "get_session_cookie_age",
                        "get_expiry_age",
                        "get_expire_at_browser_close",
                    ):
                        self.assertEqual(
                            getattr(store, method)(),
                            getattr(SessionBase, method)(store),
                            method,
                        )
                    self.assertEqual(
                        store.get_expiry_age(expiry=30, modification=self.now), 30
                    )

    def test_settings_are_followed_when_changed(self) -> None:
        for store_class in self.stores:
            with self.subTest(store_class.__module__):
                store = store_class()
                self.assertEqual(store.get_expiry_age(), settings.SESSION_COOKIE_AGE)
                with override_settings(
                    SESSION_COOKIE_AGE=5, SESSION_EXPIRE_AT_BROWSER_CLOSE=True
                ):
                    self.assertEqual(store.get_expiry_age(), 5)
                    self.assertIs(store.get_expire_at_browser_close(), True)
                self.assertEqual(store.get_expiry_age(), settings.SESSION_COOKIE_AGE)
                self.assertIs(store.get_expire_at_browser_close(), False)

    def test_no_clock_read_without_an_expiry_of_its_own(self) -> None:
        store = MemoryStore()
        with mock.patch(
            "django.utils.timezone.now", side_effect=AssertionError("clock read")
        ):
            self.assertEqual(store.get_expiry_age(), settings.SESSION_COOKIE_AGE)


@pytest.mark.redis
def test_redis_engine_never_unpickles_a_stored_payload(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """A pickled value planted in Redis (by whoever can write there) is
    refused with the serializer, before anything is read."""
    SIDE_EFFECTS.clear()
    key = new_session_key()
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
        SESSION_SERIALIZER=dotted(PickleSerializer),
    ):
        # A value in the engine's layout (version 1, plain), pickled.
        payload = b"1j" + pickle.dumps({"x": Exploit()})
        redis_client.set(RedisStore.redis_key(key), payload)
        client = Client()
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        with pytest.raises(ImproperlyConfigured, match="unpickles"):
            client.get("/session/get/")
    assert SIDE_EFFECTS == []
    assert redis_client.exists(RedisStore.redis_key(key))  # left as it was
