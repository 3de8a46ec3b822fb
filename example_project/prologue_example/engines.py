"""The session engines the example can run on, by short name."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

ENGINES = {
    "signed_cookies": "django_prologue_sessions.backends.signed_cookies",
    "memory": "django_prologue_sessions.backends.memory",
    "redis": "django_prologue_sessions.backends.redis",
}

DESCRIPTIONS = {
    "signed_cookies": "Signed cookie: the whole session travels in the cookie.",
    "memory": "Memory: sessions live in this server process and die with it.",
    "redis": "Redis: sessions live in a Redis server, shared by every process.",
}


def engine_path(name: str) -> str:
    """Return the ``SESSION_ENGINE`` for a short engine name like ``memory``."""
    key = name.strip().lower().replace("-", "_")
    try:
        return ENGINES[key]
    except KeyError:
        raise ImproperlyConfigured(
            f"PROLOGUE_EXAMPLE_ENGINE={name!r} is not an engine of the example; "
            f"use one of: {', '.join(ENGINES)}."
        ) from None


def engine_name(path: str) -> str:
    """Return the short name of ``SESSION_ENGINE``, or the path if not ours."""
    return next((name for name, full in ENGINES.items() if full == path), path)
