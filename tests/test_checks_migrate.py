"""System checks of PROLOGUE_SESSIONS_MIGRATE_FROM (ids E060-E069)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings

from django_prologue_sessions.backends import memory
from django_prologue_sessions.checks import _check_migrate_from
from django_prologue_sessions.conf import app_settings

OURS = "django_prologue_sessions.backends."


class SessionStore(memory.SessionStore):
    """This module as a SESSION_ENGINE: a site's own engine, derived from ours."""


def ids(**settings: Any) -> list[str]:
    with override_settings(**settings):
        errors = _check_migrate_from()
    assert all(isinstance(error, Error) for error in errors)
    return [error.id for error in errors if error.id is not None]


class MigrateFromCheckTests(SimpleTestCase):
    def test_unset_passes(self) -> None:
        self.assertEqual(_check_migrate_from(), [])
        self.assertIsNone(app_settings.PROLOGUE_SESSIONS_MIGRATE_FROM)

    def test_each_source_into_each_target_passes(self) -> None:
        for source in (
            "django.contrib.sessions.backends.db",
            "django.contrib.sessions.backends.cache",
            "django.contrib.sessions.backends.cached_db",
            "django.contrib.sessions.backends.file",
            "django.contrib.sessions.backends.signed_cookies",
            "redis_sessions.session",
            OURS + "signed_cookies",
        ):
            for target in ("redis", "memory"):
                with self.subTest(source=source, target=target):
                    self.assertEqual(
                        ids(
                            SESSION_ENGINE=OURS + target,
                            PROLOGUE_SESSIONS_MIGRATE_FROM=source,
                        ),
                        [],
                    )

    def test_not_a_path_is_e060(self) -> None:
        for value in ("", 42, ["django.contrib.sessions.backends.db"]):
            with self.subTest(value=value):
                self.assertEqual(
                    ids(
                        SESSION_ENGINE=OURS + "memory",
                        PROLOGUE_SESSIONS_MIGRATE_FROM=value,
                    ),
                    ["django_prologue_sessions.E060"],
                )
                with override_settings(PROLOGUE_SESSIONS_MIGRATE_FROM=value):
                    self.assertIsNone(app_settings.PROLOGUE_SESSIONS_MIGRATE_FROM)

    def test_an_unknown_engine_is_e060(self) -> None:
        for value in (
            "django.contrib.sessions.backends.dbb",  # a typo
            "no_such_package.sessions",
            "django.contrib.sessions.models",  # a module, not an engine
        ):
            with self.subTest(value=value):
                with override_settings(
                    SESSION_ENGINE=OURS + "redis", PROLOGUE_SESSIONS_MIGRATE_FROM=value
                ):
                    errors = _check_migrate_from()
                self.assertEqual(
                    [error.id for error in errors], ["django_prologue_sessions.E060"]
                )
                self.assertIn(value, errors[0].msg)

    def test_a_typo_gets_a_suggestion(self) -> None:
        with override_settings(
            SESSION_ENGINE=OURS + "redis",
            PROLOGUE_SESSIONS_MIGRATE_FROM="django.contrib.sessions.backend.cached_db",
        ):
            (error,) = _check_migrate_from()
        self.assertEqual(
            error.hint, "Did you mean 'django.contrib.sessions.backends.cached_db'?"
        )

    def test_the_current_engine_is_e061(self) -> None:
        for engine in (OURS + "redis", OURS + "memory", OURS + "signed_cookies"):
            with self.subTest(engine=engine):
                self.assertEqual(
                    ids(SESSION_ENGINE=engine, PROLOGUE_SESSIONS_MIGRATE_FROM=engine),
                    ["django_prologue_sessions.E061"],
                )

    def test_a_current_engine_not_of_ours_is_e062(self) -> None:
        self.assertEqual(
            ids(
                SESSION_ENGINE="django.contrib.sessions.backends.cache",
                PROLOGUE_SESSIONS_MIGRATE_FROM="django.contrib.sessions.backends.db",
            ),
            ["django_prologue_sessions.E062"],
        )

    @override_settings(
        SESSION_ENGINE=OURS + "memory",
        PROLOGUE_SESSIONS_MIGRATE_FROM=OURS + "memory",
    )
    def test_registered_with_the_check_framework(self) -> None:
        with self.assertRaisesMessage(
            SystemCheckError, "(django_prologue_sessions.E061)"
        ):
            call_command("check")


class DerivedEngineTests(SimpleTestCase):
    """An engine module of the site's own, derived from one of ours."""

    def test_an_engine_derived_from_ours_passes(self) -> None:
        self.assertEqual(
            ids(
                SESSION_ENGINE="tests.test_checks_migrate",
                PROLOGUE_SESSIONS_MIGRATE_FROM="django.contrib.sessions.backends.db",
            ),
            [],
        )
