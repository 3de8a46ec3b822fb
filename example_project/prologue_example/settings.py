"""Settings of the example site.

Sessions live in the engine that ``$PROLOGUE_EXAMPLE_ENGINE`` names, and
flash messages live in the session. A SQLite file holds the users that signing
in creates (``manage.py migrate`` makes it), so that the memory and Redis
engines can list a user's sessions on the "Where you're signed in" page.

Environment variables:

- ``PROLOGUE_EXAMPLE_ENGINE``: ``signed_cookies`` (default), ``memory`` or
  ``redis``;
- ``PROLOGUE_EXAMPLE_REDIS_URL``: the Redis server of the ``redis`` engine
  (default ``redis://127.0.0.1:6379/0``);
- ``PROLOGUE_EXAMPLE_DEBUG``: ``0`` turns ``DEBUG`` off (default on, so that
  ``runserver`` serves the stylesheet);
- ``PROLOGUE_EXAMPLE_DATABASE``: the SQLite file of the users (default
  ``example_project/db.sqlite3``).
"""

from __future__ import annotations

import os
from pathlib import Path

from django.contrib.messages import constants as message_constants

from prologue_example.engines import engine_path

BASE_DIR = Path(__file__).resolve().parent

# For the example only: a real site reads its key from the environment.
SECRET_KEY = "django-insecure-prologue-example-not-a-secret"
DEBUG = os.environ.get("PROLOGUE_EXAMPLE_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prologue_sessions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prologue_sessions.activity.ActivityMiddleware",
]

ROOT_URLCONF = "prologue_example.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "prologue_example.views.site",
            ],
        },
    },
]

# The users only: sessions are the engine's.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(
            "PROLOGUE_EXAMPLE_DATABASE", str(BASE_DIR.parent / "db.sqlite3")
        ),
    }
}

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

ENGINE_NAME = os.environ.get("PROLOGUE_EXAMPLE_ENGINE", "signed_cookies")
SESSION_ENGINE = engine_path(ENGINE_NAME)
SESSION_REDIS = {
    "url": os.environ.get("PROLOGUE_EXAMPLE_REDIS_URL", "redis://127.0.0.1:6379/0")
}
# "Where you're signed in" (/account/sessions/): where and when each session
# was used. The signed-cookie engine keeps no list of a user's sessions.
SESSIONS_PAGE = ENGINE_NAME != "signed_cookies"
PROLOGUE_SESSIONS_ACTIVITY = SESSIONS_PAGE
# The example routes the page on every engine, to show what it says on the
# one that cannot list sessions: the check that warns of it is silenced there.
SILENCED_SYSTEM_CHECKS = [] if SESSIONS_PAGE else ["django_prologue_sessions.W056"]
LOGIN_URL = "home"

# Two weeks, Django's default, spelled out because the session page shows it.
SESSION_COOKIE_AGE = 14 * 24 * 60 * 60

# Flash messages are kept in the session, so that the session page shows them
# waiting, and every level is kept, debug included.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
MESSAGE_LEVEL = message_constants.DEBUG
