"""A Redis session engine: one round trip per operation, safe under outages.

Each session is a Redis hash at ``{prefix}:{<session key>}`` (the braces are a
cluster hash tag) with one field per session key. Redis expires the hash: its
TTL is the session's expiry age. The first byte of a field name tells what the
field holds:

- ``\\x01`` + key: the value serialized with ``SESSION_SERIALIZER``;
- ``\\x00`` + letter: reserved, e.g. ``\\x00c``, the creation time, which
  keeps an emptied session in existence;
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

import json
import logging
import os
import re
import time
from typing import Any

from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.signing import JSONSerializer

from django_prologue_sessions.backends import _redis_scripts as scripts
from django_prologue_sessions.backends._redis_connection import (
    UNAVAILABLE_ERRORS,
    async_redis,
    current_options,
    sync_redis,
)
from django_prologue_sessions.exceptions import SessionStoreUnavailable

logger = logging.getLogger("django_prologue_sessions.redis")

KEY_LENGTH = 32
_is_valid_key = re.compile(f"[{VALID_KEY_CHARS}]{{{KEY_LENGTH}}}").fullmatch
# The first byte of a field name says what it holds (see the module docstring).
RESERVED = b"\x00"
SERIALIZED = b"\x01"
MARKERS = (RESERVED, SERIALIZED)
CREATED_FIELD = RESERVED + b"c"
# Five clashes in a row among 36**32 keys means something else is wrong.
CREATE_ATTEMPTS = 5
# Random bytes below 252 (7 * 36) map evenly onto the 36 key characters, the
# others are dropped: as uniform as get_random_string(), in one C call
# instead of 32 calls to SystemRandom.
_KEY_CHARACTERS = bytes(
    VALID_KEY_CHARS.encode()[byte % 36] if byte < 252 else 0 for byte in range(256)
)
_UNEVEN_BYTES = bytes(range(252, 256))

Fields = dict[bytes, bytes]


class SessionStore(SessionBase):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._codec = self.serializer()
        # The fields as loaded or last written, to send only what changed;
        # None when unknown (the session was emptied before it was loaded).
        self._stored: Fields | None = None
        # Set when Redis could not be read in on_unavailable="empty" mode: the
        # empty session stands in for the real one and must never replace it.
        self._unavailable = False
        # The TTL this instance created the session with, if it did.
        self._created_ttl: int | None = None

    def _validate_session_key(self, key: Any) -> bool:
        # Anything but a key this engine could have made never reaches Redis.
        return isinstance(key, str) and _is_valid_key(key) is not None

    @staticmethod
    def new_session_key() -> str:
        """32 random characters of ``[a-z0-9]``, like Django's own keys."""
        while True:
            key = os.urandom(48).translate(_KEY_CHARACTERS, _UNEVEN_BYTES)
            if len(key) >= KEY_LENGTH:
                return key[:KEY_LENGTH].decode()

    @staticmethod
    def redis_key(session_key: str) -> str:
        return f"{current_options().key_prefix}{{{session_key}}}"

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
            self._session_key = self.new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new Redis session key.")

    async def acreate(self) -> None:
        for _attempt in range(CREATE_ATTEMPTS):
            self._session_key = self.new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new Redis session key.")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        write = self._prepare_write(data, must_create)
        if write is None:
            return
        script, args, fields = write
        try:
            done = sync_redis().run_script(script, self._own_redis_key(), *args)
        except UNAVAILABLE_ERRORS as exc:
            return self._write_failed(exc)
        self._written(done, must_create, fields, args[0])

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)  # type: ignore[attr-defined]
        write = self._prepare_write(data, must_create)
        if write is None:
            return
        script, args, fields = write
        try:
            done = await async_redis().run_script(script, self._own_redis_key(), *args)
        except UNAVAILABLE_ERRORS as exc:
            return self._write_failed(exc)
        self._written(done, must_create, fields, args[0])

    def delete(self, session_key: str | None = None) -> None:
        key = self._key_to_delete(session_key)
        if key is None:
            return
        try:
            sync_redis().execute("UNLINK", key)
        except UNAVAILABLE_ERRORS as exc:
            # Even in "empty" mode: a logout that silently did not happen
            # would leave the session usable by whoever holds the cookie.
            raise unavailable(exc) from exc

    async def adelete(self, session_key: str | None = None) -> None:
        key = self._key_to_delete(session_key)
        if key is None:
            return
        try:
            await async_redis().execute("UNLINK", key)
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    @classmethod
    def clear_expired(cls) -> None:
        """Redis expires sessions itself."""

    @classmethod
    async def aclear_expired(cls) -> None:
        """Redis expires sessions itself."""

    # The work shared by the sync and async methods --------------------------

    def _own_redis_key(self) -> str:
        assert self.session_key is not None
        return self.redis_key(self.session_key)

    def _decode(self, raw: Any) -> dict[str, Any]:
        if not raw:
            # Expired, deleted, or never there: never adopt the client's key.
            self._session_key = None
            return {}
        if isinstance(raw, list):  # RESP2 answers HGETALL with a flat list
            raw = dict(zip(raw[::2], raw[1::2], strict=True))
        loads = self._codec.loads
        session: dict[str, Any] = {}
        stored: Fields = {}
        for field, value in raw.items():
            try:
                if field[:1] == SERIALIZED:
                    session[field[1:].decode()] = loads(value)
                elif field[:1] == RESERVED:
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
        return session

    def _encode(self, data: dict[str, Any]) -> Fields:
        dumps = self._codec.dumps
        raw_strings = self.serializer is JSONSerializer
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
        self, data: dict[str, Any], must_create: bool
    ) -> tuple[scripts.LuaScript, list[Any], Fields] | None:
        """The script and arguments that write ``data``, or None for no write."""
        if self.session_key is None:
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
        if must_create:
            args: list[Any] = [ttl, CREATED_FIELD, int(time.time())]
            for field, value in fields.items():
                args += (field, value)
            return scripts.CREATE, args, fields
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
        args = [ttl, mode, len(changed)]
        for field, value in changed.items():
            args += (field, value)
        args += removed
        # A key is stored plain or serialized: writing one form deletes the
        # other, which a concurrent request may have written.
        for field in changed:
            other = _other_form(field)
            if other is not None and other not in fields:
                args.append(other)
        return scripts.UPDATE, args, fields

    def _written(self, done: Any, must_create: bool, fields: Fields, ttl: int) -> None:
        if not done:
            raise CreateError if must_create else UpdateError
        self._stored = fields
        self._created_ttl = ttl if must_create else None
        self._unavailable = False

    def _key_to_delete(self, session_key: str | None) -> str | None:
        if session_key is None:
            session_key = self.session_key
        if session_key is None or not self._validate_session_key(session_key):
            return None
        return self.redis_key(session_key)

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


def _json_key(name: Any) -> bytes:
    """A key that is not a string, as a JSON object's key would be written."""
    if name is None or isinstance(name, bool | int | float):
        return json.dumps(name).encode()
    if isinstance(name, str):  # a str subclass
        return str(name).encode()
    raise TypeError(
        f"Session keys must be strings, not {type(name).__name__}: {name!r}"
    )
