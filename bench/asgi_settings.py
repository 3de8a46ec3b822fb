"""Settings of one ASGI benchmark server: the set-up named by ``$BENCH_ASGI_SETUP``.

The stack is a session middleware and an async view (``bench/asgi_urls.py``),
so that what differs between two set-ups is the middleware and the engine.
"""

from __future__ import annotations

import os

from bench.asgi import get_setup
from bench.engines import get_engine

SETUP = get_setup(os.environ.get("BENCH_ASGI_SETUP", "prologue"))
_engine = get_engine(SETUP.engine)

SECRET_KEY = "django-prologue-sessions-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True

INSTALLED_APPS = ["django.contrib.sessions", "django_prologue_sessions"]
MIDDLEWARE = [SETUP.middleware]
ROOT_URLCONF = "bench.asgi_urls"
DATABASES: dict[str, dict[str, str]] = {}
SESSION_ENGINE = _engine.module

globals().update(_engine.settings(os.environ.get("BENCH_REDIS_URL", "")))
