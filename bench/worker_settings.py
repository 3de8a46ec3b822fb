"""Settings of one benchmark worker: the engine named by ``$BENCH_ENGINE``.

The stack is as small as a session needs: ``SessionMiddleware`` and a view
(no middleware at all for the floor), so that what differs between two runs is
the session engine.
"""

from __future__ import annotations

import os

from bench.engines import get_engine

BENCH_ENGINE = get_engine(os.environ.get("BENCH_ENGINE", "prologue-signed"))
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

SECRET_KEY = "django-prologue-sessions-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True

INSTALLED_APPS = ["django.contrib.sessions", "django_prologue_sessions"]
# The bare floor (no engine module) runs no middleware at all.
MIDDLEWARE = (
    ["django.contrib.sessions.middleware.SessionMiddleware"]
    if BENCH_ENGINE.module
    else []
)
ROOT_URLCONF = "bench.urls"
DATABASES: dict[str, dict[str, str]] = {}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SESSION_ENGINE = BENCH_ENGINE.module or "django.contrib.sessions.backends.cache"

globals().update(BENCH_ENGINE.settings(BENCH_REDIS_URL))
