"""This app's settings, each read from ``django.conf.settings`` when used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_PROXY_HEADER = "HTTP_X_FORWARDED_FOR"
#: 4 MiB: four times memcached's item limit, far above what a session holds.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
#: Of the memory engine and ``SESSION_REDIS["max_sessions_per_user"]``: signed
#: in on 100 devices at once is far more than a person needs (GitLab allows
#: 100 too), and a user's sessions are then listed in one page.
DEFAULT_MAX_SESSIONS_PER_USER = 100


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
    def PROLOGUE_SESSIONS_MAX_BYTES(self) -> int:
        """The largest session, serialized, that the memory and Redis engines
        save or read; a stored one past it (inflated) reads as corrupt.

        A value that is not a positive integer counts as the default, 4 MiB;
        system check E070 reports it.
        """
        return _positive_int_setting("PROLOGUE_SESSIONS_MAX_BYTES", DEFAULT_MAX_BYTES)

    @property
    def PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS(self) -> int:
        """How many sessions the memory engine keeps before evicting (LRU).

        A value that is not a positive integer counts as the default, 10_000;
        system check E010 reports it.
        """
        return _positive_int_setting("PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS", 10_000)

    @property
    def PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER(self) -> int:
        """How many sessions one user may have in the memory engine: a login
        past it ends that user's sessions that would expire soonest.

        A value that is not a positive integer counts as the default, 100;
        system check E011 reports it.
        """
        return _positive_int_setting(
            "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER",
            DEFAULT_MAX_SESSIONS_PER_USER,
        )

    @property
    def PROLOGUE_SESSIONS_IDLE_TIMEOUT(self) -> int | None:
        """Seconds without a request after which a session ends; None: never.

        A value that is not a positive integer counts as None; system check
        E080 reports it.
        """
        return _optional_seconds("PROLOGUE_SESSIONS_IDLE_TIMEOUT")

    @property
    def PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT(self) -> int | None:
        """Seconds after the sign-in that began it at which a session ends,
        however active; None: never. Check E081 reports a bad value."""
        return _optional_seconds("PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT")

    @property
    def PROLOGUE_SESSIONS_ANONYMOUS_AGE(self) -> int | None:
        """The lifetime of a session without a user, in place of
        ``SESSION_COOKIE_AGE``; None: the same. Check E082 reports a bad value."""
        return _optional_seconds("PROLOGUE_SESSIONS_ANONYMOUS_AGE")

    @property
    def PROLOGUE_SESSIONS_ACTIVITY(self) -> bool:
        """Record each logged-in session's IP address, user agent and last
        activity (``django_prologue_sessions.activity``)."""
        return getattr(settings, "PROLOGUE_SESSIONS_ACTIVITY", False) is True

    @property
    def PROLOGUE_SESSIONS_ACTIVITY_INTERVAL(self) -> int:
        """Seconds between two refreshes of a session's last activity.

        A value that is not a positive integer counts as the default, 300;
        system check E051 reports it.
        """
        return _positive_int_setting("PROLOGUE_SESSIONS_ACTIVITY_INTERVAL", 300)

    @property
    def PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP(self) -> bool:
        """Store IPv4 addresses to /24 and IPv6 to /48, the host part zeroed."""
        value = getattr(settings, "PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP", False)
        return value is True

    @property
    def PROLOGUE_SESSIONS_TRUSTED_PROXIES(self) -> list[str]:
        """The proxies (addresses or CIDR networks) whose client address
        header is believed; none by default. Check E053 reports bad entries,
        which are ignored meanwhile."""
        value = getattr(settings, "PROLOGUE_SESSIONS_TRUSTED_PROXIES", ())
        if isinstance(value, str) or not isinstance(value, list | tuple):
            return []
        return [entry for entry in value if isinstance(entry, str)]

    @property
    def PROLOGUE_SESSIONS_PROXY_HEADER(self) -> str:
        """The ``request.META`` name of the header a trusted proxy appends the
        client's address to, in ``X-Forwarded-For`` form."""
        value = getattr(settings, "PROLOGUE_SESSIONS_PROXY_HEADER", None)
        if isinstance(value, str) and value.startswith("HTTP_"):
            return value
        return DEFAULT_PROXY_HEADER  # check E054 reports any other value

    @property
    def PROLOGUE_SESSIONS_MIGRATE_FROM(self) -> str | None:
        """The ``SESSION_ENGINE`` path of the engine that sessions move in
        from (``django_prologue_sessions.migrate``); None for none.

        A value that is not a non-empty string counts as None; system check
        E060 reports it.
        """
        value = getattr(settings, "PROLOGUE_SESSIONS_MIGRATE_FROM", None)
        return value if isinstance(value, str) and value else None

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


def _optional_seconds(name: str) -> int | None:
    value = getattr(settings, name, None)
    return value if is_positive_int(value) else None


app_settings = Settings()
