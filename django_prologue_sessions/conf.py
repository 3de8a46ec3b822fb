"""This app's settings, each read from ``django.conf.settings`` when used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class Settings:
    @property
    def PROLOGUE_SESSIONS_COOKIE_ENCRYPTION(self) -> bool:
        """Encrypt signed-cookie sessions with AES-GCM (needs ``cryptography``)."""
        return bool(getattr(settings, "PROLOGUE_SESSIONS_COOKIE_ENCRYPTION", False))

    @property
    def PROLOGUE_SESSIONS_COOKIE_MAX_BYTES(self) -> int:
        """The largest ``Set-Cookie`` a signed-cookie session may produce.

        A value that is not a positive integer counts as the default, 4096;
        system check E001 reports it.
        """
        return _positive_int_setting("PROLOGUE_SESSIONS_COOKIE_MAX_BYTES", 4096)

    @property
    def PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS(self) -> int:
        """How many sessions the memory engine keeps before evicting (LRU).

        A value that is not a positive integer counts as the default, 10_000;
        system check E010 reports it.
        """
        return _positive_int_setting("PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS", 10_000)

    @property
    def SESSION_REDIS(self) -> dict[str, Any]:
        """The Redis engine's options (docs/settings.md, `SESSION_REDIS`)."""
        value = getattr(settings, "SESSION_REDIS", None)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ImproperlyConfigured(
                f"SESSION_REDIS must be a dict, not {type(value).__name__}."
            )
        return dict(value)


def is_positive_int(value: object) -> bool:
    """A positive ``int`` (``True`` is an int to Python, not to a setting)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_int_setting(name: str, default: int) -> int:
    value = getattr(settings, name, default)
    return value if is_positive_int(value) else default


app_settings = Settings()
