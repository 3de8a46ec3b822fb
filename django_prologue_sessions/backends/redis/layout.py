"""How a session is laid out in Redis: its key, its user's index, its fields.

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
field name means two things. Key names are UTF-8 with lone surrogates
passed through, so any ``str`` key round-trips.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.utils.crypto import salted_hmac

logger = logging.getLogger("django_prologue_sessions.redis")

# The hash tag of a session: the start of its key (the Lua scripts know it too).
TAG_LENGTH = 8
# The first byte of a field name says what it holds (see the module docstring).
RESERVED = b"\x00"
SERIALIZED = b"\x01"
MARKERS = (RESERVED, SERIALIZED)
CREATED_FIELD = RESERVED + b"c"
SAVED_FIELD = RESERVED + b"s"
USER_FIELD = RESERVED + b"u"
_TAG_SALT = "django_prologue_sessions.backends.redis.user_tag"

Fields = dict[bytes, bytes]


def redis_key(prefix: str, session_key: str) -> str:
    """The Redis key of a session, its first 8 characters the hash tag."""
    tag, rest = session_key[:TAG_LENGTH], session_key[TAG_LENGTH:]
    return f"{prefix}{{{tag}}}{rest}"


def index_key(prefix: str, tag: str, user_id: str) -> str:
    """The Redis key of a user's index of sessions whose keys start with ``tag``."""
    return f"{prefix}{{{tag}}}:user:{user_id}"


def index_head(prefix: str, tag: str) -> str:
    """What the Redis key of each session in an index with ``tag`` starts with."""
    return f"{prefix}{{{tag}}}"


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


class FieldCodec:
    """A session's keys and values as the fields of its hash, and back."""

    def __init__(self, serializer: Any, raw_strings: bool) -> None:
        self.serializer = serializer
        # Under Django's JSONSerializer a string value is stored as it is.
        self.raw_strings = raw_strings
        self.dumps = serializer.dumps

    def encode(self, data: dict[str, Any]) -> Fields:
        raw_strings, dumps = self.raw_strings, self.dumps
        fields: Fields = {}
        for name, value in data.items():
            field = _field_name(name)
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

    def decode(self, items: Any) -> tuple[dict[str, Any], Fields, str | None]:
        """The session, the fields it was read from, and the stored user id."""
        loads = self.serializer.loads
        session: dict[str, Any] = {}
        stored: Fields = {}
        stored_user = None
        for field, value in items:
            try:
                if field[:1] == SERIALIZED:
                    session[field[1:].decode(errors="surrogatepass")] = loads(value)
                elif field[:1] == RESERVED:
                    if field == USER_FIELD:
                        stored_user = value.decode()
                    continue
                else:
                    session[field.decode(errors="surrogatepass")] = value.decode()
            except Exception:
                # Left in Redis as it is (e.g. written under another
                # SESSION_SERIALIZER): skipping it loses nothing stored.
                logger.warning("Session field %r could not be decoded", field)
                continue
            stored[field] = value
        return session, stored, stored_user


def other_form(field: bytes) -> bytes | None:
    """The field the same key would have with a value of the other kind."""
    if field[:1] != SERIALIZED:
        return SERIALIZED + field  # reserved fields are never written here
    key = field[1:]
    return None if key[:1] in MARKERS else key


def _field_name(name: Any) -> bytes:
    if type(name) is str:
        return name.encode(errors="surrogatepass")
    if name is None or isinstance(name, bool | int | float):
        # As a JSON object's key would be written.
        return json.dumps(name).encode()
    if isinstance(name, str):  # a str subclass
        return str(name).encode(errors="surrogatepass")
    raise TypeError(
        f"Session keys must be strings, not {type(name).__name__}: {name!r}"
    )
