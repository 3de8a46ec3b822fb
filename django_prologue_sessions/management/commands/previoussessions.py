"""``manage.py previoussessions``: what is left to move in from the previous
engine, and so when ``PROLOGUE_SESSIONS_MIGRATE_FROM`` can go.

Where the previous store can be counted through its engine's API (Django's
``db`` and ``cached_db``: the database table; ``file``: the session files;
``cache`` on django-redis: its ``iter_keys()``), it says how many sessions it
still holds and when the last of them expires. Otherwise (another cache,
django-redis-sessions, a cookie engine) it says how long
a session the previous engine saved can still be valid: ``SESSION_COOKIE_AGE``
from its last save, at most, unless the site gave sessions longer expiries
with ``set_expiry()``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_prologue_sessions.migrate import previous_engine


class Command(BaseCommand):
    help = (
        "How many sessions the previous engine (PROLOGUE_SESSIONS_MIGRATE_FROM) "
        "still holds, and when the setting can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        engine = previous_engine()
        if engine is None:
            raise CommandError("PROLOGUE_SESSIONS_MIGRATE_FROM is not set.")
        name = engine.__name__
        store = engine.SessionStore
        if hasattr(store, "get_model_class"):  # db, cached_db
            left, last = _in_database(store)
        elif name == "django.contrib.sessions.backends.file":
            left, last = _in_files()
        elif name == "django.contrib.sessions.backends.cache" and hasattr(
            _session_cache(), "iter_keys"
        ):
            left, last = _in_django_redis(store)
        else:
            age = timedelta(seconds=settings.SESSION_COOKIE_AGE)
            self.stdout.write(
                f"{name} cannot be counted through its API. A session it saved "
                f"is valid for at most SESSION_COOKIE_AGE ({age}) from its last "
                "save (unless set_expiry() gave it longer): once the site has "
                f"run on {settings.SESSION_ENGINE} that long, remove "
                "PROLOGUE_SESSIONS_MIGRATE_FROM."
            )
            return
        if not left:
            self.stdout.write(
                f"No session is left in {name}: remove "
                "PROLOGUE_SESSIONS_MIGRATE_FROM (and the previous store)."
            )
            return
        when = (
            "" if last is None else f"; the last expires at {last:%Y-%m-%d %H:%M} UTC"
        )
        self.stdout.write(
            f"{left} session(s) not moved yet in {name}{when}. Keep "
            "PROLOGUE_SESSIONS_MIGRATE_FROM until none is left."
        )


def _in_database(store: Any) -> tuple[int, datetime | None]:
    live = store.get_model_class().objects.filter(expire_date__gt=timezone.now())
    last = live.order_by("-expire_date").values_list("expire_date", flat=True).first()
    return live.count(), None if last is None else last.astimezone(UTC)


def _in_files() -> tuple[int, datetime | None]:
    """The files of Django's file engine: its directory and prefix (the
    cookie name). A file expires ``SESSION_COOKIE_AGE`` after its last
    write, as the engine's ``clear_expired()`` reckons."""
    import tempfile

    path = getattr(settings, "SESSION_FILE_PATH", None) or tempfile.gettempdir()
    age = settings.SESSION_COOKIE_AGE
    now = datetime.now(UTC).timestamp()
    ends = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.startswith(settings.SESSION_COOKIE_NAME) and entry.is_file():
                ends.append(entry.stat().st_mtime + age)
    live = [end for end in ends if end > now]
    last = datetime.fromtimestamp(max(live), UTC) if live else None
    return len(live), last


def _session_cache() -> Any:
    from django.core.cache import caches

    return caches[settings.SESSION_CACHE_ALIAS]


def _in_django_redis(store: Any) -> tuple[int, datetime | None]:
    """The keys of Django's cache engine in a django-redis cache, found with
    django-redis's ``iter_keys()`` (SCAN) and timed with its ``ttl()``."""
    cache = _session_cache()
    now = datetime.now(UTC)
    ttls = [cache.ttl(key) for key in cache.iter_keys(f"{store.cache_key_prefix}*")]
    live = [ttl for ttl in ttls if ttl is None or ttl > 0]
    timed = [ttl for ttl in live if ttl is not None]
    last = now + timedelta(seconds=max(timed)) if timed else None
    return len(live), last
