from __future__ import annotations

import sys
from typing import Any
from unittest import mock

from django.core.checks import run_checks
from django.test import SimpleTestCase, override_settings

from django_prologue_sessions.conf import app_settings

COOKIE_ENGINE = "django_prologue_sessions.backends.signed_cookies"


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
