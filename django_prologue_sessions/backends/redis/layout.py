"""How a session is laid out in Redis: its key, its user's index, its value.

Each session is one Redis string at ``{prefix}:{<key[:8]>}<key[8:]>``: the
braces are a cluster hash tag, the first 8 characters of the session key.
Redis expires the string: its TTL is the session's expiry age. With the user
index on (``SESSION_REDIS["user_index"]``, the default), a logged-in user's
session gets a key that starts with the user's tag (see ``user_tag()``), so
that all of the user's sessions and the user's index,
``{prefix}:{<tag>}:user:<user id>``, lie in one cluster slot and every script
that writes a session updates the index in the same atomic step.

The value is a short header, then the session::

    <version>[@<created>,<saved>,<indexed until>,<length>:<user id>]<format><body>

- ``version``: decimal, 1 when created; every save adds one, and a save
  applies only if the value it read is still there (``SET ... IFEQ``, or the
  UPDATE script's check of the version on servers without it): the
  optimistic concurrency that keeps concurrent changes to different keys
  (``store``);
- ``@...``: only for a logged-in session with the user index on: the
  creation and last save times (Unix seconds), until when the session's
  entry in its user's index lasts (Unix seconds, as the app server that
  wrote the entry counted them; see ``store``), and the user id, its length
  first, which the scripts that list and revoke a user's sessions read
  without reading the session;
- ``format``: ``j``, the body is the session dict as ``SESSION_SERIALIZER``
  writes it; ``z``, the same deflated (raw deflate, ``PRESET`` as its
  dictionary), written only when that is shorter.

A string costs Redis one allocation where a hash costs one per field plus
its table, and a small session compresses well against a dictionary of what
Django itself puts there (a login's keys and its backend's dotted path).
"""

from __future__ import annotations

import functools
import logging
import re
import zlib
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.utils.crypto import salted_hmac

logger = logging.getLogger("django_prologue_sessions.redis")

# The hash tag of a session: the start of its key (the Lua scripts know it too).
TAG_LENGTH = 8
_TAG_SALT = "django_prologue_sessions.backends.redis.user_tag"

PLAIN = b"j"
DEFLATED = b"z"
# What Django's own apps put in a session, as its JSONSerializer writes it:
# deflate finds these as back references. The likeliest come last, where the
# references are shortest. Changing it changes the format: a new letter.
PRESET = (
    b'"_session_expiry":'
    b'"_messages":"[[\\"__json_message\\", 0, 25, \\"'
    b'{"_csrftoken":"'
    b'{"_auth_user_id":"'
    b'","_auth_user_backend":"django.contrib.auth.backends.ModelBackend"'
    b',"_auth_user_hash":"'
)
_HEADER = re.compile(rb"(\d+)(?:@(\d+),(\d+),(\d+),(\d+):)?")


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


class Header(NamedTuple):
    """What a value says besides the session (a tuple: built on every load)."""

    version: str
    created: int | None = None
    saved: int | None = None
    user: str | None = None
    indexed_until: int | None = None


def user_header(created: int, saved: int, indexed_until: int, user: str) -> bytes:
    """The ``@...`` part of a logged-in session's header, for the scripts."""
    encoded = user.encode(errors="surrogatepass")
    return b"@%d,%d,%d,%d:%s" % (created, saved, indexed_until, len(encoded), encoded)


def parse(value: bytes) -> tuple[Header, bytes, bytes]:
    """A stored value's header, format letter, and body (as stored)."""
    match = _HEADER.match(value)
    if match is None:
        raise ValueError("Not a session value")
    version, created, saved, until, length = match.groups()
    position = match.end()
    user = None
    if length is not None:
        end = position + int(length)
        user = value[position:end].decode(errors="surrogatepass")
        position = end
    header = Header(
        version.decode(),
        None if created is None else int(created),
        None if saved is None else int(saved),
        user,
        None if until is None else int(until),
    )
    return header, value[position : position + 1], value[position + 1 :]


def restamp(value: bytes, now: int, indexed_until: int) -> bytes:
    """``value`` as the RENAME script leaves it: created and saved ``now``,
    indexed until ``indexed_until``; as it is if it has no user header."""
    match = _HEADER.match(value)
    if match is None or match.group(5) is None:
        return value
    head = b"%s@%d,%d,%d," % (match.group(1), now, now, indexed_until)
    return head + value[match.start(5) :]


def codec(serializer_class: type[Any]) -> SessionCodec:
    """The codec of a ``SESSION_SERIALIZER`` class, made once: it holds nothing
    of a request's, and Django's serializers hold no state."""
    found = _codecs.get(serializer_class)
    if found is None:
        found = _codecs.setdefault(serializer_class, SessionCodec(serializer_class()))
    return found


_codecs: dict[Any, SessionCodec] = {}


class SessionCodec:
    """A session dict as the format letter and body of a value, and back."""

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer

    def dumps(self, data: dict[str, Any]) -> bytes:
        """The session as ``SESSION_SERIALIZER`` writes it."""
        encoded = self.serializer.dumps(data)
        return encoded.encode() if isinstance(encoded, str) else bytes(encoded)

    def loads(self, serialized: bytes) -> dict[str, Any]:
        data = self.serializer.loads(serialized)
        if not isinstance(data, dict):
            raise ValueError("A session is a dict")
        return data

    @staticmethod
    def pack(serialized: bytes) -> bytes:
        """The format letter and body: deflated only where that is shorter.

        zlib's default level and memory: a session is too short for level 9
        to find more (the bodies of ``bench.redis_memory``'s profiles come out
        the same), and the larger state costs more to set up on every save.
        """
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zdict=PRESET)
        deflated = compressor.compress(serialized) + compressor.flush()
        if len(deflated) < len(serialized):
            return DEFLATED + deflated
        return PLAIN + serialized

    @staticmethod
    def unpack(form: bytes, body: bytes) -> bytes:
        """The serialized session from a value's format letter and body."""
        if form == PLAIN:
            return body
        if form == DEFLATED:
            decompressor = zlib.decompressobj(-15, zdict=PRESET)
            return decompressor.decompress(body) + decompressor.flush()
        raise ValueError(f"Unknown session format {form!r}")
