"""Settings of the uvicorn server that ``tests/test_asgi.py`` starts.

The test settings, with our session middleware, the session message storage,
async views (``tests/asgi_urls.py``) and the engine named by
``$TEST_ASGI_SESSION_ENGINE`` (by default ``tests.loop_guard``: our Redis
engine, whose sync I/O on the event loop raises SynchronousOnlyOperation) on
the Redis server of ``$TEST_ASGI_REDIS_URL``. Request errors go to stderr,
which the tests read.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

MIDDLEWARE = [
    "django_prologue_sessions.middleware.SessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.asgi_urls"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
SESSION_ENGINE = os.environ.get("TEST_ASGI_SESSION_ENGINE", "tests.loop_guard")
# Longer than the tests' pause of Redis: a request waits for the server to
# come back rather than failing.
SESSION_REDIS = {"url": os.environ["TEST_ASGI_REDIS_URL"], "socket_timeout": 10}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR"},
    },
}
