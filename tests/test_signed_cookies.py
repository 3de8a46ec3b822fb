"""The signed-cookie engine, through its API and Django's real SessionMiddleware.

Time is moved by patching ``time.time`` (read by the engine and by
``SessionMiddleware``) and ``django.utils.timezone.now`` (read by
``set_expiry``): nothing sleeps.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from django.conf import settings
from django.contrib.sessions.backends import signed_cookies as django_signed_cookies
from django.core import signing
from django.http import HttpResponse
from django.test import Client, SimpleTestCase, override_settings
from django.utils import timezone
from django.utils.http import http_date

from django_prologue_sessions.backends import _cookie_encryption
from django_prologue_sessions.backends.signed_cookies import SALT, SessionStore
from django_prologue_sessions.exceptions import SessionCookieTooLarge
from tests.session_contract import SessionContractTests

T0 = 1_750_000_000  # 2025-06-15: a fixed "now" for every time-dependent test
SUSPICIOUS = "django.security.SuspiciousSession"
B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
ENCRYPTED = override_settings(PROLOGUE_SESSIONS_COOKIE_ENCRYPTION=True)


@contextmanager
def frozen_time(timestamp: float) -> Iterator[None]:
    now = datetime.fromtimestamp(timestamp, tz=UTC)
    with (
        mock.patch("time.time", return_value=timestamp),
        mock.patch("django.utils.timezone.now", return_value=now),
    ):
        yield


def make_cookie(data: dict[str, Any], expiry: Any = None) -> str:
    store = SessionStore()
    store.update(data)
    if expiry is not None:
        store.set_expiry(expiry)
    store.save()
    assert store.session_key is not None
    return store.session_key


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load(cookie: str) -> dict[str, Any]:
    return dict(SessionStore(cookie).items())


def client_with(cookie: str) -> Client:
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    return client


def set_cookie_header(response: HttpResponse) -> str:
    """The value of the session's ``Set-Cookie`` header, as sent."""
    return response.cookies[settings.SESSION_COOKIE_NAME].OutputString()


class ShortLivedStore(SessionStore):
    def get_session_cookie_age(self) -> int:
        return 7


class BrowserCloseStore(SessionStore):
    def get_expire_at_browser_close(self) -> bool:
        return True


def middleware_response(value: str | None, max_age: int | None) -> HttpResponse:
    """A response with the session cookie as SessionMiddleware sets it."""
    response = HttpResponse()
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        value,
        max_age=max_age,
        expires=None if max_age is None else http_date(T0 + max_age),
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE or None,
        httponly=settings.SESSION_COOKIE_HTTPONLY or None,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
    return response


class SignedCookieContractTests(SessionContractTests, SimpleTestCase):
    backend = SessionStore
    server_side = False


class EncryptedCookieContractTests(SessionContractTests, SimpleTestCase):
    backend = SessionStore
    server_side = False
    engine_settings = {"PROLOGUE_SESSIONS_COOKIE_ENCRYPTION": True}

    def test_cookie_is_encrypted(self) -> None:
        self.session["x"] = 1
        self.session.save()
        self.assertTrue(self.session.session_key)
        self.assertEqual(
            self.session.session_key[0], _cookie_encryption.ENCRYPTED_PREFIX
        )


