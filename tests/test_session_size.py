"""``PROLOGUE_SESSIONS_MAX_BYTES``: the largest session the server-side
engines save or read, against the real Redis server and the memory store.

A stored value that inflates past the bound is read no further than the
bound: it is corrupt (logged, an empty session, left as it is until the
next save), and neither loading nor listing it costs more memory than the
bound.
"""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

import pytest
import redis
from django.contrib.sessions.backends.base import SessionBase
from django.test import override_settings

from django_prologue_sessions.backends._session_keys import USER_ID_KEY, session_id
from django_prologue_sessions.backends.memory import SessionStore as MemoryStore
from django_prologue_sessions.backends.redis import layout
from django_prologue_sessions.backends.redis.store import SessionStore as RedisStore
from django_prologue_sessions.checks import check_settings
from django_prologue_sessions.conf import DEFAULT_MAX_BYTES, app_settings
from django_prologue_sessions.exceptions import SessionTooLarge
from django_prologue_sessions.user_sessions import list_sessions

# 64 MiB of one letter: deflated, about 64 KB.
BOMB_BYTES = 64 * 1024 * 1024
ENGINES = {
    "memory": "django_prologue_sessions.backends.memory",
    "redis": "django_prologue_sessions.backends.redis",
}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[type[SessionBase]]:
    """Each server-side engine's ``SessionStore``, on a flushed store."""
    settings: dict[str, Any] = {"SESSION_ENGINE": ENGINES[request.param]}
    if request.param == "redis":
        request.getfixturevalue("redis_client")  # flushed
        settings["SESSION_REDIS"] = {"url": request.getfixturevalue("redis_url")}
    else:
        MemoryStore.clear_all()
    with override_settings(**settings):
        store: type[SessionBase] = import_module(ENGINES[request.param]).SessionStore
        yield store


