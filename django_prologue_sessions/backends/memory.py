"""Sessions kept in this process's memory: for development, tests and sites
served by a single process.

Each process has its own store: with several worker processes a user's
requests reach stores that know nothing of each other, and a restart forgets
every session. Use the Redis engine anywhere else.

A session is stored as its serialized bytes (``SESSION_SERIALIZER``; one that
unpickles is refused, see ``backends/base.py``), so a load decodes a fresh
copy: changing a value read from the session changes nothing stored until the
session is saved, and two requests on one session never share an object.
``PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS`` bounds the store; past it, expired
sessions go first, then the least recently used (its user is logged out).
``PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER`` bounds one user's: a
login past it ends the user's sessions that expire soonest, as Redis does.
Expiry is kept on the server: ``get_expiry_age()`` at save, like Django's cache
engine, cut to ``PROLOGUE_SESSIONS_IDLE_TIMEOUT``, which a load pushes back
(``MemoryStore.touch()``) once less than half of it is left.

Each entry has a version, one more at every save, and a save applies only if
the version it loaded is still there: when another request saved the
session meanwhile, the two are merged key by key
(``django_prologue_sessions.merge``), as the Redis engine does, so that what
a test sees on this engine is what production sees on Redis.

The store also indexes the sessions of each logged-in user (``_auth_user_id``)
for ``django_prologue_sessions.user_sessions``: listing them and "log out
everywhere". The index changes with the sessions under the same lock, so it
never names a session that is gone. Store and index hold the session keys
themselves: they live in this process's memory, which holds the keys anyway
(each request's cookie), and never leave it, so a digest would hide nothing.
What leaves the engine names a session by its id (``session_id()``), never
by its key.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.sessions.backends.base import CreateError, UpdateError

from django_prologue_sessions import migrate
from django_prologue_sessions.backends._session_keys import (
    session_id,
    session_user_id,
)
from django_prologue_sessions.backends.base import (
    CREATE_ATTEMPTS,
    REFRESH_BELOW,
    SAVE_ATTEMPTS,
    ServerSessionBase,
    date_from_timestamp,
    session_settings,
    still_changing,
)
from django_prologue_sessions.conf import app_settings
from django_prologue_sessions.exceptions import SessionTooLarge
from django_prologue_sessions.merge import merge

if TYPE_CHECKING:
    from django_prologue_sessions.user_sessions import SessionChange, UserSession

logger = logging.getLogger("django_prologue_sessions.memory")

# The store's clock; tests patch it to move time on. Monotonic, so that a
# change of the system clock neither expires nor revives sessions.
_now = time.monotonic
# Read only to show the store's times to people, as dates (user_sessions).
_wall_now = time.time

# A stored session: its serialized data, when it expires, its user's id (None
# if nobody is logged in), when it was first saved and when last saved (times
# of the ``_now`` clock), and its version (1 when created, one more each save).
_Entry = tuple[bytes, float, str | None, float, float, int]


class MemoryStore:
    """Serialized sessions by key, each with an expiry, bounded in number.

    Every method is atomic under one lock, held only for a few dict
    operations: serializing is the caller's job, outside the lock.

    The ``OrderedDict`` is kept in order of use, least recent first, for
    eviction. The heap of ``(expires_at, key)`` lets ``clear_expired()`` reach
    the sessions that are due without looking at the others. Saving or
    deleting a session leaves its old heap item behind: popping skips it, and
    the heap is rebuilt when such items outnumber the sessions.

    ``_by_user`` maps a user's id to the keys of that user's sessions, exactly
    those held (expired ones not yet removed included): every change of an
    entry updates it in the same locked step, and a user with no session left
    is dropped from it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._expiries: list[tuple[float, str]] = []
        self._by_user: dict[str, set[str]] = {}

    def __len__(self) -> int:
        """How many sessions are held, expired ones not yet removed included."""
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> tuple[bytes, int] | None:
        """The data and version of a live session, marked as just used; else
        ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= _now():
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry[0], entry[5]

    def exists(self, key: str) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and entry[1] > _now()

    def add(
        self,
        key: str,
        data: bytes,
        ttl: float,
        max_entries: int,
        user_id: str | None = None,
        max_per_user: int | None = None,
    ) -> bool:
        """Store a new session; ``False`` if ``key`` holds a live one already.

        A session of a user who then has more than ``max_per_user`` ends
        those of the user's others that expire soonest.
        """
        with self._lock:
            now = _now()
            entry = self._entries.get(key)
            if entry is not None:
                if entry[1] > now:
                    return False
                self._remove(key)
            elif len(self._entries) >= max_entries:
                self._pop_expired(now)
                while len(self._entries) >= max_entries:
                    self._remove(next(iter(self._entries)))
            if user_id is not None:
                self._index(key, user_id)
            self._put(key, (data, now + ttl, user_id, now, now, 1))
            if user_id is not None and max_per_user is not None:
                self._limit_user(user_id, key, max_per_user)
            return True

    def replace(
        self,
        key: str,
        data: bytes,
        ttl: float,
        user_id: str | None = None,
        expected: int | None = None,
        max_per_user: int | None = None,
    ) -> int | tuple[bytes, int]:
        """Update a live session if its version is ``expected`` (any if None).

        Return the new version; 0 if the session expired or was deleted; its
        data and version as stored if it was saved since ``expected``. A
        session that gains a user ends the user's others past
        ``max_per_user``, as ``add()`` does.
        """
        with self._lock:
            now = _now()
            entry = self._entries.get(key)
            if entry is None or entry[1] <= now:
                return 0
            if expected is not None and entry[5] != expected:
                return entry[0], entry[5]
            if entry[2] != user_id:  # a login, a logout, another user
                if entry[2] is not None:
                    self._unindex(key, entry[2])
                if user_id is not None:
                    self._index(key, user_id)
            self._put(key, (data, now + ttl, user_id, entry[3], now, entry[5] + 1))
            if (
                user_id is not None
                and user_id != entry[2]  # a login
                and max_per_user is not None
            ):
                self._limit_user(user_id, key, max_per_user)
            return entry[5] + 1

    def touch(self, key: str, ttl: float, below: float) -> bool:
        """Make a live session expire in ``ttl`` if less than ``below`` of its
        time is left: whether it was pushed back."""
        with self._lock:
            now = _now()
            entry = self._entries.get(key)
            if entry is None or not now < entry[1] < now + below:
                return False
            self._put(key, (entry[0], now + ttl, *entry[2:]))
            return True

    def rename(self, key: str, new_key: str, ttl: float) -> bool | None:
        """Move a live session to ``new_key``, as new (created now, expiring in
        ``ttl``): ``True`` if moved, ``None`` if it expired or was deleted,
        ``False`` if ``new_key`` is taken."""
        with self._lock:
            now = _now()
            entry = self._entries.get(key)
            if entry is None or entry[1] <= now:
                return None
            if new_key in self._entries:
                return False
            self._remove(key)
            if entry[2] is not None:
                self._index(new_key, entry[2])
            self._put(new_key, (entry[0], now + ttl, entry[2], now, now, entry[5]))
            return True

    def swap(
        self, key: str, user_id: str, expected: bytes, data: bytes
    ) -> bytes | bool:
        """Replace a live session of ``user_id`` with ``data`` if it still holds
        ``expected``, as a new version that keeps its expiry, dates and place
        in the order of use: ``True`` if replaced, ``False`` if it ended or is
        no longer the user's, or the data it holds now if it was saved
        meanwhile. A request that loaded it before saves after with a
        version that is no longer there, and merges."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] <= _now() or entry[2] != user_id:
                return False
            if entry[0] != expected:
                return entry[0]
            _, expires_at, user, created, last_saved, version = entry
            self._entries[key] = (
                data,
                expires_at,
                user,
                created,
                last_saved,
                version + 1,
            )
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None and entry[2] is not None:
                self._unindex(key, entry[2])

    def clear_expired(self) -> int:
        """Remove the expired sessions; return how many there were."""
        with self._lock:
            return self._pop_expired(_now())

    def clear(self) -> None:
        """Forget every session (between tests, say)."""
        with self._lock:
            self._entries.clear()
            self._expiries.clear()
            self._by_user.clear()

    def items(self) -> list[tuple[str, bytes]]:
        """A snapshot of the live sessions, least recently used first."""
        with self._lock:
            now = _now()
            return [
                (key, entry[0])
                for key, entry in self._entries.items()
                if entry[1] > now
            ]

    def user_sessions(
        self, user_id: str
    ) -> list[tuple[str, bytes, float, float, float]]:
        """``(key, data, created, last_saved, expires_at)`` of a user's live
        sessions.

        In no particular order; times are of the ``_now`` clock. Expired
        sessions met on the way are removed.
        """
        with self._lock:
            now = _now()
            sessions = []
            for key in list(self._by_user.get(user_id, ())):
                data, expires_at, _, created, last_saved, _ = self._entries[key]
                if expires_at <= now:
                    self._remove(key)
                else:
                    sessions.append((key, data, created, last_saved, expires_at))
            return sessions

    def delete_user_sessions(
        self,
        user_id: str,
        ids: Collection[str] | None = None,
        keep: str | None = None,
    ) -> int:
        """Delete a user's sessions (only those whose ``session_id()`` is in
        ``ids``, if given) but the one whose id is ``keep``.

        Return how many live sessions were deleted; an id that names no
        session of the user is ignored.
        """
        with self._lock:
            owned = self._by_user.get(user_id)
            if owned is None:
                return 0
            # A user has a few sessions: their ids are made as needed.
            named = {key: session_id(key) for key in owned}
            doomed = {
                key
                for key, sid in named.items()
                if (ids is None or sid in ids) and sid != keep
            }
            now = _now()
            deleted = 0
            for key in doomed:
                if self._entries[key][1] > now:
                    deleted += 1
                self._remove(key)
            return deleted

    def _put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        heapq.heappush(self._expiries, (entry[1], key))
        if len(self._expiries) > 2 * len(self._entries) + 64:
            self._expiries = [(e[1], k) for k, e in self._entries.items()]
            heapq.heapify(self._expiries)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        if entry[2] is not None:
            self._unindex(key, entry[2])

    def _index(self, key: str, user_id: str) -> None:
        keys = self._by_user.get(user_id)
        if keys is None:
            self._by_user[user_id] = {key}
        else:
            keys.add(key)

    def _limit_user(self, user_id: str, new_key: str, max_sessions: int) -> None:
        keys = self._by_user[user_id]
        extra = len(keys) - max_sessions
        if extra > 0:
            others = (key for key in keys if key != new_key)
            soonest = heapq.nsmallest(extra, others, key=lambda k: self._entries[k][1])
            for key in soonest:
                self._remove(key)

    def _unindex(self, key: str, user_id: str) -> None:
        keys = self._by_user[user_id]
        keys.discard(key)
        if not keys:
            del self._by_user[user_id]

    def _pop_expired(self, now: float) -> int:
        removed = 0
        while self._expiries and self._expiries[0][0] <= now:
            _, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            if entry is not None and entry[1] <= now:
                self._remove(key)
                removed += 1
        return removed


