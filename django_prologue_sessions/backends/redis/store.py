"""The Redis ``SessionStore``: one round trip per operation, safe under outages.

Loading is one GET (with an idle timeout, GET and PTTL in one round trip,
and a bare EXPIRE once the session is due for its slide); creating, updating
and deleting are one command each (see ``scripts``). An update applies only
if the session still exists, so a logout in a concurrent request is never
undone, and only if it is as it was loaded: when another request saved
meanwhile, the update brings back the session as it is now, this one's
changes are merged into it key by key (``django_prologue_sessions.merge``)
and sent again, so concurrent changes to different keys both stay. How a
session lies in Redis is ``layout``'s business: under its id, a digest of
its key, which never reaches Redis.

An update that leaves the user index alone is one native command where the
server has it (Valkey 8.1+, Redis 8.4+): ``SET key new IFEQ <value loaded>
GET EX ttl``, which never creates a missing key and answers with the value
it found, the current session on a conflict. Whether the server has
``IFEQ`` is learnt from its first answer, once per connection pool
(``connection``); older servers run the UPDATE script, with the same
guarantees. The index is written only when it must be: when the session
gains, loses or changes its user, or when the session would outlive its
entry there. An entry is written to last ``INDEX_TTL_FACTOR`` times the
session's TTL, and the header tells each save until when (see
``_index_op()``).

Each operation decides what to send once, in a method shared by its sync
and async forms (``_plan_save()`` returns the ``Write`` to make), and the
two forms only send it.
"""

from __future__ import annotations

import logging
import math
import re
import time
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    UpdateError,
)
from redis.exceptions import TimeoutError

from django_prologue_sessions import migrate
from django_prologue_sessions.backends._session_keys import (
    KEY_LENGTH,
    TAG_LENGTH,
    USER_ID_KEY,
    is_session_id,
    new_session_key,
    session_id,
    session_user_id,
)
from django_prologue_sessions.backends.base import (
    CREATE_ATTEMPTS,
    SAVE_ATTEMPTS,
    ServerSessionBase,
    date_from_timestamp,
    session_settings,
    still_changing,
)
from django_prologue_sessions.backends.redis import layout, scripts, user_changes
from django_prologue_sessions.backends.redis.claims import RedisClaims
from django_prologue_sessions.backends.redis.connection import (
    NO_IFEQ,
    AsyncRedis,
    RedisUnavailable,
    SyncRedis,
    async_redis,
    current_options,
    sync_redis,
)
from django_prologue_sessions.backends.redis.layout import user_tag, user_tags
from django_prologue_sessions.conf import app_settings
from django_prologue_sessions.exceptions import (
    SessionStoreUnavailable,
    SessionTooLarge,
    SessionWriteOutcomeUnknown,
    UserSessionsUnsupported,
)
from django_prologue_sessions.merge import merge

if TYPE_CHECKING:
    from django_prologue_sessions.user_sessions import SessionChange, UserSession

logger = logging.getLogger("django_prologue_sessions.redis")

_is_valid_key = re.compile(f"[{VALID_KEY_CHARS}]{{{KEY_LENGTH}}}").fullmatch
# The clock of the times listed for a user's sessions (tests move it).
_now = time.time
# A user's index entry is written to last twice the session's TTL, so that
# the saves in between leave the index alone. It is written again once the
# session's expiry comes within a quarter of the TTL (and a second) of the
# entry's, a margin for app servers whose clocks differ (each counts the
# entry's end in its own clock; Redis scores it in its own).
INDEX_TTL_FACTOR = 2


@dataclass(frozen=True)
class Write:
    """A script to run (or, with ``script`` None, the command ``args``), and
    what the session holds once it has run.

    An update that can be a native ``SET ... IFEQ`` has ``expected``, the
    stored value it replaces, and ``version``, the one it writes; it runs the
    script only where the server lacks ``IFEQ``. Either way the outcome is
    the script's: the new version, 0 if the session is gone, or the value
    that another request stored meanwhile.
    """

    script: scripts.LuaScript | None
    keys: list[str]
    args: list[Any]
    data: dict[str, Any]
    #: ``data`` serialized, as stored (before any compression).
    body: bytes
    ttl: int
    user: str | None
    created: int
    creates: bool
    #: The value after its version: the rest of the header, the session.
    rest: bytes = b""
    indexed_until: int | None = None
    expected: bytes | None = None
    version: int = 1

    def send(self, handle: SyncRedis) -> Any:
        if self.expected is not None and handle.call.has_ifeq is not False:
            found = handle.set_if_equal(*self._native())
            if found is not NO_IFEQ:
                return self._outcome(found)
        if self.script is None:
            return handle.execute(*self.args, write=True)
        return handle.run_script(self.script, self.keys, self.args)

    async def asend(self, handle: AsyncRedis) -> Any:
        if self.expected is not None and handle.call.has_ifeq is not False:
            found = await handle.set_if_equal(*self._native())
            if found is not NO_IFEQ:
                return self._outcome(found)
        if self.script is None:
            return await handle.execute(*self.args, write=True)
        return await handle.run_script(self.script, self.keys, self.args)

    def value(self, version: int) -> bytes:
        return b"%d%s" % (version, self.rest)

    def _native(self) -> tuple[str, bytes, bytes | None, int]:
        return self.keys[0], self.value(self.version), self.expected, self.ttl

    def _outcome(self, found: bytes | None) -> Any:
        if found is None:
            return 0  # gone: SET ... IFEQ never creates the key
        return self.version if found == self.expected else found


