"""A Redis session engine: one round trip per operation, safe under outages.

Each session is a Redis hash at ``{prefix}:{<key[:8]>}<key[8:]>``: the braces
are a cluster hash tag, the first 8 characters of the session key. A
logged-in user's session gets a key that starts with the user's tag (see
``user_tag()``), so that all of the user's sessions and the user's index,
``{prefix}:{<tag>}:user:<user id>``, lie in one cluster slot and every script
that writes a session updates the index in the same atomic step. Redis
expires the hash: its TTL is the session's expiry age. The first byte of a
field name tells what the field holds:

- ``\\x01`` + key: the value serialized with ``SESSION_SERIALIZER``;
- ``\\x00`` + letter: reserved: ``\\x00c``, the creation time, which keeps an
  emptied session in existence; for a user's session, ``\\x00u``, the user id,
  and ``\\x00s``, the time of the last save;
- anything else: the key itself, holding a string value as plain UTF-8. Under
  Django's JSON serializer this is what JSON would give back, minus quotes
  and escapes: most session values are strings, and at most 64 bytes a field
  Redis keeps the whole hash in its compact listpack form (a login's 64-digit
  ``_auth_user_hash`` would be 66 bytes as JSON).

A key starting with ``\\x00`` or ``\\x01`` is always stored serialized, so no
field name means two things.

Loading is one HGETALL; creating, updating and deleting are one command each
(see ``_redis_scripts``). An update sends only the fields that changed since
the load, and only if the session still exists, so a logout in a concurrent
request is never undone and concurrent changes to different keys both stay.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.signing import JSONSerializer
from django.utils.crypto import salted_hmac

from django_prologue_sessions.backends import _redis_scripts as scripts
from django_prologue_sessions.backends._redis_connection import (
    UNAVAILABLE_ERRORS,
    AsyncRedis,
    SyncRedis,
    async_redis,
    current_options,
    sync_redis,
)
from django_prologue_sessions.backends._session_keys import (
    KEY_LENGTH,
    USER_ID_KEY,
    new_session_key,
    session_user_id,
)
from django_prologue_sessions.exceptions import SessionStoreUnavailable

if TYPE_CHECKING:
    from django_prologue_sessions.user_sessions import UserSession

logger = logging.getLogger("django_prologue_sessions.redis")

_is_valid_key = re.compile(f"[{VALID_KEY_CHARS}]{{{KEY_LENGTH}}}").fullmatch
# The hash tag of a session: the start of its key (the Lua scripts know it too).
TAG_LENGTH = 8
# The first byte of a field name says what it holds (see the module docstring).
RESERVED = b"\x00"
SERIALIZED = b"\x01"
MARKERS = (RESERVED, SERIALIZED)
CREATED_FIELD = RESERVED + b"c"
SAVED_FIELD = RESERVED + b"s"
USER_FIELD = RESERVED + b"u"
# Five clashes in a row among 36**24 keys means something else is wrong.
CREATE_ATTEMPTS = 5
_TAG_SALT = "django_prologue_sessions.backends.redis.user_tag"
# The clock of the times listed for a user's sessions (tests move it).
_now = time.time

Fields = dict[bytes, bytes]
Write = tuple[scripts.LuaScript, list[str], list[Any], Fields]


class SessionStore(SessionBase):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._codec = self.serializer()
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
        tag, rest = session_key[:TAG_LENGTH], session_key[TAG_LENGTH:]
        return f"{current_options().key_prefix}{{{tag}}}{rest}"

    @staticmethod
    def index_key(tag: str, user_id: str) -> str:
        """The Redis key of a user's index of sessions whose keys start with ``tag``."""
        return f"{current_options().key_prefix}{{{tag}}}:user:{user_id}"

    # The dict API: a login names the user before the first save -----------

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key == USER_ID_KEY and self._unsaved_key is not None:
            self._fit_unsaved_key()

    async def aset(self, key: str, value: Any) -> None:
        await super().aset(key, value)
        if key == USER_ID_KEY and self._unsaved_key is not None:
            self._fit_unsaved_key()

    def get_expiry_age(self, **kwargs: Any) -> int:
        # Django's reads the clock even when the session has no expiry of its
        # own, the usual case (and the middleware asks for the age too).
        if not kwargs and not self.get("_session_expiry"):
            age: int = self.get_session_cookie_age()
            return age
        return super().get_expiry_age(**kwargs)

    # Reading ---------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        try:
            raw = sync_redis().execute("HGETALL", self.redis_key(self.session_key))
        except UNAVAILABLE_ERRORS as exc:
            return self._load_failed(exc)
        return self._decode(raw)

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        try:
            raw = await async_redis().execute(
                "HGETALL", self.redis_key(self.session_key)
            )
        except UNAVAILABLE_ERRORS as exc:
            return self._load_failed(exc)
        return self._decode(raw)

    def exists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        assert session_key is not None
        try:
            return bool(sync_redis().execute("EXISTS", self.redis_key(session_key)))
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    async def aexists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        assert session_key is not None
        try:
            found = await async_redis().execute("EXISTS", self.redis_key(session_key))
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc
        return bool(found)

    # Writing ---------------------------------------------------------------

    def create(self) -> None:
        for _attempt in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new Redis session key.")

    async def acreate(self) -> None:
        for _attempt in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new Redis session key.")

    def save(self, must_create: bool = False) -> None:
        if self._session_key is None:
            return self.create()
        unsaved = self._session_key == self._unsaved_key
        data = self._get_session(no_load=must_create or unsaved)  # type: ignore[attr-defined]
        user = session_user_id(data)
        step = self._next_step(data, user, must_create or unsaved)
        if step == "create":
            return self.create()
        if step == "move":
            self._retire()
            return self.create()
        write = self._prepare_write(data, must_create or unsaved, user)
        if write is None:
            return
        script, keys, args, fields = write
        try:
            done = _run_script(sync_redis(), script, keys, args)
        except UNAVAILABLE_ERRORS as exc:
            return self._write_failed(exc)
        if not done and unsaved and not must_create:
            return self.create()  # a clash: any other new key will do
        self._written(done, must_create or unsaved, fields, args[0], user)

    async def asave(self, must_create: bool = False) -> None:
        if self._session_key is None:
            return await self.acreate()
        unsaved = self._session_key == self._unsaved_key
        data = await self._aget_session(no_load=must_create or unsaved)  # type: ignore[attr-defined]
        user = session_user_id(data)
        step = self._next_step(data, user, must_create or unsaved)
        if step == "create":
            return await self.acreate()
        if step == "move":
            await self._aretire()
            return await self.acreate()
        write = self._prepare_write(data, must_create or unsaved, user)
        if write is None:
            return
        script, keys, args, fields = write
        try:
            done = await _arun_script(async_redis(), script, keys, args)
        except UNAVAILABLE_ERRORS as exc:
            return self._write_failed(exc)
        if not done and unsaved and not must_create:
            return await self.acreate()
        self._written(done, must_create or unsaved, fields, args[0], user)

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
        old_key, old_user = self._persisted_key(), self._stored_user
        if session_user_id(data) is None:
            self._start_unsaved_key()
        else:
            # A logged-in session (update_session_auth_hash()): its new key
            # is written at once, so the user's list shows it at once.
            self.create()
            self._session_cache = data
        if old_key is not None:
            self._delete_key(old_key, old_user)

    async def acycle_key(self) -> None:
        data = await self._aget_session()  # type: ignore[attr-defined]
        old_key, old_user = self._persisted_key(), self._stored_user
        if session_user_id(data) is None:
            self._start_unsaved_key()
        else:
            await self.acreate()
            self._session_cache = data
        if old_key is not None:
            await self._adelete_key(old_key, old_user)

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
        sessions = []
        for tag in user_tags(user_id):
            args = [_index_head(tag), user_id]
            try:
                found = _run_script(
                    handle, scripts.LIST, [cls.index_key(tag, user_id)], args
                )
            except UNAVAILABLE_ERRORS as exc:
                raise unavailable(exc) from exc
            now = _now()
            for i in range(0, len(found), 4):
                key, created, saved, ms_left = found[i : i + 4]
                created_at = _date(float(created or now))
                sessions.append(
                    UserSession(
                        session_key=key.decode(),
                        created=created_at,
                        last_seen=_date(float(saved)) if saved else created_at,
                        expires=_date(now + ms_left / 1000)
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
            args = [_index_head(tag), user_id, keep or "", *keys]
            try:
                ended += _run_script(
                    handle, scripts.REVOKE, [cls.index_key(tag, user_id)], args
                )
            except UNAVAILABLE_ERRORS as exc:
                raise unavailable(exc) from exc
        return ended

    # The work shared by the sync and async methods --------------------------

    def _new_key(self) -> str:
        """A new key: with the user's tag if the session has a user."""
        user = session_user_id(getattr(self, "_session_cache", {}))
        return self.new_session_key("" if user is None else user_tag(user))

    def _persisted_key(self) -> str | None:
        key = self._session_key
        return None if key is None or key == self._unsaved_key else key

    def _start_unsaved_key(self) -> None:
        # No round trip now: the save that follows creates the session, with
        # the user's tag if login() has named the user by then.
        self._session_key = self._unsaved_key = self.new_session_key()
        self._stored = None
        self._stored_user = None
        self._created_ttl = None
        self.modified = True

    def _fit_unsaved_key(self) -> None:
        """Give the unsaved key the tag of the user the session now has."""
        if self._session_key != self._unsaved_key:
            return
        key = self._session_key
        assert key is not None
        user = session_user_id(self._session_cache)
        if user is not None and not key.startswith(user_tag(user)):
            self._session_key = self._unsaved_key = self._new_key()

    def _next_step(self, data: dict[str, Any], user: str | None, new: bool) -> str:
        """ "write" this key; "create" a new one; or "move" to one with the user's tag.

        A key that Redis does not hold yet takes the user's tag; a stored
        session that gains a user, or changes user, without cycle_key() moves
        to a new key, which the middleware then sends as the cookie.
        """
        key = self._session_key
        if user is None or key is None or self._unavailable:
            return "write"  # the write itself refuses what it must
        if key.startswith(user_tag(user)):
            return "write"
        if new:
            return "create"
        if key[:TAG_LENGTH] in user_tags(user):  # a tag of SECRET_KEY_FALLBACKS
            return "write"
        return "move"

    def _retire(self) -> None:
        key = self._session_key
        assert key is not None
        self._retired(self._delete_key(key, self._stored_user))

    async def _aretire(self) -> None:
        key = self._session_key
        assert key is not None
        self._retired(await self._adelete_key(key, self._stored_user))

    def _retired(self, deleted: int) -> None:
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

    def _delete_key(self, session_key: str, user: str | None) -> int:
        """Delete a session, and its index entry if its user is known: the
        number of sessions deleted (0 or 1)."""
        handle = sync_redis()
        try:
            if user is None:
                deleted: int = handle.execute("UNLINK", self.redis_key(session_key))
            else:
                keys, args = _delete_args(session_key, user)
                deleted = _run_script(handle, scripts.DELETE, keys, args)
        except UNAVAILABLE_ERRORS as exc:
            # Even in "empty" mode: a logout that silently did not happen
            # would leave the session usable by whoever holds the cookie.
            raise unavailable(exc) from exc
        return deleted

    async def _adelete_key(self, session_key: str, user: str | None) -> int:
        handle = async_redis()
        try:
            if user is None:
                key = self.redis_key(session_key)
                deleted: int = await handle.execute("UNLINK", key)
            else:
                keys, args = _delete_args(session_key, user)
                deleted = await _arun_script(handle, scripts.DELETE, keys, args)
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc
        return deleted

    def _decode(self, raw: Any) -> dict[str, Any]:
        if not raw:
            # Expired, deleted, or never there: never adopt the client's key.
            self._session_key = None
            return {}
        if isinstance(raw, list):  # RESP2 answers HGETALL with a flat list
            pairs = iter(raw)
            items: Any = zip(pairs, pairs, strict=True)
        else:
            items = raw.items()
        loads = self._codec.loads
        session: dict[str, Any] = {}
        stored: Fields = {}
        stored_user = None
        for field, value in items:
            try:
                if field[:1] == SERIALIZED:
                    session[field[1:].decode()] = loads(value)
                elif field[:1] == RESERVED:
                    if field == USER_FIELD:
                        stored_user = value.decode()
                    continue
                else:
                    session[field.decode()] = value.decode()
            except Exception:
                # Left in Redis as it is (e.g. written under another
                # SESSION_SERIALIZER): skipping it loses nothing stored.
                logger.warning("Session field %r could not be decoded", field)
                continue
            stored[field] = value
        self._stored = stored
        self._stored_user = stored_user
        return session

    def _encode(self, data: dict[str, Any]) -> Fields:
        raw_strings = self.serializer is JSONSerializer
        # Django's JSONSerializer.dumps() builds a JSONEncoder per call; the
        # same encoder, built once, writes the same bytes.
        dumps = _json_dumps if raw_strings else self._codec.dumps
        fields: Fields = {}
        for name, value in data.items():
            field = name.encode() if type(name) is str else _json_key(name)
            if raw_strings and isinstance(value, str) and field[:1] not in MARKERS:
                try:
                    fields[field] = value.encode()
                    continue
                except UnicodeEncodeError:  # a lone surrogate: JSON escapes it
                    pass
            encoded = dumps(value)
            fields[SERIALIZED + field] = (
                encoded.encode() if isinstance(encoded, str) else encoded
            )
        return fields

    def _prepare_write(
        self, data: dict[str, Any], must_create: bool, user: str | None
    ) -> Write | None:
        """The script, keys and arguments that write ``data``, or None for no write."""
        key = self._session_key
        if key is None:
            # Loading it just now found nothing: it was deleted meanwhile.
            raise UpdateError
        if self._unavailable and not must_create:
            logger.warning(
                "Session not saved: Redis was unavailable when it was loaded, "
                "so it would overwrite the stored session with an empty one."
            )
            return None
        fields = self._encode(data)
        ttl = self.get_expiry_age()
        keys = [self.redis_key(key)]
        if must_create:
            args: list[Any] = [ttl]
            now = int(_now())
            if user is None:
                args += (CREATED_FIELD, now)
            else:
                keys.append(self.index_key(key[:TAG_LENGTH], user))
                args += (key, CREATED_FIELD, now, SAVED_FIELD, now, USER_FIELD, user)
            for field, value in fields.items():
                args += (field, value)
            return scripts.CREATE, keys, args, fields
        stored = self._stored
        if stored is None:
            mode, changed, removed = b"r", fields, []
        else:
            mode = b"d"
            changed = {f: v for f, v in fields.items() if stored.get(f) != v}
            removed = [f for f in stored if f not in fields]
            if not changed and not removed and ttl == self._created_ttl:
                # Created by this very instance (cycle_key() then the
                # middleware's save): Redis already holds exactly this.
                return None
        # The index: refresh the user's entry, or leave the one it had.
        index: list[Any] = []
        meta: list[Any] = []
        meta_removed: list[bytes] = []
        if user is not None:
            keys.append(self.index_key(key[:TAG_LENGTH], user))
            index = [b"a", key]
            meta = [SAVED_FIELD, int(_now())]
            if user != self._stored_user or stored is None:
                meta += (USER_FIELD, user)
        elif self._stored_user is not None:
            keys.append(self.index_key(key[:TAG_LENGTH], self._stored_user))
            index = [b"r", key]
            meta_removed = [USER_FIELD, SAVED_FIELD]
        elif stored is None:
            # Replaced unread: it may have had a user, which it has no more.
            meta_removed = [USER_FIELD, SAVED_FIELD]
        args = [ttl, mode, len(changed) + len(meta) // 2, *index]
        for field, value in changed.items():
            args += (field, value)
        args += meta
        args += removed
        # A key is stored plain or serialized: writing one form deletes the
        # other, which a concurrent request may have written.
        for field in changed:
            other = _other_form(field)
            if other is not None and other not in fields:
                args.append(other)
        args += meta_removed
        return scripts.UPDATE, keys, args, fields

    def _written(
        self,
        done: Any,
        must_create: bool,
        fields: Fields,
        ttl: int,
        user: str | None,
    ) -> None:
        if not done:
            raise CreateError if must_create else UpdateError
        self._stored = fields
        self._stored_user = user
        self._created_ttl = ttl if must_create else None
        self._unavailable = False
        self._unsaved_key = None

    def _load_failed(self, exc: Exception) -> dict[str, Any]:
        if current_options().on_unavailable != "empty":
            raise unavailable(exc) from exc
        logger.warning(
            "Redis is unavailable (%s); serving an empty session that will not "
            "be saved.",
            exc,
        )
        # Keep the key: the middleware then neither deletes the cookie nor
        # sees an empty session, and save() knows to write nothing.
        self._unavailable = True
        return {}

    def _write_failed(self, exc: Exception) -> None:
        if current_options().on_unavailable != "empty":
            raise unavailable(exc) from exc
        logger.warning("Redis is unavailable (%s); the session was not saved.", exc)


def user_tag(user_id: str) -> str:
    """The first 8 characters of the keys of a user's sessions.

    Derived from the user id with ``SECRET_KEY`` (Django's ``salted_hmac``):
    a key tells nothing about whose session it is.
    """
    return _tag(settings.SECRET_KEY, user_id)


def user_tags(user_id: str) -> list[str]:
    """The user's tag under ``SECRET_KEY`` first, then under each fallback.

    A session keeps the key it got before ``SECRET_KEY`` was rotated while
    the old key is among ``SECRET_KEY_FALLBACKS``; it is listed and revoked
    through the index under that tag.
    """
    tags = [user_tag(user_id)]
    for secret in getattr(settings, "SECRET_KEY_FALLBACKS", ()):
        tag = _tag(secret, user_id)
        if tag not in tags:
            tags.append(tag)
    return tags


@functools.lru_cache(maxsize=4096)
def _tag(secret: str | bytes, user_id: str) -> str:
    digest = salted_hmac(_TAG_SALT, user_id, secret=secret, algorithm="sha256")
    number = int.from_bytes(digest.digest()[:8], "big")
    characters = []
    for _ in range(TAG_LENGTH):
        number, digit = divmod(number, 36)
        characters.append(VALID_KEY_CHARS[digit])
    return "".join(characters)


def _index_head(tag: str) -> str:
    """What the Redis key of each session in an index with ``tag`` starts with."""
    return f"{current_options().key_prefix}{{{tag}}}"


def _date(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _delete_args(session_key: str, user: str) -> tuple[list[str], list[str]]:
    keys = [
        SessionStore.redis_key(session_key),
        SessionStore.index_key(session_key[:TAG_LENGTH], user),
    ]
    return keys, [session_key]


def _run_script(
    handle: SyncRedis, script: scripts.LuaScript, keys: Sequence[str], args: Any
) -> Any:
    """Run ``script`` with every key in ``keys`` declared (all in one slot)."""
    return handle.run_script(script, keys, *args)


async def _arun_script(
    handle: AsyncRedis, script: scripts.LuaScript, keys: Sequence[str], args: Any
) -> Any:
    return await handle.run_script(script, keys, *args)


def unavailable(exc: Exception) -> SessionStoreUnavailable:
    return SessionStoreUnavailable(
        f"The Redis session store is unavailable ({type(exc).__name__}: {exc}). "
        "Nothing was read or written and the client's session cookie was left "
        "as it is. Check that Redis is up and that SESSION_REDIS points at it; "
        "SESSION_REDIS['on_unavailable'] = 'empty' serves requests with an "
        "empty, unsaved session instead."
    )


def _other_form(field: bytes) -> bytes | None:
    """The field the same key would have with a value of the other kind."""
    if field[:1] != SERIALIZED:
        return SERIALIZED + field  # reserved fields are never written here
    key = field[1:]
    return None if key[:1] in MARKERS else key


_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _json_dumps(value: Any) -> bytes:
    """``JSONSerializer().dumps(value)``, without building an encoder each time."""
    return _compact_json(value).encode("latin-1")


def _json_key(name: Any) -> bytes:
    """A key that is not a string, as a JSON object's key would be written."""
    if name is None or isinstance(name, bool | int | float):
        return json.dumps(name).encode()
    if isinstance(name, str):  # a str subclass
        return str(name).encode()
    raise TypeError(
        f"Session keys must be strings, not {type(name).__name__}: {name!r}"
    )
