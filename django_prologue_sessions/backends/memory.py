"""Sessions kept in this process's memory: for development, tests and sites
served by a single process.

Each process has its own store: with several worker processes a user's
requests reach stores that know nothing of each other, and a restart forgets
every session. Use the Redis engine anywhere else.

A session is stored as its serialized bytes (``SESSION_SERIALIZER``), so a load
decodes a fresh copy: changing a value read from the session changes nothing
stored until the session is saved, and two requests on one session never share
an object. ``PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS`` bounds the store; past it,
expired sessions go first, then the least recently used (its user is logged
out). Expiry is kept on the server: ``get_expiry_age()`` at save, like Django's
cache engine.
"""

from __future__ import annotations

import heapq
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any, ClassVar

from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)

from django_prologue_sessions.conf import app_settings

# The module's only clock; tests patch it to move time on. Monotonic, so that
# a change of the system clock neither expires nor revives sessions.
_now = time.monotonic

_KEY_LENGTH = 32
_KEY_SPACE = len(VALID_KEY_CHARS) ** _KEY_LENGTH


def new_session_key() -> str:
    """A key like Django's: 32 characters of ``[a-z0-9]``, about 165 bits.

    One draw from ``secrets``: Django's ``get_random_string()`` reads the OS
    once per character, which made up half the cost of creating a session.
    """
    number = secrets.randbelow(_KEY_SPACE)
    chars = []
    for _ in range(_KEY_LENGTH):
        number, digit = divmod(number, len(VALID_KEY_CHARS))
        chars.append(VALID_KEY_CHARS[digit])
    return "".join(chars)


class MemoryStore:
    """Serialized sessions by key, each with an expiry, bounded in number.

    Every method is atomic under one lock, held only for a few dict
    operations: serializing is the caller's job, outside the lock.

    The ``OrderedDict`` is kept in order of use, least recent first, for
    eviction. The heap of ``(expires_at, key)`` lets ``clear_expired()`` reach
    the sessions that are due without looking at the others. Saving or
    deleting a session leaves its old heap item behind: popping skips it, and
    the heap is rebuilt when such items outnumber the sessions.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        """How many sessions are held, expired ones not yet removed included."""
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> bytes | None:
        """The data of a live session, marked as just used; else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= _now():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def exists(self, key: str) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and entry[1] > _now()

    def add(self, key: str, data: bytes, ttl: float, max_entries: int) -> bool:
        """Store a new session; ``False`` if ``key`` holds a live one already."""
        with self._lock:
            now = _now()
            entry = self._entries.get(key)
            if entry is not None and entry[1] > now:
                return False
            if entry is None and len(self._entries) >= max_entries:
                self._pop_expired(now)
                while len(self._entries) >= max_entries:
                    self._entries.popitem(last=False)
            self._put(key, data, now + ttl)
            return True

    def replace(self, key: str, data: bytes, ttl: float) -> bool:
        """Update a live session; ``False`` if it expired or was deleted."""
        with self._lock:
            now = _now()
            entry = self._entries.get(key)
            if entry is None or entry[1] <= now:
                return False
            self._put(key, data, now + ttl)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear_expired(self) -> int:
        """Remove the expired sessions; return how many there were."""
        with self._lock:
            return self._pop_expired(_now())

    def clear(self) -> None:
        """Forget every session (between tests, say)."""
        with self._lock:
            self._entries.clear()
            self._expiries.clear()

    def items(self) -> list[tuple[str, bytes]]:
        """A snapshot of the live sessions, least recently used first."""
        with self._lock:
            now = _now()
            return [
                (key, data)
                for key, (data, expires_at) in self._entries.items()
                if expires_at > now
            ]

    def _put(self, key: str, data: bytes, expires_at: float) -> None:
        self._entries[key] = (data, expires_at)
        self._entries.move_to_end(key)
        heapq.heappush(self._expiries, (expires_at, key))
        if len(self._expiries) > 2 * len(self._entries) + 64:
            self._expiries = [(exp, k) for k, (_, exp) in self._entries.items()]
            heapq.heapify(self._expiries)

    def _pop_expired(self, now: float) -> int:
        removed = 0
        while self._expiries and self._expiries[0][0] <= now:
            _, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            if entry is not None and entry[1] <= now:
                del self._entries[key]
                removed += 1
        return removed


class SessionStore(SessionBase):
    """A session in this process's ``MemoryStore``."""

    #: Shared by every instance; a subclass may set a store of its own.
    store: ClassVar[MemoryStore] = MemoryStore()

    @classmethod
    def clear_all(cls) -> None:
        """Forget every session of the store, e.g. in a test's ``setUp``."""
        cls.store.clear()

    def load(self) -> dict[str, Any]:
        key = self.session_key
        data = None if key is None else self.store.get(key)
        if data is not None:
            try:
                session: dict[str, Any] = self.serializer().loads(data)
                return session
            except Exception:
                # Only if SESSION_SERIALIZER changed since the save: the
                # session reads as empty and, if saved, gets a new key.
                pass
        self._session_key = None
        return {}

    def exists(self, session_key: str | None) -> bool:
        return session_key is not None and self.store.exists(session_key)

    def create(self) -> None:
        # add() refuses a key in use, so no exists() round first; a clash
        # needs two equal random keys, so a few tries are plenty.
        for _ in range(10):
            self._session_key = new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key.")

    def save(self, must_create: bool = False) -> None:
        # Read first: loading drops a key that has expired or was deleted.
        session = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        key = self.session_key
        if key is None:
            self.create()
            return
        data = self.serializer().dumps(session)
        ttl = self.get_expiry_age()
        if must_create:
            max_sessions = app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS
            if not self.store.add(key, data, ttl, max_sessions):
                raise CreateError
        elif not self.store.replace(key, data, ttl):
            # Deleted meanwhile (a logout, say): saving must not undo that.
            raise UpdateError

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            session_key = self.session_key
            if session_key is None:
                return
        self.store.delete(session_key)

    @classmethod
    def clear_expired(cls) -> None:
        cls.store.clear_expired()

    # There is no I/O to wait for: the async twins run the same code in
    # place, with no hop to a thread.

    async def aload(self) -> dict[str, Any]:
        return self.load()

    async def aexists(self, session_key: str | None) -> bool:
        return self.exists(session_key)

    async def acreate(self) -> None:
        self.create()

    async def asave(self, must_create: bool = False) -> None:
        self.save(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        self.delete(session_key)

    @classmethod
    async def aclear_expired(cls) -> None:
        cls.clear_expired()
