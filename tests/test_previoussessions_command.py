"""``manage.py previoussessions``: what the previous store still holds."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore as DbStore
from django.contrib.sessions.backends.file import SessionStore as FileStore
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.test_migrate import forget_file_storage_path

OURS = "django_prologue_sessions.backends."


def report() -> str:
    out = io.StringIO()
    call_command("previoussessions", stdout=out)
    return out.getvalue()


def test_without_the_setting_it_is_an_error() -> None:
    with pytest.raises(CommandError, match="PROLOGUE_SESSIONS_MIGRATE_FROM"):
        call_command("previoussessions")


@pytest.mark.django_db
@override_settings(
    SESSION_ENGINE=OURS + "memory",
    PROLOGUE_SESSIONS_MIGRATE_FROM="django.contrib.sessions.backends.db",
)
def test_db_sessions_are_counted_until_none_is_left() -> None:
    assert "No session is left in django.contrib.sessions.backends.db" in report()
    stores = [DbStore() for _ in range(3)]
    for store in stores:
        store["k"] = "v"
        store.save()
    expired = DbStore()
    expired["k"] = "v"
    expired.set_expiry(-10)
    expired.save()
    text = report()
    assert text.startswith("3 session(s) not moved yet")
    last = max(store.get_expiry_date() for store in stores)
    assert f"{last:%Y-%m-%d %H:%M} UTC" in text
    for store in stores:
        store.delete()
    assert "No session is left" in report()


def test_file_sessions_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forget_file_storage_path(monkeypatch)
    with override_settings(
        SESSION_ENGINE=OURS + "memory",
        SESSION_FILE_PATH=str(tmp_path),
        PROLOGUE_SESSIONS_MIGRATE_FROM="django.contrib.sessions.backends.file",
    ):
        assert "No session is left" in report()
        stores = [FileStore() for _ in range(2)]
        for store in stores:
            store["k"] = "v"
            store.save()
        (tmp_path / "unrelated").write_text("")
        assert report().startswith("2 session(s) not moved yet")
        old = tmp_path / f"sessionid{stores[0].session_key}"  # prefix: cookie name
        assert old.exists()
        long_ago = time.time() - 10**8
        os.utime(old, (long_ago, long_ago))  # expired: not counted
        assert report().startswith("1 session(s) not moved yet")


@override_settings(
    SESSION_ENGINE=OURS + "redis",
    SESSION_COOKIE_AGE=3600,
    PROLOGUE_SESSIONS_MIGRATE_FROM="django.contrib.sessions.backends.cache",
)
def test_an_engine_that_cannot_be_counted_gives_the_cookie_age() -> None:
    text = report()
    assert "cannot be counted" in text
    assert "SESSION_COOKIE_AGE (1:00:00)" in text


@pytest.mark.redis
def test_cache_sessions_on_django_redis_are_counted(
    redis_client: Any, redis_url: str
) -> None:
    from django.contrib.sessions.backends.cache import SessionStore as CacheStore

    cache = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url}
    with override_settings(
        SESSION_ENGINE=OURS + "redis",
        SESSION_REDIS={"url": redis_url},
        CACHES={"default": cache},
        PROLOGUE_SESSIONS_MIGRATE_FROM="django.contrib.sessions.backends.cache",
    ):
        assert "No session is left" in report()
        for _ in range(2):
            store = CacheStore()
            store["k"] = "v"
            store.save()
        redis_client.set(":1:unrelated", "x")  # another key of the cache
        text = report()
        assert text.startswith("2 session(s) not moved yet")
        assert "the last expires at" in text