class ExpiryTests(SimpleTestCase):
    """Each session's own expiry is enforced on the server."""

    def assert_lifetime(self, cookie: str, seconds: float) -> None:
        """The cookie loads ``seconds`` after T0, and is empty one second later."""
        with frozen_time(T0 + seconds):
            self.assertEqual(load(cookie).get("k"), "v")
        with (
            frozen_time(T0 + seconds + 1),
            self.assertNoLogs(SUSPICIOUS),  # expiry is normal, not an attack
        ):
            self.assertEqual(load(cookie), {})

    def test_set_expiry_seconds_through_middleware(self) -> None:
        client = Client()
        with frozen_time(T0):
            response = client.get("/session/expiry/", {"seconds": "60"})
        self.assertEqual(response.cookies[settings.SESSION_COOKIE_NAME]["max-age"], 60)
        # The client keeps sending the cookie; the server stops honouring it.
        with frozen_time(T0 + 60):
            self.assertEqual(client.get("/session/get/").json()["key"], "value")
        with frozen_time(T0 + 61):
            response = client.get("/session/get/")
        self.assertEqual(response.json(), {})
        deleted = response.cookies[settings.SESSION_COOKIE_NAME]
        self.assertEqual((deleted.value, deleted["max-age"]), ("", 0))

    def test_django_engine_ignores_that_expiry(self) -> None:
        # The gap being closed (Django ticket #19201): same cookie format,
        # but Django's engine only checks SESSION_COOKIE_AGE.
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=60)
        with frozen_time(T0 + 61):
            self.assertEqual(load(cookie), {})
            django_store = django_signed_cookies.SessionStore(cookie)
            self.assertEqual(
                dict(django_store.items()), {"k": "v", "_session_expiry": 60}
            )

    def test_set_expiry_seconds(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=60)
        self.assert_lifetime(cookie, 60)

    def test_set_expiry_counts_from_the_last_save(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=60)
        with frozen_time(T0 + 50):
            store = SessionStore(cookie)
            store["k"] = "v"
            store.save()
            cookie = store.session_key or ""
        self.assert_lifetime(cookie, 110)

    def test_set_expiry_timedelta(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=timedelta(minutes=5))
        self.assert_lifetime(cookie, 300)

    def test_set_expiry_datetime(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie(
                {"k": "v"}, expiry=datetime.fromtimestamp(T0 + 3600, tz=UTC)
            )
        self.assert_lifetime(cookie, 3600)

    def test_set_expiry_datetime_is_absolute(self) -> None:
        # Re-saving does not push back a date given as a datetime.
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=timedelta(seconds=100))
        with frozen_time(T0 + 90):
            store = SessionStore(cookie)
            store["k"] = "v"
            store.save()
            cookie = store.session_key or ""
        self.assert_lifetime(cookie, 100)

    @override_settings(USE_TZ=False)
    def test_set_expiry_naive_datetime(self) -> None:
        naive_now = datetime.fromtimestamp(T0)
        with (
            mock.patch("time.time", return_value=T0),
            mock.patch("django.utils.timezone.now", return_value=naive_now),
        ):
            cookie = make_cookie({"k": "v"}, expiry=timedelta(seconds=30))
            expiry = SessionStore(cookie)["_session_expiry"]
        self.assertTrue(timezone.is_naive(datetime.fromisoformat(expiry)))
        self.assert_lifetime(cookie, 30)

    @override_settings(SESSION_COOKIE_AGE=100)
    def test_no_expiry_uses_session_cookie_age(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"})
        self.assert_lifetime(cookie, 100)

    @override_settings(SESSION_COOKIE_AGE=100)
    def test_browser_close_session_is_still_bounded_by_cookie_age(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=0)
        self.assert_lifetime(cookie, 100)

    @override_settings(SESSION_COOKIE_AGE=100)
    def test_expiry_longer_than_cookie_age_is_honoured(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=1000)
        self.assert_lifetime(cookie, 1000)

    @ENCRYPTED
    def test_expiry_enforced_when_encrypted(self) -> None:
        with frozen_time(T0):
            cookie = make_cookie({"k": "v"}, expiry=60)
        self.assertTrue(cookie.startswith(_cookie_encryption.ENCRYPTED_PREFIX))
        self.assert_lifetime(cookie, 60)


OLD_KEY = "the-old-secret-key-that-is-being-rotated-out"
NEW_KEY = "the-new-secret-key-that-signs-from-now-on"


class KeyRotationTests(SimpleTestCase):
    def test_fallback_key_cookie_loads_and_is_resigned_on_save(self) -> None:
        for encrypted in (False, True):
            with (
                self.subTest(encrypted=encrypted),
                override_settings(PROLOGUE_SESSIONS_COOKIE_ENCRYPTION=encrypted),
            ):
                with override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]):
                    old_cookie = make_cookie({"k": "v"})
                with override_settings(
                    SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]
                ):
                    client = client_with(old_cookie)
                    self.assertEqual(client.get("/session/get/").json(), {"k": "v"})
                    response = client.get("/session/set/", {"more": "x"})
                    new_cookie = response.cookies[settings.SESSION_COOKIE_NAME].value
                with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
                    self.assertEqual(load(new_cookie), {"k": "v", "more": "x"})
                    with self.assertLogs(SUSPICIOUS, "WARNING"):
                        self.assertEqual(load(old_cookie), {})
                with (
                    override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]),
                    self.assertLogs(SUSPICIOUS, "WARNING"),
                ):
                    self.assertEqual(load(new_cookie), {})

    def test_read_only_request_with_a_fallback_cookie_sets_no_cookie(self) -> None:
        with override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]):
            old_cookie = make_cookie({"key": "v"})
        with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
            response = client_with(old_cookie).get("/session/read/")
        self.assertEqual(response.content, b'"v"')
        self.assertNotIn(settings.SESSION_COOKIE_NAME, response.cookies)

    def test_encryption_keys_are_derived_once_per_secret(self) -> None:
        _cookie_encryption._ciphers.cache_clear()
        with ENCRYPTED:
            for _ in range(5):
                self.assertEqual(load(make_cookie({"k": "v"})), {"k": "v"})
            self.assertEqual(_cookie_encryption._ciphers.cache_info().misses, 1)
            with override_settings(SECRET_KEY=NEW_KEY):
                cookie = make_cookie({"k": "v"})
            self.assertEqual(_cookie_encryption._ciphers.cache_info().misses, 2)
            with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
                self.assertEqual(load(cookie), {"k": "v"})

    def test_signing_follows_a_changed_secret_key(self) -> None:
        # The engine's signer is built once and rebuilt when a secret changes.
        self.assertEqual(load(make_cookie({"k": "v"})), {"k": "v"})
        with override_settings(SECRET_KEY=NEW_KEY):
            cookie = make_cookie({"k": "v"})
            self.assertEqual(load(cookie), {"k": "v"})
        signing.loads(cookie, key=NEW_KEY, salt=SALT)
        with self.assertLogs(SUSPICIOUS, "WARNING"):
            self.assertEqual(load(cookie), {})
        with override_settings(SECRET_KEY_FALLBACKS=[NEW_KEY]):
            self.assertEqual(load(cookie), {"k": "v"})


