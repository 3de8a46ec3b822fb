from __future__ import annotations

import sys
from typing import Any
from unittest import mock

from django.core.checks import run_checks
from django.test import SimpleTestCase, override_settings

from django_prologue_sessions.conf import app_settings

COOKIE_ENGINE = "django_prologue_sessions.backends.signed_cookies"
DJANGO_COOKIE_ENGINE = "django.contrib.sessions.backends.signed_cookies"


class ReprSerializer:
    """Not JSON: stands for any serializer the signed-cookie engine refuses."""

    def dumps(self, obj: Any) -> bytes:
        return repr(obj).encode()

    def loads(self, data: bytes) -> Any:
        raise NotImplementedError


class CookieCheckTests(SimpleTestCase):
    def cookie_check_ids(self) -> list[str]:
        """The ids E001-E009 that Django's real check run reports."""
        return [
            message.id
            for message in run_checks()
            if message.id and message.id.startswith("django_prologue_sessions.E00")
        ]

    def test_defaults_pass(self) -> None:
        self.assertEqual(self.cookie_check_ids(), [])

    def test_e001_max_bytes_must_be_a_positive_integer(self) -> None:
        for value in (0, -1, "4096", 4096.0, True, None):
            with (
                self.subTest(value=value),
                override_settings(PROLOGUE_SESSIONS_COOKIE_MAX_BYTES=value),
            ):
                self.assertEqual(
                    self.cookie_check_ids(), ["django_prologue_sessions.E001"]
                )
                # Meanwhile the engine keeps to the browsers' limit.
                self.assertEqual(app_settings.PROLOGUE_SESSIONS_COOKIE_MAX_BYTES, 4096)
        with override_settings(PROLOGUE_SESSIONS_COOKIE_MAX_BYTES=8000):
            self.assertEqual(self.cookie_check_ids(), [])
            self.assertEqual(app_settings.PROLOGUE_SESSIONS_COOKIE_MAX_BYTES, 8000)

    @override_settings(PROLOGUE_SESSIONS_COOKIE_ENCRYPTION=True)
    def test_e002_encryption_needs_cryptography(self) -> None:
        self.assertEqual(self.cookie_check_ids(), [])
        # A None entry in sys.modules makes the import fail, as if not installed.
        with mock.patch.dict(sys.modules, {"cryptography": None}):
            self.assertEqual(self.cookie_check_ids(), ["django_prologue_sessions.E002"])

    def test_e002_not_reported_when_encryption_is_off(self) -> None:
        with mock.patch.dict(sys.modules, {"cryptography": None}):
            self.assertEqual(self.cookie_check_ids(), [])

    def test_e003_encryption_must_be_a_bool(self) -> None:
        for value in ("False", 1, "yes", 0, None):
            with (
                self.subTest(value=value),
                override_settings(PROLOGUE_SESSIONS_COOKIE_ENCRYPTION=value),
            ):
                self.assertEqual(
                    self.cookie_check_ids(), ["django_prologue_sessions.E003"]
                )

    def test_e004_cookie_engine_needs_a_json_serializer(self) -> None:
        for serializer in (
            "tests.test_checks.ReprSerializer",
            "tests.test_checks.NoSuchSerializer",
            "",
        ):
            with (
                self.subTest(serializer=serializer),
                override_settings(SESSION_SERIALIZER=serializer),
            ):
                self.assertEqual(
                    self.cookie_check_ids(), ["django_prologue_sessions.E004"]
                )

    @override_settings(SESSION_SERIALIZER="tests.test_checks.ReprSerializer")
    def test_e004_only_for_the_cookie_engine(self) -> None:
        with override_settings(SESSION_ENGINE=COOKIE_ENGINE):
            self.assertEqual(self.cookie_check_ids(), ["django_prologue_sessions.E004"])
        with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache"):
            self.assertEqual(self.cookie_check_ids(), [])


STRONG_KEY = "k7#Qp2!vX9@mL4$zR8^tW1&yB6*nH3(cJ5)dF0-gS" + "a1b2c3d4e5"
WEAK_KEYS = [
    "short-but-varied-key",  # under 50 characters
    "a" * 60,  # too few distinct characters
    "django-insecure-" + STRONG_KEY,  # startproject's
]


class SecretKeyCheckTests(SimpleTestCase):
    def w005(self) -> list[Any]:
        return [
            message
            for message in run_checks()
            if message.id == "django_prologue_sessions.W005"
        ]

    @override_settings(SECRET_KEY=STRONG_KEY, DEBUG=False)
    def test_w005_a_strong_key_passes(self) -> None:
        self.assertEqual(self.w005(), [])

    def test_w005_a_weak_key_with_the_cookie_engine_and_debug_off(self) -> None:
        for engine in (
            COOKIE_ENGINE,
            "django.contrib.sessions.backends.signed_cookies",
        ):
            for key in WEAK_KEYS:
                with (
                    self.subTest(engine=engine, key=key),
                    override_settings(
                        SESSION_ENGINE=engine, SECRET_KEY=key, DEBUG=False
                    ),
                ):
                    (warning,) = self.w005()
                    self.assertIn("SECRET_KEY is weak", warning.msg)
                    self.assertIn("forge any session", warning.msg)
                    # The key itself is never repeated in the output.
                    self.assertNotIn(key, warning.msg + warning.hint)

    @override_settings(
        SECRET_KEY=STRONG_KEY, SECRET_KEY_FALLBACKS=[STRONG_KEY[::-1], "old"]
    )
    def test_w005_a_weak_fallback_signs_sessions_too(self) -> None:
        (warning,) = self.w005()
        self.assertIn("SECRET_KEY_FALLBACKS[1] is weak", warning.msg)

    @override_settings(SECRET_KEY="short", SECRET_KEY_FALLBACKS=["old"])
    def test_w005_names_every_weak_key_once(self) -> None:
        (warning,) = self.w005()
        self.assertIn("SECRET_KEY and SECRET_KEY_FALLBACKS[0] are weak", warning.msg)

    @override_settings(SECRET_KEY="short")
    def test_w005_not_with_debug_on_nor_another_engine(self) -> None:
        with override_settings(DEBUG=True):
            self.assertEqual(self.w005(), [])
        for engine in (
            "django_prologue_sessions.backends.memory",
            "django.contrib.sessions.backends.db",
        ):
            with self.subTest(engine=engine), override_settings(SESSION_ENGINE=engine):
                self.assertEqual(self.w005(), [])
