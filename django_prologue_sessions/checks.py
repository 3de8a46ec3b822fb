"""System checks for this app's settings.

Each check has a stable id (``django_prologue_sessions.E001`` ...) that the
tests assert, so that users can silence one with ``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Warning
from django.core.exceptions import ImproperlyConfigured

from django_prologue_sessions.conf import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SESSIONS_PER_USER,
    app_settings,
    is_positive_int,
)

OUR_ENGINES = "django_prologue_sessions.backends."


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    errors.extend(_check_cookie_settings())
    errors.extend(_check_size_settings())
    errors.extend(_check_memory_settings())
    errors.extend(_check_redis_settings())
    errors.extend(_check_activity_settings())
    errors.extend(_check_migrate_from())
    errors.extend(_check_expiry_settings())
    return errors


# Check ids: E001-E009 signed cookies, E010-E019 memory, E020-E039 Redis,
# E040-E049 flash messages, E050-E059 session activity and the sessions pages,
# E060-E069 moving sessions in from the previous engine, E070-E079 the size
# of a session, E080-E089 expiry. A warning or info takes the next number of
# its range, as an error does.


# The engines a site is likeliest to move from, for typo suggestions.
KNOWN_SOURCES = [
    *(
        f"django.contrib.sessions.backends.{name}"
        for name in ("db", "cache", "cached_db", "file", "signed_cookies")
    ),
    "redis_sessions.session",
    *(OUR_ENGINES + name for name in ("signed_cookies", "memory", "redis")),
]


def _check_migrate_from() -> list[CheckMessage]:
    import difflib
    from importlib import import_module

    value = getattr(settings, "PROLOGUE_SESSIONS_MIGRATE_FROM", None)
    if value is None:
        return []
    if not isinstance(value, str) or not value:
        return [
            Error(
                "PROLOGUE_SESSIONS_MIGRATE_FROM must name the previous session "
                "engine by its SESSION_ENGINE path.",
                hint=f"It is {value!r}; meanwhile no session is moved in.",
                id="django_prologue_sessions.E060",
            )
        ]
    if value == settings.SESSION_ENGINE:
        return [
            Error(
                "PROLOGUE_SESSIONS_MIGRATE_FROM names the current SESSION_ENGINE.",
                hint="Set it to the engine the site used before the switch, "
                "or remove it.",
                id="django_prologue_sessions.E061",
            )
        ]
    try:
        engine = import_module(value)
    except Exception as exc:
        engine, problem = None, f"it cannot be imported ({exc!r})"
    else:
        problem = "it has no SessionStore"
    if engine is None or not isinstance(getattr(engine, "SessionStore", None), type):
        close = difflib.get_close_matches(value, KNOWN_SOURCES, n=1)
        return [
            Error(
                f"PROLOGUE_SESSIONS_MIGRATE_FROM {value!r} is not a session "
                f"engine: {problem}.",
                hint=f"Did you mean {close[0]!r}?"
                if close
                else "Give the SESSION_ENGINE path of the previous engine, such "
                "as 'django.contrib.sessions.backends.db'.",
                id="django_prologue_sessions.E060",
            )
        ]
    if not _moves_sessions_in(settings.SESSION_ENGINE):
        return [
            Error(
                "PROLOGUE_SESSIONS_MIGRATE_FROM is set, but SESSION_ENGINE is "
                "not an engine of this package: no session is moved in.",
                hint="Sessions move into the Redis, memory and signed-cookie "
                f"engines ({OUR_ENGINES}redis, memory, signed_cookies) and "
                "engines derived from them.",
                id="django_prologue_sessions.E062",
            )
        ]
    return []


def _moves_sessions_in(path: str) -> bool:
    """Whether the engine at ``path`` is one of ours (or derived from one)."""
    from importlib import import_module

    from django_prologue_sessions.backends.base import SessionStoreBase

    try:
        store = import_module(path).SessionStore
    except Exception:
        return False  # Django's own checks and first request say why
    return isinstance(store, type) and issubclass(store, SessionStoreBase)


EXPIRY_SETTINGS = (
    ("PROLOGUE_SESSIONS_IDLE_TIMEOUT", "django_prologue_sessions.E080"),
    ("PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT", "django_prologue_sessions.E081"),
    ("PROLOGUE_SESSIONS_ANONYMOUS_AGE", "django_prologue_sessions.E082"),
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
                    id=id_,
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


def _check_size_settings() -> list[CheckMessage]:
    max_bytes = getattr(settings, "PROLOGUE_SESSIONS_MAX_BYTES", DEFAULT_MAX_BYTES)
    if not is_positive_int(max_bytes):
        return [
            Error(
                "PROLOGUE_SESSIONS_MAX_BYTES must be a positive integer (bytes).",
                hint=f"It is {max_bytes!r}; meanwhile {DEFAULT_MAX_BYTES} is used.",
                id="django_prologue_sessions.E070",
            )
        ]
    return []


def _check_memory_settings() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    max_sessions = getattr(settings, "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS", 10_000)
    if not is_positive_int(max_sessions):
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS must be a positive integer.",
                hint=f"It is {max_sessions!r}; meanwhile 10000 is used.",
                id="django_prologue_sessions.E010",
            )
        )
    per_user = getattr(
        settings,
        "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER",
        DEFAULT_MAX_SESSIONS_PER_USER,
    )
    if not is_positive_int(per_user):
        errors.append(
            Error(
                "PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER must be a "
                "positive integer.",
                hint=f"It is {per_user!r}; meanwhile "
                f"{DEFAULT_MAX_SESSIONS_PER_USER} is used.",
                id="django_prologue_sessions.E011",
            )
        )
    return errors


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
    errors.extend(_check_cookie_secret_key())
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


def _check_cookie_secret_key() -> list[CheckMessage]:
    """A signed-cookie session is as safe as SECRET_KEY: whoever has the key
    writes any session, logged in as anyone. Django warns of a weak key under
    ``check --deploy`` only; with this engine, warn in every check run."""
    from django.core.checks.security import base as security

    from django_prologue_sessions.user_sessions import SIGNED_COOKIE_ENGINES

    if settings.SESSION_ENGINE not in SIGNED_COOKIE_ENGINES or settings.DEBUG:
        return []
    min_length = getattr(security, "SECRET_KEY_MIN_LENGTH", 50)
    min_unique = getattr(security, "SECRET_KEY_MIN_UNIQUE_CHARACTERS", 5)
    prefix = getattr(security, "SECRET_KEY_INSECURE_PREFIX", "django-insecure-")

    def weak(key: object) -> bool:
        return isinstance(key, str) and (
            len(key) < min_length
            or len(set(key)) < min_unique
            or key.startswith(prefix)
        )

    try:
        keys = [("SECRET_KEY", settings.SECRET_KEY)]
    except ImproperlyConfigured:  # empty: Django refuses to start anyway
        return []
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", [])
    if isinstance(fallbacks, list | tuple):
        keys += [(f"SECRET_KEY_FALLBACKS[{i}]", key) for i, key in enumerate(fallbacks)]
    weak_names = [name for name, key in keys if weak(key)]
    if not weak_names:
        return []
    return [
        Warning(
            f"{' and '.join(weak_names)} {'is' if len(weak_names) == 1 else 'are'} "
            f"weak (shorter than {min_length} "
            f"characters, fewer than {min_unique} distinct ones, or starting "
            f"with {prefix!r}), and DEBUG is off: with the signed-cookie "
            "session engine, whoever guesses it can forge any session, logged "
            "in as any user.",
            hint="Generate a long random key "
            "(django.core.management.utils.get_random_secret_key()), read it "
            "from the environment, and keep no weak key in SECRET_KEY_FALLBACKS "
            "(every current session then ends).",
            id="django_prologue_sessions.W005",
        )
    ]


def check_sessions_pages(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The sessions pages (``django_prologue_sessions.urls``, or their views
    routed directly) with an engine that cannot list a user's sessions: the
    pages can only say so."""
    routed = _routed_sessions_pages()
    if not routed or _engine_lists_user_sessions():
        return []
    return [
        Warning(
            f"The sessions pages are routed ({', '.join(routed)}), but the "
            f"session engine {settings.SESSION_ENGINE!r} cannot list a user's "
            "sessions: the pages only say that they cannot show any.",
            hint="Use the memory or Redis engine (with its user index), or "
            "remove the pages from your URLconf.",
            id="django_prologue_sessions.W056",
        )
    ]


