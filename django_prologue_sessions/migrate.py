"""Moving sessions in from the previous engine, ``PROLOGUE_SESSIONS_MIGRATE_FROM``.

When a request's cookie is not a session of ours, an engine's ``load()``
(and ``aload()``) ends in ``load_previous()`` (``aload_previous()``): the
cookie is looked up once through the previous engine's own ``SessionStore``,
with that engine's validation. A session found there moves into ours, with
everything in it, under a new key of ours that the response sends as the
cookie, and is then deleted from the previous store, the only write ever made
there. A cookie neither engine knows gets a new empty session.

Two requests may bring the same old cookie at once. A server-side engine of
ours (memory, Redis) settles which new key the session gets with a *claim*:
a marker named by an HMAC of the old cookie, created only if absent and kept
for ``MOVE_WINDOW`` seconds, holding a random nonce (and the key's tag). The
new key is derived from that nonce and the old cookie, so every request that
holds the old cookie computes the same key, and nobody else can: the marker
never holds a key. Each request then creates the session under that key only
if it is absent; the one that finds it there adopts it. A request that comes
after the previous store's delete finds the marker and adopts the session
too: no request ends signed out, and the previous store's session becomes one
session of ours, not two.

The signed-cookie engine of ours needs no claim: the session moves into the
cookie the response sends.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from importlib import import_module
from types import ModuleType
from typing import Any, Protocol

from django.contrib.sessions.backends.base import CreateError, SessionBase
from django.utils.crypto import salted_hmac

from django_prologue_sessions.backends._session_keys import (
    KEY_LENGTH,
    key_characters,
    new_session_key,
)
from django_prologue_sessions.backends.base import ServerSessionBase, SessionStoreBase
from django_prologue_sessions.conf import app_settings
from django_prologue_sessions.exceptions import SessionCookieTooLarge

__all__ = [
    "MOVE_WINDOW",
    "Claims",
    "LocalClaims",
    "aload_previous",
    "load_previous",
    "previous_engine",
]

logger = logging.getLogger("django_prologue_sessions.migrate")

#: Seconds a claim is kept: a request that brings the old cookie within this
#: time of the move (a concurrent one, or the next after a response that
#: failed before it could set the new cookie) gets the moved session.
MOVE_WINDOW = 300

_MARKER_SALT = "django_prologue_sessions.migrate.marker"
_KEY_SALT = "django_prologue_sessions.migrate.key"


class Claims(Protocol):
    """Where a server-side engine keeps the markers of sessions it moved in."""

    def claim(self, marker: str, value: str) -> str | None:
        """Create ``marker`` with ``value`` unless it exists: ``None`` if
        created, else the value it holds."""

    def recall(self, marker: str) -> str | None:
        """The value ``marker`` holds, ``None`` if none."""

    async def aclaim(self, marker: str, value: str) -> str | None: ...

    async def arecall(self, marker: str) -> str | None: ...


class LocalClaims:
    """Claims in this process's memory, for the memory engine: one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._markers: dict[str, tuple[str, float]] = {}

    def claim(self, marker: str, value: str) -> str | None:
        with self._lock:
            held = self._live(marker)
            if held is None:
                now = time.monotonic()
                if len(self._markers) > 1000:
                    self._markers = {
                        name: entry
                        for name, entry in self._markers.items()
                        if entry[1] > now
                    }
                self._markers[marker] = (value, now + MOVE_WINDOW)
            return held

    def recall(self, marker: str) -> str | None:
        with self._lock:
            return self._live(marker)

    async def aclaim(self, marker: str, value: str) -> str | None:
        return self.claim(marker, value)

    async def arecall(self, marker: str) -> str | None:
        return self.recall(marker)

    def clear(self) -> None:
        with self._lock:
            self._markers.clear()

    def _live(self, marker: str) -> str | None:
        entry = self._markers.get(marker)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


@functools.cache
def _import_engine(path: str) -> ModuleType:
    return import_module(path)


def previous_engine() -> ModuleType | None:
    """The module ``PROLOGUE_SESSIONS_MIGRATE_FROM`` names; ``None`` if unset."""
    path = app_settings.PROLOGUE_SESSIONS_MIGRATE_FROM
    return None if path is None else _import_engine(path)


def marker_name(cookie: str) -> str:
    """The marker of a moved session: an HMAC of its old key, never the key."""
    return salted_hmac(_MARKER_SALT, cookie, algorithm="sha256").hexdigest()


def derived_key(cookie: str, claim: str) -> str:
    """The key of ours that the session moved in under ``claim`` gets: its
    tag, then characters of an HMAC of the claim's random nonce keyed with
    the old cookie. Only a holder of the old cookie can compute it."""
    tag, _, nonce = claim.partition(".")
    characters = ""
    block = 0
    while len(characters) < KEY_LENGTH - len(tag):
        digest = salted_hmac(
            _KEY_SALT, f"{nonce}.{block}", secret=cookie, algorithm="sha512"
        ).digest()
        characters += key_characters(digest)
        block += 1
    return tag + characters[: KEY_LENGTH - len(tag)]


