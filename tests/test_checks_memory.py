"""System checks of the memory engine's settings (ids E010-E019)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings

from django_prologue_sessions.checks import _check_memory_settings
from django_prologue_sessions.conf import app_settings


class MaxSessionsCheckTests(SimpleTestCase):
    def test_valid_values_pass(self) -> None:
        for value in (1, 10_000, 10**9):
            with (
                self.subTest(value=value),
                override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=value),
            ):
                self.assertEqual(_check_memory_settings(), [])
                self.assertEqual(
                    app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS, value
                )

    def test_unset_passes_and_defaults_to_ten_thousand(self) -> None:
        self.assertEqual(_check_memory_settings(), [])
        self.assertEqual(app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS, 10_000)

    def test_not_a_positive_integer_is_e010(self) -> None:
        bad: list[Any] = [0, -1, True, False, 1.5, 100.0, "100", None, [100]]
        for value in bad:
            with (
                self.subTest(value=value),
                override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=value),
            ):
                errors = _check_memory_settings()
                self.assertEqual(
                    [error.id for error in errors], ["django_prologue_sessions.E010"]
                )
                self.assertIsInstance(errors[0], Error)
                self.assertIn(repr(value), errors[0].hint or "")
                # Meanwhile the engine runs on the default, never crashes.
                self.assertEqual(
                    app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS, 10_000
                )

    @override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS="many")
    def test_registered_with_the_check_framework(self) -> None:
        with self.assertRaisesMessage(
            SystemCheckError, "(django_prologue_sessions.E010)"
        ):
            call_command("check")


class MaxSessionsPerUserCheckTests(SimpleTestCase):
    def test_unset_passes_and_defaults_to_a_hundred(self) -> None:
        self.assertEqual(_check_memory_settings(), [])
        self.assertEqual(
            app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER, 100
        )

    def test_a_positive_integer_passes(self) -> None:
        with override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER=3):
            self.assertEqual(_check_memory_settings(), [])
            self.assertEqual(
                app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER, 3
            )

    def test_not_a_positive_integer_is_e011(self) -> None:
        bad: list[Any] = [0, -1, True, 1.5, "100", None]
        for value in bad:
            with (
                self.subTest(value=value),
                override_settings(PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER=value),
            ):
                self.assertEqual(
                    [error.id for error in _check_memory_settings()],
                    ["django_prologue_sessions.E011"],
                )
                self.assertEqual(
                    app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER, 100
                )