def _routed_sessions_pages() -> list[str]:
    """The routes of this app's views (subclasses too) in ROOT_URLCONF."""
    from django.urls import URLPattern, URLResolver, get_resolver

    try:
        patterns = list(get_resolver().url_patterns)
    except Exception:  # a broken URLconf is Django's own check to report
        return []
    # Routed, the views' module is imported: no need to import it here.
    views = sys.modules.get("django_prologue_sessions.views")
    if views is None:
        return []
    pages = (
        views.SessionListView,
        views.SessionRevokeView,
        views.SessionRevokeOthersView,
    )
    found: list[str] = []

    def walk(patterns: Sequence[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
                continue
            view = getattr(pattern.callback, "view_class", None)
            if isinstance(view, type) and issubclass(view, pages):
                found.append("/" + route)

    walk(patterns, "")
    return found


def _engine_lists_user_sessions() -> bool:
    from importlib import import_module

    from django_prologue_sessions.user_sessions import implements_user_sessions

    engine = settings.SESSION_ENGINE
    try:
        store = import_module(engine).SessionStore
    except Exception:  # reported when a session is used, or by E030
        return True
    if engine == OUR_ENGINES + "redis":
        options = getattr(settings, "SESSION_REDIS", None)
        if isinstance(options, dict) and options.get("user_index") is False:
            return False
    return implements_user_sessions(store)
