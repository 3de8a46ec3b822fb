"""System checks for this app's settings.

Each check has a stable id (``django_prologue_sessions.E001`` ...) that the
tests assert, so that users can silence one with ``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error

from django_prologue_sessions.conf import app_settings

OUR_ENGINES = "django_prologue_sessions.backends."


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    errors.extend(_check_cookie_settings())
    errors.extend(_check_memory_settings())
    errors.extend(_check_redis_settings())
    return errors


# Check ids: E001-E009 signed cookies, E010-E019 memory, E020-E039 Redis,
# E040-E049 flash messages.


def _check_memory_settings() -> list[CheckMessage]:
    max_sessions = getattr(settings, "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS", 10_000)
    if (
        not isinstance(max_sessions, int)
        or isinstance(max_sessions, bool)
        or max_sessions < 1
    ):
        return [
            Error(
                "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS must be a positive integer.",
                hint=f"It is {max_sessions!r}; meanwhile 10000 is used.",
                id="django_prologue_sessions.E010",
            )
        ]
    return []


def _check_redis_settings() -> list[CheckMessage]:
    return []


def _check_cookie_settings() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    max_bytes = getattr(settings, "PROLOGUE_SESSIONS_COOKIE_MAX_BYTES", 4096)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_COOKIE_MAX_BYTES must be a positive integer.",
                hint=f"It is {max_bytes!r}; browsers accept up to 4096.",
                id="django_prologue_sessions.E001",
            )
        )
    if app_settings.PROLOGUE_SESSIONS_COOKIE_ENCRYPTION:
        try:
            import cryptography  # noqa: F401
        except ImportError:
            errors.append(
                Error(
                    "PROLOGUE_SESSIONS_COOKIE_ENCRYPTION is on, but the "
                    "'cryptography' package is not installed.",
                    hint='pip install "django-prologue-sessions[encryption]"',
                    id="django_prologue_sessions.E002",
                )
            )
    return errors
