"""What the memory and Redis engines share: new session keys, the public id
of a session, and the user a session belongs to."""

from __future__ import annotations

import hashlib
import os
import re
from binascii import b2a_base64
from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS

KEY_LENGTH = 32
#: The characters of a key that the Redis engine uses as a cluster hash tag
#: (a user's tag, or random): not secret, and kept at the start of an id.
TAG_LENGTH = 8
#: A session id: the key's tag, then 23 characters of digest (138 bits).
ID_LENGTH = TAG_LENGTH + 23

#: The session key ``django.contrib.auth.login()`` stores the user's id under
#: (``django.contrib.auth.SESSION_KEY``), named here so that the engines need
#: no auth app.
USER_ID_KEY = "_auth_user_id"

# Random bytes below 252 (7 * 36) map evenly onto the 36 key characters, the
# others are dropped: as uniform as get_random_string(), in one C call
# instead of 32 calls to SystemRandom.
_KEY_CHARACTERS = bytes(
    VALID_KEY_CHARS.encode()[byte % 36] if byte < 252 else 0 for byte in range(256)
)
_UNEVEN_BYTES = bytes(range(252, 256))


def new_session_key(tag: str = "") -> str:
    """``tag`` then random characters of ``[a-z0-9]``: 32 in all.

    Without a tag, 32 random characters (about 165 bits), like Django's own
    keys; the Redis engine starts a user's session with the user's tag.
    """
    length = KEY_LENGTH - len(tag)
    while True:
        key = os.urandom(48).translate(_KEY_CHARACTERS, _UNEVEN_BYTES)
        if len(key) >= length:
            return tag + key[:length].decode()


# A plain SHA-256, not an HMAC: a SECRET_KEY rotation must leave every id as
# it was. The key's own random characters (124 bits and more) are what a
# reader of the ids would have to guess. The prefix keeps these digests apart
# from any other SHA-256 of a session key.
_ID_HASH = hashlib.sha256(b"django_prologue_sessions.session_id:")
_URL_SAFE = bytes.maketrans(b"+/", b"-_")
is_session_id = re.compile(
    f"[{VALID_KEY_CHARS}]{{{TAG_LENGTH}}}[A-Za-z0-9_-]{{{ID_LENGTH - TAG_LENGTH}}}"
).fullmatch


def session_id(session_key: str) -> str:
    """The public name of a session: a one-way digest of its key.

    The key's first 8 characters (its tag, not secret), then 23 URL-safe
    base64 characters of a SHA-256 of the key. One id never gives back its
    key, so an id can be stored, listed, shown and logged; the Redis engine
    stores each session under its id.
    """
    digest = _ID_HASH.copy()
    digest.update(session_key.encode())
    # 23 characters of base64 are the first 138 bits of the digest.
    encoded = b2a_base64(digest.digest())[:23].translate(_URL_SAFE)
    return session_key[:TAG_LENGTH] + encoded.decode()


def session_user_id(session: dict[str, Any]) -> str | None:
    """The session's user id as ``login()`` stores it; an int counts as its string."""
    user = session.get(USER_ID_KEY)
    return None if user is None else str(user)
