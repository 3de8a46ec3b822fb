"""System checks for this app's settings.

Each check has a stable id (``django_prologue_sessions.E001`` ...) that the
tests assert, so that users can silence one with ``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Info

from django_prologue_sessions.conf import app_settings, is_positive_int

OUR_ENGINES = "django_prologue_sessions.backends."


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    errors.extend(_check_cookie_settings())
    errors.extend(_check_memory_settings())
    errors.extend(_check_redis_settings())
    errors.extend(_check_activity_settings())
    errors.extend(_check_expiry_settings())
    return errors


# Check ids: E001-E009 signed cookies, E010-E019 memory, E020-E039 Redis,
# E040-E049 flash messages, E050-E059 session activity, E060-E069 expiry.

EXPIRY_SETTINGS = (
    ("PROLOGUE_SESSIONS_IDLE_TIMEOUT", "E060"),
    ("PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT", "E061"),
    ("PROLOGUE_SESSIONS_ANONYMOUS_AGE", "E062"),
)


def _check_expiry_settings() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name, id_ in EXPIRY_SETTINGS:
        value = getattr(settings, name, None)
        if value is not None and not is_positive_int(value):
            errors.append(
                Error(
                    f"{name} must be a positive integer (seconds), or None.",
                    hint=f"It is {value!r}; meanwhile it counts as None (off).",
                    id=f"django_prologue_sessions.{id_}",
                )
            )
    return errors


ACTIVITY_MIDDLEWARE = "django_prologue_sessions.activity.ActivityMiddleware"


def _check_activity_settings() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name, id_ in (
        ("PROLOGUE_SESSIONS_ACTIVITY", "E050"),
        ("PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP", "E052"),
    ):
        value = getattr(settings, name, False)
        if not isinstance(value, bool):
            errors.append(
                Error(
                    f"{name} must be True or False.",
                    hint=f"It is {value!r}; meanwhile it counts as False.",
                    id=f"django_prologue_sessions.{id_}",
                )
            )
    interval = getattr(settings, "PROLOGUE_SESSIONS_ACTIVITY_INTERVAL", 300)
    if not is_positive_int(interval):
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_ACTIVITY_INTERVAL must be a positive integer "
                "(seconds).",
                hint=f"It is {interval!r}; meanwhile 300 is used.",
                id="django_prologue_sessions.E051",
            )
        )
    errors.extend(_check_trusted_proxies())
    header = getattr(settings, "PROLOGUE_SESSIONS_PROXY_HEADER", None)
    if header is not None and (
        not isinstance(header, str) or not header.startswith("HTTP_")
    ):
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_PROXY_HEADER must name a request.META key of "
                "a header, such as 'HTTP_X_FORWARDED_FOR'.",
                hint=f"It is {header!r}; meanwhile HTTP_X_FORWARDED_FOR is used.",
                id="django_prologue_sessions.E054",
            )
        )
    if getattr(settings, "PROLOGUE_SESSIONS_ACTIVITY", False) is True and (
        ACTIVITY_MIDDLEWARE not in settings.MIDDLEWARE
    ):
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_ACTIVITY is on, but the activity middleware "
                "is not in MIDDLEWARE: a session's last activity is never "
                "refreshed.",
                hint=f"Add {ACTIVITY_MIDDLEWARE!r} after SessionMiddleware and "
                "AuthenticationMiddleware.",
                id="django_prologue_sessions.E055",
            )
        )
    return errors


def _check_trusted_proxies() -> list[CheckMessage]:
    import ipaddress

    value = getattr(settings, "PROLOGUE_SESSIONS_TRUSTED_PROXIES", [])
    if isinstance(value, str) or not isinstance(value, list | tuple):
        return [
            Error(
                "PROLOGUE_SESSIONS_TRUSTED_PROXIES must be a list of IP addresses "
                "or networks.",
                hint=f"It is {value!r}; meanwhile no proxy is trusted.",
                id="django_prologue_sessions.E053",
            )
        ]
    bad = []
    for entry in value:
        try:
            if not isinstance(entry, str):
                raise TypeError
            ipaddress.ip_network(entry, strict=False)
        except (TypeError, ValueError):
            bad.append(entry)
    if bad:
        return [
            Error(
                "PROLOGUE_SESSIONS_TRUSTED_PROXIES holds entries that are not "
                "IP addresses or networks.",
                hint=f"{bad!r} are ignored. Write '10.0.0.0/8' or '192.0.2.7'.",
                id="django_prologue_sessions.E053",
            )
        ]
    return []


def _check_memory_settings() -> list[CheckMessage]:
    max_sessions = getattr(settings, "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS", 10_000)
    if not is_positive_int(max_sessions):
        return [
            Error(
                "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS must be a positive integer.",
                hint=f"It is {max_sessions!r}; meanwhile 10000 is used.",
                id="django_prologue_sessions.E010",
            )
        ]
    return []


def _check_redis_settings() -> list[CheckMessage]:
    if settings.SESSION_ENGINE != OUR_ENGINES + "redis":
        return []
    from django_prologue_sessions.backends.redis import options as _redis_options

    value = getattr(settings, "SESSION_REDIS", None)
    problems = _redis_options.find_problems(value, settings.CACHES)
    errors: list[CheckMessage] = [
        Error(
            problem.message,
            hint=problem.hint,
            id=f"django_prologue_sessions.E{problem.code:03d}",
        )
        for problem in problems
    ]
    if isinstance(value, dict) and value.get("user_index") is False:
        errors.append(
            Info(
                "SESSION_REDIS['user_index'] is False: a user's sessions cannot "
                "be listed nor revoked (list_sessions(), revoke_session(), "
                "revoke_all() and the usersessions command raise "
                "ImproperlyConfigured).",
                hint="Remove the key to turn the index back on; it costs each "
                "logged-in user one small sorted set in Redis.",
                id="django_prologue_sessions.I035",
            )
        )
    try:
        import redis  # noqa: F401
    except ImportError:
        errors.append(
            Error(
                "The Redis session engine needs the 'redis' package, which is "
                "not installed.",
                hint='pip install "django-prologue-sessions[redis]"',
                id="django_prologue_sessions.E030",
            )
        )
    return errors


def _check_cookie_settings() -> list[CheckMessage]:
    import json

    from django.utils.module_loading import import_string

    errors: list[CheckMessage] = []
    max_bytes = getattr(settings, "PROLOGUE_SESSIONS_COOKIE_MAX_BYTES", 4096)
    if not is_positive_int(max_bytes):
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_COOKIE_MAX_BYTES must be a positive integer.",
                hint=f"It is {max_bytes!r}; browsers accept up to 4096, which "
                "is used meanwhile.",
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
    encryption = getattr(settings, "PROLOGUE_SESSIONS_COOKIE_ENCRYPTION", False)
    if not isinstance(encryption, bool):
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_COOKIE_ENCRYPTION must be True or False.",
                hint=f"It is {encryption!r}, which counts as {bool(encryption)}.",
                id="django_prologue_sessions.E003",
            )
        )
    if settings.SESSION_ENGINE == OUR_ENGINES + "signed_cookies":
        # The client holds the session: a serializer that is not JSON (pickle)
        # turns a leaked SECRET_KEY into code execution on the server.
        sample = {"django_prologue_sessions": ["check", 1]}
        try:
            serializer = import_string(settings.SESSION_SERIALIZER)
            writes_json = json.loads(serializer().dumps(sample)) == sample
        except Exception:
            writes_json = False
        if not writes_json:
            errors.append(
                Error(
                    "The signed-cookie session engine needs a SESSION_SERIALIZER "
                    "that writes JSON.",
                    hint=f"It is {settings.SESSION_SERIALIZER!r}. Use "
                    "'django.contrib.sessions.serializers.JSONSerializer'.",
                    id="django_prologue_sessions.E004",
                )
            )
    return errors