class EncryptionTests(SimpleTestCase):
    SECRET_VALUE = "card-4111-1111-1111-1111"

    def readable_bytes(self, cookie: str) -> bytes:
        """Everything a client can get out of the cookie without a key."""
        body = cookie.lstrip(_cookie_encryption.ENCRYPTED_PREFIX).split(":")[0]
        raw = base64.urlsafe_b64decode(body.lstrip(".") + "==")
        try:
            return raw + zlib.decompress(raw)
        except zlib.error:
            return raw

    def test_signed_cookie_is_readable_by_the_client(self) -> None:
        cookie = make_cookie({"card": self.SECRET_VALUE})
        self.assertIn(self.SECRET_VALUE.encode(), self.readable_bytes(cookie))

    @ENCRYPTED
    def test_encrypted_cookie_hides_the_session(self) -> None:
        for data in ({"card": self.SECRET_VALUE}, {"card": self.SECRET_VALUE * 50}):
            with self.subTest(size=len(data["card"])):
                response = Client().get("/session/set/", data)
                cookie = response.cookies[settings.SESSION_COOKIE_NAME].value
                self.assertTrue(cookie.startswith(_cookie_encryption.ENCRYPTED_PREFIX))
                readable = self.readable_bytes(cookie) + cookie.encode()
                self.assertNotIn(b"card", readable)
                self.assertNotIn(self.SECRET_VALUE[:8].encode(), readable)
                self.assertEqual(load(cookie), data)

    @ENCRYPTED
    def test_encrypted_cookie_is_compressed(self) -> None:
        data = {"text": "lorem ipsum dolor sit amet " * 200}
        cookie = make_cookie(data)
        self.assertLess(len(cookie), len(json.dumps(data)) // 10)
        self.assertEqual(load(cookie), data)

    @ENCRYPTED
    def test_each_save_uses_a_fresh_nonce(self) -> None:
        with frozen_time(T0):
            self.assertNotEqual(make_cookie({"k": "v"}), make_cookie({"k": "v"}))

    def test_switching_encryption_keeps_sessions(self) -> None:
        signed = make_cookie({"k": "signed"})
        with ENCRYPTED:
            encrypted = make_cookie({"k": "encrypted"})
            self.assertEqual(load(signed), {"k": "signed"})
        self.assertEqual(load(encrypted), {"k": "encrypted"})

    @ENCRYPTED
    def test_tampered_encrypted_cookie_is_rejected(self) -> None:
        cookie = make_cookie({"k": "v"})
        middle = len(cookie) // 2
        flipped = "A" if cookie[middle] != "A" else "B"
        # Same bytes, other spelling: the unused low bits of the last digit.
        respelled = cookie[:-1] + B64[B64.index(cookie[-1]) ^ 1]
        self.assertEqual(b64decode(respelled[1:]), b64decode(cookie[1:]))
        for bad in (
            cookie[:middle] + flipped + cookie[middle + 1 :],
            cookie[:-1],
            cookie + "A",
            cookie[1:],
            cookie[:middle] + "." + cookie[middle:],
            respelled,
        ):
            with self.subTest(bad=bad), self.assertLogs(SUSPICIOUS, "WARNING"):
                self.assertEqual(load(bad), {})


class SizeGuardTests(SimpleTestCase):
    """Too large a cookie raises at save time, counted as the browser counts."""

    data = {"key": "a fair amount of session data " + "x" * 200}

    def assert_limit_is_exact(self, path: str, data: dict[str, str]) -> None:
        with frozen_time(T0):
            response = Client().get(path, data)
            size = len(set_cookie_header(response))
            with override_settings(PROLOGUE_SESSIONS_COOKIE_MAX_BYTES=size):
                Client().get(path, data)
            with (
                override_settings(PROLOGUE_SESSIONS_COOKIE_MAX_BYTES=size - 1),
                self.assertRaises(SessionCookieTooLarge) as raised,
            ):
                Client().get(path, data)
        self.assertEqual(
            (raised.exception.size, raised.exception.limit), (size, size - 1)
        )

    def test_limit_counts_the_whole_set_cookie_header(self) -> None:
        configurations: list[dict[str, Any]] = [
            {},
            {
                "SESSION_COOKIE_NAME": "a-much-longer-session-cookie-name",
                "SESSION_COOKIE_DOMAIN": ".sub.example.com",
                "SESSION_COOKIE_PATH": "/some/app/",
                "SESSION_COOKIE_SECURE": True,
                "SESSION_COOKIE_SAMESITE": "Strict",
                "SESSION_COOKIE_AGE": 99,
            },
            {
                "SESSION_COOKIE_HTTPONLY": False,
                "SESSION_COOKIE_SAMESITE": None,
                "SESSION_COOKIE_PATH": "",
            },
            {"SESSION_EXPIRE_AT_BROWSER_CLOSE": True},
            {"PROLOGUE_SESSIONS_COOKIE_ENCRYPTION": True},
        ]
        for configuration in configurations:
            with self.subTest(**configuration), override_settings(**configuration):
                self.assert_limit_is_exact("/session/set/", self.data)
                # A per-session expiry changes Max-Age (a whole number of
                # seconds, even for 7.5), or drops it (0).
                for seconds in ("0", "7", "7.5", "123456789"):
                    self.assert_limit_is_exact("/session/expiry/", {"seconds": seconds})

    def test_subclass_expiry_methods_size_the_cookie(self) -> None:
        # A subclass may override SessionBase's expiry methods, as Django
        # documents for get_session_cookie_age(): the guard follows them.
        for store_class, max_age in (
            (SessionStore, settings.SESSION_COOKIE_AGE),
            (ShortLivedStore, 7),
            (BrowserCloseStore, None),
        ):
            with self.subTest(store_class.__name__), frozen_time(T0):
                store = store_class()
                store.update(self.data)
                store.save()
                size = len(
                    set_cookie_header(middleware_response(store.session_key, max_age))
                )
                with override_settings(PROLOGUE_SESSIONS_COOKIE_MAX_BYTES=size):
                    store.save()
                with (
                    override_settings(PROLOGUE_SESSIONS_COOKIE_MAX_BYTES=size - 1),
                    self.assertRaises(SessionCookieTooLarge) as raised,
                ):
                    store.save()
                self.assertEqual(raised.exception.size, size)

    def test_guard_follows_a_changed_expire_at_browser_close(self) -> None:
        data = {"key": secrets.token_urlsafe(3100)}  # over 4096 bytes
        with frozen_time(T0):
            make_cookie({"k": "v"})  # with the settings as they were
            for at_browser_close in (True, False):
                with override_settings(
                    SESSION_EXPIRE_AT_BROWSER_CLOSE=at_browser_close
                ):
                    store = SessionStore()
                    store.update(data)
                    with self.assertRaises(SessionCookieTooLarge) as raised:
                        store.save()
                    value = signing.dumps(data, salt=SALT, compress=True)
                    max_age = None if at_browser_close else settings.SESSION_COOKIE_AGE
                    response = middleware_response(value, max_age)
                self.assertEqual(
                    raised.exception.size, len(set_cookie_header(response))
                )

    def test_incompressible_session_over_4096_bytes_raises(self) -> None:
        data = {"key": secrets.token_urlsafe(3100)}  # ~4100 random characters
        with self.assertRaises(SessionCookieTooLarge) as raised:
            Client().get("/session/set/", data)
        self.assertEqual(raised.exception.limit, 4096)
        self.assertGreater(raised.exception.size, 4096)
        self.assertIn(str(raised.exception.size), str(raised.exception))
        self.assertIn("4096", str(raised.exception))

    def test_compressible_session_over_4096_bytes_fits(self) -> None:
        data = {"key": "the same words again " * 1000}  # 21 kB of JSON
        client = Client()
        response = client.get("/session/set/", data)
        self.assertLess(len(set_cookie_header(response)), 4096)
        self.assertEqual(client.get("/session/get/").json(), data)

    def test_failed_save_keeps_the_previous_cookie(self) -> None:
        store = SessionStore(make_cookie({"k": "v"}))
        before = store.session_key
        store["big"] = secrets.token_urlsafe(6000)
        with self.assertRaises(SessionCookieTooLarge):
            store.save()
        self.assertEqual(store.session_key, before)


class BadCookieTests(SimpleTestCase):
    """Every invalid cookie is an empty session, logged, and never raises."""

    def bad_cookies(self) -> dict[str, str]:
        cookie = make_cookie({"user": 1, "text": "some text " * 20})
        payload, timestamp, signature = cookie.split(":")
        middle = len(payload) // 2
        flipped = "A" if payload[middle] != "A" else "B"
        later = signing.b62_encode(signing.b62_decode(timestamp) + 1)
        wrong_data = signing.dumps(["not", "a", "dict"], salt=SALT)
        bad_expiry = signing.dumps({"_session_expiry": "not a date"}, salt=SALT)
        return {
            "tampered payload": (
                f"{payload[:middle]}{flipped}{payload[middle + 1 :]}"
                f":{timestamp}:{signature}"
            ),
            "tampered timestamp": f"{payload}:{later}:{signature}",
            "tampered signature": f"{payload}:{timestamp}:{signature[::-1]}",
            "truncated": cookie[: len(cookie) // 2],
            "re-ordered": f"{timestamp}:{payload}:{signature}",
            "no separators": cookie.replace(":", ""),
            "other salt": signing.dumps({"user": 1}),
            "other key": signing.dumps({"user": 1}, key="x", salt=SALT),
            "signed non-dict": wrong_data,
            "signed bad expiry": bad_expiry,
            "not base64": "%%%%%%%%:%%%%:%%%%%%%%%",
            "random": secrets.token_urlsafe(200),
            "huge": cookie * 300,
            "encrypted garbage": "!" + secrets.token_urlsafe(100),
        }

    def test_bad_cookie_loads_empty_and_is_logged(self) -> None:
        for name, bad in self.bad_cookies().items():
            with self.subTest(name), self.assertLogs(SUSPICIOUS, "WARNING") as logs:
                self.assertEqual(load(bad), {})
            self.assertEqual(logs.records[0].getMessage(), "Session data corrupted")

    def test_bad_cookie_through_middleware_is_deleted(self) -> None:
        for name, bad in self.bad_cookies().items():
            with self.subTest(name), self.assertLogs(SUSPICIOUS, "WARNING"):
                response = client_with(bad).get("/session/get/")
            self.assertEqual(response.json(), {})
            deleted = response.cookies[settings.SESSION_COOKIE_NAME]
            self.assertEqual((deleted.value, deleted["max-age"]), ("", 0))

    def test_undecodable_key_passed_directly(self) -> None:
        for bad in ("\ud800" * 10 + ":a:b", "é" * 40 + ":x:y", "\x00" * 20):
            with self.subTest(bad=bad), self.assertLogs(SUSPICIOUS, "WARNING"):
                self.assertEqual(load(bad), {})


class TaggedJSONSerializer:
    """JSON behind a tag, to show that the engine uses SESSION_SERIALIZER."""

    def dumps(self, obj: Any) -> bytes:
        return b"tagged" + json.dumps(obj).encode()

    def loads(self, data: bytes) -> Any:
        if not data.startswith(b"tagged"):
            raise ValueError("Not tagged.")
        return json.loads(data[len(b"tagged") :])


class SerializerTests(SimpleTestCase):
    @override_settings(
        SESSION_SERIALIZER="tests.test_signed_cookies.TaggedJSONSerializer"
    )
    def test_session_serializer_is_used(self) -> None:
        cookie = make_cookie({"k": "v"})
        payload = cookie.split(":")[0]
        self.assertEqual(base64.urlsafe_b64decode(payload + "=="), b'tagged{"k": "v"}')
        self.assertEqual(load(cookie), {"k": "v"})
        with (
            override_settings(
                SESSION_SERIALIZER="django.contrib.sessions.serializers.JSONSerializer"
            ),
            self.assertLogs(SUSPICIOUS, "WARNING"),
        ):
            self.assertEqual(load(cookie), {})

    def test_values_json_cannot_hold_are_refused(self) -> None:
        store = SessionStore()
        store["when"] = datetime.now(tz=UTC)  # no pickle to fall back on
        with self.assertRaises(TypeError):
            store.save()


class DropInTests(SimpleTestCase):
    def test_same_cookie_as_django_engine(self) -> None:
        # Byte for byte, so never larger: encryption off, the format is Django's.
        for data in ({}, {"k": "v"}, {"long": "repeat " * 500}):
            with self.subTest(size=len(json.dumps(data))), frozen_time(T0):
                ours = SessionStore()
                ours.update(data)
                ours.save()
                theirs = django_signed_cookies.SessionStore()
                theirs.update(data)
                theirs.save()
                self.assertEqual(ours.session_key, theirs.session_key)

    def test_django_engine_cookie_loads(self) -> None:
        theirs = django_signed_cookies.SessionStore()
        theirs["k"] = "v"
        theirs.save()
        client = client_with(theirs.session_key or "")
        self.assertEqual(client.get("/session/get/").json(), {"k": "v"})

    def test_read_only_request_sets_no_cookie(self) -> None:
        for encrypted in (False, True):
            with (
                self.subTest(encrypted=encrypted),
                override_settings(PROLOGUE_SESSIONS_COOKIE_ENCRYPTION=encrypted),
            ):
                client = Client()
                client.get("/session/set/", {"key": "v"})
                response = client.get("/session/read/")
                self.assertEqual(response.content, b'"v"')
                self.assertNotIn(settings.SESSION_COOKIE_NAME, response.cookies)
                response = client.get("/session/set/", {"key": "w"})
                self.assertIn(settings.SESSION_COOKIE_NAME, response.cookies)

    def test_nothing_is_stored_on_the_server(self) -> None:
        cookie = make_cookie({"k": "v"})
        self.assertIs(SessionStore().exists(cookie), False)
        SessionStore.clear_expired()
        self.assertEqual(load(cookie), {"k": "v"})
        store = SessionStore(cookie)
        store.delete()
        self.assertIsNone(store.session_key)
        self.assertEqual(dict(store.items()), {})
        # The cookie itself is still valid: only the client can forget it.
        self.assertEqual(load(cookie), {"k": "v"})

    async def test_async_methods_do_not_hop_threads(self) -> None:
        with mock.patch(
            "django.contrib.sessions.backends.base.sync_to_async",
            side_effect=AssertionError("thread hop"),
        ):
            store = SessionStore()
            await store.aset("k", "v")
            await store.acreate()
            await store.asave()
            self.assertIs(await store.aexists(store.session_key), False)
            reloaded = SessionStore(store.session_key)
            self.assertEqual(await reloaded.aload(), {"k": "v"})
            await reloaded.acycle_key()
            self.assertEqual(await SessionStore(reloaded.session_key).aget("k"), "v")
            await reloaded.adelete()
            self.assertIsNone(reloaded.session_key)
            await SessionStore.aclear_expired()