class SessionStore(ServerSessionBase):
    """A session in this process's ``MemoryStore``."""

    #: Shared by every instance; a subclass may set a store of its own.
    store: ClassVar[MemoryStore] = MemoryStore()
    migration_claims: ClassVar[migrate.LocalClaims] = migrate.LocalClaims()

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The session as loaded or last saved, and its version, which a save
        # expects to find (None: not loaded, the save replaces what is there).
        self._stored: bytes | None = None
        self._version: int | None = None

    @classmethod
    def clear_all(cls) -> None:
        """Forget every session of the store, e.g. in a test's ``setUp``."""
        cls.store.clear()
        cls.migration_claims.clear()

    def load(self) -> dict[str, Any]:
        session = self._stored_session()
        return migrate.load_previous(self) if session is None else session

    def _stored_session(self) -> dict[str, Any] | None:
        key = self.session_key
        found = None if key is None else self.store.get(key)
        if found is None:
            return None
        session = self.decode_stored(found[0])
        if session is None:
            return None
        assert key is not None
        if self.past_absolute_timeout(session):
            self.store.delete(key)
            self._session_key = None
            return {}
        # The idle timeout's slide, decided under the store's lock.
        age = self.sliding_age(session)
        if age is not None:
            self.store.touch(key, age, below=age * REFRESH_BELOW)
        self._stored, self._version = found
        return session

    def decode_stored(self, data: bytes) -> dict[str, Any] | None:
        """A stored session's data; ``None`` if it does not decode.

        Only if SESSION_SERIALIZER changed since the save, or
        PROLOGUE_SESSIONS_MAX_BYTES was lowered below its size: the session
        then reads as empty and, if saved, gets a new key.
        """
        max_bytes = session_settings().max_bytes
        if len(data) > max_bytes:
            logger.warning(
                "Session data longer than PROLOGUE_SESSIONS_MAX_BYTES (%d)", max_bytes
            )
            return None
        try:
            session = self.serializer_class().loads(data)
        except Exception:
            return None
        return session if isinstance(session, dict) else None

    def _decoded(self, data: bytes | None) -> dict[str, Any]:
        session = None if data is None else self.decode_stored(data)
        return {} if session is None else session

    def exists(self, session_key: str | None) -> bool:
        return session_key is not None and self.store.exists(session_key)

    def save(self, must_create: bool = False) -> None:
        # Read first: loading drops a key that has expired or was deleted.
        session = self._get_session(no_load=must_create)
        key = self.session_key
        if key is None:
            self.create()
            return
        dumps = self.serializer_class().dumps
        max_bytes = session_settings().max_bytes
        per_user = app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS_PER_USER
        data = dumps(session)
        if len(data) > max_bytes:
            raise SessionTooLarge(len(data), max_bytes)
        ttl = self.store_age(session)
        if must_create:
            max_sessions = app_settings.PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS
            user_id = session_user_id(session)
            if not self.store.add(key, data, ttl, max_sessions, user_id, per_user):
                raise CreateError
            self._stored, self._version = data, 1
            return
        for _attempt in range(SAVE_ATTEMPTS):
            done = self.store.replace(
                key, data, ttl, session_user_id(session), self._version, per_user
            )
            if done == 0:
                # Deleted meanwhile (a logout, say): saving must not undo that.
                raise UpdateError
            if isinstance(done, int):
                self._stored, self._version = data, done
                return
            # Saved by another request since the load: merge, and try again.
            before = self._decoded(self._stored)
            self._stored, self._version = done
            session = merge(before, session, self._decoded(done[0]), dumps)
            self._session_cache = session
            data, ttl = dumps(session), self.store_age(session)
            if len(data) > max_bytes:
                raise SessionTooLarge(len(data), max_bytes)
        raise still_changing()

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            session_key = self.session_key
            if session_key is None:
                return
        self.store.delete(session_key)

    def cycle_key(self) -> None:
        """A new key; for a logged-in session, only while it still exists.

        A logged-in session moves to its new key in one step of the store,
        so that one ended meanwhile (a logout, "log out everywhere") is not
        brought back: it gets the new key unstored, and its save raises
        ``UpdateError``, as any save of an ended session does.
        """
        data = self._session
        key = self.session_key
        if key is None or session_user_id(data) is None:
            super().cycle_key()
            return
        for _attempt in range(CREATE_ATTEMPTS):
            new_key = self._new_key()
            moved = self.store.rename(key, new_key, self.store_age(data))
            if moved is not False:
                self._session_key = new_key
                self.modified = True
                return
        raise RuntimeError("Unable to create a new session key.")

    @classmethod
    def clear_expired(cls) -> None:
        cls.store.clear_expired()

    # The engine side of django_prologue_sessions.user_sessions.

    @classmethod
    def list_user_sessions(cls, user_id: str) -> list[UserSession]:
        from django_prologue_sessions.activity import from_session
        from django_prologue_sessions.user_sessions import UserSession

        # The store's clock is monotonic; its times become dates by their
        # distance from now.
        offset = _wall_now() - _now()
        reader = cls()
        recording = app_settings.PROLOGUE_SESSIONS_ACTIVITY  # as Redis reads it
        return [
            UserSession(
                id=session_id(key),
                created=date_from_timestamp(created + offset),
                last_seen=date_from_timestamp(last_saved + offset),
                expires=date_from_timestamp(expires_at + offset),
                activity=from_session(reader.decode_stored(data))
                if recording
                else None,
            )
            for key, data, created, last_saved, expires_at in cls.store.user_sessions(
                user_id
            )
        ]

    @classmethod
    def revoke_user_sessions(
        cls,
        user_id: str,
        session_ids: Collection[str] | None = None,
        keep: str | None = None,
    ) -> int:
        return cls.store.delete_user_sessions(user_id, session_ids, keep)

    @classmethod
    def change_user_sessions(cls, user_id: str, change: SessionChange) -> int:
        reader = cls()
        changed = 0
        for key, data, *_ in cls.store.user_sessions(user_id):
            for _attempt in range(SAVE_ATTEMPTS):
                session = reader.decode_stored(data)
                if session is None or not change(session):
                    break
                new_data = reader.serializer_class().dumps(session)
                if len(new_data) > session_settings().max_bytes:
                    break  # the change would make it too large to load
                swapped = cls.store.swap(key, user_id, data, new_data)
                if swapped is True:
                    changed += 1
                if isinstance(swapped, bool):
                    break
                data = swapped  # saved meanwhile: change it as it is now
            else:
                raise still_changing()
        return changed

    # There is no I/O to wait for: the async twins run the same code in
    # place, with no hop to a thread.

    @classmethod
    async def achange_user_sessions(cls, user_id: str, change: SessionChange) -> int:
        return cls.change_user_sessions(user_id, change)

    async def aload(self) -> dict[str, Any]:
        session = self._stored_session()
        if session is None:  # the previous engine may do I/O
            return await migrate.aload_previous(self)
        return session

    async def aexists(self, session_key: str | None) -> bool:
        return self.exists(session_key)

    async def asave(self, must_create: bool = False) -> None:
        self.save(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        self.delete(session_key)

    async def acycle_key(self) -> None:
        self.cycle_key()

    @classmethod
    async def aclear_expired(cls) -> None:
        cls.clear_expired()