# The two flows, sync and async: the same steps, the same order ------------


def load_previous(store: SessionStoreBase) -> dict[str, Any]:
    """The session for a cookie that ``store``'s own lookup missed: the one
    the previous engine holds, moved into ours, or an empty one."""
    found = _lookup(store)
    if found is None:
        return {}
    cookie, old = found
    data = _found(old.load())
    claims = store.migration_claims
    if data and not _writable(store, data):
        return {}
    if claims is None:
        if data and _fits_cookie(store, data):
            old.delete(cookie)
            return _moved(store, data)
        return {}
    marker = marker_name(cookie)
    if not data:
        held = claims.recall(marker)
        return {} if held is None else _adopt(store, derived_key(cookie, held))
    proposal = _proposal(store, data)
    key = derived_key(cookie, claims.claim(marker, proposal) or proposal)
    _prepare(store, key, data)
    try:
        store.save(must_create=True)
    except CreateError:
        data = _adopt(store, key)  # the other request created it first
    old.delete(cookie)
    return _moved(store, data)


async def aload_previous(store: SessionStoreBase) -> dict[str, Any]:
    """``load_previous()`` for ``aload()``."""
    found = _lookup(store)
    if found is None:
        return {}
    cookie, old = found
    data = _found(await old.aload())
    claims = store.migration_claims
    if data and not _writable(store, data):
        return {}
    if claims is None:
        if data and _fits_cookie(store, data):
            await old.adelete(cookie)
            return _moved(store, data)
        return {}
    marker = marker_name(cookie)
    if not data:
        held = await claims.arecall(marker)
        if held is None:
            return {}
        return await _aadopt(store, derived_key(cookie, held))
    proposal = _proposal(store, data)
    key = derived_key(cookie, await claims.aclaim(marker, proposal) or proposal)
    _prepare(store, key, data)
    try:
        await store.asave(must_create=True)
    except CreateError:
        data = await _aadopt(store, key)
    await old.adelete(cookie)
    return _moved(store, data)


# The steps -------------------------------------------------------------------


def _lookup(store: SessionStoreBase) -> tuple[str, SessionBase] | None:
    """The old cookie and the previous engine's store for it, or ``None``.

    Never adopts the client's key; looks the cookie up once per store."""
    store._session_key = None
    cookie, store._requested_key = store._requested_key, None
    if not cookie or not isinstance(cookie, str):
        return None
    engine = previous_engine()
    if engine is None:
        return None
    old: SessionBase = engine.SessionStore(cookie)
    if isinstance(old, SessionStoreBase):
        old._requested_key = None  # an engine of ours: its own lookup only
    return cookie, old


def _found(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}


def _proposal(store: SessionStoreBase, data: dict[str, Any]) -> str:
    """A claim: the new key's tag (the Redis engine's user tag), a nonce."""
    assert isinstance(store, ServerSessionBase)  # the engines with claims
    store._session_cache = data
    return f"{store._key_tag()}.{new_session_key()}"


def _prepare(store: SessionStoreBase, key: str, data: dict[str, Any]) -> None:
    store._session_key = key
    store._session_cache = data


def _adopt(store: SessionStoreBase, key: str) -> dict[str, Any]:
    """Load the moved session under ``key`` (empty if it ended since)."""
    store._session_key = key
    return _moved(store, store.load())


async def _aadopt(store: SessionStoreBase, key: str) -> dict[str, Any]:
    store._session_key = key
    return _moved(store, await store.aload())


def _moved(store: SessionStoreBase, data: dict[str, Any]) -> dict[str, Any]:
    # The middleware saves a modified session and sends its key as the cookie.
    if data:
        store.modified = True
    return data


def _fits_cookie(store: SessionStoreBase, data: dict[str, Any]) -> bool:
    """Whether the session makes a cookie the browser keeps (signed-cookie
    engine); if not, it stays in the previous store."""
    store._session_cache = data
    try:
        store.save()
    except SessionCookieTooLarge as exc:
        logger.warning(
            "Session not moved from the previous engine: %s It stays in the "
            "previous store.",
            exc,
        )
        store._session_key = None
        return False
    return True


def _writable(store: SessionStoreBase, data: dict[str, Any]) -> bool:
    """Whether our ``SESSION_SERIALIZER`` can write the session, checked
    before anything is written: a previous engine whose store pickled the
    session (Django's cache engine) can hold what JSON cannot."""
    try:
        store.serializer_class().dumps(data)
    except (TypeError, ValueError) as exc:
        logger.warning(
            "Session not moved from the previous engine: SESSION_SERIALIZER "
            "cannot write it (%s). It stays in the previous store.",
            exc,
        )
        return False
    return True