@dataclass(frozen=True)
class Rekey:
    """A re-key's script, keys and arguments: the RENAME that moves a
    logged-in session to ``new_key`` (whose id is ``new_id``), created at
    ``now``, expiring in ``ttl`` and indexed until ``indexed_until``; or the
    LEAVE that deletes the key an anonymous session's re-key leaves."""

    script: scripts.LuaScript
    keys: list[str]
    args: list[Any]
    new_key: str = ""
    new_id: str = ""
    now: int = 0
    ttl: int = 0
    indexed_until: int = 0


class SessionStore(ServerSessionBase):
    migration_claims = RedisClaims()

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._codec = layout.codec(self.serializer_class)
        # The version loaded or last written, which a save expects to find;
        # None when unknown (the session was emptied before it was loaded).
        self._version: str | None = None
        # The value as loaded or last written, which SET ... IFEQ expects.
        self._stored_value: bytes | None = None
        # Until when the session's index entry lasts (the header's word).
        self._indexed_until: int | None = None
        # The session as loaded or last written (serialized): what this
        # instance changed is told against it when a save meets a conflict.
        self._stored_body: bytes | None = None
        # When the stored session was created (the header's, if it has one).
        self._created_at: int | None = None
        # The user of the stored session, if known.
        self._stored_user: str | None = None
        # Set when Redis could not be read in on_unavailable="empty" mode: the
        # empty session stands in for the real one and must never replace it.
        self._unavailable = False
        # The TTL this instance created the session with, if it did.
        self._created_ttl: int | None = None
        # The key cycle_key() gave an anonymous session, until it is saved:
        # unknown to Redis and to the client, it may still change.
        self._unsaved_key: str | None = None
        # The first time Redis failed this store: every later command fails
        # at once, so that a request waits out one socket_timeout at most.
        self._failure: RedisUnavailable | None = None
        # The last key whose id was asked for, and that id (a digest: made
        # once, though a request loads and saves).
        self._known_id = ("", "")

    def _validate_session_key(self, key: Any) -> bool:
        # Anything but a key this engine could have made never reaches Redis.
        return isinstance(key, str) and _is_valid_key(key) is not None

    #: A new key (``tag`` then random ``[a-z0-9]``, 32 characters in all).
    new_session_key = staticmethod(new_session_key)

    @staticmethod
    def redis_key(session_key: str) -> str:
        """The Redis key of a session: named by its id, never by its key."""
        return layout.redis_key(current_options().key_prefix, session_key)

    def _id_of(self, session_key: str) -> str:
        if self._known_id[0] != session_key:
            self._known_id = (session_key, session_id(session_key))
        return self._known_id[1]

    def _redis_key_of(self, session_key: str) -> str:
        return layout.id_key(current_options().key_prefix, self._id_of(session_key))

    @staticmethod
    def index_key(tag: str, user_id: str) -> str:
        """The Redis key of a user's index of sessions whose keys start with ``tag``."""
        return layout.index_key(current_options().key_prefix, tag, user_id)

    # The dict API: a login names the user before the first save -----------

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key == USER_ID_KEY and self._unsaved_key is not None:
            self._fit_unsaved_key()

    async def aset(self, key: str, value: Any) -> None:
        await super().aset(key, value)
        if key == USER_ID_KEY and self._unsaved_key is not None:
            self._fit_unsaved_key()

    # Reading ---------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return migrate.load_previous(self)
        try:
            replies = self._redis().execute_all(*self._plan_load())
        except RedisUnavailable as exc:
            return self._load_failed(exc)
        if replies[0] is None:
            return migrate.load_previous(self)
        session = self._decode(replies[0])
        if self.past_absolute_timeout(session):
            try:
                self._delete_key(*self._own_key())
            except SessionStoreUnavailable as exc:
                _not_deleted(exc)
            return self._forget()
        touch = self._plan_touch(session, replies)
        if touch is not None:
            try:
                touch.send(self._redis())
            except RedisUnavailable as exc:
                _not_refreshed(exc)
        return session

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return await migrate.aload_previous(self)
        try:
            replies = await self._aredis().execute_all(*self._plan_load())
        except RedisUnavailable as exc:
            return self._load_failed(exc)
        if replies[0] is None:
            return await migrate.aload_previous(self)
        session = self._decode(replies[0])
        if self.past_absolute_timeout(session):
            try:
                await self._adelete_key(*self._own_key())
            except SessionStoreUnavailable as exc:
                _not_deleted(exc)
            return self._forget()
        touch = self._plan_touch(session, replies)
        if touch is not None:
            try:
                await touch.asend(self._aredis())
            except RedisUnavailable as exc:
                _not_refreshed(exc)
        return session

    def exists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        assert session_key is not None
        try:
            return bool(self._redis().execute("EXISTS", self.redis_key(session_key)))
        except RedisUnavailable as exc:
            raise self._failed(exc) from exc.error

    async def aexists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        assert session_key is not None
        try:
            found = await self._aredis().execute("EXISTS", self.redis_key(session_key))
        except RedisUnavailable as exc:
            raise self._failed(exc) from exc.error
        return bool(found)

    # Writing ---------------------------------------------------------------

    def save(self, must_create: bool = False) -> None:
        if self._session_key is None:
            return self.create()
        new = must_create or self._session_key == self._unsaved_key
        data = self._get_session(no_load=new)
        step, write = self._plan_save(data, new)
        if step == "move":
            self._retire(self._delete_key(*self._own_key()))
        if step != "write":
            return self.create()
        for _attempt in range(SAVE_ATTEMPTS):
            if write is None:
                return
            try:
                done = write.send(self._redis())
            except RedisUnavailable as exc:
                return self._write_failed(past_deadline(exc, write.script))
            write = self._written(write, done, must_create)
            if write is NEW_KEY:
                return self.create()
        raise still_changing()

    async def asave(self, must_create: bool = False) -> None:
        if self._session_key is None:
            return await self.acreate()
        new = must_create or self._session_key == self._unsaved_key
        data = await self._aget_session(no_load=new)
        step, write = self._plan_save(data, new)
        if step == "move":
            self._retire(await self._adelete_key(*self._own_key()))
        if step != "write":
            return await self.acreate()
        for _attempt in range(SAVE_ATTEMPTS):
            if write is None:
                return
            try:
                done = await write.asend(self._aredis())
            except RedisUnavailable as exc:
                return self._write_failed(past_deadline(exc, write.script))
            write = self._written(write, done, must_create)
            if write is NEW_KEY:
                return await self.acreate()
        raise still_changing()

    def delete(self, session_key: str | None = None) -> None:
        target = self._delete_target(session_key)
        if target is not None:
            self._delete_key(*target)

    async def adelete(self, session_key: str | None = None) -> None:
        target = self._delete_target(session_key)
        if target is not None:
            await self._adelete_key(*target)

    def cycle_key(self) -> None:
        data = self._session
        renames = self._renames()
        left = None if renames else self._cycle_anonymous(data)
        if not renames and left is None:
            return
        for _attempt in range(CREATE_ATTEMPTS):
            step = self._plan_rename() if left is None else self._plan_leave(left)
            try:
                done = self._redis().run_script(step.script, step.keys, step.args)
            except RedisUnavailable as exc:
                exc = past_deadline(exc, step.script)
                raise self._failed(exc, write=True) from exc.error
            if self._rekeyed(done, step):
                return
        raise RuntimeError("Unable to create a new Redis session key.")

    async def acycle_key(self) -> None:
        data = await self._aget_session()
        renames = self._renames()
        left = None if renames else self._cycle_anonymous(data)
        if not renames and left is None:
            return
        for _attempt in range(CREATE_ATTEMPTS):
            step = self._plan_rename() if left is None else self._plan_leave(left)
            try:
                done = await self._aredis().run_script(
                    step.script, step.keys, step.args
                )
            except RedisUnavailable as exc:
                exc = past_deadline(exc, step.script)
                raise self._failed(exc, write=True) from exc.error
            if self._rekeyed(done, step):
                return
        raise RuntimeError("Unable to create a new Redis session key.")

    @classmethod
    def clear_expired(cls) -> None:
        """Redis expires sessions itself, and the index prunes itself."""

    @classmethod
    async def aclear_expired(cls) -> None:
        """Redis expires sessions itself, and the index prunes itself."""

    # The engine side of django_prologue_sessions.user_sessions -------------

    @classmethod
    def list_user_sessions(cls, user_id: str) -> list[UserSession]:
        from django_prologue_sessions.activity import from_session
        from django_prologue_sessions.user_sessions import UserSession

        # The values are read for the recorded activity only.
        values = app_settings.PROLOGUE_SESSIONS_ACTIVITY
        reader = cls()  # decodes each value as a load would
        sessions = []
        for sid, created, saved, ms_left, value, now in cls._listed(user_id, values):
            created_at = date_from_timestamp(float(created or now))
            sessions.append(
                UserSession(
                    id=sid,
                    created=created_at,
                    last_seen=date_from_timestamp(float(saved))
                    if saved
                    else created_at,
                    expires=date_from_timestamp(now + ms_left / 1000)
                    if ms_left >= 0
                    else datetime.max.replace(tzinfo=UTC),
                    activity=from_session(reader._decode(value)) if values else None,
                )
            )
        return sessions

    @classmethod
    def _listed(
        cls, user_id: str, values: bool
    ) -> Iterator[tuple[str, bytes, bytes, int, bytes, float]]:
        """Each live session of the user as LIST returns it (its id, created,
        last saved, milliseconds left, the value or b''), and the time the
        page was read; once each, though a session saved while the pages are
        read may move to a later one."""
        _need_user_index("Listing")
        handle = sync_redis()
        prefix = current_options().key_prefix
        for tag in user_tags(user_id):
            index = [cls.index_key(tag, user_id)]
            seen: set[bytes] = set()
            after: bytes = b""
            after_score: bytes = b""
            while True:
                args = scripts.LIST.argv(
                    head=layout.index_head(prefix, tag),
                    user=user_id,
                    after=after,
                    after_score=after_score,
                    values="1" if values else "",
                )
                try:
                    found = handle.run_script(scripts.LIST, index, args)
                except RedisUnavailable as exc:
                    raise unavailable(exc) from exc.error
                now = _now()
                for i in range(2, len(found), 5):
                    member, created, saved, ms_left, value = found[i : i + 5]
                    if member not in seen:
                        seen.add(member)
                        sid = tag + member.decode()
                        yield sid, created, saved, ms_left, value, now
                after, after_score = found[0], found[1]
                if not after:
                    break

    @classmethod
    def revoke_user_sessions(
        cls,
        user_id: str,
        session_ids: Collection[str] | None = None,
        keep: str | None = None,
    ) -> int:
        _need_user_index("Revoking")
        ended = 0
        for tag in user_tags(user_id):
            if session_ids is None:
                more = True
                while more:
                    page_ended, more = cls._revoke_page(user_id, tag, keep, [])
                    ended += page_ended
                continue
            members = _members(session_ids, tag)
            for i in range(0, len(members), scripts.PAGE):
                ended += cls._revoke_page(
                    user_id, tag, keep, members[i : i + scripts.PAGE]
                )[0]
        return ended

    @classmethod
    def _revoke_page(
        cls, user_id: str, tag: str, keep: str | None, members: list[str]
    ) -> tuple[int, bool]:
        """One REVOKE: the given members, or (none given) the first page of
        the index. How many ended, and whether others are left to end."""
        args = scripts.REVOKE.argv(
            members,
            head=layout.index_head(current_options().key_prefix, tag),
            user=user_id,
            keep="".join(_members([keep], tag)),
        )
        try:
            ended, more = sync_redis().run_script(
                scripts.REVOKE, [cls.index_key(tag, user_id)], args
            )
        except RedisUnavailable as exc:
            raise unavailable(exc, write=True) from exc.error
        return ended, bool(more)

    @classmethod
    def change_user_sessions(cls, user_id: str, change: SessionChange) -> int:
        _need_user_index("Changing")
        try:
            return user_changes.change_user_sessions(
                sync_redis(), user_id, change, cls()._codec
            )
        except RedisUnavailable as exc:
            raise unavailable(exc, write=True) from exc.error

    @classmethod
    async def achange_user_sessions(cls, user_id: str, change: SessionChange) -> int:
        _need_user_index("Changing")
        try:
            return await user_changes.achange_user_sessions(
                async_redis(), user_id, change, cls()._codec
            )
        except RedisUnavailable as exc:
            raise unavailable(exc, write=True) from exc.error

    # The decisions shared by the sync and async methods ---------------------

    def _new_key(self) -> str:
        return self.new_session_key(self._key_tag())

    def _key_tag(self) -> str:
        """The user's tag if the session has a user, else none."""
        user = session_user_id(getattr(self, "_session_cache", {}))
        return "" if user is None else user_tag(user)

    def _persisted_key(self) -> str | None:
        key = self._session_key
        return None if key is None or key == self._unsaved_key else key

    def _own_key(self) -> tuple[str, str | None]:
        key = self._session_key
        assert key is not None
        return key, self._stored_user

    def _fit_unsaved_key(self) -> None:
        """Give the unsaved key the tag of the user the session now has."""
        if self._session_key != self._unsaved_key:
            return
        key = self._session_key
        assert key is not None
        user = session_user_id(self._session_cache)
        if user is not None and not key.startswith(user_tag(user)):
            self._session_key = self._unsaved_key = self._new_key()

    def _cycle_anonymous(self, data: dict[str, Any]) -> str | None:
        """cycle_key() of a session with no stored user: the old key, to delete.

        No round trip for the new key: the save that follows creates the
        session, with the user's tag if login() has named the user by then.
        """
        old = self._persisted_key()
        self._session_key = self._unsaved_key = self.new_session_key()
        self._session_cache = data
        self._version = self._stored_value = None
        self._stored_body = None
        self._stored_user = None
        self._created_ttl = None
        self.modified = True
        return old

    def _renames(self) -> bool:
        """Whether cycle_key() renames the stored session (one with a user),
        rather than giving a new key to the save (``_cycle_anonymous()``)."""
        return (
            self._persisted_key() is not None
            and self._stored_user is not None
            and self._expiry_age() > 0
        )

    def _plan_rename(self) -> Rekey:
        """The RENAME that gives a stored logged-in session a new key (unless
        Redis runs it past the deadline that the handle gives it).

        As with Django's cycle_key(), the session under its new key is a new
        one: created now, expiring a full expiry age from now.
        """
        old, user = self._persisted_key(), self._stored_user
        assert old is not None
        assert user is not None
        tag = old[:TAG_LENGTH]
        new = self.new_session_key(tag)
        old_id, new_id = self._id_of(old), session_id(new)
        prefix = current_options().key_prefix
        keys = [layout.id_key(prefix, old_id), layout.id_key(prefix, new_id)]
        if current_options().user_index:
            keys.append(self.index_key(tag, user))
        ttl, now = self._expiry_age(), int(_now())
        until = now + INDEX_TTL_FACTOR * ttl
        args = scripts.RENAME.argv(
            member=layout.member(old_id),
            new_member=layout.member(new_id),
            now=now,
            ttl=ttl,
            index_ttl=INDEX_TTL_FACTOR * ttl,
            indexed_until=until,
            not_after=0,  # the handle's deadline, when sent
        )
        return Rekey(scripts.RENAME, keys, args, new, new_id, now, ttl, until)

    def _expiry_age(self) -> int:
        """The TTL to give: a whole number of seconds, never shorter than asked."""
        return math.ceil(self.store_age(self._session))

    def _plan_load(self) -> list[tuple[str, str]]:
        """GET the session; with an idle timeout, its PTTL in the same round
        trip, to tell whether its expiry is due to be pushed back."""
        assert self.session_key is not None
        key = self._redis_key_of(self.session_key)
        if session_settings().idle_timeout is None:
            return [("GET", key)]
        return [("GET", key), ("PTTL", key)]

    def _plan_touch(self, session: dict[str, Any], replies: list[Any]) -> Write | None:
        """The idle timeout's slide of a loaded session, when due: a bare
        EXPIRE, or TOUCH for a session whose index entry would not outlast
        its new expiry (the rule of ``_index_op()``); the value is never
        rewritten."""
        if len(replies) < 2 or replies[1] < 0 or self._unavailable:
            return None
        age = self.refresh_due(session, replies[1] / 1000)
        if age is None:
            return None
        ttl = math.ceil(age)
        key, user = self._own_key()
        now = _now()
        index_op, until = self._index_op(user, False, now, ttl)
        keys = [self._redis_key_of(key)]
        args: list[Any] = ["EXPIRE", keys[0], ttl]
        write = Write(None, keys, args, session, b"", ttl, user, 0, creates=False)
        if index_op != "a":
            return write
        assert user is not None
        assert until is not None
        keys.append(self.index_key(key[:TAG_LENGTH], user))
        args = scripts.TOUCH.argv(
            ttl=ttl,
            member=layout.member(self._id_of(key)),
            outlast=ttl + _margin(ttl),
            index_ttl=until - int(now),
        )
        return replace(write, script=scripts.TOUCH, args=args)

    def _forget(self) -> dict[str, Any]:
        """Drop the session loaded (ended): an empty one with no key."""
        self._session_key = None
        self._version = self._stored_body = self._stored_value = None
        self._stored_user = self._created_at = self._indexed_until = None
        return {}

    def _plan_leave(self, old: str) -> Rekey:
        """The deletion of the key an anonymous session's re-key leaves."""
        keys = [self._redis_key_of(old)]
        return Rekey(scripts.LEAVE, keys, scripts.LEAVE.argv(not_after=0))

    def _rekeyed(self, moved: int | list[int], rekey: Rekey) -> bool:
        """Done with the re-key's script: for a RENAME, adopt the new key.

        False if it is to be sent again: refused as late (though its reply
        came in time), or the new key was taken. A session that ended
        meanwhile takes the new key too, unstored: its save raises
        ``UpdateError``."""
        if isinstance(moved, list) or moved == -1:
            return False
        if rekey.script is scripts.LEAVE:
            return True
        self._session_key = rekey.new_key
        self._known_id = (rekey.new_key, rekey.new_id)
        self._created_ttl = rekey.ttl if moved else None
        self._created_at = rekey.now
        if self._stored_value is not None and self._stored_user is not None:
            # As the script rewrote it, unless another save came between.
            self._stored_value = layout.restamp(
                self._stored_value, rekey.now, rekey.indexed_until
            )
            self._indexed_until = rekey.indexed_until
        self.modified = True
        return True

    def _plan_save(self, data: dict[str, Any], new: bool) -> tuple[str, Write | None]:
        """What a save does: ``"write"`` (the ``Write``, or None for nothing),
        ``"create"`` a new key, or ``"move"`` to one with the user's tag.

        A key that Redis does not hold yet takes the user's tag; a stored
        session that gains a user, or changes user, without cycle_key() moves
        to a new key, which the middleware then sends as the cookie.
        """
        key = self._session_key
        user = session_user_id(data)
        if (
            user is not None
            and key is not None
            and not self._unavailable
            and not key.startswith(user_tag(user))
        ):
            if new:
                return "create", None
            if key[:TAG_LENGTH] not in user_tags(user):  # not a fallback's
                return "move", None
        return "write", self._plan_write(data, new, user)

    def _plan_write(
        self, data: dict[str, Any], new: bool, user: str | None
    ) -> Write | None:
        """The command or script that writes ``data``, or None for no write."""
        key = self._session_key
        if key is None:
            # Loading it just now found nothing: it was deleted meanwhile.
            raise UpdateError
        if self._unavailable and not new:
            logger.warning(
                "Session not saved: Redis was unavailable when it was loaded, "
                "so it would overwrite the stored session with an empty one."
            )
            return None
        body = self._codec.dumps(data)
        max_bytes = session_settings().max_bytes
        if len(body) > max_bytes:
            raise SessionTooLarge(len(body), max_bytes)
        ttl = self._expiry_age()
        if not new and body == self._stored_body and ttl == self._created_ttl:
            # Created by this very instance (cycle_key() then the
            # middleware's save): Redis already holds exactly this.
            return None
        keys = [self._redis_key_of(key)]
        now = _now()
        stamp = int(now)
        created = stamp if new or self._created_at is None else self._created_at
        index_op, until = self._index_op(user, new, now, ttl)
        head = b""
        if index_op != "":
            stored_user = user if index_op == "a" else self._stored_user
            assert stored_user is not None
            keys.append(self.index_key(key[:TAG_LENGTH], stored_user))
        if until is not None:
            assert user is not None
            head = layout.user_header(created, stamp, until, user)
        rest = head + self._codec.pack(body)
        index_ttl = 0 if until is None else until - stamp
        script: scripts.LuaScript | None
        expected, version = None, 1
        if new:
            value = b"1" + rest
            if index_op or ttl <= 0:  # SET's EX takes no expired TTL
                script = scripts.CREATE
                options = current_options()
                args = script.argv(
                    ttl=ttl,
                    member=layout.member(self._id_of(key)) if index_op else "",
                    value=value,
                    index_ttl=index_ttl,
                    not_after=0,  # the handle's deadline, when sent
                    head=layout.index_head(options.key_prefix, key[:TAG_LENGTH]),
                    user=user or "",
                    max_sessions=options.max_sessions_per_user,
                )
            else:
                script, args = None, ["SET", keys[0], value, "NX", "EX", ttl]
        else:
            script = scripts.UPDATE
            args = script.argv(
                ttl=ttl,
                expected=self._version or "",
                unversioned=rest,
                index_op=index_op,
                member=layout.member(self._id_of(key)) if index_op else "",
                index_ttl=index_ttl,
            )
            if not index_op and ttl > 0 and self._version is not None:
                expected, version = self._stored_value, int(self._version) + 1
        return Write(
            script,
            keys,
            args,
            data,
            body,
            ttl,
            user,
            created,
            new,
            rest,
            until,
            expected,
            version,
        )

    def _index_op(
        self, user: str | None, new: bool, now: float, ttl: int
    ) -> tuple[str, int | None]:
        """What a save does to the user index, and until when the session's
        entry there lasts once it is done (None: the session is not indexed).

        ``"a"`` (re)writes the entry, ``"r"`` removes it, ``""`` leaves the
        index alone: a session that keeps its user whose entry outlasts its
        new expiry by the margin of ``INDEX_TTL_FACTOR``'s comment.
        """
        options = current_options()
        if user is None or not options.user_index:
            had_index = not new and self._stored_user is not None
            return ("r" if had_index and options.user_index else ""), None
        until = self._indexed_until
        if (
            not new
            and user == self._stored_user
            and until is not None
            and now + ttl + _margin(ttl) <= until
        ):
            return "", until
        return "a", int(now) + INDEX_TTL_FACTOR * ttl

    def _written(self, write: Write, done: Any, must_create: bool) -> Write | None:
        """Take in the outcome of ``write``: None when done, ``NEW_KEY`` if a
        new key must be made (a clash of a key that cycle_key() made), or the
        next write when another request saved the session meanwhile."""
        if isinstance(done, bytes):
            return self._rebase(write, done)
        if isinstance(done, list):
            return write  # refused as late, though the reply came: again
        if not done:
            if write.creates and not must_create:
                return NEW_KEY  # any other new key will do
            raise CreateError if write.creates else UpdateError
        self._version = "1" if write.creates else str(done)
        self._stored_value = write.value(int(self._version))
        self._indexed_until = write.indexed_until
        self._stored_body = write.body
        self._stored_user = write.user
        self._created_at = write.created
        self._created_ttl = write.ttl if write.creates else None
        self._unavailable = False
        self._unsaved_key = None
        return None

    def _rebase(self, write: Write, current: bytes) -> Write | None:
        """The write of this instance's changes onto ``current``, the session
        as another request saved it since it was loaded, merged key by key
        (``django_prologue_sessions.merge``)."""
        before = self._loads(self._stored_body)
        theirs = self._decode(current)
        merged = merge(before, write.data, theirs, self._codec.serializer.dumps)
        self._session_cache = merged
        return self._plan_write(merged, False, session_user_id(merged))

    def _retire(self, deleted: int) -> None:
        if not deleted:
            raise UpdateError  # deleted meanwhile (revoked, logged out)
        self._session_key = None
        self._version = self._stored_value = None
        self._stored_body = None
        self._stored_user = None

    def _delete_target(self, session_key: str | None) -> tuple[str, str | None] | None:
        """The key to delete and its user if known; None if nothing to delete."""
        if session_key is None:
            session_key = self._persisted_key()
        if session_key is None or not self._validate_session_key(session_key):
            return None
        user = self._stored_user if session_key == self._session_key else None
        return session_key, user

    def _plan_delete(
        self, session_key: str, user: str | None
    ) -> tuple[scripts.LuaScript, list[str], list[Any]] | None:
        """The DELETE script for a session in a user's index; None: a plain UNLINK."""
        if user is None or not current_options().user_index:
            return None
        keys = [
            self._redis_key_of(session_key),
            self.index_key(session_key[:TAG_LENGTH], user),
        ]
        member = layout.member(self._id_of(session_key))
        return scripts.DELETE, keys, scripts.DELETE.argv(member=member)

    def _delete_key(self, session_key: str, user: str | None) -> int:
        """Delete a session, and its index entry if its user is known: the
        number of sessions deleted (0 or 1)."""
        script = self._plan_delete(session_key, user)
        try:
            handle = self._redis()
            if script is None:
                key = self._redis_key_of(session_key)
                deleted: int = handle.execute("UNLINK", key, write=True)
            else:
                deleted = handle.run_script(*script)
        except RedisUnavailable as exc:
            # Even in "empty" mode: a logout that silently did not happen
            # would leave the session usable by whoever holds the cookie.
            raise self._failed(exc, write=True) from exc.error
        return deleted

    async def _adelete_key(self, session_key: str, user: str | None) -> int:
        script = self._plan_delete(session_key, user)
        try:
            handle = self._aredis()
            if script is None:
                key = self._redis_key_of(session_key)
                deleted: int = await handle.execute("UNLINK", key, write=True)
            else:
                deleted = await handle.run_script(*script)
        except RedisUnavailable as exc:
            raise self._failed(exc, write=True) from exc.error
        return deleted

    def _decode(self, raw: bytes | None) -> dict[str, Any]:
        if raw is None:
            # Expired, deleted, or never there: never adopt the client's key.
            self._session_key = None
            return {}
        try:
            header, form, body = layout.parse(raw)
        except ValueError:
            # Not written by this engine: replaced, unread, by the next save.
            logger.warning("Session value could not be decoded")
            self._version = self._stored_body = self._stored_value = None
            self._stored_user = self._created_at = None
            return {}
        self._version, self._created_at = header.version, header.created
        self._stored_value, self._indexed_until = raw, header.indexed_until
        try:
            self._stored_body = self._codec.unpack(
                form, body, session_settings().max_bytes
            )
        except (ValueError, zlib.error) as exc:
            # Left in Redis as it is until this session is saved.
            logger.warning("Session value could not be decoded (%s)", exc)
            self._stored_body = None
        session = self._loads(self._stored_body)
        self._stored_user = session_user_id(session)
        return session

    def _loads(self, body: bytes | None) -> dict[str, Any]:
        if body is None:
            return {}
        try:
            return self._codec.loads(body)
        except Exception:
            # Left in Redis as it is (e.g. written under another
            # SESSION_SERIALIZER) until this session is saved.
            logger.warning("Session data could not be decoded")
            return {}

    def _redis(self) -> SyncRedis:
        """The process's handle, unless Redis failed this store already."""
        if self._failure is not None:
            raise RedisUnavailable(self._failure.error, maybe_sent=False)
        return sync_redis()

    def _aredis(self) -> AsyncRedis:
        if self._failure is not None:
            raise RedisUnavailable(self._failure.error, maybe_sent=False)
        return async_redis()

    def _failed(self, exc: RedisUnavailable, write: bool = False) -> Exception:
        """Remember that Redis failed; the error to raise."""
        self._failure = self._failure or exc
        return unavailable(exc, write)

    def _load_failed(self, exc: RedisUnavailable) -> dict[str, Any]:
        if current_options().on_unavailable != "empty":
            raise self._failed(exc) from exc.error
        self._failure = self._failure or exc
        logger.warning(
            "Redis is unavailable (%s); serving an empty session that will not "
            "be saved.",
            exc,
        )
        # Keep the key: the middleware then neither deletes the cookie nor
        # sees an empty session, and save() knows to write nothing.
        self._unavailable = True
        return {}

    def _write_failed(self, exc: RedisUnavailable) -> None:
        if current_options().on_unavailable != "empty":
            raise self._failed(exc, write=True) from exc.error
        self._failure = self._failure or exc
        if exc.maybe_sent:
            logger.warning(
                "Redis did not answer in time (%s); the session may or may not "
                "have been saved.",
                exc,
            )
        else:
            logger.warning("Redis is unavailable (%s); the session was not saved.", exc)


