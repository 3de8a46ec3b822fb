"""The Redis ``SessionStore``: one round trip per operation, safe under outages.

Loading is one HGETALL; creating, updating and deleting are one command each
(see ``scripts``). An update sends only the fields that changed since the
load, and only if the session still exists, so a logout in a concurrent
request is never undone and concurrent changes to different keys both stay.
How a session lies in Redis is ``layout``'s business.

Each operation decides what to send once, in a method shared by its sync
and async forms (``_plan_save()`` returns the ``Write`` to make), and the
two forms only send it.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    UpdateError,
)
from django.core.signing import JSONSerializer

from django_prologue_sessions.backends._session_keys import (
    KEY_LENGTH,
    USER_ID_KEY,
    new_session_key,
    session_user_id,
)
from django_prologue_sessions.backends.base import (
    CREATE_ATTEMPTS,
    ServerSessionBase,
    date_from_timestamp,
)
from django_prologue_sessions.backends.redis import layout, scripts
from django_prologue_sessions.backends.redis.connection import (
    RedisUnavailable,
    async_redis,
    current_options,
    sync_redis,
)
from django_prologue_sessions.backends.redis.layout import (
    CREATED_FIELD,
    SAVED_FIELD,
    TAG_LENGTH,
    USER_FIELD,
    Fields,
    user_tag,
    user_tags,
)
from django_prologue_sessions.exceptions import (
    SessionStoreUnavailable,
    SessionWriteOutcomeUnknown,
)

if TYPE_CHECKING:
    from django_prologue_sessions.user_sessions import UserSession

logger = logging.getLogger("django_prologue_sessions.redis")

_is_valid_key = re.compile(f"[{VALID_KEY_CHARS}]{{{KEY_LENGTH}}}").fullmatch
# The clock of the times listed for a user's sessions (tests move it).
_now = time.time


@dataclass(frozen=True)
class Write:
    """A script to run, and what the session holds once it has run."""

    script: scripts.LuaScript
    keys: list[str]
    args: list[Any]
    fields: Fields
    ttl: int
    user: str | None
    creates: bool


class SessionStore(ServerSessionBase):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._codec = layout.FieldCodec(
            self.serializer_class(), raw_strings=self.serializer is JSONSerializer
        )
        # The fields as loaded or last written, to send only what changed;
        # None when unknown (the session was emptied before it was loaded).
        self._stored: Fields | None = None
        # The user id stored with the session (its \x00u field), if known.
        self._stored_user: str | None = None
        # Set when Redis could not be read in on_unavailable="empty" mode: the
        # empty session stands in for the real one and must never replace it.
        self._unavailable = False
        # The TTL this instance created the session with, if it did.
        self._created_ttl: int | None = None
        # The key cycle_key() gave an anonymous session, until it is saved:
        # unknown to Redis and to the client, it may still change.
        self._unsaved_key: str | None = None

    def _validate_session_key(self, key: Any) -> bool:
        # Anything but a key this engine could have made never reaches Redis.
        return isinstance(key, str) and _is_valid_key(key) is not None

    #: A new key (``tag`` then random ``[a-z0-9]``, 32 characters in all).
    new_session_key = staticmethod(new_session_key)

    @staticmethod
    def redis_key(session_key: str) -> str:
        return layout.redis_key(current_options().key_prefix, session_key)

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
            return {}
        try:
            raw = sync_redis().execute("HGETALL", self.redis_key(self.session_key))
        except RedisUnavailable as exc:
            return self._load_failed(exc)
        return self._decode(raw)

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        try:
            raw = await async_redis().execute(
                "HGETALL", self.redis_key(self.session_key)
            )
        except RedisUnavailable as exc:
            return self._load_failed(exc)
        return self._decode(raw)

    def exists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        assert session_key is not None
        try:
            return bool(sync_redis().execute("EXISTS", self.redis_key(session_key)))
        except RedisUnavailable as exc:
            raise unavailable(exc) from exc.error

    async def aexists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        assert session_key is not None
        try:
            found = await async_redis().execute("EXISTS", self.redis_key(session_key))
        except RedisUnavailable as exc:
            raise unavailable(exc) from exc.error
        return bool(found)

    # Writing ---------------------------------------------------------------

    def save(self, must_create: bool = False) -> None:
        if self._session_key is None:
            return self.create()
        new = must_create or self._session_key == self._unsaved_key
        data = self._get_session(no_load=new)  # type: ignore[attr-defined]
        step, write = self._plan_save(data, new)
        if step == "move":
            self._retire(self._delete_key(*self._own_key()))
        if step != "write":
            return self.create()
        if write is None:
            return
        try:
            done = sync_redis().run_script(write.script, write.keys, write.args)
        except RedisUnavailable as exc:
            return self._write_failed(exc)
        if self._written(write, done, must_create):
            return self.create()

    async def asave(self, must_create: bool = False) -> None:
        if self._session_key is None:
            return await self.acreate()
        new = must_create or self._session_key == self._unsaved_key
        data = await self._aget_session(no_load=new)  # type: ignore[attr-defined]
        step, write = self._plan_save(data, new)
        if step == "move":
            self._retire(await self._adelete_key(*self._own_key()))
        if step != "write":
            return await self.acreate()
        if write is None:
            return
        try:
            done = await async_redis().run_script(write.script, write.keys, write.args)
        except RedisUnavailable as exc:
            return self._write_failed(exc)
        if self._written(write, done, must_create):
            return await self.acreate()

    def delete(self, session_key: str | None = None) -> None:
        target = self._delete_target(session_key)
        if target is not None:
            self._delete_key(*target)

    async def adelete(self, session_key: str | None = None) -> None:
        target = self._delete_target(session_key)
        if target is not None:
            await self._adelete_key(*target)

    def cycle_key(self) -> None:
        data = self._session  # type: ignore[attr-defined]
        rename = self._plan_rename()
        if rename is None:
            old = self._cycle_anonymous(data)
            if old is not None:
                self._delete_key(old, None)
            return
        for _attempt in range(CREATE_ATTEMPTS):
            try:
                moved = sync_redis().run_script(*rename)
            except RedisUnavailable as exc:
                raise unavailable(exc, write=True) from exc.error
            if self._renamed(moved, rename):
                return
            rename = self._plan_rename()
            assert rename is not None
        raise RuntimeError("Unable to create a new Redis session key.")

    async def acycle_key(self) -> None:
        data = await self._aget_session()  # type: ignore[attr-defined]
        rename = self._plan_rename()
        if rename is None:
            old = self._cycle_anonymous(data)
            if old is not None:
                await self._adelete_key(old, None)
            return
        for _attempt in range(CREATE_ATTEMPTS):
            try:
                moved = await async_redis().run_script(*rename)
            except RedisUnavailable as exc:
                raise unavailable(exc, write=True) from exc.error
            if self._renamed(moved, rename):
                return
            rename = self._plan_rename()
            assert rename is not None
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
        from django_prologue_sessions.user_sessions import UserSession

        handle = sync_redis()
        prefix = current_options().key_prefix
        sessions = []
        for tag in user_tags(user_id):
            args = scripts.LIST.argv(head=layout.index_head(prefix, tag), user=user_id)
            try:
                found = handle.run_script(
                    scripts.LIST, [cls.index_key(tag, user_id)], args
                )
            except RedisUnavailable as exc:
                raise unavailable(exc) from exc.error
            now = _now()
            for i in range(0, len(found), 4):
                key, created, saved, ms_left = found[i : i + 4]
                created_at = date_from_timestamp(float(created or now))
                sessions.append(
                    UserSession(
                        session_key=key.decode(),
                        created=created_at,
                        last_seen=date_from_timestamp(float(saved))
                        if saved
                        else created_at,
                        expires=date_from_timestamp(now + ms_left / 1000)
                        if ms_left >= 0
                        else datetime.max.replace(tzinfo=UTC),
                    )
                )
        return sessions

    @classmethod
    def revoke_user_sessions(
        cls,
        user_id: str,
        session_keys: Collection[str] | None = None,
        keep: str | None = None,
    ) -> int:
        handle = sync_redis()
        prefix = current_options().key_prefix
        ended = 0
        for tag in user_tags(user_id):
            keys: list[str] = []
            if session_keys is not None:
                keys = [
                    key
                    for key in session_keys
                    if isinstance(key, str)
                    and _is_valid_key(key)
                    and key.startswith(tag)
                ]
                if not keys:
                    continue
            args = scripts.REVOKE.argv(
                keys,
                head=layout.index_head(prefix, tag),
                user=user_id,
                keep=keep or "",
            )
            try:
                ended += handle.run_script(
                    scripts.REVOKE, [cls.index_key(tag, user_id)], args
                )
            except RedisUnavailable as exc:
                raise unavailable(exc, write=True) from exc.error
        return ended

    # The decisions shared by the sync and async methods ---------------------

    def _new_key(self) -> str:
        """A new key: with the user's tag if the session has a user."""
        user = session_user_id(getattr(self, "_session_cache", {}))
        return self.new_session_key("" if user is None else user_tag(user))

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
        self._stored = None
        self._stored_user = None
        self._created_ttl = None
        self.modified = True
        return old

    def _plan_rename(self) -> tuple[scripts.LuaScript, list[str], list[Any]] | None:
        """The RENAME that gives a stored logged-in session a new key, or None
        for a session with no stored user (see ``_cycle_anonymous()``).

        As with Django's cycle_key(), the session under its new key is a new
        one: created now, expiring a full expiry age from now.
        """
        old, user = self._persisted_key(), self._stored_user
        if old is None or user is None or self._expiry_age() <= 0:
            return None
        tag = old[:TAG_LENGTH]
        new = self.new_session_key(tag)
        keys = [self.redis_key(old), self.redis_key(new), self.index_key(tag, user)]
        args = scripts.RENAME.argv(
            member=old, new_member=new, now=int(_now()), ttl=self._expiry_age()
        )
        return scripts.RENAME, keys, args

    def _expiry_age(self) -> int:
        """The TTL to give: a whole number of seconds, never shorter than asked."""
        return math.ceil(self.get_expiry_age())

    def _renamed(
        self, moved: int, rename: tuple[scripts.LuaScript, list[str], list[Any]]
    ) -> bool:
        """Adopt the new key; False if it was taken. A session that ended
        meanwhile takes it too, unstored: its save raises ``UpdateError``."""
        if moved == -1:
            return False
        self._session_key = rename[2][1]
        self._created_ttl = rename[2][3] if moved else None
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
        """The script, keys and arguments that write ``data``, or None for no write."""
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
        fields = self._codec.encode(data)
        ttl = self._expiry_age()
        keys = [self.redis_key(key)]
        now = int(_now())
        if new:
            if user is None:
                meta: list[Any] = [CREATED_FIELD, now]
            else:
                keys.append(self.index_key(key[:TAG_LENGTH], user))
                meta = [CREATED_FIELD, now, SAVED_FIELD, now, USER_FIELD, user]
            for field, value in fields.items():
                meta += (field, value)
            member = key if user is not None else ""
            args = scripts.CREATE.argv(meta, ttl=ttl, member=member)
            return Write(scripts.CREATE, keys, args, fields, ttl, user, creates=True)
        stored = self._stored
        if stored is None:
            mode, changed, removed = "r", fields, []
        else:
            mode = "d"
            changed = {f: v for f, v in fields.items() if stored.get(f) != v}
            removed = [f for f in stored if f not in fields]
            if not changed and not removed and ttl == self._created_ttl:
                # Created by this very instance (cycle_key() then the
                # middleware's save): Redis already holds exactly this.
                return None
        # The index: refresh the user's entry, or leave the one it had.
        index_op = ""
        meta = []
        meta_removed: list[bytes] = []
        if user is not None:
            keys.append(self.index_key(key[:TAG_LENGTH], user))
            index_op = "a"
            meta = [SAVED_FIELD, now]
            if user != self._stored_user or stored is None:
                meta += (USER_FIELD, user)
        elif self._stored_user is not None:
            keys.append(self.index_key(key[:TAG_LENGTH], self._stored_user))
            index_op = "r"
            meta_removed = [USER_FIELD, SAVED_FIELD]
        elif stored is None:
            # Replaced unread: it may have had a user, which it has no more.
            meta_removed = [USER_FIELD, SAVED_FIELD]
        rest: list[Any] = []
        for field, value in changed.items():
            rest += (field, value)
        rest += meta
        rest += removed
        # A key is stored plain or serialized: writing one form deletes the
        # other, which a concurrent request may have written.
        for field in changed:
            other = layout.other_form(field)
            if other is not None and other not in fields:
                rest.append(other)
        rest += meta_removed
        args = scripts.UPDATE.argv(
            rest,
            ttl=ttl,
            mode=mode,
            set_count=len(changed) + len(meta) // 2,
            index_op=index_op,
            member=key if index_op else "",
        )
        return Write(scripts.UPDATE, keys, args, fields, ttl, user, creates=False)

    def _written(self, write: Write, done: Any, must_create: bool) -> bool:
        """Take in the outcome of ``write``; True if a new key must be made
        (a clash of a key that cycle_key() made)."""
        if not done:
            if write.creates and not must_create:
                return True  # any other new key will do
            raise CreateError if write.creates else UpdateError
        self._stored = write.fields
        self._stored_user = write.user
        self._created_ttl = write.ttl if write.creates else None
        self._unavailable = False
        self._unsaved_key = None
        return False

    def _retire(self, deleted: int) -> None:
        if not deleted:
            raise UpdateError  # deleted meanwhile (revoked, logged out)
        self._session_key = None
        self._stored = None
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
        """The DELETE script for a session with a known user; None: a plain UNLINK."""
        if user is None:
            return None
        keys = [
            self.redis_key(session_key),
            self.index_key(session_key[:TAG_LENGTH], user),
        ]
        return scripts.DELETE, keys, scripts.DELETE.argv(member=session_key)

    def _delete_key(self, session_key: str, user: str | None) -> int:
        """Delete a session, and its index entry if its user is known: the
        number of sessions deleted (0 or 1)."""
        handle = sync_redis()
        script = self._plan_delete(session_key, user)
        try:
            if script is None:
                key = self.redis_key(session_key)
                deleted: int = handle.execute("UNLINK", key, write=True)
            else:
                deleted = handle.run_script(*script)
        except RedisUnavailable as exc:
            # Even in "empty" mode: a logout that silently did not happen
            # would leave the session usable by whoever holds the cookie.
            raise unavailable(exc, write=True) from exc.error
        return deleted

    async def _adelete_key(self, session_key: str, user: str | None) -> int:
        handle = async_redis()
        script = self._plan_delete(session_key, user)
        try:
            if script is None:
                key = self.redis_key(session_key)
                deleted: int = await handle.execute("UNLINK", key, write=True)
            else:
                deleted = await handle.run_script(*script)
        except RedisUnavailable as exc:
            raise unavailable(exc, write=True) from exc.error
        return deleted

    def _decode(self, raw: Any) -> dict[str, Any]:
        if not raw:
            # Expired, deleted, or never there: never adopt the client's key.
            self._session_key = None
            return {}
        items = raw.items() if isinstance(raw, dict) else _pairs(raw)
        session, self._stored, self._stored_user = self._codec.decode(items)
        return session

    def _load_failed(self, exc: RedisUnavailable) -> dict[str, Any]:
        if current_options().on_unavailable != "empty":
            raise unavailable(exc) from exc.error
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
            raise unavailable(exc, write=True) from exc.error
        if exc.maybe_sent:
            logger.warning(
                "Redis did not answer in time (%s); the session may or may not "
                "have been saved.",
                exc,
            )
        else:
            logger.warning("Redis is unavailable (%s); the session was not saved.", exc)


def _pairs(raw: list[Any]) -> Any:
    pairs = iter(raw)
    return zip(pairs, pairs, strict=True)


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