@pytest.fixture
def redis_store(redis_client: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    with override_settings(
        SESSION_ENGINE=ENGINES["redis"], SESSION_REDIS={"url": redis_url}
    ):
        yield redis_client


def serialized_size(data: dict[str, Any]) -> int:
    return len(RedisStore().serializer_class().dumps(data))


def peak_memory(work: Callable[[], Any]) -> tuple[Any, int]:
    """What ``work()`` returns, and the most memory Python held meanwhile."""
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def bomb(header: bytes = b"") -> bytes:
    """A value of the engine's own format that inflates to 64 MiB of JSON."""
    serialized = b'{"a":"' + b"x" * BOMB_BYTES + b'"}'
    return b"7" + header + layout.SessionCodec.pack(serialized)


# Saving ----------------------------------------------------------------------


def test_a_session_up_to_the_bound_is_saved_and_read(
    engine: type[SessionBase],
) -> None:
    data = {"text": "x" * 990}
    with override_settings(PROLOGUE_SESSIONS_MAX_BYTES=serialized_size(data)):
        session = engine()
        session.update(data)
        session.save()
        assert dict(engine(session.session_key).items()) == data


def test_a_session_past_the_bound_is_refused_and_nothing_is_written(
    engine: type[SessionBase],
) -> None:
    session = engine()
    session["text"] = "small"
    session.save()
    data = {"text": "x" * 991}
    limit = serialized_size(data) - 1
    with override_settings(PROLOGUE_SESSIONS_MAX_BYTES=limit):
        again = engine(session.session_key)
        again.update(data)
        with pytest.raises(SessionTooLarge) as raised:
            again.save()
        assert (raised.value.size, raised.value.limit) == (limit + 1, limit)
        assert "PROLOGUE_SESSIONS_MAX_BYTES" in str(raised.value)
        assert dict(engine(session.session_key).items()) == {"text": "small"}
        new = engine()
        new.update(data)
        with pytest.raises(SessionTooLarge):
            new.save()
        assert new.session_key is None or not new.exists(new.session_key)


def test_a_stored_session_past_a_lowered_bound_reads_as_corrupt(
    engine: type[SessionBase], caplog: pytest.LogCaptureFixture
) -> None:
    session = engine()
    session["text"] = "x" * 500
    session.save()
    with override_settings(PROLOGUE_SESSIONS_MAX_BYTES=100):
        assert dict(engine(session.session_key).items()) == {}
    assert "PROLOGUE_SESSIONS_MAX_BYTES (100)" in caplog.text
    # Left as it was: with the bound raised again, it reads again.
    assert engine(session.session_key)["text"] == "x" * 500


# A value that inflates past the bound (Redis) --------------------------------


def test_a_value_that_inflates_past_the_bound_is_not_inflated(
    redis_store: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    session = RedisStore()
    session["good"] = 1
    session.save()
    assert session.session_key is not None
    redis_key = RedisStore.redis_key(session.session_key)
    value = bomb()
    assert len(value) < BOMB_BYTES / 500
    redis_store.set(redis_key, value)

    with caplog.at_level(logging.WARNING, "django_prologue_sessions.redis"):
        again = RedisStore(session.session_key)
        items, peak = peak_memory(lambda: dict(again.items()))
    assert items == {}
    assert peak < 3 * DEFAULT_MAX_BYTES  # not 64 MiB, nor 128
    assert f"PROLOGUE_SESSIONS_MAX_BYTES ({DEFAULT_MAX_BYTES})" in caplog.text
    assert session.session_key not in caplog.text
    # An empty session, under the same key; nothing overwritten until saved.
    assert again.session_key == session.session_key
    assert redis_store.get(redis_key) == value
    again["good"] = 2
    again.save()
    assert dict(RedisStore(session.session_key).items()) == {"good": 2}


def test_listing_does_not_inflate_a_value_past_the_bound(
    redis_store: redis.Redis,
) -> None:
    session = RedisStore()
    session[USER_ID_KEY] = "42"
    session.save()
    assert session.session_key is not None
    redis_key = RedisStore.redis_key(session.session_key)
    stored = redis_store.get(redis_key)
    assert isinstance(stored, bytes)
    header, _, _ = layout.parse(stored)
    assert header.created is not None
    assert header.saved is not None
    assert header.indexed_until is not None
    user_header = layout.user_header(
        header.created, header.saved, header.indexed_until, "42"
    )
    redis_store.set(redis_key, bomb(user_header))

    listed, peak = peak_memory(lambda: list_sessions("42"))
    assert [s.id for s in listed] == [session_id(session.session_key)]
    assert listed[0].activity is None
    assert peak < 3 * DEFAULT_MAX_BYTES


def test_a_plain_value_past_the_bound_is_corrupt_too(
    redis_store: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    session = RedisStore()
    session["text"] = "x" * 500
    session.save()
    assert session.session_key is not None
    redis_key = RedisStore.redis_key(session.session_key)
    redis_store.set(redis_key, b'3j{"text":"' + b"y" * 500 + b'"}')
    with override_settings(PROLOGUE_SESSIONS_MAX_BYTES=100):
        assert dict(RedisStore(session.session_key).items()) == {}
    assert "PROLOGUE_SESSIONS_MAX_BYTES (100)" in caplog.text


# The setting and its check ---------------------------------------------------


def test_the_default_is_four_mebibytes() -> None:
    assert (
        app_settings.PROLOGUE_SESSIONS_MAX_BYTES
        == 4 * 1024 * 1024
        == (DEFAULT_MAX_BYTES)
    )


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "4096", None])
def test_e070_reports_a_bound_that_is_not_a_positive_integer(value: Any) -> None:
    with override_settings(PROLOGUE_SESSIONS_MAX_BYTES=value):
        # (The suite's SECRET_KEY also draws warning W005.)
        ids = [message.id for message in check_settings() if message.is_serious()]
        assert ids == ["django_prologue_sessions.E070"]
        assert app_settings.PROLOGUE_SESSIONS_MAX_BYTES == DEFAULT_MAX_BYTES


def test_e070_passes_a_positive_integer() -> None:
    with override_settings(PROLOGUE_SESSIONS_MAX_BYTES=1024):
        assert [message for message in check_settings() if message.is_serious()] == []
        assert app_settings.PROLOGUE_SESSIONS_MAX_BYTES == 1024