#: What ``_written()`` returns when the session needs another new key.
NEW_KEY = Write(None, [], [], {}, b"", 0, None, 0, creates=True)


def _margin(ttl: int) -> int:
    """How much longer than the session its index entry must last for the
    index to be left alone (see ``INDEX_TTL_FACTOR``)."""
    return ttl // 4 + 1


def _not_deleted(exc: SessionStoreUnavailable) -> None:
    logger.warning(
        "A session past its absolute timeout could not be deleted (%s): it "
        "is not served, and Redis expires it in its own time.",
        exc,
    )


def _not_refreshed(exc: RedisUnavailable) -> None:
    logger.warning(
        "The expiry of a session could not be pushed back (%s); the next "
        "request tries again.",
        exc,
    )


def past_deadline(
    exc: RedisUnavailable, script: scripts.LuaScript | None
) -> RedisUnavailable:
    """``exc``, or, for a write with a deadline that timed out, the same
    error saying that nothing was written: Redis refuses it past its
    deadline, which comes before the timeout, so it never applies."""
    if (
        script is not None
        and "not_after" in script.head
        and isinstance(exc.error, TimeoutError)
        and current_options().socket_timeout
    ):
        return RedisUnavailable(exc.error, maybe_sent=False)
    return exc


def _members(session_ids: Collection[Any], tag: str) -> list[str]:
    """The index members of the ids that can name sessions with ``tag``
    (anything else, a session key included, never reaches Redis)."""
    return [
        layout.member(sid)
        for sid in session_ids
        if isinstance(sid, str) and is_session_id(sid) and sid.startswith(tag)
    ]


def _need_user_index(what: str) -> None:
    if not current_options().user_index:
        raise UserSessionsUnsupported(
            f"{what} a user's sessions needs the user index, which "
            "SESSION_REDIS['user_index'] = False turns off. Remove that "
            "setting (the index is on by default) to reach them."
        )


def unavailable(exc: RedisUnavailable, write: bool = False) -> SessionStoreUnavailable:
    """The error for a request that Redis could not serve; what it says of
    the write depends on whether the command may have reached Redis."""
    cause = f"The Redis session store is unavailable ({exc})."
    advice = (
        "Check that Redis is up and that SESSION_REDIS points at it; "
        "SESSION_REDIS['on_unavailable'] = 'empty' serves requests with an "
        "empty, unsaved session instead."
    )
    if write and exc.maybe_sent:
        return SessionWriteOutcomeUnknown(
            f"{cause} The write was sent but no reply came, so whether it was "
            "applied is unknown: Redis may still apply it when it resumes. The "
            f"client's session cookie was left as it is. {advice}"
        )
    done = "Nothing was written" if write else "Nothing was read or written"
    return SessionStoreUnavailable(
        f"{cause} {done} and the client's session cookie was left as it is. {advice}"
    )
