"""The session engines the benchmark compares: one registry entry each.

An entry names the ``SESSION_ENGINE`` module and the settings it needs; the
worker process of that engine applies them (``bench/worker_settings.py``), so
every engine runs under settings of its own, in a process of its own.

Adding an engine is adding an entry here. An entry whose modules cannot be
imported (one of ours not written yet, a peer not installed) is listed in the
results as not run, never silently dropped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SCENARIOS = ("create", "read", "modify", "untouched")

# Big enough to hold every session of one repeat, so that neither in-memory
# store evicts while it is timed (LocMemCache culls past 300 by default).
MAX_LOCAL_ENTRIES = 1_000_000


def _no_settings(redis_url: str) -> dict[str, Any]:
    return {}


OURS = "django_prologue_sessions.backends."


@dataclass(frozen=True)
class Engine:
    name: str
    label: str
    #: "cookie", "memory", "redis" or "floor": ours are compared with the
    #: peers of the same family.
    family: str
    #: The SESSION_ENGINE module; "" for the floor, which has no session.
    module: str
    settings: Callable[[str], dict[str, Any]] = _no_settings
    #: Modules that must import for the entry to run.
    requires: tuple[str, ...] = ()

    @property
    def ours(self) -> bool:
        return self.module.startswith(OURS)

    @property
    def uses_redis(self) -> bool:
        """Whether sessions (or the floor's round trips) go to the benchmark's
        Redis server."""
        return self.family in ("redis", "floor")

    def missing(self) -> list[str]:
        """The modules of this entry that cannot be imported here."""
        names = [self.module, *self.requires] if self.module else [*self.requires]
        return [name for name in names if not _importable(name)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def _locmem(redis_url: str) -> dict[str, Any]:
    return {
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "OPTIONS": {"MAX_ENTRIES": MAX_LOCAL_ENTRIES},
            }
        }
    }


def _cache_on(backend: str) -> Callable[[str], dict[str, Any]]:
    def settings(redis_url: str) -> dict[str, Any]:
        return {"CACHES": {"default": {"BACKEND": backend, "LOCATION": redis_url}}}

    return settings


def _prologue_redis(redis_url: str) -> dict[str, Any]:
    return {"SESSION_REDIS": {"url": redis_url, "prefix": "bench:prologue:"}}


def _redis_sessions(redis_url: str) -> dict[str, Any]:
    # django-redis-sessions reads the same setting name as our Redis engine.
    # Its default socket timeout, 0.1 s, is raised to the redis-py norm of a
    # few seconds so that a busy 2-core machine does not count as an outage.
    return {
        "SESSION_REDIS": {
            "url": redis_url,
            "prefix": "bench:redis_sessions",
            "socket_timeout": 5,
        }
    }


def _prologue_memory(redis_url: str) -> dict[str, Any]:
    return {"PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS": MAX_LOCAL_ENTRIES}


def _encrypted(redis_url: str) -> dict[str, Any]:
    return {"PROLOGUE_SESSIONS_COOKIE_ENCRYPTION": True}


CACHE_ENGINE = "django.contrib.sessions.backends.cache"

ENGINES: tuple[Engine, ...] = (
    Engine(
        "prologue-redis",
        "prologue redis",
        "redis",
        module=OURS + "redis",
        settings=_prologue_redis,
        requires=("redis",),
    ),
    Engine(
        "django-cache-redis",
        "Django cache + RedisCache",
        "redis",
        module=CACHE_ENGINE,
        settings=_cache_on("django.core.cache.backends.redis.RedisCache"),
        requires=("redis",),
    ),
    Engine(
        "django-cache-django-redis",
        "Django cache + django-redis",
        "redis",
        module=CACHE_ENGINE,
        settings=_cache_on("django_redis.cache.RedisCache"),
        requires=("django_redis",),
    ),
    Engine(
        "django-redis-sessions",
        "django-redis-sessions",
        "redis",
        module="redis_sessions.session",
        settings=_redis_sessions,
    ),
    Engine(
        "prologue-memory",
        "prologue memory",
        "memory",
        module=OURS + "memory",
        settings=_prologue_memory,
    ),
    Engine(
        "django-cache-locmem",
        "Django cache + LocMemCache",
        "memory",
        module=CACHE_ENGINE,
        settings=_locmem,
    ),
    Engine(
        "prologue-signed",
        "prologue signed_cookies",
        "cookie",
        module=OURS + "signed_cookies",
    ),
    Engine(
        "prologue-signed-encrypted",
        "prologue signed_cookies, encrypted",
        "cookie",
        module=OURS + "signed_cookies",
        settings=_encrypted,
        requires=("cryptography",),
    ),
    Engine(
        "django-signed",
        "Django signed_cookies",
        "cookie",
        module="django.contrib.sessions.backends.signed_cookies",
    ),
    # A bare request (no SessionMiddleware) plus as many round trips as our
    # Redis engine makes, each a command on a plain socket (bench/urls.py):
    # what no Redis engine can beat. redis-py is only the worker's probe.
    Engine(
        "floor",
        "floor: bare request + raw round trips",
        "floor",
        module="",
        requires=("redis",),
    ),
    # The same round trips behind SessionMiddleware, by a session engine that
    # does nothing else (bench/floor_engine.py): the least any engine costs.
    Engine(
        "floor-middleware",
        "floor: SessionMiddleware + raw round trips",
        "floor",
        module="bench.floor_engine",
        requires=("redis",),
    ),
)

BY_NAME = {engine.name: engine for engine in ENGINES}


def get_engine(name: str) -> Engine:
    try:
        return BY_NAME[name]
    except KeyError:
        raise SystemExit(
            f"Unknown engine {name!r}; the engines are: {', '.join(BY_NAME)}"
        ) from None
